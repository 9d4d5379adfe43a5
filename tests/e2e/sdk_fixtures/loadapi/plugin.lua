-- expect: tp.db.exec is not available while the plugin loads (allowed in: handler, job, event, setup)
local function seed()
  tp.db.exec("INSERT INTO loadapi_items (note) VALUES ('seeded')") -- @ERROR@
end

seed()

return {
  name = "loadapi", version = "1.0.0",
  migrations = { "CREATE TABLE loadapi_items (note TEXT)" },
}
