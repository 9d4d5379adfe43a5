---@diagnostic disable: undefined-global
-- probe: a plugin for the end-to-end tests. Every route pokes at one promise
-- of the host (transactions, the SQL authorizer, JSON, auth, replayable
-- randomness) so that the Python tests can check it from the outside.

-- ---- what the load context allows (recorded with pcall: the plugin must load)

local load_checks = {}
do
  local ok, err = pcall(tp.db.exec, "INSERT INTO probe_items (note) VALUES ('at load')")
  load_checks.db_exec = { ok = ok, err = tostring(err) }
  ok, err = pcall(tp.random, 10)
  load_checks.random = { ok = ok, err = tostring(err) }
  ok, err = pcall(tp.now)
  load_checks.now = { ok = ok }
end

local function count_items()
  return tp.db.one("SELECT count(*) AS n FROM probe_items").n
end

local function add_item(note)
  local _, id = tp.db.exec("INSERT INTO probe_items (note) VALUES (?)", note)
  return id
end

-- ---- writes that must leave no trace

local function boom(req)
  add_item("boom " .. req.id)
  error("boom")
end

local function conflict(req)
  add_item("conflict " .. req.id)
  tp.fail(409, "conflict_code", "msg", { k = 1 })
end

-- handlers that return something the host cannot send, after writing
local BAD_RETURNS = {
  string_body = function() return 200, "just text" end,
  status_700 = function() return 700, {} end,
  status_100 = function() return 100, {} end,
  function_value = function() return 200, { f = function() end } end,
  nan = function() return 200, { x = 0 / 0 } end,
  mixed_keys = function() return 200, { [true] = 1 } end,
  fail_bad_status = function() tp.fail(200, "not_an_error", "status 200 is refused") end,
  error_table = function() error({ code = "x" }) end,
  deep = function()
    local t = {}
    for _ = 1, 100 do t = { t } end
    return 200, t
  end,
}

local function bad_return(req)
  add_item("bad " .. req.params.kind)
  local f = BAD_RETURNS[req.params.kind]
  if not f then tp.fail(404, "no_such_kind", "unknown kind") end
  return f()
end

local function items_count()
  return 200, { count = count_items() }
end

local function items_create(req)
  local note = type(req.body) == "table" and req.body.note or "item"
  return 201, { id = add_item(note) }
end

local function items_get(req)
  local row = tp.db.one("SELECT id, note FROM probe_items WHERE id = ?", req.params.id)
  if not row then tp.fail(404, "item_not_found", "no such item") end
  return 200, row
end

-- ---- a counter: POST increments (user auth), GET reads

local function counter_incr(req)
  local row = tp.db.one([[
    INSERT INTO probe_counters (name, value) VALUES (?, 1)
    ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value]], req.params.name)
  return 200, { name = req.params.name, value = row.value, user = req.user }
end

local function counter_get(req)
  local row = tp.db.one("SELECT value FROM probe_counters WHERE name = ?", req.params.name)
  return 200, { name = req.params.name, value = row and row.value or 0 }
end

-- ---- echo: what the host hands a handler

local function echo(req)
  return 200, {
    user = req.user,
    tenant = req.tenant,
    method = req.method,
    path = req.path,
    route = req.route,
    id = req.id,
    params = req.params,
    query = tp.json.object(req.query),
    x_foo = req.headers["x-foo"],
    body = req.body,
    body_type = type(req.body),
  }
end

-- ---- SQL the authorizer must refuse

