-- The end of a group that did not fill: the expiry job either fills it with
-- virtual seats (模拟成团, when the activity allows it and enough seats are
-- paid) or fails it and refunds every paid member. Each refund is a job of
-- its own, keyed by the order ("gb-refund:<order_id>"), so one refund that
-- fails is retried alone and none is undone by another (research pitfall 14);
-- orders keeps a durable refund number, so a retried job never pays twice.

local activities = require("lib.activities")
local groups = require("lib.groups")
local quota = require("lib.quota")

local closing = {}

---Marks a paid order to be refunded and schedules its refund job.
---@param order_id integer
---@param reason string what orders records as the refund's reason
function closing.schedule_refund(order_id, reason)
  local changed = tp.db.exec([[UPDATE group_buy_orders SET state = 'refund_pending', refund_reason = ?
    WHERE order_id = ? AND state IN ('unpaid', 'seated')]], reason, order_id)
  if changed == 1 then
    tp.jobs.schedule("refund_member", { order_id = order_id }, { after = 0, key = "gb-refund:" .. order_id })
  end
end

---True if the activity fills this short group at expiry: virtual fill is on
---and at least virtual_fill_min_percent of the seats are paid.
local function fills_virtually(a, g)
  return a.virtual_fill and g.paid >= 1 and g.paid * 100 >= g.group_size * a.virtual_fill_min_percent
end

---Job expire_group {group_id}: runs at the group's expires_at.
function closing.expire(job)
  local g = groups.load(job.payload.group_id)
  if not g or g.state ~= "open" then return end  -- formed or failed meanwhile
  if fills_virtually(activities.load(g.activity_id), g) and groups.fill_virtually(g.id) then return end
  for _, m in ipairs(groups.fail(g.id, "expired") or {}) do
    closing.schedule_refund(m.order_id, "group_failed")
  end
end

---Job refund_member {order_id}: asks orders for a full refund, once. The
---user's count goes back here: orders cannot call release_order back into
---the plugin that asked for the refund (the host refuses tp.call cycles), so
---orders skips that hook when its caller is the order's campaign (README,
---"Refunds the plugin asks for itself"); were it ever called, release_order
---finds the row 'refunding' and gives nothing back twice.
function closing.refund(job)
  local id = job.payload.order_id
  local changed = tp.db.exec([[UPDATE group_buy_orders SET state = 'refunding'
    WHERE order_id = ? AND state = 'refund_pending']], id)
  if changed == 0 then return end  -- done before, or refunded by an operator meanwhile
  quota.give_back(id)
  local row = tp.db.one("SELECT refund_reason FROM group_buy_orders WHERE order_id = ?", id)
  local o = tp.call("orders", "get", id)
  if (o.status == "paid" or o.status == "completed") and o.refund_requested_fen < o.paid_fen then
    tp.call("orders", "refund", id, nil, row.refund_reason)
  end
end

return closing
