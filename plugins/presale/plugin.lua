---@diagnostic disable: undefined-global
-- presale (预售): a SKU sold before it ships, in a quantity of its own.
--
-- Two kinds, as a marketer states them:
--   - full: pay the whole presale price now; the goods ship from a stated
--     date (ships_from), not before;
--   - deposit (定金膨胀): pay a deposit now (a ¥50 定金) that counts for more
--     at the balance (worth ¥100: deposit_worth_fen), then pay the balance
--     (尾款 = price - worth) inside the balance window. The balance window
--     opens when the deposit window has closed; both are the brand's wall
--     clock (starts_local ... "2026-11-11 20:00" in its zone) or UTC epochs.
--     A buyer is reminded (presale.balance_due, which the notify plugin turns
--     into a subscription message) when the balance opens and again before it
--     closes. A balance never paid: the order is called off at the window's
--     close, its units go back, and the deposit is kept (the brand's
--     deposit_refund = "forfeit", the default, as Tmall and JD do) or
--     refunded ("refund"). A presale the brand cancels refunds every deposit
--     whatever the rule: the buyer did not miss anything, the brand did.
--
-- A deposit or a full payment is one transaction: the window, the limits, the
-- presale's own quantity, the catalog's stock (reserved by the orders plugin
-- at the deposit, so the balance can never find it sold out) and the order,
-- which carries the terms (orders 1.8.0 "two payments"). Nothing ships before
-- the balance is paid (orders and fulfilment refuse it).

---@class PresaleConfig
---@field deposit_refund "forfeit"|"refund"|nil what a balance never paid does to the deposit (default "forfeit")
---@field balance_reminder_before_close_seconds integer? a second reminder this long before the balance closes (default 86400; 0: none)
---@field unpaid_timeout_seconds integer? default time to pay a deposit or a full presale (900)

local check = require("tp.check")
local catalog = require("tp.catalog")
local orders = require("tp.orders")
local money = require("tp.money")
local schema = require("tp.schema")
local when = require("tp.when")
local risk = require("tp.risk")
local merge = require("lib.merge")

local PLUGIN = "presale"

local function config()
  local c = tp.config()
  local rule = c.deposit_refund or "forfeit"
  if rule ~= "forfeit" and rule ~= "refund" then
    error("presale config: deposit_refund must be \"forfeit\" or \"refund\"", 0)
  end
  local before = c.balance_reminder_before_close_seconds
  if before == nil then before = 86400 end
  if math.type(before) ~= "integer" or before < 0 or before > 30 * 86400 then
    error("presale config: balance_reminder_before_close_seconds must be 0-2592000", 0)
  end
  return { deposit_refund = rule, remind_before = before, unpaid_timeout = c.unpaid_timeout_seconds or 900 }
end
config()  -- a wrong config fails the load, naming the key

-- A presale's fields, declared once (tp.schema): the checks, the defaults,
-- what a PATCH may change, the columns and the OpenAPI body.
local FIELDS = schema.new {
  { "sku", "ident", max = 64, required = true, fixed = true, patch = false, doc = "the catalog SKU; never changes" },
  { "kind", "enum", values = { "deposit", "full" }, required = true, fixed = true, patch = false,
    doc = "deposit: 定金 now, 尾款 in the balance window; full: the whole price now. Never changes" },
  { "title", "text", max = 100, doc = "default: the SKU's title in the catalog" },
  { "price_fen", "integer", min = 1, max = 100000000, required = true,
    doc = "the presale price of one unit, at most the SKU's list price" },
  { "deposit_fen", "integer", min = 1, max = 100000000, nullable = true, doc = "deposit: the 定金 of one unit" },
  { "deposit_worth_fen", "integer", min = 1, max = 100000000, nullable = true,
    doc = "deposit: what one unit's deposit counts for at the balance (定金膨胀), from deposit_fen (the default) "
      .. "to below price_fen" },
  { "quantity", "integer", min = 1, max = 10000000, required = true, doc = "units the presale offers" },
  { "per_user_limit", "integer", min = 1, max = 1000, default = 1 },
  { "per_order_limit", "integer", min = 1, max = 1000, default = 1, doc = "at most per_user_limit" },
  { "starts_at", "epoch", doc = "the deposit (or, full: the sale) window opens; or give starts_local" },
  { "ends_at", "epoch", doc = "...and closes; or give ends_local" },
  { "starts_local", "text", max = 19, column = false, example = "2026-10-24 20:00",
    doc = "starts_at as the brand's wall clock, \"YYYY-MM-DD HH:MM\" in its zone" },
  { "ends_local", "text", max = 19, column = false, example = "2026-11-10 23:59",
    doc = "ends_at as the brand's wall clock" },
  { "balance_starts_at", "epoch", nullable = true, doc = "deposit: the balance (尾款) may be paid from then, "
    .. "at or after ends_at; or give balance_starts_local" },
  { "balance_ends_at", "epoch", nullable = true, doc = "deposit: ...until then; or give balance_ends_local" },
  { "balance_starts_local", "text", max = 19, column = false, example = "2026-11-11 00:00",
    doc = "balance_starts_at as the brand's wall clock" },
  { "balance_ends_local", "text", max = 19, column = false, example = "2026-11-11 23:59",
    doc = "balance_ends_at as the brand's wall clock" },
  { "ships_from", "epoch", nullable = true, doc = "the goods ship from then (full: required); or give ships_from_local" },
  { "ships_from_local", "text", max = 19, column = false, example = "2026-11-12 00:00",
    doc = "ships_from as the brand's wall clock" },
  { "unpaid_timeout_seconds", "integer", min = 60, max = 86400,
    default = function() return config().unpaid_timeout end,
    doc = "time to pay a deposit (or a full presale) once ordered" },
  { "status", "enum", values = { "active", "disabled" }, default = "active" },
}

