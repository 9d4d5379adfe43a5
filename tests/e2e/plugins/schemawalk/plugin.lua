---@diagnostic disable: undefined-global
-- schemawalk: hands test_schema_walk.py every declared resource body of the
-- tenant's plugins: each plugin that exports `schemas` (tp.schema.document of
-- its routes) answers the routes whose body a schema made, with the fields as
-- declared, to hold against the OpenAPI the host serves.

return {
  name = "schemawalk", version = "1.0.0",
  routes = {
    { method = "GET", path = "/schemawalk", auth = "admin", handler = function()
        local out = tp.json.object()
        for _, name in ipairs(tp.exporters("schemas")) do out[name] = tp.call(name, "schemas") end
        return out
      end },
  },
}
