-- Money as the orders change (README "Money"). Each order event queues its
-- order (analytics_money_queue) and the `money` job folds what changed into the
-- per-day tables, as a rebuild of the day from the order facts would have them
-- (rollup.orders and rollup.visits; test/money_fold_test.lua checks it):
--
--   analytics_day_orders     per key and day of pay: orders, GMV, campaign and coupon cost
--   analytics_day_products   per SKU and day of pay: units and GMV
--   analytics_visits         the member under 'payer:<key>' and 'buyer:<sku>' (day of
--                            pay) and 'part:<campaign>' (days created and paid)
--   analytics_day_uv         those visits' counts
--
-- Why not redo the day: during a flash sale a day holds tens of thousands of
-- orders, and redoing its tables every two seconds took tens of milliseconds on
-- the loop each time, which every buy waited behind (tests/bench/README.md). A
-- fold costs a fixed number of statements per batch of changed orders.
--
-- How: what an order adds to those tables follows from its state (pay time,
-- paid, refunded, its lines' refunds); everything else about an order is fixed
-- once it is known. analytics_orders.folded_* keep the state last folded in;
-- a fold adds the order's contribution now and takes away the folded one, so
-- an order changed many times between two folds is folded once. Sums take
-- deltas. Visits only grow, except when an order is refunded in full: its
-- payer and buyer keys of its day then go unless another order of the member
-- paid that day still gives them. An order whose pay time moved once folded
-- (orders never moves it) marks both days for a rebuild whole (analytics_dirty).

local day = require("lib.day")

local money = {}

-- Each order counts under nine keys (analytics_day_orders.key): all, its
-- source, scene, store, guide, content, live room, referrer and campaign.
-- KEYS is the table of their numbers k.n, KEY the key of order `o` for k.n,
-- PAYER the keys its member is a payer under ('payer:' || KEY).
money.KEYS = "(SELECT 0 AS n UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL "
  .. "SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8) AS k"
money.KEY = [[(CASE k.n WHEN 0 THEN '' WHEN 1 THEN o.source
  WHEN 2 THEN 'scene:' || coalesce(o.scene, '') WHEN 3 THEN 'store:' || coalesce(o.store, '')
  WHEN 4 THEN 'guide:' || coalesce(o.guide, '') WHEN 5 THEN 'content:' || coalesce(o.content, '')
  WHEN 6 THEN 'live:' || coalesce(o.live, '') WHEN 7 THEN 'referrer:' || coalesce(o.referrer, '')
  ELSE 'camp:' || coalesce(o.campaign, 'none') END)]]
money.PAYER_NS = "(0, 1, 3, 4, 8)"
money.PAYER = "k.n IN " .. money.PAYER_NS

-- Orders changed since their last fold, per run of the job, and the pause
-- before the next run while more are queued: a run stays under a millisecond
-- on the loop and the buys of a flash sale are served between two runs (the
-- runner would run back-to-back runs in one slice of up to 5 ms, and every buy
-- of that slice would wait for it). About 4,500 orders a second are folded;
-- beyond that the money lags and catches up once the sale slows.
money.BATCH = 200
money.PAUSE = 0.05

---Queues order `id` for the next fold, and schedules the job at the end of
---the current two seconds when the queue was empty (a later order finds it
---scheduled; the rollup job drains the queue too).
---@param id integer
function money.queue(id)
  local empty = tp.db.one("SELECT NOT EXISTS (SELECT 1 FROM analytics_money_queue) AS e").e == 1
  tp.db.exec("INSERT OR IGNORE INTO analytics_money_queue (order_id) VALUES (?)", id)
  if empty then
    local at = tp.now() // 2 * 2 + 2
    tp.jobs.schedule("money", nil, { at = at, key = "money" })
  end
end

-- the batch's orders (o), each with the day holding a time of it (d). CROSS
-- JOIN keeps this order: from the batch, never from a day's orders (a day of a
-- flash sale holds tens of thousands)
local function orders_at(time)
  return ([[analytics_money_batch b CROSS JOIN analytics_orders o ON o.order_id = b.order_id
    CROSS JOIN analytics_money_days d ON %s >= d.day AND %s < d.stop]]):format(time, time)
end
local NOW = orders_at("o.paid_at")
local FOLDED = orders_at("o.folded_paid_at")     -- none until folded once paid
local CREATED = orders_at("o.created_at")
local KEPT = "(o.paid_at IS o.folded_paid_at OR o.folded_paid_at IS NULL)"   -- not moved
local PAYS = "o.paid_fen > o.refunded_fen"                                  -- counts as an order
local PAID = "o.folded_paid_fen > o.folded_refunded_fen"                     -- did when folded

