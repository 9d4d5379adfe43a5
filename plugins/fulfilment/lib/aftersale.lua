-- After-sales (售后): the buyer asks for 仅退款 (refund_only) or 退货退款
-- (return_refund) of lines and quantities of her order, with a reason and
-- photos. The operator approves or rejects with a note; if he stays silent a
-- timer approves (brand-set). The money moves through orders.refund (a durable
-- refund number and a retryable job, paid out once). Stock comes back only
-- when goods do: a refund_only of goods that never left the shop restocks
-- them; a return_refund restocks when the operator receives the parcel.
--
--   requested -> approved -> refunded                  (refund_only)
--   requested -> approved -> returning -> refunded     (return_refund)
--   requested -> rejected | cancelled (by the buyer)
--
-- What a line can still be asked for is what was bought less every request on
-- it that is not rejected or cancelled, checked in the request's transaction:
-- two requests at the same moment are handled one after the other (the host's
-- batch), so the second sees the first's units.

local check = require("tp.check")

local aftersale = {}

local DAY = 86400
local OPEN = "('requested', 'approved', 'returning', 'refunded')"
local COLUMNS = [[id, order_id, user, kind, status, reason, photos, amount_fen, note, decided_by, return_carrier,
  return_tracking_no, refund_no, restocked, created_at, decided_at, returned_at, received_at, refunded_at, updated_at]]
local MAX_PHOTOS = 9

local function conf(name, default)
  local v = tp.config()[name]
  if v == nil then return default end
  return v
end

local function order_of(id)
  local o = tp.call("orders", "get", id)
  if not o then tp.fail(404, "order_not_found", "no such order") end
  return o
end

local LOAD_SQL = "SELECT " .. COLUMNS .. " FROM fulfilment_aftersales WHERE id = ?"

local function load(id)
  local r = tp.db.one(LOAD_SQL, id)
  if not r then return nil end
  r.photos = tp.json.array(tp.json.decode(r.photos))
  r.restocked = r.restocked == 1
  r.lines = tp.json.array(tp.db.query([[SELECT line, sku, qty, amount_fen FROM fulfilment_aftersale_lines
    WHERE aftersale_id = ? ORDER BY line]], id))
  return r
end
aftersale.load = load

---A request of the caller's, or 404.
function aftersale.own(user, id)
  local r = load(id)
  if not r or r.user ~= user then tp.fail(404, "aftersale_not_found", "no such after-sales request") end
  return r
end

local TAKEN_SQL = [[SELECT l.line, sum(l.qty) AS qty, sum(l.amount_fen) AS fen
      FROM fulfilment_aftersale_lines l JOIN fulfilment_aftersales a ON a.id = l.aftersale_id
      WHERE l.order_id = ? AND a.status IN ]] .. OPEN .. " GROUP BY l.line"

---Units and fen of each line already asked for by requests still standing:
---{[line] = {qty, fen}}.
local function taken(order_id)
  local out = {}
  for _, r in ipairs(tp.db.query(TAKEN_SQL, order_id)) do
    out[r.line] = { qty = r.qty, fen = r.fen }
  end
  return out
end

---Units of each line that a refund_only took out of the order (not to ship).
---@param order_id integer
---@return table<integer, integer>
function aftersale.refunded_units(order_id)
  local out = {}
  for _, r in ipairs(tp.db.query([[SELECT l.line, sum(l.qty) AS qty
      FROM fulfilment_aftersale_lines l JOIN fulfilment_aftersales a ON a.id = l.aftersale_id
      WHERE l.order_id = ? AND a.kind = 'refund_only' AND a.status IN ('approved', 'refunded')
      GROUP BY l.line]], order_id)) do
    out[r.line] = r.qty
  end
  return out
end

local function check_photo(v, field)
  if type(v) ~= "string" or #v > 512 or not v:match("^https://[%w%-%.]+[%w]") or v:find("[%s%c\"'<>\\]") then
    check.field_error(field, "must be an https:// URL of at most 512 characters, without spaces or quotes")
  end
  local host = v:match("^https://([^/:?#]+)")
  if not host or host:find("%.%.") or not host:find("%.") then
    check.field_error(field, "must name a host")
  end
  return v
end

