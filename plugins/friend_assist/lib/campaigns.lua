---@diagnostic disable: undefined-global
-- friend_assist/lib/campaigns.lua: the operator's side. A campaign holds the
-- rules; a drive copies them when it starts (lib/drives.lua), so a PATCH here
-- changes only drives started afterwards.

local check = require("tp.check")
local peers = require("lib.peers")
local schema = require("tp.schema")

local campaigns = {}

local REWARD_KINDS = { coupon = true, code = true, points = true }
local REWARD_POINTS = { 1, 100000000 }

---A reward's schema for the route docs (the plugin reads it: check_reward).
campaigns.REWARD = { type = "object", required = { "kind" }, properties = {
  kind = { type = "string", enum = { "coupon", "code", "points" } },
  template_id = { type = "integer", minimum = 1, description = "coupon: the coupons plugin's template" },
  code = { type = "string", pattern = "^[A-Za-z0-9_.:-]{1,64}$", description = "code: shown to the initiator" },
  points = { type = "integer", minimum = REWARD_POINTS[1], maximum = REWARD_POINTS[2],
             description = "points: carried by the event" },
} }

-- A campaign's rules, declared once, in the order they are checked: the
-- checks, the defaults, the known fields, the columns and the OpenAPI bodies
-- come from here (tp.schema). The reward is stored in four columns of its own
-- (reward_kind ...), read by check_reward.
campaigns.FIELDS = schema.new {
  { "name", "text", max = 100, required = true },
  { "status", "enum", values = { "active", "paused" }, default = "active" },
  { "reward", "custom", required = true, column = false, schema = campaigns.REWARD },
  { "friends_needed", "integer", min = 1, max = 100, required = true, doc = "N" },
  { "drive_seconds", "integer", min = 60, max = 30 * 86400, required = true,
    doc = "how long a drive stays open (capped by ends_at)" },
  { "drives_per_user", "integer", min = 1, max = 100, default = 1 },
  { "assists_per_friend", "integer", min = 1, max = 1000, default = 1,
    doc = "K: assists one friend may give in the campaign" },
  { "starts_at", "epoch", doc = "UTC epoch seconds; default now" },
  { "ends_at", "epoch", required = true, doc = "UTC epoch seconds: no start and no assist from then on" },
  { "new_users_only", "boolean", default = false, doc = "friends must have no paid order (needs orders)" },
  { "friend_once_per_day", "boolean", default = false,
    doc = "a friend may assist at most one drive of the campaign per local day" },
}
local F = campaigns.FIELDS

-- the body fields of POST (all) and PATCH (any)
local FIELDS = F.names

local REWARD_COLUMNS = { reward_kind = ":reward_kind", reward_template_id = ":reward_template_id",
  reward_code = ":reward_code", reward_points = ":reward_points" }
local COLUMNS = F:columns("id", { "reward_kind", "reward_template_id", "reward_code", "reward_points",
  "created_at", "updated_at" })
local INSERT_EXTRA, UPDATE_EXTRA = { created_at = ":now", updated_at = ":now" }, { updated_at = ":now" }
for k, v in pairs(REWARD_COLUMNS) do INSERT_EXTRA[k], UPDATE_EXTRA[k] = v, v end
local INSERT = F:insert("friend_assist_campaigns", INSERT_EXTRA) .. " RETURNING id"
-- conditional on the version read: a PATCH racing another one is refused, not merged blindly
local UPDATE = F:update("friend_assist_campaigns", UPDATE_EXTRA) .. " AND updated_at = :updated_at"

---@class FriendAssistReward
---@field kind "coupon"|"code"|"points"
---@field template_id integer|nil  coupon: the coupons plugin's template
---@field code string|nil          code: the reward code the initiator is shown
---@field points integer|nil       points: announced in friend_assist.completed

---@class FriendAssistCampaign
---@field id integer
---@field name string
---@field status "active"|"paused"
---@field reward FriendAssistReward
---@field friends_needed integer      N: assists that complete a drive
---@field drive_seconds integer       how long a drive stays open
---@field starts_at integer           drives may start from (epoch s)
---@field ends_at integer             drives may start, and assists land, before
---@field drives_per_user integer     drives one user may start in the campaign
---@field assists_per_friend integer  K: assists one friend may give in the campaign
---@field new_users_only boolean      friends must have no paid order (orders plugin)
---@field friend_once_per_day boolean a friend assists at most one drive per local day

