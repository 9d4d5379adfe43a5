---@diagnostic disable: undefined-global
-- coupons/lib/drops.lua: a coupon drop to every member of a segment (a
-- campaign's coupon_drop { segment = "name" }), up to a million members.
--
-- A drop is a row (coupons_drops) and a job (drop_slice) that walks the
-- segment's snapshot, taken by the members plugin when the drop starts (so a
-- retry, a crash or a member's later change never changes who gets a coupon),
-- in member-number order, SLICE members per run (snapshot_page). Each run is its own transaction: it issues to its
-- slice, moves the counters and the cursor and schedules the next run, or
-- none of it happens. A member gets exactly one coupon of a drop across
-- crashes, retries and kill -9 because each coupon carries its drop
-- (coupons_coupons.drop_id, with issued_for = the drop's ref) under a UNIQUE
-- (drop_id, user): a slice run again, or walked again after a resume, finds
-- the coupon and moves on. Members at per_user_limit are skipped, once each
-- (coupons_drop_skips), and counted.
--
-- A drop stops, keeping what it gave and saying why, when the template's
-- quantity runs out before every member was reached (sold_out), when the
-- template is paused or expired (the campaign item was withdrawn), or when
-- the segment is deleted (segment_not_found). POST /coupons/drops/{id}/resume
-- continues it from where it stopped (after raising total_quantity, say).

local check = require("tp.check")
local issue = require("lib.issue")
local audience = require("lib.audience")

local drops = {}

drops.SLICE = 200      -- members per run: a few ms, so requests wait little behind a drop
drops.JOB = "drop_slice"

---@class CouponDrop  a segment drop as the admin API shows it
---@field id integer
---@field ref string what it is for (a campaign item's ref); each coupon's issued_for
---@field template_id integer
---@field segment string the members plugin's segment
---@field state "running"|"done"|"stopped"
---@field members_at_start integer the segment's size when the drop began
---@field issued integer coupons given
---@field skipped integer members already at per_user_limit, given none
---@field reached integer issued + skipped: members the drop has dealt with
---@field runs integer slices run
---@field stop {reason: string, message: string}? why a stopped drop stopped
---@field started_at integer
---@field updated_at integer
---@field finished_at integer? when it was done or stopped

local COLUMNS = [[id, ref, template_id, segment, state, cursor, issued, skipped, runs,
  members_at_start, stop_reason, stop_message, started_at, updated_at, finished_at, snapshot_id]]

local ROW_SQL = "SELECT " .. COLUMNS .. " FROM coupons_drops WHERE id = ?"

local function row(id)
  return tp.db.one(ROW_SQL, id)
end

---The admin shape of a drop row.
---@return CouponDrop
local function shape(d)
  return {
    id = d.id, ref = d.ref, template_id = d.template_id, segment = d.segment, state = d.state,
    members_at_start = d.members_at_start, issued = d.issued, skipped = d.skipped,
    reached = d.issued + d.skipped, runs = d.runs,
    stop = d.stop_reason and { reason = d.stop_reason, message = d.stop_message } or nil,
    started_at = d.started_at, updated_at = d.updated_at, finished_at = d.finished_at,
  }
end

local function schedule(id, after)
  tp.jobs.schedule(drops.JOB, { drop_id = id }, { after = after or 0, key = "drop:" .. id })
end

---Ends drop d: done, or stopped with a reason (the cursor stays where it is).
local function finish(d, state, reason, message)
  local now = tp.now()
  tp.db.exec([[UPDATE coupons_drops SET state = ?, stop_reason = ?, stop_message = ?, updated_at = ?,
    finished_at = ? WHERE id = ?]], state, reason, message, now, now, d.id)
end

-- ---- starting a drop

local START_SQL = "SELECT " .. COLUMNS .. " FROM coupons_drops WHERE ref = ?"

---exports.drop(template_id, segment, ref) -> CouponDrop: issues one coupon of
---template_id to every member of segment, in the background, a slice per
---job run. ref (a campaign item's ref) names the drop: a second call with
---the same ref starts nothing and answers the drop as it is (409
---drop_ref_taken if it named another template or segment). 404
---template_not_found, segment_not_found (details.field = "segment"); 400
---invalid_field for a malformed argument or when the members plugin is not
---enabled. The claim window, the daily limit and the audience do not apply.
---@param template_id integer
---@param segment string
---@param ref string
---@return CouponDrop
function drops.start(template_id, segment, ref)
  check.integer(template_id, "template_id", 1)
  check.campaign_ref(ref, "ref")
  local existing = tp.db.one(START_SQL, ref)
  if existing then
    if existing.template_id ~= template_id or existing.segment ~= segment then
      tp.fail(409, "drop_ref_taken", ("drop %s was started for template %d and segment '%s'")
        :format(ref, existing.template_id, existing.segment), { ref = ref, drop_id = existing.id })
    end
    return shape(existing)
  end
  if not tp.db.one("SELECT 1 AS x FROM coupons_templates WHERE id = ?", template_id) then
    tp.fail(404, "template_not_found", "no such coupon template", { template_id = template_id })
  end
  if type(segment) ~= "string" or #segment > 64 or not segment:match("^[%w_%-]+$") then
    check.field_error("segment", "must be the name of a segment of the members plugin")
  end
  if not audience.members_enabled() then
    check.field_error("segment", "a segment drop needs the members plugin, which is not enabled for this tenant")
  end
  if not tp.call("members", "exists", "segment", segment) then
    tp.fail(404, "segment_not_found", ("no segment '%s' in the members plugin"):format(segment),
      { field = "segment", segment = segment })
  end
  local now = tp.now()
  -- the segment frozen now: who gets a coupon never depends on when a slice runs
  local snap = tp.call("members", "snapshot", segment, ref)
  local d = tp.db.one([[INSERT INTO coupons_drops (ref, template_id, segment, state, members_at_start,
      started_at, updated_at, snapshot_id) VALUES (?, ?, ?, 'running', ?, ?, ?, ?) RETURNING id]],
    ref, template_id, segment, tp.call("members", "count", segment), now, now, snap.id)
  schedule(d.id)
  return shape(row(d.id))
end

-- ---- one slice

---Why template t can give no more coupons now, or nil.
local function template_stop(t, now)
  if not t then return "template_not_found", "the template no longer exists" end
  local reason, message = issue.closed_reason(t, now, false)
  if reason then return reason, message .. ": the drop stopped" end
  return nil
end

---Issues to one page of members. Returns what it did and whether the
---template's quantity ran out before a member who should get one.
---@return integer issued, integer skipped, boolean sold_out
local function issue_page(d, t, members, now)
  local day = issue.local_day(now)
  local remaining = t.total_quantity - t.issued
  local issued, skipped = 0, 0
  for _, user in ipairs(members) do
    local h = issue.holding(t.id, user, day, d.id)
    if h.in_drop == 1 then
      -- reached before: this slice runs again after a resume
    elseif h.n >= t.per_user_limit then
      skipped = skipped + tp.db.exec(
        "INSERT INTO coupons_drop_skips (drop_id, user) VALUES (?, ?) ON CONFLICT DO NOTHING", d.id, user)
    elseif remaining == 0 then
      return issued, skipped, true
    elseif issue.insert_coupon(t, user, "issue", now, day, h, d.ref, d.id) then
      issued, remaining = issued + 1, remaining - 1
    else
      error(("drop %d: the coupon of %s collided with one written meanwhile"):format(d.id, user))
    end
  end
  return issued, skipped, false
end

---The drop_slice job: one run of drop payload.drop_id (see the file's head).
---A run of a drop that is not running (done, stopped, or a stale job) does nothing.
---@param job TpJob
function drops.slice(job)
  local d = row(job.payload.drop_id)
  if not d or d.state ~= "running" then return end
  local now = tp.now()
  local t = tp.db.one([[SELECT id, status, total_quantity, issued, valid_from, valid_until, valid_days,
    per_user_limit FROM coupons_templates WHERE id = ?]], d.template_id)
  local reason, message = template_stop(t, now)
  if reason then return finish(d, "stopped", reason, message) end

  local ok, page
  if d.snapshot_id then
    ok, page = pcall(tp.call, "members", "snapshot_page", d.snapshot_id, d.cursor, drops.SLICE)
  else  -- a drop started before 1.4.0 walks the segment as it is
    ok, page = pcall(tp.call, "members", "page", d.segment, d.cursor, drops.SLICE)
  end
  if not ok then
    if type(page) == "table" and page.code == "segment_not_found" then
      return finish(d, "stopped", "segment_not_found",
        ("the segment '%s' was deleted: the drop stopped"):format(d.segment))
    elseif type(page) == "table" and page.code == "snapshot_not_found" then
      return finish(d, "stopped", "snapshot_expired",
        "the segment's snapshot was deleted (they are kept 30 days): start a new drop")
    end
    error(page, 0)  -- the members plugin is reloading or gone: the job retries
  end
  if page.ready == false then return schedule(d.id, 0.2) end  -- the snapshot is still being taken

  local issued, skipped, sold_out = issue_page(d, t, page.members, now)
  if issued > 0 then
    local changed = tp.db.exec([[UPDATE coupons_templates SET issued = issued + ?1
      WHERE id = ?2 AND issued + ?1 <= total_quantity]], issued, t.id)
    if changed ~= 1 then error(("drop %d: the template's counter moved meanwhile"):format(d.id)) end
  end
  -- the cursor moves past a whole page only: a stop inside one walks it again on resume
  local cursor = (not sold_out and page.next) or d.cursor
  tp.db.exec([[UPDATE coupons_drops SET issued = issued + ?, skipped = skipped + ?, runs = runs + 1,
    cursor = ?, updated_at = ? WHERE id = ?]], issued, skipped, cursor, now, d.id)
  if sold_out then
    local left = tp.db.one("SELECT issued + skipped AS reached FROM coupons_drops WHERE id = ?", d.id)
    return finish(d, "stopped", "sold_out",
      ("the template's %d coupons ran out after %d members were reached: raise total_quantity and "
        .. "resume the drop to reach the rest"):format(t.total_quantity, left.reached))
  end
  if page.next then
    schedule(d.id)
  else
    finish(d, "done", nil, nil)
  end
end

-- ---- admin routes

---POST /coupons/templates/{id}/drops {segment, ref?} (admin): an operator's
---定向发券 to a segment, without a campaign. ref names the drop (default
---"admin/<template>/<segment>"): a retry answers the same drop, and a second
---drop of the template to the segment needs a ref of its own.
function drops.start_route(req)
  local body = check.body(req.body, true)
  check.only(body, { segment = true, ref = true })
  if type(body.segment) ~= "string" then check.field_error("segment", "must be the name of a segment") end
  local ref = body.ref ~= nil and check.campaign_ref(body.ref, "ref")
    or ("admin/%d/%s"):format(req.params.id, body.segment:lower())
  local existed = tp.db.one("SELECT 1 AS x FROM coupons_drops WHERE ref = ?", ref)
  local d = drops.start(req.params.id, body.segment, ref)
  return existed and 200 or 202, d
end

---GET /coupons/drops/{id} (admin)
function drops.get(req)
  local d = row(req.params.id)
  if not d then tp.fail(404, "drop_not_found", "no such coupon drop") end
  return 200, shape(d)
end

local LIST_SQL = "SELECT " .. COLUMNS .. [[ FROM coupons_drops
    WHERE id > :after AND (:tid IS NULL OR template_id = :tid) ORDER BY id LIMIT :limit]]

---GET /coupons/drops?template_id=&limit=&after= (admin): drops, oldest first
function drops.list(req)
  local limit, after = check.page(req.query, 50, 200)
  local tid = req.query.template_id and math.tointeger(tonumber(req.query.template_id))
  if req.query.template_id and not tid then
    tp.fail(400, "invalid_query", "template_id must be a template id")
  end
  local rows = tp.db.query(LIST_SQL, { after = after or 0, tid = tid, limit = limit })
  local items = tp.json.array()
  for i, d in ipairs(rows) do items[i] = shape(d) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

---POST /coupons/drops/{id}/resume (admin): a stopped drop runs on from where
---it stopped; the members it reached keep what they got and get no second
---coupon. 409 drop_not_stopped for a drop that runs or is done.
function drops.resume(req)
  local now = tp.now()
  local changed = tp.db.exec([[UPDATE coupons_drops SET state = 'running', stop_reason = NULL,
    stop_message = NULL, finished_at = NULL, updated_at = ? WHERE id = ? AND state = 'stopped']],
    now, req.params.id)
  if changed == 0 then
    local d = row(req.params.id)
    if not d then tp.fail(404, "drop_not_found", "no such coupon drop") end
    tp.fail(409, "drop_not_stopped", ("drop %d is %s: only a stopped drop resumes"):format(d.id, d.state),
      { state = d.state })
  end
  schedule(req.params.id)
  return 200, shape(row(req.params.id))
end

return drops
