---@diagnostic disable: undefined-global
-- autoinc: a plugin whose table uses AUTOINCREMENT. SQLite keeps the counters
-- of every such table of the tenant in one shared table, sqlite_sequence; the
-- plugin must be able to use its own and must not be able to touch the others.
return {
  name = "autoinc",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE autoinc_rows (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)",
  },
  routes = {
    { method = "POST", path = "/autoinc/rows", auth = "none", handler = function()
        local _, id = tp.db.exec("INSERT INTO autoinc_rows (v) VALUES ('x')")
        return 201, { id = id }
      end },
    -- tries to write another plugin's sequence entry, then reads them all
    { method = "POST", path = "/autoinc/tamper", auth = "none", handler = function()
        local ok, err = pcall(tp.db.exec,
          "INSERT INTO sqlite_sequence (name, seq) VALUES ('catalog_products', 424242)")
        local ok2, err2 = pcall(tp.db.exec,
          "UPDATE sqlite_sequence SET seq = 0 WHERE name <> 'autoinc_rows'")
        return 200, { insert_ok = ok, insert_err = not ok and tostring(err) or nil,
                      update_ok = ok2, update_err = not ok2 and tostring(err2) or nil }
      end },
  },
}
