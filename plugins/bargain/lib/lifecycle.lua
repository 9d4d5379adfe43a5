-- A bargain's life after its cuts: starting it, buying, the clock closing it,
-- and what the orders plugin tells it about the order. Every transition is a
-- conditional UPDATE ... WHERE state = <the state it leaves>.
--
--   open -> floor_reached            the last cut (lib/help.lua)
--   open -> expired                  expires_at passed (job "expire")
--   open -> ordered                  early buy, if the rules allow it
--   floor_reached -> ordered         buy at the floor price
--   floor_reached -> closed          pay window passed unbought (job "pay_deadline")
--   ordered -> paid                  order.paid
--   ordered -> open | floor_reached  its unpaid order was cancelled while time is left
--   ordered -> expired | closed      its unpaid order was cancelled after its time
--   paid|ordered -> closed           its paid order was refunded in full
--   open | floor_reached -> ordered  a late payment for a cancelled order reclaims it

local audience = require("tp.audience")
local orders = require("tp.orders")
local help = require("lib.help")
local rules = require("lib.rules")
local store = require("lib.store")

local lifecycle = {}

local LIVE = { open = true, floor_reached = true, ordered = true }

local function refuse(code, message, details)
  tp.fail(409, code, message, details)
end

local function emit(name, id, reason)
  tp.events.emit(name, { bargain = store.public(store.load(id), tp.now(), true), reason = reason })
end

-- ---- starting

---Counts one start of user in the activity unless that passes limit.
---@return boolean
local function count_start(activity_id, user, limit)
  -- a refused update changes no row (RETURNING would cost an ephemeral table)
  return tp.db.exec([[
    INSERT INTO bargain_starters (activity_id, user, started) VALUES (?1, ?2, 1)
    ON CONFLICT (activity_id, user) DO UPDATE SET started = started + 1 WHERE started + 1 <= ?3]],
    activity_id, user, limit) == 1
end

local LIVE_BARGAIN_SQL = "SELECT " .. store.BARGAIN_COLUMNS .. [[ FROM bargain_bargains
    WHERE activity_id = ? AND initiator = ? AND state IN ('open', 'floor_reached', 'ordered')]]

---The user's bargain of this activity that is still running, if any.
local function live_bargain(activity_id, user, now)
  local rows = tp.db.query(LIVE_BARGAIN_SQL, activity_id, user)
  for _, b in ipairs(rows) do
    if LIVE[store.state_at(b, now)] then return b end
  end
  return nil
end

---A member-only activity lets only its segment's or tag's members start a
---bargain, judged now; 403 members_only for anyone else. Helping stays open to
---everyone (a friend need not be a member), and the initiator may buy what she
---started even if she has left the audience since.
local function check_audience(activity, user)
  audience.admit(activity.audience, user, "bargain activity")
end

---POST /bargain/activities/{id}/start: freezes the activity's rules into a new
---bargain, schedules its expiry in the same transaction, and makes the
---initiator's first cut if the activity has one.
---@param activity table  the activity row
---@param user string
---@return table the bargain (public view)
function lifecycle.start(activity, user)
  local now = tp.now()
  if activity.status ~= "active" then tp.fail(404, "activity_not_found", "no such bargain activity") end
  if now < activity.starts_at then
    refuse("not_started", "this bargain activity has not started", { opens_at = activity.starts_at })
  end
  if now >= activity.ends_at then refuse("ended", "this bargain activity has ended") end
  check_audience(activity, user)
  local live = live_bargain(activity.id, user, now)
  if live then
    refuse("bargain_in_progress", "you already have a bargain running in this activity",
      { bargain_id = live.id })
  end
  if not count_start(activity.id, user, activity.starts_per_user) then
    refuse("start_limit_reached", ("a user may start at most %d bargains of this activity")
      :format(activity.starts_per_user), { starts_per_user = activity.starts_per_user })
  end
  local cuts_total = rules.cuts_total({ helpers_needed = activity.helpers_needed,
                                        first_cut = activity.first_cut == 1 })
  local _, id = tp.db.exec([[INSERT INTO bargain_bargains (activity_id, initiator, rules, sku,
      original_price_fen, floor_price_fen, cuts_total, cuts_left, remaining_fen, state, started_at,
      expires_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?5 - ?6, 'open', ?8, ?9)]],
    activity.id, user, rules.snapshot(activity), activity.sku, activity.original_price_fen,
    activity.floor_price_fen, cuts_total, now, now + activity.duration_seconds)
  tp.jobs.schedule("expire", { bargain_id = id }, { at = now + activity.duration_seconds,
                                                   key = "expire:" .. id })
  if activity.first_cut == 1 then help.record_cut(store.load(id), user, now) end
  emit("bargain.started", id)
  return store.public(store.load(id), now)
end

-- ---- buying

---The order at the bargain's current price; the catalog running out is sold_out.
local function create_order(b, price_fen, timeout)
  return orders.create_view({
    user = b.initiator,
    lines = { { sku = b.sku, qty = 1, unit_price_fen = price_fen } },
    campaign = { id = b.id, unpaid_timeout_seconds = timeout } }, "bargain")
end

