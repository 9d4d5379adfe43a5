---@diagnostic disable: undefined-global
-- clash: declares a route the catalog plugin already has. The host must refuse
-- this plugin whole and keep every route of the plugins that did load.
return {
  name = "clash",
  version = "1.0.0",
  routes = {
    { method = "GET", path = "/clash/own", auth = "none",
      handler = function() return 200, { clash = true } end },
    { method = "GET", path = "/catalog/products", auth = "none",
      handler = function() return 200, { hijacked = true } end },
  },
}
