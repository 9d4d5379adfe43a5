---@diagnostic disable: undefined-global
-- stall: routes that make C work for a long time with few Lua instructions,
-- each after a write that must be rolled back (tests/e2e/test_stall.py).
-- Every case is ended by the instruction budget (the sandbox charges the C
-- work) or, where nothing is counted, by the wall-clock deadline.

local function note(text)
  tp.db.exec("INSERT INTO stall_notes (note) VALUES (?)", text)
end

local PATTERNS = { [1] = ".-b", [2] = ".-.-b", [3] = ".-.-.-b" }

-- the subject has no "b": every start position backtracks to the end
local function pattern(q)
  local n, k, fn = tonumber(q.n) or 10000, tonumber(q.k) or 1, q.fn or "find"
  local s, p = string.rep("a", n), PATTERNS[k]
  if fn == "find" then return { r = tostring(s:find(p)) } end
  if fn == "match" then return { r = tostring(s:match("(" .. p .. ")")) } end
  if fn == "gsub" then return { r = select(2, s:gsub(p, "x")) } end
  local c = 0
  for _ in s:gmatch(p) do c = c + 1 end
  return { r = c }
end

local function spin_compare()
  -- two equal 1 MiB strings that are different objects: each == compares
  -- every byte inside one instruction, where no count can see it
  local a = string.rep("a", 1 << 20)
  local b = string.rep("a", (1 << 20) - 1) .. "a"
  local same = 0
  for _ = 1, 1e12 do if a == b then same = same + 1 end end
  return { same = same }
end

local function shared_tree()
  local t = {}
  for _ = 1, 40 do t = { t, t } end
  return t
end

