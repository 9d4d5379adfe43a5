-- Rollups (README "Rollups"): the host keeps the raw events in the brand's
-- analytics database (track.analytics_*, read-only here); this folds them
-- into analytics_hits, one row per UTC hour, visitor, kind, session source
-- and product, with a count. Reports read analytics_hits, never raw events.
--
-- Incremental: analytics_state keeps the highest event seq folded in; a run
-- recomputes (or adds to) every hour that has events above it (late ones
-- included: intake takes events up to 48 h old) and every hour of a device
-- that a login tied to a member since; analytics_hour_seq keeps each hour's
-- own watermark, so that an hour recomputed out of turn is not added to
-- twice. Idempotent: an hour is recomputed whole (its rows
-- deleted, then rebuilt from the raw events), so running it again, or
-- re-running a whole day, gives the same rows. The per-day tables of the
-- days those hours fall in are then folded: only what the hours changed is
-- added (or, for visitors whose rows moved, redone), so a run costs its new
-- events, not the day (rollup.fold_day).

local day = require("lib.day")
local money = require("lib.money")

local rollup = {}

local HOUR = 3600

local function state(k)
  local row = tp.db.one("SELECT v FROM analytics_state WHERE k = ?", k)
  return row and row.v or 0
end

local function set_state(k, v)
  tp.db.exec([[INSERT INTO analytics_state (k, v) VALUES (?1, ?2)
    ON CONFLICT (k) DO UPDATE SET v = excluded.v]], k, v)
end

-- the same row of an hour, before (o) and after (h) its recompute
local SAME_ROW = [[h.visitor = o.visitor AND h.kind = o.kind AND h.source = o.source
  AND h.scene IS o.scene AND h.store IS o.store AND h.guide IS o.guide AND h.content IS o.content
  AND h.live IS o.live AND h.referrer IS o.referrer AND h.product = o.product]]

local DELTA_GAINED_SQL = [[INSERT INTO analytics_hits_delta (hour, visitor, kind, source, scene, store, guide, content,
      live, referrer, product, n, new)
    SELECT h.hour, h.visitor, h.kind, h.source, h.scene, h.store, h.guide, h.content, h.live, h.referrer,
      h.product, h.n - coalesce(o.n, 0), o.n IS NULL
    FROM analytics_hits h LEFT JOIN analytics_hits_prev o ON ]] .. SAME_ROW .. [[
    WHERE h.hour = ?1 AND h.n > coalesce(o.n, 0)]]
local DELTA_LOST_SQL = [[INSERT INTO analytics_hits_delta (hour, visitor, kind, source, scene, store, guide,
      content, live, referrer, product, n, new)
    SELECT ?1, o.visitor, o.kind, o.source, o.scene, o.store, o.guide, o.content, o.live, o.referrer,
      o.product, coalesce(h.n, 0) - o.n, -1
    FROM analytics_hits_prev o LEFT JOIN analytics_hits h ON h.hour = ?1 AND ]] .. SAME_ROW .. [[
    WHERE coalesce(h.n, 0) < o.n]]

---After an hour's recompute, keeps how it changed (analytics_hits_delta):
---the rows it added or whose count grew (new = 1: a new row, 0: only more
---events; n: the events added) and the rows it lost or whose count fell (new
---= -1, n negative). Raw events only come in, so an hour loses rows only when
---a visitor changed ids (a login tied a device to a member, a merge, an
---unmerge) or retention cut the hour's raw events.
---@param hour integer
---@return boolean lost
local function hour_delta(hour)
  tp.db.exec(DELTA_GAINED_SQL, hour)
  return tp.db.exec(DELTA_LOST_SQL, hour) > 0
end

-- The hour's rows from its raw events (WHERE: all of the hour's, ?2 <= at < ?3,
-- or a run's, ?4 < seq <= ?5, read by seq), before the GROUP BY that counts them: hour, visitor, kind, source, scene, store,
-- guide, content, live room, referrer, product, count. A visitor is the
-- event's member, else its device's member (a login folds the device's
-- anonymous events in), else its session's member, else the device, else the
-- session; a merged member is the survivor its chain of merges ends at.
local HOUR_ROWS = [[
    SELECT ?1, coalesce(mg.into_user, x.who), x.kind, x.source, x.scene, x.store, x.guide,
           x.content, x.live, x.referrer, x.product, count(*)
    FROM (SELECT coalesce(e.member, dv.member, s.member, 'device:' || e.device,
                          'session:' || e.session) AS who,
                 e.kind AS kind, coalesce(s.source, 'direct') AS source, s.scene AS scene,
                 s.store AS store, s.guide AS guide, s.content AS content, s.live AS live,
                 s.referrer AS referrer, coalesce(e.product, '') AS product
          FROM track.analytics_events e
          LEFT JOIN track.analytics_sessions s ON s.id = e.session
          LEFT JOIN track.analytics_devices dv ON dv.device = e.device
          WHERE %s) AS x
    LEFT JOIN analytics_merge_final mg ON mg.from_user = x.who
    WHERE x.source <> 'crawler']]
local ALL_OF_HOUR = HOUR_ROWS:format("e.at >= ?2 AND e.at < ?3")
local RUN_OF_HOUR = HOUR_ROWS:format("e.seq > ?4 AND e.seq <= ?5 AND +e.at >= ?2 AND +e.at < ?3")

local touch

---The newest raw event's sequence number (0: none yet).
local function newest_seq()
  return tp.db.one("SELECT coalesce(max(seq), 0) AS s FROM track.analytics_events").s
end

---Records that the hour's rows hold its events up to seq (analytics_hour_seq).
local function hour_holds(hour, seq)
  tp.db.exec([[INSERT INTO analytics_hour_seq (hour, seq, gen)
    VALUES (?1, ?2, (SELECT coalesce(max(v), 0) FROM analytics_state WHERE k = 'merge_gen'))
    ON CONFLICT (hour) DO UPDATE SET seq = excluded.seq, gen = excluded.gen]], hour, seq)
end

---A member was merged or a merge undone: every hour's rows may hold a visitor
---who is someone else now (MOVED_SINCE cannot tell; MOVED can).
function rollup.merges_changed()
  set_state("merge_gen", state("merge_gen") + 1)
end

-- Whether a row the hour has would be someone else's if the hour were
-- recomputed: a device now tied to a member, or with a session a login gave a
-- member (without the device); a session now with a member; a member merged
-- away; the survivor of a merge since undone. One pass over the hour's
-- distinct visitors (the index gives them in order), each looked up once. It
-- read the hour's rows up to four times, about six a visitor (one per kind,
-- source and product), the last two probing the merges with every row; a probe
-- per visitor keeps it bounded by the hour however many merges the brand has
-- made (a 5M-event day's hour: 0.34 to 0.18 s in Python's sqlite3; the run
-- after 50,000 more events, tests/bench/README.md: 39.4M to 35.5M instructions).
local MOVED = [[SELECT EXISTS (SELECT 1 FROM (SELECT DISTINCT visitor FROM analytics_hits WHERE hour = ?1) h
  WHERE (h.visitor >= 'device:' AND h.visitor < 'device;'
      AND (EXISTS (SELECT 1 FROM track.analytics_devices d WHERE d.device = substr(h.visitor, 8))
        OR EXISTS (SELECT 1 FROM track.analytics_sessions s WHERE s.device = substr(h.visitor, 8)
          AND s.member IS NOT NULL)))
    OR (h.visitor >= 'session:' AND h.visitor < 'session;' AND EXISTS (SELECT 1 FROM track.analytics_sessions s
      WHERE s.id = substr(h.visitor, 9) AND s.member IS NOT NULL))
    OR EXISTS (SELECT 1 FROM analytics_merges m WHERE m.from_user = h.visitor)
    OR EXISTS (SELECT 1 FROM analytics_unmerged u WHERE u.member = h.visitor)) AS moved]]