---The local days [day, stop) that the batch's times fall in, for the joins.
local function batch_days()
  tp.db.exec("DELETE FROM analytics_money_days")
  local r = tp.db.one([[SELECT min(t) AS lo, max(t) AS hi FROM (
    SELECT min(o.created_at, coalesce(o.paid_at, o.created_at), coalesce(o.folded_paid_at, o.created_at)) AS t
    FROM analytics_money_batch b JOIN analytics_orders o ON o.order_id = b.order_id
    UNION ALL SELECT max(o.created_at, coalesce(o.paid_at, 0), coalesce(o.folded_paid_at, 0))
    FROM analytics_money_batch b JOIN analytics_orders o ON o.order_id = b.order_id)]])
  local d = day.of(r.lo)
  while d <= r.hi do
    local stop = day.after(d)
    tp.db.exec("INSERT INTO analytics_money_days (day, stop) VALUES (?, ?)", d, stop)
    d = stop
  end
end

---An order whose pay time moved from a folded one: both days are rebuilt
---whole by the rollup job; the fold leaves the order out.
local function moved()
  tp.db.exec(([[INSERT OR IGNORE INTO analytics_dirty (day)
    SELECT d.day FROM %s WHERE NOT (%s) UNION SELECT d.day FROM %s WHERE NOT (%s)]]):format(
    NOW, KEPT, FOLDED, KEPT))
end

---The sums: each order's contribution now added, the folded one taken away.
local function sums()
  tp.db.exec(([[INSERT INTO analytics_day_orders (key, day, orders, gmv_fen, campaign_fen, coupon_fen)
    SELECT key, day, sum(orders), sum(gmv), sum(camp), sum(coupon) FROM (
      SELECT %s AS key, d.day AS day, %s AS orders, o.paid_fen - o.refunded_fen AS gmv,
        o.campaign_fen AS camp, o.coupon_fen AS coupon
      FROM %s CROSS JOIN %s WHERE %s
      UNION ALL SELECT %s, d.day, -(%s), o.folded_refunded_fen - o.folded_paid_fen, -o.campaign_fen, -o.coupon_fen
      FROM %s CROSS JOIN %s WHERE %s)
    WHERE true GROUP BY key, day
    ON CONFLICT (key, day) DO UPDATE SET orders = orders + excluded.orders,
      gmv_fen = gmv_fen + excluded.gmv_fen, campaign_fen = campaign_fen + excluded.campaign_fen,
      coupon_fen = coupon_fen + excluded.coupon_fen]]):format(
    money.KEY, PAYS, NOW, money.KEYS, KEPT, money.KEY, PAID, FOLDED, money.KEYS, KEPT))
  tp.db.exec(([[INSERT INTO analytics_day_products (day, product, units, gmv_fen)
    SELECT day, sku, sum(units), sum(gmv) FROM (
      SELECT d.day AS day, l.sku AS sku, CASE WHEN %s THEN l.qty ELSE 0 END AS units,
        l.paid_fen - l.refunded_fen AS gmv
      FROM %s CROSS JOIN analytics_lines l ON l.order_id = o.order_id WHERE %s
      UNION ALL SELECT d.day, l.sku, CASE WHEN %s THEN -l.qty ELSE 0 END, l.folded_refunded_fen - l.paid_fen
      FROM %s CROSS JOIN analytics_lines l ON l.order_id = o.order_id
      WHERE l.folded_refunded_fen IS NOT NULL AND %s)
    WHERE true GROUP BY day, sku
    ON CONFLICT (day, product) DO UPDATE SET units = units + excluded.units,
      gmv_fen = gmv_fen + excluded.gmv_fen]]):format(PAYS, NOW, KEPT, PAID, FOLDED, KEPT))
end