local CASES = {
  pattern = pattern,
  ok = function() return {} end,
  -- a write of about 20 million SQL steps (over the budget) that is done in a
  -- moment: it must end the plugin after it, not interrupt it (an interrupted
  -- write rolls back every request of the batch)
  write_over = function()
    tp.db.exec([[UPDATE stall_rows SET v = v + (SELECT count(*) FROM stall_rows b
      WHERE b.id <> stall_rows.id)]])   -- correlated: run for each of the 2,000 rows
    return {}
  end,
  join = function()
    return tp.db.one("SELECT count(*) AS n FROM stall_rows a, stall_rows b, stall_rows c")
  end,
  -- a 1 MB subject and a 10 KB pattern: n x m compares inside one SQLite step
  sql_fn = function(q)
    local S, P = "printf('%.*c', 1000000, 'a')", "printf('%.*c', 10000, 'a')"
    local sql = ({
      like = S .. " LIKE '%' || " .. P .. " || 'b'",
      glob = S .. " GLOB '*' || " .. P .. " || 'b'",
      instr = "instr(" .. S .. ", " .. P .. " || 'b')",
      replace = "length(replace(" .. S .. ", " .. P .. " || 'b', 'x'))",
      trim = "length(trim(" .. S .. ", printf('%.*c', 10000, 'b') || 'a'))",
    })[q.fn]
    return tp.db.one("SELECT " .. sql .. " AS r")
  end,
  -- the same functions on ordinary input give SQLite's own answers and errors
  sql_ok = function()
    local r = tp.db.one([[SELECT 'Longjing' LIKE 'long%' AS l, 'Longjing' GLOB 'Long*' AS g,
      'a_c' LIKE 'a!_c' ESCAPE '!' AS e, instr('white tea', 'tea') AS i,
      replace('green tea', 'green', 'black') AS r, trim('xxteaxx', 'x') AS t,
      ltrim('  tea') AS lt, rtrim('tea!!', '!') AS rt]])
    local ok, err = pcall(tp.db.one, "SELECT 'a' LIKE 'a' ESCAPE 'xy' AS bad")
    r.escape_error = tostring(err)
    return r
  end,
  cte = function()
    return tp.db.one("WITH RECURSIVE stall_c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM stall_c) " ..
                     "SELECT count(*) AS n FROM stall_c")
  end,
  concat = function()
    local t = {}
    for i = 1, 20000 do t[i] = "item" end
    local n = 0
    for _ = 1, 1e9 do n = n + #table.concat(t, ",") end
    return { n = n }
  end,
  rep = function()
    local n = 0
    for _ = 1, 1e9 do n = n + #string.rep("x", 1 << 20) end
    return { n = n }
  end,
  sort = function()
    local t = {}
    for i = 1, 50000 do t[i] = (i * 7919) % 50000 end
    for _ = 1, 1e9 do table.sort(t) end
    return { sorted = true }
  end,
  format = function()
    local big = string.rep("y", 1 << 20)
    local n = 0
    for _ = 1, 1e9 do n = n + #string.format("%s%s", big, big) end
    return { n = n }
  end,
  utf8 = function()
    local big = string.rep("\u{4E2D}", 1 << 19)
    local n = 0
    for _ = 1, 1e9 do n = n + utf8.len(big) end
    return { n = n }
  end,
  upper = function()
    local big = string.rep("z", 1 << 20)
    local n = 0
    for _ = 1, 1e9 do n = n + #big:upper() end
    return { n = n }
  end,
  json = function()
    local t = {}
    for i = 1, 20000 do t[i] = { id = i, name = "item" } end
    local n = 0
    for _ = 1, 1e9 do n = n + #tp.json.encode(t) end
    return { n = n }
  end,
  crypto = function()
    local big = string.rep("k", 1 << 20)
    local n = 0
    for _ = 1, 1e9 do n = n + #tp.crypto.sha256(big) end
    return { n = n }
  end,
  compare = spin_compare,
  -- a table shared 2^40 times over: its JSON, 32 MiB at most, is written by one
  -- C call, as the answer, as an error's details, or by tp.json.encode (caught);
  -- the deadline stops the writing (tpj_set_interrupt)
  shared_answer = function() return shared_tree() end,
  shared_details = function() tp.fail(400, "bad", "details", shared_tree()) end,
  shared_encode = function()
    local ok, err = pcall(tp.json.encode, shared_tree())
    return { caught = not ok, err = tostring(err) }
  end,
  compare_coroutine = function()
    local co = coroutine.wrap(spin_compare)
    local ok, r = pcall(co)
    return { swallowed = not ok, r = tostring(r) }
  end,
  -- a kill the plugin catches, then works on: it must not get away with it
  pcall_join = function()
    local ok = pcall(tp.db.one, "SELECT count(*) AS n FROM stall_rows a, stall_rows b, stall_rows c")
    return { caught = not ok }
  end,
  pcall_pattern = function()
    local ok = pcall(string.find, string.rep("a", 100000), ".-.-b")
    return { caught = not ok }
  end,
  -- tp.call results bigger than this plugin's memory cap
  call_big = function(q)
    local s = tp.call("stallcallee", "big", tonumber(q.n))
    return { len = #s }
  end,
  -- a callee stopped by its budget is not called again before its state is fresh
  call_twice = function()
    local _, first = pcall(tp.call, "stallcallee", "spin")
    local _, second = pcall(tp.call, "stallcallee", "hello")
    return { first = tostring(first), second = tostring(second) }
  end,
  call_hello = function() return { said = tp.call("stallcallee", "hello") } end,
  -- a JSON view's lookups read its text, and are charged by what they read
  view_index = function()
    local v, n = tp.call_view("stallcallee", "wide", 2000), 0
    for _ = 1, 1e9 do n = n + (v.absent and 1 or 0) end  -- read to the end each time
    return { n = n }
  end,
  view_len = function()
    local v, n = tp.call_view("stallcallee", "long", 5000), 0
    for _ = 1, 1e9 do n = n + #v end
    return { n = n }
  end,
  view_pairs = function()
    local v, n = tp.call_view("stallcallee", "wide", 2000), 0
    for _ = 1, 1e9 do n = n + (next({ pairs(v) }) and 1 or 0) end
    return { n = n }
  end,
  view_tostring = function()
    local v, n = tp.call_view("stallcallee", "wide", 2000), 0
    for _ = 1, 1e9 do n = n + #tostring(v) end
    return { n = n }
  end,
  view_decode = function()
    local v, n = tp.call_view("stallcallee", "wide", 2000), 0
    for _ = 1, 1e9 do n = n + (tp.json.decode(v) and 1 or 0) end
    return { n = n }
  end,
  -- a view bigger than this plugin's memory cap
  view_big = function(q)
    local v = tp.call_view("stallcallee", "big_table", tonumber(q.n))
    return { len = #v.s }
  end,
  -- a tp.fail whose details do not fit under this plugin's cap, caught here
  call_fail_big = function(q)
    local ok = pcall(tp.call, "stallcallee", "fail_big", tonumber(q.n))
    return { caught = not ok }
  end,
  -- tp.call arguments bigger than the callee's memory cap: refused before the
  -- copy (16 references to one string here are 16 strings there)
  call_send = function(q)
    local s, t = string.rep("s", tonumber(q.n) // 16), {}
    for i = 1, 16 do t[i] = s end
    local ok, err = pcall(tp.call, "stallcallee", "take", t)
    return { ok = ok, err = tostring(err) }
  end,
}

-- module state that a killed invocation must not leave behind
local leaked = 0
local hoard = {}

local KILLS = {
  budget = function() while true do end end,
  memory = function()  -- doubling with .., which costs one instruction a step
    local s = "h"
    while true do
      s = s .. s
      hoard[#hoard + 1] = s
    end
  end,
  deadline = spin_compare,
}

return {
  name = "stall",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE stall_notes (id INTEGER PRIMARY KEY, note TEXT NOT NULL)",
    [[CREATE TABLE stall_rows (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)]],
    [[INSERT INTO stall_rows (id, v) WITH RECURSIVE c(x) AS
        (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) SELECT x, x * 7 FROM c]],
  },
  routes = {
    { method = "POST", path = "/stall/run/{case}", auth = "none",
      handler = function(req)
        local f = CASES[req.params.case]
        if not f then tp.fail(404, "no_such_case", "unknown case " .. req.params.case) end
        note("before " .. req.params.case)
        return 200, f(req.query)
      end },
    { method = "GET", path = "/stall/notes", auth = "none",
      handler = function()
        return 200, { count = tp.db.one("SELECT count(*) AS n FROM stall_notes").n }
      end },
    { method = "POST", path = "/stall/leak", auth = "none",
      handler = function(req)
        leaked = leaked + 1
        local kill = KILLS[req.query.kill or ""]
        if kill then kill() end
        return 200, { leaked = leaked, hoard = #hoard }
      end },
  },
}
