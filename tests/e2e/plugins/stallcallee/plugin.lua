---@diagnostic disable: undefined-global
-- stallcallee: the other side of stall's tp.call cases (tests/e2e/test_stall.py).

return {
  name = "stallcallee",
  version = "1.0.0",
  exports = {
    big = function(n) return string.rep("b", n) end,
    take = function(t) return #t end,
    spin = function() while true do end end,
    fail_big = function(n) tp.fail(409, "big", "a failure with large details", { s = string.rep("d", n) }) end,
    hello = function() return "hello" end,
    big_table = function(n) return { s = string.rep("b", n) } end,
    wide = function(n)  -- an object of n members
      local t = {}
      for i = 1, n do t["k" .. i] = i end
      return t
    end,
    long = function(n)  -- an array of n numbers
      local t = {}
      for i = 1, n do t[i] = i end
      return t
    end,
  },
  routes = {
    -- allocates n bytes and keeps them for the length of the request: fits
    -- only if nothing of an earlier call still holds memory in this state
    { method = "POST", path = "/stallcallee/alloc", auth = "none",
      handler = function(req)
        local s = string.rep("c", tonumber(req.query.n))
        return 200, { len = #s }
      end },
  },
}