local FORBIDDEN = {
  other_plugin = "SELECT * FROM catalog_products",
  other_plugin_write = "DELETE FROM catalog_skus",
  other_plugin_join = "SELECT p.id FROM probe_items i JOIN catalog_products p ON p.id = i.id",
  other_plugin_subquery = "SELECT (SELECT count(*) FROM catalog_products) AS n",
  pragma = "PRAGMA table_info(probe_items)",
  pragma_sync = "PRAGMA synchronous = OFF",
  pragma_function = "SELECT * FROM pragma_table_info('catalog_products')",
  attach = "ATTACH DATABASE ':memory:' AS other",
  detach = "DETACH DATABASE main",
  begin = "BEGIN",
  commit = "COMMIT",
  rollback = "ROLLBACK",
  savepoint = "SAVEPOINT mine",
  release_host = "RELEASE tp_request",
  rollback_host = "ROLLBACK TO tp_request",
  migrations = "SELECT * FROM _tp_migrations",
  migrations_write = "DELETE FROM _tp_migrations",
  drop_other = "DROP TABLE catalog_products",
  alter_other = "ALTER TABLE catalog_products ADD COLUMN x INTEGER",
  trigger_other = "CREATE TEMP TRIGGER probe_t AFTER INSERT ON catalog_skus BEGIN SELECT 1; END",
  index_other = "CREATE INDEX probe_idx ON catalog_products(name)",
  view_other = "CREATE VIEW catalog_view AS SELECT 1",
  vacuum = "VACUUM",
  two_statements = "INSERT INTO probe_items (note) VALUES ('one'); INSERT INTO probe_items (note) VALUES ('two')",
  two_statements_select = "SELECT 1; SELECT * FROM catalog_products",
}

local function forbidden(req)
  add_item("forbidden " .. req.params.case)   -- must be rolled back with the rest
  local sql = FORBIDDEN[req.params.case]
  if not sql then tp.fail(404, "no_such_case", "unknown case") end
  local rows = tp.db.query(sql)
  return 200, { rows = rows, note = "the host let this through" }
end

-- the same statements, caught with pcall: the handler sees the error text
local function forbidden_message(req)
  local sql = FORBIDDEN[req.params.case]
  if not sql then tp.fail(404, "no_such_case", "unknown case") end
  local ok, err = pcall(tp.db.query, sql)
  return 200, { ok = ok, err = not ok and tostring(err) or nil }
end

-- ---- JSON

local function bigints()
  return 200, {
    above_2_53 = 9007199254740993,
    big = 123456789012345678,
    max = math.maxinteger,
    min = math.mininteger,
    negative = -9007199254740993,
    float = 0.5,
    list = { 9007199254740993, 1, -1 },
  }
end

local function json_echo(req)
  local b = req.body
  local item = type(b.items) == "table" and b.items[1] or {}
  return 200, {
    price_fen = b.price_fen,
    price_type = math.type(b.price_fen),
    nested_type = math.type(item.price_fen),
    float_type = math.type(b.ratio),
    ratio = b.ratio,
    is_null = b.nothing == tp.json.null,
    empty_array = tp.json.array({}),
    empty_object = tp.json.object(),
    plain_empty = {},
    query_rows = tp.db.query("SELECT 1 AS x WHERE 0"),
    array = tp.json.array({ 1, 2, 3 }),
    encoded = tp.json.encode(tp.json.array({})),
    roundtrip = tp.json.decode('{"n": 990, "a": [1, 2.5]}'),
    roundtrip_type = math.type(tp.json.decode('{"n": 990}').n),
    unicode = "茶 ✓",
  }
end

-- ---- randomness: replayable from the seed in the request log line

local function random(req)
  local ints = {}
  for i = 1, 5 do ints[i] = tp.random(1, 1000000) end
  return 200, {
    seed = tp.seed(),
    ints = ints,
    float = math.random(),
    n6 = math.random(6),
    request_id = req.id,
  }
end

-- ---- the sandbox and the load context

local function violation(ok, e)
  return not ok and type(e) == "table" and e.code == "sandbox_violation"
end

local function env()
  local denied = {}
  for _, n in ipairs({ "io", "os", "debug", "package" }) do
    denied[n] = violation(pcall(function() return _G[n].anything end))
  end
  denied.dofile = violation(pcall(dofile, "x.lua"))
  denied.loadfile = violation(pcall(loadfile, "x.lua"))
  denied["string.dump"] = violation(pcall(string.dump, env))
  denied["load of bytecode"] = violation(pcall(load, "\27Lua", "x", "t", {}))
  denied["collectgarbage"] = violation(pcall(collectgarbage, "collect"))
  denied["math.randomseed"] = math.randomseed == nil
  return 200, {
    denied = denied,
    load_checks = load_checks,
    now = tp.now(),
    now_ms = tp.now_ms(),
    timezone = tp.timezone(),
    localtime = tp.localtime(0),
  }
