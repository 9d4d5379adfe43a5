-- Commission (佣金) as an append-only ledger, driven by the orders plugin's
-- events (delivered at least once: every handler is idempotent through a
-- UNIQUE key and a conditional statement).
--
--   order.paid       the order's attribution (stored on it at creation) names
--                    who earns: level 1 = referrer, level 2 = referrer2; with
--                    self_purchase_rebate a distributor's own order earns level
--                    1 for herself and level 2 for her referrer. Never a third
--                    payee. Per line: floor(line.paid_fen * rate_bp / 10000),
--                    rate from the SKU's override or the config; the daily cap
--                    cuts what passes it. Entries are "frozen".
--   order.refunded   each commission entry of the order gets a negative entry
--                    so that what it keeps is floor(C * (paid - refunded) / paid):
--                    proportional, exact, and an order's entries never net
--                    below zero. Frozen while the order is, settled after.
--   order.completed  schedules the settle job after settle_after_seconds.
--   settle job       the order's frozen entries become settled.
-- A balance may go negative (a refund after a withdrawal): it offsets later
-- earnings; nothing is silently capped at the balance.

local distributors = require("lib.distributors")
local merge = require("lib.merge")

local commission = {}

local BP = 10000

---The rates of a SKU at a level: its override if the operator set one, else the config's.
local function rate_bp(sku, level, s)
  local o = tp.db.one("SELECT level1_rate_bp, level2_rate_bp FROM referral_sku_rates WHERE sku = ?", sku)
  if o then return level == 1 and o.level1_rate_bp or o.level2_rate_bp end
  return level == 1 and s.level1_rate_bp or s.level2_rate_bp
end

---Commission of an order's lines at a level, in fen: floor per line, summed.
---@param lines {sku: string, paid_fen: integer}[]
---@param level integer
---@param s ReferralSettings
---@return integer
function commission.of_lines(lines, level, s)
  local fen = 0
  for _, line in ipairs(lines) do
    fen = fen + line.paid_fen * rate_bp(line.sku, level, s) // BP
  end
  return fen
end

---The order's buyer and attribution as they name members now: an id merged
---away since the order was created names its survivor (lib/merge.lua).
---@param o table the order of the event
---@return string buyer, table attribution
function commission.people(o)
  local a = o.attribution or {}
  return merge.resolve(o.user), { referrer = merge.resolve(a.referrer), referrer2 = merge.resolve(a.referrer2),
    store = a.store, guide = merge.resolve(a.guide) }
end

