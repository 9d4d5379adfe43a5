---@diagnostic disable: undefined-global
-- members/lib/snapshots.lua: a segment frozen at a moment, for actions that
-- must not change their minds (a coupon drop to a segment: a retry, a crash or
-- a member's new order must never change who gets one).
--
-- snapshot(segment, key) copies the segment's rule and the highest member
-- number there is, and a job (snapshot_slice) judges the members up to that
-- number SLICE at a time, each slice one transaction, into
-- members_snapshot_members. A million members take a few seconds, during
-- which the host keeps answering; members who join the pool after the
-- snapshot began are not in it, and each member is judged as it is when its
-- slice runs (within those seconds), once. Once ready, snapshot_page(id, after, limit) walks it in
-- member-number order. A member merged since is answered as its survivor
-- (the caller's per-person rule then counts once); one erased since is left
-- out. key (the caller's name for its action) makes snapshot() idempotent.

local segment = require("lib.segment")

local snapshots = {}

local SLICE = 5000     -- member numbers judged per job run
local KEEP_DAYS = 30   -- the nightly job deletes ready snapshots older than this

local function load(id)
  return tp.db.one("SELECT id, key, segment, rule, upto, cursor, state, count FROM members_snapshots WHERE id = ?", id)
end

local function shape(s)
  return { id = s.id, segment = s.segment, state = s.state, count = s.count }
end

local function schedule(id)
  tp.jobs.schedule("snapshot_slice", { id = id }, { after = 0, key = "snapshot:" .. id })
end

---Export snapshot(segment, key) -> {id, segment, state, count}: starts (or,
---for a key seen before, answers) the snapshot of a saved segment. 404
---segment_not_found.
---@param name string
---@param key string
function snapshots.export_start(name, key)
  if type(key) ~= "string" or #key < 1 or #key > 200 then
    error("members.snapshot: key must be a string of 1-200 bytes", 2)
  end
  key = (tp.caller() or "members") .. ":" .. key
  local s = tp.db.one("SELECT id, key, segment, rule, upto, cursor, state, count FROM members_snapshots WHERE key = ?", key)
  if s then return shape(s) end
  local _, row = segment.load(name)
  local upto = tp.db.one("SELECT coalesce(max(n), 0) AS n FROM members_members").n
  local _, id = tp.db.exec([[INSERT INTO members_snapshots (key, segment, rule, upto, cursor, state, count, created_at)
    VALUES (?, ?, ?, ?, 0, 'building', 0, ?)]], key, row.name, row.rule, upto, tp.now())
  schedule(id)
  return shape(load(id))
end

---Job snapshot_slice {id}: judges the next SLICE member numbers.
---@param job TpJob
function snapshots.slice(job)
  local s = load(job.payload.id)
  if not s or s.state ~= "building" then return end
  local lo, hi = s.cursor, math.min(s.cursor + SLICE, s.upto)
  local c = segment.compile(tp.json.decode(s.rule), "rule")
  local p = c.params
  p.id, p.lo, p.hi = s.id, lo, hi
  local added = tp.db.exec("INSERT INTO members_snapshot_members (snapshot_id, n) SELECT :id, m.n"
    .. " FROM members_members m WHERE m.n > :lo AND m.n <= :hi AND m.state = 'active' AND " .. c.where
    .. " ORDER BY m.n", p)
  if hi >= s.upto then
    tp.db.exec([[UPDATE members_snapshots SET cursor = ?, count = count + ?, state = 'ready', ready_at = ?
      WHERE id = ?]], hi, added, tp.now(), s.id)
  else
    tp.db.exec("UPDATE members_snapshots SET cursor = ?, count = count + ? WHERE id = ?", hi, added, s.id)
    schedule(s.id)
  end
end

---Export snapshot_page(id, after, limit) -> {ready = false} while it builds,
---else {ready = true, members = {id...}, numbers = {n...}, next = n|nil}: up
---to limit (at most 5,000) of its members after number after.
function snapshots.export_page(id, after, limit)
  local s = load(math.tointeger(id) or 0)
  if not s then tp.fail(404, "snapshot_not_found", "no such snapshot") end
  if s.state ~= "ready" then return { ready = false } end
  limit = math.min(math.tointeger(limit) or 500, 5000)
  local rows = tp.db.query([[SELECT s.n, m.state, CASE WHEN m.state = 'merged' THEN sv.id ELSE m.id END AS id
    FROM members_snapshot_members s JOIN members_members m ON m.n = s.n
    LEFT JOIN members_members sv ON sv.n = m.merged_into
    WHERE s.snapshot_id = ? AND s.n > ? ORDER BY s.n LIMIT ?]], s.id, math.tointeger(after) or 0, limit)
  local ids, ns = {}, {}
  for _, r in ipairs(rows) do
    if r.state ~= "erased" and r.id then
      ids[#ids + 1], ns[#ns + 1] = r.id, r.n
    end
  end
  return { ready = true, members = ids, numbers = ns, next = #rows == limit and rows[#rows].n or nil }
end

---Deletes ready snapshots older than KEEP_DAYS (the nightly job).
function snapshots.purge()
  local old = tp.db.query("SELECT id FROM members_snapshots WHERE state = 'ready' AND created_at < ?",
    tp.now() - KEEP_DAYS * 86400)
  for _, s in ipairs(old) do
    tp.db.exec("DELETE FROM members_snapshot_members WHERE snapshot_id = ?", s.id)
    tp.db.exec("DELETE FROM members_snapshots WHERE id = ?", s.id)
  end
end

return snapshots
