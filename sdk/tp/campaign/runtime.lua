---@diagnostic disable: undefined-global
-- The campaign runtime. The host runs each campaign script of a tenant
-- (config: campaigns = { "campaigns/double11.lua" }) as a plugin of its own,
-- campaign_<file name>, whose plugin.lua is this file; it gets the script's
-- source, chunk name, the campaign's name and where() (the script's line).
--
-- What it does with the script:
--   load   script.lua runs and checks it; a script that cannot be read to
--          its end (a syntax error, an error its code raises, no return
--          campaign { ... }) fails the load with what was found;
--   setup  on every load, in one transaction before this version serves:
--          the script's segments are saved in the members plugin
--          (save_segment), each mechanic creates or updates its activity
--          (campaign_apply; a refusal fails the load with the setting's line),
--          a drop to a segment that has not run yet needs the segment to
--          exist, items gone from the script are withdrawn, the start, end
--          and coupon-drop jobs are (re)scheduled at their times, the preview
--          timeline is rewritten. Every mistake is reported at once: the
--          script's own (found at load) and each mechanic's refusal of an
--          item (an item the script check found wrong is not handed over),
--          one file:line: message each, in line order; then nothing of the
--          setup is kept;
--   jobs   start and end flip the campaign's state and emit campaign.started
--          and campaign.ended; a drop issues its coupons to its users, or
--          starts the coupons plugin's drop to every member of its segment
--          (which runs on in slices of its own). Jobs are rows in the
--          tenant's database, so a campaign starts and ends on time across
--          restarts (a job due while the host was down runs when it is back);
--   hooks  on = { ["order.paid"] = function(data, campaign) ... end } run
--          while the campaign is running (after start, before end).
-- State lives in the campaign's tables, never in this VM.

local source, chunkname, name, where = ...
local script = require("tp.campaign.script")
local timeline = require("tp.campaign.timeline")

local c = script.read(source, chunkname, name, where)
if c.fatal then error(script.problems_text(c.r), 0) end
local P = "campaign_" .. name
local ITEMS, STEPS, TIMELINE = P .. "_items", P .. "_steps", P .. "_timeline"

-- ---- state

local function step_done(key)
  return tp.db.one("SELECT done_at, outcome FROM " .. STEPS .. " WHERE key = ?", key)
end

local function mark_done(key, outcome)
  tp.db.exec("INSERT OR IGNORE INTO " .. STEPS .. " (key, done_at, outcome) VALUES (?, ?, ?)",
    key, tp.now(), outcome)
end

---"scheduled" before the start job ran, "running" until the end job ran, then "ended".
local function state()
  if step_done("end") then return "ended" end
  return step_done("start") and "running" or "scheduled"
end

local function item_rows(all)
  return tp.db.query("SELECT ref, item_id AS id, kind, plugin, activity_id, summary, opens_at, closes_at, "
    .. "withdrawn FROM " .. ITEMS .. (all and "" or " WHERE withdrawn = 0") .. " ORDER BY rowid")
end

-- ---- setup: the mechanics, the jobs, the timeline

---Fails the load with every problem found, if there is any: the script's
---own and the mechanics' refusals, in line order (script.problems_text).
local function fail_if_problems()
  local text = script.problems_text(c.r)
  if text then tp.fail(422, "invalid_campaign", text, { problems = #c.r.problems }) end
end

---Where campaign item ref was declared: "file:line" of this script, or of
---another campaign's, asked through its where export; nil if unknown.
local function item_where(ref)
  local campaign = type(ref) == "string" and ref:match("^([^/]+)/")
  if not campaign then return nil end
  if campaign == name then
    for _, it in ipairs(c.items) do
      if it.ref == ref then return ("%s:%d"):format(c.r.file, it.line), it end
    end
    return nil
  end
  local ok, at = pcall(tp.call, "campaign_" .. campaign, "where", ref)
  return ok and type(at) == "string" and at or nil
end

---An activity the refusal names by its campaign ref (details.ref: a flash
---sale's overlap, say) as the operator wrote it: kind 'id' and where.
local function named_item(ref)
  local at, it = item_where(ref)
  local item_id = ref:match("/(.*)$")
  if it then return ("%s '%s' (line %d)"):format(it.kind, it.id, it.line) end
  local campaign = ref:match("^([^/]+)/")
  return ("item '%s' of campaign %s%s"):format(item_id, campaign, at and (" (" .. at .. ")") or "")
end

---Records the mechanic's refusal of an item, pointed at the line of the
---setting it names.
local function refused(it, err)
  local r = c.r
  if type(err) ~= "table" then
    local msg = tostring(err)
    if msg:find("no plugin '" .. it.plugin .. "' is enabled", 1, true) then
      msg = ("the plugin '%s' is not enabled for this tenant"):format(it.plugin)
    elseif msg:find("exports no function 'campaign_apply'", 1, true) then
      msg = ("the plugin '%s' does not take part in campaigns (it exports no campaign_apply)"):format(it.plugin)
    end
    r.report(it.line, "%s '%s': %s", it.kind, it.id, msg)
    return
  end
  local details = type(err.details) == "table" and err.details or {}
  local field = type(details.field) == "string" and details.field
  local line = it.line
  if field then
    field = field:gsub("%[.*$", "")
    if it.window and field == it.window[1] then field = "starts" end
    if it.window and field == it.window[2] then field = "ends" end
    line = r.line_of(it.from, it.to, field)
  end
  local msg = tostring(err.message)
  if type(details.ref) == "string" and type(details.ref_text) == "string" then
    -- the mechanic named the other activity by its ref: say which item that is
    local pos = msg:find(details.ref_text, 1, true)
    if pos then
      msg = msg:sub(1, pos - 1) .. named_item(details.ref) .. msg:sub(pos + #details.ref_text)
    end
  end
  r.report(line, "%s '%s': %s (%s)", it.kind, it.id, msg, tostring(err.code))
end

---True when the tenant serves the members plugin (segments and segment drops need it).
local function members_enabled()
  return tp.exports("members", "exists")
end

---Saves the script's segment "name" { rule } declarations in the members
---plugin, in order; a refusal fails the load with the declaration's line.
local function save_segments()
  local r = c.r
  if #c.segments > 0 and not members_enabled() then
    r.report(c.segments[1].line, "segment '%s': segments need the members plugin, which is "
      .. "not enabled for this tenant", c.segments[1].name)
    return
  end
  for _, s in ipairs(c.segments) do
    local ok, err = pcall(tp.call, "members", "save_segment", s.name, s.rule, "campaign " .. name)
    if not ok then
      local msg = type(err) == "table" and ("%s (%s)"):format(tostring(err.message), tostring(err.code))
        or tostring(err)
      r.report(s.line, "segment '%s': %s", s.name, msg)
    end
  end
end

---A drop to a segment that has not run yet needs the members plugin and the
---segment (declared in the script or saved there before).
local function check_drop_segment(it)
  if not it.segment or step_done("drop:" .. it.id) then return end
  local r = c.r
  local line = r.line_of(it.from, it.to, "segment")
  if not members_enabled() then
    r.report(line, "coupon_drop '%s': a drop to a segment needs the members "
      .. "plugin, which is not enabled for this tenant", it.id)
  elseif not tp.call("members", "exists", "segment", it.segment) then
    r.report(line, "coupon_drop '%s': there is no segment '%s' (save it in the "
      .. "members plugin, POST /admin/{tenant}/members/segments, or declare it in this script: "
      .. "segment \"%s\" { ... })", it.id, it.segment, it.segment)
  end
end

---Hands item it to its mechanic and records the activity; false (with the
---refusal recorded) if the mechanic refused it.
local function apply(it, now)
  local old = tp.db.one("SELECT plugin, withdrawn FROM " .. ITEMS .. " WHERE ref = ?", it.ref)
  if old and old.plugin ~= it.plugin and old.withdrawn == 0 then
    tp.call(old.plugin, "campaign_withdraw", it.ref)  -- the id now names another mechanic
  end
  local ok, res = pcall(tp.call, it.plugin, "campaign_apply", it.ref, it.settings)
  if not ok then
    refused(it, res)
    return false
  end
  if type(res) ~= "table" or math.type(res.id) ~= "integer" or type(res.summary) ~= "string" then
    tp.fail(500, "bad_mechanic", ("%s.campaign_apply returned no {id, summary}"):format(it.plugin))
  end
  tp.db.exec("INSERT INTO " .. ITEMS .. [[ (ref, item_id, kind, plugin, activity_id, summary, opens_at,
      closes_at, withdrawn, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?)
    ON CONFLICT (ref) DO UPDATE SET item_id = excluded.item_id, kind = excluded.kind,
      plugin = excluded.plugin, activity_id = excluded.activity_id, summary = excluded.summary,
      opens_at = excluded.opens_at, closes_at = excluded.closes_at, withdrawn = 0,
      updated_at = excluded.updated_at]], it.ref, it.id, it.kind, it.plugin, res.id, res.summary,
    math.type(res.opens_at) == "integer" and res.opens_at or nil,
    math.type(res.closes_at) == "integer" and res.closes_at or nil, now)
  return true
end

---Items an earlier version declared and this one does not: their activities stop.
local function withdraw_removed(declared)
  for _, row in ipairs(item_rows(false)) do
    if not declared[row.ref] then
      local ok, err = pcall(tp.call, row.plugin, "campaign_withdraw", row.ref)
      if not ok then  -- the plugin is gone: nothing of it can still sell
        tp.log("warn", "campaign item could not be withdrawn", { campaign = name, ref = row.ref,
          error = type(err) == "table" and err.message or tostring(err) })
      end
      tp.db.exec("UPDATE " .. ITEMS .. " SET withdrawn = 1, updated_at = ? WHERE ref = ?", tp.now(), row.ref)
    end
  end
end

---Every step not yet done is (re)scheduled at its time: moving a time in the
---script and reloading moves the job. A step already done stays done.
local function schedule_steps()
  local steps = { { key = "start", job = "start", at = c.starts_at }, { key = "end", job = "end", at = c.ends_at } }
  for _, it in ipairs(c.items) do
    if it.at then steps[#steps + 1] = { key = "drop:" .. it.id, job = "drop", at = it.at, ref = it.ref } end
  end
  local keep = {}
  for _, s in ipairs(steps) do
    keep[s.key] = true
    if not step_done(s.key) then
      tp.jobs.cancel(s.key)
      tp.jobs.schedule(s.job, { key = s.key, ref = s.ref }, { at = s.at, key = s.key })
    end
  end
  return keep
end

local function setup()
  local now, declared = tp.now(), {}
  save_segments()
  for _, it in ipairs(c.items) do
    -- an item the script check found wrong is not handed over: its mechanic
    -- would only repeat the complaint; every other item is, so that each
    -- mechanic's refusal is reported in this same run
    if not it.broken then
      local problems = #c.r.problems
      check_drop_segment(it)
      if #c.r.problems == problems then apply(it, now) end
    end
    declared[it.ref] = true
  end
  fail_if_problems()
  withdraw_removed(declared)
  schedule_steps()
  -- a drop removed from the script before it ran must not run
  for _, row in ipairs(tp.db.query("SELECT ref FROM " .. ITEMS .. " WHERE kind = 'coupon_drop' AND withdrawn = 1")) do
    tp.jobs.cancel("drop:" .. row.ref:sub(#name + 2))
  end
  timeline.write(TIMELINE, c, item_rows(false))
end

-- ---- jobs

local function event_data()
  return { campaign = name, title = c.title, starts_at = c.starts_at, ends_at = c.ends_at }
end

local function start_job()
  if step_done("start") then return end
  mark_done("start", "started")
  tp.events.emit("campaign.started", event_data())
end

local function end_job()
  if step_done("end") then return end
  if not step_done("start") then mark_done("start", "started late: the host was down at the start") end
  mark_done("end", "ended")
  tp.events.emit("campaign.ended", event_data())
end

local function drop_job(job)
  local key = job.payload.key
  if step_done(key) then return end
  local it
  for _, i in ipairs(c.items) do
    if i.ref == job.payload.ref then it = i end
  end
  local row = tp.db.one("SELECT activity_id FROM " .. ITEMS .. " WHERE ref = ? AND withdrawn = 0", job.payload.ref)
  if not it or not row then
    mark_done(key, "skipped: the drop is no longer in the script")
    return
  end
  if not it.segment then
    local res = tp.call("coupons", "issue", row.activity_id, it.users, "campaign:" .. name)
    local skipped = type(res.skipped) == "table" and res.skipped or {}
    local why = {}
    for i, s in ipairs(skipped) do
      if i > 20 then why[#why + 1] = "..."; break end
      why[#why + 1] = ("%s %s"):format(tostring(s.user), tostring(s.reason))
    end
    mark_done(key, ("issued %d, skipped %d%s"):format(res.issued or 0, #skipped,
      #why > 0 and (" (" .. table.concat(why, ", ") .. ")") or ""))
    return
  end
  -- every member of a segment: the coupons plugin runs the drop on, a slice per job of its own
  local ok, res = pcall(tp.call, "coupons", "drop", row.activity_id, it.segment, it.ref)
  if not ok then
    if type(res) == "table" and res.code == "segment_not_found" then
      mark_done(key, ("not run: there is no segment '%s'"):format(it.segment))
      return
    end
    error(res, 0)  -- the job is retried
  end
  mark_done(key, ("segment drop #%d started: every member of '%s' (%d when it started) gets one; "
    .. "its progress: GET /admin/{tenant}/coupons/drops/%d"):format(res.id, it.segment,
    res.members_at_start or 0, res.id))
end

-- ---- hooks: the script's on = { ... }, while the campaign runs

---What a hook gets besides the event's data.
local function context()
  local items = {}
  for _, row in ipairs(item_rows(false)) do
    items[row.id] = { kind = row.kind, plugin = row.plugin, activity_id = row.activity_id }
  end
  return { name = name, title = c.title, starts_at = c.starts_at, ends_at = c.ends_at, items = items }
end

local subscribe = {}
for event, hook in pairs(c.hooks) do
  subscribe[event] = function(ev)
    if state() == "running" then hook(ev.data, context()) end
  end
end

-- ---- routes

local function view(admin)
  local items = {}
  for _, row in ipairs(item_rows(admin)) do
    items[#items + 1] = { id = row.id, kind = row.kind, plugin = row.plugin, activity_id = row.activity_id,
      opens_at = row.opens_at, closes_at = row.closes_at, summary = row.summary,
      withdrawn = admin and row.withdrawn == 1 or nil }
  end
  local v = { name = name, title = c.title, description = c.description, state = state(),
    starts_at = c.starts_at, ends_at = c.ends_at, items = tp.json.array(items) }
  if admin then
    v.file = c.r.file
    v.hooks = tp.json.array(timeline.hook_names(c))
    v.timeline = tp.json.array(tp.db.query("SELECT at, local_time, what FROM " .. TIMELINE .. " ORDER BY seq"))
    v.steps = tp.json.array(tp.db.query("SELECT key, done_at, outcome FROM " .. STEPS .. " ORDER BY done_at, key"))
  end
  return v
end

local CAMPAIGN_DOC = { type = "object", description = "a campaign: its window, state and items",
  properties = { name = { type = "string" }, title = { type = "string" },
    state = { type = "string", enum = { "scheduled", "running", "ended" } },
    starts_at = { type = "integer" }, ends_at = { type = "integer" }, items = { type = "array" } } }

---exports.where(ref): "file:line" of this campaign's item ref, or nil; for
---another campaign that names one of this one's activities in a problem.
local exports = {}
function exports.where(ref)
  local at = item_where(type(ref) == "string" and ref:match("^" .. name:gsub("%p", "%%%0") .. "/") and ref or "")
  return at
end

---exports.campaign_activities(): this campaign's name and title and every
---activity its items made, as orders name them (plugin, activity_id), the
---withdrawn ones too: what they sold stays the campaign's. For reports per
---campaign script (analytics' GET /analytics/campaigns?by=script).
function exports.campaign_activities()
  local activities = {}
  for i, row in ipairs(item_rows(true)) do
    activities[i] = { plugin = row.plugin, activity_id = row.activity_id, kind = row.kind, item = row.id,
                      withdrawn = row.withdrawn == 1 }
  end
  return { name = name, title = c.title, activities = tp.json.array(activities) }
end

return {
  name = P,
  version = "script-" .. tp.crypto.sha256(source):sub(1, 12),
  description = c.title or name,
  exports = exports,
  migrations = {
    "CREATE TABLE " .. ITEMS .. [[ (ref TEXT PRIMARY KEY, item_id TEXT NOT NULL, kind TEXT NOT NULL,
      plugin TEXT NOT NULL, activity_id INTEGER NOT NULL, summary TEXT NOT NULL, opens_at INTEGER,
      closes_at INTEGER, withdrawn INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL)]],
    "CREATE TABLE " .. STEPS .. " (key TEXT PRIMARY KEY, done_at INTEGER NOT NULL, outcome TEXT NOT NULL)",
    "CREATE TABLE " .. TIMELINE .. [[ (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, local_time TEXT NOT NULL,
      what TEXT NOT NULL)]],
  },
  setup = setup,
  jobs = { start = start_job, ["end"] = end_job, drop = drop_job },
  subscribe = subscribe,
  routes = {
    { method = "GET", path = "/campaigns/" .. name, auth = "none", handler = function() return 200, view(false) end,
      summary = "Campaign " .. name .. ": its window, state and activities", response = CAMPAIGN_DOC },
    { method = "GET", path = "/campaigns/" .. name, auth = "admin", handler = function() return 200, view(true) end,
      summary = "Campaign " .. name .. " for operators: also its timeline, steps done and hooks",
      response = CAMPAIGN_DOC },
  },
}
