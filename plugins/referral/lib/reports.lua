-- What distributors and operators read: a distributor's team and orders, a
-- store's and its guides' performance (业绩), and the leaderboard (裂变PK榜).
-- All of it comes from the plugin's own rows (bindings, the attributed orders
-- it keeps from order events, the ledger), never from the orders plugin's
-- tables.
--
-- Over a period [from, to) (UTC epoch seconds) of payment time:
--   orders          attributed paid orders not refunded in full
--   sales_fen       what they paid, less what was refunded
--   commission_fen  the net commission (both levels, reversals included) on them

local check = require("tp.check")

local reports = {}

local DAY = 86400

---The period of a query: from, to (epoch seconds); default the last 30 days.
---@return integer from, integer to
function reports.period(query)
  local function epoch(name)
    local v = query[name]
    if v == nil then return nil end
    local n = math.tointeger(tonumber(v))
    if not n or n < 0 or n > check.MAX_EPOCH then
      tp.fail(400, "invalid_query", ("%s must be an instant in UTC epoch seconds"):format(name))
    end
    return n
  end
  local to = epoch("to") or tp.now() + 1
  local from = epoch("from") or to - 30 * DAY
  if from >= to then tp.fail(400, "invalid_query", "from must be before to") end
  return from, to
end

-- ---- a distributor's own view

---Users bound to user now (level 1), or bound to those (level 2).
function reports.team(user, level, limit)
  local now = tp.now()
  local counts = tp.db.one([[SELECT
      (SELECT count(*) FROM referral_bindings WHERE referrer = ?1 AND (expires_at IS NULL OR expires_at > ?2))
        AS level1,
      (SELECT count(*) FROM referral_bindings b1 JOIN referral_bindings b2 ON b2.referrer = b1.user
       WHERE b1.referrer = ?1 AND (b1.expires_at IS NULL OR b1.expires_at > ?2)
         AND (b2.expires_at IS NULL OR b2.expires_at > ?2)) AS level2]], user, now)
  local items
  if level == 1 then
    items = tp.db.query([[SELECT user, bound_at, expires_at FROM referral_bindings
      WHERE referrer = ?1 AND (expires_at IS NULL OR expires_at > ?2) ORDER BY bound_at, user LIMIT ?3]],
      user, now, limit)
  else
    items = tp.db.query([[SELECT b2.user, b2.referrer AS via, b2.bound_at, b2.expires_at
      FROM referral_bindings b1 JOIN referral_bindings b2 ON b2.referrer = b1.user
      WHERE b1.referrer = ?1 AND (b1.expires_at IS NULL OR b1.expires_at > ?2)
        AND (b2.expires_at IS NULL OR b2.expires_at > ?2)
      ORDER BY b2.bound_at, b2.user LIMIT ?3]], user, now, limit)
  end
  return { level = level, level1 = counts.level1, level2 = counts.level2, items = items }
end

