---@diagnostic disable: undefined-global
-- friend_assist/lib/drives.lua: a user's drive (发起助力): starting one with the
-- campaign's rules frozen into it, the public share page, the user's own list,
-- and the expiry job.

local check = require("tp.check")
local campaigns = require("lib.campaigns")
local util = require("lib.util")
local risk = require("tp.risk")

local drives = {}

local COLUMNS = [[id, campaign_id, share_id, initiator, seq, rules, friends_needed, assists, state,
  started_at, expires_at, completed_at, closed_at]]

---The rules a drive keeps for its whole life, whatever the operator changes later.
---@param c FriendAssistCampaign
---@return table
local function freeze(c)
  return { friends_needed = c.friends_needed, drive_seconds = c.drive_seconds,
    assists_per_friend = c.assists_per_friend, new_users_only = c.new_users_only,
    friend_once_per_day = c.friend_once_per_day, ends_at = c.ends_at, reward = c.reward }
end

-- statements built once: one made at every call is a new long string, which
-- Lua hashes and compares in full to find its prepared statement
local BY_SHARE_ID_SQL = "SELECT " .. COLUMNS .. " FROM friend_assist_drives WHERE share_id = ?"
local OPEN_SQL = "SELECT " .. COLUMNS .. [[ FROM friend_assist_drives
    WHERE campaign_id = ? AND initiator = ? AND state = 'open' AND expires_at > ?]]
local MINE_SQL = "SELECT " .. COLUMNS .. [[ FROM friend_assist_drives
    WHERE initiator = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?]]

---A drive row by share id (with its rules decoded), or nil.
---@param share_id string
---@return table|nil
function drives.by_share_id(share_id)
  local d = tp.db.one(BY_SHARE_ID_SQL, share_id)
  if d then d.rules = tp.json.decode(d.rules) end
  return d
end

---The state a reader should see: an open drive past its deadline is expired
---even before the expiry job has run.
local function effective_state(d, now)
  if d.state == "open" and now >= d.expires_at then return "expired" end
  return d.state
end

