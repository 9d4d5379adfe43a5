---@diagnostic disable: undefined-global
-- campaign_rival: a second campaign for the kit tests, to show that one
-- campaign cannot change or withdraw the items another one made.

local function apply(req)
  return 200, tp.call(req.body.plugin, "campaign_apply", req.body.ref, req.body.settings)
end

local function withdraw(req)
  return 200, { withdrawn = tp.call(req.body.plugin, "campaign_withdraw", req.body.ref) }
end

return {
  name = "campaign_rival",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/campaign_rival/apply", auth = "admin", handler = apply,
      summary = "tp.call(plugin, 'campaign_apply', ref, settings) as another campaign" },
    { method = "POST", path = "/campaign_rival/withdraw", auth = "admin", handler = withdraw,
      summary = "tp.call(plugin, 'campaign_withdraw', ref) as another campaign" },
  },
}
