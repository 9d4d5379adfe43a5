---@diagnostic disable: undefined-global
-- campaign_probe: stands in for a campaign plugin (campaign_<name>) in the kit
-- tests of any plugin that takes part in campaigns, which cannot call exports
-- themselves: enable it with kit.plugins { ..., campaign_probe = {} } (the kit
-- puts sdk/testplugins on every test's plugin path). Each admin route makes
-- one tp.call a campaign makes, in the route's transaction, and answers what
-- the export returned; a refusal comes back as the export raised it.

---POST /campaign_probe/apply {plugin, ref, settings}
local function apply(req)
  local b = req.body
  return 200, tp.call(b.plugin, "campaign_apply", b.ref, b.settings)
end

---POST /campaign_probe/withdraw {plugin, ref}
local function withdraw(req)
  local b = req.body
  return 200, { withdrawn = tp.call(b.plugin, "campaign_withdraw", b.ref) }
end

---POST /campaign_probe/issue {template_id, users, source}: a campaign's coupon drop
local function issue(req)
  local b = req.body
  return 200, tp.call("coupons", "issue", b.template_id, b.users, b.source)
end

return {
  name = "campaign_probe",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/campaign_probe/apply", auth = "admin", handler = apply,
      summary = "tp.call(plugin, 'campaign_apply', ref, settings)" },
    { method = "POST", path = "/campaign_probe/withdraw", auth = "admin", handler = withdraw,
      summary = "tp.call(plugin, 'campaign_withdraw', ref)" },
    { method = "POST", path = "/campaign_probe/issue", auth = "admin", handler = issue,
      summary = "tp.call('coupons', 'issue', template_id, users, source)" },
  },
}
