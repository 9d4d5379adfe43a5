---@diagnostic disable: undefined-global
-- analytics: where a brand's visitors come from and what they are worth.
-- The host takes the mini-program's events in (POST /v1/{t}/track, into the
-- brand's analytics database; core/store/track.h); this plugin
--   - gives every order its last-touch source at creation (export
--     order_source, called by the orders plugin), within a window;
--   - keeps each member's first and last touch;
--   - rolls raw events up by the hour (lib/rollup.lua), incrementally and
--     idempotently, as a job every few minutes;
--   - keeps a fact per order from the orders plugin's events (lib/facts.lua);
--   - answers the reports: overview, funnel and sources (lib/report.lua).

---@class AnalyticsConfig
---@field attribution_window_days integer? an order's source is the last touch at most this old (default 7)
---@field rollup_every_seconds integer? how often the rollup job runs (default 300)
---@field rollup_max_hours integer? hours one run of the job recomputes at most (default 24)
---@field rollup_max_events integer? new events one run of the job folds in at most (default 2000)
---@field max_scan_visitor_days integer? a report that reads every hit of its period (a store,
---guide, product or campaign filter; hourly buckets) answers 422 period_too_long above this
---many visitor-days (default 0: no cap; set it with a raised deadline_ms, README "Budget")

local check = require("tp.check")
local tpmerge = require("tp.merge")
local rollup = require("lib.rollup")
local money = require("lib.money")
local facts = require("lib.facts")
local report = require("lib.report")
local csv = require("lib.csv")

local MAX_BUCKETS = 2400

-- each setting with its range, checked when the plugin sets up (check_config)
local SETTINGS = {
  attribution_window_days = { 1, 365 },
  rollup_every_seconds = { 10, 86400 },
  rollup_max_hours = { 1, 24 * 31 },
  rollup_max_events = { 1, 1000000000 },
  max_scan_visitor_days = { 0, 1000000000000 },
}

---The brand's settings for this plugin, checked: an unknown one (with a "did
---you mean") or one that is not an integer in its range fails the plugin's
---setup, naming it, rather than being ignored or meaning something odd.
local function check_config()
  local c = tp.config() or {}
  check.only(c, SETTINGS, "is not a setting of analytics")
  for name, range in pairs(SETTINGS) do check.integer(c[name], name, range[1], range[2], true) end
end

local function config()
  local c = tp.config() or {}
  return {
    window = (c.attribution_window_days or 7) * 86400,
    every = c.rollup_every_seconds or 300,
    max_hours = c.rollup_max_hours or 24,
    max_events = c.rollup_max_events or 2000,
    scan_cap = c.max_scan_visitor_days or 0,
  }
end

-- ---- attribution

-- the latest session of a member, or of a device, that began since ?2: each
-- walks its index (member, at) or (device, at) from the newest row
local function latest_by(column)
  return ("SELECT %s FROM track.analytics_sessions WHERE %s = ?1 AND at >= ?2"
    .. " AND source <> 'crawler' ORDER BY at DESC LIMIT 1"):format(table.concat(rollup.TOUCH_FIELDS, ", "), column)
end
local LATEST_OF_MEMBER, LATEST_OF_DEVICE = latest_by("member"), latest_by("device")

-- ---- merges: where each member merged away ends up (analytics_merge_final)

-- the end of member's chain of merges: itself when it was not merged away
local FINAL_OF_SQL = [[WITH RECURSIVE up (who, depth) AS (SELECT ?1, 0
    UNION ALL SELECT m.into_user, up.depth + 1 FROM up JOIN analytics_merges m ON m.from_user = up.who
    WHERE up.depth < 64)
  SELECT who FROM up ORDER BY depth DESC LIMIT 1]]
-- member and everyone merged into it, directly or down a chain, now end at ?2
local REFINAL_SQL = [[INSERT OR REPLACE INTO analytics_merge_final (from_user, into_user)
  WITH RECURSIVE down (who, depth) AS (SELECT ?1, 0
    UNION ALL SELECT m.from_user, down.depth + 1 FROM down JOIN analytics_merges m ON m.into_user = down.who
    WHERE down.depth < 64)
  SELECT who, ?2 FROM down WHERE who <> ?2]]
-- everyone whose chain of merges ends at member
local MERGED_INTO_SQL = "SELECT from_user FROM analytics_merge_final WHERE into_user = ?"

---After a merge of member (into another) or its undoing: member and every
---member merged into it, directly or through a chain, end where member's own
---chain now ends (itself, once its merge is undone). The members plugin
---merges only active members and undoes the latest merge of a survivor first,
---so the chains are trees; the depth bound only keeps a bad delivery finite.
---@param member string
local function follow_merges(member)
  local top = tp.db.one(FINAL_OF_SQL, member).who
  tp.db.exec("DELETE FROM analytics_merge_final WHERE from_user = ?", member)
  tp.db.exec(REFINAL_SQL, member, top)
end

