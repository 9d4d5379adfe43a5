---@diagnostic disable: undefined-global
-- friend_assist/lib/merge.lua: merging members (README "Merging members").
-- When the members plugin proves that two member ids are one person it calls
-- member_merge(from, into, merge_id) inside its own transaction, and
-- member_unmerge with the same arguments when an operator undoes a merge made
-- by hand. Afterwards the plugin behaves as if `into` had done everything
-- `from` did, so no per-user rule can be had twice:
--
--   drives    from's drives are into's, with their progress and rewards. A
--             drive's seq is UNIQUE per (campaign, initiator): from's drives
--             are numbered after into's in each campaign. drives_per_user
--             counts the person's drives of both ids.
--   assists   from's assists are into's: she cannot assist again a drive she
--             assisted under either id, nor her own drives. When both ids
--             assisted the same drive, the survivor's assist stays and from's
--             is set aside; the drive keeps its count. A merge never takes
--             progress or a reward back: an assist one id gave the other's
--             drive stays counted.
--   counters  the per-friend campaign counter (assists_per_friend) and the
--             per-day counter (friend_once_per_day) are summed, so the person
--             has used what both ids used.
--
-- Every change is recorded in friend_assist_merge_moves so member_unmerge
-- moves back exactly that: rows that no longer belong to `into` are skipped,
-- counters give back what was folded (never below zero), and what `into` did
-- after the merge stays hers.

local tpmerge = require("tp.merge")

local merge = {}

-- ---- drives and rewards

---from's drives become into's, numbered after into's in each campaign.
local function merge_drives(merge_id, from, into)
  -- amount: how far the drive's seq moved (into's highest seq in its campaign)
  tp.db.exec([[INSERT INTO friend_assist_merge_moves (merge_id, kind, row_id, amount)
    SELECT ?1, 'drive', d.id, (SELECT coalesce(max(i.seq), 0) FROM friend_assist_drives i
                               WHERE i.campaign_id = d.campaign_id AND i.initiator = ?3)
    FROM friend_assist_drives d WHERE d.initiator = ?2]], merge_id, from, into)
  return tp.db.exec([[UPDATE friend_assist_drives AS d SET initiator = ?3, seq = d.seq + m.amount
    FROM friend_assist_merge_moves m
    WHERE m.merge_id = ?1 AND m.kind = 'drive' AND m.row_id = d.id AND d.initiator = ?2]], merge_id, from, into)
end

local function unmerge_drives(merge_id, from, into)
  return tp.db.exec([[UPDATE friend_assist_drives AS d SET initiator = ?3, seq = d.seq - m.amount
    FROM friend_assist_merge_moves m
    WHERE m.merge_id = ?1 AND m.kind = 'drive' AND m.row_id = d.id AND d.initiator = ?2]], merge_id, into, from)
end

local function merge_rewards(merge_id, from, into)
  tp.db.exec([[INSERT INTO friend_assist_merge_moves (merge_id, kind, row_id)
    SELECT ?1, 'reward', drive_id FROM friend_assist_rewards WHERE user = ?2]], merge_id, from)
  return tp.db.exec("UPDATE friend_assist_rewards SET user = ? WHERE user = ?", into, from)
end

local function unmerge_rewards(merge_id, from, into)
  return tp.db.exec([[UPDATE friend_assist_rewards SET user = ?3 WHERE user = ?2 AND drive_id IN
    (SELECT row_id FROM friend_assist_merge_moves WHERE merge_id = ?1 AND kind = 'reward')]], merge_id, into, from)
end

-- ---- assists

---from's assists become into's; one both gave to the same drive is set aside.
local function merge_assists(merge_id, from, into)
  tp.db.exec([[INSERT INTO friend_assist_merge_moves (merge_id, kind, row_id, data)
    SELECT ?1, 'assist_set_aside', a.id, json_object('drive_id', a.drive_id, 'campaign_id', a.campaign_id,
      'day', a.day, 'assisted_at', a.assisted_at)
    FROM friend_assist_assists a WHERE a.friend = ?2
      AND EXISTS (SELECT 1 FROM friend_assist_assists b WHERE b.drive_id = a.drive_id AND b.friend = ?3)]],
    merge_id, from, into)
  tp.db.exec([[DELETE FROM friend_assist_assists WHERE id IN
    (SELECT row_id FROM friend_assist_merge_moves WHERE merge_id = ? AND kind = 'assist_set_aside')]], merge_id)
  tp.db.exec([[INSERT INTO friend_assist_merge_moves (merge_id, kind, row_id)
    SELECT ?1, 'assist', id FROM friend_assist_assists WHERE friend = ?2]], merge_id, from)
  return tp.db.exec("UPDATE friend_assist_assists SET friend = ? WHERE friend = ?", into, from)
end

local function unmerge_assists(merge_id, from, into)
  local n = tp.db.exec([[UPDATE friend_assist_assists SET friend = ?3 WHERE friend = ?2 AND id IN
    (SELECT row_id FROM friend_assist_merge_moves WHERE merge_id = ?1 AND kind = 'assist')]], merge_id, into, from)
  return n + tp.db.exec([[INSERT INTO friend_assist_assists (id, drive_id, campaign_id, friend, day, assisted_at)
    SELECT row_id, json_extract(data, '$.drive_id'), json_extract(data, '$.campaign_id'), ?2,
      json_extract(data, '$.day'), json_extract(data, '$.assisted_at')
    FROM friend_assist_merge_moves WHERE merge_id = ?1 AND kind = 'assist_set_aside'
    ON CONFLICT DO NOTHING]], merge_id, from)
end

-- ---- counters: (campaign, friend) and (campaign, friend, day), summed

