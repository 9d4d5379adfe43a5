---@diagnostic disable: undefined-global
-- friend_assist (好友助力): a user starts a drive and shares it; when N different
-- friends have assisted before the drive's deadline, the user gets the reward
-- (a coupon through the coupons plugin, a reward code, or points), exactly once.
--
-- Admin routes (/admin/{tenant}, X-Api-Key):
--   POST  /friend_assist/campaigns                 create          -> 201 Campaign
--   GET   /friend_assist/campaigns?status=&limit=&after=          -> {items, next_after}
--   GET   /friend_assist/campaigns/{id}                           -> Campaign with drive counts
--   PATCH /friend_assist/campaigns/{id}            any field; started drives keep their rules
-- User routes (/v1/{tenant}):
--   POST  /friend_assist/campaigns/{id}/drives     start a drive   -> 201 Drive (200: the open one)
--   GET   /friend_assist/drives/{share_id}         share page (auth optional)
--   POST  /friend_assist/drives/{share_id}/assists assist          -> 201
--   GET   /friend_assist/me/drives                 my drives with what they granted
-- Job: expire {drive_id}, keyed drive:<id>, at the drive's deadline.
-- Events: friend_assist.completed, friend_assist.expired.
-- Exports: campaign_apply, campaign_withdraw (a campaign script's items);
-- member_merge, member_unmerge (the members plugin: lib/merge.lua).
-- Logic lives in lib/: campaigns (operator), drives (start, views, expiry),
-- assist (guards and reward), peers (orders and coupons), campaign_script
-- (the exports), util.

local campaigns = require("lib.campaigns")
local drives = require("lib.drives")
local assist = require("lib.assist")
local campaign_script = require("lib.campaign_script")
local merge = require("lib.merge")
local schema = require("tp.schema")

---The members plugin merges member `from` into `into` (one person): her drives,
---assists, rewards and counters become `into`'s; see lib/merge.lua.
---@param from string
---@param into string
---@param merge_id integer
---@return FriendAssistMoved moved
local function member_merge(from, into, merge_id)
  return merge.merge(from, into, merge_id)
end

---Undoes merge merge_id: exactly what it moved goes back to `from`.
---@param from string
---@param into string
---@param merge_id integer
---@return FriendAssistMoved moved back
local function member_unmerge(from, into, merge_id)
  return merge.unmerge(from, into, merge_id)
end

-- ---- route docs (OpenAPI)

local CAMPAIGN_BODY = campaigns.FIELDS:body()
local CAMPAIGN_PATCH = campaigns.FIELDS:body(true)

local CAMPAIGN = { type = "object", description = "a friend-assist campaign", properties = {
  id = { type = "integer" }, created_at = { type = "integer" }, updated_at = { type = "integer" },
  drives = { type = "object", properties = { open = { type = "integer" },
    completed = { type = "integer" }, expired = { type = "integer" } } },
} }
for field, prop in pairs(CAMPAIGN_BODY.properties) do CAMPAIGN.properties[field] = prop end

local DRIVE = { type = "object", description = "a drive; assisters' ids are masked", properties = {
  share_id = { type = "string" }, campaign_id = { type = "integer" }, campaign_name = { type = "string" },
  initiator = { type = "string", description = "masked except for the initiator" },
  state = { type = "string", enum = { "open", "completed", "expired" } },
  friends_needed = { type = "integer" }, assists = { type = "integer" }, remaining = { type = "integer" },
  started_at = { type = "integer" }, expires_at = { type = "integer" },
  seconds_left = { type = "integer", description = "0 unless open" },
  completed_at = { type = "integer" },
  assisters = { type = "array", items = { type = "object", properties = {
    user = { type = "string" }, assisted_at = { type = "integer" } } } },
  reward = campaigns.REWARD,
  you = { type = "object", description = "with a token", properties = {
    initiator = { type = "boolean" }, assisted = { type = "boolean" } } },
  rules = { type = "object", description = "initiator only: the rules frozen at start" },
  granted = { type = "object", description = "initiator only: the reward given (coupon_id, code or points)" },
} }

local function page_of(item)
  return { type = "object", properties = { items = { type = "array", items = item },
    next_after = { type = "integer", description = "absent on the last page" } } }
end

local PAGE_QUERY = {
  limit = { type = "integer", description = "1-200 (default 50)" },
  after = { type = "integer", description = "next_after of the previous page" },
}

local ROUTES = {
  { method = "POST", path = "/friend_assist/campaigns", auth = "admin", handler = campaigns.create,
    summary = "Create a friend-assist campaign", status = 201,
    description = "Every rule is checked before anything is written (400 invalid_field naming the "
      .. "field). A coupon reward needs the coupons plugin with an issue export (409 "
      .. "coupons_unavailable); new_users_only needs the orders plugin (409 orders_unavailable).",
    body = CAMPAIGN_BODY,
    response = CAMPAIGN },
  { method = "GET", path = "/friend_assist/campaigns", auth = "admin", handler = campaigns.list,
    summary = "Friend-assist campaigns, a page at a time",
    query = { status = { type = "string", description = "active or paused" },
              limit = PAGE_QUERY.limit, after = PAGE_QUERY.after },
    response = page_of(CAMPAIGN) },
  { method = "GET", path = "/friend_assist/campaigns/{id:int}", auth = "admin", handler = campaigns.get,
    summary = "One campaign with its drives counted by state", response = CAMPAIGN },
  { method = "PATCH", path = "/friend_assist/campaigns/{id:int}", auth = "admin", handler = campaigns.update,
    summary = "Change any rule of a campaign; drives already started keep theirs",
    description = "The campaign with the change applied is checked whole, like a create.",
    body = CAMPAIGN_PATCH, response = CAMPAIGN },
  { method = "POST", path = "/friend_assist/campaigns/{id:int}/drives", rate_class = "join", auth = "user", handler = drives.start,
    summary = "Start a drive (发起助力) and get its share id", status = 201,
    description = "200 with the caller's drive when one is still open. 409 campaign_paused, "
      .. "campaign_not_started, campaign_ended or drive_limit_reached.",
    response = DRIVE },
  { method = "GET", path = "/friend_assist/drives/{share_id}", auth = "optional", handler = drives.show,
    summary = "The share page: progress, masked assisters and seconds left",
    description = "With the initiator's token: the full reward, the frozen rules and what was granted.",
    response = DRIVE },
  { method = "POST", path = "/friend_assist/drives/{share_id}/assists", rate_class = "help", auth = "user", handler = assist.post,
    summary = "Assist a friend's drive (助力)", status = 201,
    description = "The N-th assist completes the drive and grants the reward in the same "
      .. "transaction. 409 self_assist, already_assisted, assist_limit_reached, assisted_today, "
      .. "new_users_only, drive_completed, drive_expired, campaign_ended, drive_closed, "
      .. "reward_unavailable.",
    response = { type = "object", properties = { assisted = { type = "boolean" },
      completed = { type = "boolean" }, drive = DRIVE } } },
  { method = "GET", path = "/friend_assist/me/drives", auth = "user", handler = drives.mine,
    summary = "The caller's drives, newest first, with what each granted",
    query = PAGE_QUERY, response = page_of(DRIVE) },
}

return {
  name = "friend_assist",
  version = "0.6.0",
  description = "Friend assist (好友助力): N friends assist a user's drive to unlock a reward",

  -- applied once each, in order; append new ones, never edit a released one
  migrations = {
    [[
    CREATE TABLE friend_assist_campaigns (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('active', 'paused')),
      reward_kind TEXT NOT NULL CHECK (reward_kind IN ('coupon', 'code', 'points')),
      reward_template_id INTEGER,
      reward_code TEXT,
      reward_points INTEGER,
      friends_needed INTEGER NOT NULL CHECK (friends_needed BETWEEN 1 AND 100),
      drive_seconds INTEGER NOT NULL CHECK (drive_seconds >= 1),
      starts_at INTEGER NOT NULL,
      ends_at INTEGER NOT NULL CHECK (ends_at > starts_at),
      drives_per_user INTEGER NOT NULL CHECK (drives_per_user >= 1),
      assists_per_friend INTEGER NOT NULL CHECK (assists_per_friend >= 1),
      new_users_only INTEGER NOT NULL CHECK (new_users_only IN (0, 1)),
      friend_once_per_day INTEGER NOT NULL CHECK (friend_once_per_day IN (0, 1)),
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    -- one row per drive. rules: the campaign's rules as JSON, frozen at start;
    -- friends_needed and expires_at are copies the conditional updates read.
    CREATE TABLE friend_assist_drives (
      id INTEGER PRIMARY KEY,
      campaign_id INTEGER NOT NULL REFERENCES friend_assist_campaigns(id),
      share_id TEXT NOT NULL UNIQUE,
      initiator TEXT NOT NULL,
      seq INTEGER NOT NULL CHECK (seq >= 1),
      rules TEXT NOT NULL,
      friends_needed INTEGER NOT NULL CHECK (friends_needed >= 1),
      assists INTEGER NOT NULL DEFAULT 0 CHECK (assists >= 0 AND assists <= friends_needed),
      state TEXT NOT NULL CHECK (state IN ('open', 'completed', 'expired')),
      started_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      completed_at INTEGER,
      closed_at INTEGER,
      UNIQUE (campaign_id, initiator, seq),
      CHECK ((state = 'completed') = (assists = friends_needed))
    );
    CREATE INDEX friend_assist_drives_initiator ON friend_assist_drives(initiator, id);
    CREATE TABLE friend_assist_assists (
      id INTEGER PRIMARY KEY,
      drive_id INTEGER NOT NULL REFERENCES friend_assist_drives(id),
      campaign_id INTEGER NOT NULL,
      friend TEXT NOT NULL,
      day TEXT NOT NULL,
      assisted_at INTEGER NOT NULL,
      UNIQUE (drive_id, friend)
    );
    -- K: how many assists each friend has given in a campaign
    CREATE TABLE friend_assist_friends (
      campaign_id INTEGER NOT NULL,
      friend TEXT NOT NULL,
      assists INTEGER NOT NULL CHECK (assists >= 1),
      PRIMARY KEY (campaign_id, friend)
    ) WITHOUT ROWID;
    -- assists of a friend per campaign and local day (friend_once_per_day)
    CREATE TABLE friend_assist_daily (
      campaign_id INTEGER NOT NULL,
      friend TEXT NOT NULL,
      day TEXT NOT NULL,
      assists INTEGER NOT NULL CHECK (assists >= 1),
      PRIMARY KEY (campaign_id, friend, day)
    ) WITHOUT ROWID;
    -- the reward of a completed drive: one per drive, ever
    CREATE TABLE friend_assist_rewards (
      drive_id INTEGER PRIMARY KEY REFERENCES friend_assist_drives(id),
      user TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('coupon', 'code', 'points')),
      template_id INTEGER,
      coupon_id INTEGER,
      code TEXT,
      points INTEGER,
      granted_at INTEGER NOT NULL
    );
    ]],
    -- which friend-assist campaign each campaign script item (ref) made: a second apply changes it
    [[
    CREATE TABLE friend_assist_campaign_items (
      ref TEXT PRIMARY KEY,
      assist_campaign_id INTEGER NOT NULL,
      campaign TEXT NOT NULL,
      updated_at INTEGER NOT NULL,
      withdrawn_at INTEGER
    ) WITHOUT ROWID;
    ]],
    -- 0.4.0: merging members (lib/merge.lua): one row per merge, and what it changed so an
    -- undo changes back exactly that (row_id: a drive, assist or campaign id; day: a daily
    -- counter's day, else ''; amount: a counter's part folded or a seq's shift; data: an
    -- assist set aside, as JSON)
    [[
    CREATE TABLE friend_assist_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE TABLE friend_assist_merge_moves (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL,
      row_id INTEGER NOT NULL,
      day TEXT NOT NULL DEFAULT '',
      amount INTEGER,
      data TEXT,
      PRIMARY KEY (merge_id, kind, row_id, day)
    ) WITHOUT ROWID;
    -- the columns a merge scans by member id
    CREATE INDEX friend_assist_assists_friend ON friend_assist_assists(friend);
    CREATE INDEX friend_assist_friends_friend ON friend_assist_friends(friend);
    CREATE INDEX friend_assist_daily_friend ON friend_assist_daily(friend);
    CREATE INDEX friend_assist_rewards_user ON friend_assist_rewards(user);
    ]],
    -- 0.6.0: every CHECK's IN list of three or more values written as ORs (a
    -- temporary b-tree on every row written otherwise: each drive started and
    -- closed, each reward). The tables are rebuilt (new, copy, drop, rename,
    -- indexes again); the host runs migrations with foreign keys off and checks
    -- them before COMMIT, so the tables others reference can be. Same rules, rows.
    [[
    CREATE TABLE friend_assist_campaigns_v2 (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('active', 'paused')),
      reward_kind TEXT NOT NULL CHECK (reward_kind = 'coupon' OR reward_kind = 'code'
        OR reward_kind = 'points'),
      reward_template_id INTEGER,
      reward_code TEXT,
      reward_points INTEGER,
      friends_needed INTEGER NOT NULL CHECK (friends_needed BETWEEN 1 AND 100),
      drive_seconds INTEGER NOT NULL CHECK (drive_seconds >= 1),
      starts_at INTEGER NOT NULL,
      ends_at INTEGER NOT NULL CHECK (ends_at > starts_at),
      drives_per_user INTEGER NOT NULL CHECK (drives_per_user >= 1),
      assists_per_friend INTEGER NOT NULL CHECK (assists_per_friend >= 1),
      new_users_only INTEGER NOT NULL CHECK (new_users_only IN (0, 1)),
      friend_once_per_day INTEGER NOT NULL CHECK (friend_once_per_day IN (0, 1)),
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    INSERT INTO friend_assist_campaigns_v2 (id, name, status, reward_kind, reward_template_id,
      reward_code, reward_points, friends_needed, drive_seconds, starts_at, ends_at,
      drives_per_user, assists_per_friend, new_users_only, friend_once_per_day, created_at,
      updated_at)
      SELECT id, name, status, reward_kind, reward_template_id, reward_code, reward_points,
        friends_needed, drive_seconds, starts_at, ends_at, drives_per_user, assists_per_friend,
        new_users_only, friend_once_per_day, created_at, updated_at FROM friend_assist_campaigns;
    DROP TABLE friend_assist_campaigns;
    ALTER TABLE friend_assist_campaigns_v2 RENAME TO friend_assist_campaigns;
    CREATE TABLE friend_assist_drives_v2 (
      id INTEGER PRIMARY KEY,
      campaign_id INTEGER NOT NULL REFERENCES friend_assist_campaigns(id),
      share_id TEXT NOT NULL UNIQUE,
      initiator TEXT NOT NULL,
      seq INTEGER NOT NULL CHECK (seq >= 1),
      rules TEXT NOT NULL,
      friends_needed INTEGER NOT NULL CHECK (friends_needed >= 1),
      assists INTEGER NOT NULL DEFAULT 0 CHECK (assists >= 0 AND assists <= friends_needed),
      state TEXT NOT NULL CHECK (state = 'open' OR state = 'completed' OR state = 'expired'),
      started_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      completed_at INTEGER,
      closed_at INTEGER,
      UNIQUE (campaign_id, initiator, seq),
      CHECK ((state = 'completed') = (assists = friends_needed))
    );
    INSERT INTO friend_assist_drives_v2 (id, campaign_id, share_id, initiator, seq, rules,
      friends_needed, assists, state, started_at, expires_at, completed_at, closed_at)
      SELECT id, campaign_id, share_id, initiator, seq, rules, friends_needed, assists, state,
        started_at, expires_at, completed_at, closed_at FROM friend_assist_drives;
    DROP TABLE friend_assist_drives;
    ALTER TABLE friend_assist_drives_v2 RENAME TO friend_assist_drives;
    CREATE INDEX friend_assist_drives_initiator ON friend_assist_drives(initiator, id);
    CREATE TABLE friend_assist_rewards_v2 (
      drive_id INTEGER PRIMARY KEY REFERENCES friend_assist_drives(id),
      user TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind = 'coupon' OR kind = 'code' OR kind = 'points'),
      template_id INTEGER,
      coupon_id INTEGER,
      code TEXT,
      points INTEGER,
      granted_at INTEGER NOT NULL
    );
    INSERT INTO friend_assist_rewards_v2 (drive_id, user, kind, template_id, coupon_id, code,
      points, granted_at)
      SELECT drive_id, user, kind, template_id, coupon_id, code, points, granted_at FROM
        friend_assist_rewards;
    DROP TABLE friend_assist_rewards;
    ALTER TABLE friend_assist_rewards_v2 RENAME TO friend_assist_rewards;
    CREATE INDEX friend_assist_rewards_user ON friend_assist_rewards(user);


    ]],
  },

  routes = ROUTES,

  jobs = { expire = drives.expire },

  exports = {
    campaign_apply = campaign_script.apply,
    campaign_withdraw = campaign_script.withdraw,
    member_merge = member_merge,
    member_unmerge = member_unmerge,
    schemas = function() return schema.document(ROUTES) end,
  },
}
