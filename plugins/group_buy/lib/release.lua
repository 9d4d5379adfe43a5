-- The campaign contract with orders: release_order when an order lets go of
-- what it holds (cancelled unpaid, or refunded in full), reclaim_order when a
-- payment arrives after the cancel. Both run inside orders' transaction.

local activities = require("lib.activities")
local deadlines = require("lib.deadlines")
local groups = require("lib.groups")
local quota = require("lib.quota")

local release = {}

local function row_of(order_id)
  return tp.db.one([[SELECT order_id, activity_id, group_id, user, role, role_asked, qty, state
    FROM group_buy_orders WHERE order_id = ?]], order_id)
end

---An unpaid order was cancelled: a leader's pending group never opens.
local function cancel_unpaid(row)
  tp.db.exec("UPDATE group_buy_orders SET state = 'cancelled' WHERE order_id = ? AND state = 'unpaid'",
    row.order_id)
  if row.role_asked == "leader" then
    tp.db.exec([[UPDATE group_buy_groups SET state = 'abandoned'
      WHERE id = ? AND state = 'pending' AND leader_order_id = ?]], row.group_id, row.order_id)
  end
end

---A seated member's order was refunded in full (by an operator, or the user
---through support): the seat frees while the group is open, and a leader
---who leaves hands the group to the earliest paid member, same expiry. A
---formed group stays formed (the others' goods are released); it records
---that a member left (research pitfall 3: the aggregate follows the refund).
local function leave(row)
  tp.db.exec([[UPDATE group_buy_orders SET state = 'left', left_at = ?
    WHERE order_id = ? AND state = 'seated']], tp.now(), row.order_id)
  local g = groups.load(row.group_id)
  if g.state == "open" then
    groups.leave_open(g, row.order_id)
  elseif g.state == "formed" then
    tp.db.exec("UPDATE group_buy_groups SET members_left = members_left + 1 WHERE id = ?", g.id)
  end
end

---An order of this plugin gave its units back. Idempotent: each branch is a
---conditional move of the order's row.
---@param order Order
---@return boolean
function release.release_order(order)
  local row = row_of(order.id)
  if not row then return true end
  quota.give_back(order.id)
  if row.state == "unpaid" then
    cancel_unpaid(row)
  elseif row.state == "seated" then
    leave(row)
  elseif row.state == "refund_pending" then
    -- its group failed and an operator refunded it before our job did
    tp.db.exec("UPDATE group_buy_orders SET state = 'refunding' WHERE order_id = ? AND state = 'refund_pending'",
      order.id)
  end
  return true
end

---A payment came after the order was cancelled. It may seat again while the
---activity runs and the user is within the limit; the order.paid that
---follows seats it (or refunds it). Otherwise false: orders refunds it.
---@param order Order
---@return boolean
function release.reclaim_order(order)
  local row = row_of(order.id)
  if not row or row.state ~= "cancelled" then return false end
  local a = activities.load(row.activity_id)
  if a.status ~= "active" or not deadlines.in_window(a, tp.now()) then return false end
  if not quota.take_again(order.id, a.per_user_limit) then return false end
  return tp.db.exec("UPDATE group_buy_orders SET state = 'unpaid' WHERE order_id = ? AND state = 'cancelled'",
    order.id) == 1
end

return release