-- MOVED, asked of what changed since the hour's rows were last made (its
-- watermark ?2, with no merge made or undone since: analytics_hour_seq.gen)
-- up to the run's last event ?3 (what comes later is a later run's to see):
-- a row can only have become someone else's through a login since, and a
-- login is an event (core/store/track.c): it ties its device (the device's
-- row keeps its seq) and gives its session a member. So: a device tied since
-- that is a visitor of the hour, or a session of an event since that names a
-- member, whose device or the session itself is a visitor of the hour. Its
-- cost is the run's sessions, not the hour's visitors: a run of 100 new
-- events late in a 5M-event day, 2.14M to 0.09M instructions, 0.20 to 0.02 s
-- (tests/bench/README.md). The device clause and the session clause are
-- defensive: a login's device is its session's (a device tied in a run sends
-- its hours down the whole recompute, rollup.pending), and no visitor is a
-- bare session (intake asks for a device or a member), as in MOVED.
local MOVED_SINCE = [[SELECT EXISTS (SELECT 1 FROM track.analytics_devices d INDEXED BY analytics_devices_seq
    WHERE d.seq > ?2 AND d.seq <= ?3 AND EXISTS (SELECT 1 FROM analytics_hits h WHERE h.hour = ?1 AND h.visitor = 'device:' || d.device))
  OR EXISTS (SELECT 1 FROM (SELECT DISTINCT e.session FROM track.analytics_events e
      WHERE e.seq > ?2 AND e.seq <= ?3 AND e.member IS NOT NULL) x
    JOIN track.analytics_sessions s ON s.id = x.session
    WHERE EXISTS (SELECT 1 FROM analytics_hits h WHERE h.hour = ?1 AND h.visitor = 'session:' || s.id)
      OR (s.device IS NOT NULL
        AND EXISTS (SELECT 1 FROM analytics_hits h WHERE h.hour = ?1 AND h.visitor = 'device:' || s.device))) AS moved]]
-- the hour's watermark, and whether no merge was made or undone since
local HOUR_MARK_SQL = [[SELECT seq, gen = (SELECT coalesce(max(v), 0) FROM analytics_state WHERE k = 'merge_gen')
    AS same FROM analytics_hour_seq WHERE hour = ?1]]

-- MOVED_SINCE reads every event from the hour's watermark to the run's last:
-- past this many (a late event into an hour made long ago), MOVED, which reads
-- the hour's visitors, costs less (the two are even near 50,000 for a busy hour)
local MOVED_SINCE_MAX = 20000

---Whether a row the hour has would move if it were recomputed: MOVED_SINCE
---when the hour's rows were made since the last merge or undoing and few
---events before the run's last (top), else MOVED. A login after top is seen
---by the run that takes it: its device's hours go down the whole recompute
---there (rollup.hours, linked), and its own hour asks again.
---@param hour integer
---@param top integer
---@return boolean
local function moved(hour, top)
  local mark = tp.db.one(HOUR_MARK_SQL, hour)
  if mark and mark.same == 1 and top - mark.seq <= MOVED_SINCE_MAX then
    return tp.db.one(MOVED_SINCE, hour, mark.seq, top).moved == 1
  end
  return tp.db.one(MOVED, hour).moved == 1
end

local RUN_DELTA_SQL = [[INSERT INTO analytics_hits_delta (hour, visitor, kind, source, scene, store, guide, content,
      live, referrer, product, n, new) SELECT *, 1 FROM (]] .. RUN_OF_HOUR .. [[
    GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)]]
local DELTA_OLD_ROWS_SQL = [[UPDATE analytics_hits_delta AS h SET new = 0 WHERE h.hour = ?1
    AND EXISTS (SELECT 1 FROM analytics_hits o WHERE o.hour = ?1 AND ]] .. SAME_ROW .. ")"
local ADD_COUNTS_SQL = [[UPDATE analytics_hits AS h SET n = h.n + o.n FROM analytics_hits_delta AS o
    WHERE o.hour = ?1 AND o.new = 0 AND h.hour = ?1 AND ]] .. SAME_ROW

---Adds the hour's events above its watermark (analytics_hour_seq; `seen` when
---it has none) up to `top` to the rows it has, keeps them in
---analytics_hits_delta for the day's fold, and moves the watermark to `top`.
---@param hour integer
---@param seen integer
---@param top integer
---@return integer|nil held the watermark the events were added above; nil: none to add
local function add_events(hour, seen, top)
  -- the hour holds its events up to its own watermark: the run's lower bound
  -- unless the hour was recomputed since ({"day"}, or a slice of this run)
  local held = tp.db.one("SELECT coalesce(max(seq), ?2) AS s FROM analytics_hour_seq WHERE hour = ?1",
    hour, seen).s
  if held >= top then return nil end
  tp.db.exec(RUN_DELTA_SQL, hour, hour * 1000, (hour + HOUR) * 1000, held, top)
  hour_holds(hour, top)
  -- a row the hour had: only its count grows
  tp.db.exec(DELTA_OLD_ROWS_SQL, hour)
  tp.db.exec(ADD_COUNTS_SQL, hour)
  tp.db.exec([[INSERT INTO analytics_hits (hour, visitor, kind, source, scene, store, guide, content, live,
      referrer, product, n)
    SELECT hour, visitor, kind, source, scene, store, guide, content, live, referrer, product, n
    FROM analytics_hits_delta WHERE hour = ?1 AND new = 1]], hour)
  return held
end

---Adds the hour's events of a run (add_events, up to add.top) to the rows it
---has when no row the hour has would move (MOVED); else does nothing and
---returns false, and the hour is recomputed whole. A run late in a busy day
---then costs its new events, not the hour's (every run would otherwise count
---the open hour again from all its raw events).
---@param hour integer
---@param add {seen: integer, top: integer}
---@return boolean added
local function added(hour, add)
  if moved(hour, add.top) then return false end
  -- no session's member changed (MOVED): the touch can only gain the sessions of
  -- the events added, and nothing when the hour held them already
  local held = add_events(hour, add.seen, add.top)
  if held then touch(hour, held, add.top) end
  return true
end

---Whether retention may have cut the hour's raw events or their sessions:
---it begins before the host's last purge cutoff (track.analytics_purged; the
---purge deletes a slice at a time, so the hour at the cutoff may have lost only
---part of them) or within a day after it (its events' sessions may have begun
---before the cutoff, and the host deletes sessions by their start).
---@param hour integer
---@return boolean
local function retention_cut(hour)
  local p = tp.db.one("SELECT before_ms FROM track.analytics_purged WHERE id = 0")
  return p ~= nil and hour < p.before_ms // 1000 + 24 * HOUR
end

local HOUR_HITS_SQL = [[INSERT INTO analytics_hits (hour, visitor, kind, source, scene, store, guide, content,
      live, referrer, product, n) ]] .. ALL_OF_HOUR .. " GROUP BY 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"

---Rebuilds the rows of the hour starting at `hour` (UTC epoch seconds) from
---its raw events (ALL_OF_HOUR), or, with `add`, adds a run's events to them
---when it may (added).
---An hour whose raw events are gone, or may be in part (retention_cut),
---keeps its rows: there is nothing, or only part, to rebuild them from; the
---events that came since (late ones, up to 48 h) are added to them.
---With `fold`, how the recompute changed the hour is kept in
---analytics_hits_delta for the day's fold (rollup.fold_day).
---@param hour integer
---@param fold boolean? keep the hour's changes for a fold
---@param add {seen: integer, top: integer}? with `fold`: the run's events, to add
---@return boolean rebuilt
---@return boolean lost with `fold`: a row of the hour went or lost events (a login or a
---merge moved its visitor): the fold redoes that visitor's day
function rollup.hour(hour, fold, add)
  local raw = tp.db.one([[SELECT EXISTS (SELECT 1 FROM track.analytics_events
    WHERE at >= ?1 AND at < ?2) AS e]], hour * 1000, (hour + HOUR) * 1000).e
  if (raw == 0 or retention_cut(hour))
      and tp.db.one("SELECT EXISTS (SELECT 1 FROM analytics_hits WHERE hour = ?) AS h", hour).h == 1 then
    if raw == 1 then   -- never counted again from what is left, but what came late is added
      add_events(hour, add and add.seen or state("event_seq"), add and add.top or newest_seq())
      touch(hour)
    end
    return false, false
  end
  if add and fold and added(hour, add) then return true, false end
  if fold then
    tp.db.exec("DELETE FROM analytics_hits_prev")
    tp.db.exec([[INSERT INTO analytics_hits_prev (visitor, kind, source, scene, store, guide, content, live,
        referrer, product, n)
      SELECT visitor, kind, source, scene, store, guide, content, live, referrer, product, n
      FROM analytics_hits WHERE hour = ?]], hour)
  end
  tp.db.exec("DELETE FROM analytics_hits WHERE hour = ?", hour)
  tp.db.exec(HOUR_HITS_SQL, hour, hour * 1000, (hour + HOUR) * 1000)
  hour_holds(hour, newest_seq())
  touch(hour)
  if fold then return true, hour_delta(hour) end
  return true, false