---The member's latest session that began within the window: the sessions
---the member's own events named, and those of every device a login tied to
---the member (or to a member merged into it, directly or down a chain). Orders asks at every order's
---creation, so it is a few index lookups: one query that joined these sets
---built three temporary tables and cost a buy 190k instructions.
---@param member string
---@return table|nil touch {source, scene, store, guide, content, live, referrer, at}
local function last_touch(member)
  local since = (tp.now() - config().window) * 1000
  local best
  local function consider(row)
    if row and (not best or row.at > best.at) then best = row end
  end
  local function latest_of(who)
    consider(tp.db.one(LATEST_OF_MEMBER, who, since))
    for _, d in ipairs(tp.db.query("SELECT device FROM track.analytics_devices WHERE member = ?", who)) do
      consider(tp.db.one(LATEST_OF_DEVICE, d.device, since))
    end
  end
  latest_of(member)
  for _, m in ipairs(tp.db.query(MERGED_INTO_SQL, member)) do
    latest_of(m.from_user)
  end
  if best then best.at = best.at // 1000 end
  return best
end

local SOURCE_SCHEMA = { type = "object", description = "a touch: the session's source and where it came from",
  properties = { source = { type = "string", description = "the scene group: group_chat, moments, qr_code, ..." },
    scene = { type = "integer" }, store = { type = "string" }, guide = { type = "string" },
    content = { type = "string" }, live = { type = "string" }, referrer = { type = "string" },
    at = { type = "integer", description = "UTC epoch seconds the session began" } } }

local function touch_of(row, prefix)
  if not row or not row[prefix .. "at"] then return nil end
  local t = {}
  for _, k in ipairs(rollup.TOUCH_FIELDS) do t[k] = row[prefix .. k] end
  return t
end

local function member_touch(member)
  local row = tp.db.one("SELECT * FROM analytics_touch WHERE member = ?", member)
  return { member = member, first = touch_of(row, "first_"), last = touch_of(row, "last_") }
end

-- ---- routes

local FORMATS = { json = true, csv = true }

---The report as JSON, or with ?format=csv as CSV text.
local function answer(req, r, to_csv)
  local format = check.enum(req.query.format or "json", "format", FORMATS)
  if format == "csv" then return 200, to_csv(r) end
  return 200, r
end

---The report's period, buckets and filters from the query string, with the
---brand's cap on reports that read every hit (report.read_query).
local function read_query(req)
  return report.read_query(req.query, MAX_BUCKETS, config().scan_cap)
end

local function get_overview(req)
  return answer(req, report.overview(read_query(req)), csv.overview)
end

local function get_funnel(req)
  return answer(req, report.funnel(read_query(req), report.steps(req.query.steps)),
    csv.funnel)
end

local function get_sources(req)
  return answer(req, report.sources(read_query(req), req.query.by), csv.sources)
end

local function get_products(req)
  return answer(req, report.products(read_query(req)), csv.products)
end

local function get_campaigns(req)
  return answer(req, report.campaigns(read_query(req), req.query.by), csv.campaigns)
end

local function get_retention(req)
  return answer(req, report.retention(read_query(req)), csv.retention)
end

local function get_member(req)
  local m = check.user(req.params.member, "member")
  return 200, member_touch(m)
end

