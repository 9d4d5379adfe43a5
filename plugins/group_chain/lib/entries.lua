-- Entries (接龙): a member's line in the chain. Each entry gets the post's next
-- sequence number and one order at the chain prices through the orders
-- plugin. An entry is "unpaid" until its order's order.paid event arrives,
-- then "paid"; it is "cancelled" when the member cancels it or when orders
-- gives its units back (unpaid timeout, operator cancel, full refund).
--
-- Per-member limits are counters (group_chain_units) changed by conditional
-- statements: a live entry holds its units, a cancelled one has given them back.

local check = require("tp.check")
local posts = require("lib.posts")

local entries = {}

local MAX_NOTE_CHARS = 100

entries.COLUMNS = [[id, post_id, seq, user, status, note, order_id, total_fen, created_at,
  updated_at, paid_at, cancelled_at, cancel_reason]]

---@class ChainEntryLine
---@field sku string
---@field qty integer
---@field unit_price_fen integer
---@field amount_fen integer

---@class ChainEntry
---@field id integer
---@field post_id integer
---@field seq integer
---@field user string
---@field status "unpaid"|"paid"|"cancelled"
---@field note string?
---@field order_id integer
---@field total_fen integer
---@field lines ChainEntryLine[]

-- ---- reading

---@param entry_id integer
---@return ChainEntryLine[]
function entries.lines(entry_id)
  return tp.json.array(tp.db.query([[SELECT l.sku, l.qty, l.unit_price_fen, l.qty * l.unit_price_fen AS amount_fen
    FROM group_chain_entry_lines l JOIN group_chain_items i ON i.post_id = l.post_id AND i.sku = l.sku
    WHERE l.entry_id = ? ORDER BY i.item_no]], entry_id))
end

---@param row table|nil
---@return ChainEntry|nil
local function with_lines(row)
  if row then row.lines = entries.lines(row.id) end
  return row
end

-- built once: a statement made at every call is a new long string, which Lua
-- hashes and compares in full to find its prepared statement
local BY_SEQ_SQL = "SELECT " .. entries.COLUMNS .. " FROM group_chain_entries WHERE post_id = ? AND seq = ?"
local BY_ORDER_SQL = "SELECT " .. entries.COLUMNS .. " FROM group_chain_entries WHERE order_id = ?"
local OF_POST_SQL = "SELECT " .. entries.COLUMNS .. " FROM group_chain_entries WHERE post_id = ? ORDER BY seq"

---@param post_id integer
---@param seq integer
---@return ChainEntry|nil
function entries.by_seq(post_id, seq)
  return with_lines(tp.db.one(BY_SEQ_SQL, post_id, seq))
end

---@param order_id integer
---@return ChainEntry|nil
function entries.by_order(order_id)
  return with_lines(tp.db.one(BY_ORDER_SQL, order_id))
end

---Every entry of a post in sequence order, cancelled ones included.
---@param post_id integer
---@return ChainEntry[]
function entries.of_post(post_id)
  local rows = tp.db.query(OF_POST_SQL, post_id)
  for _, row in ipairs(rows) do with_lines(row) end
  return tp.json.array(rows)
end

---The caller's own entry, or 404 (another member's entry is as absent as a missing one).
---@return ChainEntry
function entries.own(post_id, seq, user)
  local entry = entries.by_seq(post_id, seq)
  if not entry or entry.user ~= user then tp.fail(404, "entry_not_found", "no such entry of yours") end
  return entry
end

-- ---- checking what a member asks for

