---@diagnostic disable: undefined-global
-- orders: the order every mechanic ends in. A user's checkout (POST /orders)
-- and every campaign plugin (tp.call("orders", "create", spec)) create orders
-- here; the payments plugin marks them paid; refunds run as retryable jobs.
-- Stock is reserved in the catalog at creation and returned on cancel.
-- States and their transitions: lib/lifecycle.lua; the price: lib/pricing.lua.

---@class OrdersConfig
---@field unpaid_timeout_seconds integer? cancel unpaid orders after this (default 900)
---@field max_unpaid_orders integer? unpaid orders a user may hold at once (default 3)
---@field max_lines integer? lines per order (default 20)
---@field max_qty_per_line integer? (default 99)
---@field payment_plugin string? the only plugin allowed to mark orders paid (default "payments")
---@field attribution_plugin string? asked for referrer/store/guide at creation (e.g. "referral")
---@field member_price_plugin string? asked for the buyer's member prices at creation (e.g. "tiers")
---@field promotions_plugin string? asked what its promotions take off a checkout at list price (e.g. "promotions")

local check = require("tp.check")
local create = require("lib.create")
local lifecycle = require("lib.lifecycle")
local store = require("lib.store")
local merge = require("lib.merge")
local unpaid = require("lib.unpaid")
local tporders = require("tp.orders")

local STATUSES = { pending_payment = true, awaiting_balance = true, paid = true, completed = true,
                   cancelled = true, refunding = true, refunded = true }

-- ---- the answers, as the OpenAPI document states them (money in integer fen)

local INT, STR = { type = "integer" }, { type = "string" }
local FEN = { type = "integer", minimum = 0, description = "integer fen" }
local ORDER_SCHEMA, REFUND_SCHEMA = tporders.SCHEMA, tporders.REFUND_SCHEMA

local PAGE_SCHEMA = { type = "object", required = { "items" }, properties = {
  items = { type = "array", items = ORDER_SCHEMA },
  next_after = { type = "integer", description = "the cursor of the next page (absent on the last)" } } }

local ADMIN_PAGE_SCHEMA = { type = "object", required = { "items", "totals" }, properties = {
  items = PAGE_SCHEMA.properties.items, next_after = PAGE_SCHEMA.properties.next_after,
  totals = { type = "array", items = { type = "object", required = { "status", "orders", "total_fen" },
    properties = { status = STR, orders = INT, total_fen = FEN } } } } }

---A page of order rows, newest first: the orders and the cursor of the next page.
local function page(rows, limit)
  local items = tp.json.array()
  for i, row in ipairs(rows) do items[i] = store.shape(row, store.lines(row.id)) end
  return { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

-- ---- the user's own orders

---The caller's order, or 404 (another user's order is as absent as a missing one).
local function own_order(req)
  local o = store.detail(req.params.id)
  if not o or o.user ~= req.user then tp.fail(404, "order_not_found", "no such order") end
  return o
end

---POST /orders {lines = [{sku, qty}], coupon_id?, points?}. The route is idempotent:
---the host answers a retried Idempotency-Key with the first order.
local function post_order(req)
  local body = check.body(req.body)
  return 201, create.order({ user = req.user, lines = body.lines, coupon_id = body.coupon_id,
                             points = body.points, promo_code = body.promo_code }, nil)
end

---POST /orders/preview {lines, coupon_id?, points?}: the checkout's price now, nothing written.
local function preview_order(req)
  return 200, create.preview(req.user, req.body == nil and {} or req.body)
end

local LIST_ORDERS_SQL = "SELECT " .. store.ORDER_COLUMNS .. [[ FROM orders_orders
    WHERE user = ?1 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3)
    ORDER BY id DESC LIMIT ?4]]

---GET /orders?status=&limit=&after=
local function list_orders(req)
  local limit, after = check.page(req.query, 20, 100)
  local status = check.enum(req.query.status, "status", STATUSES, true)
  local rows = tp.db.query(LIST_ORDERS_SQL, req.user, status, after, limit)
  return 200, page(rows, limit)
end

local function get_order(req)
  return 200, own_order(req)
end

local function cancel_order(req)
  local o = own_order(req)
  if not lifecycle.cancel(o.id, "user") then
    tp.fail(409, "not_cancellable", ("an order that is %s cannot be cancelled"):format(o.status),
      { status = o.status })
  end
  return 200, store.detail(o.id)
end

local function confirm_order(req)
  local o = own_order(req)
  if not lifecycle.complete(o.id) then
    tp.fail(409, "not_confirmable", ("an order that is %s cannot be confirmed"):format(o.status),
      { status = o.status })
  end
  return 200, store.detail(o.id)
end

-- ---- operators

---The ?store= an operator's request is scoped to (a store manager's key or
---session always names its own: the host admits it only so), or nil.
local function store_scope(req)
  return check.ident(req.query.store, "store", 64, true)
