---@diagnostic disable: undefined-global
-- idemprobe: idempotent routes for tests/e2e/test_idempotency.py. Each call
-- of a handler is counted in the state (calls, an upvalue: it counts Lua runs,
-- committed or not) and each kept effect in a table (rows).
local calls = 0

local function make(req)
  calls = calls + 1
  local body = req.body or {}
  local _, id = tp.db.exec("INSERT INTO idemprobe_things (user, note) VALUES (?, ?)",
    req.user or "", body.note or "")
  if body.fail then tp.fail(409, "probe_refused", "asked to fail") end
  if body.big then return 201, { id = id, filler = string.rep("x", 70000) } end
  return 201, { id = id, note = body.note, user = req.user }
end

return {
  name = "idemprobe",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE idemprobe_things (id INTEGER PRIMARY KEY, user TEXT NOT NULL, note TEXT NOT NULL)",
  },
  routes = {
    { method = "POST", path = "/idem/things", idempotent = true, status = 201, handler = make },
    { method = "POST", path = "/idem/other", idempotent = true, status = 201, handler = make },
    { method = "POST", path = "/idem/anon", auth = "none", idempotent = true, status = 201, handler = make },
    { method = "POST", path = "/idem/plain", status = 201, handler = make },  -- not idempotent
    { method = "GET", path = "/idem/count", auth = "none", handler = function()
        return 200, { calls = calls, rows = tp.db.one("SELECT count(*) AS n FROM idemprobe_things").n }
      end },
  },
}