local COLUMNS = "id, " .. FIELDS:columns() .. ", remaining, cancelled_at, created_at, updated_at"
local write = FIELDS:writer("presale_presales",
  { remaining = ":quantity", created_at = ":now", updated_at = ":now" },
  { remaining = ":remaining", updated_at = ":now" })

-- the terms an order freezes: they cannot change once a unit was taken
local TERMS = { "price_fen", "deposit_fen", "deposit_worth_fen", "balance_starts_at", "balance_ends_at", "ships_from" }
local WINDOWS = { "starts", "ends", "balance_starts", "balance_ends", "ships_from" }

---@class Presale
---@field id integer
---@field sku string
---@field kind "deposit"|"full"
---@field price_fen integer          one unit
---@field deposit_fen integer?       deposit: one unit's 定金
---@field deposit_worth_fen integer? deposit: what it counts for at the balance
---@field quantity integer
---@field remaining integer          units no order holds
---@field starts_at integer
---@field ends_at integer
---@field balance_starts_at integer?
---@field balance_ends_at integer?
---@field ships_from integer?

local LOAD_SQL = "SELECT " .. COLUMNS .. " FROM presale_presales WHERE id = ?"

local function load(id)
  return tp.db.one(LOAD_SQL, id)
end

---Where a presale stands at now: not_started, deposit_open (full: open),
---waiting_balance (deposits closed, the balance not yet open), balance_open,
---ended; disabled or cancelled by the operator.
local function state_of(p, now)
  if p.cancelled_at then return "cancelled" end
  if p.status ~= "active" then return "disabled" end
  if now < p.starts_at then return "not_started" end
  if now < p.ends_at then return p.kind == "deposit" and "deposit_open" or "open" end
  if p.kind == "full" then return "ended" end
  if now < p.balance_starts_at then return "waiting_balance" end
  if now < p.balance_ends_at then return "balance_open" end
  return "ended"
end

local function shape(row, now)
  row.sold = row.quantity - row.remaining
  row.state = state_of(row, now)
  local w = { timezone = tp.timezone(), starts = when.format(row.starts_at), ends = when.format(row.ends_at) }
  if row.balance_starts_at then
    w.balance_starts, w.balance_ends = when.format(row.balance_starts_at), when.format(row.balance_ends_at)
  end
  if row.ships_from then w.ships_from = when.format(row.ships_from) end
  row.window_local = w
  if row.kind == "deposit" then
    row.balance_fen = row.price_fen - row.deposit_worth_fen
    row.deposit_refund = config().deposit_refund
  end
  return row
end

-- ---- buying: a deposit, or the whole price

---The checks that write nothing: a sold-out presale costs one read.
local function open_presale(id, qty)
  local p = load(id)
  if not p or p.status ~= "active" or p.cancelled_at then tp.fail(404, "presale_not_found", "no such presale") end
  local now = tp.now()
  if now < p.starts_at then
    tp.fail(409, "not_started", "this presale has not started", { opens_at = p.starts_at })
  end
  if now >= p.ends_at then
    tp.fail(409, "ended", p.kind == "deposit" and "deposits for this presale are closed" or "this presale has ended")
  end
  if p.remaining == 0 then tp.fail(409, "sold_out", "this presale is sold out") end
  if qty > p.per_order_limit then
    tp.fail(409, "order_limit_exceeded", ("at most %d per order"):format(p.per_order_limit),
      { per_order_limit = p.per_order_limit })
  end
  return p
end

