-- Reports (README "Reports"): overview, funnel and sources, read from the
-- rollups (analytics_hits, analytics_touch) and the order facts
-- (analytics_orders), never from raw events.
--
-- A report covers the local days from..to (inclusive, the brand's zone) in
-- buckets of an hour, a day, a week (from Monday) or a month. Money is the
-- one rule of README "Money": an order counts when it is paid, at its pay
-- time, for what was paid minus what has been refunded of it; it counts as an
-- order (and its member as a payer or buyer) unless refunded in full, as the
-- referral plugin counts a store's and a guide's orders.

local check = require("tp.check")
local when = require("tp.when")

local report = {}

local GRANULARITIES = { hour = true, day = true, week = true, month = true }
report.GRANULARITIES = GRANULARITIES
local DAY = 86400

---"YYYY-MM-DD" of epoch in the brand's zone.
local function local_date(epoch)
  local t = tp.localtime(epoch)
  return ("%04d-%02d-%02d"):format(t.year, t.month, t.day)
end
report.local_date = local_date

---The local midnight of a "YYYY-MM-DD", or a 400 naming the field.
local function midnight(text, field)
  local epoch = type(text) == "string" and text:match("^%d%d%d%d%-%d%d%-%d%d$") and when.parse(text .. " 00:00")
  if not epoch then check.field_error(field, "must be a local date written YYYY-MM-DD") end
  return epoch
end

---The local midnight after the one at epoch.
local function next_midnight(epoch)
  return when.parse(local_date(epoch + DAY + 3 * 3600) .. " 00:00")
end

---Where the bucket after the one starting at `start` starts.
local function next_start(start, gran)
  if gran == "hour" then return start + 3600 end
  if gran == "day" then return next_midnight(start) end
  if gran == "week" then
    local s = start
    for _ = 1, 7 do s = next_midnight(s) end
    return s
  end
  local t = tp.localtime(start)
  local y, m = t.year, t.month + 1
  if m == 13 then y, m = y + 1, 1 end
  return when.parse(("%04d-%02d-01 00:00"):format(y, m))
end

---The first bucket's start: from's midnight, moved back to a Monday or the
---first of the month for weeks and months.
local function align(start, gran)
  if gran == "week" then
    while tp.localtime(start).wday ~= 1 do start = when.parse(local_date(start - 12 * 3600) .. " 00:00") end
  elseif gran == "month" then
    local t = tp.localtime(start)
    start = when.parse(("%04d-%02d-01 00:00"):format(t.year, t.month))
  end
  return start
end

---The query's period, granularity and filters, checked.
---@param scan_cap integer? the brand's max_scan_visitor_days (scan_guard)
---@return table q {from, to (epoch, exclusive), gran, buckets, filters, scan_cap}
function report.read_query(query, max_buckets, scan_cap)
  local today = local_date(tp.now())
  local to_text = query.to or today
  local to = next_midnight(midnight(to_text, "to"))
  local from_text = query.from or local_date(to - 7 * DAY + 3 * 3600)
  local from = midnight(from_text, "from")
  if from >= to then check.field_error("from", "must be on or before to") end
  if to - from > 400 * DAY then check.field_error("from", "a report covers at most 400 days") end
  local gran = check.enum(query.granularity or "day", "granularity", GRANULARITIES)
  local buckets, s = {}, align(from, gran)
  while s < to do
    local e = next_start(s, gran)
    buckets[#buckets + 1] = { start = s, stop = e,
      label = gran == "hour" and when.format(s) or local_date(s) }
    if #buckets > max_buckets then
      check.field_error("granularity", ("more than %d buckets: choose a coarser one"):format(max_buckets))
    end
    s = e
  end
  local f = {}
  for _, k in ipairs({ "source", "store", "guide", "campaign", "product" }) do
    f[k] = query[k] and check.text(query[k], k, 100) or nil
  end
  return { from = from, to = to, from_date = from_text, to_date = to_text, gran = gran,
           buckets = buckets, filters = f, scan_cap = scan_cap }
end

---Refuses, before it reads anything, a report that must read every hit (or
---every day's row) of [b0, b1) when the period holds more visitor-days (its
---days' distinct visitors summed) than the brand allows (q.scan_cap, the
---config's max_scan_visitor_days; 0: no cap): 422 period_too_long. Such a
---read costs 0.6 to 9.5 µs per visitor-day, on the loop: 90 days of 50M
---events took 3 to 50 s (README "Not yet").
local function scan_guard(q, b0, b1)
  if (q.scan_cap or 0) == 0 then return end
  local n = tp.db.one([[SELECT coalesce(sum(n), 0) AS n FROM analytics_day_uv
    WHERE source = '' AND day > ?1 - 86400 AND day < ?2]], b0, b1).n
  if n > q.scan_cap then
    tp.fail(422, "period_too_long", ("this report reads every hit of the period (for a store, guide, product "
      .. "or campaign filter, or hourly buckets), which holds %d visitor-days; the brand allows %d "
      .. "(analytics max_scan_visitor_days): narrow the period"):format(n, q.scan_cap),
      { visitor_days = n, max_scan_visitor_days = q.scan_cap })
  end
end

-- Filters on the rollups (visitors) and on the order facts. The product
-- narrows visitors to those who viewed it in the period, and orders to
-- those containing it; the campaign narrows orders only.
local HITS_WHERE = [[hour >= :b0 AND hour < :b1
  AND (:source IS NULL OR source = :source) AND (:store IS NULL OR store = :store)
  AND (:guide IS NULL OR guide = :guide)
  AND (:product IS NULL OR visitor IN (SELECT visitor FROM analytics_hits
       WHERE hour >= :b0 AND hour < :b1 AND product = :product))]]
local ORDERS_WHERE = [[(:source IS NULL OR source = :source) AND (:store IS NULL OR store = :store)
  AND (:guide IS NULL OR guide = :guide) AND (:campaign IS NULL OR campaign = :campaign)
  AND (:product IS NULL OR instr(products, ',' || :product || ',') > 0)]]

local function binds(f, b0, b1, extra)
  local t = { b0 = b0, b1 = b1, source = f.source, store = f.store, guide = f.guide,
              campaign = f.campaign, product = f.product }
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end

local DAYS_WHERE = [[day >= :b0 AND day < :b1
  AND (:source IS NULL OR source = :source) AND (:store IS NULL OR store = :store)
  AND (:guide IS NULL OR guide = :guide)]]

-- Distinct visitors of whole local days [:b0, :b1), overall (source '') or per
-- source, from analytics_visits (lib/rollup.lua rollup.visits): the first
-- day's count, then on each later day the visitors not seen since :b0 (prev
-- before it), summed from analytics_day_prev (the day's visits by prev). Exact,
-- and it reads at most one row per earlier day for each day and key, not one
-- per visitor (90 days of 50 SKUs' viewers: 11M index entries before).
local RANGE_UV = [[coalesce(sum(CASE WHEN d.day = :b0 THEN d.n ELSE
    (SELECT sum(h.n) FROM analytics_day_prev h WHERE h.source = d.source AND h.day = d.day AND h.prev < :b0)
  END), 0)]]

local UV_BY_KEY_SQL = "SELECT " .. RANGE_UV .. [[ AS n FROM analytics_day_uv d
      WHERE d.day >= :b0 AND d.day < :b1 AND d.source = :key]]
local UV_FROM_DAYS_SQL = "SELECT count(DISTINCT visitor) AS n FROM analytics_days WHERE " .. DAYS_WHERE
local UV_FROM_HOURS_SQL = "SELECT count(DISTINCT visitor) AS n FROM analytics_hits WHERE " .. HITS_WHERE

---Distinct visitors of [b0, b1): when the period is whole local days, from
---analytics_visits if nothing but a source, a store or a guide narrows it,
---from the days' rows if two of them do; else (hours, or a product) from the
---hours' rows.
local function visitors(q, b0, b1, whole_days)
  local f = q.filters
  local b = binds(f, b0, b1)
  local key   -- the analytics_visits key that alone narrows the visitors, if one does
  if not f.store and not f.guide then key = f.source ~= "" and (f.source or "") or nil
  elseif not f.source and not f.guide then key = "store:" .. f.store
  elseif not f.source and not f.store then key = "guide:" .. f.guide end
  if whole_days and not f.product and key then
    b.key = key
    return tp.db.one(UV_BY_KEY_SQL, b).n
  end
  if whole_days then scan_guard(q, b0, b1) end   -- hours: report.overview guards the period once
  if whole_days and not f.product then
    return tp.db.one(UV_FROM_DAYS_SQL, b).n
  end
  return tp.db.one(UV_FROM_HOURS_SQL, b).n
end

---The analytics_day_orders key of the filters when at most one of source,
---store, guide and campaign narrows the orders (no product): '' for none.
local function order_key(f)
  if f.product then return nil end
  local key, n = "", 0
  if f.source then key, n = f.source, n + 1 end
  if f.store then key, n = "store:" .. f.store, n + 1 end
  if f.guide then key, n = "guide:" .. f.guide, n + 1 end
  if f.campaign then key, n = "camp:" .. f.campaign, n + 1 end
  if n > 1 or key == "store:" or key == "guide:" then return nil end
  return key
end

local PAYERS_BY_KEY_SQL = "SELECT " .. RANGE_UV .. [[ AS n FROM analytics_day_uv d
      WHERE d.day >= :b0 AND d.day < :b1 AND d.source = :payer]]
local FIGURES_FROM_ORDERS_SQL = [[SELECT coalesce(sum(paid_fen > refunded_fen), 0) AS orders,
        count(DISTINCT CASE WHEN paid_fen > refunded_fen THEN member END) AS payers,
        coalesce(sum(paid_fen - refunded_fen), 0) AS gmv_fen FROM analytics_orders
        WHERE paid_at >= :b0 AND paid_at < :b1 AND ]] .. ORDERS_WHERE

---UV, payers, paid orders and GMV of [b0, b1), with the ratios. Over whole
---days with at most one filter, the orders come from analytics_day_orders
---and the payers from the keys 'payer:<key>' of analytics_visits; else from
---the order facts.
local function figures(q, b0, b1, whole_days)
  local f = q.filters
  local b = binds(f, b0, b1)
  local uv = visitors(q, b0, b1, whole_days)
  local key = whole_days and order_key(f)
  local o
  if key then
    b.key, b.payer = key, "payer:" .. key
    o = tp.db.one([[SELECT coalesce(sum(orders), 0) AS orders, coalesce(sum(gmv_fen), 0) AS gmv_fen
      FROM analytics_day_orders WHERE key = :key AND day >= :b0 AND day < :b1]], b)
    o.payers = tp.db.one(PAYERS_BY_KEY_SQL, b).n
  else
    o = tp.db.one(FIGURES_FROM_ORDERS_SQL, b)
  end
  return {
    uv = uv, payers = o.payers, orders = o.orders, gmv_fen = o.gmv_fen,
    conversion = uv > 0 and o.payers / uv or nil,
    aov_fen = o.orders > 0 and o.gmv_fen // o.orders or nil,
    per_payer_fen = o.payers > 0 and o.gmv_fen // o.payers or nil,
  }
end

local function change(cur, prev)
  if cur == nil or prev == nil or prev == 0 then return nil end
  return (cur - prev) / prev
end

function report.overview(q)
  if q.gran == "hour" then scan_guard(q, q.from, q.to) end   -- each bucket reads its hour's hits
  local total = figures(q, q.from, q.to, true)
  local previous = figures(q, q.from - (q.to - q.from), q.from, true)
  local buckets = tp.json.array()
  for i, b in ipairs(q.buckets) do
    local fig = figures(q, math.max(b.start, q.from), math.min(b.stop, q.to), q.gran ~= "hour")
    fig.start, fig.label = b.start, b.label
    buckets[i] = fig
  end
  local ch = {}
  for _, k in ipairs({ "uv", "conversion", "per_payer_fen", "aov_fen", "gmv_fen", "payers", "orders" }) do
    ch[k] = change(total[k], previous[k])
  end
  return { from = q.from_date, to = q.to_date, granularity = q.gran, timezone = tp.timezone(),
           filters = tp.json.object(q.filters), total = total, previous = previous,
           change = tp.json.object(ch), buckets = buckets }
end

-- ---- funnel

local DEFAULT_STEPS = "enter,product_view,add_to_cart,order,pay"

---The steps of ?steps= (2-8 of event kinds, "order" and "pay").
function report.steps(text)
  text = text or DEFAULT_STEPS
  local steps = {}
  for s in (text .. ","):gmatch("([^,]*),") do
    if not s:match("^[a-z][a-z0-9_]*%.?[a-z0-9_]*$") or #s > 64 then
      check.field_error("steps", "each step is an event kind, order or pay, separated by commas")
    end
    steps[#steps + 1] = s
  end
  if #steps < 2 or #steps > 8 then check.field_error("steps", "a funnel has 2 to 8 steps") end
  return steps
end

---Visitors who reached each step having reached every one before it, in
---[from, to), for one source (or all).
local function funnel_counts(q, steps, source)
  local f = {}
  for k, v in pairs(q.filters) do f[k] = v end
  f.source = source or f.source
  local cols, extra = {}, {}
  for i, s in ipairs(steps) do
    if s == "order" or s == "pay" then
      local at = s == "order" and "created_at" or "paid_at"
      cols[i] = ("(visitor IN (SELECT member FROM analytics_orders WHERE %s >= :b0 AND %s < :b1 AND %s)) AS c%d")
        :format(at, at, ORDERS_WHERE, i)
    else
      cols[i] = ("max(kind = :k%d) AS c%d"):format(i, i)
      extra["k" .. i] = s
    end
  end
  local sums = {}
  for i = 1, #steps do
    local prod = {}
    for j = 1, i do prod[j] = "c" .. j end
    sums[i] = ("coalesce(sum(%s), 0) AS s%d"):format(table.concat(prod, " * "), i)
  end
  local sql = ("SELECT %s FROM (SELECT visitor, %s FROM analytics_hits WHERE %s GROUP BY visitor)")
    :format(table.concat(sums, ", "), table.concat(cols, ", "), HITS_WHERE)
  local row = tp.db.one(sql, binds(f, q.from, q.to, extra))
  local out = tp.json.array()
  for i, s in ipairs(steps) do
    local n = row["s" .. i]
    local prev = i > 1 and row["s" .. (i - 1)] or nil
    out[i] = { step = s, visitors = n, conversion = prev and prev > 0 and n / prev or nil }
  end
  return out
end

---The local midnights of the period, each with the days from the first: {{d, g}, ...}.
local function period_days(q)
  local days, d = {}, q.from
  while d < q.to do
    days[#days + 1] = { d, (d - q.from + 43200) // DAY }
    d = next_midnight(d)
  end
  return days
end

---Each step's slot in analytics_reach (analytics_kinds), or nil if a step
---has none (a plugin's kind beyond the slots).
local function slots_of(steps)
  local slots = {}
  for i, s in ipairs(steps) do
    local r = tp.db.one("SELECT slot FROM analytics_kinds WHERE kind = ?", s)
    if not r then return nil end
    slots[i] = r.slot
  end
  return slots
end

---The funnel of whole days [from, to) from analytics_reach (lib/rollup.lua
---rollup.reach): each visitor's last row in the period (next >= to) says how
---many days before it the visitor last did each step; with g the days from
---`from` to that row, the visitor did a step in the period iff its x <= g.
---One row per distinct visitor of the period, read through the index by one
---statement per day (g bound, so SQLite compares with a constant rather than
---a joined column: 12% of the funnel at 50M events), classed by how many steps
---in a row it reached, and the classes counted by tally() (the host's
---aggregate: GROUP BY would sort every row).
local function reach_counts(q, steps, slots, source, days)
  -- k: how many steps in a row the visitor reached (0: none, or no hit in the
  -- period; a first step that is a hit kind implies a hit, x0 <= its x)
  local whens = {}
  if steps[1] == "order" or steps[1] == "pay" then whens[1] = "WHEN r.x0 > :g THEN 0" end
  for i, slot in ipairs(slots) do whens[#whens + 1] = ("WHEN r.x%d > :g THEN %d"):format(slot, i - 1) end
  local sql = ([[SELECT tally(CASE %s ELSE %d END) AS t FROM analytics_reach r INDEXED BY analytics_reach_last
      WHERE r.day = :day AND r.source = :source AND r.next >= :b1]]):format(table.concat(whens, " "), #slots)
  local reached, args = {}, { b1 = q.to, source = source or "" }
  for _, d in ipairs(days) do
    args.day, args.g = d[1], d[2]
    for k, n in ipairs(tp.json.decode(tp.db.one(sql, args).t)) do reached[k] = (reached[k] or 0) + n end
  end
  local out, n = tp.json.array(), 0
  for i = #steps, 1, -1 do   -- step i: the visitors who reached i steps or more
    n = n + (reached[i + 1] or 0)
    out[i] = { step = steps[i], visitors = n }
  end
  for i = 2, #steps do
    local prev = out[i - 1].visitors
    out[i].conversion = prev > 0 and out[i].visitors / prev or nil
  end
  return out
end

---The funnel: from analytics_reach when nothing but a source narrows it and
---every step has a slot; else (a store, guide, product or campaign filter)
---from the hours' rows, which reads every hit of the period.
function report.funnel(q, steps)
  local f = q.filters
  local slots = not f.store and not f.guide and not f.product and not f.campaign and slots_of(steps)
  local count = funnel_counts
  local days
  if slots then
    days = period_days(q)
    count = function(_, _, source) return reach_counts(q, steps, slots, source or f.source, days) end
  else
    scan_guard(q, q.from, q.to)   -- once, not for each source's pass
  end
  local by_source = tp.json.array()
  local sources = tp.db.query([[SELECT DISTINCT source FROM analytics_day_uv
    WHERE day >= ?1 AND day < ?2 AND source <> '' AND instr(source, ':') = 0
      AND (?3 IS NULL OR source = ?3) ORDER BY source]], q.from, q.to, f.source)
  for i, s in ipairs(sources) do
    by_source[i] = { source = s.source, steps = count(q, steps, s.source) }
  end
  return { from = q.from_date, to = q.to_date, timezone = tp.timezone(),
           filters = tp.json.object(q.filters), steps = count(q, steps, nil),
           by_source = by_source }
end

-- ---- sources

local DIMENSIONS = { source = true, scene = true, store = true, guide = true, content = true,
                     live = true, referrer = true }
report.DIMENSIONS = DIMENSIONS

function report.sources(q, by)
  by = check.enum(by or "source", "by", DIMENSIONS)
  local rows, order = {}, {}
  local function row(key)
    local k = key == nil and "\0" or tostring(key)
    if not rows[k] then
      rows[k] = { key = key ~= nil and tostring(key) or nil, visitors = 0, new_members = 0,
                  orders = 0, gmv_fen = 0 }
      order[#order + 1] = k
    end
    return rows[k]
  end
  local b = binds(q.filters, q.from, q.to)
  local f = q.filters
  local sql
  if by == "source" and not f.product and not f.store and not f.guide then
    -- whole days, per source: from analytics_visits (see RANGE_UV)
    sql = "SELECT d.source AS key, " .. RANGE_UV .. [[ AS n FROM analytics_day_uv d
      WHERE d.day >= :b0 AND d.day < :b1 AND d.source <> '' AND instr(d.source, ':') = 0
        AND (:source IS NULL OR d.source = :source)
      GROUP BY d.source]]
  elseif not f.product and not f.store and not f.guide and not f.source then
    -- per scene, store, ...: the keys '<by>:<value>' ('<by>:' for none)
    sql = ("SELECT nullif(substr(d.source, %d), '') AS key, "):format(#by + 2) .. RANGE_UV .. [[ AS n
      FROM analytics_day_uv d WHERE d.day >= :b0 AND d.day < :b1
        AND d.source >= :lo AND d.source < :hi GROUP BY d.source]]
    b.lo, b.hi = by .. ":", by .. ";"
  else
    scan_guard(q, q.from, q.to)
    sql = ("SELECT %s AS key, count(DISTINCT visitor) AS n FROM analytics_hits WHERE %s GROUP BY 1")
      :format(by, HITS_WHERE)
  end
  for _, r in ipairs(tp.db.query(sql, b)) do
    if r.n > 0 then row(r.key).visitors = r.n end
  end
  -- members are new when their first touch falls in the period
  for _, r in ipairs(tp.db.query(([[SELECT first_%s AS key, count(*) AS n FROM analytics_touch
      WHERE first_at >= :b0 AND first_at < :b1 AND (:source IS NULL OR first_source = :source)
      AND (:store IS NULL OR first_store = :store) AND (:guide IS NULL OR first_guide = :guide)
      GROUP BY 1]]):format(by), b)) do
    row(r.key).new_members = r.n
  end
  local orders_sql = ([[SELECT %s AS key, sum(paid_fen > refunded_fen) AS n,
      coalesce(sum(paid_fen - refunded_fen), 0) AS gmv FROM analytics_orders
      WHERE paid_at >= :b0 AND paid_at < :b1 AND %s GROUP BY 1]]):format(by, ORDERS_WHERE)
  if not f.product and not f.store and not f.guide and not f.campaign and (by == "source" or not f.source) then
    -- whole days from analytics_day_orders: the source's keys, or '<by>:<value>'
    orders_sql = by == "source" and [[SELECT key, sum(orders) AS n, sum(gmv_fen) AS gmv FROM analytics_day_orders
        WHERE key <> '' AND instr(key, ':') = 0 AND (:source IS NULL OR key = :source)
          AND day >= :b0 AND day < :b1 GROUP BY key]]
      or ([[SELECT nullif(substr(key, %d), '') AS key, sum(orders) AS n, sum(gmv_fen) AS gmv
        FROM analytics_day_orders WHERE key >= :lo AND key < :hi AND day >= :b0 AND day < :b1
        GROUP BY 1]]):format(#by + 2)
    b.lo, b.hi = by .. ":", by .. ";"
  end
  for _, r in ipairs(tp.db.query(orders_sql, b)) do
    local x = row(r.key)
    x.orders, x.gmv_fen = r.n, r.gmv
  end
  local items = tp.json.array()
  for i, k in ipairs(order) do items[i] = rows[k] end
  table.sort(items, function(a, c)
    if a.gmv_fen ~= c.gmv_fen then return a.gmv_fen > c.gmv_fen end
    if a.visitors ~= c.visitors then return a.visitors > c.visitors end
    return (a.key or "") < (c.key or "")
  end)
  return { from = q.from_date, to = q.to_date, timezone = tp.timezone(), by = by,
           filters = tp.json.object(q.filters), items = items }
end

-- ---- campaigns

local CAMPAIGNS_BY_DAY_SQL = "SELECT substr(d.source, 6) AS campaign, " .. RANGE_UV .. [[ AS n
      FROM analytics_day_uv d WHERE d.day >= :b0 AND d.day < :b1 AND d.source >= :lo AND d.source < :hi
      GROUP BY d.source]]

---Per activity (the order's campaign, "plugin:id"; "none" for plain checkouts):
---participants (members who ordered in the period), paid orders, GMV, new
---members among the participants (first touch in the period), what the
---campaign's price and the coupons took off list price on the paid orders,
---and ROI = GMV / that cost.
---Campaigns over whole days from the keys 'part:<campaign>' of
---analytics_visits (participants; new members: those of them whose first
---touch is in the period, one touch lookup per participant) and
---analytics_day_orders' 'camp:<campaign>'.
local function campaigns_by_day(q)
  local b = binds(q.filters, q.from, q.to)
  b.lo, b.hi = "part:", "part;"
  if q.filters.campaign then b.lo, b.hi = "part:" .. q.filters.campaign, "part:" .. q.filters.campaign .. "\0" end
  local rows, items = {}, tp.json.array()
  for _, r in ipairs(tp.db.query(CAMPAIGNS_BY_DAY_SQL, b)) do
    if r.n > 0 then
      rows[r.campaign] = { campaign = r.campaign, participants = r.n, new_members = 0, orders = 0, gmv_fen = 0,
                           campaign_fen = 0, coupon_fen = 0 }
      items[#items + 1] = rows[r.campaign]
    end
  end
  for _, r in ipairs(tp.db.query([[SELECT substr(d.source, 6) AS campaign, count(*) AS n
      FROM analytics_day_uv d CROSS JOIN analytics_visits v INDEXED BY analytics_visits_by_day
        ON v.day = d.day AND v.source = d.source AND v.prev < :b0
      CROSS JOIN analytics_touch t ON t.member = v.visitor
      WHERE d.day >= :b0 AND d.day < :b1 AND d.source >= :lo AND d.source < :hi
        AND t.first_at >= :b0 AND t.first_at < :b1 GROUP BY d.source]], b)) do
    if rows[r.campaign] then rows[r.campaign].new_members = r.n end
  end
  for _, r in ipairs(tp.db.query([[SELECT substr(key, 6) AS campaign, sum(orders) AS orders,
      sum(gmv_fen) AS gmv_fen, sum(campaign_fen) AS campaign_fen, sum(coupon_fen) AS coupon_fen
      FROM analytics_day_orders WHERE key >= 'camp:' AND key < 'camp;' AND day >= :b0 AND day < :b1
      GROUP BY key]], b)) do
    local x = rows[r.campaign]
    if x then x.orders, x.gmv_fen, x.campaign_fen, x.coupon_fen = r.orders, r.gmv_fen, r.campaign_fen, r.coupon_fen end
  end
  table.sort(items, function(a, c)
    if a.gmv_fen ~= c.gmv_fen then return a.gmv_fen > c.gmv_fen end
    return a.campaign < c.campaign
  end)
  for _, r in ipairs(items) do
    local cost = r.campaign_fen + r.coupon_fen
    r.roi = cost > 0 and r.gmv_fen / cost or nil
  end
  return items
end

-- an order of the period: created or paid in it; its money counts when paid in it
local IN_PERIOD = "((o.created_at >= :b0 AND o.created_at < :b1) OR (o.paid_at >= :b0 AND o.paid_at < :b1))"
local PAID = "o.paid_at >= :b0 AND o.paid_at < :b1"

---The money of the orders read, as paid in the period: orders (not refunded
---in full), GMV, the campaign's cost (0 when it is another's: own false) and
---the coupons'.
---@param own boolean
local function paid_sums(own)
  return ([[coalesce(sum(%s AND o.paid_fen > o.refunded_fen), 0) AS orders,
        coalesce(sum(CASE WHEN %s THEN o.paid_fen - o.refunded_fen END), 0) AS gmv_fen,
        %s AS campaign_fen,
        coalesce(sum(CASE WHEN %s THEN o.coupon_fen END), 0) AS coupon_fen]]):format(PAID, PAID,
    own and ("coalesce(sum(CASE WHEN %s THEN o.campaign_fen END), 0)"):format(PAID) or "0", PAID)
end

local CAMPAIGNS_FROM_ORDERS_SQL = [[
      SELECT coalesce(o.campaign, 'none') AS campaign,
        count(DISTINCT o.member) AS participants,
        count(DISTINCT CASE WHEN t.first_at >= :b0 AND t.first_at < :b1 THEN o.member END) AS new_members,
        ]] .. paid_sums(true) .. [[
      FROM analytics_orders o LEFT JOIN analytics_touch t ON t.member = o.member
      WHERE ]] .. IN_PERIOD .. [[ AND ]] .. ORDERS_WHERE .. [[
      GROUP BY 1 ORDER BY gmv_fen DESC, campaign]]

-- ---- campaigns per script

---The brand's campaign scripts (each serves as a plugin exporting
---campaign_activities: sdk/tp/campaign/runtime.lua), by name, with their
---activities as orders name them ("plugin:id"), withdrawn ones included;
---with a campaign filter, only the script holding that activity, with it alone.
local function scripts(only)
  local out = {}
  for _, plugin in ipairs(tp.exporters("campaign_activities")) do
    local c = tp.call(plugin, "campaign_activities")
    local activities = tp.json.array()
    for _, a in ipairs(c.activities) do
      local key = a.plugin .. ":" .. tostring(a.activity_id)
      if not only or key == only then activities[#activities + 1] = key end
    end
    if #activities > 0 then out[#out + 1] = { name = c.name, title = c.title, activities = activities } end
  end
  table.sort(out, function(a, c) return a.name < c.name end)
  return out
end

-- A script's figures are SQL over its activities, bound as one text
-- (:list, 'flash_sale:3,coupons:5'; an activity is "plugin:id", never a comma)
-- and split by a recursive CTE: the sandbox allows no virtual table (no
-- json_each), a statement built per call with an IN list of its size would be
-- compiled again at every call, and the members made distinct in SQLite, not
-- in Lua, cost the plugin's memory nothing however many took part.
local ACTS = [[WITH RECURSIVE acts (a, rest) AS (SELECT NULL, :list || ','
      UNION ALL SELECT substr(rest, 1, instr(rest, ',') - 1), substr(rest, instr(rest, ',') + 1)
      FROM acts WHERE rest <> '')]]
-- the orders that used a coupon of a template one of its items made
-- ('coupons:<template>') and came from none of its activities (a plain
-- checkout, another script's sale): an order of its own sale counts once
local COUPON_ORDERS = [[FROM acts CROSS JOIN analytics_orders o INDEXED BY analytics_orders_coupon
      WHERE acts.a >= 'coupons:' AND acts.a < 'coupons;' AND o.coupon = acts.a AND ]] .. IN_PERIOD .. [[
        AND (o.campaign IS NULL OR instr(',' || :list || ',', ',' || o.campaign || ',') = 0) AND ]] .. ORDERS_WHERE
-- the orders its activities made (a source, store, guide or product filter reads them)
local OWN_ORDERS = [[FROM acts CROSS JOIN analytics_orders o INDEXED BY analytics_orders_campaign
      WHERE acts.a IS NOT NULL AND o.campaign = acts.a AND ]] .. IN_PERIOD .. " AND " .. ORDERS_WHERE
local function participants_sql(own_members)
  return ACTS .. [[, members (member) AS (]] .. own_members .. [[ UNION SELECT o.member ]] .. COUPON_ORDERS .. [[)
    SELECT count(*) AS participants, coalesce(sum(t.first_at >= :b0 AND t.first_at < :b1), 0) AS new_members
    FROM members m LEFT JOIN analytics_touch t ON t.member = m.member]]
end
-- over whole days: the keys 'part:<activity>' of analytics_visits, each read by
-- its key (the primary key's range; +day keeps SQLite from the by-day index,
-- which it would take for a long period once statistics exist: 2.5x slower)
local PARTICIPANTS_BY_DAY_SQL = participants_sql([[SELECT v.visitor FROM acts CROSS JOIN analytics_visits v
      WHERE acts.a IS NOT NULL AND v.source = 'part:' || acts.a AND +v.day >= :b0 AND +v.day < :b1]])
local PARTICIPANTS_FROM_ORDERS_SQL = participants_sql("SELECT o.member " .. OWN_ORDERS)
local SUMS_BY_DAY_SQL = ACTS .. [[ SELECT coalesce(sum(d.orders), 0) AS orders, coalesce(sum(d.gmv_fen), 0) AS gmv_fen,
      coalesce(sum(d.campaign_fen), 0) AS campaign_fen, coalesce(sum(d.coupon_fen), 0) AS coupon_fen
    FROM acts CROSS JOIN analytics_day_orders d
    WHERE acts.a IS NOT NULL AND d.key = 'camp:' || acts.a AND d.day >= :b0 AND d.day < :b1]]
local SUMS_FROM_ORDERS_SQL = ACTS .. " SELECT " .. paid_sums(true) .. " " .. OWN_ORDERS
-- what its coupons brought: those orders' GMV and the coupons' cost (their
-- campaign price, if any, is the other activity's cost)
local COUPON_SUMS_SQL = ACTS .. " SELECT " .. paid_sums(false) .. " " .. COUPON_ORDERS

-- by name, for tests/bench/campaign_scripts.py, which times them on the plugin's own tables
report.SCRIPT_STATEMENTS = { participants_by_day = PARTICIPANTS_BY_DAY_SQL,
  participants_from_orders = PARTICIPANTS_FROM_ORDERS_SQL, sums_by_day = SUMS_BY_DAY_SQL,
  sums_from_orders = SUMS_FROM_ORDERS_SQL, coupon_sums = COUPON_SUMS_SQL }

local FIGURES_SUMMED = { "orders", "gmv_fen", "campaign_fen", "coupon_fen" }

---One script's figures over the period: its activities' orders summed, and
---the orders its coupons paid for outside them; its participants (and the
---new members among them) counted once each.
local function script_figures(q, sc)
  local f = q.filters
  local b = binds(f, q.from, q.to, { list = table.concat(sc.activities, ",") })
  b.campaign = nil  -- a campaign filter chose the script's activities already
  local from_orders = f.source or f.store or f.guide or f.product
  local r = tp.db.one(from_orders and PARTICIPANTS_FROM_ORDERS_SQL or PARTICIPANTS_BY_DAY_SQL, b)
  local own = tp.db.one(from_orders and SUMS_FROM_ORDERS_SQL or SUMS_BY_DAY_SQL, b)
  local coupons = tp.db.one(COUPON_SUMS_SQL, b)
  for _, k in ipairs(FIGURES_SUMMED) do r[k] = own[k] + coupons[k] end
  return r
end

---Per campaign script: its activities' figures together. A script with no
---participant in the period has no row.
local function campaigns_by_script(q)
  local items = tp.json.array()
  for _, sc in ipairs(scripts(q.filters.campaign)) do
    local r = script_figures(q, sc)
    if r.participants > 0 then
      r.campaign, r.title, r.activities = sc.name, sc.title, sc.activities
      local cost = r.campaign_fen + r.coupon_fen
      r.roi = cost > 0 and r.gmv_fen / cost or nil
      items[#items + 1] = r
    end
  end
  table.sort(items, function(a, c)
    if a.gmv_fen ~= c.gmv_fen then return a.gmv_fen > c.gmv_fen end
    return a.campaign < c.campaign
  end)
  return items
end

local CAMPAIGN_VIEWS = { activity = true, script = true }

---GET /analytics/campaigns: per activity (by=activity, the default) or per
---campaign script (by=script).
function report.campaigns(q, by)
  by = check.enum(by or "activity", "by", CAMPAIGN_VIEWS)
  local f = q.filters
  local answer = { from = q.from_date, to = q.to_date, timezone = tp.timezone(), by = by,
                   filters = tp.json.object(q.filters) }
  if by == "script" then
    answer.items = campaigns_by_script(q)
  elseif not f.source and not f.store and not f.guide and not f.product then
    answer.items = campaigns_by_day(q)
  else
    local items = tp.json.array()
    for i, r in ipairs(tp.db.query(CAMPAIGNS_FROM_ORDERS_SQL, binds(f, q.from, q.to))) do
      local cost = r.campaign_fen + r.coupon_fen
      r.roi = cost > 0 and r.gmv_fen / cost or nil
      items[i] = r
    end
    answer.items = items
  end
  return answer
end

-- ---- retention

local WINDOWS = { 30, 60, 90 }

---Cohorts by the local month of each member's first purchase (a paid order
---not wholly refunded, whenever it was): of the cohort's members, how many
---bought again within 30, 60 and 90 days of that first purchase. A window
---that has not yet closed for every member of the cohort is marked open.
function report.retention(q)
  -- the local months of the period, each with its cohort read from
  -- analytics_buyers (the members' first and second purchase) by index
  local items, start = tp.json.array(), q.from
  while start < q.to do
    local t = tp.localtime(start)
    local y, m = t.year, t.month + 1
    if m == 13 then y, m = y + 1, 1 end
    local stop = math.min(q.to, when.parse(("%04d-%02d-01 00:00"):format(y, m)))
    local c = tp.db.one([[SELECT count(*) AS members, max(first_at) AS last_first,
        coalesce(sum(second_at <= first_at + 30 * 86400), 0) AS repurchased_30,
        coalesce(sum(second_at <= first_at + 60 * 86400), 0) AS repurchased_60,
        coalesce(sum(second_at <= first_at + 90 * 86400), 0) AS repurchased_90
      FROM analytics_buyers WHERE first_at >= ?1 AND first_at < ?2]], start, stop)
    if c.members > 0 then
      c.month = ("%04d-%02d"):format(t.year, t.month)
      for _, w in ipairs(WINDOWS) do
        c["rate_" .. w] = c["repurchased_" .. w] / c.members
        c["open_" .. w] = tp.now() < c.last_first + w * 86400
      end
      c.last_first = nil
      items[#items + 1] = c
    end
    start = stop
  end
  return { from = q.from_date, to = q.to_date, timezone = tp.timezone(), filters = tp.json.object({}),
           cohorts = items }
end

-- ---- products

local PRODUCT_UV_SQL = "SELECT d.source AS key, " .. RANGE_UV .. [[ AS n
        FROM analytics_day_uv d WHERE d.day >= :b0 AND d.day < :b1
          AND ((d.source >= 'cart:' AND d.source < 'cart;') OR (d.source >= 'view:' AND d.source < 'view;'))
        GROUP BY d.source ORDER BY d.source]]
local SKUS_PAGE = 1000  -- the catalog's largest page of skus_on_sale
local PRODUCT_HITS_SQL = [[SELECT product, kind, sum(n) AS n, count(DISTINCT visitor) AS v
        FROM analytics_hits WHERE kind IN ('product_view', 'add_to_cart') AND product <> '' AND ]] ..
        HITS_WHERE .. " GROUP BY product, kind"
local PRODUCT_BUYERS_SQL = "SELECT substr(d.source, 7) AS sku, " .. RANGE_UV .. [[ AS n
        FROM analytics_day_uv d WHERE d.day >= :b0 AND d.day < :b1
          AND d.source >= 'buyer:' AND d.source < 'buyer;' GROUP BY d.source]]
local PRODUCT_ORDERS_SQL = [[SELECT l.sku AS sku,
        count(DISTINCT CASE WHEN o.paid_fen > o.refunded_fen THEN o.member END) AS buyers,
        coalesce(sum(CASE WHEN o.paid_fen > o.refunded_fen THEN l.qty END), 0) AS units,
        sum(l.paid_fen - l.refunded_fen) AS gmv
        FROM analytics_orders o JOIN analytics_lines l ON l.order_id = o.order_id
        WHERE o.paid_at >= :b0 AND o.paid_at < :b1 AND (:product IS NULL OR l.sku = :product) AND ]] ..
        ORDERS_WHERE .. " GROUP BY l.sku"

---Appends to slow the SKUs on sale in the catalog (its export skus_on_sale,
---a page at a time) with no views and no units among the report's rows (under
---its filters, as every row): the slowest movers of all, after the ones
---viewed and not bought. Nothing when the brand has no catalog.
local function unviewed_on_sale(rows, slow)
  if not tp.exports("catalog", "skus_on_sale") then return end
  local after
  repeat
    local codes, next_after = tp.call("catalog", "skus_on_sale", after, SKUS_PAGE)
    for _, code in ipairs(codes) do
      local x = rows[code]
      if not x or (x.views == 0 and x.units == 0) then slow[#slow + 1] = code end
    end
    after = next_after
  until after == nil
end

function report.products(q)
  local b = binds(q.filters, q.from, q.to)
  local rows, order = {}, {}
  local function row(p)
    if not rows[p] then
      rows[p] = { product = p, views = 0, viewers = 0, carts = 0, buyers = 0, units = 0, gmv_fen = 0 }
      order[#order + 1] = p
    end
    return rows[p]
  end
  local f = q.filters
  if not f.source and not f.store and not f.guide and not f.product then
    -- whole days: views from analytics_day_views, viewers and carts from the
    -- keys 'view:<sku>' and 'cart:<sku>' of analytics_visits (see RANGE_UV)
    for _, r in ipairs(tp.db.query([[SELECT product, sum(views) AS n FROM analytics_day_views
        WHERE day >= :b0 AND day < :b1 GROUP BY product ORDER BY product]], b)) do
      row(r.product).views = r.n
    end
    for _, r in ipairs(tp.db.query(PRODUCT_UV_SQL, b)) do
      local x = row(r.key:sub(6))
      if r.key:sub(1, 4) == "view" then x.viewers = r.n else x.carts = r.n end
    end
  else
    scan_guard(q, q.from, q.to)
    for _, r in ipairs(tp.db.query(PRODUCT_HITS_SQL, b)) do
      local x = row(r.product)
      if r.kind == "product_view" then x.views, x.viewers = r.n, r.v else x.carts = r.v end
    end
  end
  if not f.source and not f.store and not f.guide and not f.product and not f.campaign then
    -- whole days: units and GMV from analytics_day_products, buyers from the keys 'buyer:<sku>'
    for _, r in ipairs(tp.db.query([[SELECT product, sum(units) AS units, sum(gmv_fen) AS gmv
        FROM analytics_day_products WHERE day >= :b0 AND day < :b1 GROUP BY product]], b)) do
      local x = row(r.product)
      x.units, x.gmv_fen = r.units, r.gmv
    end
    for _, r in ipairs(tp.db.query(PRODUCT_BUYERS_SQL, b)) do
      row(r.sku).buyers = r.n
    end
  else
    for _, r in ipairs(tp.db.query(PRODUCT_ORDERS_SQL, b)) do
      local x = row(r.sku)
      x.buyers, x.units, x.gmv_fen = r.buyers, r.units, r.gmv
    end
  end
  local items, slow = tp.json.array(), tp.json.array()
  for i, p in ipairs(order) do
    local x = rows[p]
    x.view_to_buy = x.viewers > 0 and x.buyers / x.viewers or nil
    x.add_to_cart_rate = x.viewers > 0 and x.carts / x.viewers or nil
    items[i] = x
  end
  table.sort(items, function(a, c)
    if a.gmv_fen ~= c.gmv_fen then return a.gmv_fen > c.gmv_fen end
    if a.views ~= c.views then return a.views > c.views end
    return a.product < c.product
  end)
  for _, x in ipairs(items) do
    if x.views > 0 and x.units == 0 then slow[#slow + 1] = x.product end
  end
  unviewed_on_sale(rows, slow)
  return { from = q.from_date, to = q.to_date, timezone = tp.timezone(),
           filters = tp.json.object(q.filters), items = items, slow_movers = slow }
end

return report
