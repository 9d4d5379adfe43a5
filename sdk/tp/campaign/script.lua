---@diagnostic disable: undefined-global
-- tp.campaign.script: runs an operator's campaign script and checks what it
-- declares, so that every mistake is reported as file:line: message before
-- anything goes live.
--
-- Every mistake, in one run: a check that finds one records it (r.report, or
-- r.fail, which also stops the check it is in: one setting, one item's id,
-- one hook) and goes on with the next. A construct that was reported
-- evaluates to BROKEN (an unknown name, yuan "9.999", a mechanic given no
-- table), which absorbs what the script does with it, so the script runs on
-- to its end; an item holding BROKEN, or with a problem of its own, is
-- marked broken and never handed to its mechanic (which would only complain
-- again about the same thing). Only a syntax error, an error raised by the
-- script's own code or a script that returns no campaign stops the reading
-- (c.fatal): nothing after it can be known.
--
-- The script runs in an environment of its own: the mechanics (flash_sale,
-- group_buy, bargain, coupons, coupon_drop, and mechanic "name" for any other
-- plugin that takes part in campaigns), segment "name" { rule } (a segment of
-- the members plugin, saved when the campaign loads), yuan "9.90", campaign
-- { ... }, tp and require for the hooks, and the plain Lua it needs (string,
-- table, math without random, pairs, ...). A name outside it is refused with
-- the line and the closest known name.
--
-- What the mechanics say about their settings comes later, when the campaign's
-- setup hands them over (runtime.lua); line_of() points their complaints at
-- the field's line too.

local check = require("tp.check")
local suggest = require("tp.suggest")
local when = require("tp.when")

local script = {}

---The built-in mechanics: the plugin that runs each and the settings that
---hold its window (which the script writes as starts/ends in local time).
local KINDS = {
  flash_sale = { plugin = "flash_sale", window = { "starts_at", "ends_at" } },
  group_buy = { plugin = "group_buy", window = { "starts_at", "ends_at" } },
  bargain = { plugin = "bargain", window = { "starts_at", "ends_at" } },
  coupons = { plugin = "coupons", window = { "claim_starts_at", "claim_ends_at" } },
}

---Events the built-in plugins emit: a hook on a name one typo away is refused.
script.KNOWN_EVENTS = { "order.created", "order.paid", "order.cancelled", "order.refunded",
  "order.completed", "group.opened", "group.formed", "group.failed", "bargain.started",
  "bargain.floor_reached", "bargain.closed", "bargain.expired", "friend_assist.completed",
  "friend_assist.expired", "group_chain.closed", "referral.withdrawal_approved",
  "campaign.started", "campaign.ended" }

local CAMPAIGN_KEYS = { "title", "description", "starts", "ends", "on" }
local DROP_KEYS = { "id", "at", "users", "segment", "coupon" }
local MAX_DROP_USERS = check.MAX_ISSUE_USERS  -- what coupons' issue takes at once
local SEGMENT_NAME = "^[%w_%-]+$"             -- the members plugin's names (1-64 bytes)

