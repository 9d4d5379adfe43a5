---@diagnostic disable: undefined-global
-- rfm (RFM 用户分层): every buyer of the brand in one of the eight classic
-- layers by recency, frequency and money in a window, recomputed nightly at a
-- local hour and on demand, in slices (lib/run.lua); the count of each layer
-- and the moves between layers kept per run; each member's layer a tag of
-- the members plugin's dimension "rfm", so a segment rule {rfm = "重要挽留"}
-- (and a campaign script's segment) targets a layer.
--
-- Admin routes (/admin/{tenant}, X-Api-Key):
--   POST /rfm/runs                 start a run now (202; 409 run_in_progress)
--   GET  /rfm/runs                 runs, newest first, with their layer counts
--   GET  /rfm/runs/{id}            one run: thresholds, layer counts, moves
--   GET  /rfm/layers               the layers now (the last finished run) and its moves
--   GET  /rfm/members/{user}       a member's recency, orders, money and layer
--   GET  /rfm/super-users?limit=   the top buyers by money in the window, with store and guide
-- Emits: rfm.run_done {run}

local check = require("tp.check")
local settings = require("lib.settings")
local run = require("lib.run")

-- the settings are checked as the plugin loads: a wrong config fails the load, naming the key
settings.get()

local I, S = { type = "integer" }, { type = "string" }
local NI = { type = "integer", nullable = true }
local LAYER = { type = "string", enum = run.ORDER }

local COUNTS = { type = "array", description = "the eight layers, in the classic order",
  items = { type = "object", properties = { layer = LAYER, members = I } } }
local MOVES = { type = "array", description = "members whose layer changed in the run; from/to null: none "
  .. "(new in the window, or no paid order in it any more)", items = { type = "object", properties = {
    from = { type = "string", nullable = true }, to = { type = "string", nullable = true }, members = I } } }
local RUN = { type = "object", properties = {
  id = I, state = { type = "string", enum = { "collecting", "scoring", "sweeping", "done", "failed" },
    description = "failed: still not done 6 hours after its start (a slice kept failing); the next run starts afresh" },
  trigger = { type = "string", enum = { "schedule", "manual" } },
  started_at = I, finished_at = NI, since = I, buyers = I,
  thresholds = { type = "object", nullable = true, description = "high when: recency_days <= r_days (< with "
    .. "r_strict, a percentile), orders >= f_orders (> with f_strict), net_fen >= m_fen (> with m_strict)",
    properties = { r_days = I, r_strict = { type = "boolean" }, f_orders = I, f_strict = { type = "boolean" },
                   m_fen = I, m_strict = { type = "boolean" } } },
  layers = COUNTS, moves = MOVES } }

local function counts_of(run_id)
  local by = {}
  for _, r in ipairs(tp.db.query("SELECT layer, members FROM rfm_run_layers WHERE run_id = ?", run_id)) do
    by[r.layer] = r.members
  end
  local out = tp.json.array()
  for i, l in ipairs(run.ORDER) do out[i] = { layer = l, members = by[l] or 0 } end
  return out
end

local function moves_of(run_id)
  local out = tp.json.array()
  for _, m in ipairs(tp.db.query([[SELECT from_layer, to_layer, members FROM rfm_run_moves WHERE run_id = ?
      ORDER BY members DESC, from_layer, to_layer]], run_id)) do
    out[#out + 1] = { from = m.from_layer ~= "" and m.from_layer or nil,
                      to = m.to_layer ~= "" and m.to_layer or nil, members = m.members }
  end
  return out
end

local function shape(r, full)
  local out = { id = r.id, state = r.state, trigger = r.trigger, started_at = r.started_at,
                finished_at = r.finished_at, since = r.since, buyers = r.buyers,
                thresholds = r.thresholds and tp.json.decode(r.thresholds) or nil }
  if r.state == "done" then out.layers = counts_of(r.id) end
  if full and r.state == "done" then out.moves = moves_of(r.id) end
  return out
end

local function start(req)
  local r = run.start("manual")
  if not r then
    local busy = tp.db.one("SELECT id FROM rfm_runs WHERE state NOT IN ('done', 'failed')")
    tp.fail(409, "run_in_progress", ("run %d is still running"):format(busy.id), { run = busy.id })
  end
  return 202, shape(r, false)
end

local function list(req)
  local limit, after = check.page(req.query, 20, 100)
  local rows = tp.db.query("SELECT * FROM rfm_runs WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
    after, limit)
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = shape(r, false) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

local function get(req)
  local r = tp.db.one("SELECT * FROM rfm_runs WHERE id = ?", req.params.id)
  if not r then tp.fail(404, "run_not_found", "no such run") end
  return 200, shape(r, true)
end

local function layers()
  local r = tp.db.one("SELECT * FROM rfm_runs WHERE state = 'done' ORDER BY id DESC LIMIT 1")
  if not r then return 200, { run = tp.json.null, layers = counts_of(0), moves = tp.json.array() } end
  return 200, { run = r.id, at = r.started_at, layers = counts_of(r.id), moves = moves_of(r.id) }
end

local function member(req)
  local user = check.user(req.params.user, "user")
  local m = tp.db.one([[SELECT user, recency_days, orders, net_fen, layer, store, guide, run_id
    FROM rfm_members WHERE user = ? AND layer IS NOT NULL]], user)
  if not m then tp.fail(404, "member_not_layered", "the member has no layer (no paid order in the window at the last run)") end
  return 200, { user = m.user, layer = m.layer, recency_days = m.recency_days, orders = m.orders,
                net_fen = m.net_fen, store = m.store, guide = m.guide, run = m.run_id }
end

---GET /rfm/super-users?limit=: 超级用户, the top buyers (at most 200) by net
---money in the last finished run's window, with the store and guide they came from.
local function super_users(req)
  local limit = check.page(req.query, 20, 200)
  local last = tp.db.one("SELECT id FROM rfm_runs WHERE state = 'done' ORDER BY id DESC LIMIT 1")
  local rows = tp.db.query([[SELECT m.user, m.layer, m.net_fen, m.orders, m.recency_days, m.store, m.guide
    FROM rfm_top t JOIN rfm_members m ON m.user = t.user
    WHERE t.run_id = ? AND m.layer IS NOT NULL ORDER BY t.net_fen DESC, t.user LIMIT ?]], last and last.id or 0, limit)
  return 200, { items = tp.json.array(rows) }
end

local MEMBER = { type = "object", properties = { user = S, layer = LAYER, recency_days = I, orders = I,
  net_fen = I, store = { type = "string", nullable = true }, guide = { type = "string", nullable = true }, run = I } }

return {
  name = "rfm",
  version = "1.0.1",
  description = "RFM layers of the brand's buyers, nightly and on demand, with counts and moves per run",
  migrations = {
    [[
    CREATE TABLE rfm_runs (
      id INTEGER PRIMARY KEY,
      state TEXT NOT NULL CHECK (state IN ('collecting', 'scoring', 'sweeping', 'done', 'failed')),
      trigger TEXT NOT NULL,
      started_at INTEGER NOT NULL,
      finished_at INTEGER,
      since INTEGER NOT NULL,
      cursor_n INTEGER NOT NULL,
      cursor_user TEXT NOT NULL,
      buyers INTEGER NOT NULL,
      thresholds TEXT
    );
    -- each buyer's figures at the run that last saw it (run_id), its layer, and
    -- its layer before that run (prev_layer)
    CREATE TABLE rfm_members (
      user TEXT PRIMARY KEY,
      recency_days INTEGER NOT NULL,
      orders INTEGER NOT NULL,
      net_fen INTEGER NOT NULL,
      store TEXT,
      guide TEXT,
      run_id INTEGER NOT NULL,
      layer TEXT,
      prev_layer TEXT
    ) WITHOUT ROWID;
    CREATE INDEX rfm_members_run ON rfm_members(run_id);
    -- a running run's counts per value of r (days), f (orders), m (fen): its percentiles
    CREATE TABLE rfm_hist (
      run_id INTEGER NOT NULL,
      dim TEXT NOT NULL,
      value INTEGER NOT NULL,
      members INTEGER NOT NULL,
      PRIMARY KEY (run_id, dim, value)
    ) WITHOUT ROWID;
    -- the 200 biggest buyers of a run (超级用户)
    CREATE TABLE rfm_top (
      run_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      net_fen INTEGER NOT NULL,
      PRIMARY KEY (run_id, user)
    ) WITHOUT ROWID;
    CREATE TABLE rfm_run_layers (
      run_id INTEGER NOT NULL,
      layer TEXT NOT NULL,
      members INTEGER NOT NULL,
      PRIMARY KEY (run_id, layer)
    ) WITHOUT ROWID;
    -- '' is none
    CREATE TABLE rfm_run_moves (
      run_id INTEGER NOT NULL,
      from_layer TEXT NOT NULL,
      to_layer TEXT NOT NULL,
      members INTEGER NOT NULL,
      PRIMARY KEY (run_id, from_layer, to_layer)
    ) WITHOUT ROWID;
    ]],
  },
  routes = {
    { method = "POST", path = "/rfm/runs", auth = "admin", handler = start, status = 202,
      errors = { [409] = { "run_in_progress" } },
      summary = "Start an RFM run now; it runs in the background, a slice at a time",
      response = RUN },
    { method = "GET", path = "/rfm/runs", auth = "admin", handler = list,
      errors = { [400] = { "invalid_query" } },
      summary = "RFM runs, newest first, with their layer counts (the history)",
      query = { limit = { type = "integer", description = "1-100" },
                after = { type = "integer", description = "next_after of the previous page" } },
      response = { type = "object", properties = { items = { type = "array", items = RUN }, next_after = I } } },
    { method = "GET", path = "/rfm/runs/{id:int}", auth = "admin", handler = get,
      errors = { [404] = { "run_not_found" } },
      summary = "One run: its thresholds, the count of each layer and the moves between layers",
      response = RUN },
    { method = "GET", path = "/rfm/layers", auth = "admin", handler = layers,
      summary = "The layers now (the last finished run) and the moves since the run before",
      response = { type = "object", properties = { run = { type = "integer", nullable = true }, at = I,
        layers = COUNTS, moves = MOVES } } },
    { method = "GET", path = "/rfm/members/{user}", auth = "admin", handler = member,
      errors = { [400] = { "invalid_field" }, [404] = { "member_not_layered" } },
      summary = "A member's recency, orders, money in the window and layer", response = MEMBER },
    { method = "GET", path = "/rfm/super-users", auth = "admin", handler = super_users,
      errors = { [400] = { "invalid_query" } },
      summary = "超级用户: the top buyers by money in the window, with the store and guide they came from",
      query = { limit = { type = "integer", description = "1-200 (default 20)" } },
      response = { type = "object", properties = { items = { type = "array", items = { type = "object",
        properties = { user = S, layer = LAYER, net_fen = I, orders = I, recency_days = I,
          store = { type = "string", nullable = true }, guide = { type = "string", nullable = true } } } } } } },
  },
  jobs = {
    collect = run.collect,
    score = run.score,
    sweep = run.sweep,
    nightly = run.nightly,
  },
  setup = function()
    settings.get()
    run.declare()
    tp.jobs.schedule("nightly", nil, { at = run.next_nightly(), every = 86400, key = "nightly" })
  end,
}
