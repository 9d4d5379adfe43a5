---@diagnostic disable: undefined-global
-- sbxmeta: a manifest whose tables raise from __index on any missing key
-- (test_sandbox.py). The host must read declarations without metamethods:
-- this plugin loads (its routes declare every field the host needs) and a
-- tp.fail whose metatable was tampered with still answers with its code.

local function raising(t)
  return setmetatable(t, { __index = function(_, k) error("no field " .. tostring(k)) end })
end

local function fail_tampered()
  local ok, err = pcall(tp.fail, 409, "tampered", "a tp.fail with a raising __index")
  assert(not ok)
  getmetatable(err).__index = function(_, k) error("no field " .. tostring(k)) end
  error(err, 0)
end

return raising({
  name = "sbxmeta",
  version = "1.0.0",
  routes = raising({
    raising({ method = "GET", path = "/sbxmeta/hello", handler = function() return { hello = "world" } end }),
    raising({ method = "GET", path = "/sbxmeta/fail", handler = fail_tampered }),
  }),
})
