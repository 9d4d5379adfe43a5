-- A payment lands (order.paid): the order takes a seat. Events come at least
-- once, so the seat is taken only by moving the order's row from 'unpaid' to
-- 'seated' (one row per order: a repeated delivery finds it seated and does
-- nothing). Where the seat is:
--   1. the group the order asked for: a leader's payment opens their pending
--      group; a joiner's takes a seat if the group is open, unexpired, has
--      room, and the joiner is not in it already;
--   2. otherwise (the group filled up, failed or expired meanwhile) the
--      fullest other open group of the activity with room;
--   3. otherwise a new group, with the payer as leader, if the activity still
--      runs; else the order is refunded. A group never passes its size.

local activities = require("lib.activities")
local closing = require("lib.closing")
local deadlines = require("lib.deadlines")
local groups = require("lib.groups")

local seating = {}

---The order's row moves to its seat in group_id.
local function sit(order_id, group_id, role)
  tp.db.exec([[UPDATE group_buy_orders SET state = 'seated', group_id = ?1, role = ?2, seated_at = ?3,
      seat_no = (SELECT coalesce(max(seat_no), 0) + 1 FROM group_buy_orders WHERE group_id = ?1)
    WHERE order_id = ?4 AND state = 'unpaid']], group_id, role, tp.now(), order_id)
end

local function seat_in(group_id, row)
  if not groups.take_seat(group_id, row.user) then return false end
  sit(row.order_id, group_id, "member")
  groups.form_if_full(group_id)
  return true
end

---Seats a paid order (its row is 'unpaid'), or has it refunded.
---@param a GroupBuyActivity
---@param row table its group_buy_orders row
function seating.place(a, row)
  local seat = { order_id = row.order_id, user = row.user }
  local opening = a.status == "active" and deadlines.in_window(a, tp.now())
  if row.role_asked == "leader" then
    if opening and groups.open_pending(a, row.group_id, seat) then
      sit(row.order_id, row.group_id, "leader")
      return
    end
  elseif seat_in(row.group_id, row) then
    return
  end
  for _, group_id in ipairs(groups.candidates(a.id, row.user, row.group_id)) do
    if seat_in(group_id, row) then return end
  end
  if opening then
    sit(row.order_id, groups.open_new(a, seat), "leader")
    return
  end
  closing.schedule_refund(row.order_id, "group_unavailable")
end

---order.paid {order, late}
function seating.on_paid(ev)
  local o = ev.data.order
  if not (o and o.campaign and o.campaign.plugin == "group_buy") then return end
  local row = tp.db.one([[SELECT order_id, activity_id, group_id, user, role_asked, qty, state
    FROM group_buy_orders WHERE order_id = ?]], o.id)
  -- seated already (a repeated delivery), or let go before this delivery
  if not row or row.state ~= "unpaid" then return end
  seating.place(activities.load(row.activity_id), row)
end

---order.refunded {order, full}: the money is back; the member's row says so.
function seating.on_refunded(ev)
  local o = ev.data.order
  if not (o and o.campaign and o.campaign.plugin == "group_buy" and ev.data.full) then return end
  tp.db.exec([[UPDATE group_buy_orders SET refunded_at = ?,
      state = CASE WHEN state = 'refunding' THEN 'refunded' ELSE state END
    WHERE order_id = ? AND refunded_at IS NULL]], tp.now(), o.id)
end

return seating
