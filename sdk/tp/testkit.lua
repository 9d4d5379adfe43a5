-- tp.testkit: the library behind `tidepool test` (core/cli/testkit.c runs it).
--
-- A test file is plain Lua run in the runner's own, unsandboxed state, with
-- these globals (sdk/GUIDE.md "Test it" shows them in use):
--
--   kit.plugins { name = config, ... }  which plugins the file's host enables
--                                       (default: the plugin under test, {});
--                                       at most once, before the first describe/it
--   describe(name, fn)  it(name, fn)    blocks; names join with " > "
--   before_each(fn)  after_each(fn)     around every `it` of the enclosing block
--   expect(v).to_be(x) .to_equal(t) .to_be_nil() .to_be_truthy() .to_be_falsy()
--            .to_contain(substring or element) .to_match(pattern) .to_be_near(x, tol)
--   expect(res).to_be_error(status, code)  an error answer; returns its error table
--   expect(fn).to_fail([substring])
--   kit.user(id) kit.anon() kit.admin()  clients: :get(path [, headers]),
--       :post/:put/:patch(path [, body [, headers]]), :delete(path [, headers]);
--       paths are relative to /v1/test (admin: /admin/test); a table body is
--       sent as JSON; the answer is {status, body, headers} with body decoded
--       when it is JSON and header names in lower case
--   kit.timezone(zone)   the tenant's time zone (default Asia/Shanghai); like
--                        kit.plugins, at most once, before the first describe/it
--   kit.now()            the tenant's clock, epoch seconds (starts at a whole second)
--   kit.set_local(text)  puts the clock at a local date-time of the tenant's zone,
--                        "2026-11-11 00:00" or "2026-11-11 00:00:00": forward runs
--                        what falls due on the way (as kit.advance); backward
--                        moves it and runs nothing. Returns tasks ran, failed
--   kit.set_now(epoch)   the same with epoch seconds
--   kit.at_local(text)   the epoch seconds of a local date-time (the clock stays)
--   kit.local_time([epoch])  the clock (or epoch) as "YYYY-MM-DD HH:MM:SS" in the
--                        tenant's zone; kit.localtime([epoch]) as tp.localtime's table
--   kit.concurrently(requests [, {order = "reverse"|seed}]) or
--   kit.concurrently(n, function(i) return request end [, opts])
--                        requests sent at the same moment: each request is
--                        { client, method, path [, body [, headers]] }; the answers,
--                        in the order given. They are one loop iteration of the
--                        host: handled one after another (the host has one
--                        thread; order: as given, reversed, or shuffled by an
--                        integer seed), each in its own savepoint, all at the
--                        same clock reading, each seeing the writes of those
--                        before it, then committed together and only then
--                        answered, as real clients arriving together are.
--   kit.advance(seconds) moves the clock, running what falls due in due order
--                        (jobs, the events they emit); returns tasks ran, failed
--   kit.drain()          runs what is due now (event deliveries, due jobs) until
--                        nothing is left; returns tasks ran, failed. Requests do
--                        not deliver their events by themselves: drain (or advance)
--   kit.query(sql, ...)  rows from the tenant's database, read-only
--   kit.null             JSON null as decoded bodies hold it
--   kit.load_run(path)   a recorded run (GET /admin/{tenant}/runs/{id}, saved as a
--                        file; path relative to the test file), decoded
--   kit.replay(run)      runs it again against the plugin as it is now: the test
--                        clock is set to the run's time (backwards too) and the
--                        invocation gets the run's random seed; a route answers
--                        {status, body, headers}, a job or event {ok, error}; both
--                        add instructions, budget and random_draws
--   kit.run_differences(run, res)  what differs from the recorded outcome (a list
--                        of lines; empty when the same)
--   expect(res).to_match_run(run)  fails with those lines
--
-- Every file gets its own host: one tenant "test" on the manual clock, a fresh
-- database. The database lives for the whole file: tests of one file see
-- each other's writes, in the order they are written.
--
-- A failed test also shows every invocation that failed inside the host during
-- it (a route's 500, a job or event handler that raised): what it was and the
-- plugin's error with its traceback, from the recorded runs (_tp_runs).
--
-- A failed expectation names the file:line of the `expect` and what differed;
-- the value is named after the expression written in expect(...) when the
-- line has one, so a deep comparison reads
--   res.body.items[2].price_fen: expected 990, got 1990

local M = {}

local SELF = debug.getinfo(1, "S").source
local SELF_FILE = SELF:sub(2)
local TENANT_PREFIX = { user = "/v1/test", admin = "/admin/test" }

local host          -- the C binding for this file (core/cli/testkit.c)
local current_file  -- the test file being run, for kit.load_run's relative paths
local opened = false
local plugins_spec  -- kit.plugins' table, until the host opens
local zone_spec     -- kit.timezone's zone, until the host opens
local http_spec     -- kit.destinations' table, until the host opens
local collecting = true
local running = false
local any_block = false  -- a describe or it was seen

-- ---- showing values

local function fmt(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      local named = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ['"'] = '\\"', ["\\"] = "\\\\" }
      return named[c] or ("\\%d"):format(c:byte())
    end) .. '"'
  elseif t == "table" then
    if depth >= 2 then return "{...}" end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      local ia, ib = math.type(a) == "integer", math.type(b) == "integer"
      if ia ~= ib then return ia end
      if ia then return a < b end
      return tostring(a) < tostring(b)
    end)
    local parts, n = {}, #v
    for i, k in ipairs(keys) do
      if i > 8 then
        parts[#parts + 1] = "..."
        break
      end
      if math.type(k) == "integer" and k >= 1 and k <= n then
        parts[#parts + 1] = fmt(v[k], depth + 1)
      elseif type(k) == "string" and k:match("^[%a_][%w_]*$") then
        parts[#parts + 1] = k .. " = " .. fmt(v[k], depth + 1)
      else
        parts[#parts + 1] = "[" .. fmt(k, depth + 1) .. "] = " .. fmt(v[k], depth + 1)
      end
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  elseif host and v == host.null then
    return "null"
  end
  return tostring(v)
end

-- ---- failures: where the expectation was written, and what it was about

local Failure = {}  -- metatable of a failed expectation

-- The innermost frame of code that is not this library: the test's own line.
local function caller_info()
  for level = 2, 100 do
    local info = debug.getinfo(level, "Sl")
    if not info then return nil end
    if info.source ~= SELF and info.what ~= "C" and info.currentline > 0 then return info end
  end
end

local lines_of = {}

local function source_line(info)
  if not info or info.source:sub(1, 1) ~= "@" then return nil end
  local file = info.source:sub(2)
  local lines = lines_of[file]
  if not lines then
    lines = {}
    local f = io.open(file)
    if f then
      for line in f:lines() do lines[#lines + 1] = line end
      f:close()
    end
    lines_of[file] = lines
  end
  return lines[info.currentline]
end

-- The text inside expect(...) on the expectation's line, if there is one
-- expect there and its argument is short and plain; else "value".
local function subject_name(info)
  local line = source_line(info)
  local s = line and line:find("%f[%w_]expect%(")
  if not s or line:find("%f[%w_]expect%(", s + 1) then return "value" end
  local start, i, depth = s + 7, s + 7, 1
  while i <= #line do
    local c = line:sub(i, i)
    if c == "(" or c == "{" or c == "[" then
      depth = depth + 1
    elseif c == ")" or c == "}" or c == "]" then
      depth = depth - 1
      if depth == 0 then break end
    elseif c == '"' or c == "'" then
      i = i + 1
      while i <= #line and line:sub(i, i) ~= c do
        if line:sub(i, i) == "\\" then i = i + 1 end
        i = i + 1
      end
    end
    i = i + 1
  end
  local expr = depth == 0 and line:sub(start, i - 1):match("^%s*(.-)%s*$")
  if not expr or expr == "" or #expr > 80 or expr:find("function", 1, true) then return "value" end
  return expr
end

local function location(info)
  if not info then return "?" end
  local file = info.source:sub(1, 1) == "@" and info.source:sub(2) or info.short_src
  return ("%s:%d"):format(file, info.currentline)
end

local function fail(info, message)
  error(setmetatable({ where = location(info), message = message }, Failure), 0)
end

-- ---- deep equality

local function path_key(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return "." .. k end
  if math.type(k) == "integer" then return ("[%d]"):format(k) end
  return "[" .. fmt(k) .. "]"
end

local function union_keys(a, b)
  local seen, keys = {}, {}
  for _, t in ipairs({ a, b }) do
    for k in pairs(t) do
      if not seen[k] then
        seen[k] = true
        keys[#keys + 1] = k
      end
    end
  end
  table.sort(keys, function(x, y)
    local ix, iy = math.type(x) == "integer", math.type(y) == "integer"
    if ix ~= iy then return ix end
    if ix then return x < y end
    return tostring(x) < tostring(y)
  end)
  return keys
end

-- The first difference between expected and got (keys in order: list
-- positions, then names): its path, the expected and the actual value.
local function first_difference(expected, got, path, depth)
  if expected == got then return nil end
  if type(expected) ~= "table" or type(got) ~= "table" or depth > 64 then
    return path, expected, got
  end
  for _, k in ipairs(union_keys(expected, got)) do
    local p, e, g = first_difference(expected[k], got[k], path .. path_key(k), depth + 1)
    if p then return p, e, g end
  end
  return nil
end

local function deep_equal(a, b)
  return first_difference(a, b, "", 0) == nil
end

-- ---- expect

local run_differences  -- kit.run_differences, defined with kit.replay below

local function expect(v)
  local m = {}
  local function check(ok, what)
    if ok then return end
    local info = caller_info()
    fail(info, subject_name(info) .. what(info))
  end
  local function got() return ", got " .. fmt(v) end

  function m.to_be(x)
    check(v == x, function() return ": expected " .. fmt(x) .. got() end)
  end
  function m.to_equal(x)
    local path, e, g = first_difference(x, v, "", 0)
    if path == nil then return end
    local info = caller_info()
    fail(info, ("%s%s: expected %s, got %s"):format(subject_name(info), path, fmt(e), fmt(g)))
  end
  function m.to_be_nil()
    check(v == nil, function() return ": expected nil" .. got() end)
  end
  function m.to_be_truthy()
    check(v, function() return ": expected a truthy value" .. got() end)
  end
  function m.to_be_falsy()
    check(not v, function() return ": expected false or nil" .. got() end)
  end
  function m.to_contain(x)
    local ok = false
    if type(v) == "string" then
      ok = type(x) == "string" and v:find(x, 1, true) ~= nil
    elseif type(v) == "table" then
      for _, item in pairs(v) do
        if deep_equal(x, item) then
          ok = true
          break
        end
      end
    end
    check(ok, function() return ": expected to contain " .. fmt(x) .. got() end)
  end
  function m.to_match(pattern)
    check(type(v) == "string" and v:match(pattern) ~= nil,
      function() return ": expected to match " .. fmt(pattern) .. got() end)
  end
  function m.to_be_near(x, tolerance)
    tolerance = tolerance or 0
    check(type(v) == "number" and math.abs(v - x) <= tolerance,
      function() return (": expected %s ± %s"):format(fmt(x), fmt(tolerance)) .. got() end)
  end
  function m.to_be_error(status, code)
    local err = type(v) == "table" and type(v.body) == "table" and v.body.error
    local got_code = type(err) == "table" and err.code or nil
    check(type(v) == "table" and v.status == status and got_code == code, function()
      return (": expected the error %s %s, got %s %s"):format(fmt(status), fmt(code),
        fmt(type(v) == "table" and v.status or v), fmt(got_code))
    end)
    return err
  end
  function m.to_match_run(run)
    local diffs = run_differences(run, v)
    if #diffs == 0 then return end
    local info = caller_info()
    fail(info, ("the replay differs from recorded run %s:\n  %s"):format(
      fmt(type(run) == "table" and run.id or "?"), table.concat(diffs, "\n  ")))
  end
  function m.to_fail(substring)
    local info = caller_info()
    if type(v) ~= "function" then fail(info, "expect(fn).to_fail: fn is " .. fmt(v)) end
    local ok, err = pcall(v)
    if ok then fail(info, "the function was expected to fail, but it returned") end
    if getmetatable(err) == Failure then err = err.message end
    local message = type(err) == "string" and err or fmt(err)
    if substring and not message:find(substring, 1, true) then
      fail(info, ("the function was expected to fail with %s, but failed with %s")
        :format(fmt(substring), fmt(message)))
    end
  end
  return m
end

-- ---- the host: opened on first use, or before the first test runs

-- A Lua literal of a plain-data table (the config file is Lua).
local function literal(v)
  local t = type(v)
  if t == "string" or t == "number" then return ("%q"):format(v) end
  if t == "boolean" then return tostring(v) end
  if t == "table" then
    local parts = {}
    for k, val in pairs(v) do parts[#parts + 1] = "[" .. literal(k) .. "] = " .. literal(val) end
    return "{ " .. table.concat(parts, ", ") .. " }"
  end
  error(("kit.plugins: a config holds strings, numbers, booleans and tables, not a %s"):format(t), 0)
end

local HostError = {}  -- metatable: the file's host could not open

local open_error  -- why the host did not open; every later use fails the same way

local function ensure_open()
  if not opened then
    opened = true
    local ok, err = host.open(literal(plugins_spec or { [host.plugin] = {} }), zone_spec,
      http_spec and literal(http_spec))
    if not ok then open_error = err end
  end
  if open_error then error(setmetatable({ message = open_error }, HostError), 0) end
end

-- ---- kit

local kit = {}

local BUILD = {}  -- a client's request builder, for kit.concurrently

-- An answer as tests see it: {status, body, headers}, body decoded when JSON.
local function answer(status, text, response_headers)
  local decoded = text
  if response_headers["content-type"]:find("json", 1, true) and #text > 0 then
    local value = host.json_decode(text)
    if value ~= nil then decoded = value end
  end
  return { status = status, body = decoded, headers = response_headers }
end

local function client(kind, user)
  local c = {}
  -- the request as host.request takes it: method, target, headers, body
  local function build(method, path, body, headers, level)
    if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
      error(("%s: the path must start with '/' (it is relative to %s)"):format(method,
        TENANT_PREFIX[kind == "admin" and "admin" or "user"]), level)
    end
    ensure_open()
    local h = {}
    if user then h["authorization"] = "Bearer " .. host.token(user) end
    if kind == "admin" then h["x-api-key"] = host.admin_key end
    local raw
    if body ~= nil then
      raw = type(body) == "string" and body or host.json_encode(body)
      h["content-type"] = "application/json"
    end
    for k, v in pairs(headers or {}) do h[tostring(k):lower()] = tostring(v) end
    return { method, TENANT_PREFIX[kind == "admin" and "admin" or "user"] .. path, h, raw }
  end
  c[BUILD] = build
  local function send(method, path, body, headers)
    local r = build(method, path, body, headers, 4)
    return answer(host.request(r[1], r[2], r[3], r[4]))
  end
  function c:get(path, headers) return send("GET", path, nil, headers) end
  function c:delete(path, headers) return send("DELETE", path, nil, headers) end
  function c:post(path, body, headers) return send("POST", path, body, headers) end
  function c:put(path, body, headers) return send("PUT", path, body, headers) end
  function c:patch(path, body, headers) return send("PATCH", path, body, headers) end
  function c:request(method, path, body, headers) return send(method, path, body, headers) end
  return c
end

function kit.plugins(spec)
  if type(spec) ~= "table" then error("kit.plugins takes a table { name = config, ... }", 2) end
  if plugins_spec or opened then error("kit.plugins may be called only once, before the host is used", 2) end
  if any_block or not collecting or running then
    error("kit.plugins must come before the first describe/it", 2)
  end
  local ok, err = pcall(literal, spec)
  if not ok then error(err, 2) end
  plugins_spec = spec
end

function kit.user(id)
  if type(id) ~= "string" or #id < 1 or #id > 64 or not id:match("^[%w_:@%-]+$") then
    error(("kit.user: invalid user id %s (1-64 letters, digits, _ - : @)"):format(fmt(id)), 2)
  end
  return client("user", id)
end

function kit.anon() return client("anon") end
function kit.admin() return client("admin") end

---The tenant's http destinations (the brand config's tenants[i].http), so
---that tp.http.request can be called. The kit runs no loop: calls are written
---to the outbox (kit.query("SELECT ... FROM _tp_outbox")) but not made.
---@param spec table destination name = { url, plugins, ... }
function kit.destinations(spec)
  if type(spec) ~= "table" then error("kit.destinations takes a table { name = { url, plugins } }", 2) end
  if http_spec or opened then error("kit.destinations may be called only once, before the host is used", 2) end
  if any_block or not collecting or running then
    error("kit.destinations must come before the first describe/it", 2)
  end
  local ok, err = pcall(literal, spec)
  if not ok then error(err, 2) end
  http_spec = spec
end

function kit.timezone(zone)
  if type(zone) ~= "string" or zone == "" then error("kit.timezone takes a zone name, e.g. \"Asia/Shanghai\"", 2) end
  if zone_spec or opened then error("kit.timezone may be called only once, before the host is used", 2) end
  if any_block or not collecting or running then
    error("kit.timezone must come before the first describe/it", 2)
  end
  zone_spec = zone
end

-- ---- local time: the tenant's zone, through tp.when's own rules

local when  -- sdk/tp/when.lua, run with the kit's host as its tp

local function when_lib()
  if not when then
    local file = SELF_FILE:gsub("testkit%.lua$", "when.lua")
    local env = setmetatable({ tp = { localtime = function(epoch) return host.localtime(epoch) end,
                                      timezone = function() return host.timezone() end } },
                             { __index = _G })
    when = assert(loadfile(file, "t", env))()
  end
  return when
end

function kit.at_local(text)
  ensure_open()
  local epoch, why = when_lib().parse(text)
  if not epoch then error("kit.at_local: " .. tostring(why), 2) end
  return epoch
end

-- Puts the clock at epoch seconds: forward runs what falls due; backward only moves it.
local function set_now(epoch, level)
  if math.type(epoch) ~= "integer" or epoch <= 0 then error("epoch seconds expected", level) end
  local now_ms = host.now_ms()
  if epoch * 1000 >= now_ms then return host.advance(epoch * 1000 - now_ms) end
  host.set_clock(epoch * 1000)
  return 0, 0
end

function kit.set_now(epoch)
  ensure_open()
  return set_now(epoch, 3)
end

function kit.set_local(text)
  ensure_open()
  local epoch, why = when_lib().parse(text)
  if not epoch then error("kit.set_local: " .. tostring(why), 2) end
  return set_now(epoch, 3)
end

function kit.localtime(epoch)
  ensure_open()
  if epoch ~= nil and math.type(epoch) ~= "integer" then error("kit.localtime takes epoch seconds", 2) end
  return host.localtime(epoch or host.now_ms() // 1000)
end

function kit.local_time(epoch)
  local t = kit.localtime(epoch)
  return ("%04d-%02d-%02d %02d:%02d:%02d"):format(t.year, t.month, t.day, t.hour, t.min, t.sec)
end

-- ---- requests at the same moment

-- The order in which the host handles the batch: 1..n, reversed, or a
-- shuffle by seed (a plain LCG: the same seed, the same order everywhere).
local function batch_order(n, order)
  local idx = {}
  for i = 1, n do idx[i] = i end
  if order == nil or order == "given" then return idx end
  if order == "reverse" then
    for i = 1, n // 2 do idx[i], idx[n + 1 - i] = idx[n + 1 - i], idx[i] end
    return idx
  end
  if math.type(order) ~= "integer" then
    error("kit.concurrently: order is \"given\", \"reverse\" or an integer seed", 3)
  end
  local x = order
  for i = n, 2, -1 do
    x = (x * 6364136223846793005 + 1442695040888963407)
    local j = ((x >> 33) % i) + 1
    idx[i], idx[j] = idx[j], idx[i]
  end
  return idx
end

function kit.concurrently(requests, fn, opts)
  if math.type(requests) == "integer" then
    if type(fn) ~= "function" then error("kit.concurrently(n, function(i) return request end) expected", 2) end
    local list = {}
    for i = 1, requests do list[i] = fn(i) end
    requests = list
  else
    opts = fn
  end
  if type(requests) ~= "table" or #requests == 0 then
    error("kit.concurrently takes a list of { client, method, path [, body [, headers]] }", 2)
  end
  ensure_open()
  local built = {}
  for i, r in ipairs(requests) do
    if type(r) ~= "table" or type(r[1]) ~= "table" or not r[1][BUILD] or type(r[2]) ~= "string" then
      error(("kit.concurrently: request %d is not { client, method, path [, body [, headers]] }"):format(i), 2)
    end
    built[i] = r[1][BUILD](r[2]:upper(), r[3], r[4], r[5], 3)
  end
  local order = batch_order(#built, opts and opts.order)
  local batch = {}
  for k, i in ipairs(order) do batch[k] = built[i] end
  local answers = host.request_batch(batch)
  local out = {}
  for k, i in ipairs(order) do
    local a = answers[k]
    out[i] = answer(a[1], a[2], a[3])
  end
  return out
end

function kit.now()
  ensure_open()
  return host.now_ms() // 1000
end

function kit.advance(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("kit.advance takes a number of seconds >= 0", 2)
  end
  ensure_open()
  return host.advance(math.floor(seconds * 1000 + 0.5))
end

function kit.drain()
  ensure_open()
  return host.drain()
end

function kit.query(sql, ...)
  if type(sql) ~= "string" then error("kit.query takes SQL and its values", 2) end
  ensure_open()
  return host.query(sql, ...)
end

-- ---- recorded runs

local function thousands(n)
  local s = tostring(math.tointeger(n) or n)
  local sign, digits = s:match("^(-?)(%d+)$")
  if not digits then return s end
  return sign .. digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
end

local function is_null(v) return v == nil or v == host.null end

-- The run's seed as an integer (the document keeps it as a string).
local function seed_of(run)
  local seed = math.tointeger(tonumber(run.host.seed))
  if not seed then error("the run's host.seed is not an integer", 0) end
  return seed
end

-- Raises unless run looks like a recorded run.
local function check_run(run)
  if type(run) ~= "table" or run.format ~= "tidepool-run/1" then
    error("not a recorded run (format \"tidepool-run/1\"): save GET /admin/{tenant}/runs/{id}", 0)
  end
  if type(run.input) ~= "table" or type(run.host) ~= "table" or type(run.outcome) ~= "table" then
    error("the run has no input, host or outcome", 0)
  end
  if run.input.truncated or run.input.body_truncated then
    error(("run %s cannot be replayed: its input was over %s bytes and was truncated when it "
      .. "was recorded"):format(fmt(run.id), thousands(16384)), 0)
  end
  seed_of(run)
end

local function read_run(path)
  local f, err = io.open(path)
  if not f then error("kit.load_run: " .. err, 0) end
  local text = f:read("a")
  f:close()
  local ok, run = pcall(host.json_decode, text)
  if not ok or type(run) ~= "table" then error("kit.load_run: " .. path .. " is not JSON", 0) end
  local valid, why = pcall(check_run, run)
  if not valid then error("kit.load_run: " .. path .. ": " .. tostring(why), 0) end
  return run
end

function kit.load_run(path)
  if type(path) ~= "string" then error("kit.load_run takes a file path", 2) end
  if path:sub(1, 1) ~= "/" and current_file then
    local dir = current_file:match("^(.*)/[^/]*$")
    if dir then path = dir .. "/" .. path end
  end
  local ok, run = pcall(read_run, path)
  if not ok then error(run, 2) end
  return run
end

local function decode_body(text, headers)
  if (headers["content-type"] or ""):find("json", 1, true) and #text > 0 then
    local value = host.json_decode(text)
    if value ~= nil then return value end
  end
  return text
end

function kit.replay(run)
  local ok, why = pcall(check_run, run)
  if not ok then error("kit.replay: " .. tostring(why), 2) end
  ensure_open()
  host.set_clock(run.host.now_ms)
  host.pin_seed(seed_of(run))
  local res
  if run.kind == "route" then
    local input = run.input
    local area, rest = tostring(input.path):match("^/(%w+)/[^/]*(.*)$")
    if not area then error("kit.replay: the run's input.path is not /v1/{tenant}/...", 2) end
    local target = "/" .. area .. "/test" .. rest
    if not is_null(input.query) and input.query ~= "" then target = target .. "?" .. input.query end
    local h = {}
    for k, v in pairs(input.headers or {}) do
      if k ~= "content-length" then h[k] = v end
    end
    if not is_null(input.user) then h["authorization"] = "Bearer " .. host.token(input.user) end
    if input.auth == "admin" then h["x-api-key"] = host.admin_key end
    local raw = not is_null(input.raw_body) and input.raw_body or nil
    local status, text, response_headers = host.request(input.method, target, h, raw)
    res = { status = status, body = decode_body(text, response_headers), headers = response_headers }
  elseif run.kind == "job" or run.kind == "event" then
    local done, err = host.invoke_task(run.kind, run.plugin, run.name, host.json_encode(run.input))
    res = { ok = done, error = err }
  else
    error("kit.replay: unknown kind " .. fmt(run.kind), 2)
  end
  local last = host.last()
  if last and last.plugin == run.plugin and last.name == run.name then
    res.instructions, res.budget = last.instructions, last.budget
    res.random_draws, res.seed, res.now_ms = last.random_draws, last.seed, last.now_ms
  end
  return res
end

-- An answer's body without what differs on every request: the request id,
-- and the message of an internal error (it quotes that id).
local function comparable(body)
  if type(body) ~= "table" or type(body.error) ~= "table" then return body end
  local copy, err = {}, {}
  for k, v in pairs(body) do copy[k] = v end
  for k, v in pairs(body.error) do err[k] = v end
  err.request_id = nil
  if err.code == "internal_error" then err.message = nil end
  copy.error = err
  return copy
end

local function all_differences(expected, got, path, out, depth)
  if #out >= 12 then return end
  if expected == got then return end
  if type(expected) ~= "table" or type(got) ~= "table" or depth > 64 then
    out[#out + 1] = ("%s: recorded %s, now %s"):format(path, fmt(expected), fmt(got))
    return
  end
  for _, k in ipairs(union_keys(expected, got)) do
    all_differences(expected[k], got[k], path .. path_key(k), out, depth + 1)
  end
end

-- The first line of an error without its file:line, which an edit moves.
local function error_gist(e)
  if type(e) ~= "string" then return e end
  return (e:match("^[^\n]*"):gsub("^[^:]*:%d+: ", ""))
end

run_differences = function(run, res)
  check_run(run)
  if type(res) ~= "table" then return { "the replay returned " .. fmt(res) } end
  local out, o = {}, run.outcome
  if run.kind == "route" then
    if res.status ~= o.status then
      out[#out + 1] = ("status: recorded %s, now %s"):format(fmt(o.status), fmt(res.status))
    end
    -- a body truncated when recorded cannot be compared: the status decides
    if not (type(o.body) == "table" and o.body.truncated == true) then
      all_differences(comparable(o.body), comparable(res.body), "body", out, 0)
    end
  else
    if res.ok ~= o.ok then
      out[#out + 1] = ("ok: recorded %s, now %s"):format(fmt(o.ok), fmt(res.ok))
    end
    if not o.ok and not res.ok and error_gist(o.error) ~= error_gist(res.error) then
      out[#out + 1] = ("error: recorded %s, now %s"):format(fmt(error_gist(o.error)),
        fmt(error_gist(res.error)))
    end
  end
  return out
end

function kit.run_differences(run, res)
  local ok, diffs = pcall(run_differences, run, res)
  if not ok then error("kit.run_differences: " .. tostring(diffs), 2) end
  return diffs
end

-- ---- describe / it

local root = { children = {}, before = {}, after = {} }
local current = root

local function check_block(what, name, fn)
  if running then error(what .. " inside a running test", 3) end
  if type(name) ~= "string" or type(fn) ~= "function" then
    error(what .. "(name, function) expected", 3)
  end
  any_block = true
end

local function describe(name, fn)
  check_block("describe", name, fn)
  local node = { name = name, parent = current, children = {}, before = {}, after = {} }
  current.children[#current.children + 1] = node
  current = node
  local ok, err = pcall(fn)
  current = node.parent
  if not ok then error(err, 0) end
end

local function it(name, fn)
  check_block("it", name, fn)
  current.children[#current.children + 1] = { name = name, parent = current, fn = fn }
end

local function hook(list_name)
  return function(fn)
    if running then error(list_name .. " inside a running test", 2) end
    if type(fn) ~= "function" then error(list_name .. "(function) expected", 2) end
    local list = list_name == "before_each" and current.before or current.after
    list[#list + 1] = fn
  end
end

-- ---- running

-- Keeps failures as they are; gives other errors the test's location.
local function on_error(err)
  local mt = getmetatable(err)
  if mt == Failure or mt == HostError then return err end
  local message = type(err) == "string" and err or fmt(err)
  local info = caller_info()
  local file, rest = message:match("^(.-):%d+: (.*)$")
  if file and (file == SELF_FILE or (file:sub(1, 3) == "..." and SELF_FILE:sub(-(#file - 3)) == file:sub(4))) then
    message = location(info) .. ": " .. rest  -- raised in the kit: the test's line instead
  elseif info and message:sub(1, #info.short_src + 1) == info.short_src .. ":" then
    message = location(info):match("^(.*):%d+$") .. message:sub(#info.short_src + 1)  -- untruncated
  elseif not message:match("^[^\n]-:%d+: ") then
    message = location(info) .. ": " .. message
  end
  return setmetatable({ message = message }, Failure)
end

local function full_name(test)
  local names, node = { test.name }, test.parent
  while node and node.name do
    table.insert(names, 1, node.name)
    node = node.parent
  end
  return table.concat(names, " > ")
end

-- The id of the newest recorded run (0: none, or no host yet).
local function last_run_id()
  if not opened or open_error then return 0 end
  local ok, rows = pcall(host.query, "SELECT coalesce(max(id), 0) AS id FROM _tp_runs")
  return ok and rows[1].id or 0
end

-- What failed inside the host since run id `after`: one text per failed
-- invocation (a route's 5xx, a job or event handler that raised), with the
-- plugin's error and its traceback.
local function failed_runs(after)
  if not opened or open_error then return {} end
  local ok, rows = pcall(host.query, [[SELECT id, plugin, kind, name, doc FROM _tp_runs
    WHERE id > ? AND reason = 'error' ORDER BY id]], after or 0)
  if not ok then return {} end
  local out = {}
  for _, row in ipairs(rows) do
    local doc = host.json_decode(row.doc) or {}
    local outcome = type(doc.outcome) == "table" and doc.outcome or {}
    local what = row.kind == "route" and row.name or ("%s %s"):format(row.kind, row.name)
    local head = ("%s of plugin %s failed%s (recorded run %d):"):format(what, row.plugin,
      math.type(outcome.status) == "integer" and (" with " .. outcome.status) or "", row.id)
    local err = outcome.error
    if err == nil or err == host.null then err = tostring(outcome.code or outcome.limit or "no error text") end
    out[#out + 1] = head .. "\n  " .. tostring(err):gsub("\n", "\n  ")
  end
  return out
end

-- Runs one test with its hooks; returns the first error, or nil.
local function run_test(test)
  local chain, node = {}, test.parent
  while node do
    table.insert(chain, 1, node)
    node = node.parent
  end
  local first
  local function call(fn)
    local ok, err = xpcall(fn, on_error)
    if not ok and not first then first = err end
  end
  for _, level in ipairs(chain) do
    for _, fn in ipairs(level.before) do
      if not first then call(fn) end
    end
  end
  if not first then call(test.fn) end
  for i = #chain, 1, -1 do
    for _, fn in ipairs(chain[i].after) do call(fn) end
  end
  return first
end

local function say(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

local function report_failure(err, runs)
  local text = err.where and (err.where .. ": " .. err.message) or err.message
  say("     " .. text:gsub("\n", "\n     "))
  for _, r in ipairs(runs or {}) do say("     " .. r:gsub("\n", "\n     ")) end
end

local function instructions_text(n, budget, step)
  if type(n) ~= "number" then return "?" end
  local text = ("%s (%.1f %% of %s)"):format(thousands(n), budget > 0 and n * 100 / budget or 0,
    thousands(budget))
  if step and step > 1 then text = text .. ", counted every " .. thousands(step) end
  return text
end

-- `tidepool test DIR --replay FILE`: replays the run in file against the
-- plugin of the binding on a fresh host; prints recorded vs now. Returns the
-- exit status: 0 the same outcome, 1 it differs, 2 it could not replay.
function M.replay_cli(binding, file)
  host = binding
  kit.null = host.null
  local ok, run = pcall(read_run, file)
  if not ok then
    say("ERROR " .. tostring(run))
    return 2
  end
  if run.plugin ~= host.plugin then
    say(("ERROR %s: run %s is of plugin '%s', but the folder holds '%s'"):format(file,
      fmt(run.id), tostring(run.plugin), host.plugin))
    return 2
  end
  local spec = { [run.plugin] = {} }
  for _, name in ipairs(type(run.tenant_plugins) == "table" and run.tenant_plugins or {}) do
    spec[name] = {}
  end
  plugins_spec = spec
  local res
  ok, res = pcall(function()
    ensure_open()
    return kit.replay(run)
  end)
  if not ok then
    say("ERROR " .. file .. ": " .. (type(res) == "table" and res.message or tostring(res)))
    return 2
  end
  local o = run.outcome
  say(("replay of run %s: %s %s %s (version %s, recorded because of %s)"):format(fmt(run.id),
    run.plugin, run.kind, run.name, tostring(run.version), tostring(run.reason)))
  say(("  time %s ms, seed %s"):format(thousands(run.host.now_ms), run.host.seed))
  local rows = {}
  if run.kind == "route" then
    rows[#rows + 1] = { "status", tostring(o.status), tostring(res.status) }
  else
    rows[#rows + 1] = { "ok", tostring(o.ok), tostring(res.ok) }
  end
  local used = run.instructions or {}
  rows[#rows + 1] = { "instructions", instructions_text(used.used, used.budget or 0, used.counted_every),
    instructions_text(res.instructions, res.budget or 0) }
  rows[#rows + 1] = { "random draws", tostring(run.host.random_draws), tostring(res.random_draws) }
  say(("  %-13s %-50s %s"):format("", "recorded", "now"))
  for _, r in ipairs(rows) do say(("  %-13s %-50s %s"):format(r[1], r[2], r[3])) end
  local diffs = run_differences(run, res)
  if #diffs == 0 then
    say("same outcome")
    return 0
  end
  say("the outcome differs:")
  for _, d in ipairs(diffs) do say("  " .. d) end
  return 1
end

-- Runs the test file at path (as shown). Returns passed, failed, and
-- whether the file could not run.
function M.run(binding, path)
  host = binding
  current_file = path
  kit.null = host.null
  local chunk, err = loadfile(path, "t")
  if not chunk then
    say("ERROR " .. err)
    return 0, 0, true
  end
  _G.kit, _G.expect = kit, expect
  _G.describe, _G.it = describe, it
  _G.before_each, _G.after_each = hook("before_each"), hook("after_each")
  local ok, load_err = xpcall(chunk, on_error)
  collecting = false
  if ok and not any_block then
    say("ERROR " .. path .. ": no tests (describe/it) in the file")
    return 0, 0, true
  end
  if ok then ok, load_err = pcall(ensure_open) end
  if not ok then
    if getmetatable(load_err) == HostError then
      say("ERROR " .. path .. ": " .. load_err.message)
    elseif type(load_err) ~= "table" then
      say("ERROR " .. path .. ": " .. tostring(load_err))
    else
      local text = load_err.where and (load_err.where .. ": " .. load_err.message) or load_err.message
      say("ERROR " .. text)
    end
    return 0, 0, true
  end
  local passed, failed = 0, 0
  local function walk(node)
    for _, child in ipairs(node.children) do
      if child.fn then
        running = true
        local before = last_run_id()
        local test_err = run_test(child)
        running = false
        if test_err and getmetatable(test_err) == HostError then
          say("ERROR " .. path .. ": " .. test_err.message)
          return false
        end
        if test_err then
          failed = failed + 1
          say("FAIL " .. full_name(child))
          report_failure(test_err, failed_runs(before))
        else
          passed = passed + 1
          say("ok   " .. full_name(child))
        end
      elseif walk(child) == false then
        return false
      end
    end
  end
  local broken = walk(root) == false
  return passed, failed, broken
end

return M
