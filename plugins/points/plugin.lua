---@diagnostic disable: undefined-global
-- points (积分): a ledger of earn, spend, return, claw-back, expire and adjust
-- entries over lots that expire first-in first-out at the brand's local
-- midnight; points earned from paid orders and given by other plugins
-- (sign-in, friend_assist); points as part payment at checkout (the orders
-- plugin asks here); a points mall of SKUs and coupons; the liability report.
-- README.md states the rules; lib/ledger.lua the ledger's invariants.

local check = require("tp.check")
local schema = require("tp.schema")
local settings = require("lib.settings")
local ledger = require("lib.ledger")
local checkout = require("lib.checkout")
local mall = require("lib.mall")
local report = require("lib.report")
local merge = require("lib.merge")

local S = settings.read(tp.config())
checkout.init(S)

local INT, STR = { type = "integer" }, { type = "string" }
local KINDS = { "earn", "spend", "return", "clawback", "expire", "adjust", "merge_in", "merge_out" }

local ENTRY_SCHEMA = { type = "object", required = { "id", "kind", "points", "balance", "created_at" },
  properties = { id = INT, user = STR, kind = { type = "string", enum = KINDS },
    points = { type = "integer", description = "signed: what the entry added to the balance" },
    balance = { type = "integer", description = "the balance after the entry" },
    source = { type = "string", description = "order:<id>, mall:<id>, signin:<day>, friend_assist:drive:<id>, ..." },
    reason = STR, created_at = { type = "integer", description = "UTC epoch seconds" } } }

local ENTRIES_SCHEMA = { type = "object", required = { "items" }, properties = {
  items = { type = "array", items = ENTRY_SCHEMA },
  next_after = { type = "integer", description = "the cursor of the next page (absent on the last)" } } }

local EXPIRING_SCHEMA = { type = "array", description = "open lots by expiry, soonest first (at most 10)",
  items = { type = "object", required = { "points" }, properties = {
    points = INT, expires_at = { type = "integer", description = "UTC epoch; absent: never" } } } }

local ACCOUNT_SCHEMA = { type = "object", required = { "user", "balance", "expiring" }, properties = {
  user = STR, balance = { type = "integer", description = "points; below zero only after a claw-back the brand allows" },
  expiring = EXPIRING_SCHEMA,
  redeem = { type = "object", description = "what points pay at checkout (absent: the shop takes none)",
    properties = { points_per_fen = INT, max_percent = INT, max_points = INT } },
  entries = { type = "array", items = ENTRY_SCHEMA, description = "operators: the 50 newest entries" } } }

