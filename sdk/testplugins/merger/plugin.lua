---@diagnostic disable: undefined-global
-- merger: a stand-in for the members plugin in a plugin's merge tests (the
-- kit puts sdk/testplugins on every test's plugin path). It calls the plugin
-- named in the body the way members does: tp.call(plugin, "member_merge" or
-- "member_unmerge", from, into, merge_id) inside the request's transaction,
-- and answers the counts the plugin returns. The values are handed over as
-- the body gives them, so a test can also send what members never would (bad
-- ids) and see the plugin refuse it.

---POST /merger/{merge|unmerge} {plugin, from, into, merge_id}
local function relay(fn)
  return function(req)
    local b = req.body or {}
    return 200, { moved = tp.call(b.plugin, fn, b.from, b.into, b.merge_id) }
  end
end

---POST /merger/merge_then_fail {plugin, from, into, merge_id}: the merge, then
---a failure later in the same transaction (members failing after the plugin
---merged): nothing may stay.
local function merge_then_fail(req)
  local b = req.body or {}
  tp.call(b.plugin, "member_merge", b.from, b.into, b.merge_id)
  tp.fail(409, "later_step_failed", "a later step of the merge failed")
end

---POST /merger/call {plugin, fn, args}: any other export, to read what the
---merged plugin now answers (orders.customer, referral.attribution ...).
local function call(req)
  local b = req.body or {}
  return 200, { result = tp.call(b.plugin, b.fn, table.unpack(b.args or {})) }
end

return {
  name = "merger",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/merger/merge", auth = "admin", handler = relay("member_merge"),
      summary = "tp.call(plugin, 'member_merge', from, into, merge_id) as members does" },
    { method = "POST", path = "/merger/unmerge", auth = "admin", handler = relay("member_unmerge"),
      summary = "tp.call(plugin, 'member_unmerge', from, into, merge_id) as members does" },
    { method = "POST", path = "/merger/merge_then_fail", auth = "admin", handler = merge_then_fail,
      summary = "member_merge, then a failure in the same transaction" },
    { method = "POST", path = "/merger/call", auth = "admin", handler = call,
      summary = "tp.call(plugin, fn, table.unpack(args))" },
  },
}
