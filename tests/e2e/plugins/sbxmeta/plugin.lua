---@diagnostic disable: undefined-global
-- sbxmeta: a manifest whose tables raise from __index on any missing key
-- (test_sandbox.py). The host must read declarations without metamethods:
-- this plugin loads (its routes declare every field the host needs), and a
-- tp.fail's metatable cannot be tampered with (it is protected), so the
-- error still answers with its code.

local function raising(t)
  return setmetatable(t, { __index = function(_, k) error("no field " .. tostring(k)) end })
end

local function fail_tampered()
  local ok, err = pcall(tp.fail, 409, "tampered", "a tp.fail with a raising __index")
  assert(not ok)
  assert(getmetatable(err) == "tp.fail")
  local tampered = pcall(function()
    getmetatable(err).__index = function(_, k) error("no field " .. tostring(k)) end
  end)
  assert(not tampered, "the host's metatable was reachable")
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
