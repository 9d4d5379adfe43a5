---@diagnostic disable: undefined-global
-- group_buy (拼团): an activity sells a SKU at a group price to groups of N.
-- A user opens a group (pays as its leader, at the leader price if set) or
-- joins an open one (pays). A seat counts when its payment lands; the group
-- forms when N seats are paid and its orders are released for fulfilment;
-- until then they are held ("paid, group pending"). A group that runs out of
-- time short fails and every paid member is refunded, each by a job of its
-- own — or, with virtual fill (模拟成团) and enough seats paid, forms anyway.
--
--   lib/join.lua        opening and joining: the routes that create orders
--   lib/seating.lua     order.paid: where a payment sits (never past N)
--   lib/groups.lua      a group's states and seats
--   lib/closing.lua     expiry, virtual fill, refunds
--   lib/release.lua     release_order / reclaim_order (the orders contract)
--   lib/deadlines.lua   every duration, from the activity's config
--   lib/activities.lua  the operator's activities
--   lib/campaign.lua    a campaign script's activities (campaign_apply, campaign_withdraw)
--   lib/merge.lua       two member ids found to be one person (member_merge, member_unmerge)
--   lib/audience.lua    member-only activities: a segment or tag of the members plugin

---@class GroupBuyConfig
---@field group_ttl_seconds integer? default time a group stays open (86400)
---@field unpaid_timeout_seconds integer? default unpaid timeout of group orders (900)

local check = require("tp.check")
local activities = require("lib.activities")
local audience = require("tp.audience")
local campaign = require("lib.campaign")
local closing = require("lib.closing")
local groups = require("lib.groups")
local join = require("lib.join")
local merge = require("lib.merge")
local release = require("lib.release")
local seating = require("lib.seating")
local schema = require("tp.schema")

local GROUP_STATES = { pending = true, open = true, formed = true, failed = true, abandoned = true }

-- ---- the mini-program

-- statements built once: one made at every call is a new long string, which
-- Lua hashes and compares in full to find its prepared statement
local PUBLIC_SQL = "SELECT " .. activities.COLUMNS .. [[ FROM group_buy_activities
    WHERE status = 'active' AND ends_at > ? ORDER BY starts_at, id LIMIT 200]]
local OPEN_GROUPS_SQL = "SELECT " .. groups.COLUMNS .. [[ FROM group_buy_groups
    WHERE activity_id = ? AND state = 'open' AND expires_at > ?
    ORDER BY group_size - paid - virtual_seats, expires_at, id LIMIT ?]]

---GET /group-buys: activities running now or coming.
local function list_public()
  local now = tp.now()
  local rows = tp.db.query(PUBLIC_SQL, now)
  local items = tp.json.array()
  for i, row in ipairs(rows) do items[i] = activities.shape(activities.load(row.id), now) end
  return 200, { now = now, items = items }
end

local function get_public(req)
  return 200, activities.shape(activities.active(req.params.id), tp.now())
end

---The group, which must belong to the activity in the path.
local function group_in(req)
  local g = groups.load(req.params.gid)
  if not g or g.activity_id ~= req.params.id then tp.fail(404, "group_not_found", "no such group in this group buy") end
  return g
end

---GET /group-buys/{id}/groups: the open groups to join (凑团), nearly full
---first, then soonest to run out, with seconds left.
local function open_groups(req)
  local a = activities.active(req.params.id)
  local limit = check.page(req.query, 20, 100)
  local now = tp.now()
  local rows = tp.db.query(OPEN_GROUPS_SQL, a.id, now, limit)
  local items = tp.json.array()
  for i, g in ipairs(rows) do items[i] = groups.public(g, now) end
  return 200, { now = now, items = items }
end

local function get_group(req)
  return 200, groups.public(group_in(req), tp.now())
end

---GET /group-buys/orders/{order_id}: where my group order stands.
local function my_order(req)
  local row = tp.db.one([[SELECT order_id, activity_id, group_id, user, role, qty, state, seat_no
    FROM group_buy_orders WHERE order_id = ?]], req.params.order_id)
  if not row or row.user ~= req.user then tp.fail(404, "order_not_found", "no such group order") end
  row.group = groups.public(groups.load(row.group_id), tp.now())
  return 200, row