---After the visits of analytics_money_visits came or went: the prev of each
---that is there and of the next visit after each, as the visits stand now (the
---visitor's day before, same key; 0: none). Two of one key in one batch, a new
---one before an old one: each is right.
local function repoint()
  tp.db.exec([[UPDATE analytics_visits SET prev = coalesce((SELECT max(p.day) FROM analytics_visits p
      WHERE p.source = analytics_visits.source AND p.visitor = analytics_visits.visitor
        AND p.day < analytics_visits.day), 0)
    FROM (SELECT source, visitor, day FROM analytics_money_visits
      UNION SELECT a.source, a.visitor, (SELECT min(q.day) FROM analytics_visits q
        WHERE q.source = a.source AND q.visitor = a.visitor AND q.day > a.day) FROM analytics_money_visits a) AS x
    WHERE analytics_visits.source = x.source AND analytics_visits.visitor = x.visitor
      AND analytics_visits.day = x.day]])
end

---The visits the batch's orders give now that are not there yet, their
---prevs and the next ones' (repoint), and the days' counts.
local function new_visits()
  tp.db.exec("DELETE FROM analytics_money_visits")
  tp.db.exec(([[INSERT OR IGNORE INTO analytics_money_visits (source, day, visitor)
    SELECT 'payer:' || %s, d.day, o.member FROM %s CROSS JOIN %s WHERE %s AND %s AND %s
    UNION ALL SELECT 'buyer:' || l.sku, d.day, o.member FROM %s
      CROSS JOIN analytics_lines l ON l.order_id = o.order_id WHERE %s AND %s
    UNION ALL SELECT 'part:' || coalesce(o.campaign, 'none'), d.day, o.member FROM %s WHERE %s
    UNION ALL SELECT 'part:' || coalesce(o.campaign, 'none'), d.day, o.member FROM %s WHERE %s]]):format(
    money.KEY, NOW, money.KEYS, money.PAYER, PAYS, KEPT, NOW, PAYS, KEPT, CREATED, KEPT, NOW, KEPT))
  tp.db.exec([[DELETE FROM analytics_money_visits AS a WHERE EXISTS (SELECT 1 FROM analytics_visits v
    WHERE v.source = a.source AND v.visitor = a.visitor AND v.day = a.day)]])
  tp.db.exec([[INSERT INTO analytics_visits (source, day, visitor, prev)
    SELECT source, day, visitor, 0 FROM analytics_money_visits]])
  repoint()
  tp.db.exec([[INSERT INTO analytics_day_uv (day, source, n)
    SELECT day, source, count(*) FROM analytics_money_visits WHERE true GROUP BY day, source
    ON CONFLICT (day, source) DO UPDATE SET n = n + excluded.n]])
end

---The payer and buyer visits of orders refunded in full since their fold
---that no other order of the member paid that day still gives: each goes,
---the next ones' prevs are redone (repoint), and the days' counts fall.
local function gone_visits()
  tp.db.exec("DELETE FROM analytics_money_visits")
  tp.db.exec(([[INSERT OR IGNORE INTO analytics_money_visits (source, day, visitor)
    SELECT 'payer:' || %s, d.day, o.member FROM %s CROSS JOIN %s WHERE %s AND %s AND NOT (%s) AND %s
    UNION ALL SELECT 'buyer:' || l.sku, d.day, o.member FROM %s
      CROSS JOIN analytics_lines l ON l.order_id = o.order_id WHERE %s AND NOT (%s) AND %s]]):format(
    money.KEY, FOLDED, money.KEYS, money.PAYER, PAID, PAYS, KEPT, FOLDED, PAID, PAYS, KEPT))
  -- kept: another order of the member, paid that day and not refunded in full
  tp.db.exec(([[DELETE FROM analytics_money_visits AS a WHERE EXISTS (
    SELECT 1 FROM analytics_money_days d JOIN analytics_orders o ON o.member = a.visitor
      AND o.paid_at IS NOT NULL AND o.paid_at >= d.day AND o.paid_at < d.stop AND %s
    WHERE d.day = a.day AND (a.source IN (SELECT 'payer:' || %s FROM %s WHERE %s)
      OR a.source IN (SELECT 'buyer:' || l.sku FROM analytics_lines l WHERE l.order_id = o.order_id)))]]):format(
    PAYS, money.KEY, money.KEYS, money.PAYER))
  tp.db.exec([[DELETE FROM analytics_money_visits AS a WHERE NOT EXISTS (SELECT 1 FROM analytics_visits v
    WHERE v.source = a.source AND v.visitor = a.visitor AND v.day = a.day)]])
  tp.db.exec([[DELETE FROM analytics_visits WHERE (source, visitor, day) IN
    (SELECT source, visitor, day FROM analytics_money_visits)]])
  repoint()
  tp.db.exec([[UPDATE analytics_day_uv SET n = n - x.c
    FROM (SELECT day, source, count(*) AS c FROM analytics_money_visits GROUP BY day, source) AS x
    WHERE analytics_day_uv.day = x.day AND analytics_day_uv.source = x.source]])
  tp.db.exec([[DELETE FROM analytics_day_uv WHERE n = 0 AND (day, source) IN
    (SELECT day, source FROM analytics_money_visits)]])
end

---Folds up to `limit` queued orders into the per-day tables.
---@param limit integer
---@return integer folded
---@return boolean more  orders are left in the queue
function money.fold(limit)
  tp.db.exec("DELETE FROM analytics_money_batch")
  tp.db.exec("INSERT INTO analytics_money_batch (order_id) SELECT order_id FROM analytics_money_queue LIMIT ?",
    limit)
  local n = tp.db.one("SELECT count(*) AS n FROM analytics_money_batch").n
  if n == 0 then return 0, false end
  batch_days()
  moved()
  sums()
  gone_visits()
  new_visits()
  tp.db.exec([[UPDATE analytics_orders SET folded_paid_at = paid_at,
      folded_paid_fen = paid_fen, folded_refunded_fen = refunded_fen
    WHERE order_id IN (SELECT order_id FROM analytics_money_batch)]])
  tp.db.exec([[UPDATE analytics_lines SET folded_refunded_fen = refunded_fen
    WHERE order_id IN (SELECT order_id FROM analytics_money_batch)]])
  tp.db.exec("DELETE FROM analytics_money_queue WHERE order_id IN (SELECT order_id FROM analytics_money_batch)")
  tp.db.exec("DELETE FROM analytics_money_batch")
  return n, tp.db.one("SELECT EXISTS (SELECT 1 FROM analytics_money_queue) AS e").e == 1
end

---Folds every queued order: before a day is rebuilt from the facts, so that
---no order is counted by the rebuild and again by a later fold.
function money.drain()
  repeat
    local _, more = money.fold(money.BATCH * 10)
  until not more
end

return money