---Counts qty against the buyer's limit; 409 limit_reached past it.
local function count_for_user(p, user, qty)
  local ok = qty <= p.per_user_limit and tp.db.exec([[
    INSERT INTO presale_buyers (presale_id, user, bought) VALUES (?1, ?2, ?3)
    ON CONFLICT (presale_id, user) DO UPDATE SET bought = bought + ?3 WHERE bought + ?3 <= ?4]],
    p.id, user, qty, p.per_user_limit) == 1
  if not ok then
    tp.fail(409, "limit_reached", ("at most %d per user"):format(p.per_user_limit), { per_user_limit = p.per_user_limit })
  end
end

---Gives qty back to the buyer's count (the survivor's, if she was merged since).
local function uncount(presale_id, user, qty)
  tp.db.exec("UPDATE presale_buyers SET bought = max(0, bought - ?) WHERE presale_id = ? AND user = ?",
    qty, presale_id, merge.survivor(user))
end

---Takes qty of the presale's units, conditionally: two deposits on the last
---unit cannot both have it.
local function take_units(p, qty)
  if tp.db.exec([[UPDATE presale_presales SET remaining = remaining - ?1
      WHERE id = ?2 AND remaining >= ?1]], qty, p.id) == 0 then
    tp.fail(409, "sold_out", "this presale has fewer units left than asked for", { remaining = p.remaining })
  end
end

