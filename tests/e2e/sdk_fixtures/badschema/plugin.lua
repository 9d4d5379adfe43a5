-- expect: routes[1].response.properties.items.items.type must be string, integer, number, boolean, array or object (did you mean 'object'?)
return {
  name = "badschema",
  version = "1.0.0",
  routes = {
    { method = "GET", path = "/badschema", auth = "none", handler = function() return { items = {} } end,
      response = { type = "object", properties = { items = { type = "array", -- @ERROR@
        items = { type = "objekt" } } } } },
  },
}
