-- expect: routes[2].summary must be a string of at most 200 bytes
local function ok() return { ok = true } end

return {
  name = "badsummary", version = "1.0.0",
  routes = {
    { method = "GET", path = "/badsummary/a", auth = "none", handler = ok, summary = "fine" },
    {
      method = "GET", path = "/badsummary/b", auth = "none", handler = ok,
      summary = 5, -- @ERROR@
    },
  },
}
