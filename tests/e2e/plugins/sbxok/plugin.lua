---@diagnostic disable: undefined-global
-- sbxok: a well-behaved plugin that tests run under a small per-plugin
-- instruction budget (plugin_limits, tests/e2e/test_sandbox.py).

local function loop(req)
  local n = req.params.n
  tp.db.exec("INSERT INTO sbxok_runs (n) VALUES (?)", n)
  local s = 0
  for i = 1, n do s = s + i end
  return 200, { n = n, sum = s }
end

local function runs()
  return 200, { count = tp.db.one("SELECT count(*) AS n FROM sbxok_runs").n }
end

return {
  name = "sbxok",
  version = "1.0.0",
  migrations = { "CREATE TABLE sbxok_runs (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)" },
  routes = {
    { method = "POST", path = "/sbxok/loop/{n:int}", auth = "none", handler = loop },
    { method = "GET", path = "/sbxok/runs", auth = "none", handler = runs },
  },
}
