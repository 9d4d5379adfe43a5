---@diagnostic disable: undefined-global
-- tiers/lib/standing.lua: a member's growth (成长值) and tier.
--
-- Growth is a ledger (tiers_ledger), one row per cause, unique per (user,
-- kind, ref), so a redelivered event never counts twice: a paid order
-- (paid_fen * per_100_fen / 100, rounded down), its refunds (the same share of
-- it back, dated like the order), a sign-in, a task or an operator's
-- adjustment. The growth that counts for a tier is what the window holds
-- (window_days; 0: all of it).
--
-- The tier a member holds by growth goes up at once, the moment the counted
-- growth reaches a higher threshold; it goes down only at a review (local
-- midnight starting each review period), to the level the growth then reaches,
-- unless the tier was reached less than grace_days before. A paid membership
-- (付费会员) grants its tier until a local midnight; the member's tier is the
-- higher of the two. Every change of the tier is a history row and the
-- member's tag in the members plugin's dimension "tier" ("tier:gold"), so a
-- segment rule {tier = "gold"} finds them.

local program = require("lib.program")
local calendar = require("lib.calendar")

local standing = {}

standing.SLICE = 500

---Growth that counts for user's tier now (the window's), and all of it.
---@param user string
---@param now integer
---@return integer counted, integer total
function standing.growth(user, now)
  local w = program.get().window_days
  local row = tp.db.one([[SELECT coalesce(sum(CASE WHEN ?2 = 0 OR at > ?3 THEN amount END), 0) AS counted,
      coalesce(sum(amount), 0) AS total FROM tiers_ledger WHERE user = ?1]], user, w, now - w * 86400)
  return math.max(row.counted, 0), row.total
end

local function rank(id)
  local l = id and program.get().by_id[id]
  return l and l.rank or 0
end

---The higher of two level ids (nil is below every level).
local function higher(a, b)
  return rank(a) >= rank(b) and a or b
end

---The member's row (a fresh one when the plugin has not seen the user).
---@param user string
---@return table
function standing.row(user)
  return tp.db.one("SELECT * FROM tiers_members WHERE user = ?", user)
    or { user = user, tier = nil, held = nil, tier_since = nil, paid_tier = nil, paid_until = nil, fresh = true }
end

local function has_members()
  return tp.exports("members", "set_dimension")
end

---Keeps the members plugin's dimension "tier" in step (when it serves this brand).
local function sync_tag(user, tier)
  if has_members() then
    tp.call("members", "set_dimension", "tier", program.ids(), { { user = user, value = tier or false } })
  end
end

---Makes sure the dimension's tags exist (tier:<id> for every level), so a
---segment or a campaign can name a tier before anyone holds it.
function standing.declare()
  if has_members() then tp.call("members", "set_dimension", "tier", program.ids(), nil) end
end

local function gift(user, level)
  if not level or not level.upgrade_coupon then return end
  local added = tp.db.exec([[INSERT INTO tiers_gifts (user, tier, kind, template_id, at)
    VALUES (?, ?, 'upgrade', ?, ?) ON CONFLICT DO NOTHING]], user, level.id, level.upgrade_coupon, tp.now())
  if added == 1 then
    tp.jobs.schedule("gift", { user = user, tier = level.id, kind = "upgrade", template_id = level.upgrade_coupon },
      { after = 0, key = ("gift:%s:%s:upgrade"):format(user, level.id) })
  end
end

