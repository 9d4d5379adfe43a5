-- Order facts (README "Money"): one row per order, kept from the orders
-- plugin's events. Every handler writes the whole row from the order the
-- event carries (an upsert), so a repeated or late delivery changes nothing
-- and an order first seen paid is complete at once.
--
-- The order's source is the last touch the orders plugin froze on it at
-- creation (attribution.source, from our export order_source); its store
-- and guide are referral's (attribution.store/guide) where it named them,
-- else the touch's, so the stores and guides agree with referral.

local facts = {}

---@param o table the order as the orders plugin shows it
function facts.upsert(o)
  local a = o.attribution or {}
  local src = type(a.source) == "table" and a.source or {}
  local products = {}
  for _, l in ipairs(o.lines or {}) do products[#products + 1] = l.sku end
  local campaign = o.campaign and (o.campaign.plugin .. ":" .. tostring(o.campaign.id)) or nil
  tp.db.exec([[
    INSERT INTO analytics_orders (order_id, member, created_at, paid_at, total_fen, paid_fen,
      refunded_fen, source, scene, store, guide, content, live, referrer, campaign, products)
    VALUES (:id, :member, :created_at, :paid_at, :total_fen, :paid_fen, :refunded_fen, :source,
      :scene, :store, :guide, :content, :live, :referrer, :campaign, :products)
    ON CONFLICT (order_id) DO UPDATE SET paid_at = coalesce(excluded.paid_at, paid_at),
      paid_fen = max(paid_fen, excluded.paid_fen),
      refunded_fen = max(refunded_fen, excluded.refunded_fen)]], {
    id = o.id, member = o.user, created_at = o.created_at, paid_at = o.paid_at,
    total_fen = o.total_fen, paid_fen = o.paid_fen or 0, refunded_fen = o.refunded_fen or 0,
    source = src.source or "direct", scene = src.scene, store = a.store or src.store,
    guide = a.guide or src.guide, content = src.content, live = src.live,
    referrer = a.referrer or src.referrer, campaign = campaign,
    products = "," .. table.concat(products, ",") .. "," })
end

function facts.on_event(ev)
  if type(ev.data) == "table" and type(ev.data.order) == "table" then facts.upsert(ev.data.order) end
end

return facts