---The drive as anyone holding the share link sees it (assisters masked).
---@param d table a drive row with decoded rules
---@param viewer string|nil the caller's user id, if any
---@return table
function drives.public_view(d, viewer)
  local now = tp.now()
  local state = effective_state(d, now)
  local c = tp.db.one("SELECT name FROM friend_assist_campaigns WHERE id = ?", d.campaign_id)
  local assisters = tp.json.array()
  local mine = false
  for _, a in ipairs(tp.db.query([[SELECT friend, assisted_at FROM friend_assist_assists
      WHERE drive_id = ? ORDER BY id]], d.id)) do
    assisters[#assisters + 1] = { user = util.mask(a.friend), assisted_at = a.assisted_at }
    if a.friend == viewer then mine = true end
  end
  local view = {
    share_id = d.share_id, campaign_id = d.campaign_id, campaign_name = c and c.name,
    initiator = util.mask(d.initiator), state = state,
    friends_needed = d.friends_needed, assists = d.assists,
    remaining = d.friends_needed - d.assists,
    started_at = d.started_at, expires_at = d.expires_at,
    seconds_left = state == "open" and d.expires_at - now or 0,
    completed_at = d.completed_at, assisters = assisters,
    reward = { kind = d.rules.reward.kind },
  }
  if viewer then view.you = { initiator = viewer == d.initiator, assisted = mine } end
  return view
end

---The drive as its initiator sees it: the public view plus the full reward and
---what was granted.
---@param d table
---@return table
function drives.owner_view(d)
  local view = drives.public_view(d, d.initiator)
  view.initiator = d.initiator
  view.reward = d.rules.reward
  view.rules = d.rules
  local granted = tp.db.one([[SELECT kind, coupon_id, code, points, granted_at FROM friend_assist_rewards
    WHERE drive_id = ?]], d.id)
  view.granted = granted
  return view
end

---Refuses a start outside the campaign (409), else returns nothing.
local function check_open(c, now)
  if c.status ~= "active" then tp.fail(409, "campaign_paused", "this campaign is paused") end
  if now < c.starts_at then
    tp.fail(409, "campaign_not_started", "this campaign has not started yet", { starts_at = c.starts_at })
  end
  if now >= c.ends_at then
    tp.fail(409, "campaign_ended", "this campaign has ended", { ends_at = c.ends_at })
  end
end

local START_SQL = "SELECT " .. COLUMNS .. " FROM friend_assist_drives WHERE id = ?"

---POST /friend_assist/campaigns/{id}/drives (user) -> 201 drive (200: the
---caller's drive that is still open, so a double tap does not spend a start).
function drives.start(req)
  local user, now = req.user, tp.now()
  local c = campaigns.load(req.params.id)
  if not c then tp.fail(404, "campaign_not_found", "no such friend-assist campaign") end
  check_open(c, now)
  risk.check(req, "join", { plugin = "friend_assist", id = c.id })

  local open = tp.db.one(OPEN_SQL, c.id, user, now)
  if open then
    open.rules = tp.json.decode(open.rules)
    return 200, drives.owner_view(open)
  end

  local mine = tp.db.one([[SELECT count(*) AS n, coalesce(max(seq), 0) AS last FROM friend_assist_drives
    WHERE campaign_id = ? AND initiator = ?]], c.id, user)
  local started = mine.n
  if started >= c.drives_per_user then
    tp.fail(409, "drive_limit_reached", ("at most %d drives per user in this campaign"):format(c.drives_per_user),
      { drives_per_user = c.drives_per_user })
  end
  local expires_at = math.min(now + c.drive_seconds, c.ends_at)
  -- seq is UNIQUE per (campaign, initiator): two racing starts cannot both take the last one.
  -- The next after the highest, not count + 1: an undone member merge can leave a gap
  local row = tp.db.one([[INSERT INTO friend_assist_drives (campaign_id, share_id, initiator, seq,
      rules, friends_needed, assists, state, started_at, expires_at)
    VALUES (?, ?, ?, ?, ?, ?, 0, 'open', ?, ?)
    ON CONFLICT (campaign_id, initiator, seq) DO NOTHING RETURNING id]],
    c.id, util.new_share_id(c.id .. ":" .. user .. ":" .. started), user, mine.last + 1,
    tp.json.encode(freeze(c)), c.friends_needed, now, expires_at)
  if not row then
    tp.fail(409, "drive_limit_reached", "another start of yours took this drive; reload your drives")
  end
  tp.jobs.schedule("expire", { drive_id = row.id }, { at = expires_at, key = drives.job_key(row.id) })
  local d = tp.db.one(START_SQL, row.id)
  d.rules = tp.json.decode(d.rules)
  return 201, drives.owner_view(d)
end

---The expiry job's key for drive id (cancelled when the drive completes).
function drives.job_key(id) return "drive:" .. id end

---GET /friend_assist/drives/{share_id} (auth optional): the share page.
function drives.show(req)
  local d = drives.by_share_id(req.params.share_id)
  if not d then tp.fail(404, "drive_not_found", "no such drive; check the share link") end
  if req.user == d.initiator then return 200, drives.owner_view(d) end
  return 200, drives.public_view(d, req.user)
end

---GET /friend_assist/me/drives?limit=&after= (user): the caller's drives, newest first.
function drives.mine(req)
  local limit, after = check.page(req.query, 50, 200)
  local rows = tp.db.query(MINE_SQL, req.user, after, after, limit)
  local items = tp.json.array()
  for _, d in ipairs(rows) do
    d.rules = tp.json.decode(d.rules)
    items[#items + 1] = drives.owner_view(d)
  end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

---The event data friend_assist.completed and friend_assist.expired carry.
---@param d table drive row (rules decoded)
---@return table
function drives.event_data(d)
  return { drive_id = d.id, share_id = d.share_id, campaign_id = d.campaign_id,
    initiator = d.initiator, friends_needed = d.friends_needed, assists = d.assists }
end

local EXPIRE_SQL = [[UPDATE friend_assist_drives SET state = 'expired', closed_at = ?1
    WHERE id = ?2 AND state = 'open' AND expires_at <= ?1
    RETURNING ]] .. COLUMNS

---Job expire {drive_id}: closes the drive if it is still open at its deadline.
---Conditional on state = 'open', so a completed drive or a second run changes nothing.
---@param job TpJob
function drives.expire(job)
  local now = tp.now()
  local d = tp.db.one(EXPIRE_SQL, now, job.payload.drive_id)
  if not d then return end
  local data = drives.event_data(d)
  data.expired_at = now
  tp.events.emit("friend_assist.expired", data)
end

return drives