---The buyer asks: {order_id, kind, lines = {{line, qty}}, reason, photos?}.
---@param user string
---@param body table
---@return table request
function aftersale.request(user, body)
  check.only(body, { order_id = true, kind = true, lines = true, reason = true, photos = true })
  local order_id = check.integer(body.order_id, "order_id", 1)
  local kind = check.enum(body.kind, "kind", { refund_only = true, return_refund = true })
  local reason = check.text(body.reason, "reason", 200)
  local photos = tp.json.array()
  if body.photos ~= nil then
    for i, p in ipairs(check.list(body.photos, "photos", 0, MAX_PHOTOS, "photo")) do
      photos[i] = check_photo(p, ("photos[%d]"):format(i))
    end
  end
  local o = order_of(order_id)
  if o.user ~= user then tp.fail(404, "order_not_found", "no such order") end
  if o.status ~= "paid" and o.status ~= "completed" then
    tp.fail(409, "not_refundable", ("an order that is %s cannot be refunded"):format(o.status), { status = o.status })
  end
  if kind == "return_refund" and o.fulfilment == nil and o.completed_at == nil then
    tp.fail(409, "nothing_to_return", "nothing of this order has left the shop: ask for refund_only")
  end
  local want, seen = {}, {}
  for i, x in ipairs(check.list(body.lines, "lines", 1, #o.lines, "line")) do
    local f = ("lines[%d]"):format(i)
    if type(x) ~= "table" then check.field_error(f, "must be an object {line, qty}") end
    check.only(x, { line = true, qty = true })
    local line = check.integer(x.line, f .. ".line", 1, #o.lines)
    if seen[line] then check.field_error(f .. ".line", "names a line twice") end
    seen[line] = true
    want[i] = { line = line, qty = check.integer(x.qty, f .. ".qty", 1, o.lines[line].qty) }
  end
  local before = taken(order_id)
  local total = 0
  for _, w in ipairs(want) do
    local l, t = o.lines[w.line], before[w.line] or { qty = 0, fen = 0 }
    local units_left, fen_left = l.qty - t.qty, l.paid_fen - t.fen
    if w.qty > units_left then
      tp.fail(409, "exceeds_bought", ("line %d: %d of %d units can still be asked for"):format(
        w.line, units_left, l.qty), { line = w.line, qty_left = units_left })
    end
    -- the last units of a line take what is left of it, so the line's requests sum to its paid_fen
    w.amount = w.qty == units_left and fen_left or l.paid_fen * w.qty // l.qty
    w.sku = l.sku
    total = total + w.amount
  end
  local left = o.paid_fen - o.refund_requested_fen
  if total > left then total = left end  -- an operator refunded part by amount before
  if total < 1 then tp.fail(409, "nothing_to_refund", "this order has nothing left to refund") end
  local now = tp.now()
  local _, id = tp.db.exec([[INSERT INTO fulfilment_aftersales (order_id, user, kind, status, reason, photos,
      amount_fen, restocked, created_at, updated_at) VALUES (?, ?, ?, 'requested', ?, ?, ?, 0, ?, ?)]],
    order_id, user, kind, reason, tp.json.encode(photos), total, now, now)
  for _, w in ipairs(want) do
    tp.db.exec([[INSERT INTO fulfilment_aftersale_lines (aftersale_id, order_id, line, sku, qty, amount_fen)
      VALUES (?, ?, ?, ?, ?, ?)]], id, order_id, w.line, w.sku, w.qty, w.amount)
  end
  tp.jobs.schedule("auto_approve", { aftersale_id = id },
    { after = conf("aftersale_auto_approve_seconds", 2 * DAY), key = "aftersale:" .. id })
  return load(id)
end

---Restocks a request's units (goods back, or never gone) once.
local function restock(r)
  if tp.db.exec("UPDATE fulfilment_aftersales SET restocked = 1 WHERE id = ? AND restocked = 0", r.id) == 0 then
    return
  end
  local lines = {}
  for i, l in ipairs(r.lines) do lines[i] = { line = l.line, qty = l.qty } end
  tp.call("orders", "restock", r.order_id, lines)
end

---The refund of a request: orders.refund (a durable number, paid by a job).
---The coupon comes back by the brand's rule: return_coupon = "full_refund".
local function refund(r)
  local o = order_of(r.order_id)
  local left = o.paid_fen - o.refund_requested_fen
  local amount = math.min(r.amount_fen, left)
  local refund_no
  if amount >= 1 then
    refund_no = tp.call("orders", "refund", r.order_id, amount, ("aftersale %d"):format(r.id)).refund_no
  end
  tp.db.exec([[UPDATE fulfilment_aftersales SET status = 'refunded', refund_no = ?, amount_fen = ?,
    refunded_at = ?, updated_at = ? WHERE id = ?]], refund_no, amount, tp.now(), tp.now(), r.id)
  if amount == left and o.coupon_id and conf("return_coupon", "never") == "full_refund" then
    tp.call("coupons", "restore", r.order_id)
  end
end

---requested -> approved, by the operator or the timer. A refund_only refunds
---at once (and restocks what never left); a return_refund waits for the goods.
---@param id integer
---@param by "operator"|"timer"
---@param note string|nil
---@return boolean changed
function aftersale.approve(id, by, note)
  local pending = load(id)
  if pending and pending.status == "requested" then
    local o = order_of(pending.order_id)
    if o.status ~= "paid" and o.status ~= "completed" then
      -- refunded in full meanwhile (by the operator): nothing is left to approve
      if by ~= "timer" then
        tp.fail(409, "not_refundable", ("the order is %s"):format(o.status), { status = o.status })
      end
      tp.db.exec([[UPDATE fulfilment_aftersales SET status = 'rejected', decided_by = 'timer',
        note = 'the order was refunded meanwhile', decided_at = ?, updated_at = ? WHERE id = ? AND status = 'requested']],
        tp.now(), tp.now(), id)
      return false
    end
  end
  local changed = tp.db.exec([[UPDATE fulfilment_aftersales SET status = 'approved', decided_by = ?, note = ?,
    decided_at = ?, updated_at = ? WHERE id = ? AND status = 'requested']], by, note, tp.now(), tp.now(), id)
  if changed == 0 then return false end
  if by ~= "timer" then tp.jobs.cancel("aftersale:" .. id) end
  local r = load(id)
  if r.kind == "refund_only" then
    local o = order_of(r.order_id)
    if o.fulfilment == nil and o.completed_at == nil then restock(r) end
    refund(r)
  end
  return true
end

---requested -> rejected: its units may be asked for again.
function aftersale.reject(id, note)
  local changed = tp.db.exec([[UPDATE fulfilment_aftersales SET status = 'rejected', decided_by = 'operator',
    note = ?, decided_at = ?, updated_at = ? WHERE id = ? AND status = 'requested']], note, tp.now(), tp.now(), id)
  if changed == 1 then tp.jobs.cancel("aftersale:" .. id) end
  return changed == 1
end

---The buyer withdraws a request nobody decided yet.
function aftersale.cancel(user, id)
  aftersale.own(user, id)
  local changed = tp.db.exec([[UPDATE fulfilment_aftersales SET status = 'cancelled', updated_at = ?
    WHERE id = ? AND status = 'requested']], tp.now(), id)
  if changed == 0 then tp.fail(409, "not_cancellable", "this request was decided") end
  tp.jobs.cancel("aftersale:" .. id)
  return load(id)
end

---The buyer sent the goods back: approved -> returning, with the tracking number.
function aftersale.returned(user, id, body)
  check.only(body, { carrier = true, tracking_no = true })
  local carrier = check.text(body.carrier, "carrier", 30)
  local tracking_no = check.ident(body.tracking_no, "tracking_no", 40)
  local r = aftersale.own(user, id)
  if r.kind ~= "return_refund" then tp.fail(409, "not_a_return", "this request returns no goods") end
  local changed = tp.db.exec([[UPDATE fulfilment_aftersales SET status = 'returning', return_carrier = ?,
    return_tracking_no = ?, returned_at = ?, updated_at = ? WHERE id = ? AND status = 'approved']],
    carrier, tracking_no, tp.now(), tp.now(), id)
  if changed == 0 then
    tp.fail(409, "not_awaiting_return", ("a request that is %s awaits no parcel"):format(r.status), { status = r.status })
  end
  return load(id)
end

---The operator received the parcel: the units go back to stock, the money to the buyer.
function aftersale.received(id)
  local r = load(id)
  if not r then tp.fail(404, "aftersale_not_found", "no such after-sales request") end
  if tp.db.exec([[UPDATE fulfilment_aftersales SET received_at = ?, updated_at = ?
      WHERE id = ? AND status = 'returning']], tp.now(), tp.now(), id) == 0 then
    tp.fail(409, "not_returning", ("a request that is %s has no parcel on its way"):format(r.status),
      { status = r.status })
  end
  restock(r)
  refund(r)
  return load(id)
end

return aftersale