---Orders user earns on (either level), newest first, with her net commission on each.
function reports.orders(user, limit, after)
  local rows = tp.db.query([[SELECT o.order_id, o.buyer, o.paid_fen, o.refunded_fen, o.paid_at,
      o.completed_at, o.settled_at, min(l.level) AS level, sum(l.amount_fen) AS commission_fen,
      CASE WHEN o.settled_at IS NULL THEN 'frozen' ELSE 'settled' END AS state
    FROM referral_orders o JOIN referral_ledger l ON l.order_id = o.order_id AND l.beneficiary = ?1
    WHERE (?2 IS NULL OR o.order_id < ?2)
    GROUP BY o.order_id ORDER BY o.order_id DESC LIMIT ?3]], user, after, limit)
  return { items = rows, next_after = #rows == limit and rows[#rows].order_id or nil }
end

-- ---- operators

local PERF = [[count(CASE WHEN o.refunded_fen < o.paid_fen THEN 1 END) AS orders,
  coalesce(sum(o.paid_fen - o.refunded_fen), 0) AS sales_fen,
  coalesce(sum((SELECT sum(l.amount_fen) FROM referral_ledger l WHERE l.order_id = o.order_id)), 0)
    AS commission_fen]]

local STORE_TOTAL_SQL = "SELECT " .. PERF .. [[ FROM referral_orders o
    WHERE o.store = ?1 AND o.paid_at >= ?2 AND o.paid_at < ?3]]
local STORE_BY_GUIDE_SQL = "SELECT o.guide, " .. PERF .. [[ FROM referral_orders o
    WHERE o.store = ?1 AND o.paid_at >= ?2 AND o.paid_at < ?3 GROUP BY o.guide]]

---A store's performance, with each guide's (every guide now in the store, and
---any guide whose orders were placed at the store before she moved).
function reports.store(store, from, to)
  local total = tp.db.one(STORE_TOTAL_SQL, store, from, to)
  local by_guide = tp.db.query(STORE_BY_GUIDE_SQL, store, from, to)
  local guides, seen = {}, {}
  for _, g in ipairs(by_guide) do
    guides[#guides + 1] = g
    seen[g.guide] = true
  end
  for _, d in ipairs(tp.db.query([[SELECT user FROM referral_distributors
      WHERE store = ? AND kind = 'guide' AND status = 'active']], store)) do
    if not seen[d.user] then
      guides[#guides + 1] = { guide = d.user, orders = 0, sales_fen = 0, commission_fen = 0 }
    end
  end
  table.sort(guides, function(a, b)
    if a.sales_fen ~= b.sales_fen then return a.sales_fen > b.sales_fen end
    return a.guide < b.guide
  end)
  return { store = store, from = from, to = to, orders = total.orders, sales_fen = total.sales_fen,
           commission_fen = total.commission_fen, guides = tp.json.array(guides) }
end

local STORES_SQL = "SELECT s.id AS store, s.name, " .. PERF .. [[
    FROM referral_stores s LEFT JOIN referral_orders o
      ON o.store = s.id AND o.paid_at >= ?1 AND o.paid_at < ?2
    GROUP BY s.id ORDER BY sales_fen DESC, s.id]]

---Every store's totals over the period.
function reports.stores(from, to)
  local rows = tp.db.query(STORES_SQL, from, to)
  return { from = from, to = to, items = rows }
end

local BOARDS = {
  -- sales of orders where she is the level-1 referrer
  sales = [[SELECT referrer AS user, sum(paid_fen - refunded_fen) AS value, count(*) AS orders
    FROM referral_orders WHERE referrer IS NOT NULL AND paid_at >= ?1 AND paid_at < ?2
    GROUP BY referrer HAVING value > 0]],
  -- users newly bound to her (a rebinding to someone else counts for the new referrer)
  new_members = [[SELECT referrer AS user, count(DISTINCT user) AS value
    FROM referral_bind_log WHERE at >= ?1 AND at < ?2 GROUP BY referrer]],
  -- net commission booked to her
  commission = [[SELECT beneficiary AS user, sum(amount_fen) AS value
    FROM referral_ledger WHERE created_at >= ?1 AND created_at < ?2
    GROUP BY beneficiary HAVING value > 0]],
}

---The leaderboard by sales, new_members or commission over the period:
---highest value first, ties by user id (ascending), so the order never depends
---on insertion order. rank is the position (1, 2, 3 ...).
function reports.leaderboard(query)
  local by = check.enum(query.by or "sales", "by", BOARDS)
  local from, to = reports.period(query)
  local limit = check.page(query, 20, 200)
  local rows = tp.db.query("SELECT x.*, d.kind, d.store FROM (" .. BOARDS[by] .. [[) x
    LEFT JOIN referral_distributors d ON d.user = x.user
    ORDER BY x.value DESC, x.user ASC LIMIT ?3]], from, to, limit)
  for i, r in ipairs(rows) do r.rank = i end
  return { by = by, from = from, to = to, items = rows }
end

return reports