end

-- ---- operators

local function create_activity(req)
  local id = activities.create(check.body(req.body, true))
  return 201, activities.shape(activities.load(id), tp.now())
end

---PATCH /group-buys/{id}: any field but the SKU. Groups already opened keep
---the size and the expiry they opened with.
local function update_activity(req)
  local b = check.body(req.body, true)
  local a = activities.load(req.params.id)
  if not a then tp.fail(404, "activity_not_found", "no such group buy") end
  activities.change(a, b)
  return 200, activities.shape(activities.load(a.id), tp.now())
end

local function list_admin(req)
  local limit, after = check.page(req.query, 50, 500)
  local rows = tp.db.query([[SELECT id FROM group_buy_activities WHERE (?1 IS NULL OR id < ?1)
    ORDER BY id DESC LIMIT ?2]], after, limit)
  local items, now = tp.json.array(), tp.now()
  for i, row in ipairs(rows) do items[i] = activities.shape(activities.load(row.id), now) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

local function get_admin(req)
  local a = activities.load(req.params.id)
  if not a then tp.fail(404, "activity_not_found", "no such group buy") end
  return 200, activities.shape(a, tp.now())
end

local GROUPS_ADMIN_SQL = "SELECT " .. groups.COLUMNS .. [[ FROM group_buy_groups
    WHERE activity_id = ?1 AND (?2 IS NULL OR state = ?2) AND (?3 IS NULL OR id < ?3)
    ORDER BY id DESC LIMIT ?4]]

---GET /group-buys/{id}/groups?state=&limit=&after=: groups with their members.
local function groups_admin(req)
  local a = activities.load(req.params.id)
  if not a then tp.fail(404, "activity_not_found", "no such group buy") end
  local limit, after = check.page(req.query, 50, 500)
  local state = check.enum(req.query.state, "state", GROUP_STATES, true)
  local rows = tp.db.query(GROUPS_ADMIN_SQL, a.id, state, after, limit)
  local items, now = tp.json.array(), tp.now()
  for i, g in ipairs(rows) do items[i] = groups.detail(g, now) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

local function group_admin(req)
  return 200, groups.detail(group_in(req), tp.now())
end

-- ---- schemas for the API description

local ACTIVITY_BODY = activities.FIELDS:body()
local ACTIVITY_PATCH = activities.FIELDS:body(true)

---An activity as every read shows it, admin and public: the body's fields,
---its phase and its groups by state.
local ACTIVITY = { type = "object", properties = {
  id = { type = "integer" },
  phase = { type = "string", enum = { "not_started", "running", "ended", "disabled" } },
  groups = { type = "object", description = "how many groups are in each state" },
  created_at = { type = "integer" }, updated_at = { type = "integer" } } }
for field, prop in pairs(ACTIVITY_BODY.properties) do ACTIVITY.properties[field] = prop end

local GROUP_SCHEMA = { type = "object", properties = {
  id = { type = "integer" }, state = { type = "string", enum = { "pending", "open", "formed", "failed", "abandoned" } },
  group_size = { type = "integer" }, paid = { type = "integer" }, seats_left = { type = "integer" },
  expires_at = { type = "integer" }, seconds_left = { type = "integer" } } }

local I, S = { type = "integer" }, { type = "string" }
local SEAT = { type = "object", properties = {
  order_id = I, user = S, merged_from = { type = "string", description = "the account merged into user" },
  role = { type = "string", enum = { "leader", "member" } }, qty = I,
  state = S, seat_no = { type = "integer", description = "absent until paid" } } }
local GROUP_DETAIL = { type = "object", properties = {
  id = I, state = GROUP_SCHEMA.properties.state, group_size = I, paid = I, seats_left = I, expires_at = I,
  seconds_left = I, leader = S, leader_order_id = I, fail_reason = S,
  members_left = { type = "integer", description = "refunded after the group formed" },
  members = { type = "array", items = SEAT } } }
local MY_ORDER = { type = "object", properties = {
  order_id = I, activity_id = I, group_id = I, user = S, role = SEAT.properties.role, qty = I, state = S,
  seat_no = I, group = GROUP_SCHEMA } }

