---@diagnostic disable: undefined-global
-- rlver: a plugin that tests/e2e/test_reload.py copies to a temporary plugin
-- folder and rewrites between reloads. The test edits the lines marked @...@
-- (VERSION, and the ends of migrations, routes and jobs), so keep them as is.

local VERSION = 1 -- @VERSION@

-- one write and one read per request: a counter per name
local function hit(req)
  local row = tp.db.one([[
    INSERT INTO rlver_hits (name, n) VALUES (?, 1)
    ON CONFLICT (name) DO UPDATE SET n = n + 1 RETURNING n]], req.params.name)
  return 200, { version = VERSION, n = row.n }
end

local function hits(req)
  local row = tp.db.one("SELECT n FROM rlver_hits WHERE name = ?", req.params.name)
  return 200, { version = VERSION, n = row and row.n or 0 }
end

local function version()
  return 200, { version = VERSION }
end

local function word()
  return 200, { word = require("lib.word").word, version = VERSION }
end

-- schedules job {job} after {after} seconds, with the scheduling version in its payload
local function schedule(req)
  local id = tp.jobs.schedule(req.params.job, { from = VERSION }, { after = req.params.after })
  return 201, { id = id, version = VERSION }
end

-- what the jobs did
local function job_log()
  return 200, { version = VERSION,
                rows = tp.db.query("SELECT job, version, scheduled_by FROM rlver_log ORDER BY id") }
end

local function note(job)
  tp.db.exec("INSERT INTO rlver_log (job, version, scheduled_by) VALUES (?, ?, ?)", job.name,
    VERSION, job.payload.from)
end

return {
  name = "rlver",
  version = VERSION .. ".0.0",
  migrations = {
    "CREATE TABLE rlver_hits (name TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    "CREATE TABLE rlver_log (id INTEGER PRIMARY KEY, job TEXT, version INTEGER, scheduled_by INTEGER)",
    -- @MIGRATIONS@
  },
  routes = {
    { method = "POST", path = "/rlver/hit/{name}", auth = "none", handler = hit },
    { method = "GET", path = "/rlver/hit/{name}", auth = "none", handler = hits },
    { method = "GET", path = "/rlver/version", auth = "none", handler = version },
    { method = "GET", path = "/rlver/word", auth = "none", handler = word },
    { method = "POST", path = "/rlver/schedule/{job}/{after:int}", auth = "none", handler = schedule },
    { method = "GET", path = "/rlver/log", auth = "none", handler = job_log },
    -- @ROUTES@
  },
  jobs = {
    note = note,
    gone = note, -- @GONE@
    -- @JOBS@
  },
}
