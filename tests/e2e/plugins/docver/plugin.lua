---@diagnostic disable: undefined-global
-- docver: test_openapi.py copies this plugin to a temporary folder and
-- rewrites the lines marked @...@ between reloads, to see the OpenAPI document
-- follow the routes (and refuse malformed doc fields). Keep the markers.

local function ok(req)
  return 200, { route = req.route }
end

return {
  name = "docver",
  version = "1.0.0", -- @VERSION@
  routes = {
    { method = "GET", path = "/docver/first", auth = "none", handler = ok,
      summary = "The first route" }, -- @FIRST@
    -- @ROUTES@
  },
}
