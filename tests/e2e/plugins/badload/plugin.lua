---@diagnostic disable: undefined-global
-- badload: raises while its plugin.lua runs. The host must report it
-- ("plugin not enabled") and go on serving the tenant's other plugins.
local routes = {
  { method = "GET", path = "/badload/ping", auth = "none",
    handler = function() return 200, { pong = true } end },
}
error("badload exploded while loading")
return { name = "badload", version = "1.0.0", routes = routes }
