---@diagnostic disable: undefined-global
-- evcaller: calls evcallee's exports with tp.call for the end-to-end tests
-- (test_events.py), with or without catching the error.

local function body_of(req)
  return type(req.body) == "table" and req.body or {}
end

-- what a caught error looks like, as JSON
local function describe(err)
  if type(err) == "table" then
    return { status = err.status, code = err.code, message = err.message, details = err.details }
  end
  return { text = tostring(err) }
end

-- POST /evcaller/call {plugin, fn, args = [...], catch = bool, note = string}
-- note: the caller writes its own row first (kept unless the request fails)
local function call(req)
  local b = body_of(req)
  if b.note then
    tp.db.exec("INSERT INTO evcaller_rows (note) VALUES (?)", b.note)
  end
  local args = b.args or {}
  if b.catch then
    local r = table.pack(pcall(tp.call, b.plugin or "evcallee", b.fn, table.unpack(args)))
    if not r[1] then
      return 200, { ok = false, err = describe(r[2]) }
    end
    return 200, { ok = true, results = { table.unpack(r, 2, r.n) }, n = r.n - 1 }
  end
  local r = table.pack(tp.call(b.plugin or "evcallee", b.fn, table.unpack(args)))
  return 200, { ok = true, results = { table.unpack(r, 1, r.n) }, n = r.n }
end

-- the arguments are copies: what the callee does to them stays there
local function copies()
  local mine = { x = 1, nested = { y = 2 } }
  local back = tp.call("evcallee", "mutate", mine)
  back.nested.y = 3
  return 200, {
    same_table = rawequal(mine, back),
    mine_x = mine.x,
    mine_added = mine.added == true,
    mine_nested_y = mine.nested.y,
    back_x = back.x,
    back_added = back.added,
  }
end

local function rows()
  return 200, { rows = tp.db.query("SELECT id, note FROM evcaller_rows ORDER BY id") }
end

return {
  name = "evcaller",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE evcaller_rows (id INTEGER PRIMARY KEY, note TEXT NOT NULL);",
  },
  exports = {
    ping = function() return "pong" end,
  },
  routes = {
    { method = "POST", path = "/evcaller/call", auth = "none", handler = call },
    { method = "GET", path = "/evcaller/copies", auth = "none", handler = copies },
    { method = "GET", path = "/evcaller/rows", auth = "none", handler = rows },
  },
}