---A stored row as the API shows it.
---@return FriendAssistCampaign
local function shape(row)
  local reward = { kind = row.reward_kind }
  if row.reward_kind == "coupon" then reward.template_id = row.reward_template_id
  elseif row.reward_kind == "code" then reward.code = row.reward_code
  else reward.points = row.reward_points end
  return {
    id = row.id, name = row.name, status = row.status, reward = reward,
    friends_needed = row.friends_needed, drive_seconds = row.drive_seconds,
    starts_at = row.starts_at, ends_at = row.ends_at, drives_per_user = row.drives_per_user,
    assists_per_friend = row.assists_per_friend, new_users_only = row.new_users_only == 1,
    friend_once_per_day = row.friend_once_per_day == 1,
    created_at = row.created_at, updated_at = row.updated_at,
  }
end

local LOAD_SQL = "SELECT " .. COLUMNS .. " FROM friend_assist_campaigns WHERE id = ?"

---The campaign id, or nil.
---@param id integer
---@return FriendAssistCampaign|nil
function campaigns.load(id)
  local row = tp.db.one(LOAD_SQL, id)
  return row and shape(row)
end

---@param value any
---@return FriendAssistReward
local function check_reward(value)
  if type(value) ~= "table" or check.is_list(value) and next(value) ~= nil then
    check.field_error("reward", "must be an object: {kind = coupon|code|points, ...}")
  end
  check.only(value, { kind = true, template_id = true, code = true, points = true },
    "is not a reward field (kind, template_id, code, points)")
  local kind = check.enum(value.kind, "reward.kind", REWARD_KINDS)
  local needed = ({ coupon = "template_id", code = "code", points = "points" })[kind]
  for _, other in ipairs({ "template_id", "code", "points" }) do
    if other ~= needed and value[other] ~= nil then
      check.field_error("reward." .. other, ("does not belong to a %s reward"):format(kind))
    end
  end
  if kind == "coupon" then
    return { kind = kind, template_id = check.integer(value.template_id, "reward.template_id", 1) }
  elseif kind == "code" then
    return { kind = kind, code = check.ident(value.code, "reward.code", 64) }
  end
  return { kind = kind, points = check.integer(value.points, "reward.points", REWARD_POINTS[1], REWARD_POINTS[2]) }
end

---Checks every rule of c (a whole campaign: a POST body with defaults, or the
---stored campaign with a PATCH laid over it). Ends in 400 invalid_field.
---@param c table
---@return table c
local function check_rules(c)
  F:check(c, false, { reward = check_reward })
  if c.ends_at <= c.starts_at then check.field_error("ends_at", "must be after starts_at") end
  c.new_users_only = c.new_users_only == true
  c.friend_once_per_day = c.friend_once_per_day == true
  return c
end

---Refuses settings whose peer plugin cannot serve them (409), before anything is written.
---@param c table checked rules
---@param touched table<string, any> the fields the request set
local function check_peers(c, touched)
  if c.new_users_only and touched.new_users_only ~= nil then
    local problem = peers.orders_problem()
    if problem then
      tp.fail(409, "orders_unavailable", "new_users_only needs the orders plugin: " .. problem,
        { field = "new_users_only" })
    end
  end
  if c.reward.kind == "coupon" and touched.reward ~= nil then
    local problem = peers.coupons_problem()
    if problem then
      tp.fail(409, "coupons_unavailable", "a coupon reward needs the coupons plugin: " .. problem,
        { field = "reward.kind" })
    end
  end
end

local function params_of(c, now)
  return {
    name = c.name, status = c.status, reward_kind = c.reward.kind,
    reward_template_id = c.reward.template_id, reward_code = c.reward.code,
    reward_points = c.reward.points, friends_needed = c.friends_needed,
    drive_seconds = c.drive_seconds, starts_at = c.starts_at, ends_at = c.ends_at,
    drives_per_user = c.drives_per_user, assists_per_friend = c.assists_per_friend,
    new_users_only = c.new_users_only and 1 or 0, friend_once_per_day = c.friend_once_per_day and 1 or 0,
    now = now,
  }
end

---A whole campaign from a create body: the defaults (starts_at as given: now,
---or for a campaign that exists the start it has), then what the body says.
local function with_defaults(body, starts_at)
  local c = F:defaults(body)
  c.starts_at = c.starts_at or starts_at
  c.reward = body.reward
  return c
