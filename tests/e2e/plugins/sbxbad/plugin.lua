---@diagnostic disable: undefined-global
-- sbxbad: routes that break the sandbox's rules or its limits, each after a
-- write that must be rolled back (tests/e2e/test_sandbox.py).

local function add_note(note)
  tp.db.exec("INSERT INTO sbxbad_notes (note) VALUES (?)", note)
end

local function spin()
  while true do end
end

-- every case writes first, then misbehaves
local CASES = {
  loop = spin,
  alloc = function()
    local t = {}
    while true do t[#t + 1] = string.rep("x", 1e5) end
  end,
  pcall_loop = function()
    while true do pcall(function() while true do end end) end
  end,
  -- the coroutine spends the budget; its resumer catches that and returns 200
  coroutine_wrap = function()
    local co = coroutine.wrap(spin)
    local ok, err = pcall(co)
    return 200, { swallowed = not ok, err = tostring(err) }
  end,
  coroutine_resume = function()
    local co = coroutine.create(spin)
    local ok, err = coroutine.resume(co)
    return 200, { swallowed = not ok, err = tostring(err) }
  end,
  -- the memory error is caught; the handler then returns 200 as if nothing happened
  pcall_alloc = function()
    local ok, err = pcall(function()
      local t = {}
      while true do t[#t + 1] = string.rep("x", 1e5) end
    end)
    return 200, { swallowed = not ok, err = tostring(err) }
  end,
  -- backtracking in the string library's C code, where no instruction is counted
  pattern = function()
    return 200, { found = tostring(string.find(string.rep("a", 40), string.rep("a*", 20) .. "b")) }
  end,
  io_open = function() return 200, { f = tostring(io.open("/etc/passwd")) } end,
  os_execute = function() return 200, { r = tostring(os.execute("true")) } end,
  os_time = function() return 200, { t = os.time() } end,
  string_dump = function() return 200, { d = #string.dump(spin) } end,
  load_bytecode = function()
    return 200, { f = tostring(load("\27Lua\84\0\25\147\13\10\26\10", "x", "t", {})) }
  end,
  load_binary_mode = function() return 200, { f = tostring(load("return 1", "x", "b", {})) } end,
  load_no_env = function() return 200, { f = tostring(load("return 1")) } end,
  dofile = function() return 200, { r = tostring(dofile("/etc/passwd")) } end,
  gc_metatable = function()
    return 200, { t = tostring(setmetatable({}, { __gc = function() end })) }
  end,
}

local function bad(req)
  local f = CASES[req.params.case]
  if not f then tp.fail(404, "no_such_case", "unknown case " .. req.params.case) end
  add_note("before " .. req.params.case)
  return f()
end

-- a bytecode chunk handed over by a reader function: text mode refuses it, no code runs
local function load_reader()
  local sent = false
  local f, err = load(function()
    if sent then return nil end
    sent = true
    return "\27Lua\84\0"
  end, "reader", "t", {})
  return 200, { loaded = f ~= nil, err = tostring(err) }
end

local function count(req)
  return 200, { count = tp.db.one("SELECT count(*) AS n FROM sbxbad_notes").n }
end

local function add(req)
  add_note("normal")
  local t = {}
  for i = 1, 100 do t[i] = string.rep("y", 1000) end  -- some memory, well under the cap
  return 201, { count = tp.db.one("SELECT count(*) AS n FROM sbxbad_notes").n, kb = #table.concat(t) // 1000 }
end

-- ~1e6 iterations: a few million instructions, inside the default budget
local function million()
  local s = 0
  for i = 1, 1000000 do s = s + i end
  return 200, { sum = s }
end

return {
  name = "sbxbad",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE sbxbad_notes (id INTEGER PRIMARY KEY, note TEXT NOT NULL)",
  },
  routes = {
    { method = "POST", path = "/sbxbad/bad/{case}", auth = "none", handler = bad },
    { method = "GET", path = "/sbxbad/load-reader", auth = "none", handler = load_reader },
    { method = "GET", path = "/sbxbad/count", auth = "none", handler = count },
    { method = "POST", path = "/sbxbad/add", auth = "none", handler = add },
    { method = "GET", path = "/sbxbad/million", auth = "none", handler = million },
  },
}
