-- expect: route GET /clash/items of plugin 'clash':
local function list() return { items = {} } end

return {
  name = "clash", version = "1.0.0",
  routes = {
    { method = "GET", path = "/clash/items", auth = "none", handler = list },
    { method = "POST", path = "/clash/items", auth = "none", handler = list },
    { method = "GET", path = "/clash/items", auth = "none", handler = list }, -- @ERROR@
  },
}