---Who earns on an order, level by level: at most two payees, each an active
---distributor, never the same person twice, and never the buyer except by the
---self-purchase rebate (after a merge the buyer and her referrer may be one
---person: that level is dropped).
---@param o table the order of the event
---@param s ReferralSettings
---@return {level: integer, user: string}[]
function commission.payees(o, s)
  local buyer, a = commission.people(o)
  local chain
  local out, seen = {}, {}
  if s.self_purchase_rebate and distributors.active(buyer) then
    chain = { buyer, a.referrer }
  else
    chain = { a.referrer, a.referrer2 }
    seen[buyer] = true
  end
  for level = 1, 2 do  -- two levels: the invariant lives here, not in config
    local who = chain[level]
    if who and not seen[who] and distributors.active(who) then
      out[#out + 1] = { level = level, user = who }
      seen[who] = true
    end
  end
  return out
end

---The local calendar day (tenant's zone) of an instant, "YYYY-MM-DD".
local function local_day(at)
  local t = tp.localtime(at)
  return ("%04d-%02d-%02d"):format(t.year, t.month, t.day)
end

---What of amount the daily cap still lets user earn on day; counts it.
---@return integer granted
local function within_daily_cap(user, day, amount, cap)
  if not cap or amount == 0 then return amount end
  tp.db.exec([[INSERT INTO referral_daily (user, day, earned_fen) VALUES (?, ?, 0)
    ON CONFLICT (user, day) DO NOTHING]], user, day)
  local earned = tp.db.one("SELECT earned_fen FROM referral_daily WHERE user = ? AND day = ?", user, day).earned_fen
  local granted = math.max(0, math.min(amount, cap - earned))
  if granted > 0 then
    local changed = tp.db.exec([[UPDATE referral_daily SET earned_fen = earned_fen + ?1
      WHERE user = ?2 AND day = ?3 AND earned_fen + ?1 <= ?4]], granted, user, day, cap)
    if changed ~= 1 then error("daily cap counter moved under us") end
  end
  return granted
end

local function book(e)
  tp.db.exec([[INSERT INTO referral_ledger (order_id, kind, level, refund_no, beneficiary, amount_fen,
      capped_fen, state, created_at, settled_at)
    VALUES (:order_id, :kind, :level, :refund_no, :beneficiary, :amount_fen, :capped_fen, :state,
      :created_at, :settled_at)
    ON CONFLICT (order_id, kind, level, refund_no) DO NOTHING]], e)
end

---order.paid: keeps the order's row and books the frozen commission entries.
---@param o table
---@param s ReferralSettings
function commission.on_paid(o, s)
  local buyer, a = commission.people(o)
  local payees = commission.payees(o, s)
  if #payees == 0 and not a.referrer and not a.guide and not a.store then return end
  local paid_at = o.paid_at or tp.now()
  local inserted = tp.db.exec([[INSERT INTO referral_orders (order_id, buyer, referrer, referrer2,
      store, guide, paid_fen, refunded_fen, paid_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (order_id) DO NOTHING]],
    o.id, buyer, a.referrer, a.referrer2, a.store, a.guide, o.paid_fen, paid_at)
  if inserted == 0 then return end  -- a second delivery of the same event
  local day = local_day(paid_at)
  for _, p in ipairs(payees) do
    local amount = commission.of_lines(o.lines, p.level, s)
    local granted = within_daily_cap(p.user, day, amount, s.daily_cap_fen)
    book({ order_id = o.id, kind = "commission", level = p.level, refund_no = "", beneficiary = p.user,
           amount_fen = granted, capped_fen = amount - granted, state = "frozen",
           created_at = tp.now() })
  end
end

---order.refunded: a negative entry per commission entry, proportional to the
---refunded share of the order, once per refund number.
---@param o table
---@param refund_no string
---@param amount_fen integer
function commission.on_refunded(o, refund_no, amount_fen)
  local row = tp.db.one("SELECT paid_fen, refunded_fen, settled_at FROM referral_orders WHERE order_id = ?", o.id)
  if not row then return end
  local seen = tp.db.exec([[INSERT INTO referral_refunds (order_id, refund_no, amount_fen, at)
    VALUES (?, ?, ?, ?) ON CONFLICT (order_id, refund_no) DO NOTHING]], o.id, refund_no, amount_fen, tp.now())
  if seen == 0 then return end
  local paid, before = row.paid_fen, row.refunded_fen
  local after = math.min(paid, before + amount_fen)
  local changed = tp.db.exec([[UPDATE referral_orders SET refunded_fen = ?
    WHERE order_id = ? AND refunded_fen = ?]], after, o.id, before)
  if changed ~= 1 then error("referral order row moved under us") end
  local state = row.settled_at and "settled" or "frozen"
  local entries = tp.db.query([[SELECT level, beneficiary, amount_fen FROM referral_ledger
    WHERE order_id = ? AND kind = 'commission' ORDER BY level]], o.id)
  for _, e in ipairs(entries) do
    local kept_before = e.amount_fen * (paid - before) // paid
    local kept_after = e.amount_fen * (paid - after) // paid
    if kept_before > kept_after then
      book({ order_id = o.id, kind = "reversal", level = e.level, refund_no = refund_no,
             beneficiary = e.beneficiary, amount_fen = kept_after - kept_before, capped_fen = 0,
             state = state, created_at = tp.now(), settled_at = state == "settled" and tp.now() or nil })
    end
  end
end

---order.completed: the refund window starts; the settle job ends it.
---@param o table
---@param s ReferralSettings
function commission.on_completed(o, s)
  local now = tp.now()
  local changed = tp.db.exec([[UPDATE referral_orders SET completed_at = ?, settle_at = ?
    WHERE order_id = ? AND completed_at IS NULL]], now, now + s.settle_after_seconds, o.id)
  if changed == 1 then
    tp.jobs.schedule("settle", { order_id = o.id },
      { after = s.settle_after_seconds, key = "settle:" .. o.id })
  end
end

---The settle job: the order's frozen entries become settled, once.
---@param order_id integer
function commission.settle(order_id)
  local now = tp.now()
  local changed = tp.db.exec([[UPDATE referral_orders SET settled_at = ?
    WHERE order_id = ? AND settled_at IS NULL]], now, order_id)
  if changed == 0 then return end
  tp.db.exec([[UPDATE referral_ledger SET state = 'settled', settled_at = ?
    WHERE order_id = ? AND state = 'frozen']], now, order_id)
end

return commission
