---@diagnostic disable: undefined-global
-- bargain (砍价): a user starts a bargain on an activity's SKU and shares it;
-- each friend who helps cuts a random whole number of fen off the price, and
-- after the number of helpers the activity asks for the price is exactly the
-- floor. The initiator buys at the current price through the orders plugin
-- (at the floor, or earlier if the activity allows it) within a pay window.
-- The activity's rules are frozen into each bargain when it starts; every cut
-- records the seed and draw that made it, so an operator can replay them.
-- Who may cut and the cut: lib/help.lua; the arithmetic: lib/cuts.lua; the
-- states after the cuts: lib/lifecycle.lua; the operator's side:
-- lib/activities.lua; the replay: lib/replay.lua; a campaign script's
-- activities (campaign_apply, campaign_withdraw): lib/campaign.lua; two
-- member ids found to be one person (member_merge, member_unmerge): lib/merge.lua;
-- member-only activities (a segment or tag of the members plugin may start
-- bargains; anyone may help): lib/audience.lua.

local activities = require("lib.activities")
local campaign = require("lib.campaign")
local help = require("lib.help")
local lifecycle = require("lib.lifecycle")
local merge = require("lib.merge")
local replay = require("lib.replay")
local rules = require("lib.rules")
local schema = require("tp.schema")
local risk = require("tp.risk")
local store = require("lib.store")

---The bargain or 404.
local function bargain(id)
  local b = store.load(id)
  if not b then tp.fail(404, "bargain_not_found", "no such bargain") end
  return b
end

-- ---- users

---POST /bargain/activities/{id}/start
local function start(req)
  local a = activities.load(req.params.id)
  if not a then tp.fail(404, "activity_not_found", "no such bargain activity") end
  risk.check(req, "join", { plugin = "bargain", id = a.id })
  return 201, lifecycle.start(a, req.user)
end

---GET /bargains/{id}: the share page.
local function get_public(req)
  return 200, store.public(bargain(req.params.id), tp.now())
end

local LIST_MINE_SQL = "SELECT " .. store.BARGAIN_COLUMNS .. [[ FROM bargain_bargains
    WHERE initiator = ? ORDER BY id DESC LIMIT 50]]

---GET /bargains: the caller's own bargains, newest first.
local function list_mine(req)
  local rows = tp.db.query(LIST_MINE_SQL, req.user)
  local now, items = tp.now(), tp.json.array()
  for i, b in ipairs(rows) do
    items[i] = store.public(b, now, true)
  end
  return 200, { items = items }
end

---POST /bargains/{id}/help
local function post_help(req)
  risk.check(req, "help", { plugin = "bargain", id = req.params.id })
  return 201, help.cut(req.params.id, req.user)
end

---POST /bargains/{id}/buy
local function buy(req)
  risk.check(req, "buy", { plugin = "bargain", id = req.params.id })
  return lifecycle.buy(req.params.id, req.user)
end

-- ---- operators

local function get_admin(req)
  return 200, store.admin(bargain(req.params.id), tp.now())
end

---GET /bargains/{id}/replay: recomputes the cuts from the recorded seeds and draws.
local function get_replay(req)
  local b = bargain(req.params.id)
  return 200, replay.bargain(b, store.helps(b.id, true))
end

local ACTIVITY_BODY = rules.FIELDS:body()
local ACTIVITY_PATCH = rules.FIELDS:body(true)
ACTIVITY_BODY.description = "money in integer fen, instants in UTC epoch seconds"
ACTIVITY_PATCH.description = ACTIVITY_BODY.description

