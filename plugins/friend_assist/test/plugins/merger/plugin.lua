---@diagnostic disable: undefined-global
-- merger: a stand-in for the members plugin, used only by test/merge_test.lua
-- (the kit puts <plugin>/test/plugins on the plugin path). It calls a
-- plugin's member_merge / member_unmerge the way members does, with tp.call
-- inside the request's transaction, and answers the counts the export returned.
-- The same file is in every plugin's test/plugins that takes part in merges.

local function relay(fn)
  return function(req)
    local b = req.body or {}
    return 200, { moved = tp.call(b.plugin, fn, b.from, b.into, b.merge_id) }
  end
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
  migrations = {},
  routes = {
    { method = "POST", path = "/merger/merge", auth = "admin", handler = relay("member_merge"),
      summary = "tp.call(plugin, member_merge, from, into, merge_id)" },
    { method = "POST", path = "/merger/unmerge", auth = "admin", handler = relay("member_unmerge"),
      summary = "tp.call(plugin, member_unmerge, from, into, merge_id)" },
    { method = "POST", path = "/merger/call", auth = "admin", handler = call,
      summary = "tp.call(plugin, fn, table.unpack(args))" },
  },
}
