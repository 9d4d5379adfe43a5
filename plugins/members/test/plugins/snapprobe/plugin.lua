---@diagnostic disable: undefined-global
-- snapprobe: takes and walks snapshots of segments the way a drop does
-- (tp.call("members", "snapshot" / "snapshot_page", ...)). Test-only.
return {
  name = "snapprobe",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/snapprobe/start", auth = "admin", handler = function(req)
      return 200, tp.call("members", "snapshot", req.body.segment, req.body.key)
    end },
    { method = "POST", path = "/snapprobe/page", auth = "admin", handler = function(req)
      return 200, tp.call("members", "snapshot_page", req.body.id, req.body.after, req.body.limit)
    end },
  },
}