local ORDER_AND_GROUP = { type = "object", properties = { order = { type = "object" }, group = GROUP_SCHEMA } }

local QTY_BODY = { type = "object", properties = { qty = { type = "integer", minimum = 1 } } }
local MEMBERS_ONLY = "403 members_only (details: the audience) when the activity is for members of a "
  .. "segment or tag the user is not in; a retry with the Idempotency-Key of an accepted request answers its order."
local IDEMPOTENCY = { ["Idempotency-Key"] = { description = "a retried request with the same key returns the same order" } }

local ROUTES = {
  { method = "GET", path = "/group-buys", auth = "none", handler = list_public,
    summary = "Group buys running now or coming, with their phase, group counts and audience (会员专享)",
    response = { type = "object", properties = { now = { type = "integer" },
                                                 items = { type = "array", items = ACTIVITY } } } },
  { method = "GET", path = "/group-buys/{id:int}", auth = "none", handler = get_public,
    summary = "One group buy", response = ACTIVITY },
  { method = "GET", path = "/group-buys/{id:int}/groups", auth = "none", handler = open_groups,
    summary = "Open groups to join (凑团): nearly full first, with seconds left",
    query = { limit = { type = "integer", description = "1-100, default 20" } },
    response = { type = "object", properties = { now = { type = "integer" },
                                                 items = { type = "array", items = GROUP_SCHEMA } } } },
  { method = "GET", path = "/group-buys/{id:int}/groups/{gid:int}", auth = "none", handler = get_group,
    summary = "One group: state, seats left, seconds left", response = GROUP_SCHEMA },
  { method = "POST", path = "/group-buys/{id:int}/open", errors = { [400] = { "invalid_idempotency_key" }, [404] = { "activity_not_found" }, [409] = { "limit_reached", "not_started", "ended", "idempotency_key_reused" } }, rate_class = "join", handler = join.open, status = 201, idempotent = true,
    summary = "Open a group as its leader: creates the leader's order; the group opens when it is paid",
    description = MEMBERS_ONLY, headers = IDEMPOTENCY, body = QTY_BODY, response = ORDER_AND_GROUP },
  { method = "POST", path = "/group-buys/{id:int}/groups/{gid:int}/join", errors = { [400] = { "invalid_field", "invalid_idempotency_key" }, [404] = { "group_not_found", "activity_not_found" }, [409] = { "group_not_open", "group_failed", "already_joined", "order_limit_exceeded", "group_formed", "new_users_only", "ended", "idempotency_key_reused" } }, rate_class = "join", handler = join.join, status = 201, idempotent = true,
    summary = "Join an open group: creates the order; the seat counts when it is paid",
    description = MEMBERS_ONLY, headers = IDEMPOTENCY, body = QTY_BODY, response = ORDER_AND_GROUP },
  { method = "GET", path = "/group-buys/orders/{order_id:int}", handler = my_order,
    summary = "Where my group order stands: its state and the group it sits in", response = MY_ORDER },
  { method = "POST", path = "/group-buys", errors = { [400] = { "invalid_field", "sku_not_found" } }, auth = "admin", handler = create_activity, status = 201,
    summary = "Create a group buy", body = ACTIVITY_BODY, response = ACTIVITY },
  { method = "PATCH", path = "/group-buys/{id:int}", errors = { [400] = { "invalid_field" }, [404] = { "activity_not_found" } }, auth = "admin", handler = update_activity,
    summary = "Change a group buy (any field but the SKU; opened groups keep their size and expiry)",
    description = "A null leader_price_fen or audience clears it.", body = ACTIVITY_PATCH, response = ACTIVITY },
  { method = "GET", path = "/group-buys", auth = "admin", handler = list_admin,
    summary = "Every group buy with its group counts",
    query = { limit = { type = "integer" }, after = { type = "integer" } },
    response = { type = "object", properties = { items = { type = "array", items = ACTIVITY },
                                                 next_after = { type = "integer" } } } },
  { method = "GET", path = "/group-buys/{id:int}", auth = "admin", handler = get_admin,
    summary = "One group buy with its group counts", response = ACTIVITY },
  { method = "GET", path = "/group-buys/{id:int}/groups", auth = "admin", handler = groups_admin,
    summary = "Groups of a group buy with their members, newest first",
    query = { state = { type = "string", description = "pending, open, formed, failed or abandoned" },
              limit = { type = "integer" }, after = { type = "integer" } },
    response = { type = "object", properties = { items = { type = "array", items = GROUP_DETAIL },
                                                 next_after = I } } },
  { method = "GET", path = "/group-buys/{id:int}/groups/{gid:int}", auth = "admin", handler = group_admin,
    summary = "One group with its members", response = GROUP_DETAIL },
}