---The order through the orders plugin: a deposit order carries the terms it
---was sold on (deposit and its worth for the qty, the balance window, the
---brand's refund rule), frozen on the order.
local function create_order(p, user, qty)
  local spec = {
    user = user,
    lines = { { sku = p.sku, qty = qty, unit_price_fen = p.price_fen } },
    campaign = { id = p.id, stacks_with_coupon = false, unpaid_timeout_seconds = p.unpaid_timeout_seconds },
    ships_from = p.ships_from,
  }
  if p.kind == "deposit" then
    spec.deposit = { deposit_fen = p.deposit_fen * qty, worth_fen = p.deposit_worth_fen * qty,
                     balance_starts_at = p.balance_starts_at, balance_ends_at = p.balance_ends_at,
                     refundable = config().deposit_refund == "refund" }
  end
  return orders.create_view(spec, "presale")
end

---POST /presales/{id}/buy {qty?}: the deposit (or, full, the whole price) as
---an order to pay. A retry with the Idempotency-Key of an accepted buy is
---answered by the host with its order.
local function buy(req)
  local body = req.body == nil and {} or check.body(req.body, true)
  check.only(body, { qty = true })
  local qty = check.integer(body.qty, "qty", 1, 1000, true) or 1
  local p = open_presale(req.params.id, qty)
  risk.check(req, "buy", { plugin = PLUGIN, id = p.id, sku = p.sku, qty = qty })
  count_for_user(p, req.user, qty)
  take_units(p, qty)
  local order = create_order(p, req.user, qty)
  tp.db.exec([[INSERT INTO presale_orders (order_id, presale_id, user, qty, state, created_at)
    VALUES (?, ?, ?, ?, 'pending', ?)]], order.id, p.id, req.user, qty, tp.now())
  return 201, order
end

-- ---- the campaign contract with orders

local exports = {}

local function units_of(order)
  local qty = 0
  for _, l in ipairs(order.lines) do qty = qty + l.qty end
  return qty
end

---An order of this presale gave its units back: its deposit (or payment)
---never came, its balance window closed unpaid, or it was refunded in full.
---@param order Order
---@return boolean
function exports.release_order(order)
  local id, qty = math.tointeger(tonumber(order.campaign.id)), units_of(order)
  if tp.db.exec("UPDATE presale_orders SET state = 'released' WHERE order_id = ? AND state != 'released'",
      order.id) == 0 then
    return true  -- given back before
  end
  tp.db.exec("UPDATE presale_presales SET remaining = min(quantity, remaining + ?) WHERE id = ?", qty, id)
  uncount(id, order.user, qty)
  return true
end

---A deposit (or payment) arrived after its order was cancelled: take the
---units again if the presale still has them and the buyer is within the limit.
---@param order Order
---@return boolean
function exports.reclaim_order(order)
  local id, qty = math.tointeger(tonumber(order.campaign.id)), units_of(order)
  local p, user = load(id), merge.survivor(order.user)
  if not p or p.cancelled_at then return false end
  if tp.db.exec([[INSERT INTO presale_buyers (presale_id, user, bought) VALUES (?1, ?2, ?3)
      ON CONFLICT (presale_id, user) DO UPDATE SET bought = bought + ?3 WHERE bought + ?3 <= ?4]],
      id, user, qty, p.per_user_limit) == 0 then
    return false
  end
  if tp.db.exec("UPDATE presale_presales SET remaining = remaining - ?1 WHERE id = ?2 AND remaining >= ?1",
      qty, id) == 0 then
    uncount(id, order.user, qty)
    return false
  end
  tp.db.exec("UPDATE presale_orders SET state = 'pending' WHERE order_id = ?", order.id)
  return true
end

-- ---- merging members (lib/merge.lua): one person, one per-user limit

exports.member_merge = merge.member_merge
exports.member_unmerge = merge.member_unmerge

-- ---- the balance reminder (presale.balance_due)

---order.deposit_paid: a deposit of ours is in; the buyer will be reminded
---when the balance opens and again remind_before seconds before it closes.
local function on_deposit_paid(ev)
  local o = ev.data and ev.data.order
  if type(o) ~= "table" or not o.campaign or o.campaign.plugin ~= PLUGIN or not o.deposit then return end
  tp.db.exec("UPDATE presale_orders SET state = 'awaiting_balance' WHERE order_id = ? AND state = 'pending'", o.id)
  local d, now = o.deposit, tp.now()
  tp.jobs.schedule("remind", { order_id = o.id, reminder = "opens" },
    { at = math.max(d.balance_starts_at, now), key = "remind:opens:" .. o.id })
  local before = config().remind_before
  local closing = d.balance_ends_at - before
  if before > 0 and closing > d.balance_starts_at and closing > now then
    tp.jobs.schedule("remind", { order_id = o.id, reminder = "closing" },
      { at = closing, key = "remind:closing:" .. o.id })
  end
end

local function on_paid(ev)
  local o = ev.data and ev.data.order
  if type(o) ~= "table" or not o.campaign or o.campaign.plugin ~= PLUGIN then return end
  tp.db.exec("UPDATE presale_orders SET state = 'paid' WHERE order_id = ? AND state != 'released'", o.id)
end

---The reminder job: an order still awaiting its balance gets
---presale.balance_due {user, order_id, presale_id, title, balance_fen,
---balance_yuan, balance_starts_at, balance_ends_at, balance_ends_local,
---reminder = "opens"|"closing", order}; any other is left alone.
local function remind(job)
  local o = tp.call("orders", "get", job.payload.order_id)
  if not o or o.status ~= "awaiting_balance" then return end
  local p = load(math.tointeger(tonumber(o.campaign.id)))
  local d = o.deposit
  tp.events.emit("presale.balance_due", {
    user = o.user, order_id = o.id, presale_id = p and p.id, title = p and p.title or o.lines[1].title,
    balance_fen = d.balance_fen, balance_yuan = money.yuan(d.balance_fen),
    balance_starts_at = d.balance_starts_at, balance_ends_at = d.balance_ends_at,
    balance_ends_local = when.format(d.balance_ends_at), reminder = job.payload.reminder, order = o })
end

-- ---- operators

---Reads the *_local fields (the brand's wall clock) into their epochs.
local function read_local(p, given)
  for _, w in ipairs(WINDOWS) do
    local epoch_field = w == "ships_from" and "ships_from" or (w .. "_at")
    local text = p[w .. "_local"]
    if text ~= nil then
      if given[epoch_field] then
        check.field_error(w .. "_local", ("give %s or %s_local, not both"):format(epoch_field, w))
      end
      local epoch, why = when.parse(text)
      if not epoch then check.field_error(w .. "_local", why) end
      p[epoch_field] = epoch
    end
    p[w .. "_local"] = nil
  end
end

---Checks a whole presale (new, or current merged with a patch) by its kind's rules.
local function check_presale(p, given)
  FIELDS:check(p)
  read_local(p, given)
  for _, f in ipairs({ "starts_at", "ends_at" }) do
    if p[f] == nil then check.field_error(f, ("is required (or %s)"):format(f:gsub("_at$", "_local"))) end
  end
  if p.ends_at <= p.starts_at then check.field_error("ends_at", "must be after starts_at") end
  if p.per_order_limit > p.per_user_limit then check.field_error("per_order_limit", "cannot exceed per_user_limit") end
  if p.kind == "deposit" then
    if p.deposit_fen == nil then check.field_error("deposit_fen", "is required for a deposit presale") end
    p.deposit_worth_fen = p.deposit_worth_fen or p.deposit_fen
    if p.deposit_worth_fen < p.deposit_fen then check.field_error("deposit_worth_fen", "cannot be below deposit_fen") end
    if p.deposit_worth_fen >= p.price_fen then
      check.field_error("deposit_worth_fen", "must be below price_fen: a balance of at least 1 fen is left")
    end
    for _, f in ipairs({ "balance_starts_at", "balance_ends_at" }) do
      if p[f] == nil then check.field_error(f, ("is required for a deposit presale (or %s)"):format(f:gsub("_at$", "_local"))) end
    end
    if p.balance_starts_at < p.ends_at then
      check.field_error("balance_starts_at", "must be at or after ends_at: the balance opens when deposits close")
    end
    if p.balance_ends_at <= p.balance_starts_at then check.field_error("balance_ends_at", "must be after balance_starts_at") end
  else
    for _, f in ipairs({ "deposit_fen", "deposit_worth_fen", "balance_starts_at", "balance_ends_at" }) do
      if p[f] ~= nil then check.field_error(f, "is for a deposit presale; a full presale is paid at once") end
    end
    if p.ships_from == nil then check.field_error("ships_from", "is required for a full presale (or ships_from_local)") end
  end
  if p.ships_from ~= nil and p.ships_from < p.starts_at then check.field_error("ships_from", "cannot be before starts_at") end
end

---The SKU as the catalog has it: a price being set may not exceed the list
---price; units promised must be in stock.
local function check_sku(p, extra_units, price_set)
  local sku = catalog.sku(p.sku)
  if price_set then catalog.check_prices(sku, { { "price_fen", p.price_fen } }) end
  catalog.check_stock(sku, p.sku, extra_units)
  return sku
end

---A SKU is in at most one active presale whose deposit (or sale) window overlaps.
local function check_overlap(p)
  local other = p.status == "active" and tp.db.one([[SELECT id FROM presale_presales WHERE sku = ? AND status = 'active'
    AND cancelled_at IS NULL AND starts_at < ? AND ends_at > ? AND id != ?]], p.sku, p.ends_at, p.starts_at, p.id or 0)
  if other then
    tp.fail(409, "presale_overlap", ("sku %s is already in presale %d at that time"):format(p.sku, other.id),
      { presale_id = other.id, field = "starts_at" })
  end
end

local function given_epochs(b)
  local g = {}
  for _, f in ipairs({ "starts_at", "ends_at", "balance_starts_at", "balance_ends_at", "ships_from" }) do
    g[f] = b[f] ~= nil and b[f] ~= tp.json.null
  end
  return g
end

---POST /presales
local function create(req)
  local b = check.body(req.body)
  check.only(b, FIELDS.create_names)
  local p = FIELDS:defaults(b)
  for _, w in ipairs(WINDOWS) do p[w .. "_local"] = b[w .. "_local"] end
  check_presale(p, given_epochs(b))
  local sku = check_sku(p, p.quantity, true)
  p.title = p.title or sku.title
  check_overlap(p)
  local id = write(p)
  return 201, shape(load(id), tp.now())
end

---PATCH /presales/{id}: any field but the SKU and kind. Once a unit was
---taken the terms orders carry (prices, deposit, windows of the balance, ship
---date) stay as sold: 409 terms_frozen. quantity shrinks only to what is sold.
local function patch(req)
  local p = load(req.params.id)
  if not p then tp.fail(404, "presale_not_found", "no such presale") end
  if p.cancelled_at then tp.fail(409, "presale_cancelled", "a cancelled presale cannot change") end
  local b = check.body(req.body)
  check.only(b, FIELDS.patch_names)
  local sold, old_quantity, old_price = p.quantity - p.remaining, p.quantity, p.price_fen
  local before = {}
  for _, f in ipairs(TERMS) do before[f] = p[f] end
  for _, f in ipairs(FIELDS.patchable) do
    if b[f] == tp.json.null then p[f] = nil elseif b[f] ~= nil then p[f] = b[f] end
  end
  for _, w in ipairs(WINDOWS) do p[w .. "_local"] = b[w .. "_local"] end
  check_presale(p, given_epochs(b))
  if sold > 0 then
    for _, f in ipairs(TERMS) do
      if p[f] ~= before[f] then
        tp.fail(409, "terms_frozen", ("%d units were sold on these terms: %s cannot change"):format(sold, f),
          { field = f, sold = sold })
      end
    end
  end
  if p.quantity < sold then
    tp.fail(409, "quantity_below_sold", ("%d units are already sold"):format(sold), { sold = sold, field = "quantity" })
  end
  p.remaining = p.quantity - sold
  check_sku(p, p.quantity > old_quantity and p.quantity - old_quantity or 0, p.price_fen ~= old_price)
  check_overlap(p)
  write(p)
  return 200, shape(load(p.id), tp.now())
end

local CANCEL_SLICE = 200

---Calls off a slice of a cancelled presale's open orders: an unpaid one is
---cancelled, one awaiting its balance refunded in full (the brand called
---the presale off: the deposit goes back whatever the rule). More: the job
---runs again.
local function cancel_slice(job)
  local id = job.payload.presale_id
  local rows = tp.db.query([[SELECT order_id, user, qty, state FROM presale_orders
    WHERE presale_id = ? AND state IN ('pending', 'awaiting_balance') ORDER BY order_id LIMIT ?]], id, CANCEL_SLICE)
  for _, r in ipairs(rows) do
    local o = tp.call("orders", "get", r.order_id)
    if o and o.status == "pending_payment" then
      tp.call("orders", "cancel", o.id, "presale_cancelled")
    elseif o and o.status == "awaiting_balance" then
      tp.call("orders", "refund", o.id, nil, "presale_cancelled")
    end
    -- orders does not call release_order back on our own request: settle our side
    tp.db.exec("UPDATE presale_orders SET state = 'released' WHERE order_id = ?", r.order_id)
    if not o or o.status == "pending_payment" or o.status == "awaiting_balance" then
      tp.db.exec("UPDATE presale_presales SET remaining = min(quantity, remaining + ?) WHERE id = ?", r.qty, id)
      uncount(id, r.user, r.qty)
    end
  end
  if #rows == CANCEL_SLICE then
    tp.jobs.schedule("cancel_slice", { presale_id = id }, { after = 0, key = "cancel:" .. id })
  end
end

---POST /presales/{id}/cancel: the brand calls the presale off. No more
---deposits; unpaid orders are cancelled and every deposit awaiting its
---balance refunded in full, in the background (cancel_slice). Paid orders
---stay: refund them one by one if the goods will not come.
local function cancel(req)
  local p = load(req.params.id)
  if not p then tp.fail(404, "presale_not_found", "no such presale") end
  if p.cancelled_at then return 200, shape(p, tp.now()) end
  tp.db.exec("UPDATE presale_presales SET status = 'disabled', cancelled_at = ?, updated_at = ? WHERE id = ?",
    tp.now(), tp.now(), p.id)
  tp.jobs.schedule("cancel_slice", { presale_id = p.id }, { after = 0, key = "cancel:" .. p.id })
  return 200, shape(load(p.id), tp.now())
end

---GET /presales/{id}/orders (operators): the presale's orders and where each stands.
local function presale_orders(req)
  local p = load(req.params.id)
  if not p then tp.fail(404, "presale_not_found", "no such presale") end
  local limit, after = check.page(req.query, 50, 500)
  local rows = tp.db.query([[SELECT order_id, user, qty, state, created_at FROM presale_orders
    WHERE presale_id = ?1 AND (?2 IS NULL OR order_id < ?2) ORDER BY order_id DESC LIMIT ?3]], p.id, after, limit)
  local counts = {}
  for _, r in ipairs(tp.db.query([[SELECT state, count(*) AS n, sum(qty) AS units FROM presale_orders
      WHERE presale_id = ? GROUP BY state]], p.id)) do
    counts[r.state] = { orders = r.n, units = r.units }
  end
  return 200, { presale_id = p.id, items = tp.json.array(rows), counts = tp.json.object(counts),
                next_after = #rows == limit and rows[#rows].order_id or nil }
end

local LIST_ADMIN_SQL = "SELECT " .. COLUMNS .. [[ FROM presale_presales
    WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2]]

local function list_admin(req)
  local limit, after = check.page(req.query, 50, 500)
  local now = tp.now()
  local rows = tp.db.query(LIST_ADMIN_SQL, after, limit)
  for i, r in ipairs(rows) do rows[i] = shape(r, now) end
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

local function get_admin(req)
  local row = load(req.params.id)
  if not row then tp.fail(404, "presale_not_found", "no such presale") end
  return 200, shape(row, tp.now())
end

-- ---- public reads

local LIST_PUBLIC_SQL = "SELECT " .. COLUMNS .. [[ FROM presale_presales
    WHERE status = 'active' AND cancelled_at IS NULL AND max(ends_at, coalesce(balance_ends_at, 0)) > ?
    ORDER BY starts_at, id LIMIT 200]]

local function list_public()
  local now = tp.now()
  local rows = tp.db.query(LIST_PUBLIC_SQL, now)
  for i, r in ipairs(rows) do rows[i] = shape(r, now) end
  return 200, { now = now, timezone = tp.timezone(), items = tp.json.array(rows) }
end

local function get_public(req)
  local row = load(req.params.id)
  if not row or row.status ~= "active" or row.cancelled_at then tp.fail(404, "presale_not_found", "no such presale") end
  return 200, shape(row, tp.now())
end

-- ---- the declaration

local BODY = FIELDS:body()
local PATCH = FIELDS:body(true)
local INT, STR, EPOCH = { type = "integer" }, { type = "string" }, { type = "integer", minimum = 0 }

local PRESALE = { type = "object", properties = {
  id = INT, remaining = { type = "integer", description = "units no order holds" }, sold = INT,
  state = { type = "string", enum = { "not_started", "deposit_open", "open", "waiting_balance", "balance_open",
    "ended", "disabled", "cancelled" } },
  balance_fen = { type = "integer", description = "deposit: the 尾款 of one unit, price_fen - deposit_worth_fen" },
  deposit_refund = { type = "string", enum = { "forfeit", "refund" },
    description = "the brand's rule for a balance never paid: the deposit is kept, or refunded" },
  window_local = { type = "object", description = "the windows as the brand's wall clock", properties = {
    timezone = STR, starts = STR, ends = STR, balance_starts = STR, balance_ends = STR, ships_from = STR } },
  cancelled_at = EPOCH, created_at = EPOCH, updated_at = EPOCH } }
for f, prop in pairs(BODY.properties) do
  if not f:match("_local$") then PRESALE.properties[f] = prop end
end
PRESALE.required = { "id", "sku", "kind", "title", "price_fen", "quantity", "remaining", "sold", "state",
                     "per_user_limit", "starts_at", "ends_at", "status", "window_local" }

local NOT_FOUND = { [404] = { "presale_not_found" } }

local ROUTES = {
  { method = "GET", path = "/presales", auth = "none", handler = list_public,
    summary = "Presales (预售) open now or coming, with their windows in the brand's zone",
    response = { type = "object", required = { "now", "timezone", "items" }, properties = {
      now = { type = "integer" }, timezone = STR, items = { type = "array", items = PRESALE } } } },
  { method = "GET", path = "/presales/{id:int}", auth = "none", handler = get_public,
    summary = "One presale", response = PRESALE, errors = NOT_FOUND },
  { method = "POST", path = "/presales/{id:int}/buy", rate_class = "buy", handler = buy, status = 201,
    idempotent = true,
    summary = "Buy a presale: an order for its deposit (定金), or its whole price, in one transaction",
    description = "A deposit presale's order awaits its balance (尾款) once its deposit is paid: pay the "
      .. "balance with POST /payments/prepay in the balance window. 403 risk_<code> when a risk rule refuses.",
    headers = { ["Idempotency-Key"] = { description = "a retried buy with the same key returns the same order" } },
    body = { type = "object", properties = { qty = { type = "integer", minimum = 1, maximum = 1000 } } },
    response = orders.SCHEMA,
    errors = orders.errors { [400] = { "invalid_body" }, [403] = { "risk_*" }, [404] = { "presale_not_found" },
      [409] = { "sold_out", "not_started", "ended", "limit_reached", "order_limit_exceeded", "deposit_exceeds_price" } } },
  { method = "POST", path = "/presales", auth = "admin", handler = create, status = 201,
    summary = "Create a presale (full, or deposit with 定金膨胀)", body = BODY, response = PRESALE,
    errors = { [400] = { "invalid_field", "invalid_body", "sku_not_found" },
               [409] = { "presale_overlap", "insufficient_stock" } } },
  { method = "PATCH", path = "/presales/{id:int}", auth = "admin", handler = patch,
    summary = "Change a presale (not its SKU or kind; its terms only while nothing is sold)", body = PATCH,
    response = PRESALE, errors = { [400] = { "invalid_field", "invalid_body", "sku_not_found" },
      [404] = { "presale_not_found" },
      [409] = { "terms_frozen", "quantity_below_sold", "presale_overlap", "insufficient_stock", "presale_cancelled" } } },
  { method = "GET", path = "/presales", auth = "admin", handler = list_admin, summary = "Every presale, newest first",
    query = { limit = { type = "integer" }, after = { type = "integer", description = "next_after of the previous page" } },
    response = { type = "object", required = { "items" }, properties = {
      items = { type = "array", items = PRESALE }, next_after = INT } },
    errors = { [400] = { "invalid_query" } } },
  { method = "GET", path = "/presales/{id:int}", auth = "admin", handler = get_admin,
    summary = "One presale", response = PRESALE, errors = NOT_FOUND },
  { method = "GET", path = "/presales/{id:int}/orders", auth = "admin", handler = presale_orders,
    summary = "A presale's orders: pending (deposit unpaid), awaiting_balance, paid, released",
    query = { limit = { type = "integer" }, after = { type = "integer", description = "next_after of the previous page" } },
    response = { type = "object", required = { "presale_id", "items", "counts" }, properties = {
      presale_id = INT, next_after = INT,
      counts = { type = "object", description = "orders and units by state",
        additionalProperties = { type = "object", properties = { orders = INT, units = INT } } },
      items = { type = "array", items = { type = "object", properties = { order_id = INT, user = STR, qty = INT,
        state = { type = "string", enum = { "pending", "awaiting_balance", "paid", "released" } }, created_at = EPOCH } } } } },
    errors = { [400] = { "invalid_query" }, [404] = { "presale_not_found" } } },
  { method = "POST", path = "/presales/{id:int}/cancel", auth = "admin", handler = cancel,
    summary = "Call a presale off: no more deposits; unpaid orders cancelled and every deposit awaiting its "
      .. "balance refunded in full (the brand's doing, whatever deposit_refund says)",
    response = PRESALE, errors = NOT_FOUND },
}

---The declared bodies of the routes, for a walk against the served OpenAPI.
function exports.schemas() return schema.document(ROUTES) end

return {
  name = PLUGIN,
  version = "1.1.0",
  description = "presales (预售): full payment, or a deposit (定金膨胀) and a balance in its window",
  migrations = {
    [[
    CREATE TABLE presale_presales (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      sku TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('deposit', 'full')),
      title TEXT NOT NULL,
      price_fen INTEGER NOT NULL CHECK (price_fen >= 1),
      deposit_fen INTEGER CHECK (deposit_fen IS NULL OR deposit_fen >= 1),
      deposit_worth_fen INTEGER,
      quantity INTEGER NOT NULL CHECK (quantity >= 1),
      remaining INTEGER NOT NULL CHECK (remaining >= 0 AND remaining <= quantity),
      per_user_limit INTEGER NOT NULL CHECK (per_user_limit >= 1),
      per_order_limit INTEGER NOT NULL CHECK (per_order_limit >= 1),
      starts_at INTEGER NOT NULL,
      ends_at INTEGER NOT NULL CHECK (ends_at > starts_at),
      balance_starts_at INTEGER,
      balance_ends_at INTEGER,
      ships_from INTEGER,
      unpaid_timeout_seconds INTEGER NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
      cancelled_at INTEGER,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      CHECK (kind = 'full' OR (deposit_worth_fen >= deposit_fen AND deposit_worth_fen < price_fen
             AND balance_starts_at >= ends_at AND balance_ends_at > balance_starts_at))
    );
    CREATE INDEX presale_presales_sku ON presale_presales(sku, starts_at);
    CREATE TABLE presale_buyers (
      presale_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      bought INTEGER NOT NULL CHECK (bought >= 0),
      PRIMARY KEY (presale_id, user)
    ) WITHOUT ROWID;
    CREATE TABLE presale_orders (
      order_id INTEGER PRIMARY KEY,
      presale_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      qty INTEGER NOT NULL CHECK (qty >= 1),
      state TEXT NOT NULL CHECK (state IN ('pending', 'awaiting_balance', 'paid', 'released')),
      created_at INTEGER NOT NULL
    );
    CREATE INDEX presale_orders_presale ON presale_orders(presale_id, state, order_id);
    -- merging members (lib/merge.lua): each merge, and the counts it folded
    CREATE TABLE presale_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE INDEX presale_merges_from ON presale_merges(from_user, merge_id);
    CREATE TABLE presale_merge_moves (
      merge_id INTEGER NOT NULL,
      presale_id INTEGER NOT NULL,
      amount INTEGER NOT NULL,
      created INTEGER NOT NULL CHECK (created IN (0, 1)),
      PRIMARY KEY (merge_id, presale_id)
    ) WITHOUT ROWID;
    ]],
    -- 1.1.0: presale_orders's value lists checked with ORs, not IN (...): SQLite
    -- evaluates a CHECK's IN list of three or more values by building a temporary b-tree
    -- of it on every row written, about 30k instructions, and every deposit writes a row
    -- and each payment changes its state (`tidepool check` warns of it). A CHECK cannot
    -- change in place, so the table is rebuilt: new, copy, drop, rename, indexes again.
    [[
    CREATE TABLE presale_orders_v2 (
      order_id INTEGER PRIMARY KEY,
      presale_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      qty INTEGER NOT NULL CHECK (qty >= 1),
      state TEXT NOT NULL CHECK (state = 'pending' OR state = 'awaiting_balance' OR state = 'paid'
        OR state = 'released'),
      created_at INTEGER NOT NULL
    );
    INSERT INTO presale_orders_v2 (
        order_id, presale_id, user, qty, state, created_at)
      SELECT
        order_id, presale_id, user, qty, state, created_at
      FROM presale_orders;
    DROP TABLE presale_orders;
    ALTER TABLE presale_orders_v2 RENAME TO presale_orders;
    CREATE INDEX presale_orders_presale ON presale_orders(presale_id, state, order_id);
    ]],
  },
  routes = ROUTES,
  jobs = { remind = remind, cancel_slice = cancel_slice },
  subscribe = { ["order.deposit_paid"] = on_deposit_paid, ["order.paid"] = on_paid },
  exports = exports,
}