end

---An order of the scope: 404 for one of another store, as for none at all.
local function scoped_order(req)
  local scope = store_scope(req)
  local o = store.load(req.params.id)
  if not o or (scope and o.attribution.store ~= scope) then tp.fail(404, "order_not_found", "no such order") end
  return o
end

local ADMIN_LIST_SQL = "SELECT " .. store.ORDER_COLUMNS .. [[ FROM orders_orders
    WHERE (?1 IS NULL OR user = ?1) AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR id < ?3)
      AND (?5 IS NULL OR store = ?5)
    ORDER BY id DESC LIMIT ?4]]

local function admin_list(req)
  local limit, after = check.page(req.query, 50, 500)
  local status = check.enum(req.query.status, "status", STATUSES, true)
  local user = check.user(req.query.user, "user", true)
  local scope = store_scope(req)
  local rows = tp.db.query(ADMIN_LIST_SQL, user, status, after, limit, scope)
  local answer = page(rows, limit)
  answer.totals = tp.db.query([[SELECT status, count(*) AS orders, sum(total_fen) AS total_fen FROM orders_orders
    WHERE ?1 IS NULL OR store = ?1 GROUP BY status]], scope)
  return 200, answer
end

local function admin_get(req)
  return 200, store.detail(scoped_order(req).id)
end

local function admin_refund(req)
  scoped_order(req)
  local body = req.body == nil and {} or check.body(req.body)
  local amount = check.integer(body.amount_fen, "amount_fen", 1, nil, true)
  local reason = check.text(body.reason, "reason", 200, true) or "operator"
  local refund, o = lifecycle.refund(req.params.id, amount, reason)
  return 202, { refund = refund, order = o }
end

local function admin_complete(req)
  local o = store.load(req.params.id)
  if not o then tp.fail(404, "order_not_found", "no such order") end
  if not lifecycle.complete(o.id) then
    tp.fail(409, "not_completable", ("an order that is %s cannot be completed"):format(o.status))
  end
  return 200, store.detail(o.id)
end

local function admin_cancel(req)
  local o = store.load(req.params.id)
  if not o then tp.fail(404, "order_not_found", "no such order") end
  if not lifecycle.cancel(o.id, "admin") then
    tp.fail(409, "not_cancellable", ("an order that is %s cannot be cancelled"):format(o.status))
  end
  return 200, store.detail(o.id)
end

-- ---- what other plugins call

local exports = {}

---Creates an order for spec.user (OrderSpec). A campaign plugin passes
---spec.campaign and per-line unit_price_fen; the campaign is recorded as the
---calling plugin, which later gets release_order(order) when the order's units
---go back (cancel, full refund) and reclaim_order(order) -> boolean when a
---payment arrives after the cancel.
function exports.create(spec)
  return create.order(spec, tp.caller())
end

---The fulfilment plugin (only; config fulfilment_plugin, default
---"fulfilment") records how far a paid order's goods went: "partially_shipped",
---"shipped", "delivered" or "picked_up". Only a paid order its campaign does
---not hold moves; returns whether it did. From then on a full refund returns
---no units to the catalog (the goods left): only restock does.
---@param id integer
---@param state string
---@return boolean
function exports.set_fulfilment(id, state)
  lifecycle.fulfilment_caller()
  return lifecycle.set_fulfilment(id, state)
end

