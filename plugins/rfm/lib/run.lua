---@diagnostic disable: undefined-global
-- rfm/lib/run.lua: one RFM run, in slices that never hold the host for long.
--
-- 1. collect: the members plugin's facts_page hands over the buyers of the
--    window (paid orders not refunded in full, since the run's start minus
--    window_days), batch members per job run, each run its own transaction;
--    each buyer's recency (whole days from the last payment to the run's
--    start), orders and net fen go into rfm_members, marked with the run.
--    With fixed splits the buyer gets its layer right there (one pass); with
--    a percentile the run counts each value (rfm_hist) and
-- 2. score: once every buyer is in, the thresholds are read off those counts
--    (nearest rank) and this run's buyers get their layers, batch per job run;
-- 3. sweep: members the run did not see (no paid order in the window any
--    more) lose their layer and are dropped, batch per job run;
-- 4. done: the count of each layer is the run before's plus this run's moves.
-- Each change of a layer is counted as a move (from -> to) of the run and is
-- the member's tag in the members plugin's dimension "rfm" (one set_dimension
-- call per slice). The 200 biggest buyers are kept as the pages pass (rfm_top).

local settings = require("lib.settings")

local run = {}

-- (R high, F high, M high) -> layer, the classic eight
run.LAYERS = {
  ["111"] = "重要价值", ["101"] = "重要发展", ["011"] = "重要保持", ["001"] = "重要挽留",
  ["110"] = "一般价值", ["100"] = "一般发展", ["010"] = "一般保持", ["000"] = "一般挽留",
}
run.STALE = 6 * 3600

run.ORDER = { "重要价值", "重要发展", "重要保持", "重要挽留", "一般价值", "一般发展", "一般保持", "一般挽留" }

---The layer of a buyer under thresholds t (see thresholds()).
---@param t table {r_days, r_strict, f_orders, f_strict, m_fen, m_strict}
---@param recency integer days
---@param orders integer
---@param net_fen integer
---@return string
function run.layer(t, recency, orders, net_fen)
  local r = t.r_strict and recency < t.r_days or (not t.r_strict and recency <= t.r_days)
  local f = t.f_strict and orders > t.f_orders or (not t.f_strict and orders >= t.f_orders)
  local m = t.m_strict and net_fen > t.m_fen or (not t.m_strict and net_fen >= t.m_fen)
  return run.LAYERS[(r and "1" or "0") .. (f and "1" or "0") .. (m and "1" or "0")]
end

local function has_members()
  return tp.exports("members", "set_dimension")
end

---True when every split is a fixed value (one pass: layers as buyers come).
local function fixed()
  local s = settings.get()
  return not (s.r.percentile or s.f.percentile or s.m.percentile)
end

---The fixed thresholds (see run.layer).
local function fixed_thresholds()
  local s = settings.get()
  return { r_days = s.r.days, r_strict = false, f_orders = s.f.orders, f_strict = false,
           m_fen = s.m.fen, m_strict = false }
end

---Starts a run (trigger "schedule" or "manual"); nil when one is running.
---@param trigger string
---@return table|nil run row
function run.start(trigger)
  -- a run still going after STALE seconds has stopped (its job dead-lettered): it failed
  tp.db.exec([[UPDATE rfm_runs SET state = 'failed', finished_at = ?1
    WHERE state NOT IN ('done', 'failed') AND started_at < ?1 - ?2]], tp.now(), run.STALE)
  if tp.db.one("SELECT id FROM rfm_runs WHERE state NOT IN ('done', 'failed')") then return nil end
  local s = settings.get()
  local now = tp.now()
  local t = fixed() and tp.json.encode(fixed_thresholds()) or nil
  local _, id = tp.db.exec([[INSERT INTO rfm_runs (state, trigger, started_at, since, cursor_n, cursor_user,
      buyers, thresholds) VALUES ('collecting', ?, ?, ?, 0, '', 0, ?)]], trigger, now, now - s.window_days * 86400, t)
  tp.jobs.schedule("collect", { run = id }, { after = 0, key = "run" })
  return tp.db.one("SELECT * FROM rfm_runs WHERE id = ?", id)
end

local function need_run(id, state)
  local r = tp.db.one("SELECT * FROM rfm_runs WHERE id = ?", id)
  if not r or r.state ~= state then return nil end
  return r
end

---Books a slice's changes: the moves (old -> new, '' for none) and the
---members plugin's tags.
local function book(run_id, changed)
  if #changed == 0 then return end
  local moves = {}
  local tags = {}
  for i, c in ipairs(changed) do
    local key = (c.from or "") .. "\t" .. (c.to or "")
    moves[key] = (moves[key] or 0) + 1
    tags[i] = { user = c.user, value = c.to or false }
  end
  for key, n in pairs(moves) do
    local from, to = key:match("^(.-)\t(.*)$")
    tp.db.exec([[INSERT INTO rfm_run_moves (run_id, from_layer, to_layer, members) VALUES (?1, ?2, ?3, ?4)
      ON CONFLICT (run_id, from_layer, to_layer) DO UPDATE SET members = members + ?4]], run_id, from, to, n)
  end
  if has_members() then tp.call("members", "set_dimension", "rfm", run.ORDER, tags) end