---Recomputes user's tier now: the tier held by growth rises to what the
---counted growth reaches (never falls here; see review), the paid tier counts
---while it lasts. Writes the row, and on a change the history, the tag and an
---upgrade's gift. reason names the cause in the history.
---@param user string
---@param reason string
---@param downgrade boolean? a review: the held tier may fall (grace permitting)
---@param defer_tag boolean? tag the member by a job (inside a merge, which the members plugin is running)
---@return table row
function standing.settle(user, reason, downgrade, defer_tag)
  local now = tp.now()
  local p = program.get()
  local r = standing.row(user)
  local counted = standing.growth(user, now)
  local reached = program.level_for(counted)
  local reached_id = reached and reached.id or nil
  local held, since = r.held, r.tier_since
  if rank(reached_id) > rank(held) then
    held, since = reached_id, now
  elseif downgrade and rank(reached_id) < rank(held)
      and (since == nil or since <= now - p.grace_days * 86400) then
    held, since = reached_id, now
  end
  local paid = (r.paid_until and r.paid_until > now) and r.paid_tier or nil
  local tier = higher(held, paid)
  local old = r.tier
  if r.fresh then
    tp.db.exec([[INSERT INTO tiers_members (user, tier, held, tier_since, paid_tier, paid_until, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?)]], user, tier, held, since, r.paid_tier, r.paid_until, now)
  else
    tp.db.exec([[UPDATE tiers_members SET tier = ?, held = ?, tier_since = ?, paid_tier = ?, paid_until = ?,
      updated_at = ? WHERE user = ?]], tier, held, since, r.paid_tier, r.paid_until, now, user)
  end
  if tier ~= old then
    local why = reason
    if rank(tier) < rank(old) then why = (reason == "paid_ended") and reason or "downgrade" end
    tp.db.exec([[INSERT INTO tiers_history (user, from_tier, to_tier, reason, at) VALUES (?, ?, ?, ?, ?)]],
      user, old, tier, why, now)
    if defer_tag then
      tp.jobs.schedule("retag", { user = user }, { after = 0, key = "retag:" .. user })
    else
      sync_tag(user, tier)
    end
    if rank(tier) > rank(old) then gift(user, p.by_id[tier]) end
    tp.events.emit("tier.changed", { user = user, from = old, to = tier, reason = why })
  end
  r = standing.row(user)
  return r
end

---Posts a growth entry once; returns true when it was new (and the tier was settled).
---@param user string
---@param amount integer
---@param kind "order"|"refund"|"signin"|"task"|"adjust"
---@param ref string
---@param at integer? when it counts from (default now)
---@return boolean
function standing.post(user, amount, kind, ref, at)
  local added = tp.db.exec([[INSERT INTO tiers_ledger (user, amount, kind, ref, at, created_at)
    VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user, kind, ref) DO NOTHING]],
    user, amount, kind, ref, at or tp.now(), tp.now())
  if added == 0 then return false end
  standing.settle(user, kind)
  return true
end

-- ---- paid membership (付费会员)

---Grants plan for qty periods bought with order_id: days add to a running
---membership, else run from today; it ends at a local midnight.
local function grant(user, plan, qty, order_id)
  local added = tp.db.exec([[INSERT INTO tiers_paid (order_id, user, tier, days, at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (order_id) DO NOTHING]], order_id, user, plan.tier, plan.days * qty, tp.now())
  if added == 0 then return end
  local now = tp.now()
  local r = standing.row(user)
  local running = r.paid_until and r.paid_until > now
  local until_ = running and calendar.day_start(r.paid_until, plan.days * qty)
    or calendar.day_start(now, plan.days * qty)
  local tier = running and higher(r.paid_tier, plan.tier) or plan.tier
  if r.fresh then standing.settle(user, "paid") end
  tp.db.exec("UPDATE tiers_members SET paid_tier = ?, paid_until = ? WHERE user = ?", tier, until_, user)
  tp.jobs.schedule("paid_end", { user = user }, { at = until_, key = "paid:" .. user })
  standing.settle(user, "paid")
end

---A full refund of a membership order takes its days back.
local function revoke(order_id)
  local g = tp.db.one("SELECT user, days FROM tiers_paid WHERE order_id = ? AND revoked_at IS NULL", order_id)
  if not g then return end
  tp.db.exec("UPDATE tiers_paid SET revoked_at = ? WHERE order_id = ?", tp.now(), order_id)
  local r = standing.row(g.user)
  if not r.paid_until then return end
  local until_ = calendar.day_start(r.paid_until, -g.days)
  tp.db.exec("UPDATE tiers_members SET paid_until = ? WHERE user = ?", until_, g.user)
  if until_ > tp.now() then
    tp.jobs.schedule("paid_end", { user = g.user }, { at = until_, key = "paid:" .. g.user })
  else
    tp.jobs.cancel("paid:" .. g.user)
  end
  standing.settle(g.user, "refund")
end

-- ---- events

---order.paid: growth for what was paid; a membership SKU grants its tier.
---@param ev TpEvent
function standing.on_paid(ev)
  local o = ev.data.order
  local p = program.get()
  local paid = o.paid_fen or o.total_fen or 0
  local amount = paid * p.per_100_fen // 100
  if amount > 0 then standing.post(o.user, amount, "order", "order:" .. o.id, o.paid_at or ev.emitted_at) end
  for _, line in ipairs(o.lines or {}) do
    local plan = p.paid[line.sku]
    if plan then grant(o.user, plan, line.qty or 1, o.id) end
  end
end

---order.refunded: the refunded share of the order's growth goes back (dated
---like the order, so the window counts it alike); a full refund of a
---membership order takes its days back. The tier itself falls only at a review.
---@param ev TpEvent
function standing.on_refunded(ev)
  local o = ev.data.order
  local refunded = math.tointeger(o.refunded_fen) or 0
  local earned = tp.db.one("SELECT amount, at FROM tiers_ledger WHERE user = ? AND kind = 'order' AND ref = ?",
    o.user, "order:" .. o.id)
  if earned and (o.paid_fen or 0) > 0 then
    local target = earned.amount * math.min(refunded, o.paid_fen) // o.paid_fen
    local back = -tp.db.one([[SELECT coalesce(sum(amount), 0) AS s FROM tiers_ledger
      WHERE user = ? AND kind = 'refund' AND ref LIKE ?]], o.user, "order:" .. o.id .. ":%").s
    if target > back then
      standing.post(o.user, -(target - back), "refund", ("order:%d:%d"):format(o.id, refunded), earned.at)
    end
  end
  if o.status == "refunded" or (o.paid_fen and o.paid_fen > 0 and refunded >= o.paid_fen) then revoke(o.id) end
