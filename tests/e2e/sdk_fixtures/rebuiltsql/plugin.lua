-- expect: warning: this statement's text is built at every call
local items = require("lib.items")

local COLUMNS = "id, name, price_fen"
local LIST_SQL = "SELECT " .. COLUMNS .. " FROM rebuiltsql_items ORDER BY id"  -- built once: no warning

local function list()
  return 200, { items = tp.db.query(LIST_SQL) }
end

local function show(req)
  return 200, tp.db.one("SELECT " .. COLUMNS .. " FROM rebuiltsql_items WHERE id = ?", req.params.id) -- @ERROR@
end

local function search(req)
  local order = req.query.desc and " DESC" or ""  -- may change from call to call: no warning
  return 200, { items = tp.db.query("SELECT " .. COLUMNS .. " FROM rebuiltsql_items ORDER BY id" .. order) }
end

return {
  name = "rebuiltsql", version = "1.0.0",
  migrations = { "CREATE TABLE rebuiltsql_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price_fen INTEGER)" },
  routes = {
    { method = "GET", path = "/rebuiltsql/items", auth = "none", handler = list },
    { method = "GET", path = "/rebuiltsql/items/{id:int}", auth = "none", handler = show },
    { method = "GET", path = "/rebuiltsql/search", auth = "none", handler = search },
    { method = "GET", path = "/rebuiltsql/cheap", auth = "none", handler = items.cheap },
  },
}
