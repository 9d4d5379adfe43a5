---@diagnostic disable: undefined-global
-- schjobs: a plugin for the scheduler's end-to-end tests (test_scheduler.py).
-- Routes schedule and cancel jobs the way the Python side asks; every job that
-- succeeds writes one row to schjobs_runs, so the tests can see exactly which
-- jobs ran, when (tp.now() inside the job) and with what.

-- a JSON null arrives as tp.json.null: only real strings are kept
local function str(v)
  return type(v) == "string" and v or ""
end

local function record(job)
  local p = type(job.payload) == "table" and job.payload or {}
  tp.db.exec([[
    INSERT INTO schjobs_runs (job_id, name, tag, now, now_ms, due, due_ms, attempt, key)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)]],
    job.id, job.name, str(p.tag), tp.now(), tp.now_ms(), job.due, job.due_ms, job.attempt,
    str(job.key))
end

local function flag(name)
  local row = tp.db.one("SELECT value FROM schjobs_flags WHERE name = ?", name)
  return row and row.value or 0
end

-- fails while the flag 'flaky' is set (the row is written by a route)
local function flaky(job)
  if flag("flaky") ~= 0 then
    error("flaky job says no to " .. tostring(job.payload.tag))
  end
  record(job)
end

-- the SQL authorizer from a job: the outcome is recorded
local function peek(job)
  local ok, err = pcall(tp.db.query, "SELECT * FROM probe_items")
  tp.db.exec("INSERT INTO schjobs_runs (job_id, name, tag, now, now_ms, due, due_ms, attempt, key)"
    .. " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", job.id, job.name,
    ok and "allowed" or tostring(err), tp.now(), tp.now_ms(), job.due, job.due_ms, job.attempt, "")
end

local function body_of(req)
  return type(req.body) == "table" and req.body or {}
end

-- POST /schjobs/schedule {name, payload, when, jobs = [{name, payload, when}...], after = "error"|"fail"}
local function schedule(req)
  local b = body_of(req)
  local list = b.jobs or { { name = b.name, payload = b.payload, when = b.when } }
  local ids = {}
  for i, j in ipairs(list) do
    ids[i] = tp.jobs.schedule(j.name, j.payload, j.when)
  end
  if b["then"] == "error" then
    error("the handler raises after scheduling")
  elseif b["then"] == "fail" then
    tp.fail(409, "changed_my_mind", "the handler fails after scheduling")
  end
  return 200, { ids = ids, id = ids[1], now = tp.now(), now_ms = tp.now_ms() }
end

-- POST /schjobs/cancel {id} | {key}
local function cancel(req)
  local b = body_of(req)
  return 200, { cancelled = tp.jobs.cancel(b.id or b.key) }
end

local function runs()
  return 200, { runs = tp.db.query("SELECT * FROM schjobs_runs ORDER BY id") }
end

local function set_flag(req)
  tp.db.exec([[INSERT INTO schjobs_flags (name, value) VALUES (?, ?)
               ON CONFLICT (name) DO UPDATE SET value = excluded.value]],
    req.params.name, req.params.value)
  return 200, { name = req.params.name, value = req.params.value }
end

-- another plugin's table, the error caught: the handler sees the message
local function peek_other()
  local ok, err = pcall(tp.db.query, "SELECT * FROM probe_items")
  return 200, { ok = ok, err = not ok and tostring(err) or nil }
end

-- the same, not caught
local function peek_other_raw()
  local rows = tp.db.query("SELECT * FROM probe_items")
  return 200, { rows = rows, note = "the host let this through" }
end

local function now()
  return 200, { now = tp.now(), now_ms = tp.now_ms() }
end

return {
  name = "schjobs",
  version = "1.0.0",
  migrations = {
    [[
    CREATE TABLE schjobs_runs (
      id INTEGER PRIMARY KEY,
      job_id INTEGER NOT NULL,
      name TEXT NOT NULL,
      tag TEXT NOT NULL,
      now INTEGER NOT NULL,
      now_ms INTEGER NOT NULL,
      due INTEGER NOT NULL,
      due_ms INTEGER NOT NULL,
      attempt INTEGER NOT NULL,
      key TEXT NOT NULL
    );
    CREATE TABLE schjobs_flags (
      name TEXT PRIMARY KEY,
      value INTEGER NOT NULL
    );
    ]],
  },
  jobs = {
    record = record,
    tick = record,
    flaky = flaky,
    peek = peek,
  },
  routes = {
    { method = "POST", path = "/schjobs/schedule", auth = "none", handler = schedule },
    { method = "POST", path = "/schjobs/cancel", auth = "none", handler = cancel },
    { method = "GET", path = "/schjobs/runs", auth = "none", handler = runs },
    { method = "POST", path = "/schjobs/flag/{name}/{value:int}", auth = "none", handler = set_flag },
    { method = "GET", path = "/schjobs/peek-other", auth = "none", handler = peek_other },
    { method = "GET", path = "/schjobs/peek-other-raw", auth = "none", handler = peek_other_raw },
    { method = "GET", path = "/schjobs/now", auth = "none", handler = now },
  },
}
