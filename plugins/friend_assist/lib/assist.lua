---@diagnostic disable: undefined-global
-- friend_assist/lib/assist.lua: a friend's assist (助力), and the reward when
-- the N-th one lands.
--
-- Every guard is a conditional statement, so the counts hold on any store:
--   * (drive, friend) is UNIQUE in friend_assist_assists: one assist per friend per drive;
--   * the per-friend campaign counter moves only while assists < K;
--   * with friend_once_per_day, (campaign, friend, day) admits one assist;
--   * the drive moves with UPDATE ... WHERE state = 'open' AND assists < N AND not expired,
--     and only the update that makes assists = N completes it;
--   * the reward row is keyed by drive, so the grant happens once even if that
--     were ever reached twice.
-- A refusal is a tp.fail, which rolls back whatever the earlier guards wrote.

local customer = require("tp.customer")
local drives = require("lib.drives")
local risk = require("tp.risk")
local peers = require("lib.peers")
local util = require("lib.util")

local assist = {}

local function refuse(code, message, details)
  tp.fail(409, code, message, details)
end

---Refusals that need no write: self, state, time, a repeat on this drive, new users.
local function check_allowed(d, friend, now)
  if friend == d.initiator then refuse("self_assist", "you cannot assist your own drive") end
  if d.state == "completed" then refuse("drive_completed", "this drive has already reached its goal") end
  if d.state == "expired" or now >= d.expires_at then
    if now >= d.rules.ends_at then
      refuse("campaign_ended", "this campaign has ended", { ends_at = d.rules.ends_at })
    end
    refuse("drive_expired", "this drive's time is up", { expires_at = d.expires_at })
  end
  if tp.db.one("SELECT 1 AS x FROM friend_assist_assists WHERE drive_id = ? AND friend = ?", d.id, friend) then
    refuse("already_assisted", "you have already assisted this drive")
  end
  if d.rules.new_users_only and not customer.is_new(friend) then
    refuse("new_users_only", "only users who have not bought here yet can assist this drive")
  end
end

---Counts the assist against the friend's campaign-wide limit K and, with
---friend_once_per_day, against the day. Both conditional; refuses on either.
local function count_friend(d, friend, day)
  local k = d.rules.assists_per_friend
  local counted = tp.db.one([[
    INSERT INTO friend_assist_friends (campaign_id, friend, assists) VALUES (?1, ?2, 1)
    ON CONFLICT (campaign_id, friend) DO UPDATE SET assists = assists + 1 WHERE assists < ?3
    RETURNING assists]], d.campaign_id, friend, k)
  if not counted then
    refuse("assist_limit_reached", ("a friend may assist at most %d times in this campaign"):format(k),
      { assists_per_friend = k })
  end
  -- always recorded; with the rule on, a second row of the day is refused by the WHERE
  local today = tp.db.one([[
    INSERT INTO friend_assist_daily (campaign_id, friend, day, assists) VALUES (?1, ?2, ?3, 1)
    ON CONFLICT (campaign_id, friend, day) DO UPDATE SET assists = assists + 1 WHERE ?4 = 0
    RETURNING assists]], d.campaign_id, friend, day, d.rules.friend_once_per_day and 1 or 0)
  if not today then
    refuse("assisted_today", "you have already assisted a drive of this campaign today; come back tomorrow",
      { day = day })
  end
end

---Grants drive d's reward to its initiator, once: the reward row is keyed by
---drive; only the writer that inserts it issues the coupon.
---@return table reward as granted
local function grant(d, now)
  local r = d.rules.reward
  -- counted, not RETURNING (which costs an ephemeral table)
  local inserted = tp.db.exec([[INSERT INTO friend_assist_rewards (drive_id, user, kind, template_id, code,
      points, granted_at) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (drive_id) DO NOTHING]],
    d.id, d.initiator, r.kind, r.template_id, r.code, r.points, now)
  if inserted ~= 1 then return nil end
  local granted = { kind = r.kind, template_id = r.template_id, code = r.code, points = r.points }
  if r.kind == "coupon" then
    granted.coupon_id = peers.issue_coupon(r.template_id, d.initiator, d.id)
    tp.db.exec("UPDATE friend_assist_rewards SET coupon_id = ? WHERE drive_id = ?", granted.coupon_id, d.id)
  elseif r.kind == "points" then
    peers.credit_points(d.initiator, r.points, d.id)   -- credited when the shop serves the points plugin
  end
  return granted
end

---POST /friend_assist/drives/{share_id}/assists (user) -> 201 {assisted, completed, drive}
function assist.post(req)
  local friend, now = req.user, tp.now()
  local d = drives.by_share_id(req.params.share_id)
  if not d then tp.fail(404, "drive_not_found", "no such drive; check the share link") end
  check_allowed(d, friend, now)
  risk.check(req, "help", { plugin = "friend_assist", id = d.id })
  local day = util.local_day(now)
  count_friend(d, friend, day)

  local inserted = tp.db.exec([[INSERT INTO friend_assist_assists (drive_id, campaign_id, friend, day,
      assisted_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (drive_id, friend) DO NOTHING]], d.id, d.campaign_id, friend, day, now)
  if inserted ~= 1 then refuse("already_assisted", "you have already assisted this drive") end

  -- the guard that makes the reward single: only an update from assists = N-1 completes
  local moved = tp.db.one([[UPDATE friend_assist_drives SET assists = assists + 1,
      state = CASE WHEN assists + 1 = friends_needed THEN 'completed' ELSE state END,
      completed_at = CASE WHEN assists + 1 = friends_needed THEN ?1 ELSE completed_at END
    WHERE id = ?2 AND state = 'open' AND assists < friends_needed AND expires_at > ?1
    RETURNING assists, state]], now, d.id)
  if not moved then refuse("drive_closed", "this drive has just closed") end

  d.assists, d.state = moved.assists, moved.state
  local completed = moved.state == "completed"
  if completed then
    d.completed_at = now
    tp.jobs.cancel(drives.job_key(d.id))
    local granted = grant(d, now)
    if granted then
      local data = drives.event_data(d)
      data.reward = granted
      data.completed_at = now
      tp.events.emit("friend_assist.completed", data)
    end
  end
  return 201, { assisted = true, completed = completed, drive = drives.public_view(d, friend) }
end

return assist
