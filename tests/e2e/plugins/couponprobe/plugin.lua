---@diagnostic disable: undefined-global
-- couponprobe: drives the coupons plugin's exports through tp.call for the
-- end-to-end tests (tests/e2e/test_coupons.py), the way the orders plugin does.

local EXPORTS = { quote = true, lock = true, unlock = true, consume = true, relock = true }

-- POST /couponprobe/call {fn, args = [...]} -> {result = ...}
-- A tp.fail in coupons reaches the client with its status, code and details.
-- With "then_fail": true the probe fails after a successful call, so the
-- test can see that what the call wrote is rolled back with the caller.
local function call(req)
  local b = type(req.body) == "table" and req.body or {}
  if not EXPORTS[b.fn] then tp.fail(400, "unknown_fn", "fn must be a coupons export") end
  local args = b.args or {}
  local result = tp.call("coupons", b.fn, table.unpack(args, 1, #args))
  if b.then_fail then tp.fail(409, "probe_failed_on_purpose", "the caller failed after the call") end
  return 200, { result = result }
end

return {
  name = "couponprobe",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/couponprobe/call", auth = "none", handler = call },
  },
}
