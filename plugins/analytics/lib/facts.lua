-- Order facts (README "Money"): one row per order, kept from the orders
-- plugin's events. Every handler writes the whole row from the order the
-- event carries (an upsert), so a repeated or late delivery changes nothing
-- and an order first seen paid is complete at once.
--
-- The order's source is the last touch the orders plugin froze on it at
-- creation (attribution.source, from our export order_source); its store
-- and guide are referral's (attribution.store/guide) where it named them,
-- else the touch's, so the stores and guides agree with referral.

local money = require("lib.money")
local rollup = require("lib.rollup")

local facts = {}

---The order's refunded amount split over its lines by largest remainder
---(in proportion to each line's paid_fen), so the lines' refunds sum to the
---order's exactly.
local function split_refund(lines, refunded)
  local total, shares, rest = 0, {}, refunded
  for _, l in ipairs(lines) do total = total + (l.paid_fen or 0) end
  if total == 0 or refunded == 0 then
    for i in ipairs(lines) do shares[i] = 0 end
    return shares
  end
  local order = {}
  for i, l in ipairs(lines) do
    local exact = refunded * (l.paid_fen or 0)
    shares[i] = exact // total
    rest = rest - shares[i]
    order[i] = { i = i, r = exact % total }
  end
  table.sort(order, function(a, b) if a.r ~= b.r then return a.r > b.r end return a.i < b.i end)
  for k = 1, rest do shares[order[k].i] = shares[order[k].i] + 1 end
  return shares
end

---The order's lines, with its refund split over them.
local function upsert_lines(o)
  local lines = o.lines or {}
  local shares = split_refund(lines, o.refunded_fen or 0)
  for i, l in ipairs(lines) do
    tp.db.exec([[INSERT INTO analytics_lines (order_id, line_no, sku, qty, paid_fen, refunded_fen)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6)
      ON CONFLICT (order_id, line_no) DO UPDATE SET refunded_fen = max(refunded_fen, excluded.refunded_fen)]],
      o.id, i, l.sku, l.qty, l.paid_fen or 0, shares[i])
  end
end

---Recomputes the member's first and second purchase (analytics_buyers).
---@param member string
function facts.buyer(member)
  local rows = tp.db.query([[SELECT paid_at FROM analytics_orders INDEXED BY analytics_orders_buys
    WHERE member = ? AND paid_at IS NOT NULL AND paid_fen > refunded_fen ORDER BY paid_at LIMIT 2]], member)
  if #rows == 0 then
    tp.db.exec("DELETE FROM analytics_buyers WHERE member = ?", member)
    return
  end
  tp.db.exec([[INSERT INTO analytics_buyers (member, first_at, second_at) VALUES (?1, ?2, ?3)
    ON CONFLICT (member) DO UPDATE SET first_at = excluded.first_at, second_at = excluded.second_at]],
    member, rows[1].paid_at, rows[2] and rows[2].paid_at or nil)
end

---The coupon the order used as the activity that made its template
---('coupons:<template>', as a campaign script names it), or nil: no coupon, or
---no coupons plugin to ask.
local function coupon_of(o)
  if math.type(o.coupon_id) ~= "integer" or not tp.exports("coupons", "template_of") then return nil end
  local template = tp.call("coupons", "template_of", o.coupon_id)
  return template and ("coupons:" .. tostring(template)) or nil
end

---@param o table the order as the orders plugin shows it
function facts.upsert(o)
  local a = o.attribution or {}
  local src = type(a.source) == "table" and a.source or {}
  local products, campaign_fen = {}, 0
  for _, l in ipairs(o.lines or {}) do
    products[#products + 1] = l.sku
    campaign_fen = campaign_fen + ((l.list_price_fen or 0) - (l.unit_price_fen or 0)) * (l.qty or 0)
  end
  local campaign = o.campaign and (o.campaign.plugin .. ":" .. tostring(o.campaign.id)) or nil
  tp.db.exec([[
    INSERT INTO analytics_orders (order_id, member, created_at, paid_at, total_fen, paid_fen,
      refunded_fen, source, scene, store, guide, content, live, referrer, campaign, products,
      coupon_fen, campaign_fen, coupon)
    VALUES (:id, :member, :created_at, :paid_at, :total_fen, :paid_fen, :refunded_fen, :source,
      :scene, :store, :guide, :content, :live, :referrer, :campaign, :products, :coupon_fen,
      :campaign_fen, :coupon)
    ON CONFLICT (order_id) DO UPDATE SET paid_at = coalesce(excluded.paid_at, paid_at),
      coupon = coalesce(coupon, excluded.coupon),
      paid_fen = max(paid_fen, excluded.paid_fen),
      refunded_fen = max(refunded_fen, excluded.refunded_fen)]], {
    id = o.id, member = o.user, created_at = o.created_at, paid_at = o.paid_at,
    total_fen = o.total_fen, paid_fen = o.paid_fen or 0, refunded_fen = o.refunded_fen or 0,
    source = src.source or "direct", scene = src.scene, store = a.store or src.store,
    guide = a.guide or src.guide, content = src.content, live = src.live,
    referrer = a.referrer or src.referrer, campaign = campaign,
    products = "," .. table.concat(products, ",") .. ",",
    coupon_fen = o.discount_fen or 0, campaign_fen = campaign_fen, coupon = coupon_of(o) })
  upsert_lines(o)
  -- the money of the days within seconds (the money job folds the order in),
  -- the funnel's order and pay steps with the next rollup (the days' reach rows)
  money.queue(o.id)
  rollup.queue_steps(o.id)
  -- buyers are members with a paid order not refunded in full: an event that
  -- carries no payment and no refund (an order created, or expired unpaid)
  -- leaves the row's paid_at, paid_fen and refunded_fen as they were (the
  -- upsert keeps the larger), so it cannot change them; three statements fewer
  -- for every order created
  if o.paid_at ~= nil or (o.paid_fen or 0) > 0 or (o.refunded_fen or 0) > 0 then
    facts.buyer(tp.db.one("SELECT member FROM analytics_orders WHERE order_id = ?", o.id).member)
  end
end

function facts.on_event(ev)
  if type(ev.data) == "table" and type(ev.data.order) == "table" then facts.upsert(ev.data.order) end
end

return facts
