-- Opening a group and joining one: the user routes that create an order.
-- One transaction each: the checks that write nothing (a member-only
-- activity's audience among them, judged when the user opens or joins), then
-- the user's count, then the order (orders reserves the catalog's stock), then
-- our row.
-- An unpaid order does not hold a seat: a seat counts when its payment lands
-- (lib/seating.lua), so a crowd of unpaid joiners cannot lock a group.

local check = require("tp.check")
local orders = require("tp.orders")
local activities = require("lib.activities")
local audience = require("tp.audience")
local deadlines = require("lib.deadlines")
local groups = require("lib.groups")
local quota = require("lib.quota")
local risk = require("tp.risk")

local join = {}

local function refuse(code, message, details)
  tp.fail(409, code, message, details)
end

---The request's qty. (A retried Idempotency-Key never gets here: both routes
---are idempotent, and the host answers a retry with the first answer.)
local function read_request(req)
  local body = req.body == nil and {} or check.body(req.body, true)
  check.only(body, { qty = true })
  return check.integer(body.qty, "qty", 1, 1000, true) or 1
end

---The activity, open now, for qty units in one order.
local function running_activity(id, qty)
  local a = activities.active(id)
  local now = tp.now()
  local phase = activities.phase(a, now)
  if phase == "not_started" then
    refuse("not_started", "this group buy has not started", { starts_at = a.starts_at })
  elseif phase == "ended" then
    refuse("ended", "this group buy has ended", { ends_at = a.ends_at })
  end
  if qty > a.per_order_limit then
    refuse("order_limit_exceeded", ("at most %d per order"):format(a.per_order_limit),
      { per_order_limit = a.per_order_limit })
  end
  return a
end

---A member-only activity admits only its segment's or tag's members, judged
---now; 403 members_only for anyone else.
local function check_audience(a, user)
  audience.admit(a.audience, user, "group buy")
end

local function count_for_user(a, user, qty)
  if not quota.take(a.id, user, qty, a.per_user_limit) then
    refuse("limit_reached", ("at most %d per user in this group buy"):format(a.per_user_limit),
      { per_user_limit = a.per_user_limit })
  end
end

---The order, through orders: held once paid until the group forms.
local function create_order(a, user, qty, role, group_id, pay_within)
  local price = role == "leader" and a.leader_price_fen or a.price_fen
  return orders.create_view({
    user = user,
    lines = { { sku = a.sku, qty = qty, unit_price_fen = price } },
    campaign = { id = group_id, hold = true, unpaid_timeout_seconds = pay_within } }, "group buy")
end

local function record(order, a, group_id, role, qty)
  tp.db.exec([[INSERT INTO group_buy_orders (order_id, activity_id, group_id, group_asked, user,
      role, role_asked, qty, state, counted, created_at)
    VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?5, ?6, 'unpaid', 1, ?7)]],
    order.id, a.id, group_id, order.user, role, qty, tp.now())
end

---POST /group-buys/{id}/open {qty?}: the user opens a group as its leader.
---The group waits ('pending') until the leader's payment opens it.
function join.open(req)
  local qty = read_request(req)
  local a = running_activity(req.params.id, qty)
  check_audience(a, req.user)
  risk.check(req, "join", { plugin = "group_buy", id = a.id, qty = qty })
  count_for_user(a, req.user, qty)
  local group_id = groups.create_pending(a, req.user)
  local order = create_order(a, req.user, qty, "leader", group_id,
    deadlines.pay_within(a, tp.now(), nil))
  tp.db.exec("UPDATE group_buy_groups SET leader_order_id = ? WHERE id = ?", order.id, group_id)
  record(order, a, group_id, "leader", qty)
  return 201, { order = order, group = groups.public(groups.load(group_id), tp.now()) }
end

local GROUP_REFUSALS = {
  pending = { "group_not_open", "this group opens when its leader has paid" },
  abandoned = { "group_not_open", "this group never opened: its leader did not pay" },
  formed = { "group_formed", "this group is already complete" },
  failed = { "group_failed", "this group did not fill in time and has closed" },
}

---The group, if it takes a joiner now.
local function joinable_group(a, group_id)
  local g = groups.load(group_id)
  if not g or g.activity_id ~= a.id then tp.fail(404, "group_not_found", "no such group in this group buy") end
  local refusal = GROUP_REFUSALS[g.state]
  if refusal then refuse(refusal[1], refusal[2], { state = g.state }) end
  if g.expires_at <= tp.now() then
    refuse("group_expired", "this group ran out of time", { expires_at = g.expires_at })
  end
  if g.paid + g.virtual_seats >= g.group_size then
    refuse("group_full", "this group has no seat left")
  end
  return g
end

---A user is in a group once: with a seat, or with an order that may take one.
local function refuse_second_join(g, user)
  local mine = tp.db.one([[SELECT order_id, state FROM group_buy_orders
    WHERE group_id = ? AND user = ? AND state IN ('unpaid', 'seated') LIMIT 1]], g.id, user)
  if mine then
    refuse("already_joined", "you are already in this group", { order_id = mine.order_id, state = mine.state })
  end
end

local function refuse_returning_user(a, user)
  if a.new_users_only and tp.call("orders", "customer", user).paid_orders > 0 then
    refuse("new_users_only", "this group buy is for new customers only")
  end
end

---POST /group-buys/{id}/groups/{gid}/join {qty?}: the user joins an open group.
function join.join(req)
  local qty = read_request(req)
  local a = running_activity(req.params.id, qty)
  check_audience(a, req.user)
  local g = joinable_group(a, req.params.gid)
  risk.check(req, "join", { plugin = "group_buy", id = a.id, group = g.id, qty = qty })
  refuse_second_join(g, req.user)
  refuse_returning_user(a, req.user)
  count_for_user(a, req.user, qty)
  local order = create_order(a, req.user, qty, "member", g.id, deadlines.pay_within(a, tp.now(), g))
  record(order, a, g.id, "member", qty)
  return 201, { order = order, group = groups.public(g, tp.now()) }
end

return join
