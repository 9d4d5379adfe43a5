---@diagnostic disable: undefined-global
-- members/lib/facts.lua: what the pool knows from orders. Every paid order of
-- a member is a row of members_orders (its money, SKUs, coupon and campaign),
-- written by the order.paid and order.refunded subscribers; the member's
-- totals (paid_orders, paid_fen, refunded_fen, first/last_paid_at) are a cache
-- of those rows, recomputed from them, never incremented, so a redelivered
-- event or a merge cannot count twice.

local store = require("lib.store")

local facts = {}

---Recomputes the member's totals from its order rows.
---@param n integer
function facts.refresh(n)
  tp.db.exec([[UPDATE members_members SET
      paid_orders = (SELECT count(*) FROM members_orders WHERE n = ?1),
      paid_fen = (SELECT coalesce(sum(paid_fen), 0) FROM members_orders WHERE n = ?1),
      refunded_fen = (SELECT coalesce(sum(refunded_fen), 0) FROM members_orders WHERE n = ?1),
      first_paid_at = (SELECT min(paid_at) FROM members_orders WHERE n = ?1),
      last_paid_at = (SELECT max(paid_at) FROM members_orders WHERE n = ?1)
    WHERE n = ?1]], n)
end

---order.paid: the order becomes a fact of its member (created if new to the pool).
---@param ev TpEvent
---@return integer|nil n the member's number
function facts.on_paid(ev)
  local o = ev.data.order
  local row = store.ensure(o.user)
  if not row then return nil end  -- the member was erased since
  local campaign = o.campaign and (o.campaign.plugin .. ":" .. tostring(o.campaign.id)) or nil
  local changed = tp.db.exec([[INSERT INTO members_orders
      (order_id, n, paid_fen, refunded_fen, paid_at, coupon_id, campaign)
    VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING]],
    o.id, row.n, o.paid_fen or o.total_fen, o.refunded_fen or 0, o.paid_at or ev.emitted_at,
    o.coupon_id, campaign)
  if changed == 1 then
    for _, line in ipairs(o.lines or {}) do
      tp.db.exec([[INSERT INTO members_order_skus (order_id, sku, qty) VALUES (?, ?, ?)
        ON CONFLICT (order_id, sku) DO UPDATE SET qty = qty + excluded.qty]], o.id, line.sku, line.qty)
    end
  end
  facts.refresh(row.n)
  return row.n
end

---order.refunded: the order's refunded amount, as the order now says.
---@param ev TpEvent
---@return integer|nil n
function facts.on_refunded(ev)
  local o = ev.data.order
  local row = tp.db.one("SELECT n FROM members_orders WHERE order_id = ?", o.id)
  if not row then return nil end
  tp.db.exec("UPDATE members_orders SET refunded_fen = ? WHERE order_id = ?", o.refunded_fen, o.id)
  facts.refresh(row.n)
  return row.n
end

---Export facts_page(after, limit, since) -> {members = {...}, next = n|nil}:
---the order facts of the members numbered above after that paid an order
---since the epoch since (not refunded in full), in number order, at most
---limit (1-5000) of them: for each {user, last_paid_at, orders, net_fen,
---store, guide} (orders and net_fen count only those orders; store and guide
---are the member's source). next is the after of the next page (nil at the
---end). For RFM (the rfm plugin walks every buyer with it, a page per job).
---@param after integer
---@param limit integer
---@param since integer
---@return {members: table[], next: integer|nil}
function facts.export_page(after, limit, since)
  after = math.tointeger(after) or 0
  limit = math.max(1, math.min(math.tointeger(limit) or 1000, 5000))
  since = math.tointeger(since) or 0
  local rows = tp.db.query([[SELECT a.n, m.id, m.state, m.store, m.guide, a.last_paid_at, a.orders, a.net_fen
    FROM (SELECT o.n, max(o.paid_at) AS last_paid_at, count(*) AS orders,
                 sum(o.paid_fen - o.refunded_fen) AS net_fen
          FROM members_orders o WHERE o.n > ?1 AND o.paid_at > ?2 AND o.refunded_fen < o.paid_fen
          GROUP BY o.n ORDER BY o.n LIMIT ?3) a
    JOIN members_members m ON m.n = a.n ORDER BY a.n]], after, since, limit)
  local out = {}
  for _, r in ipairs(rows) do
    if r.state == "active" then
      out[#out + 1] = { user = r.id, last_paid_at = r.last_paid_at, orders = r.orders, net_fen = r.net_fen,
                        store = r.store, guide = r.guide }
    end
  end
  return { members = out, next = #rows == limit and rows[#rows].n or nil }
end

return facts