---The fulfilment plugin (only) says goods of a shipped order came back:
---lines = {{line = n, qty = q}} (n: the line's place in order.lines). Those
---units go back to the catalog, at most what the line ordered in all.
---@param id integer
---@param lines {line: integer, qty: integer}[]
---@return boolean
function exports.restock(id, lines)
  lifecycle.fulfilment_caller()
  return lifecycle.restock(id, lines)
end

---The order, or nil.
function exports.get(id)
  return store.detail(id)
end

---Marks an order paid (PaymentNotice: stage 2 pays a two-payment order's
---balance); only the payment plugin may. Outcomes: lib/lifecycle.lua pay.
function exports.pay(notice)
  local allowed = tp.config().payment_plugin or "payments"
  if tp.caller() ~= allowed then
    tp.fail(403, "payment_forbidden", ("only the %s plugin may mark orders paid"):format(allowed))
  end
  local outcome, o = lifecycle.pay(notice)
  return { outcome = outcome, order = o }
end

---The payment plugin (only) books a refund it accepted as PROCESSING once the
---provider paid it out. Returns whether it changed anything.
---@param refund_no string
---@param provider_refund_id string?
---@return boolean
function exports.refund_settled(refund_no, provider_refund_id)
  if tp.caller() ~= (tp.config().payment_plugin or "payments") then
    tp.fail(403, "not_the_payment_plugin", "only the payment plugin settles refunds")
  end
  return lifecycle.refund_settled(refund_no, provider_refund_id)
end

---Requests a refund (amount_fen nil = all that is left); returns the refund
---(with parts when it is paid out from two payments: a presale's balance and
---deposit). An order awaiting its balance is refunded only whole (its deposit).
function exports.refund(id, amount_fen, reason)
  local refund = lifecycle.refund(id, amount_fen, reason or tp.caller() or "plugin")
  return refund
end

function exports.cancel(id, reason)
  return lifecycle.cancel(id, reason or "plugin")
end

function exports.complete(id)
  return lifecycle.complete(id)
end

---Lets a held order be fulfilled (its group formed). Only the campaign plugin
---that created the order may; returns true when the order was held.
function exports.release_hold(id)
  local row = tp.db.one("SELECT campaign_plugin FROM orders_orders WHERE id = ?", id)
  if not row then tp.fail(404, "order_not_found", "no such order") end
  if row.campaign_plugin == nil or row.campaign_plugin ~= tp.caller() then
    tp.fail(403, "hold_forbidden", "only the campaign that created an order may release its hold")
  end
  return tp.db.exec("UPDATE orders_orders SET held = 0 WHERE id = ? AND held = 1", id) == 1
end

---What the shop knows of a buyer: how many of her orders were ever paid and
---when the first was. A campaign's "new users only" means paid_orders == 0.
function exports.customer(user)
  check.user(user, "user")
  local row = tp.db.one([[SELECT count(*) AS paid_orders, min(paid_at) AS first_paid_at
    FROM orders_orders WHERE user = ? AND paid_at IS NOT NULL]], user)
  return { paid_orders = row.paid_orders, first_paid_at = row.first_paid_at }
end

---The members plugin merges member `from` into `into` (one person): every
---order of `from` becomes `into`'s, attribution untouched; see lib/merge.lua.
---@param from string
---@param into string
---@param merge_id integer
---@return {orders: integer} moved
function exports.member_merge(from, into, merge_id)
  return merge.merge(from, into, merge_id)
end

---Undoes merge merge_id: the orders it moved go back to `from`.
---@param from string
---@param into string
---@param merge_id integer
---@return {orders: integer} moved back
function exports.member_unmerge(from, into, merge_id)
  return merge.unmerge(from, into, merge_id)
end

local POST_BODY = { type = "object", required = { "lines" }, properties = {
  lines = { type = "array", items = { type = "object", required = { "sku", "qty" },
    properties = { sku = { type = "string" }, qty = { type = "integer", minimum = 1 } } } },
  coupon_id = { type = "integer" },
  points = { type = "integer", minimum = 1, description = "points offered as part payment, applied "
    .. "after the coupon and capped by the brand's rate and cap (the order says how many it took)" },
  promo_code = { type = "string", minLength = 1, maxLength = 32,
    description = "a 优惠码: runs the promotion that requires it (promotions_plugin)" } } }

local SHARE = { type = "object", required = { "promotion_id", "discount_fen" }, properties = {
  promotion_id = INT, discount_fen = FEN } }
local PREVIEW_SCHEMA = { type = "object",
  required = { "lines", "items_fen", "promotions_fen", "promotions", "coupon_fen", "points", "points_fen",
               "discount_fen", "total_fen", "hints", "gifts" },
  properties = {
    lines = { type = "array", items = { type = "object", properties = {
      sku = STR, title = STR, qty = INT, list_price_fen = FEN, unit_price_fen = FEN, amount_fen = FEN,
      discount_fen = { type = "integer", minimum = 0, description = "promotions + coupon + points on this line" },
      paid_fen = FEN, promotions = { type = "array", items = SHARE, description = "each promotion's share" } } } },
    items_fen = FEN, promotions_fen = FEN, coupon_fen = FEN, points = INT, points_fen = FEN,
    discount_fen = FEN, total_fen = FEN, coupon_id = { type = "integer", nullable = true },
    promotions = { type = "array", items = { type = "object", properties = {
      id = INT, name = STR, kind = STR, discount_fen = FEN, stacks_with_coupon = { type = "boolean" },
      lines = { type = "array", items = { type = "object", properties = { line = INT, sku = STR, discount_fen = FEN } } } } } },
    hints = { type = "array", description = "凑单: what to add to reach a promotion's next tier", items = {
      type = "object", properties = { promotion_id = INT, name = STR, kind = STR, tier = INT,
        add_fen = FEN, add_qty = INT, off_fen = FEN, percent = INT, gift_sku = STR, gift_qty = INT,
        coupon_template_id = INT, message = STR } } },
    gifts = { type = "array", description = "满送 / 赠品: what the order would be given (a SKU while its stock lasts, "
      .. "a coupon on payment)", items = { type = "object", properties = { promotion_id = INT, name = STR, tier = INT,
        gift_sku = STR, gift_qty = INT, coupon_template_id = INT } } },
    promo_code = { type = "object", description = "the code given: whether its promotion took something",
      properties = { code = STR, promotion_id = INT, applied = { type = "boolean" } } } } }

local IDEMPOTENCY = { ["Idempotency-Key"] = {
  description = "repeat a create with the same key to get the same order, never a second one" } }

return {
  name = "orders",
  version = "1.10.0",
  description = "orders, their states, stock reservation, unpaid timeout and refunds",
  migrations = {
    [[
    CREATE TABLE orders_orders (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('pending_payment', 'paid', 'completed', 'cancelled',
                                             'refunding', 'refunded')),
      items_fen INTEGER NOT NULL CHECK (items_fen >= 1),
      discount_fen INTEGER NOT NULL CHECK (discount_fen >= 0),
      total_fen INTEGER NOT NULL CHECK (total_fen = items_fen - discount_fen AND total_fen >= 1),
      paid_fen INTEGER NOT NULL DEFAULT 0,
      refund_requested_fen INTEGER NOT NULL DEFAULT 0 CHECK (refund_requested_fen <= paid_fen),
      refunded_fen INTEGER NOT NULL DEFAULT 0 CHECK (refunded_fen <= refund_requested_fen),
      coupon_id INTEGER,
      campaign_plugin TEXT,
      campaign_id TEXT,
      campaign_stacks INTEGER NOT NULL DEFAULT 0,
      referrer TEXT, referrer2 TEXT, store TEXT, guide TEXT,
      idempotency_key TEXT,
      fingerprint TEXT,
      stock_held INTEGER NOT NULL DEFAULT 1,
      transaction_id TEXT UNIQUE,
      late_payment INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL,
      pay_deadline INTEGER NOT NULL,
      paid_at INTEGER, cancelled_at INTEGER, cancel_reason TEXT, completed_at INTEGER,
      refunded_at INTEGER
    );
    CREATE UNIQUE INDEX orders_orders_idempotency ON orders_orders(user, idempotency_key)
      WHERE idempotency_key IS NOT NULL;
    CREATE INDEX orders_orders_user ON orders_orders(user, status);
    CREATE TABLE orders_lines (
      order_id INTEGER NOT NULL,
      line_no INTEGER NOT NULL,
      sku TEXT NOT NULL,
      product_id INTEGER NOT NULL,
      title TEXT NOT NULL,
      qty INTEGER NOT NULL CHECK (qty >= 1),
      list_price_fen INTEGER NOT NULL,
      unit_price_fen INTEGER NOT NULL CHECK (unit_price_fen >= 1),
      amount_fen INTEGER NOT NULL CHECK (amount_fen = qty * unit_price_fen),
      discount_fen INTEGER NOT NULL CHECK (discount_fen >= 0 AND discount_fen <= amount_fen),
      paid_fen INTEGER NOT NULL CHECK (paid_fen = amount_fen - discount_fen),
      PRIMARY KEY (order_id, line_no)
    ) WITHOUT ROWID;
    CREATE TABLE orders_refunds (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      refund_no TEXT NOT NULL UNIQUE,
      order_id INTEGER NOT NULL,
      transaction_id TEXT NOT NULL,
      amount_fen INTEGER NOT NULL CHECK (amount_fen >= 1),
      reason TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('order', 'duplicate_payment')),
      status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded')),
      provider_refund_id TEXT,
      created_at INTEGER NOT NULL,
      succeeded_at INTEGER
    );
    CREATE INDEX orders_refunds_order ON orders_refunds(order_id);
    CREATE UNIQUE INDEX orders_refunds_duplicate ON orders_refunds(transaction_id)
      WHERE kind = 'duplicate_payment';
    ]],
    -- 1.1.0: a campaign may hold a paid order back from fulfilment (a group pending)
    [[ALTER TABLE orders_orders ADD COLUMN held INTEGER NOT NULL DEFAULT 0;]],
    -- 1.2.0: merging members (lib/merge.lua): one row per merge, the orders it moved
    [[
    CREATE TABLE orders_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE TABLE orders_merge_moves (
      merge_id INTEGER NOT NULL,
      order_id INTEGER NOT NULL,
      idempotency_key TEXT,  -- unused since 1.3.0
      PRIMARY KEY (merge_id, order_id)
    ) WITHOUT ROWID;
    ]],
    -- 1.3.0: Idempotency-Keys are the host's (idempotent = true on the route);
    -- orders_orders.idempotency_key and fingerprint are no longer written
    [[DROP INDEX orders_orders_idempotency;]],
    -- 1.4.0: points as part payment (the points plugin): how many the order
    -- spent and what they paid; points_fen is part of discount_fen, so
    -- total_fen = items_fen - discount_fen stays the one totals rule
    -- (SQLite checks an added CHECK with a PRAGMA no plugin may run: a trigger holds the rule)
    [[
    ALTER TABLE orders_orders ADD COLUMN points INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE orders_orders ADD COLUMN points_fen INTEGER NOT NULL DEFAULT 0;
    CREATE TRIGGER orders_orders_points BEFORE INSERT ON orders_orders
    WHEN NOT (NEW.points >= 0 AND NEW.points_fen >= 0 AND NEW.points_fen <= NEW.discount_fen
              AND (NEW.points_fen = 0) = (NEW.points = 0))
    BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: orders_orders points'); END;
    ]],
    -- 1.5.0: the last-touch source (JSON), frozen at creation from order_source (analytics)
    [[ALTER TABLE orders_orders ADD COLUMN source TEXT;]],
    -- 1.6.0: fulfilment (the fulfilment plugin): how far the goods went. NULL
    -- until something ships; a trigger holds the values (no CHECK can be added)
    [[
    ALTER TABLE orders_orders ADD COLUMN fulfilment TEXT;
    CREATE TRIGGER orders_orders_fulfilment BEFORE UPDATE OF fulfilment ON orders_orders
    WHEN NEW.fulfilment IS NOT NULL AND NEW.fulfilment NOT IN
      ('partially_shipped', 'shipped', 'delivered', 'picked_up')
    BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: orders_orders fulfilment'); END;
    CREATE TABLE orders_restocks (
      order_id INTEGER NOT NULL,
      line_no INTEGER NOT NULL,
      qty INTEGER NOT NULL CHECK (qty >= 0),
      PRIMARY KEY (order_id, line_no)
    ) WITHOUT ROWID;
    ]],
    -- 1.7.0: what each promotion (promotions_plugin, pricing step 3) took off each line;
    -- the lines' discount_fen already hold it
    [[
    CREATE TABLE orders_promotion_lines (
      order_id INTEGER NOT NULL,
      line_no INTEGER NOT NULL,
      promotion_id INTEGER NOT NULL,
      kind TEXT NOT NULL,
      name TEXT NOT NULL,
      discount_fen INTEGER NOT NULL CHECK (discount_fen >= 0),
      PRIMARY KEY (order_id, line_no, promotion_id)
    ) WITHOUT ROWID;
    ]],
    -- 1.8.0: orders paid in two payments (presale, 定金 then 尾款): the state
    -- awaiting_balance, the deposit's terms frozen on the order, the balance's
    -- own transaction, a forfeited deposit, and a promised ship date. A CHECK
    -- on status cannot be changed in place, so the table is rebuilt (SQLite's
    -- recipe: new table, copy, drop, rename); the rules the 1.4.0 and 1.6.0
    -- triggers held become CHECKs of the new table, and its AUTOINCREMENT
    -- sequence carries over, so no order number is ever given twice.
    [[
    CREATE TABLE orders_orders_v2 (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      -- the value lists are written as ORs, not IN (...): SQLite evaluates a CHECK's IN
      -- list of three or more constants by building a temporary b-tree of it on every
      -- row written (EXPLAIN INSERT shows an OpenEphemeral for IN, none for the ORs)
      status TEXT NOT NULL CHECK (status = 'pending_payment' OR status = 'awaiting_balance'
        OR status = 'paid' OR status = 'completed' OR status = 'cancelled' OR status = 'refunding'
        OR status = 'refunded'),
      items_fen INTEGER NOT NULL CHECK (items_fen >= 1),
      discount_fen INTEGER NOT NULL CHECK (discount_fen >= 0),
      total_fen INTEGER NOT NULL CHECK (total_fen = items_fen - discount_fen AND total_fen >= 1),
      paid_fen INTEGER NOT NULL DEFAULT 0,
      refund_requested_fen INTEGER NOT NULL DEFAULT 0 CHECK (refund_requested_fen <= paid_fen),
      refunded_fen INTEGER NOT NULL DEFAULT 0 CHECK (refunded_fen <= refund_requested_fen),
      coupon_id INTEGER,
      campaign_plugin TEXT,
      campaign_id TEXT,
      campaign_stacks INTEGER NOT NULL DEFAULT 0,
      referrer TEXT, referrer2 TEXT, store TEXT, guide TEXT,
      idempotency_key TEXT,
      fingerprint TEXT,
      stock_held INTEGER NOT NULL DEFAULT 1,
      transaction_id TEXT UNIQUE,
      late_payment INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL,
      pay_deadline INTEGER NOT NULL,
      paid_at INTEGER, cancelled_at INTEGER, cancel_reason TEXT, completed_at INTEGER,
      refunded_at INTEGER,
      held INTEGER NOT NULL DEFAULT 0,
      points INTEGER NOT NULL DEFAULT 0,
      points_fen INTEGER NOT NULL DEFAULT 0,
      source TEXT,
      fulfilment TEXT CHECK (fulfilment IS NULL OR fulfilment = 'partially_shipped'
        OR fulfilment = 'shipped' OR fulfilment = 'delivered' OR fulfilment = 'picked_up'),
      -- two payments: deposit_fen is the first, total_fen - deposit_fen the
      -- balance; the deposit counts deposit_worth_fen at the balance, and the
      -- difference (膨胀) is part of discount_fen. NULL: a one-payment order
      deposit_fen INTEGER CHECK (deposit_fen IS NULL OR deposit_fen >= 1),
      deposit_worth_fen INTEGER,
      balance_starts_at INTEGER,
      balance_ends_at INTEGER,
      deposit_refundable INTEGER,
      deposit_paid_at INTEGER,
      balance_transaction_id TEXT UNIQUE,
      forfeited_fen INTEGER NOT NULL DEFAULT 0 CHECK (forfeited_fen >= 0 AND forfeited_fen <= paid_fen),
      ships_from INTEGER,
      CHECK (points >= 0 AND points_fen >= 0 AND points_fen <= discount_fen AND (points_fen = 0) = (points = 0)),
      CHECK (deposit_fen IS NULL OR (deposit_worth_fen >= deposit_fen AND deposit_worth_fen < items_fen
             AND deposit_worth_fen - deposit_fen <= discount_fen AND balance_starts_at IS NOT NULL
             AND balance_ends_at > balance_starts_at AND (deposit_refundable = 0 OR deposit_refundable = 1)))
    );
    INSERT INTO orders_orders_v2 (id, user, status, items_fen, discount_fen, total_fen, paid_fen,
        refund_requested_fen, refunded_fen, coupon_id, campaign_plugin, campaign_id, campaign_stacks, referrer,
        referrer2, store, guide, idempotency_key, fingerprint, stock_held, transaction_id, late_payment, created_at,
        pay_deadline, paid_at, cancelled_at, cancel_reason, completed_at, refunded_at, held, points, points_fen,
        source, fulfilment)
      SELECT id, user, status, items_fen, discount_fen, total_fen, paid_fen, refund_requested_fen, refunded_fen,
        coupon_id, campaign_plugin, campaign_id, campaign_stacks, referrer, referrer2, store, guide,
        idempotency_key, fingerprint, stock_held, transaction_id, late_payment, created_at, pay_deadline, paid_at,
        cancelled_at, cancel_reason, completed_at, refunded_at, held, points, points_fen, source, fulfilment
      FROM orders_orders ORDER BY id;
    UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'orders_orders'), 0))
      WHERE name = 'orders_orders_v2';
    DROP TABLE orders_orders;
    ALTER TABLE orders_orders_v2 RENAME TO orders_orders;
    CREATE INDEX orders_orders_user ON orders_orders(user, status);
    ]],
    -- 1.9.0: the payments' transaction ids unique by partial indexes, not by
    -- UNIQUE columns: a UNIQUE column indexes its NULLs too, so every order
    -- created (both ids NULL until paid) wrote two index entries that nothing
    -- reads, about 12k instructions an order. A column's UNIQUE cannot be
    -- dropped in place, so the table is rebuilt as in 1.8.0 (about 3.4 s a
    -- million orders, within limits.migration_ms; README.md).
    [[
    CREATE TABLE orders_orders_v3 (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status = 'pending_payment' OR status = 'awaiting_balance'
        OR status = 'paid' OR status = 'completed' OR status = 'cancelled' OR status = 'refunding'
        OR status = 'refunded'),
      items_fen INTEGER NOT NULL CHECK (items_fen >= 1),
      discount_fen INTEGER NOT NULL CHECK (discount_fen >= 0),
      total_fen INTEGER NOT NULL CHECK (total_fen = items_fen - discount_fen AND total_fen >= 1),
      paid_fen INTEGER NOT NULL DEFAULT 0,
      refund_requested_fen INTEGER NOT NULL DEFAULT 0 CHECK (refund_requested_fen <= paid_fen),
      refunded_fen INTEGER NOT NULL DEFAULT 0 CHECK (refunded_fen <= refund_requested_fen),
      coupon_id INTEGER,
      campaign_plugin TEXT,
      campaign_id TEXT,
      campaign_stacks INTEGER NOT NULL DEFAULT 0,
      referrer TEXT, referrer2 TEXT, store TEXT, guide TEXT,
      idempotency_key TEXT,
      fingerprint TEXT,
      stock_held INTEGER NOT NULL DEFAULT 1,
      transaction_id TEXT,
      late_payment INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL,
      pay_deadline INTEGER NOT NULL,
      paid_at INTEGER, cancelled_at INTEGER, cancel_reason TEXT, completed_at INTEGER,
      refunded_at INTEGER,
      held INTEGER NOT NULL DEFAULT 0,
      points INTEGER NOT NULL DEFAULT 0,
      points_fen INTEGER NOT NULL DEFAULT 0,
      source TEXT,
      fulfilment TEXT CHECK (fulfilment IS NULL OR fulfilment = 'partially_shipped'
        OR fulfilment = 'shipped' OR fulfilment = 'delivered' OR fulfilment = 'picked_up'),
      -- two payments: deposit_fen is the first, total_fen - deposit_fen the
      -- balance; the deposit counts deposit_worth_fen at the balance, and the
      -- difference (膨胀) is part of discount_fen. NULL: a one-payment order
      deposit_fen INTEGER CHECK (deposit_fen IS NULL OR deposit_fen >= 1),
      deposit_worth_fen INTEGER,
      balance_starts_at INTEGER,
      balance_ends_at INTEGER,
      deposit_refundable INTEGER,
      deposit_paid_at INTEGER,
      balance_transaction_id TEXT,
      forfeited_fen INTEGER NOT NULL DEFAULT 0 CHECK (forfeited_fen >= 0 AND forfeited_fen <= paid_fen),
      ships_from INTEGER,
      CHECK (points >= 0 AND points_fen >= 0 AND points_fen <= discount_fen AND (points_fen = 0) = (points = 0)),
      CHECK (deposit_fen IS NULL OR (deposit_worth_fen >= deposit_fen AND deposit_worth_fen < items_fen
             AND deposit_worth_fen - deposit_fen <= discount_fen AND balance_starts_at IS NOT NULL
             AND balance_ends_at > balance_starts_at AND (deposit_refundable = 0 OR deposit_refundable = 1)))
    );
    INSERT INTO orders_orders_v3 (
        id, user, status, items_fen, discount_fen, total_fen, paid_fen, refund_requested_fen,
        refunded_fen, coupon_id, campaign_plugin, campaign_id, campaign_stacks, referrer, referrer2,
        store, guide, idempotency_key, fingerprint, stock_held, transaction_id, late_payment,
        created_at, pay_deadline, paid_at, cancelled_at, cancel_reason, completed_at, refunded_at,
        held, points, points_fen, source, fulfilment, deposit_fen, deposit_worth_fen,
        balance_starts_at, balance_ends_at, deposit_refundable, deposit_paid_at,
        balance_transaction_id, forfeited_fen, ships_from)
      SELECT
        id, user, status, items_fen, discount_fen, total_fen, paid_fen, refund_requested_fen,
        refunded_fen, coupon_id, campaign_plugin, campaign_id, campaign_stacks, referrer, referrer2,
        store, guide, idempotency_key, fingerprint, stock_held, transaction_id, late_payment,
        created_at, pay_deadline, paid_at, cancelled_at, cancel_reason, completed_at, refunded_at,
        held, points, points_fen, source, fulfilment, deposit_fen, deposit_worth_fen,
        balance_starts_at, balance_ends_at, deposit_refundable, deposit_paid_at,
        balance_transaction_id, forfeited_fen, ships_from
      FROM orders_orders ORDER BY id;
    UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'orders_orders'), 0))
      WHERE name = 'orders_orders_v3';
    DROP TABLE orders_orders;
    ALTER TABLE orders_orders_v3 RENAME TO orders_orders;
    CREATE INDEX orders_orders_user ON orders_orders(user, status);
    CREATE UNIQUE INDEX orders_orders_transaction ON orders_orders(transaction_id)
      WHERE transaction_id IS NOT NULL;
    CREATE UNIQUE INDEX orders_orders_balance_transaction ON orders_orders(balance_transaction_id)
      WHERE balance_transaction_id IS NOT NULL;
    ]],
    -- 1.10.0: the unpaid timeout is one sweep at the earliest deadline, not a job
    -- per order (lib/unpaid.lua); orders scheduled before keep their own jobs
    [[
    CREATE INDEX orders_orders_unpaid ON orders_orders(pay_deadline) WHERE status = 'pending_payment';
    CREATE TABLE orders_sweep (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      due INTEGER,                  -- when sweep_unpaid is scheduled (NULL: it is not)
      swept_deadline INTEGER NOT NULL,  -- the watermark: every pending order at or below
      swept_id INTEGER NOT NULL         -- (swept_deadline, swept_id) has its expire_unpaid job
    );
    INSERT INTO orders_sweep VALUES (1, NULL, 0, 0);
    ]],
  },
  routes = {
    { method = "POST", path = "/orders", rate_class = "buy", handler = post_order, status = 201, headers = IDEMPOTENCY,
      idempotent = true,
      summary = "Check out: create an order at list prices, optionally with a coupon and points",
      body = POST_BODY,
      response = ORDER_SCHEMA,
      errors = { [400] = { "invalid_field", "invalid_idempotency_key", "order_too_large", "order_too_small" },
                 [404] = { "sku_not_found", "coupon_not_found", "promo_code_not_found" },
                 [409] = { "idempotency_key_reused", "too_many_unpaid_orders", "insufficient_stock", "not_on_sale",
                           "coupon_not_usable", "coupons_unavailable", "insufficient_points",
                           "points_not_accepted", "points_unavailable", "coupon_not_stackable",
                           "promo_code_not_active", "promo_code_used", "promo_codes_unavailable" } } },
    { method = "POST", path = "/orders/preview", handler = preview_order,
      summary = "Preview a checkout: the price now, each promotion's share per line, and 凑单 hints",
      description = "Prices the lines exactly as POST /orders would at this moment (pricing.lua's steps) "
        .. "without reserving stock, locking the coupon or spending points.",
      body = POST_BODY, response = PREVIEW_SCHEMA,
      errors = { [400] = { "invalid_field", "invalid_body", "order_too_large", "order_too_small" },
                 [404] = { "sku_not_found", "coupon_not_found", "promo_code_not_found" },
                 [409] = { "insufficient_stock", "not_on_sale", "coupon_not_usable", "coupons_unavailable",
                           "insufficient_points", "points_not_accepted", "points_unavailable",
                           "coupon_not_stackable", "promo_code_not_active", "promo_code_used",
                           "promo_codes_unavailable" } } },
    { method = "GET", path = "/orders", handler = list_orders, summary = "My orders, newest first",
      query = { status = { type = "string" }, limit = { type = "integer" },
                after = { type = "integer", description = "next_after of the previous page" } },
      response = PAGE_SCHEMA, errors = { [400] = { "invalid_field", "invalid_query" } } },
    { method = "GET", path = "/orders/{id:int}", handler = get_order, summary = "One of my orders",
      response = ORDER_SCHEMA, errors = { [404] = { "order_not_found" } } },
    { method = "POST", path = "/orders/{id:int}/cancel", handler = cancel_order,
      summary = "Cancel my unpaid order: its units and coupon go back", response = ORDER_SCHEMA,
      errors = { [404] = { "order_not_found" }, [409] = { "not_cancellable" } } },
    { method = "POST", path = "/orders/{id:int}/confirm", handler = confirm_order,
      summary = "Confirm receipt of my paid order (completes it)", response = ORDER_SCHEMA,
      errors = { [404] = { "order_not_found" }, [409] = { "not_confirmable", "order_held" } } },
    { method = "GET", path = "/orders", auth = "admin", handler = admin_list,
      summary = "Orders of every user, with totals by status",
      query = { user = { type = "string" }, status = { type = "string" },
                store = { type = "string", description = "only the orders attributed to this store" },
                limit = { type = "integer" }, after = { type = "integer" } },
      response = ADMIN_PAGE_SCHEMA, errors = { [400] = { "invalid_field", "invalid_query" } } },
    { method = "GET", path = "/orders/{id:int}", auth = "admin", handler = admin_get,
      summary = "Any order, with its refunds",
      query = { store = { type = "string", description = "404 unless the order is this store's" } },
      response = ORDER_SCHEMA, errors = { [400] = { "invalid_field" }, [404] = { "order_not_found" } } },
    { method = "POST", path = "/orders/{id:int}/refund", auth = "admin", handler = admin_refund,
      status = 202, summary = "Refund a paid order in full or in part (runs as a retryable job)",
      query = { store = { type = "string", description = "404 unless the order is this store's" } },
      body = { type = "object", properties = { amount_fen = { type = "integer", minimum = 1 },
        reason = { type = "string" } } },
      response = { type = "object", required = { "refund", "order" }, properties = {
        refund = REFUND_SCHEMA, order = ORDER_SCHEMA } },
      errors = { [400] = { "invalid_field" }, [404] = { "order_not_found" },
                 [409] = { "not_refundable", "refund_exceeds_paid", "refund_must_be_whole", "refund_conflict" } } },
    { method = "POST", path = "/orders/{id:int}/complete", auth = "admin", handler = admin_complete,
      summary = "Complete a paid order", response = ORDER_SCHEMA,
      errors = { [404] = { "order_not_found" }, [409] = { "not_completable", "order_held" } } },
    { method = "POST", path = "/orders/{id:int}/cancel", auth = "admin", handler = admin_cancel,
      summary = "Cancel an unpaid order", response = ORDER_SCHEMA,
      errors = { [404] = { "order_not_found" }, [409] = { "not_cancellable" } } },
  },
  jobs = {
    sweep_unpaid = function() unpaid.sweep() end,
    expire_unpaid = function(job) lifecycle.cancel(job.payload.order_id, "timeout") end,
    expire_balance = function(job) lifecycle.balance_missed(job.payload.order_id) end,
    refund = function(job) lifecycle.run_refund(job.payload.refund_id) end,
  },
  exports = exports,
}
