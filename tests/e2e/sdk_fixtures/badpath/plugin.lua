-- expect: route GET /badpath/{id:float} of plugin 'badpath':
return {
  name = "badpath", version = "1.0.0",
  routes = {
    { method = "GET", path = "/badpath/ok", auth = "none", handler = function() return {} end },
    { method = "GET",
      path = "/badpath/{id:float}", -- @ERROR@
      auth = "none", handler = function() return {} end },
  },
}