local function entry_page(user, query)
  local limit, after = check.page(query, 20, 200)
  local rows = tp.db.query([[SELECT id, user, kind, points, balance, source, reason, created_at
    FROM points_entries WHERE user = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?]],
    user, after, after, limit)
  return { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

local function account(user)
  local expiring = tp.db.query([[SELECT sum(remaining) AS points, expires_at FROM points_lots
    WHERE user = ? AND remaining > 0 GROUP BY expires_at ORDER BY expires_at IS NULL, expires_at LIMIT 10]], user)
  return { user = user, balance = ledger.balance(user), expiring = tp.json.array(expiring), redeem = S.redeem }
end

-- ---- users

local function get_me(req) return 200, account(req.user) end

local function get_my_entries(req) return 200, entry_page(req.user, req.query) end

-- ---- operators

---The member a path names now (a merged one's survivor); 404 if erased.
local function member(req)
  local id = check.user(req.params.user, "user")
  local now = tp.auth.resolve(id)
  if not now then tp.fail(404, "member_not_found", "this member was erased") end
  return now
end

local function admin_account(req)
  local user = member(req)
  local a = account(user)
  a.entries = tp.json.array(tp.db.query([[SELECT id, user, kind, points, balance, source, reason, created_at
    FROM points_entries WHERE user = ? ORDER BY id DESC LIMIT 50]], user))
  return 200, a
end

local ADJUST = schema.new {
  { "points", "integer", min = -100000000, max = 100000000, required = true,
    doc = "signed, not zero: added to (or, negative, taken from) the balance" },
  { "reason", "text", max = 200, required = true, doc = "why: kept on the entry" },
}

local function admin_adjust(req)
  local user = member(req)
  local b = check.body(req.body, true)
  check.only(b, ADJUST.names)
  ADJUST:check(b)
  if b.points == 0 then check.field_error("points", "must not be zero") end
  local id, balance
  if b.points > 0 then
    id, balance = ledger.credit(user, "adjust", b.points, "admin", b.reason, settings.expires_at(S, tp.now()))
  else
    id, balance = ledger.debit(user, "adjust", -b.points, "admin", b.reason)
    if not id then
      tp.fail(409, "insufficient_points", ("the member has %d points"):format(balance), { balance = balance })
    end
  end
  tp.log("info", "points adjusted", { entry = id, points = b.points })
  return 201, { entry = tp.db.one([[SELECT id, user, kind, points, balance, source, reason, created_at
    FROM points_entries WHERE id = ?]], id), balance = balance }
end

local function admin_report(req) return report.build(req, S.redeem) end

-- ---- what other plugins call

local exports = {}

local function source_of(source)
  if type(source) ~= "string" or #source > 120 or not source:match("^[%w_%-%.:/@]+$") then
    check.field_error("source", "must be 1-120 letters, digits, '_', '-', '.', ':', '/' or '@'")
  end
  return source
end

---Gives user n > 0 points (a reward: sign-in, friend_assist), as an earn entry
---whose lot expires as the brand's expiry says. Once per source: a second
---call with the same source gives nothing and answers the first entry.
---@param user string
---@param n integer
---@param source string  what it is for, e.g. "signin:2026-11-11"
---@param reason string?
---@return {entry_id: integer, balance: integer, granted: boolean}
function exports.grant(user, n, source, reason)
  check.user(user, "user")
  check.integer(n, "points", 1, 100000000)
  source = (tp.caller() or "points") .. ":" .. source_of(source)
  local seen = tp.db.one("SELECT id FROM points_entries WHERE kind = 'earn' AND source = ? AND user = ?", source, user)
  if seen then return { entry_id = seen.id, balance = ledger.balance(user), granted = false } end
  local id, balance = ledger.credit(user, "earn", n, source,
    reason and check.text(reason, "reason", 200) or nil, settings.expires_at(S, tp.now()))
  return { entry_id = id, balance = balance, granted = true }
end

---Takes n > 0 points from user for something the calling plugin sells (a
---make-up sign-in): 409 insufficient_points when the balance does not cover
---them, which rolls back the caller's transaction with it.
---@return {entry_id: integer, balance: integer}
function exports.charge(user, n, source, reason)
  check.user(user, "user")
  check.integer(n, "points", 1, 100000000)
  source = (tp.caller() or "points") .. ":" .. source_of(source)
  local id, balance = ledger.debit(user, "spend", n, source, reason and check.text(reason, "reason", 200) or nil)
  if not id then
    tp.fail(409, "insufficient_points", ("you have %d points; this takes %d"):format(balance, n),
      { balance = balance, points = n })
  end
  return { entry_id = id, balance = balance }
end

---The user's balance.
function exports.balance(user)
  check.user(user, "user")
  return ledger.balance(user)
end

exports.checkout_quote = checkout.quote
exports.checkout_spend = checkout.spend
exports.checkout_release = checkout.release
exports.checkout_reclaim = checkout.reclaim
exports.member_merge = merge.member_merge
exports.member_unmerge = merge.member_unmerge

local PAGE = function(items) return { type = "object", required = { "items" }, properties = {
  items = { type = "array", items = items }, next_after = INT } } end
local EXCHANGED = { type = "object", required = { "exchange", "balance" }, properties = {
  exchange = mall.EXCHANGE_SCHEMA, balance = INT } }

local ROUTES = {
  { method = "GET", path = "/points/me", handler = get_me, summary = "My points: balance and when they expire",
    response = ACCOUNT_SCHEMA },
  { method = "GET", path = "/points/me/entries", handler = get_my_entries, summary = "My points ledger, newest first",
    query = { limit = INT, after = { type = "integer", description = "next_after of the previous page" } },
    response = ENTRIES_SCHEMA, errors = { [400] = { "invalid_query" } } },
  { method = "GET", path = "/points/mall/items", auth = "none", handler = mall.list,
    summary = "The points mall: items on offer", query = { limit = INT, after = INT },
    response = PAGE(mall.ITEM_SCHEMA), errors = { [400] = { "invalid_query" } } },
  { method = "POST", path = "/points/mall/items/{id:int}/exchange", handler = mall.exchange, status = 201,
    rate_class = "claim", summary = "Exchange points for an item (all or nothing)", response = EXCHANGED,
    errors = { [403] = { "risk_*" }, [404] = { "item_not_found" },
               [409] = { "sold_out", "limit_reached", "insufficient_points", "out_of_stock" } } },
  { method = "GET", path = "/points/mall/exchanges", handler = mall.mine, summary = "My exchanges, newest first",
    query = { limit = INT, after = INT }, response = PAGE(mall.EXCHANGE_SCHEMA), errors = { [400] = { "invalid_query" } } },

  { method = "GET", path = "/points/accounts/{user}", auth = "admin", handler = admin_account,
    summary = "A member's points: balance, expiring lots, newest entries", response = ACCOUNT_SCHEMA,
    errors = { [400] = { "invalid_field" }, [404] = { "member_not_found" } } },
  { method = "POST", path = "/points/accounts/{user}/adjust", auth = "admin", handler = admin_adjust, status = 201,
    summary = "Adjust a member's points, with a reason", body = ADJUST:body(),
    response = { type = "object", required = { "entry", "balance" }, properties = { entry = ENTRY_SCHEMA, balance = INT } },
    errors = { [400] = { "invalid_field", "invalid_body" }, [404] = { "member_not_found" },
               [409] = { "insufficient_points" } } },
  { method = "GET", path = "/points/report", auth = "admin", handler = admin_report,
    summary = "Points liability over local days: issued, spent, expired, adjusted, outstanding",
    query = { from = { type = "string", required = true, description = "first local day, YYYY-MM-DD" },
              to = { type = "string", required = true, description = "last local day, YYYY-MM-DD (included)" } },
    response = report.SCHEMA, errors = { [400] = { "invalid_query" } } },
  { method = "GET", path = "/points/mall/items", auth = "admin", handler = mall.admin_list,
    summary = "Every mall item, paused ones too", query = { limit = INT, after = INT },
    response = PAGE(mall.ITEM_SCHEMA), errors = { [400] = { "invalid_query" } } },
  { method = "POST", path = "/points/mall/items", auth = "admin", handler = mall.create, status = 201,
    summary = "List an item in the points mall: a SKU or a coupon template", body = mall.ITEM:body(),
    response = mall.ITEM_SCHEMA, errors = { [400] = { "invalid_field", "invalid_body" }, [404] = { "sku_not_found" } } },
  { method = "PATCH", path = "/points/mall/items/{id:int}", auth = "admin", handler = mall.update,
    summary = "Change a mall item's title, price, stock, limit or status", body = mall.ITEM:body(true),
    response = mall.ITEM_SCHEMA, errors = { [400] = { "invalid_field", "invalid_body" }, [404] = { "item_not_found" } } },
}

exports.schemas = function() return schema.document(ROUTES) end

return {
  name = "points",
  version = "1.1.0",
  description = "points (积分): ledger, FIFO expiry, checkout, refunds, points mall, liability report",
  migrations = {
    [[
    CREATE TABLE points_accounts (
      user TEXT PRIMARY KEY,
      balance INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE points_entries (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('earn', 'spend', 'return', 'clawback', 'expire', 'adjust',
                                         'merge_in', 'merge_out')),
      points INTEGER NOT NULL CHECK (points <> 0),
      balance INTEGER NOT NULL,
      source TEXT,
      reason TEXT,
      created_at INTEGER NOT NULL
    );
    CREATE INDEX points_entries_user ON points_entries(user, id);
    CREATE INDEX points_entries_time ON points_entries(created_at);
    CREATE INDEX points_entries_source ON points_entries(source) WHERE source IS NOT NULL;
    CREATE TABLE points_lots (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      points INTEGER NOT NULL CHECK (points > 0),
      remaining INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= points),
      entry_id INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      expires_at INTEGER
    );
    CREATE INDEX points_lots_open ON points_lots(user, expires_at) WHERE remaining > 0;
    CREATE INDEX points_lots_due ON points_lots(expires_at) WHERE remaining > 0;
    CREATE TABLE points_uses (
      entry_id INTEGER NOT NULL,
      lot_id INTEGER NOT NULL,
      points INTEGER NOT NULL CHECK (points > 0),
      restored INTEGER NOT NULL DEFAULT 0 CHECK (restored >= 0 AND restored <= points),
      PRIMARY KEY (entry_id, lot_id)
    ) WITHOUT ROWID;
    CREATE TABLE points_orders (
      order_id INTEGER PRIMARY KEY,
      user TEXT NOT NULL,
      spent INTEGER NOT NULL,
      spend_entry INTEGER,
      returned INTEGER NOT NULL CHECK (returned <= spent),
      earned INTEGER NOT NULL,
      clawed INTEGER NOT NULL,
      shortfall INTEGER NOT NULL,
      CHECK (clawed + shortfall <= earned)
    );
    CREATE TABLE points_items (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      kind TEXT NOT NULL CHECK (kind IN ('sku', 'coupon')),
      sku TEXT,
      template_id INTEGER,
      title TEXT NOT NULL,
      points_price INTEGER NOT NULL CHECK (points_price >= 1),
      stock INTEGER NOT NULL CHECK (stock >= 0),
      per_user_limit INTEGER,
      status TEXT NOT NULL,
      exchanged INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE TABLE points_exchanges (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      item_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      kind TEXT NOT NULL,
      sku TEXT,
      coupon_id INTEGER,
      points INTEGER NOT NULL,
      created_at INTEGER NOT NULL
    );
    CREATE INDEX points_exchanges_user ON points_exchanges(user, item_id);
    CREATE TABLE points_daily (
      day TEXT NOT NULL,
      kind TEXT NOT NULL,
      points INTEGER NOT NULL,
      entries INTEGER NOT NULL,
      PRIMARY KEY (day, kind)
    ) WITHOUT ROWID;
    CREATE TABLE points_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL,
      balance INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE points_merge_moves (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('lot', 'order', 'exchange')),
      row_id INTEGER NOT NULL,
      PRIMARY KEY (merge_id, kind, row_id)
    ) WITHOUT ROWID;
    ]],
    -- 1.1.0: points_entries's value lists checked with ORs, not IN (...): SQLite
    -- evaluates a CHECK's IN list of three or more values by building a temporary b-tree
    -- of it on every row written, about 30k instructions, and every order paid, points
    -- spent, returned or expired writes an entry (`tidepool check` warns of it). A CHECK
    -- cannot change in place, so the table is rebuilt: new, copy, drop, rename, indexes
    -- again.
    [[
    CREATE TABLE points_entries_v2 (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind = 'earn' OR kind = 'spend' OR kind = 'return' OR kind = 'clawback'
        OR kind = 'expire' OR kind = 'adjust' OR kind = 'merge_in'
        OR kind = 'merge_out'),
      points INTEGER NOT NULL CHECK (points <> 0),
      balance INTEGER NOT NULL,
      source TEXT,
      reason TEXT,
      created_at INTEGER NOT NULL
    );
    INSERT INTO points_entries_v2 (
        id, user, kind, points, balance, source, reason, created_at)
      SELECT
        id, user, kind, points, balance, source, reason, created_at
      FROM points_entries;
    UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'points_entries'), 0))
      WHERE name = 'points_entries_v2';
    DROP TABLE points_entries;
    ALTER TABLE points_entries_v2 RENAME TO points_entries;
    CREATE INDEX points_entries_user ON points_entries(user, id);
    CREATE INDEX points_entries_time ON points_entries(created_at);
    CREATE INDEX points_entries_source ON points_entries(source) WHERE source IS NOT NULL;
    ]],
  },
  routes = ROUTES,
  subscribe = {
    ["order.paid"] = checkout.on_paid,
    ["order.refunded"] = checkout.on_refunded,
  },
  jobs = {
    ---Expires the lots due now, 500 at a time (again at once while more are due).
    expire = function()
      if ledger.expire_due(500) == 500 then
        tp.jobs.schedule("expire", { at = tp.now() }, { after = 0, key = "expire:more" })
      end
    end,
  },
  exports = exports,
}