end

---Keeps the run's 200 biggest buyers (超级用户) as the pages pass.
local function keep_top(run_id, page)
  -- only a buyer above the 200th so far can enter
  local floor = tp.db.one([[SELECT net_fen FROM rfm_top WHERE run_id = ? ORDER BY net_fen DESC, user
    LIMIT 1 OFFSET 199]], run_id)
  local bar = floor and floor.net_fen or -1
  local added = false
  for _, b in ipairs(page) do
    if b.net_fen >= bar then
      tp.db.exec([[INSERT INTO rfm_top (run_id, user, net_fen) VALUES (?, ?, ?)
        ON CONFLICT (run_id, user) DO UPDATE SET net_fen = excluded.net_fen]], run_id, b.user, b.net_fen)
      added = true
    end
  end
  if added and floor then
    tp.db.exec([[DELETE FROM rfm_top WHERE run_id = ?1 AND user NOT IN
      (SELECT user FROM rfm_top WHERE run_id = ?1 ORDER BY net_fen DESC, user LIMIT 200)]], run_id)
  end
end

---Job collect {run}: one page of buyers. With fixed splits each gets its
---layer at once; with a percentile they are kept with their figures (and the
---percentile's counts) until every buyer is in.
---@param job TpJob
function run.collect(job)
  local r = need_run(job.payload.run, "collecting")
  if not r then return end
  local s = settings.get()
  local t = r.thresholds and tp.json.decode(r.thresholds)
  local page = tp.call("members", "facts_page", r.cursor_n, s.batch, r.since)
  local changed = {}
  local hist = {}
  for _, b in ipairs(page.members) do
    local recency = math.max(0, (r.started_at - b.last_paid_at) // 86400)
    local layer = t and run.layer(t, recency, b.orders, b.net_fen) or nil
    local old = tp.db.query([[INSERT INTO rfm_members (user, recency_days, orders, net_fen, store, guide, run_id, layer)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (user) DO UPDATE SET recency_days = ?2, orders = ?3,
        net_fen = ?4, store = ?5, guide = ?6, run_id = ?7, prev_layer = layer, layer = coalesce(?8, layer)
      RETURNING prev_layer]], b.user, recency, b.orders, b.net_fen, b.store, b.guide, r.id, layer)[1]
    local before = old and old.prev_layer or nil
    if t and layer ~= before then changed[#changed + 1] = { user = b.user, from = before, to = layer } end
    if not t then
      for dim, v in pairs({ r = recency, f = b.orders, m = b.net_fen }) do
        local k = dim .. ":" .. v
        hist[k] = (hist[k] or 0) + 1
      end
    end
  end
  for k, n in pairs(hist) do
    local dim, v = k:match("^(%a):(%-?%d+)$")
    tp.db.exec([[INSERT INTO rfm_hist (run_id, dim, value, members) VALUES (?1, ?2, ?3, ?4)
      ON CONFLICT (run_id, dim, value) DO UPDATE SET members = members + ?4]], r.id, dim, math.tointeger(v), n)
  end
  book(r.id, changed)
  keep_top(r.id, page.members)
  local buyers = r.buyers + #page.members
  if page.next then
    tp.db.exec("UPDATE rfm_runs SET cursor_n = ?, buyers = ? WHERE id = ?", page.next, buyers, r.id)
    tp.jobs.schedule("collect", { run = r.id }, { after = 0, key = "run" })
    return
  end
  r.buyers = buyers
  if t then
    tp.db.exec("UPDATE rfm_runs SET buyers = ?, state = 'sweeping' WHERE id = ?", buyers, r.id)
    tp.jobs.schedule("sweep", { run = r.id }, { after = 0, key = "run" })
  else
    tp.db.exec("UPDATE rfm_runs SET buyers = ?, state = 'scoring', thresholds = ? WHERE id = ?",
      buyers, tp.json.encode(run.percentile_thresholds(r)), r.id)
    tp.jobs.schedule("score", { run = r.id }, { after = 0, key = "run" })
  end
end

---The value at percentile p of dimension dim among the run's buyers, from
---the run's counts (nearest rank; ascending, descending for recency).
local function percentile(run_id, dim, p, n, descending)
  local k = math.max(1, (p * n + 99) // 100)
  local seen = 0
  for _, h in ipairs(tp.db.query(("SELECT value, members FROM rfm_hist WHERE run_id = ? AND dim = ? ORDER BY value %s")
      :format(descending and "DESC" or "ASC"), run_id, dim)) do
    seen = seen + h.members
    if seen >= k then return h.value end
  end
  return 0
end

---The thresholds of run r with percentile splits: high means strictly better
---than the value at the percentile (a fixed split keeps its value).
---@param r table
---@return table
function run.percentile_thresholds(r)
  local s = settings.get()
  local t = fixed_thresholds()
  if s.r.percentile then t.r_days, t.r_strict = percentile(r.id, "r", s.r.percentile, r.buyers, true), true end
  if s.f.percentile then t.f_orders, t.f_strict = percentile(r.id, "f", s.f.percentile, r.buyers, false), true end
  if s.m.percentile then t.m_fen, t.m_strict = percentile(r.id, "m", s.m.percentile, r.buyers, false), true end
  return t
end

---Job score {run} (percentile splits only): one slice of this run's buyers
---gets its layer.
---@param job TpJob
function run.score(job)
  local r = need_run(job.payload.run, "scoring")
  if not r then return end
  local s = settings.get()
  local t = tp.json.decode(r.thresholds)
  local rows = tp.db.query([[SELECT user, recency_days, orders, net_fen, layer, prev_layer FROM rfm_members
    WHERE user > ? AND run_id = ? ORDER BY user LIMIT ?]], r.cursor_user, r.id, s.batch)
  local changed = {}
  for _, m in ipairs(rows) do
    local layer = run.layer(t, m.recency_days, m.orders, m.net_fen)
    if layer ~= m.layer then tp.db.exec("UPDATE rfm_members SET layer = ? WHERE user = ?", layer, m.user) end
    -- the layer before this run: prev_layer if collect saw it, else its layer
    local before = m.prev_layer
    if layer ~= before then changed[#changed + 1] = { user = m.user, from = before, to = layer } end
  end
  book(r.id, changed)
  if #rows == s.batch then
    tp.db.exec("UPDATE rfm_runs SET cursor_user = ? WHERE id = ?", rows[#rows].user, r.id)
    tp.jobs.schedule("score", { run = r.id }, { after = 0, key = "run" })
    return
  end
  tp.db.exec("UPDATE rfm_runs SET state = 'sweeping' WHERE id = ?", r.id)
  tp.jobs.schedule("sweep", { run = r.id }, { after = 0, key = "run" })
end

---Job sweep {run}: members the run did not see (no paid order in the window
---any more) lose their layer, a slice at a time; then the run is done, its
---counts the run before's plus its moves.
---@param job TpJob
function run.sweep(job)
  local r = need_run(job.payload.run, "sweeping")
  if not r then return end
  local s = settings.get()
  local rows = tp.db.query("SELECT user, layer FROM rfm_members WHERE run_id < ? LIMIT ?", r.id, s.batch)
  local changed = {}
  for _, m in ipairs(rows) do
    tp.db.exec("DELETE FROM rfm_members WHERE user = ?", m.user)
    if m.layer then changed[#changed + 1] = { user = m.user, from = m.layer, to = nil } end
  end
  book(r.id, changed)
  if #rows == s.batch then
    tp.jobs.schedule("sweep", { run = r.id }, { after = 0, key = "run" })
    return
  end
  local prev = tp.db.one("SELECT id FROM rfm_runs WHERE state = 'done' AND id < ? ORDER BY id DESC LIMIT 1", r.id)
  local counts = {}
  if prev then
    for _, c in ipairs(tp.db.query("SELECT layer, members FROM rfm_run_layers WHERE run_id = ?", prev.id)) do
      counts[c.layer] = c.members
    end
  end
  for _, m in ipairs(tp.db.query("SELECT from_layer, to_layer, members FROM rfm_run_moves WHERE run_id = ?", r.id)) do
    if m.from_layer ~= "" then counts[m.from_layer] = (counts[m.from_layer] or 0) - m.members end
    if m.to_layer ~= "" then counts[m.to_layer] = (counts[m.to_layer] or 0) + m.members end
  end
  for layer, n in pairs(counts) do
    if n > 0 then
      tp.db.exec("INSERT INTO rfm_run_layers (run_id, layer, members) VALUES (?, ?, ?)", r.id, layer, n)
    end
  end
  tp.db.exec("DELETE FROM rfm_hist WHERE run_id = ?", r.id)
  tp.db.exec("DELETE FROM rfm_top WHERE run_id < ?", r.id)
  tp.db.exec("UPDATE rfm_runs SET state = 'done', finished_at = ? WHERE id = ?", tp.now(), r.id)
  tp.events.emit("rfm.run_done", { run = r.id })
end

---Job nightly: the scheduled run (skipped while one is still running).
function run.nightly()
  run.start("schedule")
end

---The next hour o'clock, local.
---@return integer
function run.next_nightly()
  local now = tp.now()
  local lt = tp.localtime(now)
  local at = now - (lt.hour * 3600 + lt.min * 60 + lt.sec) + settings.get().hour * 3600
  if at <= now then at = at + 86400 end
  return at
end

---Makes sure the dimension's eight tags exist in the members plugin, so that a
---segment or a campaign can name a layer before the first run.
function run.declare()
  if has_members() then tp.call("members", "set_dimension", "rfm", run.ORDER, nil) end
end

return run