---Adds from's per-campaign and per-day counters to into's; returns how many
---counters were folded.
local function merge_counters(merge_id, from, into)
  -- data 'new': into had no counter there (undo removes the one the merge made)
  tp.db.exec([[INSERT INTO friend_assist_merge_moves (merge_id, kind, row_id, day, amount, data)
    SELECT ?1, 'friends', f.campaign_id, '', f.assists,
      CASE WHEN EXISTS (SELECT 1 FROM friend_assist_friends i WHERE i.campaign_id = f.campaign_id
                        AND i.friend = ?3) THEN 'added' ELSE 'new' END
    FROM friend_assist_friends f WHERE f.friend = ?2]], merge_id, from, into)
  tp.db.exec([[INSERT INTO friend_assist_merge_moves (merge_id, kind, row_id, day, amount, data)
    SELECT ?1, 'daily', f.campaign_id, f.day, f.assists,
      CASE WHEN EXISTS (SELECT 1 FROM friend_assist_daily i WHERE i.campaign_id = f.campaign_id
                        AND i.friend = ?3 AND i.day = f.day) THEN 'added' ELSE 'new' END
    FROM friend_assist_daily f WHERE f.friend = ?2]], merge_id, from, into)
  tp.db.exec([[INSERT INTO friend_assist_friends (campaign_id, friend, assists)
    SELECT campaign_id, ?2, assists FROM friend_assist_friends WHERE friend = ?1
    ON CONFLICT (campaign_id, friend) DO UPDATE SET assists = assists + excluded.assists]], from, into)
  tp.db.exec([[INSERT INTO friend_assist_daily (campaign_id, friend, day, assists)
    SELECT campaign_id, ?2, day, assists FROM friend_assist_daily WHERE friend = ?1
    ON CONFLICT (campaign_id, friend, day) DO UPDATE SET assists = assists + excluded.assists]], from, into)
  return tp.db.exec("DELETE FROM friend_assist_friends WHERE friend = ?", from)
    + tp.db.exec("DELETE FROM friend_assist_daily WHERE friend = ?", from)
end

---Takes back from into's counters what was folded (a counter that would reach
---zero or below goes: the tables keep only counts >= 1) and gives it to from.
local function unmerge_counters(merge_id, from, into)
  tp.db.exec([[DELETE FROM friend_assist_friends AS c WHERE c.friend = ?2 AND c.assists <=
    (SELECT m.amount FROM friend_assist_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'friends'
       AND m.row_id = c.campaign_id)]], merge_id, into)
  tp.db.exec([[UPDATE friend_assist_friends AS c SET assists = c.assists - m.amount
    FROM friend_assist_merge_moves m
    WHERE m.merge_id = ?1 AND m.kind = 'friends' AND m.row_id = c.campaign_id AND c.friend = ?2]], merge_id, into)
  tp.db.exec([[DELETE FROM friend_assist_daily AS c WHERE c.friend = ?2 AND c.assists <=
    (SELECT m.amount FROM friend_assist_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'daily'
       AND m.row_id = c.campaign_id AND m.day = c.day)]], merge_id, into)
  tp.db.exec([[UPDATE friend_assist_daily AS c SET assists = c.assists - m.amount
    FROM friend_assist_merge_moves m
    WHERE m.merge_id = ?1 AND m.kind = 'daily' AND m.row_id = c.campaign_id AND m.day = c.day
      AND c.friend = ?2]], merge_id, into)
  return tp.db.exec([[INSERT INTO friend_assist_friends (campaign_id, friend, assists)
      SELECT row_id, ?2, amount FROM friend_assist_merge_moves WHERE merge_id = ?1 AND kind = 'friends'
      ON CONFLICT (campaign_id, friend) DO UPDATE SET assists = assists + excluded.assists]], merge_id, from)
    + tp.db.exec([[INSERT INTO friend_assist_daily (campaign_id, friend, day, assists)
      SELECT row_id, ?2, day, amount FROM friend_assist_merge_moves WHERE merge_id = ?1 AND kind = 'daily'
      ON CONFLICT (campaign_id, friend, day) DO UPDATE SET assists = assists + excluded.assists]], merge_id, from)
end

-- ---- the exports

---@class FriendAssistMoved
---@field drives integer drives that changed initiator
---@field assists integer assists that changed friend (plus, on undo, those put back)
---@field rewards integer
---@field counters integer per-campaign and per-day counters folded

local NOTHING = { drives = 0, assists = 0, rewards = 0, counters = 0 }

---Merges member `from` into `into`; see the top of this file.
---@param from string the younger member id, merged away
---@param into string the surviving member id
---@param merge_id integer unique per merge
---@return FriendAssistMoved moved
function merge.merge(from, into, merge_id)
  if not tpmerge.begin("friend_assist_merges", from, into, merge_id) then return NOTHING end
  return { drives = merge_drives(merge_id, from, into), assists = merge_assists(merge_id, from, into),
           rewards = merge_rewards(merge_id, from, into), counters = merge_counters(merge_id, from, into) }
end

---Undoes merge merge_id (see the top of this file) and forgets it; an unknown
---merge_id does nothing.
---@param from string
---@param into string
---@param merge_id integer
---@return FriendAssistMoved moved back
function merge.unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("friend_assist_merges", from, into, merge_id) then return NOTHING end
  local moved = { counters = unmerge_counters(merge_id, from, into),
                  assists = unmerge_assists(merge_id, from, into),
                  rewards = unmerge_rewards(merge_id, from, into),
                  drives = unmerge_drives(merge_id, from, into) }
  tp.db.exec("DELETE FROM friend_assist_merge_moves WHERE merge_id = ?", merge_id)
  return moved
end

return merge
