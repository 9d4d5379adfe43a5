---@diagnostic disable: undefined-global
-- sbxreq: require() from the plugin's folder and the SDK (tests/e2e/test_sandbox.py).

local util_at_load = require("lib.util")

local function util()
  local a = require("lib.util")
  local b = require("lib.util")
  return 200, {
    same = rawequal(a, b),
    same_as_at_load = rawequal(a, util_at_load),
    double = a.double(21),
    name = a.name,
  }
end

-- require(req.query.name), caught: the handler reports what happened
local function try(req)
  local ok, mod = pcall(require, req.query.name)
  if not ok then return 200, { ok = false, err = tostring(mod) } end
  return 200, { ok = true, type = type(mod), from = type(mod) == "table" and mod.from or nil,
                value = type(mod) == "table" and mod.value or nil }
end

return {
  name = "sbxreq",
  version = "1.0.0",
  routes = {
    { method = "GET", path = "/sbxreq/util", auth = "none", handler = util },
    { method = "GET", path = "/sbxreq/try", auth = "none", handler = try },
  },
}
