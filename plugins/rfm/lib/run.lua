---@diagnostic disable: undefined-global
-- rfm/lib/run.lua: one RFM run, in slices that never hold the host for long.
--
-- 1. collect: the members plugin's facts_page hands over the buyers of the
--    window (paid orders not refunded in full, since the run's start minus
--    window_days), batch members per job run, each run its own transaction;
--    each buyer's recency (whole days from the last payment to the run's
--    start), orders and net fen go into rfm_members, marked with the run.
-- 2. thresholds: a fixed value as configured, or the value at the percentile
--    of this run's buyers (nearest rank, on the index of that column).
-- 3. score: every row of rfm_members, batch per job run, gets its layer: a
--    buyer of this run by its three highs and lows (LAYERS), a member the run
--    did not see (no paid order in the window any more) none, and is then
--    dropped. Each change is counted as a move (from -> to) of the run and is
--    the member's tag in the members plugin's dimension "rfm".
-- 4. done: the count of each layer is kept with the run (history per run).

local settings = require("lib.settings")

local run = {}

-- (R high, F high, M high) -> layer, the classic eight
run.LAYERS = {
  ["111"] = "重要价值", ["101"] = "重要发展", ["011"] = "重要保持", ["001"] = "重要挽留",
  ["110"] = "一般价值", ["100"] = "一般发展", ["010"] = "一般保持", ["000"] = "一般挽留",
}
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

---Starts a run (trigger "schedule" or "manual"); nil when one is running.
---@param trigger string
---@return table|nil run row
function run.start(trigger)
  if tp.db.one("SELECT id FROM rfm_runs WHERE state <> 'done'") then return nil end
  local s = settings.get()
  local now = tp.now()
  local _, id = tp.db.exec([[INSERT INTO rfm_runs (state, trigger, started_at, since, cursor_n, cursor_user, buyers)
    VALUES ('collecting', ?, ?, ?, 0, '', 0)]], trigger, now, now - s.window_days * 86400)
  tp.jobs.schedule("collect", { run = id }, { after = 0, key = "run" })
  return tp.db.one("SELECT * FROM rfm_runs WHERE id = ?", id)
end

local function need_run(id, state)
  local r = tp.db.one("SELECT * FROM rfm_runs WHERE id = ?", id)
  if not r or r.state ~= state then return nil end
  return r
end

---The value at percentile p of column col among the run's buyers (nearest
---rank; ascending, or descending for recency where fewer days is better).
local function percentile(run_id, col, p, n, descending)
  local k = math.max(1, (p * n + 99) // 100)
  local row = tp.db.one(("SELECT %s AS v FROM rfm_members WHERE run_id = ? ORDER BY %s %s LIMIT 1 OFFSET ?")
    :format(col, col, descending and "DESC" or "ASC"), run_id, k - 1)
  return row and row.v or 0
end

---The thresholds of run r: fixed (high: at most r days, at least f orders, at
---least m fen) or percentiles (high: strictly better than that value).
local function thresholds(r)
  local s = settings.get()
  local n = r.buyers
  local t = {}
  if s.r.percentile then
    t.r_days, t.r_strict = percentile(r.id, "recency_days", s.r.percentile, n, true), true
  else
    t.r_days, t.r_strict = s.r.days, false
  end
  if s.f.percentile then
    t.f_orders, t.f_strict = percentile(r.id, "orders", s.f.percentile, n, false), true
  else
    t.f_orders, t.f_strict = s.f.orders, false
  end
  if s.m.percentile then
    t.m_fen, t.m_strict = percentile(r.id, "net_fen", s.m.percentile, n, false), true
  else
    t.m_fen, t.m_strict = s.m.fen, false
  end
  return t
end

---Job collect {run}: one page of buyers.
---@param job TpJob
function run.collect(job)
  local r = need_run(job.payload.run, "collecting")
  if not r then return end
  local s = settings.get()
  local page = tp.call("members", "facts_page", r.cursor_n, s.batch, r.since)
  for _, b in ipairs(page.members) do
    tp.db.exec([[INSERT INTO rfm_members (user, recency_days, orders, net_fen, store, guide, run_id)
      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (user) DO UPDATE SET recency_days = ?2, orders = ?3,
        net_fen = ?4, store = ?5, guide = ?6, run_id = ?7]],
      b.user, math.max(0, (r.started_at - b.last_paid_at) // 86400), b.orders, b.net_fen, b.store, b.guide, r.id)
  end
  local buyers = r.buyers + #page.members
  if page.next then
    tp.db.exec("UPDATE rfm_runs SET cursor_n = ?, buyers = ? WHERE id = ?", page.next, buyers, r.id)
    tp.jobs.schedule("collect", { run = r.id }, { after = 0, key = "run" })
    return
  end
  tp.db.exec("UPDATE rfm_runs SET buyers = ?, state = 'scoring' WHERE id = ?", buyers, r.id)
  r.buyers = buyers
  tp.db.exec("UPDATE rfm_runs SET thresholds = ? WHERE id = ?", tp.json.encode(thresholds(r)), r.id)
  tp.jobs.schedule("score", { run = r.id }, { after = 0, key = "run" })
end

local function has_members()
  for _, p in ipairs(tp.exporters("set_dimension")) do
    if p == "members" then return true end
  end
  return false
end

---Job score {run}: one slice of rfm_members gets its layer.
---@param job TpJob
function run.score(job)
  local r = need_run(job.payload.run, "scoring")
  if not r then return end
  local s = settings.get()
  local t = tp.json.decode(r.thresholds)
  local rows = tp.db.query([[SELECT user, recency_days, orders, net_fen, layer, run_id FROM rfm_members
    WHERE user > ? ORDER BY user LIMIT ?]], r.cursor_user, s.batch)
  local moves, changes = {}, {}
  for _, m in ipairs(rows) do
    local layer = m.run_id == r.id and run.layer(t, m.recency_days, m.orders, m.net_fen) or nil
    if layer ~= m.layer then
      local key = (m.layer or "") .. "\t" .. (layer or "")
      moves[key] = (moves[key] or 0) + 1
      changes[#changes + 1] = { user = m.user, value = layer or false }
      if layer then
        tp.db.exec("UPDATE rfm_members SET layer = ? WHERE user = ?", layer, m.user)
      end
    end
    if not layer then tp.db.exec("DELETE FROM rfm_members WHERE user = ?", m.user) end
  end
  for key, n in pairs(moves) do
    local from, to = key:match("^(.-)\t(.*)$")
    tp.db.exec([[INSERT INTO rfm_run_moves (run_id, from_layer, to_layer, members) VALUES (?1, ?2, ?3, ?4)
      ON CONFLICT (run_id, from_layer, to_layer) DO UPDATE SET members = members + ?4]], r.id, from, to, n)
  end
  if #changes > 0 and has_members() then
    tp.call("members", "set_dimension", "rfm", run.ORDER, changes)
  end
  if #rows == s.batch then
    tp.db.exec("UPDATE rfm_runs SET cursor_user = ? WHERE id = ?", rows[#rows].user, r.id)
    tp.jobs.schedule("score", { run = r.id }, { after = 0, key = "run" })
    return
  end
  tp.db.exec([[INSERT INTO rfm_run_layers (run_id, layer, members)
    SELECT ?, layer, count(*) FROM rfm_members WHERE layer IS NOT NULL GROUP BY layer]], r.id)
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
