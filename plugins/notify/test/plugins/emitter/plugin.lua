-- emitter: emits the event its route is given, for the notify tests.
return {
  name = "emitter",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/emitter/emit", auth = "none", status = 201,
      handler = function(req)
        return 201, { subscribers = tp.events.emit(req.body.name, req.body.data or {}) }
      end },
  },
}
