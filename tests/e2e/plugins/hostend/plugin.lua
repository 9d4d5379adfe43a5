---@diagnostic disable: undefined-global
-- hostend: the end of a call chain for test_hostapi.py (hostapi -> hostmid -> hostend).

return {
  name = "hostend",
  version = "1.0.0",
  exports = {
    whoami = function()
      local c = tp.caller()
      return { caller = c == nil and "nil" or c, config = tp.config() }
    end,
    boom = function() error("hostend fails on purpose") end,
  },
}
