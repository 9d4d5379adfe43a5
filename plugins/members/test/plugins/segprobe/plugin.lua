---@diagnostic disable: undefined-global
-- segprobe: asks the members plugin whether a user is in a segment, the way a
-- mechanic does (tp.call("members", "matches", ...)). Test-only.
return {
  name = "segprobe",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/segprobe/match", auth = "admin", handler = function(req)
      return 200, { matches = tp.call("members", "matches", req.body.user, { segment = req.body.segment }) }
    end },
  },
}