end

---signin.checked_in {user, day, streak}: the brand's sign-in growth, once a day.
---@param ev TpEvent
function standing.on_signin(ev)
  local d = ev.data
  local amount = program.get().signin
  if amount > 0 and type(d.user) == "string" and type(d.day) == "string" then
    standing.post(d.user, amount, "signin", "signin:" .. d.day)
  end
end

-- ---- jobs

---Job paid_end {user}: a paid membership ran out (or was shortened).
---@param job TpJob
function standing.paid_end(job)
  standing.settle(job.payload.user, "paid_ended")
end

---Job review {after?}: at local midnight starting a period, every member's
---tier is judged again, SLICE members per run (each its own transaction),
---then the next review is scheduled.
---@param job TpJob
function standing.review(job)
  local after = job.payload and job.payload.after or ""
  local rows = tp.db.query("SELECT user FROM tiers_members WHERE user > ? ORDER BY user LIMIT ?", after, standing.SLICE)
  for _, r in ipairs(rows) do standing.settle(r.user, "review", true) end
  if #rows == standing.SLICE then
    tp.jobs.schedule("review", { after = rows[#rows].user }, { after = 0, key = "review_slice" })
  else
    standing.schedule_review()
  end
end

---Schedules the next review at the next period's local midnight.
function standing.schedule_review()
  tp.jobs.schedule("review", {}, { at = calendar.next_period(tp.now(), program.get().every), key = "review" })
end

---Job retag {user}: the member's tier tag as it stands now.
---@param job TpJob
function standing.retag(job)
  local r = tp.db.one("SELECT tier FROM tiers_members WHERE user = ?", job.payload.user)
  sync_tag(job.payload.user, r and r.tier)
end

---Job gift {user, tier, kind, template_id}: the coupon through the coupons plugin.
---@param job TpJob
function standing.gift_job(job)
  local g = job.payload
  local res = tp.call("coupons", "issue", g.template_id, { g.user }, ("tiers:%s:%s"):format(g.kind, g.tier))
  local coupon = res.coupons and res.coupons[1]
  tp.db.exec("UPDATE tiers_gifts SET coupon_id = ? WHERE user = ? AND tier = ? AND kind = ?",
    coupon and coupon.coupon_id, g.user, g.tier, g.kind)
end

return standing