---The body of an append or an edit: lines = [{sku, qty}] of the post's items, note?.
---@param body any
---@param post ChainPost
---@return {sku: string, qty: integer, unit_price_fen: integer}[] lines, string|nil note
function entries.check_body(body, post)
  check.body(body, true)
  check.only(body, { lines = true, note = true })
  local note = check.text(check.present(body.note), "note", MAX_NOTE_CHARS, true)
  local by_sku = {}
  for _, item in ipairs(post.items) do by_sku[item.sku] = item end
  check.list(body.lines, "lines", 1, #post.items)
  local lines, seen = {}, {}
  for i, line in ipairs(body.lines) do
    local field = ("lines[%d]"):format(i)
    if type(line) ~= "table" then check.field_error(field, "must be an object") end
    check.only(line, { sku = true, qty = true })
    local sku = check.ident(line.sku, field .. ".sku", 64)
    local item = by_sku[sku]
    if not item then check.field_error(field .. ".sku", "is not an item of this post") end
    if seen[sku] then check.field_error(field .. ".sku", "appears twice") end
    seen[sku] = true
    local qty = check.integer(line.qty, field .. ".qty", 1, item.per_member_limit)
    lines[i] = { sku = sku, qty = qty, unit_price_fen = item.chain_price_fen }
  end
  return lines, note
end

-- ---- per-member limits

---Adds the lines' units to what user holds in the post, line by line, each
---a conditional upsert. On the first line that would pass its item's limit it
---takes back what this call added and returns that line's sku and limit.
---@return string|nil sku, integer|nil limit
local function add_units(post, user, lines)
  local limits = {}
  for _, item in ipairs(post.items) do limits[item.sku] = item.per_member_limit end
  for i, line in ipairs(lines) do
    local limit = limits[line.sku]
    local row = tp.db.one([[INSERT INTO group_chain_units (post_id, user, sku, units) VALUES (?1, ?2, ?3, ?4)
      ON CONFLICT (post_id, user, sku) DO UPDATE SET units = units + ?4 WHERE units + ?4 <= ?5
      RETURNING units]], post.id, user, line.sku, line.qty, limit)
    if not row then
      entries.release_units(post.id, user, { table.unpack(lines, 1, i - 1) })
      return line.sku, limit
    end
  end
  return nil
end

---add_units, or 409 limit_reached naming the item.
local function hold_units(post, user, lines)
  local sku, limit = add_units(post, user, lines)
  if sku then
    local held = tp.db.one("SELECT units FROM group_chain_units WHERE post_id = ? AND user = ? AND sku = ?",
      post.id, user, sku).units
    tp.fail(409, "limit_reached", ("at most %d of %s per member; you already hold %d"):format(
      limit, sku, held), { sku = sku, per_member_limit = limit, held = held })
  end
end

---Gives an entry's units back to the member's allowance.
function entries.release_units(post_id, user, lines)
  for _, line in ipairs(lines) do
    tp.db.exec([[UPDATE group_chain_units SET units = max(0, units - ?) WHERE post_id = ? AND user = ? AND sku = ?]],
      line.qty, post_id, user, line.sku)
  end
end

-- ---- orders

---The order for an entry, at the chain prices, tagged with the post as its campaign.
local function create_order(post, user, lines)
  local order_lines = {}
  for i, l in ipairs(lines) do order_lines[i] = { sku = l.sku, qty = l.qty, unit_price_fen = l.unit_price_fen } end
  local campaign = { id = post.id }
  local timeout = tp.config().unpaid_timeout_seconds
  if timeout ~= nil then campaign.unpaid_timeout_seconds = timeout end
  -- a view (JSON): only the order's id and total_fen are read from it
  return tp.call_view("orders", "create", { user = user, lines = order_lines, campaign = campaign })
end

---Cancels the entry's unpaid order through orders. Orders does not call our
---release_order back for a cancel we asked for, so the caller gives the units
---back itself. A refusal means the order moved on: paid, or already cancelled.
local function cancel_order(entry, reason)
  if tp.call("orders", "cancel", entry.order_id, reason) then return end
  local order = tp.call("orders", "get", entry.order_id)
  if order and order.status ~= "cancelled" then
    tp.fail(409, "entry_paid", "this entry is paid: it can no longer be changed or cancelled",
      { order_id = entry.order_id, order_status = order.status })
  end
  tp.fail(409, "entry_cancelled", "this entry's order was cancelled", { order_id = entry.order_id })
end

local function write_lines(entry_id, post_id, lines)
  tp.db.exec("DELETE FROM group_chain_entry_lines WHERE entry_id = ?", entry_id)
  for _, l in ipairs(lines) do
    tp.db.exec([[INSERT INTO group_chain_entry_lines (entry_id, post_id, sku, qty, unit_price_fen)
      VALUES (?, ?, ?, ?, ?)]], entry_id, post_id, l.sku, l.qty, l.unit_price_fen)
  end
end

---Refuses a change to an entry that is no longer unpaid.
local function require_unpaid(entry)
  if entry.status == "paid" then
    tp.fail(409, "entry_paid", "this entry is paid: it can no longer be changed or cancelled",
      { order_id = entry.order_id })
  elseif entry.status == "cancelled" then
    tp.fail(409, "entry_cancelled", "this entry is cancelled", { order_id = entry.order_id })
  end
end

-- ---- what members do

---Appends an entry for user: limits, the next sequence number, the order. One
---transaction: if any step fails, nothing was counted, numbered or ordered.
---@return ChainEntry
function entries.append(post, user, lines, note)
  posts.require_open(post)
  hold_units(post, user, lines)
  local seq = posts.take_seq(post.id)
  if not seq then posts.fail_closed(post) end  -- closed since we read it
  local order = create_order(post, user, lines)
  local now = tp.now()
  -- the id is the insert's rowid: RETURNING would cost an ephemeral table
  local _, id = tp.db.exec([[INSERT INTO group_chain_entries (post_id, seq, user, status, note, order_id,
      total_fen, created_at, updated_at) VALUES (?, ?, ?, 'unpaid', ?, ?, ?, ?, ?)]],
    post.id, seq, user, note, order.id, order.total_fen, now, now)
  write_lines(id, post.id, lines)
  return entries.by_seq(post.id, seq)
end

---Replaces an unpaid entry's lines and note, keeping its sequence number: the
---old order is cancelled and a new one created at the post's prices.
---@return ChainEntry
function entries.edit(post, entry, lines, note)
  posts.require_open(post)
  require_unpaid(entry)
  cancel_order(entry, "group_chain_edit")
  entries.release_units(post.id, entry.user, entry.lines)
  hold_units(post, entry.user, lines)
  local order = create_order(post, entry.user, lines)
  local changed = tp.db.exec([[UPDATE group_chain_entries SET order_id = ?, total_fen = ?, note = ?,
      updated_at = ? WHERE id = ? AND status = 'unpaid' AND order_id = ?]],
    order.id, order.total_fen, note, tp.now(), entry.id, entry.order_id)
  if changed == 0 then tp.fail(409, "entry_changed", "this entry changed meanwhile; read it and try again") end
  write_lines(entry.id, post.id, lines)
  return entries.by_seq(post.id, entry.seq)
end

---Cancels an unpaid entry and its order; its sequence number stays taken.
---@return ChainEntry
function entries.cancel(post, entry)
  posts.require_open(post)
  require_unpaid(entry)
  cancel_order(entry, "group_chain_cancel")
  local changed = tp.db.exec([[UPDATE group_chain_entries SET status = 'cancelled', cancelled_at = ?,
      cancel_reason = 'member', updated_at = ? WHERE id = ? AND status = 'unpaid']],
    tp.now(), tp.now(), entry.id)
  if changed == 1 then entries.release_units(post.id, entry.user, entry.lines) end
  return entries.by_seq(post.id, entry.seq)
end

-- ---- what orders tells us

---order.paid (at least once): the entry of that order is paid. Conditional, so
---a repeated delivery changes nothing.
function entries.on_paid(ev)
  local order = ev.data and ev.data.order
  if not order or not order.campaign or order.campaign.plugin ~= "group_chain" then return end
  tp.db.exec([[UPDATE group_chain_entries SET status = 'paid', paid_at = ?, updated_at = ?
    WHERE order_id = ? AND status = 'unpaid']], order.paid_at or tp.now(), tp.now(), order.id)
end

---Orders gave an order's units back (unpaid timeout, a cancel not asked by us,
---a full refund): its entry is cancelled and the member's units are free again.
---@param order table
---@return boolean
function entries.release_order(order)
  local entry = entries.by_order(order.id)
  if not entry then return true end  -- an edited entry's old order: already given back
  -- a cancel hands over the order as cancelled; a full refund as it was before (paid)
  local reason = order.status == "cancelled" and (order.cancel_reason or "order_cancelled") or "refunded"
  local changed = tp.db.exec([[UPDATE group_chain_entries SET status = 'cancelled', cancelled_at = ?,
      cancel_reason = ?, updated_at = ? WHERE id = ? AND status != 'cancelled']],
    tp.now(), reason, tp.now(), entry.id)
  if changed == 1 then entries.release_units(entry.post_id, entry.user, entry.lines) end
  return true
end

---A payment arrived after the order was cancelled: the entry comes back (as
---unpaid; order.paid follows) if it is still this order's, the post is still
---open and the member's limits still allow it. Otherwise orders refunds it.
---@param order table
---@return boolean
function entries.reclaim_order(order)
  local entry = entries.by_order(order.id)
  if not entry or entry.status ~= "cancelled" then return false end
  local post = posts.load(entry.post_id)
  if not post or not posts.is_open(post) then return false end
  if add_units(post, entry.user, entry.lines) then return false end
  local changed = tp.db.exec([[UPDATE group_chain_entries SET status = 'unpaid', cancelled_at = NULL,
      cancel_reason = NULL, updated_at = ? WHERE id = ? AND status = 'cancelled']], tp.now(), entry.id)
  if changed == 0 then
    entries.release_units(post.id, entry.user, entry.lines)
    return false
  end
  return true
end

return entries
