-- expect: routes[1]: unknown route field 'summery' (did you mean 'summary'?)
return {
  name = "routetypo",
  version = "1.0.0",
  routes = {
    { method = "GET", path = "/routetypo", auth = "none", -- @ERROR@
      summery = "a typo the host used to drop without a word",
      handler = function() return {} end },
  },
}
