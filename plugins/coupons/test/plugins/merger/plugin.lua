---@diagnostic disable: undefined-global
-- merger: a stand-in for the members plugin in the kit tests (test/merge_test.lua).
-- It calls coupons the way members does: tp.call("coupons", "member_merge" or
-- "member_unmerge", from, into, merge_id) inside the request's transaction,
-- and answers the counts coupons returns. The values are handed over as the
-- body gives them, so a test can also send what members never would (bad
-- ids) and see coupons refuse it.

---POST /merger/{merge|unmerge} {from, into, merge_id}
local function call(fn)
  return function(req)
    local b = req.body
    return 200, { moved = tp.call("coupons", fn, b.from, b.into, b.merge_id) }
  end
end

---POST /merger/merge_then_fail: the merge, then a failure later in the same
---transaction (members failing after coupons merged): nothing may stay.
local function merge_then_fail(req)
  local b = req.body
  tp.call("coupons", "member_merge", b.from, b.into, b.merge_id)
  tp.fail(409, "later_step_failed", "a later step of the merge failed")
end

return {
  name = "merger",
  version = "1.0.0",
  routes = {
    { method = "POST", path = "/merger/merge", auth = "admin", handler = call("member_merge"),
      summary = "tp.call('coupons', 'member_merge', from, into, merge_id) as members does" },
    { method = "POST", path = "/merger/unmerge", auth = "admin", handler = call("member_unmerge"),
      summary = "tp.call('coupons', 'member_unmerge', from, into, merge_id) as members does" },
    { method = "POST", path = "/merger/merge_then_fail", auth = "admin", handler = merge_then_fail,
      summary = "member_merge, then a failure in the same transaction" },
  },
}