end

-- a big body, for slow readers and partial writes
local function big(req)
  local kb = math.tointeger(tonumber(req.query.kb or "")) or 64
  return 200, { kb = kb, data = string.rep("x", kb * 1024) }
end

-- INSERT OR ROLLBACK on a conflict ends the whole transaction, not just this
-- request's savepoint: the host must fail the batch, never half-save it.
local function counter_or_rollback(req)
  tp.db.exec("INSERT OR ROLLBACK INTO probe_counters(name, value) VALUES (?, 1)", req.params.name)
  return 200, { inserted = req.params.name }
end

-- A tp.fail error caught and changed before it is raised again.
local function refail(req)
  local ok, e = pcall(tp.fail, 409, "first", "first message")
  assert(not ok)
  e.code, e.status, e.message = nil, "not a status", { "not", "text" }
  error(e)
end

-- A body whose JSON marker is not a string.
local function odd_marker()
  return 200, { odd = setmetatable({ 1, 2 }, { __jsontype = 42 }) }
end

local function log(req)
  tp.log("warn", "probe says hello", { k = 1, who = "probe" })
  print("printed", 42)
  return 200, { logged = true, id = req.id }
end

return {
  name = "probe",
  version = "0.3.1",
  migrations = {
    [[
    CREATE TABLE probe_items (
      id INTEGER PRIMARY KEY,
      note TEXT NOT NULL
    );
    CREATE TABLE probe_counters (
      name TEXT PRIMARY KEY,
      value INTEGER NOT NULL
    );
    ]],
  },
  routes = {
    { method = "POST", path = "/probe/boom", auth = "none", handler = boom },
    { method = "POST", path = "/probe/conflict", auth = "none", handler = conflict },
    { method = "POST", path = "/probe/bad/{kind}", auth = "none", handler = bad_return },
    { method = "GET", path = "/probe/items/count", auth = "none", handler = items_count },
    { method = "POST", path = "/probe/items", auth = "none", handler = items_create },
    { method = "GET", path = "/probe/items/{id:int}", auth = "none", handler = items_get },
    { method = "POST", path = "/probe/counter/{name}", auth = "user", handler = counter_incr },
    { method = "GET", path = "/probe/counter/{name}", auth = "none", handler = counter_get },
    { method = "GET", path = "/probe/echo/{word}/{n:int}", auth = "user", handler = echo },
    { method = "POST", path = "/probe/echo/{word}/{n:int}", auth = "user", handler = echo },
    { method = "GET", path = "/probe/echo-optional", auth = "optional", handler = echo },
    { method = "GET", path = "/probe/sql/{case}", auth = "none", handler = forbidden },
    { method = "GET", path = "/probe/sql-message/{case}", auth = "none", handler = forbidden_message },
    { method = "GET", path = "/probe/bigints", auth = "none", handler = bigints },
    { method = "POST", path = "/probe/json", auth = "none", handler = json_echo },
    { method = "GET", path = "/probe/random", auth = "none", handler = random },
    { method = "GET", path = "/probe/env", auth = "none", handler = env },
    { method = "GET", path = "/probe/log", auth = "none", handler = log },
    { method = "GET", path = "/probe/big", auth = "none", handler = big },
    { method = "GET", path = "/probe/admin-echo", auth = "admin", handler = echo },
    { method = "POST", path = "/probe/or-rollback/{name}", auth = "none", handler = counter_or_rollback },
    { method = "POST", path = "/probe/refail", auth = "none", handler = refail },
    { method = "GET", path = "/probe/odd-marker", auth = "none", handler = odd_marker },
  },
}