end

-- Members' first and last touch. Each is the earliest (latest) session by the
-- whole of what it keeps, (at, source, scene, store, guide, content, live,
-- referrer), compared as a row value with absent parts as '' (-1 for the scene):
-- two sessions in the same second are told apart the same way whatever order
-- they come in, so upserting sessions in any order or any number of times
-- gives the same row. That lets a run that adds to an hour upsert only the
-- sessions its new events belong to, not the hour's every session (0.13 s of a
-- run late in a 5M-event day, tests/bench/README.md), and still equal a
-- rebuild; before, a tie went to whichever session the sort gave last.
-- what a touch keeps of its session, in the order that tells two sessions apart
local TOUCH_FIELDS = { "at", "source", "scene", "store", "guide", "content", "live", "referrer" }
rollup.TOUCH_FIELDS = TOUCH_FIELDS

---The touch's fields as fmt gives each ("%s" the field), once per prefix
---(default first_ then last_), joined by commas.
local function touch_list(fmt, prefixes)
  local out = {}
  for _, prefix in ipairs(prefixes or { "first_", "last_" }) do
    for _, c in ipairs(TOUCH_FIELDS) do out[#out + 1] = fmt:gsub("%%s", prefix .. c) end
  end
  return table.concat(out, ", ")
end

local function touch_key(prefix, row)
  local parts = {}
  for _, c in ipairs(TOUCH_FIELDS) do
    parts[#parts + 1] = c == "at" and row .. prefix .. c
      or ("coalesce(%s%s%s, %s)"):format(row, prefix, c, c == "scene" and "-1" or "''")
  end
  return "(" .. table.concat(parts, ", ") .. ")"
end
local EARLIER = touch_key("first_", "excluded.") .. " < " .. touch_key("first_", "")
local LATER = touch_key("last_", "excluded.") .. " > " .. touch_key("last_", "")
local TOUCH_SET = {}
for _, c in ipairs(TOUCH_FIELDS) do
  TOUCH_SET[#TOUCH_SET + 1] = ("first_%s = CASE WHEN %s THEN excluded.first_%s ELSE first_%s END"):format(c, EARLIER, c, c)
  TOUCH_SET[#TOUCH_SET + 1] = ("last_%s = CASE WHEN %s THEN excluded.last_%s ELSE last_%s END"):format(c, LATER, c, c)
end
local TOUCH_UPSERT = "INSERT INTO analytics_touch (member, " .. touch_list("%s") .. ") "
local TOUCH_CONFLICT = " ON CONFLICT (member) DO UPDATE SET " .. table.concat(TOUCH_SET, ",\n      ")
local TOUCH_SQL = TOUCH_UPSERT .. [[
    SELECT coalesce(mg.into_user, x.who), ]] .. touch_list("x.%s", { "", "" }) .. [[ -- as first and as last
    FROM (SELECT coalesce(s.member, dv.member) AS who, s.at / 1000 AS at, s.source AS source,
                 s.scene AS scene, s.store AS store, s.guide AS guide, s.content AS content,
                 s.live AS live, s.referrer AS referrer
          FROM track.analytics_sessions s
          LEFT JOIN track.analytics_devices dv ON dv.device = s.device
          WHERE s.at >= ?1 AND s.at < ?2 AND s.source <> 'crawler' %s) AS x
    LEFT JOIN analytics_merge_final mg ON mg.from_user = x.who
    WHERE x.who IS NOT NULL]] .. TOUCH_CONFLICT
-- a merged member's touch into the survivor's: the earlier first, the later last
local TOUCH_MERGE_SQL = TOUCH_UPSERT .. "VALUES (:member, " .. touch_list(":%s") .. ")" .. TOUCH_CONFLICT
-- every session that began in the hour
local TOUCH_HOUR_SQL = TOUCH_SQL:format("")
-- those of them that a run's events (?3 < seq <= ?4, in the hour) belong to
local TOUCH_RUN_SQL = TOUCH_SQL:format([[AND s.id IN (SELECT e.session FROM track.analytics_events e
            WHERE e.seq > ?3 AND e.seq <= ?4 AND +e.at >= ?1 AND +e.at < ?2)]])

---Moves a merged member's touch (its analytics_touch row) to `into`: each of
---first and last is the earlier (later) of the two, whole, by the order the
---rollup keeps (touch_key), never one's time with the other's source.
---@param row table the merged member's row
---@param into string
function rollup.merge_touch(row, into)
  tp.db.exec("DELETE FROM analytics_touch WHERE member = ?", row.member)
  row.member = into
  tp.db.exec(TOUCH_MERGE_SQL, row)
end

---Members' first and last touch from the sessions that began in the hour, or,
---with lo and hi, from those of them that the hour's events lo < seq <= hi
---belong to (an upsert: running it again changes nothing).
---@param hour integer
---@param lo integer?
---@param hi integer?
touch = function(hour, lo, hi)
  if lo then tp.db.exec(TOUCH_RUN_SQL, hour * 1000, (hour + HOUR) * 1000, lo, hi)
  else tp.db.exec(TOUCH_HOUR_SQL, hour * 1000, (hour + HOUR) * 1000) end
end

local day_of = day.of

---Rebuilds analytics_days for the local day starting at `day` from the
---hours' rows: each visitor once per source, scene, store, guide, content,
---live room and referrer; then the day's visits, product views and reach.
---Every queued order is folded first (lib/money.lua), so that the day's money
---rebuilt from the facts is what the folds will have added to.
local function rebuild_day(day)
  local stop = day_of(day + 27 * HOUR)
  money.drain()
  tp.db.exec("DELETE FROM analytics_days WHERE day = ?", day)
  tp.db.exec([[INSERT INTO analytics_days (day, visitor, source, store, guide, scene, content, live, referrer)
    SELECT DISTINCT ?1, visitor, source, store, guide, scene, content, live, referrer FROM analytics_hits
    WHERE hour >= ?1 AND hour < ?2]], day, stop)
  tp.db.exec("DELETE FROM analytics_day_views WHERE day = ?", day)
  tp.db.exec([[INSERT INTO analytics_day_views (day, product, views)
    SELECT ?1, product, sum(n) FROM analytics_hits
    WHERE hour >= ?1 AND hour < ?2 AND kind = 'product_view' AND product <> '' GROUP BY product]], day, stop)
  rollup.orders(day, stop)
  rollup.visits(day, stop)
  rollup.reach(day, stop)
  tp.db.exec("DELETE FROM analytics_dirty WHERE day = ?", day)
end

-- The keys an order paid on a day counts under (analytics_day_orders), from
-- the order's row `o`: all, its source, scene, store, guide, content, live
-- room, referrer and campaign (money.KEY; n: the key's number).
local ORDER_KEYS = "SELECT " .. money.KEY .. " AS key, k.n AS n, o.* FROM analytics_orders o, " .. money.KEYS
  .. " WHERE o.paid_at >= ?1 AND o.paid_at < ?2"

local DAY_ORDERS_SQL = [[INSERT INTO analytics_day_orders (key, day, orders, gmv_fen, campaign_fen, coupon_fen)
    SELECT key, ?1, sum(paid_fen > refunded_fen), sum(paid_fen - refunded_fen), sum(campaign_fen),
      sum(coupon_fen) FROM (]] .. ORDER_KEYS .. [[) GROUP BY key]]

---Rebuilds the day's analytics_day_orders and analytics_day_products from
---the orders paid on it (README "Money": paid minus refunded, by pay time;
---an order counts unless refunded in full).
---@param day integer the local midnight
---@param stop integer the next one
function rollup.orders(day, stop)
  tp.db.exec("DELETE FROM analytics_day_orders WHERE day = ?1 AND key IN (SELECT key FROM analytics_day_orders WHERE day = ?1)", day)
  tp.db.exec(DAY_ORDERS_SQL, day, stop)
  tp.db.exec("DELETE FROM analytics_day_products WHERE day = ?", day)
  tp.db.exec([[INSERT INTO analytics_day_products (day, product, units, gmv_fen)
    SELECT ?1, l.sku, coalesce(sum(CASE WHEN o.paid_fen > o.refunded_fen THEN l.qty END), 0),
      sum(l.paid_fen - l.refunded_fen)
    FROM analytics_orders o JOIN analytics_lines l ON l.order_id = o.order_id
    WHERE o.paid_at >= ?1 AND o.paid_at < ?2 GROUP BY l.sku]], day, stop)
end

-- The member keys of the orders of a day (part of DAY_KEYS; lib/money.lua folds them):
-- 'payer:<key>', 'buyer:<sku>', 'part:<campaign>'.
local MONEY_KEYS = [[
  SELECT 'payer:' || key AS source, member AS visitor FROM (]] .. ORDER_KEYS .. [[)
    WHERE paid_fen > refunded_fen
      AND n IN ]] .. money.PAYER_NS .. [[
  UNION SELECT 'buyer:' || l.sku, o.member FROM analytics_orders o JOIN analytics_lines l ON l.order_id = o.order_id
    WHERE o.paid_at >= ?1 AND o.paid_at < ?2 AND o.paid_fen > o.refunded_fen
  UNION SELECT 'part:' || coalesce(campaign, 'none'), member FROM analytics_orders
    WHERE created_at >= ?1 AND created_at < ?2
  UNION SELECT 'part:' || coalesce(campaign, 'none'), member FROM analytics_orders
    WHERE paid_at >= ?1 AND paid_at < ?2]]

-- The keys a visitor is counted under on a day (analytics_visits.source):
-- from a row of its day (analytics_days, the hours' rows: ROW_KEYS) '' (any),
-- the source, 'scene:1008', 'store:hz-west' ('store:' for none), and so on for
-- guide, content, live and referrer; from a product hit (PRODUCT_KEY)
-- 'view:<sku>' and 'cart:<sku>'; and a member under 'payer:<key>' (an order
-- paid that day and not refunded in full, by all, source, store, guide and
-- campaign: ORDER_KEYS), 'buyer:<sku>' (such an order holding the SKU) and
-- 'part:<campaign>' (an order created or paid: MONEY_KEYS).
local ROW_KEYS = { "''", "source", "'scene:' || coalesce(scene, '')", "'store:' || coalesce(store, '')",
  "'guide:' || coalesce(guide, '')", "'content:' || coalesce(content, '')", "'live:' || coalesce(live, '')",
  "'referrer:' || coalesce(referrer, '')" }
local PRODUCT_KEY = "(CASE kind WHEN 'product_view' THEN 'view:' ELSE 'cart:' END) || product"
local PRODUCT_HIT = "kind IN ('product_view', 'add_to_cart') AND product <> ''"

---The ROW_KEYS of the rows `from` (a table and its WHERE), a SELECT of
---(source, visitor) each, joined by `union` ("UNION" or "UNION ALL").
local function row_keys(from, union)
  local parts = {}
  for i, k in ipairs(ROW_KEYS) do parts[i] = ("SELECT %s AS source, visitor FROM %s"):format(k, from) end
  return table.concat(parts, "\n  " .. union .. " ")
end

local DAY_KEYS = row_keys("analytics_days WHERE day = ?1", "UNION") .. "\n  UNION SELECT " .. PRODUCT_KEY
  .. ", visitor FROM analytics_hits WHERE hour >= ?1 AND hour < ?2 AND " .. PRODUCT_HIT
  .. "\n  UNION " .. MONEY_KEYS

---Whether any visit is on a day after `day` (one index entry), so that
---the next visits of the day's visitors may need their prev pointed at it.
---@param day integer
---@return boolean
local function later_visits(day)
  return tp.db.one("SELECT EXISTS (SELECT 1 FROM analytics_visits WHERE day > ?) AS e", day).e == 1
end

local VISITS_SQL = [[INSERT INTO analytics_visits (source, day, visitor, prev)
    SELECT x.source, ?1, x.visitor, coalesce((SELECT max(p.day) FROM analytics_visits p
        WHERE p.source = x.source AND p.visitor = x.visitor AND p.day < ?1), 0)
    FROM (]] .. DAY_KEYS .. [[) AS x]]

---Rebuilds the day's analytics_visits and analytics_day_uv from its
---analytics_days and hours' rows: each visitor once per key (DAY_KEYS),
---with `prev`, the visitor's day before (same key; 0: none), and the day's
---count. A visitor is then counted once in whole days [a, b) by the day's
---count on a and, on each later day, the visits whose prev is before a
---(report.lua), which reads one index entry per distinct visitor instead of
---one per visit. Rebuilding a day keeps every prev true: the next visits of
---the day's old visitors are pointed past it, those of its new ones at it.
---@param day integer the local midnight
---@param stop integer the next one
function rollup.visits(day, stop)
  local later = later_visits(day)
  -- the day's old visits go: the next visit of each points to the one before
  if later then tp.db.exec([[UPDATE analytics_visits SET prev = x.prev
    FROM (SELECT o.source AS source, o.visitor AS visitor, o.prev AS prev,
            (SELECT min(q.day) FROM analytics_visits q WHERE q.source = o.source
               AND q.visitor = o.visitor AND q.day > ?1) AS next
          FROM analytics_visits o WHERE o.day = ?1) AS x
    WHERE x.next IS NOT NULL AND analytics_visits.source = x.source
      AND analytics_visits.visitor = x.visitor AND analytics_visits.day = x.next]], day) end
  tp.db.exec("DELETE FROM analytics_visits AS v WHERE v.day = ?", day)
  tp.db.exec("DELETE FROM analytics_day_uv AS v WHERE v.day = ?", day)
  -- the new ones come, each pointing to the visitor's day before, and the next
  -- visit of each points to it
  tp.db.exec(VISITS_SQL, day, stop)
  tp.db.exec([[INSERT INTO analytics_day_uv (day, source, n)
    SELECT ?1, v.source, count(*) FROM analytics_visits v WHERE v.day = ?1 GROUP BY v.source]], day)
  if not later then return end   -- today's rebuild: no later visit to point here
  tp.db.exec([[UPDATE analytics_visits SET prev = ?1
    FROM (SELECT v.source AS source, v.visitor AS visitor,
                 (SELECT min(q.day) FROM analytics_visits q
                  WHERE q.source = v.source AND q.visitor = v.visitor AND q.day > ?1) AS next
          FROM analytics_visits v WHERE v.day = ?1) AS x
    WHERE x.next IS NOT NULL AND analytics_visits.source = x.source
      AND analytics_visits.visitor = x.visitor AND analytics_visits.day = x.next]], day)
end

-- ---- reach: the funnel's per-visitor days (README "Rollups", analytics_reach)

local redo_reach

local SLOTS = 13            -- x0 (any hit), x1..x8 (analytics_kinds' built-ins), x9..x12 (plugins' kinds)
rollup.SLOTS = SLOTS
local NEVER = 32767         -- x<s> when the visitor never did slot s
local NONE = 1 << 46        -- next when the visitor has no later day
rollup.NONE = NONE

local function cols(fmt, sep)
  local t = {}
  for s = 0, SLOTS - 1 do t[#t + 1] = fmt:gsub("%%s", tostring(s)) end
  return table.concat(t, sep or ", ")
end
local XS = cols("x%s")

---Each x<s> of a row on the day bound as ?1 whose done-mask is `mask`, from
---its previous row p (LEFT JOINed; p.day NULL: none): 0 if done that day,
---else the previous row's value plus the days between, NEVER if never done.
local function x_from_prev(mask, alias)
  local t = {}
  for s = 0, SLOTS - 1 do
    t[#t + 1] = ([[CASE WHEN %s & (1 << %d) THEN 0 WHEN p.day IS NULL OR p.x%d >= %d THEN %d
      ELSE min(%d, p.x%d + (?1 - p.day + 43200) / 86400) END%s]]):format(mask, s, s, NEVER, NEVER, NEVER, s,
      alias and (" AS x" .. s) or "")
  end
  return table.concat(t, ",\n      ")
end

---Assigns a slot to each plugin's kind first seen on the day, while slots
---last, from the day's rows of `hits` (analytics_hits, or a fold's
---analytics_hits_delta). A kind not in analytics_kinds is a plugin's
---(<plugin>.<event>): intake takes no other kind but the built-ins, which are
---all there. (No `kind LIKE '%.%'`: the host charges LIKE by the call, a
---shadow statement each, which made this scan of a 5M-event day 1.1 s, 0.4 s
---without it.)
local function new_kinds(day, stop, hits)
  local used = tp.db.one("SELECT max(slot) AS top FROM analytics_kinds")
  if used.top >= SLOTS - 1 then return end
  local unslotted = ([[FROM %s WHERE hour >= ?1 AND hour < ?2
    AND kind NOT IN (SELECT kind FROM analytics_kinds)]]):format(hits)
  if tp.db.one("SELECT EXISTS (SELECT 1 " .. unslotted .. ") AS e", day, stop).e == 0 then return end
  for _, r in ipairs(tp.db.query("SELECT DISTINCT kind " .. unslotted, day, stop)) do
    used.top = used.top + 1
    if used.top >= SLOTS then return end
    tp.db.exec("INSERT INTO analytics_kinds (kind, slot) VALUES (?, ?)", r.kind, used.top)
  end
end

---Rebuilds the day's analytics_reach rows: each visitor seen, or ordering or
---paying, on the day, once per source and once overall (''), with the mask
---of the slots it did that day, `next` (its next such day) and, per slot,
---how many days ago it last did it (x<s>). A funnel over whole days [a, b)
---then reads one row per visitor, its last day in the period (next >= b),
---and checks x<s> <= days(a, day) for every step (report.lua).
---The previous row's `next` and the later rows' x<s> of the visitors the
---day gained or lost are kept true.
---@param day integer the local midnight
---@param stop integer the next one
function rollup.reach(day, stop)
  new_kinds(day, stop, "analytics_hits")
  tp.db.exec("DELETE FROM analytics_reach_new")
  -- the day's visitors per source with what they did: each hit sets slot 0 and
  -- its kind's; an order created sets 7 and one paid 8, under the order's source
  tp.db.exec([[INSERT INTO analytics_reach_new (source, visitor, mask)
    SELECT source, visitor, sum(DISTINCT b) | max(hit) FROM (
      SELECT h.source AS source, h.visitor AS visitor, 1 << coalesce(k.slot, 0) AS b, 1 AS hit
      FROM analytics_hits h LEFT JOIN analytics_kinds k ON k.kind = h.kind
      WHERE h.hour >= ?1 AND h.hour < ?2
      UNION ALL SELECT source, member, 1 << 7, 0 FROM analytics_orders
      WHERE created_at >= ?1 AND created_at < ?2
      UNION ALL SELECT source, member, 1 << 8, 0 FROM analytics_orders
      WHERE paid_at >= ?1 AND paid_at < ?2)
    GROUP BY source, visitor]], day, stop)
  tp.db.exec(([[INSERT INTO analytics_reach_new (source, visitor, mask)
    SELECT '', visitor, %s FROM analytics_reach_new GROUP BY visitor]]):format(cols("max(mask & (1 << %s))", " | ")))
  -- the visitors the day loses: kept (mask NULL) so that their later rows are redone
  tp.db.exec([[INSERT INTO analytics_reach_new (source, visitor, mask)
    SELECT source, visitor, NULL FROM analytics_reach WHERE day = ?1
    ON CONFLICT (source, visitor) DO NOTHING]], day)
  redo_reach(day, false)
end

---Redoes the day's analytics_reach rows of the visitors in
---analytics_reach_new (mask: what each did that day; NULL: no row any more),
---with the next of each one's previous row and the x<s> of its later rows.
---@param day integer the local midnight
---@param some boolean only those visitors' rows go (a fold); false: every row of the day
---(a rebuild, whose analytics_reach_new holds every old visitor of the day)
redo_reach = function(day, some)
  -- the old rows go: their previous rows point to their next
  -- (an IN on the primary key, not UPDATE ... FROM: SQLite drove that join from
  -- every row of the day, or of the table, for a fold of a few hundred)
  local old = some and [[analytics_reach_new n CROSS JOIN analytics_reach o ON o.source = n.source
    AND o.visitor = n.visitor AND o.day = ?1]] or "analytics_reach o WHERE o.day = ?1"
  tp.db.exec([[UPDATE analytics_reach SET next = (SELECT o.next FROM analytics_reach o
      WHERE o.source = analytics_reach.source AND o.visitor = analytics_reach.visitor AND o.day = ?1)
    WHERE (source, visitor, day) IN (SELECT o.source, o.visitor,
      (SELECT max(q.day) FROM analytics_reach q WHERE q.source = o.source AND q.visitor = o.visitor
        AND q.day < ?1) FROM ]] .. old .. ")", day)
  if some then
    tp.db.exec([[DELETE FROM analytics_reach WHERE (source, visitor, day) IN
      (SELECT source, visitor, ?1 FROM analytics_reach_new)]], day)
  else
    tp.db.exec("DELETE FROM analytics_reach WHERE day = ?", day)
  end
  -- the new ones come, each from its previous row, and that row points to them
  tp.db.exec(([[INSERT INTO analytics_reach (source, visitor, day, next, mask, %s)
    SELECT n.source, n.visitor, ?1, coalesce((SELECT min(q.day) FROM analytics_reach q
        WHERE q.source = n.source AND q.visitor = n.visitor AND q.day > ?1), ?2), n.mask,
      %s
    FROM analytics_reach_new n LEFT JOIN analytics_reach p ON p.source = n.source AND p.visitor = n.visitor
      AND p.day = (SELECT max(q.day) FROM analytics_reach q WHERE q.source = n.source
                   AND q.visitor = n.visitor AND q.day < ?1)
    WHERE n.mask IS NOT NULL]]):format(XS, x_from_prev("n.mask")), day, NONE)
  tp.db.exec([[UPDATE analytics_reach SET next = ?1
    FROM (SELECT n.source AS source, n.visitor AS visitor,
            (SELECT max(q.day) FROM analytics_reach q WHERE q.source = n.source
               AND q.visitor = n.visitor AND q.day < ?1) AS pday
          FROM analytics_reach_new n WHERE n.mask IS NOT NULL) AS x
    WHERE x.pday IS NOT NULL AND analytics_reach.source = x.source
      AND analytics_reach.visitor = x.visitor AND analytics_reach.day = x.pday]], day)
  -- the later rows of the visitors the day gained or lost, day after day (none
  -- when the days are rolled up in order; a day or two for late events)
  local later = day
  while true do
    later = tp.db.one("SELECT min(day) AS d FROM analytics_reach WHERE day > ?", later).d
    if not later then break end
    tp.db.exec(([[UPDATE analytics_reach SET %s
      FROM (SELECT r.source AS source, r.visitor AS visitor, %s
            FROM analytics_reach_new n JOIN analytics_reach r ON r.source = n.source
              AND r.visitor = n.visitor AND r.day = ?1
            LEFT JOIN analytics_reach p ON p.source = r.source AND p.visitor = r.visitor
              AND p.day = (SELECT max(q.day) FROM analytics_reach q WHERE q.source = r.source
                           AND q.visitor = r.visitor AND q.day < ?1)) AS y
      WHERE analytics_reach.source = y.source AND analytics_reach.visitor = y.visitor
        AND analytics_reach.day = ?1]]):format(cols("x%s = y.x%s"), x_from_prev("r.mask", true)), later)
  end
end

-- ---- the fold: a run's additions to the days it touches (README "Rollups")

-- the additions of the day's hours (rollup.hour with fold) that are new rows
local DELTA = "analytics_hits_delta WHERE hour >= ?1 AND hour < ?2 AND new = 1"

-- the keys of DAY_KEYS that the hours' rows `rows` give (the added rows, DELTA;
-- the lost ones, LOST)
local function hour_keys(rows)
  return row_keys(rows, "UNION ALL") .. "\n  UNION ALL SELECT " .. PRODUCT_KEY .. ", visitor FROM " .. rows
    .. " AND " .. PRODUCT_HIT
end
local FOLD_KEYS = hour_keys(DELTA)

local FOLD_VISITS_SQL = [[INSERT OR IGNORE INTO analytics_visits_new (source, visitor)
    SELECT k.source, k.visitor FROM (]] .. FOLD_KEYS .. [[) AS k
    WHERE NOT EXISTS (SELECT 1 FROM analytics_visits v WHERE v.source = k.source
      AND v.visitor = k.visitor AND v.day = ?1)]]

---Adds the day's new visits (the keys of its added rows it did not have):
---each points to the visitor's day before, the day's counts grow by them,
---and the next visit of each (a late event under later days) points to it.
---@param day integer the local midnight
---@param stop integer the next one
local function fold_visits(day, stop)
  tp.db.exec("DELETE FROM analytics_visits_new")
  tp.db.exec(FOLD_VISITS_SQL, day, stop)
  tp.db.exec([[INSERT INTO analytics_visits (source, day, visitor, prev)
    SELECT n.source, ?1, n.visitor, coalesce((SELECT max(p.day) FROM analytics_visits p
        WHERE p.source = n.source AND p.visitor = n.visitor AND p.day < ?1), 0)
    FROM analytics_visits_new n]], day)
  tp.db.exec([[INSERT INTO analytics_day_uv (day, source, n)
    SELECT ?1, source, count(*) FROM analytics_visits_new WHERE true GROUP BY source
    ON CONFLICT (day, source) DO UPDATE SET n = n + excluded.n]], day)
  if not later_visits(day) then return end
  tp.db.exec([[UPDATE analytics_visits SET prev = ?1 WHERE (source, visitor, day) IN
    (SELECT n.source, n.visitor, (SELECT min(q.day) FROM analytics_visits q
       WHERE q.source = n.source AND q.visitor = n.visitor AND q.day > ?1) FROM analytics_visits_new n)]], day)
end

---Redoes the day's reach rows of the visitors whose added rows did a slot
---they had not done that day (or are their first of the day), with the
---mask they had OR'd in; the others' rows stay as they are.
---@param day integer the local midnight
---@param stop integer the next one
local fold_masks, fold_lost
local function fold_reach(day, stop)
  new_kinds(day, stop, "analytics_hits_delta")
  tp.db.exec("DELETE FROM analytics_reach_new")
  tp.db.exec([[INSERT INTO analytics_reach_new (source, visitor, mask)
    SELECT d.source, d.visitor, sum(DISTINCT 1 << coalesce(k.slot, 0)) | 1
    FROM analytics_hits_delta d LEFT JOIN analytics_kinds k ON k.kind = d.kind
    WHERE d.hour >= ?1 AND d.hour < ?2 AND d.new = 1
    GROUP BY d.source, d.visitor]], day, stop)
  fold_masks(day)
end

-- the queued orders (o) up to order ?3, read from the queue, never from a day's orders
local QUEUED = [[analytics_steps_queue q CROSS JOIN analytics_orders o ON o.order_id = q.order_id
      AND q.order_id <= ?3]]
local QUEUED_HOURS_SQL = ([[SELECT DISTINCT h FROM (SELECT o.created_at / 3600 AS h FROM %s
    UNION ALL SELECT o.paid_at / 3600 FROM %s WHERE o.paid_at IS NOT NULL)]]):format(QUEUED, QUEUED)
local QUEUED_STEPS_SQL = ([[INSERT INTO analytics_reach_new (source, visitor, mask)
    SELECT source, member, sum(DISTINCT b) FROM (
      SELECT o.source AS source, o.member AS member, 1 << 7 AS b FROM %s
      WHERE o.created_at >= ?1 AND o.created_at < ?2
      UNION ALL SELECT o.source, o.member, 1 << 8 FROM %s WHERE o.paid_at >= ?1 AND o.paid_at < ?2)
    GROUP BY source, member]]):format(QUEUED, QUEUED)

---Queues order `id` for the next run to fold its steps (rollup.fold_orders).
---@param id integer
function rollup.queue_steps(id)
  tp.db.exec("INSERT OR IGNORE INTO analytics_steps_queue (order_id) VALUES (?)", id)
end

---Folds the order steps (created: slot 7 on the day created, paid: slot 8 on
---the day paid, under the order's source and overall) of the orders queued
---since the last run into those days' reach rows, as a rebuild would have
---them: an order's member, source and days never change (a merge that moves
---orders marks their days for a rebuild), so its bits only add, and folding
---an order twice changes nothing. A run reads the orders that changed, not
---every order of their days: before 1.9.0 it read the day's (5.6M instructions
---a run at 13,000 orders: a sale's day of 25,000 would pass the budget). At
---most `limit` orders a run, the oldest queued first, as events are sliced.
---@param limit integer
---@return boolean more  orders are left in the queue
function rollup.fold_orders(limit)
  local last = tp.db.one("SELECT order_id FROM analytics_steps_queue ORDER BY order_id LIMIT 1 OFFSET ?",
    limit - 1)
  local upto = last and last.order_id or math.maxinteger
  local days, order = {}, {}
  for _, r in ipairs(tp.db.query(QUEUED_HOURS_SQL, nil, nil, upto)) do
    local d = day_of(r.h * HOUR)
    if not days[d] then
      days[d] = true
      order[#order + 1] = d
    end
  end
  table.sort(order)
  for _, d in ipairs(order) do
    tp.db.exec("DELETE FROM analytics_reach_new")
    tp.db.exec(QUEUED_STEPS_SQL, d, day_of(d + 27 * HOUR), upto)
    fold_masks(d)
  end
  tp.db.exec("DELETE FROM analytics_steps_queue WHERE order_id <= ?", upto)
  return last ~= nil and tp.db.one("SELECT EXISTS (SELECT 1 FROM analytics_steps_queue) AS e").e == 1
end

---Given analytics_reach_new holding, per source, the slots visitors did in
---what a run adds to the day, adds their overall ('') rows, keeps only the
---rows that gain a slot (or are new to the day), with the slots they had, and
---redoes those reach rows.
---@param day integer the local midnight
fold_masks = function(day)
  tp.db.exec(([[INSERT INTO analytics_reach_new (source, visitor, mask)
    SELECT '', visitor, %s FROM analytics_reach_new GROUP BY visitor]]):format(cols("max(mask & (1 << %s))", " | ")))
  -- nothing new to a row: it stays; else it gets what it had
  tp.db.exec([[DELETE FROM analytics_reach_new WHERE mask & ~coalesce((SELECT r.mask FROM analytics_reach r
    WHERE r.source = analytics_reach_new.source AND r.visitor = analytics_reach_new.visitor
      AND r.day = ?1), 0) = 0]], day)
  tp.db.exec([[UPDATE analytics_reach_new SET mask = mask | coalesce((SELECT r.mask FROM analytics_reach r
    WHERE r.source = analytics_reach_new.source AND r.visitor = analytics_reach_new.visitor
      AND r.day = ?1), 0)]], day)
  redo_reach(day, true)
end

-- the rows the day's recomputed hours lost (a login, a merge), and their visitors
local LOST = "analytics_hits_delta WHERE hour >= ?1 AND hour < ?2 AND new = -1"
local IN_LOST = "visitor IN (SELECT visitor FROM analytics_lost)"

-- the keys the lost rows gave (FOLD_KEYS' shape)
local LOST_KEYS = hour_keys(LOST)

-- the hour keys the lost rows' visitors have on the day now (DAY_KEYS' hour part)
local NOW_KEYS = row_keys("analytics_days WHERE day = ?1 AND " .. IN_LOST, "UNION ALL")
  .. "\n  UNION ALL SELECT " .. PRODUCT_KEY .. ", visitor FROM analytics_hits WHERE hour >= ?1 AND hour < ?2 AND "
  .. IN_LOST .. " AND " .. PRODUCT_HIT

-- fold_lost's steps: the visitors whose rows a recomputed hour lost, their
-- analytics_days rows again, the keys they have now and the visits they lost,
-- their reach rows again and their old ones under the sources they had
local LOST_VISITORS_SQL = "INSERT OR IGNORE INTO analytics_lost (visitor) SELECT visitor FROM " .. LOST
local LOST_DAYS_GO_SQL = "DELETE FROM analytics_days WHERE day = ?1 AND " .. IN_LOST
local LOST_DAYS_SQL = [[INSERT INTO analytics_days (day, visitor, source, store, guide, scene, content, live, referrer)
    SELECT DISTINCT ?1, visitor, source, store, guide, scene, content, live, referrer FROM analytics_hits
    WHERE hour >= ?1 AND hour < ?2 AND ]] .. IN_LOST
local LOST_KEYS_NOW_SQL = "INSERT OR IGNORE INTO analytics_visits_new (source, visitor) SELECT source, visitor FROM ("
    .. NOW_KEYS .. ")"
local LOST_VISITS_GONE_SQL = [[INSERT OR IGNORE INTO analytics_visits_gone (source, visitor)
    SELECT k.source, k.visitor FROM (]] .. LOST_KEYS .. [[) AS k
    WHERE NOT EXISTS (SELECT 1 FROM analytics_visits_new n WHERE n.source = k.source AND n.visitor = k.visitor)
      AND EXISTS (SELECT 1 FROM analytics_visits v WHERE v.source = k.source AND v.visitor = k.visitor
        AND v.day = ?1)]]
local LOST_REACH_SQL = [[INSERT INTO analytics_reach_new (source, visitor, mask)
    SELECT source, visitor, sum(DISTINCT b) | max(hit) FROM (
      SELECT h.source AS source, h.visitor AS visitor, 1 << coalesce(k.slot, 0) AS b, 1 AS hit
      FROM analytics_hits h LEFT JOIN analytics_kinds k ON k.kind = h.kind
      WHERE h.hour >= ?1 AND h.hour < ?2 AND h.]] .. IN_LOST .. [[
      UNION ALL SELECT source, member, 1 << 7, 0 FROM analytics_orders
      WHERE created_at >= ?1 AND created_at < ?2 AND member IN (SELECT visitor FROM analytics_lost)
      UNION ALL SELECT source, member, 1 << 8, 0 FROM analytics_orders
      WHERE paid_at >= ?1 AND paid_at < ?2 AND member IN (SELECT visitor FROM analytics_lost))
    GROUP BY source, visitor]]
local LOST_OLD_REACH_SQL = [[INSERT INTO analytics_reach_new (source, visitor, mask)
    SELECT r.source, r.visitor, NULL
    FROM (SELECT '' AS source UNION SELECT source FROM ]] .. LOST .. [[
          UNION SELECT source FROM analytics_reach_new) AS s
    JOIN analytics_lost l JOIN analytics_reach r ON r.source = s.source AND r.visitor = l.visitor AND r.day = ?1
    WHERE true ON CONFLICT (source, visitor) DO NOTHING]]

---Redoes, after the fold of what they gained, the day of the visitors whose
---rows a recomputed hour lost (a login moved a device's events to the member;
---a merge, an unmerge): their analytics_days rows again from the day's hours,
---the visits they no longer have under a key go (the next visit of each
---pointing to the one before, the day's counts lowered), and their reach
---rows are redone from the day's hours and orders (a row they no longer have
---goes). Other visitors' rows are as the fold left them.
---@param day integer the local midnight
---@param stop integer the next one
fold_lost = function(day, stop)
  tp.db.exec("DELETE FROM analytics_lost")
  tp.db.exec(LOST_VISITORS_SQL, day, stop)
  tp.db.exec(LOST_DAYS_GO_SQL, day)
  tp.db.exec(LOST_DAYS_SQL, day, stop)
  -- visits: a key a lost row gave that the visitor has no more that day goes
  tp.db.exec("DELETE FROM analytics_visits_new")
  tp.db.exec(LOST_KEYS_NOW_SQL, day, stop)
  tp.db.exec("DELETE FROM analytics_visits_gone")
  tp.db.exec(LOST_VISITS_GONE_SQL, day, stop)
  if later_visits(day) then
    tp.db.exec([[UPDATE analytics_visits SET prev = (SELECT o.prev FROM analytics_visits o
        WHERE o.source = analytics_visits.source AND o.visitor = analytics_visits.visitor AND o.day = ?1)
      WHERE (source, visitor, day) IN (SELECT g.source, g.visitor, (SELECT min(q.day) FROM analytics_visits q
        WHERE q.source = g.source AND q.visitor = g.visitor AND q.day > ?1) FROM analytics_visits_gone g)]], day)
  end
  tp.db.exec([[DELETE FROM analytics_visits WHERE (source, visitor, day) IN
    (SELECT source, visitor, ?1 FROM analytics_visits_gone)]], day)
  tp.db.exec([[UPDATE analytics_day_uv SET n = n - x.c
    FROM (SELECT source, count(*) AS c FROM analytics_visits_gone GROUP BY source) AS x
    WHERE analytics_day_uv.day = ?1 AND analytics_day_uv.source = x.source]], day)
  tp.db.exec("DELETE FROM analytics_day_uv WHERE day = ? AND n = 0", day)
  -- reach: their rows of the day again, from its hours and orders
  tp.db.exec("DELETE FROM analytics_reach_new")
  tp.db.exec(LOST_REACH_SQL, day, stop)
  tp.db.exec(([[INSERT INTO analytics_reach_new (source, visitor, mask)
    SELECT '', visitor, %s FROM analytics_reach_new GROUP BY visitor]]):format(cols("max(mask & (1 << %s))", " | ")))
  -- their old rows under a source they had (overall, one of their rows now, a lost row's)
  tp.db.exec(LOST_OLD_REACH_SQL, day, stop)
  redo_reach(day, true)
end

local ANY_LOST_SQL = "SELECT EXISTS (SELECT 1 FROM " .. LOST .. ") AS l"

---Folds the run's additions to the day's hours into its per-day tables, as
---a rebuild from all its hours would have them (test/fold_test.lua): new
---(visitor, source, ...) rows, product views added, new visits, reach rows
---with new slots. Money and the order steps are not touched: they come from
---the order facts (lib/money.lua; the order steps: rollup.fold_orders).
---@param day integer the local midnight
---@param stop integer the next one
function rollup.fold_day(day, stop)
  tp.db.exec([[INSERT INTO analytics_days (day, visitor, source, store, guide, scene, content, live, referrer)
    SELECT DISTINCT ?1, d.visitor, d.source, d.store, d.guide, d.scene, d.content, d.live, d.referrer
    FROM analytics_hits_delta d WHERE d.hour >= ?1 AND d.hour < ?2 AND d.new = 1
      AND NOT EXISTS (SELECT 1 FROM analytics_days a WHERE a.day = ?1 AND a.visitor = d.visitor
        AND a.source = d.source AND a.store IS d.store AND a.guide IS d.guide AND a.scene IS d.scene
        AND a.content IS d.content AND a.live IS d.live AND a.referrer IS d.referrer)]], day, stop)
  tp.db.exec([[INSERT INTO analytics_day_views (day, product, views)
    SELECT ?1, product, sum(n) FROM analytics_hits_delta
    WHERE hour >= ?1 AND hour < ?2 AND kind = 'product_view' AND product <> '' GROUP BY product
    ON CONFLICT (day, product) DO UPDATE SET views = views + excluded.views]], day, stop)
  tp.db.exec("DELETE FROM analytics_day_views WHERE day = ? AND views = 0", day)
  fold_visits(day, stop)
  fold_reach(day, stop)
  if tp.db.one(ANY_LOST_SQL, day, stop).l == 1 then
    fold_lost(day, stop)
  end
end

---How a run brings a day up to date: "whole" (rebuild_day) when the day has
---no hours rolled up yet (its first pass: nothing to add to) or is marked
---dirty (the upgrade to 1.6.0, a merge that moved orders); else
---"fold" (rollup.fold_day).
---@param day integer
---@return "whole"|"fold"
local function how(day)
  local stop = day_of(day + 27 * HOUR)
  local r = tp.db.one([[SELECT EXISTS (SELECT 1 FROM analytics_hits WHERE hour >= ?1 AND hour < ?2) AS h,
    EXISTS (SELECT 1 FROM analytics_dirty WHERE day = ?1) AS d]], day, stop)
  return (r.h == 1 and r.d == 0) and "fold" or "whole"
end

---The days of the hours, each rebuilt once.
local function rebuild_days(hours)
  local done = {}
  for _, h in ipairs(hours) do
    local d = day_of(h)
    if not done[d] then
      done[d] = true
      rebuild_day(d)
    end
  end
end

---Marks the local day holding epoch for a rebuild whole by the job (the
---upgrade to 1.6.0; a merge that moved orders from one member to another).
---@param epoch integer|nil
function rollup.dirty(epoch)
  if epoch then tp.db.exec("INSERT OR IGNORE INTO analytics_dirty (day) VALUES (?)", day_of(epoch)) end
end

---Rebuilds up to n of the days marked dirty (orders, or the 1.6.0 upgrade),
---oldest first.
---@return integer done
---@return boolean more
local function dirty_days(n)
  if state("dirty_orders") == 1 then   -- the upgrade to 1.6.0: every day an order was created or paid
    for _, r in ipairs(tp.db.query([[SELECT DISTINCT created_at / 3600 AS h FROM analytics_orders
        UNION SELECT DISTINCT paid_at / 3600 FROM analytics_orders WHERE paid_at IS NOT NULL]])) do
      rollup.dirty(r.h * HOUR)
    end
    set_state("dirty_orders", 0)
  end
  local rows = tp.db.query("SELECT day FROM analytics_dirty ORDER BY day LIMIT ?", n + 1)
  for i = 1, math.min(#rows, n) do rebuild_day(rows[i].day) end
  return math.min(#rows, n), #rows > n
end

---Folds in what arrived since the last run, at most `max_events` events (and
---as many changed orders' steps) and `max_hours` hours per run, oldest first,
---and rebuilds the days marked dirty
---(one per 24 hours allowed). A run that stops short keeps its place (the
---target sequence number and the last hour done), so the next one goes on
---from there and every pending hour is reached; the watermark moves once all
---are done.
---@param max_hours integer
---@param max_events integer
---@return integer[] hours recomputed
---@return boolean more  events, hours or days are left for another run
function rollup.pending(max_hours, max_events)
  local hours, more = rollup.hours(max_hours, max_events)
  local _, days_left = dirty_days(math.max(1, max_hours // 24))
  -- the orders the money job has not folded yet (a slice of them: a sale's orders
  -- can outrun that job for minutes), and the order steps of the orders that changed
  local _, money_left = money.fold(max_events)
  local orders_left = rollup.fold_orders(max_events)
  return hours, more or days_left or money_left or orders_left
end

---The pending hours (rollup.pending), each recomputed, and the days they
---fall in brought up to date: folded (what the hours changed) or, on a day's
---first pass or a dirty day, rebuilt whole (how).
---
---A run takes the next `max_events` events by sequence number (counted: a gap
---retention left is skipped), not all that came: what a run holds the loop for is then about what it adds (a busy
---sale's backlog folds in slices a second apart, with requests served between
---them), and a run stays within the plugin's budget however far behind the
---job is; it used to take all, so a backlog past the budget failed every run.
---Any cut by sequence number is one the intake could have made between two
---runs (it commits events in their order), so slices add up to the same rows.
---@param max_hours integer
---@param max_events integer
---@return integer[] hours recomputed
---@return boolean more
function rollup.hours(max_hours, max_events)
  local seen, top, after = state("event_seq"), state("target_seq"), state("done_hour")
  if top <= seen then  -- a new run: the next max_events events, up to the newest
    local last = tp.db.one("SELECT seq FROM track.analytics_events WHERE seq > ? ORDER BY seq LIMIT 1 OFFSET ?",
      seen, max_events - 1)
    top = last and last.seq or newest_seq()
    if top <= seen then return {}, false end
    set_state("target_seq", top)
    after = -1
  end
  -- the hours of the run's events, and (linked = 1) every hour of a device a login
  -- tied to a member since: those are recomputed whole; and the hours of the earlier
  -- anonymous events of a session that a login without its device gave a member
  -- since (its device's rows there are now the member's: MOVED_SINCE sees the
  -- session and the hour is recomputed whole; before 1.9.0 an hour holding none
  -- of the run's events kept them as the device's)
  local rows = tp.db.query([[
    SELECT h, max(linked) AS linked FROM (
      SELECT DISTINCT at / 3600000 AS h, 0 AS linked FROM track.analytics_events WHERE seq > ?1 AND seq <= ?2
      UNION
      SELECT DISTINCT e.at / 3600000, 1 FROM track.analytics_devices d
      JOIN track.analytics_events e ON e.device = d.device WHERE d.seq > ?1 AND d.seq <= ?2
      UNION
      SELECT DISTINCT e.at / 3600000, 0 FROM (SELECT DISTINCT session FROM track.analytics_events
          WHERE seq > ?1 AND seq <= ?2 AND member IS NOT NULL) x
        JOIN track.analytics_sessions s ON s.id = x.session
        JOIN track.analytics_events e ON e.device = s.device AND e.at >= s.at - 3600000
      WHERE e.session = s.id AND e.seq <= ?1 AND e.member IS NULL)
    WHERE h > ?3 GROUP BY h ORDER BY h LIMIT ?4]], seen, top, after, max_hours + 1)
  local add = { seen = seen, top = top }
  local hours, days, order = {}, {}, {}
  tp.db.exec("DELETE FROM analytics_hits_delta")
  for i = 1, math.min(#rows, max_hours) do
    local h = rows[i].h * HOUR
    local d = day_of(h)
    if not days[d] then
      days[d] = how(d)
      order[#order + 1] = d
    end
    hours[i] = h
    rollup.hour(h, days[d] == "fold", rows[i].linked == 0 and add or nil)
  end
  for _, d in ipairs(order) do
    if days[d] == "whole" then rebuild_day(d) else rollup.fold_day(d, day_of(d + 27 * HOUR)) end
  end
  -- the scratch rows go (an hour's worth each), not to be kept between runs
  tp.db.exec("DELETE FROM analytics_hits_delta")
  tp.db.exec("DELETE FROM analytics_hits_prev")
  if #rows > max_hours then
    set_state("done_hour", rows[max_hours].h)
    return hours, true
  end
  set_state("event_seq", top)
  set_state("done_hour", -1)
  return hours, top < newest_seq()
end

---Recomputes every hour of [from, to) (UTC epoch seconds, whole hours)
---that still has its raw events.
---@return integer[] hours
function rollup.range(from, to)
  local hours = {}
  local all = {}
  for h = from - from % HOUR, to - 1, HOUR do
    if rollup.hour(h) then hours[#hours + 1] = h end
    all[#all + 1] = h
  end
  rebuild_days(all)
  return hours
end

return rollup
