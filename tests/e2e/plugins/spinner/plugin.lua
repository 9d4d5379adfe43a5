---@diagnostic disable: undefined-global
-- spinner: a lucky wheel that only declares the events the mini-program
-- reports about it (test_analytics.py): "spinner.spin" and "spinner.win"
-- are accepted by POST /track, any other "spinner.*" is not.

return {
  name = "spinner",
  version = "1.0.0",
  track = { "spin", "win" },
}
