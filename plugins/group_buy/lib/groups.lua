-- Groups (团) and their seats. Every change is a conditional statement on the
-- state it leaves, checked by its changed-row count:
--
--   pending --leader pays--> open --N seats paid--> formed
--   pending --leader's order cancelled--> abandoned
--   open --expiry, short--> failed (every paid member refunded, one job each)
--   open --expiry, short, virtual fill threshold met--> formed (virtual seats)
--   open --last paid member leaves--> failed ("emptied")
--
-- A seat is a row of group_buy_orders in state 'seated'; groups.paid counts
-- them and can never pass group_size (CHECK, and every increment says
-- `WHERE paid < group_size`).

local deadlines = require("lib.deadlines")

local groups = {}

---@class GroupBuyGroup
---@field id integer
---@field activity_id integer
---@field group_size integer
---@field paid integer             seats taken by paid orders
---@field virtual_seats integer    seats the host filled at expiry (模拟成团)
---@field members_left integer     members refunded after the group formed
---@field state "pending"|"open"|"formed"|"failed"|"abandoned"
---@field leader string
---@field leader_order_id integer
---@field opened_at integer?
---@field expires_at integer?

groups.COLUMNS = [[id, activity_id, group_size, paid, virtual_seats, members_left, state, leader,
  leader_order_id, created_at, opened_at, expires_at, formed_at, failed_at, fail_reason]]

local LOAD_SQL = "SELECT " .. groups.COLUMNS .. " FROM group_buy_groups WHERE id = ?"  -- built once

---@param id integer
---@return GroupBuyGroup|nil
function groups.load(id)
  return tp.db.one(LOAD_SQL, id)
end

---The seated members of a group, earliest paid first.
---@param group_id integer
---@return table[]
function groups.seated(group_id)
  return tp.db.query([[SELECT order_id, user, role, qty, seat_no, seated_at FROM group_buy_orders
    WHERE group_id = ? AND state = 'seated' ORDER BY seat_no]], group_id)
end

local function public_name(user)
  -- enough for "joined by wx:ab***" on a product page, not a user id to harvest
  return user:sub(1, 5) .. "***"
end

---A group as the user routes show it.
---@param g GroupBuyGroup
---@param now integer
function groups.public(g, now)
  return { id = g.id, activity_id = g.activity_id, state = g.state, group_size = g.group_size,
    paid = g.paid, virtual_seats = g.virtual_seats,
    seats_left = math.max(0, g.group_size - g.paid - g.virtual_seats),
    leader = public_name(g.leader), opened_at = g.opened_at, expires_at = g.expires_at,
    seconds_left = g.state == "open" and deadlines.seconds_left(g, now) or 0,
    formed_at = g.formed_at, failed_at = g.failed_at }
end

---A group as the operator sees it: every order that asked for or holds a seat.
---@param g GroupBuyGroup
---@param now integer
function groups.detail(g, now)
  local out = groups.public(g, now)
  out.leader, out.leader_order_id, out.fail_reason = g.leader, g.leader_order_id, g.fail_reason
  out.members_left = g.members_left  -- refunded after the group formed
  -- merged_from: the id the order was placed under, when a member merge moved it
  out.members = tp.json.array(tp.db.query([[SELECT order_id, user, merged_from, role, qty, state, seat_no,
      created_at, seated_at, left_at, refund_reason
    FROM group_buy_orders WHERE group_id = ? ORDER BY coalesce(seat_no, 1000000), order_id]], g.id))
  return out
end

-- ---- transitions

---A group for a leader whose order is not paid yet: it takes no joins and
---does not run out until the leader's payment opens it.
---@return integer id
function groups.create_pending(activity, user)
  local _, id = tp.db.exec([[INSERT INTO group_buy_groups (activity_id, group_size, state, leader,
      leader_order_id, created_at) VALUES (?, ?, 'pending', ?, 0, ?)]],
    activity.id, activity.group_size, user, tp.now())
  return id
end

---Schedules the group's expiry and announces it. Called in the transaction
---that opens the group, so an open group always has its expiry job.
local function announce_open(activity, group_id)
  local g = groups.load(group_id)
  tp.jobs.schedule("expire_group", { group_id = g.id }, { at = g.expires_at, key = "gb-expire:" .. g.id })
  tp.events.emit("group.opened", { group = groups.public(g, tp.now()), activity_id = activity.id,
                                   leader_order_id = g.leader_order_id })
end

---pending -> open: the leader's payment landed. Takes the first seat.
---@return boolean opened false if the group is no longer pending
function groups.open_pending(activity, group_id, seat)
  local now = tp.now()
  local changed = tp.db.exec([[UPDATE group_buy_groups SET state = 'open', paid = 1, leader = ?,
      leader_order_id = ?, opened_at = ?, expires_at = ?
    WHERE id = ? AND state = 'pending']], seat.user, seat.order_id, now,
    deadlines.group_expires_at(activity, now), group_id)
  if changed == 0 then return false end
  announce_open(activity, group_id)
  return true
end