return {
  name = "group_buy",
  version = "1.5.0",
  description = "group buying (拼团): groups of N at a group price, held orders until the group forms, refunds when it fails",
  migrations = {
    [[
    CREATE TABLE group_buy_activities (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      sku TEXT NOT NULL,
      title TEXT NOT NULL,
      group_size INTEGER NOT NULL CHECK (group_size BETWEEN 2 AND 100),
      price_fen INTEGER NOT NULL CHECK (price_fen >= 1),
      leader_price_fen INTEGER CHECK (leader_price_fen IS NULL OR leader_price_fen >= 1),
      group_ttl_seconds INTEGER NOT NULL CHECK (group_ttl_seconds >= 60),
      unpaid_timeout_seconds INTEGER NOT NULL,
      starts_at INTEGER NOT NULL,
      ends_at INTEGER NOT NULL CHECK (ends_at > starts_at),
      per_user_limit INTEGER NOT NULL CHECK (per_user_limit >= 1),
      per_order_limit INTEGER NOT NULL CHECK (per_order_limit >= 1),
      virtual_fill INTEGER NOT NULL DEFAULT 0,
      virtual_fill_min_percent INTEGER NOT NULL DEFAULT 100
        CHECK (virtual_fill_min_percent BETWEEN 1 AND 100),
      new_users_only INTEGER NOT NULL DEFAULT 0,
      status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE TABLE group_buy_groups (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      activity_id INTEGER NOT NULL,
      group_size INTEGER NOT NULL,
      paid INTEGER NOT NULL DEFAULT 0,
      virtual_seats INTEGER NOT NULL DEFAULT 0,
      members_left INTEGER NOT NULL DEFAULT 0,
      state TEXT NOT NULL CHECK (state IN ('pending', 'open', 'formed', 'failed', 'abandoned')),
      leader TEXT NOT NULL,
      leader_order_id INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      opened_at INTEGER,
      expires_at INTEGER,
      formed_at INTEGER,
      failed_at INTEGER,
      fail_reason TEXT,
      CHECK (paid >= 0 AND virtual_seats >= 0 AND paid + virtual_seats <= group_size),
      CHECK (state = 'pending' OR state = 'abandoned' OR expires_at IS NOT NULL)
    );
    CREATE INDEX group_buy_groups_open ON group_buy_groups(activity_id, state, expires_at);
    CREATE TABLE group_buy_orders (
      order_id INTEGER PRIMARY KEY,
      activity_id INTEGER NOT NULL,
      group_id INTEGER NOT NULL,
      group_asked INTEGER NOT NULL,
      user TEXT NOT NULL,
      role TEXT NOT NULL CHECK (role IN ('leader', 'member')),
      role_asked TEXT NOT NULL CHECK (role_asked IN ('leader', 'member')),
      qty INTEGER NOT NULL CHECK (qty >= 1),
      state TEXT NOT NULL CHECK (state IN ('unpaid', 'cancelled', 'seated', 'left',
                                           'refund_pending', 'refunding', 'refunded')),
      counted INTEGER NOT NULL DEFAULT 1,
      seat_no INTEGER,
      refund_reason TEXT,
      created_at INTEGER NOT NULL,
      seated_at INTEGER,
      left_at INTEGER,
      refunded_at INTEGER
    );
    CREATE UNIQUE INDEX group_buy_orders_one_seat ON group_buy_orders(group_id, user)
      WHERE state = 'seated';
    CREATE INDEX group_buy_orders_member ON group_buy_orders(group_id, user);
    CREATE INDEX group_buy_orders_seat ON group_buy_orders(group_id, seat_no);
    CREATE TABLE group_buy_buyers (
      activity_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      units INTEGER NOT NULL CHECK (units >= 0),
      PRIMARY KEY (activity_id, user)
    ) WITHOUT ROWID;
    ]],
    -- which activity each campaign item (ref) made: a second apply changes it
    [[
    CREATE TABLE group_buy_campaign_items (
      ref TEXT PRIMARY KEY,
      activity_id INTEGER NOT NULL,
      campaign TEXT NOT NULL,
      updated_at INTEGER NOT NULL,
      withdrawn_at INTEGER
    ) WITHOUT ROWID;
    ]],
    -- merging members (lib/merge.lua): an order moved by a merge keeps the id
    -- it was placed under (merged_from), and one seat per group is one per
    -- (group, user, merged_from): a person whose two ids both paid a seat of
    -- the same group keeps both. Rows are found by user, and each merge is
    -- recorded with what it moved, for the undo.
    [[
    ALTER TABLE group_buy_orders ADD COLUMN merged_from TEXT;
    DROP INDEX group_buy_orders_one_seat;
    CREATE UNIQUE INDEX group_buy_orders_one_seat_per_id
      ON group_buy_orders(group_id, user, ifnull(merged_from, '')) WHERE state = 'seated';
    CREATE INDEX group_buy_orders_user ON group_buy_orders(user);
    CREATE INDEX group_buy_groups_leader ON group_buy_groups(leader);
    CREATE INDEX group_buy_buyers_user ON group_buy_buyers(user);
    CREATE TABLE group_buy_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE TABLE group_buy_merge_moves (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('order', 'group', 'buyers')),
      row_id INTEGER NOT NULL,           -- order: order_id; group: the group's id; buyers: activity_id
      amount INTEGER NOT NULL DEFAULT 0, -- buyers: the units of from's count summed into into's
      created INTEGER NOT NULL DEFAULT 0 CHECK (created IN (0, 1)),  -- buyers: into had no count before
      prior TEXT,                        -- order: its merged_from before the merge
      PRIMARY KEY (merge_id, kind, row_id)
    ) WITHOUT ROWID;
    ]],
    -- member-only activities (lib/audience.lua): the JSON of {segment = name}
    -- or {tag = name}; NULL: everyone
    [[
    ALTER TABLE group_buy_activities ADD COLUMN audience TEXT;
    ]],
    -- 1.4.0: the groups' and the orders' states checked with ORs, not IN (...).
    -- SQLite evaluates a CHECK's IN list of three or more values by building a
    -- temporary b-tree of it on every row written: about 30k instructions on
    -- every join, seat and state change (`tidepool check` warns of it). A CHECK
    -- cannot change in place, so both tables are rebuilt (SQLite's recipe: new
    -- table, copy, drop, rename, indexes again); the groups' AUTOINCREMENT
    -- sequence carries over, so no group number is given twice.
    [[
    CREATE TABLE group_buy_groups_v2 (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      activity_id INTEGER NOT NULL,
      group_size INTEGER NOT NULL,
      paid INTEGER NOT NULL DEFAULT 0,
      virtual_seats INTEGER NOT NULL DEFAULT 0,
      members_left INTEGER NOT NULL DEFAULT 0,
      state TEXT NOT NULL CHECK (state = 'pending' OR state = 'open' OR state = 'formed' OR state = 'failed'
        OR state = 'abandoned'),
      leader TEXT NOT NULL,
      leader_order_id INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      opened_at INTEGER,
      expires_at INTEGER,
      formed_at INTEGER,
      failed_at INTEGER,
      fail_reason TEXT,
      CHECK (paid >= 0 AND virtual_seats >= 0 AND paid + virtual_seats <= group_size),
      CHECK (state = 'pending' OR state = 'abandoned' OR expires_at IS NOT NULL)
    );
    INSERT INTO group_buy_groups_v2 (id, activity_id, group_size, paid, virtual_seats, members_left, state,
        leader, leader_order_id, created_at, opened_at, expires_at, formed_at, failed_at, fail_reason)
      SELECT id, activity_id, group_size, paid, virtual_seats, members_left, state, leader, leader_order_id,
        created_at, opened_at, expires_at, formed_at, failed_at, fail_reason
      FROM group_buy_groups ORDER BY id;
    UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'group_buy_groups'), 0))
      WHERE name = 'group_buy_groups_v2';
    DROP TABLE group_buy_groups;
    ALTER TABLE group_buy_groups_v2 RENAME TO group_buy_groups;
    CREATE INDEX group_buy_groups_open ON group_buy_groups(activity_id, state, expires_at);
    CREATE INDEX group_buy_groups_leader ON group_buy_groups(leader);
    CREATE TABLE group_buy_orders_v2 (
      order_id INTEGER PRIMARY KEY,
      activity_id INTEGER NOT NULL,
      group_id INTEGER NOT NULL,
      group_asked INTEGER NOT NULL,
      user TEXT NOT NULL,
      role TEXT NOT NULL CHECK (role IN ('leader', 'member')),
      role_asked TEXT NOT NULL CHECK (role_asked IN ('leader', 'member')),
      qty INTEGER NOT NULL CHECK (qty >= 1),
      state TEXT NOT NULL CHECK (state = 'unpaid' OR state = 'cancelled' OR state = 'seated' OR state = 'left'
        OR state = 'refund_pending' OR state = 'refunding' OR state = 'refunded'),
      counted INTEGER NOT NULL DEFAULT 1,
      seat_no INTEGER,
      refund_reason TEXT,
      created_at INTEGER NOT NULL,
      seated_at INTEGER,
      left_at INTEGER,
      refunded_at INTEGER,
      merged_from TEXT
    );
    INSERT INTO group_buy_orders_v2 (order_id, activity_id, group_id, group_asked, user, role, role_asked, qty,
        state, counted, seat_no, refund_reason, created_at, seated_at, left_at, refunded_at, merged_from)
      SELECT order_id, activity_id, group_id, group_asked, user, role, role_asked, qty, state, counted, seat_no,
        refund_reason, created_at, seated_at, left_at, refunded_at, merged_from
      FROM group_buy_orders ORDER BY order_id;
    DROP TABLE group_buy_orders;
    ALTER TABLE group_buy_orders_v2 RENAME TO group_buy_orders;
    CREATE UNIQUE INDEX group_buy_orders_one_seat_per_id
      ON group_buy_orders(group_id, user, ifnull(merged_from, '')) WHERE state = 'seated';
    CREATE INDEX group_buy_orders_member ON group_buy_orders(group_id, user);
    CREATE INDEX group_buy_orders_seat ON group_buy_orders(group_id, seat_no);
    CREATE INDEX group_buy_orders_user ON group_buy_orders(user);
    ]],
    -- 1.5.0: two indexes every join wrote an entry of, each on a page of its own
    -- (the users are spread over them), go. group_buy_orders_member (group_id,
    -- user) is needed by no query: a group's orders are found by
    -- group_buy_orders_seat (group_id, seat_no), a user's in a group by
    -- group_buy_orders_user (a user has few orders) or, seated, by the unique
    -- group_buy_orders_one_seat_per_id. group_buy_buyers is keyed (user,
    -- activity_id) instead of (activity_id, user): every query names the user,
    -- so the key serves them all and group_buy_buyers_user goes with the old table.
    [[
    DROP INDEX group_buy_orders_member;
    CREATE TABLE group_buy_buyers_v2 (
      activity_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      units INTEGER NOT NULL CHECK (units >= 0),
      PRIMARY KEY (user, activity_id)
    ) WITHOUT ROWID;
    INSERT INTO group_buy_buyers_v2 (activity_id, user, units) SELECT activity_id, user, units FROM group_buy_buyers;
    DROP TABLE group_buy_buyers;
    ALTER TABLE group_buy_buyers_v2 RENAME TO group_buy_buyers;
    ]],
  },
  routes = ROUTES,
  jobs = {
    expire_group = closing.expire,
    refund_member = closing.refund,
  },
  subscribe = {
    ["order.paid"] = seating.on_paid,
    ["order.refunded"] = seating.on_refunded,
  },
  exports = {
    release_order = release.release_order,
    reclaim_order = release.reclaim_order,
    campaign_apply = campaign.apply,
    campaign_withdraw = campaign.withdraw,
    member_merge = merge.member_merge,
    member_unmerge = merge.member_unmerge,
    schemas = function() return schema.document(ROUTES) end,
  },
}