---An activity as the reads show it: the body's fields and its state at now
---(the operator's reads add stats).
local ACTIVITY = { type = "object", properties = {
  id = { type = "integer" },
  state = { type = "string", enum = { "open", "not_started", "ended", "disabled" } },
  stats = { type = "object", description = "operator reads only: bargains by state, helps, cut_fen" },
  created_at = { type = "integer" }, updated_at = { type = "integer" } } }
for field, prop in pairs(ACTIVITY_BODY.properties) do ACTIVITY.properties[field] = prop end

local BARGAIN_RESPONSE = { type = "object", description = "a bargain: price_fen now, cuts_left, seconds_left, helps",
  properties = { id = { type = "integer" }, state = { type = "string", enum = {
    "open", "floor_reached", "ordered", "paid", "expired", "closed" } },
    price_fen = { type = "integer" }, cuts_left = { type = "integer" },
    seconds_left = { type = "integer" }, helps = { type = "array" } } }

local ROUTES = {
  { method = "GET", path = "/bargain/activities", auth = "none", handler = activities.list_public,
    summary = "Bargain activities open now or coming, with their audience (会员专享)",
    response = { type = "object", properties = { now = { type = "integer" },
                                                 items = { type = "array", items = ACTIVITY } } } },
  { method = "GET", path = "/bargain/activities/{id:int}", auth = "none", handler = activities.get_public,
    summary = "One bargain activity", response = ACTIVITY },
  { method = "POST", path = "/bargain/activities/{id:int}/start", errors = { [404] = { "activity_not_found" }, [409] = { "bargain_in_progress", "start_limit_reached", "not_started" } }, rate_class = "join", handler = start, status = 201,
    summary = "Start a bargain: the activity's rules are frozen into it (and the first cut made, if any)",
    description = "403 members_only (details: the audience) when the activity is for members of a segment "
      .. "or tag the user is not in.", response = BARGAIN_RESPONSE },
  { method = "GET", path = "/bargains", handler = list_mine, summary = "My bargains, newest first (the last 50)",
    response = { type = "object", properties = { items = { type = "array", items = BARGAIN_RESPONSE } } } },
  { method = "GET", path = "/bargains/{id:int}", auth = "none", handler = get_public,
    summary = "A bargain for its share page: price now, helpers and their cuts, cuts and seconds left",
    response = BARGAIN_RESPONSE },
  { method = "POST", path = "/bargains/{id:int}/help", errors = { [404] = { "bargain_not_found" }, [409] = { "floor_reached", "already_helped", "own_bargain", "help_limit_reached", "new_users_only", "bargain_bought", "bargain_expired" } }, rate_class = "help", handler = post_help, status = 201,
    summary = "Help a friend's bargain: cut a random whole number of fen off its price",
    description = "Open to everyone, also on a member-only activity's bargains.",
    response = { type = "object", properties = { cut_fen = { type = "integer" }, bargain = BARGAIN_RESPONSE } } },
  { method = "POST", path = "/bargains/{id:int}/buy", errors = { [403] = { "not_initiator" }, [409] = { "floor_not_reached", "already_bought", "bargain_closed", "bargain_expired" } }, rate_class = "buy", handler = buy, status = { 201, 200 },
    summary = "The initiator buys at the current price (once; a repeat answers the unpaid order)",
    response = { type = "object", description = "the order (see the orders plugin)" } },
  { method = "POST", path = "/bargain/activities", errors = { [400] = { "invalid_field", "sku_not_found", "invalid_body" } }, auth = "admin", handler = activities.create, status = 201,
    summary = "Create a bargain activity", body = ACTIVITY_BODY, response = ACTIVITY },
  { method = "PATCH", path = "/bargain/activities/{id:int}", errors = { [400] = { "invalid_field" }, [404] = { "activity_not_found" } }, auth = "admin", handler = activities.update,
    summary = "Change a bargain activity (any field but the SKU); bargains already started keep their rules",
    description = "A null audience clears it (everyone may start); other nulls count as absent.",
    body = ACTIVITY_PATCH, response = ACTIVITY },
  { method = "GET", path = "/bargain/activities", auth = "admin", handler = activities.list_admin,
    summary = "Every bargain activity, with its bargains by state and its helps",
    query = { limit = { type = "integer" }, after = { type = "integer" } },
    response = { type = "object", properties = { items = { type = "array", items = ACTIVITY },
                                                 next_after = { type = "integer" } } } },
  { method = "GET", path = "/bargain/activities/{id:int}", auth = "admin", handler = activities.get_admin,
    summary = "One bargain activity, with its bargains by state and its helps", response = ACTIVITY },
  { method = "GET", path = "/bargains/{id:int}", auth = "admin", handler = get_admin,
    summary = "A bargain with its frozen rules and every cut's seed and draw", response = BARGAIN_RESPONSE },
  { method = "GET", path = "/bargains/{id:int}/replay", auth = "admin", handler = get_replay,
    summary = "Recompute a bargain's cuts from the recorded seeds and draws and say whether they match",
    response = { type = "object", properties = { match = { type = "boolean" }, cuts = { type = "array" } } } },
}

return {
  name = "bargain",
  version = "1.4.0",
  description = "bargains (砍价): friends cut the price to a floor in random whole fen; the initiator buys",
  migrations = {
    [[
    CREATE TABLE bargain_activities (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      sku TEXT NOT NULL,
      title TEXT NOT NULL,
      original_price_fen INTEGER NOT NULL,
      floor_price_fen INTEGER NOT NULL CHECK (floor_price_fen >= 1),
      helpers_needed INTEGER NOT NULL CHECK (helpers_needed >= 1),
      first_cut INTEGER NOT NULL CHECK (first_cut IN (0, 1)),
      duration_seconds INTEGER NOT NULL,
      buy_before_floor INTEGER NOT NULL CHECK (buy_before_floor IN (0, 1)),
      pay_window_seconds INTEGER NOT NULL,
      helps_per_helper INTEGER NOT NULL CHECK (helps_per_helper >= 1),
      new_users_only INTEGER NOT NULL CHECK (new_users_only IN (0, 1)),
      starts_at INTEGER NOT NULL,
      ends_at INTEGER NOT NULL CHECK (ends_at > starts_at),
      starts_per_user INTEGER NOT NULL CHECK (starts_per_user >= 1),
      status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      CHECK (original_price_fen - floor_price_fen >= helpers_needed + first_cut)
    );
    CREATE TABLE bargain_bargains (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      activity_id INTEGER NOT NULL,
      initiator TEXT NOT NULL,
      rules TEXT NOT NULL,
      sku TEXT NOT NULL,
      original_price_fen INTEGER NOT NULL,
      floor_price_fen INTEGER NOT NULL,
      cuts_total INTEGER NOT NULL,
      cuts_left INTEGER NOT NULL CHECK (cuts_left >= 0 AND cuts_left <= cuts_total),
      remaining_fen INTEGER NOT NULL
        CHECK (remaining_fen >= cuts_left AND (remaining_fen = 0) = (cuts_left = 0)),
      state TEXT NOT NULL CHECK (state IN ('open', 'floor_reached', 'ordered', 'paid', 'expired',
                                           'closed')),
      order_id INTEGER,
      started_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      floor_reached_at INTEGER,
      pay_deadline INTEGER,
      ended_at INTEGER,
      end_reason TEXT,
      paid_at INTEGER
    );
    CREATE INDEX bargain_bargains_initiator ON bargain_bargains(activity_id, initiator, state);
    CREATE INDEX bargain_bargains_user ON bargain_bargains(initiator, id);
    CREATE TABLE bargain_helps (
      bargain_id INTEGER NOT NULL,
      seq INTEGER NOT NULL CHECK (seq >= 1),
      helper TEXT NOT NULL,
      cut_fen INTEGER NOT NULL CHECK (cut_fen >= 1),
      remaining_before_fen INTEGER NOT NULL,
      cuts_left_before INTEGER NOT NULL,
      draw INTEGER,
      seed INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (bargain_id, seq),
      UNIQUE (bargain_id, helper)
    ) WITHOUT ROWID;
    CREATE TABLE bargain_helpers (
      activity_id INTEGER NOT NULL,
      helper TEXT NOT NULL,
      helps INTEGER NOT NULL CHECK (helps >= 1),
      PRIMARY KEY (activity_id, helper)
    ) WITHOUT ROWID;
    CREATE TABLE bargain_starters (
      activity_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      started INTEGER NOT NULL CHECK (started >= 1),
      PRIMARY KEY (activity_id, user)
    ) WITHOUT ROWID;
    ]],
    -- which activity each campaign item (ref) made: a second apply changes it
    [[
    CREATE TABLE bargain_campaign_items (
      ref TEXT PRIMARY KEY,
      activity_id INTEGER NOT NULL,
      campaign TEXT NOT NULL,
      updated_at INTEGER NOT NULL,
      withdrawn_at INTEGER
    ) WITHOUT ROWID;
    ]],
    -- merging members (lib/merge.lua): a cut moved by a merge keeps the id it
    -- was cut under (merged_from), and one cut per helper is one per (bargain,
    -- helper, merged_from): a person whose two ids both cut a bargain keeps
    -- both cuts. The UNIQUE (bargain_id, helper) was a table constraint, so
    -- the table is rebuilt (SQLite's own recipe: new table, copy, drop,
    -- rename). Rows are found by user, and each merge is recorded with what
    -- it moved, for the undo.
    [[
    CREATE TABLE bargain_helps_v2 (
      bargain_id INTEGER NOT NULL,
      seq INTEGER NOT NULL CHECK (seq >= 1),
      helper TEXT NOT NULL,
      cut_fen INTEGER NOT NULL CHECK (cut_fen >= 1),
      remaining_before_fen INTEGER NOT NULL,
      cuts_left_before INTEGER NOT NULL,
      draw INTEGER,
      seed INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      merged_from TEXT,
      PRIMARY KEY (bargain_id, seq)
    ) WITHOUT ROWID;
    INSERT INTO bargain_helps_v2 (bargain_id, seq, helper, cut_fen, remaining_before_fen, cuts_left_before,
        draw, seed, created_at)
      SELECT bargain_id, seq, helper, cut_fen, remaining_before_fen, cuts_left_before, draw, seed, created_at
      FROM bargain_helps;
    DROP TABLE bargain_helps;
    ALTER TABLE bargain_helps_v2 RENAME TO bargain_helps;
    CREATE UNIQUE INDEX bargain_helps_one_per_helper ON bargain_helps(bargain_id, helper, ifnull(merged_from, ''));
    CREATE INDEX bargain_helps_helper ON bargain_helps(helper);
    CREATE INDEX bargain_helpers_helper ON bargain_helpers(helper);
    CREATE INDEX bargain_starters_user ON bargain_starters(user);
    CREATE TABLE bargain_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE TABLE bargain_merge_moves (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('bargain', 'help', 'helpers', 'starters')),
      row_id INTEGER NOT NULL,           -- bargain: its id; help: bargain_id; helpers, starters: activity_id
      seq INTEGER NOT NULL DEFAULT 0,    -- help: the cut's seq
      amount INTEGER NOT NULL DEFAULT 0, -- helpers, starters: from's count summed into into's
      created INTEGER NOT NULL DEFAULT 0 CHECK (created IN (0, 1)),  -- helpers, starters: into had none before
      prior TEXT,                        -- help: its merged_from before the merge
      PRIMARY KEY (merge_id, kind, row_id, seq)
    ) WITHOUT ROWID;
    ]],
    -- member-only activities (lib/audience.lua): the JSON of {segment = name}
    -- or {tag = name}; NULL: everyone
    [[
    ALTER TABLE bargain_activities ADD COLUMN audience TEXT;
    ]],
    -- 1.4.0: bargain_bargains's value lists checked with ORs, not IN (...): SQLite
    -- evaluates a CHECK's IN list of three or more values by building a temporary b-tree
    -- of it on every row written, about 30k instructions, and every bargain started
    -- writes a row and each of its ends changes its state (`tidepool check` warns of
    -- it). A CHECK cannot change in place, so the table is rebuilt: new, copy, drop,
    -- rename, indexes again.
    [[
    CREATE TABLE bargain_bargains_v2 (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      activity_id INTEGER NOT NULL,
      initiator TEXT NOT NULL,
      rules TEXT NOT NULL,
      sku TEXT NOT NULL,
      original_price_fen INTEGER NOT NULL,
      floor_price_fen INTEGER NOT NULL,
      cuts_total INTEGER NOT NULL,
      cuts_left INTEGER NOT NULL CHECK (cuts_left >= 0 AND cuts_left <= cuts_total),
      remaining_fen INTEGER NOT NULL
        CHECK (remaining_fen >= cuts_left AND (remaining_fen = 0) = (cuts_left = 0)),
      state TEXT NOT NULL CHECK (state = 'open' OR state = 'floor_reached' OR state = 'ordered'
        OR state = 'paid' OR state = 'expired' OR state = 'closed'),
      order_id INTEGER,
      started_at INTEGER NOT NULL,
      expires_at INTEGER NOT NULL,
      floor_reached_at INTEGER,
      pay_deadline INTEGER,
      ended_at INTEGER,
      end_reason TEXT,
      paid_at INTEGER
    );
    INSERT INTO bargain_bargains_v2 (
        id, activity_id, initiator, rules, sku, original_price_fen, floor_price_fen, cuts_total,
        cuts_left, remaining_fen, state, order_id, started_at, expires_at, floor_reached_at,
        pay_deadline, ended_at, end_reason, paid_at)
      SELECT
        id, activity_id, initiator, rules, sku, original_price_fen, floor_price_fen, cuts_total,
        cuts_left, remaining_fen, state, order_id, started_at, expires_at, floor_reached_at,
        pay_deadline, ended_at, end_reason, paid_at
      FROM bargain_bargains;
    UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'bargain_bargains'), 0))
      WHERE name = 'bargain_bargains_v2';
    DROP TABLE bargain_bargains;
    ALTER TABLE bargain_bargains_v2 RENAME TO bargain_bargains;
    CREATE INDEX bargain_bargains_initiator ON bargain_bargains(activity_id, initiator, state);
    CREATE INDEX bargain_bargains_user ON bargain_bargains(initiator, id);
    ]],
  },
  routes = ROUTES,
  jobs = {
    expire = lifecycle.expire,
    pay_deadline = lifecycle.pay_deadline,
  },
  subscribe = {
    ["order.paid"] = lifecycle.on_order_paid,
  },
  exports = {
    release_order = lifecycle.release_order,
    reclaim_order = lifecycle.reclaim_order,
    campaign_apply = campaign.apply,
    campaign_withdraw = campaign.withdraw,
    member_merge = merge.member_merge,
    member_unmerge = merge.member_unmerge,
    schemas = function() return schema.document(ROUTES) end,
  },
}
