---@diagnostic disable: undefined-global
-- bench: the smallest useful plugin, for tests/bench/run.sh. One table, one
-- point read and one insert, so that a benchmark measures the host (HTTP,
-- routing, Lua call, savepoint, group commit) and not the plugin.
-- tests/bench/baseline.c runs exactly the same two statements.

local SEED_ROWS = 10000

local GET_SQL = "SELECT id, k, v FROM bench_rows WHERE id = ?"
local INSERT_SQL = "INSERT INTO bench_rows (k, v) VALUES (?, ?)"

---GET /bench/rows/{id:int} : one row by primary key.
local function get_row(req)
  local row = tp.db.one(GET_SQL, req.params.id)
  if not row then tp.fail(404, "row_not_found", "no such row") end
  return 200, row
end

---POST /bench/rows {k = integer, v = string} : inserts one row, answers its id.
local function post_row(req)
  local body = req.body
  if type(body) ~= "table" or math.type(body.k) ~= "integer" or type(body.v) ~= "string"
      or #body.v > 1000 then
    tp.fail(400, "invalid_body", "want {\"k\": integer, \"v\": string of at most 1000 bytes}")
  end
  local _, id = tp.db.exec(INSERT_SQL, body.k, body.v)
  return 201, { id = id }
end

return {
  name = "bench",
  version = "1.0.0",
  migrations = {
    ([[
    CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, k INTEGER, v TEXT);
    WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %d)
    INSERT INTO bench_rows (id, k, v) SELECT n, n * 7 %% 1000, 'seed row ' || n FROM seq;
    ]]):format(SEED_ROWS),
  },
  routes = {
    { method = "GET", path = "/bench/rows/{id:int}", auth = "none", handler = get_row },
    { method = "POST", path = "/bench/rows", auth = "none", handler = post_row },
  },
}