local STOP = setmetatable({}, { __tostring = function() return "a campaign check stopped" end })
---What a reported construct evaluates to: calling, indexing or combining it
---gives BROKEN again, so the script runs on without a second complaint.
---(The sandbox's setmetatable attaches a copy: the metatable is whole first.)
local BROKEN
local BROKEN_MT = { __tostring = function() return "(a mistake reported above)" end,
                    __lt = function() return false end, __le = function() return false end }
for _, event in ipairs({ "__call", "__index", "__add", "__sub", "__mul", "__div", "__mod", "__unm",
  "__idiv", "__concat", "__len" }) do
  BROKEN_MT[event] = function() return BROKEN end
end
BROKEN = setmetatable({}, BROKEN_MT)

---True if v is BROKEN or a table holding it (to a few levels).
local function holds_broken(v, depth)
  if v == BROKEN then return true end
  if type(v) ~= "table" or getmetatable(v) ~= nil or (depth or 0) > 4 then return false end
  for k, x in pairs(v) do
    if holds_broken(k, (depth or 0) + 1) or holds_broken(x, (depth or 0) + 1) then return true end
  end
  return false
end

local ITEM = {}      -- metatable of what a mechanic constructor returns
local CAMPAIGN = {}  -- metatable of what campaign { ... } returns
local SEGMENT = {}   -- metatable of what segment "name" { ... } returns

---True if v names a segment as the members plugin spells names.
local function segment_name(v)
  return type(v) == "string" and #v <= 64 and v:match(SEGMENT_NAME) ~= nil
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function split_lines(source)
  local lines = {}
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  return lines
end

---A reader for one script: its source lines, the error helper and the line finder.
---@param source string
---@param chunkname string "@path"
---@param where fun(): integer? the script's line being run now
local function reader(source, chunkname, where)
  local r = { file = chunkname:gsub("^@", ""), lines = split_lines(source), where = where,
              segments = {}, problems = {} }

  ---Records "file:line: message" (once: a loop in the script repeats nothing).
  function r.report(line, fmt, ...)
    local text = ("%s:%s: %s"):format(r.file, line or "?", fmt:format(...))
    for _, p in ipairs(r.problems) do
      if p.text == text then return end
    end
    r.problems[#r.problems + 1] = { line = math.type(line) == "integer" and line or 0, text = text,
                                    seq = #r.problems + 1 }
  end

  ---Records "file:line: message" and stops the check it is in (see r.try).
  function r.fail(line, fmt, ...)
    r.report(line, fmt, ...)
    error(STOP, 0)
  end

  ---Runs fn(...) as one check: true if it found nothing, false if it stopped
  ---at a problem it recorded. Any other error is a fault and goes on up.
  function r.try(fn, ...)
    local ok, err = pcall(fn, ...)
    if ok or err == STOP then return ok end
    error(err, 0)
  end

  ---How many problems are recorded so far.
  function r.count() return #r.problems end

  ---The first line matching a Lua pattern, or nil.
  function r.find_line(pattern)
    for i, text in ipairs(r.lines) do
      if text:find(pattern) then return i end
    end
  end

  ---The first line in [from, to] that sets key (key = ... or ["key"] = ...),
  ---or from when there is none (a key built by code).
  function r.line_of(from, to, key)
    local plain = "%f[%w_]" .. key:gsub("%p", "%%%0") .. "%s*=[^=]"
    local quoted = "%[%s*[\"']" .. key:gsub("%p", "%%%0") .. "[\"']%s*%]%s*="
    for i = from, math.min(to, #r.lines) do
      local text = r.lines[i] .. " "
      if text:find(plain) or text:find(quoted) then return i end
    end
    return from
  end
  return r
end

---yuan "9.90" (or yuan(20)) as integer fen, exactly: no float ever touches it.
local function yuan_of(r, v)
  local line = r.where()
  if math.type(v) == "integer" and v >= 0 and v <= 100000000 then return v * 100 end
  local whole, frac
  if type(v) == "string" then whole, frac = v:match("^(%d%d?%d?%d?%d?%d?%d?%d?%d?)%.?(%d?%d?)$") end
  if not whole or (v:find(".", 1, true) and frac == "") then
    if v ~= BROKEN then
      r.report(line, "yuan %s: write an amount like \"9.90\" or \"20\" (at most 2 decimals, no sign or comma)",
        type(v) == "string" and ("%q"):format(v) or tostring(v))
    end
    return BROKEN
  end
  return tonumber(whole) * 100 + tonumber((frac .. "00"):sub(1, 2))
end

---The environment the script runs in.
local function environment(r)
  local env = {
    tp = tp, require = require,  -- for hooks; tp's own context checks keep load-time code honest
    string = string, table = table, pairs = pairs, ipairs = ipairs, tostring = tostring,
    tonumber = tonumber, type = type, select = select, error = error, assert = assert,
    math = { floor = math.floor, ceil = math.ceil, max = math.max, min = math.min, abs = math.abs,
             type = math.type, tointeger = math.tointeger, huge = math.huge, maxinteger = math.maxinteger },
  }
  local function item(kind, spec)
    return function(settings)
      local line = r.where()
      if type(settings) ~= "table" or settings == BROKEN then
        r.report(line, "%s takes a table of settings: %s { ... }", kind, kind)
        return BROKEN
      end
      return setmetatable({ kind = kind, plugin = spec.plugin, window = spec.window,
                            settings = settings, line = line }, ITEM)
    end
  end
  for kind, spec in pairs(KINDS) do env[kind] = item(kind, spec) end
  env.coupon_drop = item("coupon_drop", { plugin = "coupons" })
  env.mechanic = function(plugin)
    if type(plugin) ~= "string" or not plugin:match("^[a-z][a-z0-9_]*$") then
      r.report(r.where(), "mechanic takes a plugin name: mechanic \"friend_assist\" { ... }")
      return BROKEN
    end
    return item(plugin, { plugin = plugin, window = { "starts_at", "ends_at" } })
  end
  -- segment "sleeping_vips" { all = { {field = "days_since_last_paid", op = "gte", value = 90},
  -- {tag = "vip"} } }: the members plugin's JSON rule as a Lua table, saved when the
  -- campaign loads; a coupon_drop names it (segment = "sleeping_vips", or the value)
  env.segment = function(seg_name)
    local line = r.where()
    if not segment_name(seg_name) then
      r.report(line, "segment takes a name of 1-64 letters, digits, _ and -: segment \"sleeping_vips\" { rule }")
      return BROKEN
    end
    return function(rule)
      if type(rule) ~= "table" or getmetatable(rule) ~= nil then
        r.report(line, "segment \"%s\" takes its rule as a table: segment \"%s\" { all = { ... } }", seg_name, seg_name)
        return BROKEN
      end
      for _, s in ipairs(r.segments) do
        if s.name == seg_name then
          r.report(line, "segment \"%s\" is declared twice (first on line %d)", seg_name, s.line)
          return BROKEN
        end
      end
      local s = setmetatable({ name = seg_name, rule = rule, line = line }, SEGMENT)
      r.segments[#r.segments + 1] = s
      return s
    end
  end
  env.yuan = function(v) return yuan_of(r, v) end
  env.campaign = function(t)
    -- `return campaign { ... }` is a tail call: the script's frame is gone
    local line = r.where() or r.find_line("%f[%w_]campaign%s*[{(]") or 1
    if type(t) ~= "table" or t == BROKEN then
      r.report(line, "campaign takes a table: campaign { title = ..., ... }")
      return BROKEN
    end
    return setmetatable({ decl = t, line = line }, CAMPAIGN)
  end
  local known = sorted_keys(env)
  local assigned = {}  -- globals the script set, reported once and kept so it runs on
  return setmetatable(env, {
    __index = function(_, k)
      if assigned[k] ~= nil then return assigned[k] end
      r.report(r.where(), "unknown name '%s'%s", tostring(k), suggest.hint(tostring(k), known))
      return BROKEN
    end,
    __newindex = function(_, k, v)
      r.report(r.where(), "a campaign script cannot set the global '%s' (use local)", tostring(k))
      assigned[k] = v == nil and BROKEN or v
    end,
  })
end

-- ---- checking what was declared

local function time_field(r, line, value, what)
  local at, why = when.parse(value)
  if not at then
    if value == BROKEN then error(STOP, 0) end
    r.fail(line, "%s %s", what, why)
  end
  return at
end

---The mechanic's settings as its plugin takes them: local times of *_at,
---*_from and *_until fields as epoch seconds, its window from starts/ends.
---Each setting is its own check; a problem marks the item broken.
local function settings_of(r, c, it, from, to)
  local s = {}
  for _, k in ipairs(sorted_keys(it.settings)) do
    r.try(function()
      local v = it.settings[k]
      local line = type(k) == "string" and r.line_of(from, to, k) or it.line
      if type(k) ~= "string" then
        r.fail(line, "%s '%s': settings are named (key = value)", it.kind, it.id)
      elseif it.window and (k == it.window[1] or k == it.window[2]) then
        r.fail(line, "%s '%s': write the window as starts/ends in local time, not %s", it.kind, it.id, k)
      elseif k ~= "id" and k ~= "starts" and k ~= "ends" then
        if type(v) == "string" and (k:match("_at$") or k:match("_from$") or k:match("_until$")) then
          v = time_field(r, line, v, ("%s '%s': %s"):format(it.kind, it.id, k))
        end
        s[k] = v
      end
    end)
  end
  if it.window then
    local starts, ends
    local function side(key, default)
      local at
      if it.settings[key] == nil then return default end
      r.try(function()
        at = time_field(r, r.line_of(from, to, key), it.settings[key], ("%s '%s': %s"):format(it.kind, it.id, key))
      end)
      return at
    end
    starts, ends = side("starts", c.starts_at), side("ends", c.ends_at)
    if not starts or not ends then
      it.broken = true  -- no window to hand over (reported, or the campaign's own is wrong)
      return s
    end
    r.try(function()
      if c.starts_at and c.ends_at and (starts < c.starts_at or ends > c.ends_at) then
        r.fail(r.line_of(from, to, starts < c.starts_at and "starts" or "ends"),
          "%s '%s': its window %s - %s is outside the campaign's %s - %s", it.kind, it.id, when.format(starts),
          when.format(ends), when.format(c.starts_at), when.format(c.ends_at))
      end
      if ends <= starts then r.fail(r.line_of(from, to, "ends"), "%s '%s': ends must be after starts", it.kind, it.id) end
    end)
    s[it.window[1]], s[it.window[2]] = starts, ends
  end
  return s
end

---A coupon drop: a coupon template (settings) and when, and to whom, it is
---issued. Its keys, its time, its audience and its coupon are checked apart.
local function check_drop(r, c, it, from, to)
  for _, k in ipairs(sorted_keys(it.settings)) do
    local known = false
    for _, d in ipairs(DROP_KEYS) do known = known or d == k end
    if not known then
      r.report(type(k) == "string" and r.line_of(from, to, k) or it.line, "coupon_drop '%s': unknown key '%s'%s",
        it.id, tostring(k), suggest.hint(tostring(k), DROP_KEYS))
    end
  end
  local d = it.settings
  r.try(function()
    it.at = time_field(r, r.line_of(from, to, "at"), d.at, ("coupon_drop '%s': at"):format(it.id))
    if c.starts_at and c.ends_at and (it.at < c.starts_at or it.at > c.ends_at) then
      r.fail(r.line_of(from, to, "at"), "coupon_drop '%s': at %s is outside the campaign's %s - %s", it.id,
        when.format(it.at), when.format(c.starts_at), when.format(c.ends_at))
    end
  end)
  -- to whom: a list of users, or every member of a segment; never both
  r.try(function()
    if d.users ~= nil and d.segment ~= nil then
      r.fail(r.line_of(from, to, "segment"), "coupon_drop '%s': give users or segment, not both (a drop "
        .. "goes to the users listed or to every member of a segment)", it.id)
    elseif d.users == nil and d.segment == nil then
      r.fail(it.line, "coupon_drop '%s': say who gets it: users = { \"ann\", ... } (1-%d user ids) or "
        .. "segment = \"name\" (every member of a segment of the members plugin)", it.id, MAX_DROP_USERS)
    elseif d.segment ~= nil then
      local seg = getmetatable(d.segment) == SEGMENT and d.segment.name or d.segment
      if seg == BROKEN then error(STOP, 0) end
      if not segment_name(seg) then
        r.fail(r.line_of(from, to, "segment"), "coupon_drop '%s': segment must be a segment's name (1-64 "
          .. "letters, digits, _ and -) or a segment \"name\" { ... } of this script", it.id)
      end
      it.segment = seg
    else
      local users_line = r.line_of(from, to, "users")
      if not check.is_list(d.users) or #d.users == 0 or #d.users > MAX_DROP_USERS then
        r.fail(users_line, "coupon_drop '%s': users must be a list of 1-%d user ids", it.id, MAX_DROP_USERS)
      end
      local seen = {}
      for i, u in ipairs(d.users) do
        if not check.is_user_id(u) then
          r.fail(users_line, "coupon_drop '%s': users[%d] is not a user id (1-64 of A-Z a-z 0-9 _ - : @)", it.id, i)
        end
        if seen[u] then r.fail(users_line, "coupon_drop '%s': user %s is listed twice", it.id, u) end
        seen[u] = true
      end
      it.users = d.users
    end
  end)
  if type(d.coupon) ~= "table" or d.coupon == BROKEN then
    if d.coupon ~= BROKEN then
      r.report(r.line_of(from, to, "coupon"), "coupon_drop '%s': coupon must be the coupon's settings "
        .. "{ name = ..., kind = ..., ... }", it.id)
    end
    it.broken = true
    it.settings = {}
    it.settings_of = function() return {} end
    return
  end
  -- a drop's coupon is given, never claimed: nobody else may list or claim it
  if d.coupon.audience ~= nil and d.coupon.audience ~= "issue_only" then
    r.report(r.line_of(from, to, "audience"), "coupon_drop '%s': a drop's coupon is issue-only "
      .. "(audience = \"issue_only\"); leave audience out", it.id)
  end
  it.settings = d.coupon
  it.settings_of = function()
    local s = settings_of(r, c, it, from, to)
    s.audience = "issue_only"
    return s
  end
end

local function check_items(r, c, decl, last_line)
  local items, ids, per_kind = {}, {}, {}
  for i, it in ipairs(decl) do
    if getmetatable(it) == SEGMENT or it == BROKEN then
      -- a declaration, kept by the reader (r.segments) wherever it is written;
      -- or a construct already reported
    elseif getmetatable(it) ~= ITEM then
      r.report(c.line, "entry %d of the campaign is not a mechanic (flash_sale { ... }, coupon_drop { ... }, ...)", i)
    else
      items[#items + 1] = it
    end
  end
  -- an item's fields sit between its line and the next item's
  local starts = {}
  for _, it in ipairs(items) do starts[#starts + 1] = it.line end
  table.sort(starts)
  for _, it in ipairs(items) do
    local before = r.count()
    per_kind[it.kind] = (per_kind[it.kind] or 0) + 1
    local to = last_line
    for _, l in ipairs(starts) do
      if l > it.line then to = l - 1; break end
    end
    local id = it.settings.id
    it.id = ("%s-%d"):format(it.kind, per_kind[it.kind])
    r.try(function()
      if id ~= nil and (type(id) ~= "string" or not id:match("^[a-z0-9_%-]+$") or #id > 40) then
        r.fail(r.line_of(it.line, to, "id"), "%s: id must be 1-40 of a-z 0-9 _ -", it.kind)
      end
      it.id = id or it.id
      if ids[it.id] then r.fail(it.line, "%s: a second item with id '%s' (ids name items across edits)", it.kind, it.id) end
    end)
    ids[it.id] = true
    it.ref = ("%s/%s"):format(c.name, it.id)
    it.from, it.to = it.line, to
    if it.kind == "coupon_drop" then
      check_drop(r, c, it, it.line, to)
      it.settings = it.settings_of()
    else
      it.settings = settings_of(r, c, it, it.line, to)
    end
    if r.count() > before or holds_broken(it.settings) then it.broken = true end
  end
  return items
end

local function check_hooks(r, c, on)
  local hooks = {}
  if on == nil then return hooks end
  local line = r.line_of(c.line, #r.lines, "on")
  if type(on) ~= "table" or on == BROKEN then
    if on ~= BROKEN then r.report(line, "on must be a table of event name = function(data, campaign) ... end") end
    return hooks
  end
  for _, name in ipairs(sorted_keys(on)) do
    r.try(function()
      local at = type(name) == "string" and r.line_of(line, #r.lines, name) or line
      if type(name) ~= "string" or not name:match("^[a-z0-9_]+%.[a-z0-9_.%-]+$") then
        r.fail(at, "on: '%s' is not an event name like \"order.paid\"", tostring(name))
      end
      local known = false
      for _, e in ipairs(script.KNOWN_EVENTS) do known = known or e == name end
      local typo = not known and suggest.closest(name, script.KNOWN_EVENTS)
      if typo then r.fail(at, "on: no plugin emits '%s' (did you mean '%s'?)", name, typo) end
      if type(on[name]) ~= "function" then
        r.fail(at, "on[\"%s\"] must be a function(data, campaign) ... end", name)
      end
      hooks[name] = on[name]
    end)
  end
  return hooks
end

---Every problem recorded, in the order of their lines, one per line of text
---(at most max of them, default 15, then how many more); nil when there is none.
---@param r table the reader (c.r)
---@param max integer?
---@return string|nil
function script.problems_text(r, max)
  if #r.problems == 0 then return nil end
  local sorted = {}
  for i, p in ipairs(r.problems) do sorted[i] = p end
  table.sort(sorted, function(a, b)
    if a.line ~= b.line then return a.line < b.line end
    return a.seq < b.seq
  end)
  max = max or 15  -- what a slot's last_error (4 KiB) holds whole
  local out = {}
  for i = 1, math.min(#sorted, max) do out[i] = sorted[i].text end
  if #sorted > max then out[#out + 1] = ("%s: ... and %d more"):format(r.file, #sorted - max) end
  return table.concat(out, "\n")
end

---Lua shortens a long chunk name in its messages to "..." and the name's
---end (LUA_IDSIZE, 60 bytes): the script's whole path is put back, so that an
---operator's file:line names the file wherever it lies.
---@param r table the script's reader
---@param msg string
---@return string
local function whole_path(r, msg)
  local tail, rest = msg:match("^%.%.%.(.-)(:%d+:.*)$")
  if tail and #tail > 0 and r.file:sub(-#tail) == tail then return r.file .. rest end
  return msg
end

---Runs the script and checks it. Returns the campaign: name, title,
---description, starts_at, ends_at, items (kind, plugin, id, ref, settings,
---line, from, to, broken; a coupon drop also at, and users or segment),
---segments (the script's segment "name" { rule } declarations: name, rule,
---line, in order), hooks (event -> function), the reader r (r.report,
---r.line_of for the mechanics' complaints, r.problems: every mistake found
---so far) and fatal (true when the script could not be read to its end or
---returned no campaign: the other fields may be missing).
---@param source string
---@param chunkname string
---@param name string
---@param where fun(): integer?
function script.read(source, chunkname, name, where)
  local r = reader(source, chunkname, where)
  local c = { name = name, r = r, items = {}, segments = r.segments, hooks = {} }
  local chunk, err = load(source, chunkname, "t", environment(r))
  if not chunk then
    local msg = whole_path(r, tostring(err))
    r.problems[#r.problems + 1] = { line = tonumber(msg:match(":(%d+):")) or 0, text = msg, seq = #r.problems + 1 }
    c.fatal = true
    return c
  end
  local ok, result = pcall(chunk)
  if not ok then
    local msg = whole_path(r, (tostring(result):gsub("\nstack traceback:.*$", "")))
    if not msg:find("^" .. r.file:gsub("%p", "%%%0") .. ":") then msg = ("%s:?: %s"):format(r.file, msg) end
    r.problems[#r.problems + 1] = { line = tonumber(msg:match(":(%d+):")) or 0, text = msg, seq = #r.problems + 1 }
    c.fatal = true
    return c
  end
  if getmetatable(result) ~= CAMPAIGN then
    if result ~= BROKEN then r.report(#r.lines, "the script must end with: return campaign { ... }") end
    c.fatal = true
    return c
  end
  local decl = result.decl
  c.line = result.line
  for _, k in ipairs(sorted_keys(decl)) do
    if math.type(k) ~= "integer" then
      local known = false
      for _, ck in ipairs(CAMPAIGN_KEYS) do known = known or ck == k end
      if not known then
        r.report(type(k) == "string" and r.line_of(c.line, #r.lines, k) or c.line, "campaign: unknown key '%s'%s",
          tostring(k), suggest.hint(tostring(k), CAMPAIGN_KEYS))
      end
    end
  end
  if type(decl.title) ~= "string" or #decl.title < 1 or #decl.title > 100 then
    if decl.title ~= BROKEN then
      r.report(r.line_of(c.line, #r.lines, "title"), "campaign: title must be a text of 1-100 bytes")
    end
  else
    c.title = decl.title
  end
  if decl.description ~= nil and (type(decl.description) ~= "string" or #decl.description > 1000) then
    if decl.description ~= BROKEN then
      r.report(r.line_of(c.line, #r.lines, "description"), "campaign: description must be a text of at most 1000 bytes")
    end
  else
    c.description = decl.description
  end
  r.try(function()
    c.starts_at = time_field(r, r.line_of(c.line, #r.lines, "starts"), decl.starts, "campaign: starts")
  end)
  r.try(function()
    c.ends_at = time_field(r, r.line_of(c.line, #r.lines, "ends"), decl.ends, "campaign: ends")
  end)
  if c.starts_at and c.ends_at and c.ends_at <= c.starts_at then
    r.report(r.line_of(c.line, #r.lines, "ends"), "campaign: ends must be after starts")
    c.ends_at = nil  -- no window to hold the items to
  end
  c.items = check_items(r, c, decl, #r.lines)
  c.hooks = check_hooks(r, c, decl.on)
  return c
end

return script