---A new group, open at once, for a payer who found no open group with room.
---@return integer id
function groups.open_new(activity, seat)
  local now = tp.now()
  local _, id = tp.db.exec([[INSERT INTO group_buy_groups (activity_id, group_size, paid, state,
      leader, leader_order_id, created_at, opened_at, expires_at)
    VALUES (?, ?, 1, 'open', ?, ?, ?, ?, ?)]], activity.id, activity.group_size, seat.user,
    seat.order_id, now, now, deadlines.group_expires_at(activity, now))
  announce_open(activity, id)
  return id
end

---Takes one seat of an open, unexpired group with room, unless user already
---sits in it.
---@return boolean taken
function groups.take_seat(group_id, user)
  return tp.db.exec([[UPDATE group_buy_groups SET paid = paid + 1
    WHERE id = ?1 AND state = 'open' AND paid + virtual_seats < group_size AND expires_at > ?2
      AND NOT EXISTS (SELECT 1 FROM group_buy_orders
                      WHERE group_id = ?1 AND user = ?3 AND state = 'seated')]],
    group_id, tp.now(), user) == 1
end

---Open groups of the activity a payer could still sit in, fullest first (the
---payer completes a group rather than starting another), then soonest to expire.
---@return integer[] ids
function groups.candidates(activity_id, user, except_id)
  local rows = tp.db.query([[SELECT id FROM group_buy_groups g
    WHERE activity_id = ?1 AND state = 'open' AND paid + virtual_seats < group_size
      AND expires_at > ?2 AND id != ?3
      AND NOT EXISTS (SELECT 1 FROM group_buy_orders o
                      WHERE o.group_id = g.id AND o.user = ?4 AND o.state = 'seated')
    ORDER BY group_size - paid - virtual_seats, expires_at, id LIMIT 20]],
    activity_id, tp.now(), except_id or 0, user)
  local ids = {}
  for i, r in ipairs(rows) do ids[i] = r.id end
  return ids
end

---open -> formed once every seat is taken (paid or virtual): every member's
---order is released for fulfilment and the expiry job goes.
---@return boolean formed
function groups.form_if_full(group_id)
  local changed = tp.db.exec([[UPDATE group_buy_groups SET state = 'formed', formed_at = ?
    WHERE id = ? AND state = 'open' AND paid + virtual_seats >= group_size]], tp.now(), group_id)
  if changed == 0 then return false end
  tp.jobs.cancel("gb-expire:" .. group_id)
  local members = groups.seated(group_id)
  local order_ids = tp.json.array()
  for i, m in ipairs(members) do
    tp.call("orders", "release_hold", m.order_id)
    order_ids[i] = m.order_id
  end
  local g = groups.load(group_id)
  tp.events.emit("group.formed", { group = groups.public(g, tp.now()), order_ids = order_ids,
                                   virtual_seats = g.virtual_seats })
  return true
end

---open -> formed at expiry with the seats nobody paid for filled by the host.
---@return boolean formed
function groups.fill_virtually(group_id)
  local changed = tp.db.exec([[UPDATE group_buy_groups SET virtual_seats = group_size - paid
    WHERE id = ? AND state = 'open' AND paid >= 1]], group_id)
  return changed == 1 and groups.form_if_full(group_id)
end

---open -> failed. Returns the members that were seated (the caller refunds them).
---@param reason string "expired" or "emptied"
---@return table[]|nil members nil if the group was not open
function groups.fail(group_id, reason)
  local members = groups.seated(group_id)
  local changed = tp.db.exec([[UPDATE group_buy_groups SET state = 'failed', failed_at = ?,
      fail_reason = ? WHERE id = ? AND state = 'open']], tp.now(), reason, group_id)
  if changed == 0 then return nil end
  tp.jobs.cancel("gb-expire:" .. group_id)
  local order_ids = tp.json.array()
  for i, m in ipairs(members) do order_ids[i] = m.order_id end
  tp.events.emit("group.failed", { group = groups.public(groups.load(group_id), tp.now()),
                                   reason = reason, order_ids = order_ids })
  return members
end

---A seated member left an open group before it formed (a refund; the
---member's row is already 'left'): the seat frees, and if the leader left, the earliest paid member leads. The group
---keeps its expiry. If nobody is left, the group fails.
function groups.leave_open(g, order_id)
  tp.db.exec("UPDATE group_buy_groups SET paid = paid - 1 WHERE id = ? AND state = 'open' AND paid >= 1", g.id)
  if g.leader_order_id ~= order_id then return end
  local next_leader = tp.db.one([[SELECT order_id, user FROM group_buy_orders
    WHERE group_id = ? AND state = 'seated' ORDER BY seat_no LIMIT 1]], g.id)
  if not next_leader then
    groups.fail(g.id, "emptied")
    return
  end
  tp.db.exec("UPDATE group_buy_groups SET leader = ?, leader_order_id = ? WHERE id = ? AND state = 'open'",
    next_leader.user, next_leader.order_id, g.id)
  tp.db.exec("UPDATE group_buy_orders SET role = 'leader' WHERE order_id = ?", next_leader.order_id)
end

return groups
