---@diagnostic disable: undefined-global
-- docbad: a route doc field of the wrong type (test_openapi.py): the plugin
-- must not load, and the error must name routes[2].summary.

local function ok() return 200, {} end

return {
  name = "docbad",
  version = "1.0.0",
  routes = {
    { method = "GET", path = "/docbad/fine", auth = "none", handler = ok, summary = "fine" },
    { method = "GET", path = "/docbad/broken", auth = "none", handler = ok, summary = 5 },
  },
}