---POST /bargains/{id}/buy: the initiator buys at the current price, once.
---While the order is unpaid a repeated buy answers the same order.
---@param id integer
---@param user string
---@return integer status, table|TpJsonView order
function lifecycle.buy(id, user)
  local b = store.load(id)
  if not b then tp.fail(404, "bargain_not_found", "no such bargain") end
  if b.initiator ~= user then tp.fail(403, "not_initiator", "only the initiator may buy a bargain") end
  local now = tp.now()
  local state = store.state_at(b, now)
  if state == "ordered" then return 200, tp.call_view("orders", "get", b.order_id) end
  if state == "paid" then refuse("already_bought", "this bargain is bought", { order_id = b.order_id }) end
  if state == "expired" then refuse("bargain_expired", "this bargain's time is up") end
  if state == "closed" then refuse("bargain_closed", "this bargain is closed") end
  local r = rules.decode(b.rules)
  if state == "open" and not r.buy_before_floor then
    refuse("floor_not_reached", "this bargain can be bought only at its floor price",
      { price_fen = store.price(b), cuts_left = b.cuts_left })
  end
  -- at the floor the order gets what is left of the pay window; an early buy
  -- gets a whole window (orders takes 60 s at least)
  local timeout = state == "floor_reached" and b.pay_deadline - now or r.pay_window_seconds
  timeout = math.max(60, math.min(86400, timeout))
  local claimed = tp.db.exec([[UPDATE bargain_bargains SET state = 'ordered'
    WHERE id = ? AND state = ? AND remaining_fen = ? AND order_id IS NULL]], id, b.state, b.remaining_fen)
  if claimed == 0 then refuse("bargain_changed", "the bargain changed; try again") end
  local order = create_order(b, store.price(b), timeout)
  tp.db.exec("UPDATE bargain_bargains SET order_id = ? WHERE id = ?", order.id, id)
  return 201, order
end

-- ---- the clock

---Job "expire": an open bargain whose time is up closes unbought.
function lifecycle.expire(job)
  local id, now = job.payload.bargain_id, tp.now()
  local changed = tp.db.exec([[UPDATE bargain_bargains SET state = 'expired', ended_at = ?,
    end_reason = 'time_up' WHERE id = ? AND state = 'open' AND expires_at <= ?]], now, id, now)
  if changed == 1 then emit("bargain.expired", id, "time_up") end
end

---Job "pay_deadline": a bargain at the floor that nobody bought in its pay window closes.
function lifecycle.pay_deadline(job)
  local id, now = job.payload.bargain_id, tp.now()
  local changed = tp.db.exec([[UPDATE bargain_bargains SET state = 'closed', ended_at = ?,
    end_reason = 'pay_window_passed' WHERE id = ? AND state = 'floor_reached' AND pay_deadline <= ?]],
    now, id, now)
  if changed == 1 then emit("bargain.closed", id, "pay_window_passed") end
end

-- ---- the campaign contract with orders

local function bargain_of(order)
  local id = order.campaign and math.tointeger(tonumber(order.campaign.id))
  return id and store.load(id)
end

---An unpaid order of the bargain was cancelled: the bargain goes back to
---where it was (open, or at the floor) if its time is not up, so the
---initiator may buy again; otherwise it ends. A paid order refunded in full
---ends the bargain. Orders of the bargain that are no longer its current
---one hold nothing.
function lifecycle.release_order(order)
  local b = bargain_of(order)
  if not b or b.order_id ~= order.id then return true end
  local now = tp.now()
  if order.status ~= "cancelled" then
    local changed = tp.db.exec([[UPDATE bargain_bargains SET state = 'closed', ended_at = ?,
      end_reason = 'refunded' WHERE id = ? AND order_id = ? AND state IN ('ordered', 'paid')]],
      now, b.id, order.id)
    if changed == 1 then emit("bargain.closed", b.id, "refunded") end
    return true
  end
  local at_floor = b.cuts_left == 0
  local deadline = at_floor and b.pay_deadline or b.expires_at
  local back = at_floor and "floor_reached" or "open"
  if now < deadline then
    tp.db.exec([[UPDATE bargain_bargains SET state = ?, order_id = NULL
      WHERE id = ? AND order_id = ? AND state = 'ordered']], back, b.id, order.id)
    return true
  end
  local ended = at_floor and "closed" or "expired"
  local changed = tp.db.exec([[UPDATE bargain_bargains SET state = ?, ended_at = ?,
    end_reason = 'order_cancelled', order_id = NULL WHERE id = ? AND order_id = ? AND state = 'ordered']],
    ended, now, b.id, order.id)
  if changed == 1 then emit("bargain." .. ended, b.id, "order_cancelled") end
  return true
end

---A payment arrived for a cancelled order of the bargain: it takes the
---bargain again if the bargain is still waiting for a buy (open or at the
---floor, no other order); otherwise false and orders refunds the money.
function lifecycle.reclaim_order(order)
  local b = bargain_of(order)
  if not b or b.order_id ~= nil then return false end
  local state = store.state_at(b, tp.now())
  if state ~= "open" and state ~= "floor_reached" then return false end
  return tp.db.exec([[UPDATE bargain_bargains SET state = 'ordered', order_id = ?
    WHERE id = ? AND state = ? AND order_id IS NULL]], order.id, b.id, b.state) == 1
end

---order.paid: the bargain's current order is paid; the bargain is done.
function lifecycle.on_order_paid(ev)
  local o = ev.data.order
  if not (o and o.campaign and o.campaign.plugin == "bargain") then return end
  local id = math.tointeger(tonumber(o.campaign.id))
  local changed = tp.db.exec([[UPDATE bargain_bargains SET state = 'paid', paid_at = ?
    WHERE id = ? AND order_id = ? AND state = 'ordered']], tp.now(), id, o.id)
  if changed == 1 then
    tp.jobs.cancel("expire:" .. id)
    tp.jobs.cancel("pay:" .. id)
  end
end

return lifecycle