---POST /analytics/rollup {day?}: folds in what is pending now, or recomputes
---a whole local day.
local function post_rollup(req)
  local body = req.body == nil and {} or check.body(req.body)
  check.only(body, { day = true })
  local hours, more
  if body.day ~= nil then
    local start = type(body.day) == "string" and body.day:match("^%d%d%d%d%-%d%d%-%d%d$")
      and require("tp.when").parse(body.day .. " 00:00")
    if not start then check.field_error("day", "must be a local date written YYYY-MM-DD") end
    local stop = require("tp.when").parse(report.local_date(start + 27 * 3600) .. " 00:00")
    hours = rollup.range(start, stop)
  else
    hours, more = rollup.pending(config().max_hours, config().max_events)
    -- the rest goes on a second later, as after a run of the job
    if more then tp.jobs.schedule("rollup", nil, { after = 1, key = "rollup_more" }) end
  end
  return 200, { hours = #hours, more = more or false }
end

-- ---- the answers' schemas

local INT, NUM, STR = { type = "integer" }, { type = "number" }, { type = "string" }
local NNUM = { type = "number", nullable = true }
local NINT = { type = "integer", nullable = true }
local FIGURES = { type = "object", required = { "uv", "payers", "orders", "gmv_fen" }, properties = {
  uv = INT, payers = INT, orders = INT, gmv_fen = INT,
  conversion = NNUM, aov_fen = NINT, per_payer_fen = NINT,
  start = INT, label = STR } }
local PERIOD = { from = STR, to = STR, timezone = STR, filters = { type = "object" } }
local function with_period(props, required)
  local p = {}
  for k, v in pairs(PERIOD) do p[k] = v end
  for k, v in pairs(props) do p[k] = v end
  return { type = "object", required = required, properties = p }
end
local OVERVIEW = with_period({ granularity = STR, total = FIGURES, previous = FIGURES,
  change = { type = "object", description = "each figure's change against the previous period, as a fraction (absent: no base)",
    properties = { uv = NUM, conversion = NUM, per_payer_fen = NUM, aov_fen = NUM, gmv_fen = NUM, payers = NUM, orders = NUM } },
  buckets = { type = "array", items = FIGURES } }, { "total", "previous", "change", "buckets" })
local STEPS = { type = "array", items = { type = "object", required = { "step", "visitors" },
  properties = { step = STR, visitors = INT, conversion = NNUM } } }
local FUNNEL = with_period({ steps = STEPS, by_source = { type = "array", items = { type = "object",
  properties = { source = STR, steps = STEPS } } } }, { "steps", "by_source" })
local SOURCES = with_period({ by = STR, items = { type = "array", items = { type = "object",
  required = { "visitors", "new_members", "orders", "gmv_fen" },
  properties = { key = { type = "string", nullable = true, description = "absent: none (no session, no store, ...)" },
    visitors = INT, new_members = INT, orders = INT, gmv_fen = INT } } } }, { "by", "items" })

local NUMBER_OR_NULL = NNUM
local PRODUCT_ROW = { type = "object", required = { "product", "views", "viewers", "carts", "buyers", "units", "gmv_fen" },
  properties = { product = STR, views = INT, viewers = INT, carts = INT, buyers = INT, units = INT, gmv_fen = INT,
    view_to_buy = NUMBER_OR_NULL, add_to_cart_rate = NUMBER_OR_NULL } }
local PRODUCTS = with_period({ items = { type = "array", items = PRODUCT_ROW },
  slow_movers = { type = "array", items = STR, description = "no unit paid in the period: the SKUs viewed (most views first), then the catalog's SKUs on sale that nobody viewed (by code)" } },
  { "items", "slow_movers" })

local CAMPAIGNS = with_period({ by = STR, items = { type = "array", items = { type = "object",
  required = { "campaign", "participants", "new_members", "orders", "gmv_fen", "campaign_fen", "coupon_fen" },
  properties = { campaign = { type = "string",
      description = "by=activity: plugin:id of the activity (none: plain checkouts); by=script: the campaign script's name" },
    title = { type = "string", description = "by=script: the script's title" },
    activities = { type = "array", items = STR, description = "by=script: the script's activities (plugin:id), withdrawn ones too" },
    participants = INT, new_members = INT, orders = INT, gmv_fen = INT,
    campaign_fen = { type = "integer", description = "list price minus the campaign's price, on paid orders" },
    coupon_fen = { type = "integer", description = "coupon discounts on paid orders" },
    roi = { type = "number", nullable = true, description = "gmv_fen / (campaign_fen + coupon_fen)" } } } } },
  { "by", "items" })

local COHORT = { type = "object", required = { "month", "members" }, properties = {
  month = { type = "string", description = "YYYY-MM of the first purchase, local" }, members = INT } }
for _, w in ipairs({ 30, 60, 90 }) do
  COHORT.properties["repurchased_" .. w] = INT
  COHORT.properties["rate_" .. w] = NUM
  COHORT.properties["open_" .. w] = { type = "boolean", description = "the window has not closed for every member yet" }
end
local RETENTION = with_period({ cohorts = { type = "array", items = COHORT } }, { "cohorts" })

local REPORT_QUERY = {
  from = { type = "string", description = "first local day, YYYY-MM-DD (default: 7 days before to)" },
  to = { type = "string", description = "last local day, YYYY-MM-DD (default: today)" },
  granularity = { type = "string", description = "hour, day (default), week or month" },
  source = { type = "string", description = "only this scene group" },
  store = STR, guide = STR,
  campaign = { type = "string", description = "plugin:id of the campaign (orders only)" },
  product = { type = "string", description = "a SKU: its viewers and the orders holding it" },
  format = { type = "string", description = "json (default) or csv" },
}
local function query_with(extra)
  local q = {}
  for k, v in pairs(REPORT_QUERY) do q[k] = v end
  for k, v in pairs(extra or {}) do q[k] = v end
  return q
end

return {
  name = "analytics",
  version = "1.9.0",
  migrations = {
    [[
    CREATE TABLE analytics_state (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE analytics_hits (
      hour INTEGER NOT NULL,        -- UTC epoch seconds of the hour's start
      visitor TEXT NOT NULL,        -- a member id, device:<id> or session:<id>
      kind TEXT NOT NULL,
      source TEXT NOT NULL, scene INTEGER, store TEXT, guide TEXT, content TEXT, live TEXT,
      referrer TEXT,
      product TEXT NOT NULL,        -- '' unless the kind names a product
      n INTEGER NOT NULL
    );
    CREATE INDEX analytics_hits_hour ON analytics_hits(hour, visitor);
    CREATE TABLE analytics_touch (
      member TEXT PRIMARY KEY,
      first_at INTEGER NOT NULL, first_source TEXT, first_scene INTEGER, first_store TEXT,
      first_guide TEXT, first_content TEXT, first_live TEXT, first_referrer TEXT,
      last_at INTEGER NOT NULL, last_source TEXT, last_scene INTEGER, last_store TEXT,
      last_guide TEXT, last_content TEXT, last_live TEXT, last_referrer TEXT
    ) WITHOUT ROWID;
    CREATE INDEX analytics_touch_first ON analytics_touch(first_at);
    CREATE TABLE analytics_orders (
      order_id INTEGER PRIMARY KEY,
      member TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      paid_at INTEGER,
      total_fen INTEGER NOT NULL,
      paid_fen INTEGER NOT NULL,
      refunded_fen INTEGER NOT NULL,
      source TEXT NOT NULL, scene INTEGER, store TEXT, guide TEXT, content TEXT, live TEXT,
      referrer TEXT, campaign TEXT,
      products TEXT NOT NULL        -- ',sku,sku,'
    );
    CREATE INDEX analytics_orders_paid ON analytics_orders(paid_at) WHERE paid_at IS NOT NULL;
    CREATE INDEX analytics_orders_created ON analytics_orders(created_at);
    CREATE INDEX analytics_orders_member ON analytics_orders(member);
    CREATE TABLE analytics_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE INDEX analytics_merges_from ON analytics_merges(from_user);
    CREATE INDEX analytics_merges_into ON analytics_merges(into_user);
    ]],
    -- the lines of each order, for the products report; a refund split over them
    [[
    CREATE TABLE analytics_lines (
      order_id INTEGER NOT NULL,
      line_no INTEGER NOT NULL,
      sku TEXT NOT NULL,
      qty INTEGER NOT NULL,
      paid_fen INTEGER NOT NULL,
      refunded_fen INTEGER NOT NULL,
      PRIMARY KEY (order_id, line_no)
    ) WITHOUT ROWID;
    CREATE INDEX analytics_lines_sku ON analytics_lines(sku);
    ]],
    -- what an order's campaign and coupon took off its list price
    [[
    ALTER TABLE analytics_orders ADD COLUMN coupon_fen INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE analytics_orders ADD COLUMN campaign_fen INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX analytics_orders_campaign ON analytics_orders(campaign) WHERE campaign IS NOT NULL;
    ]],
    -- the visitors of each local day, for UV over days, weeks and months
    [[
    CREATE TABLE analytics_days (
      day INTEGER NOT NULL,         -- UTC epoch seconds of the local midnight
      visitor TEXT NOT NULL,
      source TEXT NOT NULL, store TEXT, guide TEXT
    );
    CREATE INDEX analytics_days_day ON analytics_days(day, visitor);
    ]],
    -- each visitor once per local day, overall (source '') and per source, with
    -- the day the visitor was last seen before (0: never), and each day's count:
    -- distinct visitors over whole days without reading every visit (lib/rollup.lua)
    [[
    CREATE TABLE analytics_visits (
      source TEXT NOT NULL,         -- '': any source
      day INTEGER NOT NULL,         -- UTC epoch seconds of the local midnight
      visitor TEXT NOT NULL,
      prev INTEGER NOT NULL,        -- the visitor's day before this one (same source), 0: none
      PRIMARY KEY (source, visitor, day)
    ) WITHOUT ROWID;
    CREATE INDEX analytics_visits_day ON analytics_visits(source, day, prev);
    CREATE INDEX analytics_visits_prev ON analytics_visits(prev);
    CREATE TABLE analytics_day_uv (
      day INTEGER NOT NULL,
      source TEXT NOT NULL,         -- '': any source
      n INTEGER NOT NULL,           -- distinct visitors of the day
      PRIMARY KEY (day, source)
    ) WITHOUT ROWID;
    INSERT INTO analytics_visits (source, day, visitor, prev)
      SELECT source, day, visitor, lag(day, 1, 0) OVER (PARTITION BY source, visitor ORDER BY day)
      FROM (SELECT DISTINCT '' AS source, day, visitor FROM analytics_days
            UNION SELECT DISTINCT source, day, visitor FROM analytics_days);
    INSERT INTO analytics_day_uv (day, source, n)
      SELECT day, source, count(*) FROM analytics_visits GROUP BY day, source;
    ]],
    -- 1.6.0: every report over whole days reads per-day rows, never a period's hits.
    -- analytics_visits also keys each visitor by scene, store, guide, content, live
    -- room and referrer ('store:hz-west', 'store:' for none) and by the products it
    -- viewed and carted ('view:sku', 'cart:sku'); analytics_day_views counts the
    -- views; analytics_reach keeps each visitor once a day (per source and overall)
    -- with, per funnel step, how many days ago it last did it, for the funnel
    -- (lib/rollup.lua rollup.reach). Every day already rolled up is rebuilt by the
    -- rollup job from its hours (analytics_dirty), oldest first.
    [[
    ALTER TABLE analytics_days ADD COLUMN scene INTEGER;
    ALTER TABLE analytics_days ADD COLUMN content TEXT;
    ALTER TABLE analytics_days ADD COLUMN live TEXT;
    ALTER TABLE analytics_days ADD COLUMN referrer TEXT;
    CREATE TABLE analytics_day_views (
      day INTEGER NOT NULL,
      product TEXT NOT NULL,
      views INTEGER NOT NULL,       -- product_view events of the day
      PRIMARY KEY (day, product)
    ) WITHOUT ROWID;
    CREATE TABLE analytics_kinds (
      kind TEXT PRIMARY KEY,        -- an event kind, order or pay
      slot INTEGER NOT NULL UNIQUE  -- its x<slot> column in analytics_reach (0: any hit)
    ) WITHOUT ROWID;
    INSERT INTO analytics_kinds (kind, slot) VALUES ('enter', 1), ('page_view', 2),
      ('product_view', 3), ('add_to_cart', 4), ('search', 5), ('share', 6), ('order', 7), ('pay', 8);
    CREATE TABLE analytics_reach (
      source TEXT NOT NULL,         -- '': any source
      visitor TEXT NOT NULL,
      day INTEGER NOT NULL,         -- a local midnight the visitor was seen or ordered or paid
      next INTEGER NOT NULL,        -- the visitor's next such day (same source); 1 << 46: none
      mask INTEGER NOT NULL,        -- bit s: slot s done this day
      -- x<s>: days since the visitor last did slot s, on or before day; 32767: never
      x0 INTEGER NOT NULL, x1 INTEGER NOT NULL, x2 INTEGER NOT NULL, x3 INTEGER NOT NULL, x4 INTEGER NOT NULL,
      x5 INTEGER NOT NULL, x6 INTEGER NOT NULL, x7 INTEGER NOT NULL, x8 INTEGER NOT NULL, x9 INTEGER NOT NULL,
      x10 INTEGER NOT NULL, x11 INTEGER NOT NULL, x12 INTEGER NOT NULL,
      PRIMARY KEY (source, visitor, day)
    ) WITHOUT ROWID;
    CREATE INDEX analytics_reach_last ON analytics_reach(day, source, next, x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12);
    CREATE TABLE analytics_reach_new (
      source TEXT NOT NULL,
      visitor TEXT NOT NULL,
      mask INTEGER,                 -- NULL: seen on the day before its rebuild, not after
      PRIMARY KEY (source, visitor)
    ) WITHOUT ROWID;
    -- the order facts of each local day (by pay time), per key: '' (all), the
    -- source, 'scene:1008', 'store:hz-west', ... ('store:' for none), 'camp:<plugin:id>'
    -- ('camp:none' for plain checkouts); payers, buyers and participants are
    -- analytics_visits keys ('payer:<key>', 'buyer:<sku>', 'part:<campaign>')
    CREATE TABLE analytics_day_orders (
      key TEXT NOT NULL,
      day INTEGER NOT NULL,         -- the local midnight of paid_at
      orders INTEGER NOT NULL,      -- paid, not refunded in full
      gmv_fen INTEGER NOT NULL,     -- paid_fen - refunded_fen
      campaign_fen INTEGER NOT NULL,
      coupon_fen INTEGER NOT NULL,
      PRIMARY KEY (key, day)
    ) WITHOUT ROWID;
    CREATE TABLE analytics_day_products (
      day INTEGER NOT NULL,         -- the local midnight of the order's paid_at
      product TEXT NOT NULL,
      units INTEGER NOT NULL,       -- on orders not refunded in full
      gmv_fen INTEGER NOT NULL,     -- the lines' paid_fen - refunded_fen
      PRIMARY KEY (day, product)
    ) WITHOUT ROWID;
    -- each member's first and second purchase (paid, not refunded in full), for retention
    CREATE TABLE analytics_buyers (
      member TEXT PRIMARY KEY,
      first_at INTEGER NOT NULL,
      second_at INTEGER             -- NULL: none yet
    ) WITHOUT ROWID;
    CREATE INDEX analytics_buyers_first ON analytics_buyers(first_at, second_at);
    CREATE INDEX analytics_orders_buys ON analytics_orders(member, paid_at)
      WHERE paid_at IS NOT NULL AND paid_fen > refunded_fen;
    INSERT INTO analytics_buyers (member, first_at, second_at)
      SELECT member, min(paid_at), NULL FROM analytics_orders
      WHERE paid_at IS NOT NULL AND paid_fen > refunded_fen GROUP BY member;
    UPDATE analytics_buyers SET second_at = (SELECT o.paid_at FROM analytics_orders o
      WHERE o.member = analytics_buyers.member AND o.paid_at IS NOT NULL AND o.paid_fen > o.refunded_fen
      ORDER BY o.paid_at LIMIT 1 OFFSET 1);
    -- new members by their first touch, read from the index alone
    CREATE INDEX analytics_touch_firsts ON analytics_touch(first_at, first_source, first_scene, first_store,
      first_guide, first_content, first_live, first_referrer);
    DROP INDEX analytics_touch_first;
    -- a day's visits side by side (its count, its rebuild), each key's visitors
    -- by prev within it (the reports); a later visit is found by the primary key
    DROP INDEX analytics_visits_day;
    DROP INDEX analytics_visits_prev;
    CREATE INDEX analytics_visits_by_day ON analytics_visits(day, source, prev);
    CREATE TABLE analytics_dirty (day INTEGER PRIMARY KEY);   -- local days to rebuild
    INSERT INTO analytics_dirty (day) SELECT DISTINCT day FROM analytics_days;
    INSERT INTO analytics_state (k, v) VALUES ('dirty_orders', 1);
    ]],
    -- the incremental fold (lib/rollup.lua rollup.hours): an hour's rows before its
    -- recompute, what the recompute added (a run's, per hour), and a day's new visits
    [[
    CREATE TABLE analytics_hits_prev (
      visitor TEXT NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL, scene INTEGER, store TEXT,
      guide TEXT, content TEXT, live TEXT, referrer TEXT, product TEXT NOT NULL, n INTEGER NOT NULL
    );
    CREATE INDEX analytics_hits_prev_visitor ON analytics_hits_prev(visitor);
    CREATE TABLE analytics_hits_delta (
      hour INTEGER NOT NULL, visitor TEXT NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
      scene INTEGER, store TEXT, guide TEXT, content TEXT, live TEXT, referrer TEXT,
      product TEXT NOT NULL,
      n INTEGER NOT NULL,           -- events added to the hour's row
      new INTEGER NOT NULL          -- 1: the row is new to the hour (not only its count)
    );
    CREATE INDEX analytics_hits_delta_hour ON analytics_hits_delta(hour);
    CREATE TABLE analytics_visits_new (
      source TEXT NOT NULL,
      visitor TEXT NOT NULL,
      PRIMARY KEY (source, visitor)
    ) WITHOUT ROWID;
    -- days an order was created or paid on since the last run: their order steps
    -- are folded into the reach rows (rollup.fold_orders)
    CREATE TABLE analytics_order_days (day INTEGER PRIMARY KEY);
    -- a fold's visitors who lost rows (a login, a merge) and the visits they lost
    CREATE TABLE analytics_lost (visitor TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE analytics_visits_gone (
      source TEXT NOT NULL,
      visitor TEXT NOT NULL,
      PRIMARY KEY (source, visitor)
    ) WITHOUT ROWID;
    ]],
    -- money folded as the orders change (lib/money.lua): each order's state as last
    -- folded into the per-day tables, the orders changed since, and a fold's scratch
    [[
    ALTER TABLE analytics_orders ADD COLUMN folded_paid_at INTEGER;              -- NULL: not folded paid
    ALTER TABLE analytics_orders ADD COLUMN folded_paid_fen INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE analytics_orders ADD COLUMN folded_refunded_fen INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE analytics_lines ADD COLUMN folded_refunded_fen INTEGER;          -- NULL: not folded yet
    -- the per-day tables are rebuilt from these facts (every day is dirty since 1.6.0's
    -- first migration, or its money was redone whole): they are folded as they stand
    UPDATE analytics_orders SET folded_paid_at = paid_at, folded_paid_fen = paid_fen,
      folded_refunded_fen = refunded_fen;
    UPDATE analytics_lines SET folded_refunded_fen = refunded_fen;
    CREATE TABLE analytics_money_queue (order_id INTEGER PRIMARY KEY);   -- changed since folded
    CREATE TABLE analytics_money_batch (order_id INTEGER PRIMARY KEY);   -- a fold's orders
    CREATE TABLE analytics_money_days (day INTEGER PRIMARY KEY, stop INTEGER NOT NULL);
    CREATE TABLE analytics_money_visits (
      source TEXT NOT NULL,
      day INTEGER NOT NULL,
      visitor TEXT NOT NULL,
      PRIMARY KEY (source, visitor, day)
    ) WITHOUT ROWID;
    ]],
    -- survivors of a merge since undone: their hours are recomputed whole, never added to
    -- (lib/rollup.lua, "added"); the rollup adds a run's events to the hour it falls in
    [[
    CREATE TABLE analytics_unmerged (member TEXT PRIMARY KEY) WITHOUT ROWID;
    ]],
    -- how many visits of each day and key have each prev (report.lua RANGE_UV: the
    -- visitors of a period new since its first day are a sum over at most one row per
    -- earlier day, not a count over every visitor); kept by triggers, so that every
    -- path that adds, removes or re-points a visit keeps it (rows may fall to n = 0)
    [[
    CREATE TABLE analytics_day_prev (
      source TEXT NOT NULL,
      day INTEGER NOT NULL,
      prev INTEGER NOT NULL,
      n INTEGER NOT NULL,
      PRIMARY KEY (source, day, prev)
    ) WITHOUT ROWID;
    INSERT INTO analytics_day_prev (source, day, prev, n)
      SELECT source, day, prev, count(*) FROM analytics_visits GROUP BY source, day, prev;
    CREATE TRIGGER analytics_visits_added AFTER INSERT ON analytics_visits BEGIN
      INSERT INTO analytics_day_prev (source, day, prev, n) VALUES (new.source, new.day, new.prev, 1)
        ON CONFLICT (source, day, prev) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER analytics_visits_gone AFTER DELETE ON analytics_visits BEGIN
      UPDATE analytics_day_prev SET n = n - 1 WHERE source = old.source AND day = old.day AND prev = old.prev;
    END;
    CREATE TRIGGER analytics_visits_moved AFTER UPDATE ON analytics_visits
      WHEN old.prev IS NOT new.prev OR old.source IS NOT new.source OR old.day IS NOT new.day BEGIN
      UPDATE analytics_day_prev SET n = n - 1 WHERE source = old.source AND day = old.day AND prev = old.prev;
      INSERT INTO analytics_day_prev (source, day, prev, n) VALUES (new.source, new.day, new.prev, 1)
        ON CONFLICT (source, day, prev) DO UPDATE SET n = n + 1;
    END;
    ]],
    -- 1.6.1: each hour's watermark, the highest event seq its rows hold (all of the
    -- hour's events up to it); a run adds to an hour only the events above it, so an
    -- hour recomputed between two runs (POST /analytics/rollup {day}) is not added to
    -- twice. An hour without a row holds the events up to the job's own watermark.
    [[
    CREATE TABLE analytics_hour_seq (hour INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
    ]],
    -- 1.7.1: every member merged away, with the member its chain of merges ends at
    -- (a into b, then b into c: a's and b's raw events roll up as c's; before, a's
    -- stopped at b). Kept by member_merge and member_unmerge (follow_merges below).
    [[
    CREATE TABLE analytics_merge_final (
      from_user TEXT PRIMARY KEY,
      into_user TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX analytics_merge_final_into ON analytics_merge_final(into_user);
    INSERT OR REPLACE INTO analytics_merge_final (from_user, into_user)
      WITH RECURSIVE up (who, top, depth) AS (
        SELECT from_user, into_user, 1 FROM analytics_merges
        UNION ALL
        SELECT up.who, m.into_user, up.depth + 1 FROM up JOIN analytics_merges m ON m.from_user = up.top
        WHERE up.depth < 64)
      SELECT who, top FROM (SELECT who, top, max(depth) FROM up GROUP BY who);
    ]],
    -- 1.8.0: the coupon an order used, as the activity that made its template
    -- ('coupons:<template>'), so a campaign script's coupons count in its row
    -- (report.lua, campaigns by script); orders folded before stay without one
    [[
    ALTER TABLE analytics_orders ADD COLUMN coupon TEXT;
    CREATE INDEX analytics_orders_coupon ON analytics_orders(coupon) WHERE coupon IS NOT NULL;
    ]],
    -- 1.8.4: how many merges were made or undone (analytics_state 'merge_gen'), and at
    -- which count each hour's rows were made: an hour made since the last one asks
    -- only what its watermark's later events changed whether a row would move
    -- (lib/rollup.lua MOVED_SINCE); every hour made before asks the whole way once
    [[
    ALTER TABLE analytics_hour_seq ADD COLUMN gen INTEGER NOT NULL DEFAULT -1;
    INSERT OR IGNORE INTO analytics_state (k, v) VALUES ('merge_gen', 0);
    ]],
    -- 1.9.0: the orders whose steps the next run folds into the reach rows
    -- (rollup.fold_orders), instead of the days they were created or paid on: a
    -- run read every order of a marked day, and a flash sale's day passed the
    -- budget. The marked days' orders are queued (a day and a bit each way: folding
    -- an order twice changes nothing) and the marks go.
    [[
    CREATE TABLE analytics_steps_queue (order_id INTEGER PRIMARY KEY);
    INSERT OR IGNORE INTO analytics_steps_queue (order_id)
      SELECT o.order_id FROM analytics_order_days d JOIN analytics_orders o
        ON o.created_at >= d.day - 3600 AND o.created_at < d.day + 90000
      UNION SELECT o.order_id FROM analytics_order_days d JOIN analytics_orders o
        ON o.paid_at >= d.day - 3600 AND o.paid_at < d.day + 90000;
    DROP TABLE analytics_order_days;
    ]],
  },
  routes = {
    { method = "GET", path = "/analytics/overview", auth = "admin", csv = true, handler = get_overview,
      summary = "UV, payers, conversion, AOV and GMV by bucket, with the change against the previous period",
      query = query_with(), response = OVERVIEW,
      errors = { [400] = { "invalid_field", "invalid_query" }, [422] = { "period_too_long" } } },
    { method = "GET", path = "/analytics/funnel", auth = "admin", csv = true, handler = get_funnel,
      summary = "Visitors reaching each step (enter, product view, add to cart, order, pay), by source",
      query = query_with({ steps = { type = "string",
        description = "comma-separated event kinds, order and pay (default enter,product_view,add_to_cart,order,pay)" } }),
      response = FUNNEL, errors = { [400] = { "invalid_field", "invalid_query" }, [422] = { "period_too_long" } } },
    { method = "GET", path = "/analytics/sources", auth = "admin", csv = true, handler = get_sources,
      summary = "Visitors, new members, orders and GMV per source, scene, store, guide, content, live room or referrer",
      query = query_with({ by = { type = "string",
        description = "source (default), scene, store, guide, content, live or referrer" } }),
      response = SOURCES, errors = { [400] = { "invalid_field", "invalid_query" }, [422] = { "period_too_long" } } },
    { method = "GET", path = "/analytics/products", auth = "admin", csv = true, handler = get_products,
      summary = "Per product: views, viewers, add-to-cart, buyers, units, GMV, view-to-buy; slow movers",
      query = query_with(), response = PRODUCTS, errors = { [400] = { "invalid_field", "invalid_query" }, [422] = { "period_too_long" } } },
    { method = "GET", path = "/analytics/campaigns", auth = "admin", csv = true, handler = get_campaigns,
      summary = "Per activity or per campaign script: participants, orders, GMV, new members, campaign and coupon cost, ROI",
      query = query_with({ by = { type = "string",
        description = "activity (default: one row per plugin:id) or script (one row per campaign script)" } }),
      response = CAMPAIGNS, errors = { [400] = { "invalid_field", "invalid_query" } } },
    { method = "GET", path = "/analytics/retention", auth = "admin", csv = true, handler = get_retention,
      summary = "Cohorts by first-purchase month: members buying again within 30, 60 and 90 days",
      query = { from = REPORT_QUERY.from, to = REPORT_QUERY.to, format = REPORT_QUERY.format },
      response = RETENTION, errors = { [400] = { "invalid_field", "invalid_query" } } },
    { method = "GET", path = "/analytics/members/{member}", auth = "admin", handler = get_member,
      summary = "A member's first and last touch", response = { type = "object", required = { "member" },
        properties = { member = STR, first = SOURCE_SCHEMA, last = SOURCE_SCHEMA } },
      errors = { [400] = { "invalid_field" } } },
    { method = "POST", path = "/analytics/rollup", auth = "admin", handler = post_rollup,
      summary = "Fold in pending events now, or recompute one local day",
      body = { type = "object", properties = { day = { type = "string", description = "YYYY-MM-DD, local" } } },
      response = { type = "object", required = { "hours", "more" }, properties = { hours = INT,
        more = { type = "boolean", description = "events or hours are left beyond rollup_max_events or rollup_max_hours: the job goes on a second later (or post again)" } } },
      errors = { [400] = { "invalid_field", "invalid_json" } } },
  },
  subscribe = {
    ["order.created"] = facts.on_event,
    ["order.paid"] = facts.on_event,
    ["order.refunded"] = facts.on_event,
  },
  jobs = {
    -- the money of the orders that changed, folded in a second or two after
    -- them (lib/money.lua), a batch per run; the rest at once in the next run
    money = function()
      local _, more = money.fold(money.BATCH)
      if more then tp.jobs.schedule("money", nil, { after = money.PAUSE, key = "money_more" }) end
    end,
    -- one run folds in at most rollup_max_events events and rollup_max_hours hours; the
    -- rest go on a second later, with requests served in between
    rollup = function()
      local _, more = rollup.pending(config().max_hours, config().max_events)
      if more then tp.jobs.schedule("rollup", nil, { after = 1, key = "rollup_more" }) end
    end,
  },
  setup = function()
    check_config()
    tp.jobs.schedule("rollup", nil, { after = config().every, every = config().every, key = "rollup" })
  end,
  exports = {
    ---The last touch within the brand's window, to freeze on an order (orders calls it at creation).
    order_source = function(member)
      if not check.is_user_id(member) then return nil end
      return last_touch(member)
    end,
    ---A member's first and last touch: {member, first?, last?}.
    touch = function(member)
      if not check.is_user_id(member) then return nil end
      return member_touch(member)
    end,
    ---Members: from's order facts and touch become into's; raw events of from roll up as into's.
    member_merge = function(from, into, merge_id)
      if not tpmerge.begin("analytics_merges", from, into, merge_id) then return { rows = 0 } end
      follow_merges(from)
      rollup.merges_changed()
      -- the facts and the touch move now (both indexed by member); the rollup rows do
      -- not (a scan of every hour inside a login): rollups from now on, and any hour
      -- recomputed, count from's raw events as into's. The days of the orders that
      -- move are rebuilt whole by the next run (their order steps change member).
      for _, o in ipairs(tp.db.query("SELECT created_at, paid_at FROM analytics_orders WHERE member = ?", from)) do
        rollup.dirty(o.created_at)
        rollup.dirty(o.paid_at)
      end
      local n = tp.db.exec("UPDATE analytics_orders SET member = ? WHERE member = ?", into, from)
      facts.buyer(from)
      facts.buyer(into)
      local t = tp.db.one("SELECT * FROM analytics_touch WHERE member = ?", from)
      if t then
        -- the earlier first and the later last, each whole (before 1.8.3 only the first's
        -- time, source, store and guide moved, and never the last)
        rollup.merge_touch(t, into)
        n = n + 1
      end
      return { rows = n }
    end,
    ---An undone merge: later rollups keep from's events apart again; what moved stays moved.
    member_unmerge = function(from, into, merge_id)
      if tpmerge.begin_undo("analytics_merges", from, into, merge_id) then
        follow_merges(from)
        rollup.merges_changed()
        -- the survivor's hours hold from's events: one the rollup adds to is recomputed whole
        tp.db.exec("INSERT OR IGNORE INTO analytics_unmerged (member) VALUES (?)", into)
      end
      return { rows = 0 }
    end,
  },
}