end

---Creates a campaign from a create body; returns its id. POST
---/friend_assist/campaigns and a campaign script's first apply of an item.
---@param body table
---@return integer
function campaigns.create_from(body)
  check.only(body, FIELDS)
  local now = tp.now()
  local c = check_rules(with_defaults(body, now))
  if c.ends_at <= now then check.field_error("ends_at", "must be in the future") end
  check_peers(c, body)
  local row = tp.db.one(INSERT, params_of(c, now))
  return row.id
end

---Changes campaign current by body: a PATCH body (what it leaves out stays)
---or, with whole, a create body (what it leaves out takes its default, but
---starts_at, which keeps the campaign's start: a campaign script applying its
---item again). The result is checked whole; a new ends_at must be in the
---future. Drives already started keep the rules they started with.
---@param current FriendAssistCampaign
---@param body table
---@param whole boolean?
function campaigns.change(current, body, whole)
  check.only(body, FIELDS)
  local c
  if whole then
    c = with_defaults(body, current.starts_at)
  else
    c = {}
    for k, v in pairs(current) do c[k] = v end
    for k, v in pairs(body) do c[k] = v end
  end
  check_rules(c)
  local now = tp.now()
  if whole and c.ends_at ~= current.ends_at and c.ends_at <= now then
    check.field_error("ends_at", "must be in the future")
  end
  check_peers(c, body)
  local p = params_of(c, now)
  p.id = current.id
  p.updated_at = current.updated_at
  local changed = tp.db.exec(UPDATE, p)
  if changed ~= 1 then tp.fail(409, "campaign_changed", "the campaign changed meanwhile; read it and retry") end
end

---POST /friend_assist/campaigns (admin) -> 201 FriendAssistCampaign
function campaigns.create(req)
  local id = campaigns.create_from(check.body(req.body, true))
  return 201, campaigns.with_counts(campaigns.load(id))
end

---PATCH /friend_assist/campaigns/{id} (admin): any field; the result is
---checked whole. Drives already started keep the rules they started with.
function campaigns.update(req)
  local body = check.body(req.body, true)
  check.only(body, FIELDS)
  local current = campaigns.load(req.params.id)
  if not current then tp.fail(404, "campaign_not_found", "no such friend-assist campaign") end
  campaigns.change(current, body)
  return 200, campaigns.with_counts(campaigns.load(current.id))
end

---c with drives = {open, completed, expired} counts.
---@param c FriendAssistCampaign
---@return table
function campaigns.with_counts(c)
  local n = tp.db.one([[SELECT coalesce(sum(state = 'open'), 0) AS open,
      coalesce(sum(state = 'completed'), 0) AS completed, coalesce(sum(state = 'expired'), 0) AS expired
    FROM friend_assist_drives WHERE campaign_id = ?]], c.id)
  c.drives = { open = n.open, completed = n.completed, expired = n.expired }
  return c
end

---GET /friend_assist/campaigns/{id} (admin)
function campaigns.get(req)
  local c = campaigns.load(req.params.id)
  if not c then tp.fail(404, "campaign_not_found", "no such friend-assist campaign") end
  return 200, campaigns.with_counts(c)
end

local LIST_SQL = "SELECT " .. COLUMNS .. [[ FROM friend_assist_campaigns
    WHERE id > ? AND (? IS NULL OR status = ?) ORDER BY id LIMIT ?]]

---GET /friend_assist/campaigns?status=&limit=&after= (admin) -> {items, next_after}
function campaigns.list(req)
  local limit, after = check.page(req.query, 50, 200)
  local status = req.query.status
  if status ~= nil and not F.by_name.status.set[status] then
    tp.fail(400, "invalid_query", "status must be active or paused")
  end
  local rows = tp.db.query(LIST_SQL, after or 0, status, status, limit)
  local items = tp.json.array()
  for _, row in ipairs(rows) do items[#items + 1] = shape(row) end
  return 200, { items = items, next_after = #items == limit and items[#items].id or nil }
end

---What a campaign script's item may set: the create body but status, which
---campaign_apply and campaign_withdraw own.
campaigns.SETTINGS = {}
for field in pairs(FIELDS) do campaigns.SETTINGS[field] = field ~= "status" or nil end

return campaigns
