-- An order's way to its buyer: express (shipments with carrier and tracking
-- number, per line and quantity) or store pickup (a code the store's staff
-- redeem, 核销). The order's own status stays the orders plugin's; this
-- plugin tells it how far the goods went (orders.set_fulfilment), and
-- completes it on a timer.
--
--   pending -> partially_shipped -> shipped -> delivered   (express)
--   pending -> picked_up                                   (pickup)
--
-- Every transition is a conditional UPDATE; orders.set_fulfilment refuses an
-- order that is not paid (refunded, cancelled) or that its campaign holds.

local check = require("tp.check")
local book = require("lib.book")
local aftersale = require("lib.aftersale")
local when = require("tp.when")

local ship = {}

local DAY = 86400
local RECORD_COLUMNS = [[order_id, user, method, state, address, store, pickup_code, created_at, updated_at,
  delivered_at, picked_up_at, picked_up_by]]

local function conf(name, default)
  local v = tp.config()[name]
  if v == nil then return default end
  return v
end

---Seconds from the last shipment to the automatic receipt (确认收货) and completion.
local function receive_after() return conf("auto_receive_seconds", 10 * DAY) end
---Seconds from delivery or pickup to completion.
local function complete_after() return conf("auto_complete_seconds", 7 * DAY) end

local function order_of(id)
  local o = tp.call("orders", "get", id)
  if not o then tp.fail(404, "order_not_found", "no such order") end
  return o
end

local RECORD_SQL = "SELECT " .. RECORD_COLUMNS .. " FROM fulfilment_orders WHERE order_id = ?"

local function record(id)
  return tp.db.one(RECORD_SQL, id)
end

---Units of each line shipped so far: {[line] = qty}.
local function shipped_qty(id)
  local out = {}
  for _, r in ipairs(tp.db.query([[SELECT line, sum(qty) AS qty FROM fulfilment_shipment_lines
      WHERE order_id = ? GROUP BY line]], id)) do
    out[r.line] = r.qty
  end
  return out
end

local function shipments(id)
  local rows = tp.db.query([[SELECT id, carrier, tracking_no, status, shipped_at, delivered_at
    FROM fulfilment_shipments WHERE order_id = ? ORDER BY id]], id)
  for _, s in ipairs(rows) do
    s.lines = tp.db.query([[SELECT line, sku, qty FROM fulfilment_shipment_lines
      WHERE shipment_id = ? ORDER BY line]], s.id)
  end
  return tp.json.array(rows)
end

---The fulfilment of an order as its pages show it (personal: the address).
---@param id integer
---@param o table? the order, when the caller has it
---@return table
function ship.view(id, o)
  local r = record(id)
  if not r then tp.fail(404, "fulfilment_not_found", "no delivery has been chosen for this order") end
  o = o or order_of(id)
  local done = shipped_qty(id)
  local lines = tp.json.array()
  for i, l in ipairs(o.lines) do
    lines[i] = { line = i, sku = l.sku, title = l.title, qty = l.qty, shipped = done[i] or 0 }
  end
  local v = { order_id = id, method = r.method, state = r.state,
              address = r.address and tp.json.decode(r.address) or nil,
              store = r.store and book.store(r.store) or nil, pickup_code = r.pickup_code,
              lines = lines, shipments = shipments(id),
              created_at = r.created_at, updated_at = r.updated_at, delivered_at = r.delivered_at,
              picked_up_at = r.picked_up_at }
  return v
end

---A pickup code unique among the store's pickups still waiting: 8 digits.
local function new_code(store)
  for _ = 1, 10 do
    local code = ("%08d"):format(tp.random(0, 99999999))
    if not tp.db.one([[SELECT 1 AS taken FROM fulfilment_orders
        WHERE store = ? AND pickup_code = ? AND state = 'pending']], store, code) then
      return code
    end
  end
  error("no free pickup code after 10 draws")
end

---The buyer chooses how her order reaches her: {method = "express",
---address_id?} (her default address without one) or {method = "pickup",
---store}. She may change it until anything shipped or was picked up.
---@param user string
---@param id integer
---@param body table
---@return table view
function ship.choose(user, id, body)
  check.only(body, { method = true, address_id = true, store = true })
  local method = check.enum(body.method, "method", { express = true, pickup = true })
  local o = order_of(id)
  if o.user ~= user then tp.fail(404, "order_not_found", "no such order") end
  if o.status ~= "pending_payment" and o.status ~= "awaiting_balance" and o.status ~= "paid" then
    tp.fail(409, "not_deliverable", ("an order that is %s is not delivered"):format(o.status), { status = o.status })
  end
  local r = record(id)
  if r and r.state ~= "pending" then
    tp.fail(409, "already_on_its_way", ("the order is %s: its delivery can no longer change"):format(r.state),
      { state = r.state })
  end
  local address, store, code
  if method == "express" then
    if body.store ~= nil then check.field_error("store", "express delivery takes an address, not a store") end
    address = tp.json.encode(book.pick_address(user, check.integer(body.address_id, "address_id", 1, nil, true)))
  else
    if body.address_id ~= nil then check.field_error("address_id", "a pickup takes a store, not an address") end
    store = check.ident(body.store, "store", 32)
    local s = book.store(store)
    if not s then tp.fail(404, "store_not_found", ("no store %s"):format(store)) end
    if s.status ~= "open" then tp.fail(409, "store_closed", ("store %s takes no pickups"):format(store)) end
    code = (r and r.store == store and r.pickup_code) or new_code(store)
  end
  tp.db.exec([[INSERT INTO fulfilment_orders (order_id, user, method, state, address, store, pickup_code,
      created_at, updated_at) VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?7)
    ON CONFLICT (order_id) DO UPDATE SET method = ?3, address = ?4, store = ?5, pickup_code = ?6,
      updated_at = ?7 WHERE state = 'pending']], id, user, method, address, store, code, tp.now())
  return ship.view(id, o)
end

---Tells orders how far the goods went; 409 when the order may not move (not
---paid any more, or held by its campaign).
local function tell_orders(o, state)
  if not tp.call("orders", "set_fulfilment", o.id, state) then
    local why = o.held and "its campaign holds it (a group still forming)"
      or (o.status == "awaiting_balance" and "its balance (尾款) is not paid yet")
      or (o.ships_from and o.ships_from > tp.now() and o.status == "paid"
          and ("it is a presale that ships from %s"):format(when.format(o.ships_from)))
      or ("it is " .. o.status)
    tp.fail(409, "not_fulfillable", ("the order cannot be fulfilled: %s"):format(why),
      { status = o.status, held = o.held, ships_from = o.ships_from })
  end
end

---Schedules the order's completion (one timer per order, replaced).
local function complete_in(id, seconds)
  tp.jobs.schedule("auto_complete", { order_id = id }, { after = seconds, key = "complete:" .. id })
end

---The operator ships lines of an express order: {carrier, tracking_no,
---lines? = {{line, qty}}} (all that is left when lines is absent).
---@param id integer
---@param body table
---@return table shipment, table view
function ship.ship(id, body)
  check.only(body, { carrier = true, tracking_no = true, lines = true })
  local carrier = check.text(body.carrier, "carrier", 30)
  local tracking_no = check.ident(body.tracking_no, "tracking_no", 40)
  local o = order_of(id)
  local r = record(id)
  if not r then tp.fail(409, "no_delivery_chosen", "the buyer has not chosen a delivery for this order") end
  if r.method ~= "express" then tp.fail(409, "not_express", "this order is picked up at a store") end
  local done = shipped_qty(id)
  -- units a refund_only took out of the order are not shipped
  local out = aftersale.refunded_units(id)
  local cap = {}
  for i, l in ipairs(o.lines) do cap[i] = l.qty - (out[i] or 0) end
  local want = {}
  if body.lines == nil then
    for i in ipairs(o.lines) do
      local left = cap[i] - (done[i] or 0)
      if left > 0 then want[#want + 1] = { line = i, qty = left } end
    end
  else
    for i, x in ipairs(check.list(body.lines, "lines", 1, #o.lines, "line")) do
      local f = ("lines[%d]"):format(i)
      if type(x) ~= "table" then check.field_error(f, "must be an object {line, qty}") end
      check.only(x, { line = true, qty = true })
      local line = check.integer(x.line, f .. ".line", 1, #o.lines)
      local qty = check.integer(x.qty, f .. ".qty", 1, o.lines[line].qty)
      want[#want + 1] = { line = line, qty = qty }
    end
  end
  if #want == 0 then tp.fail(409, "nothing_to_ship", "every unit of this order has shipped") end
  for _, w in ipairs(want) do
    done[w.line] = (done[w.line] or 0) + w.qty
    if done[w.line] > cap[w.line] then
      tp.fail(409, "ship_exceeds_ordered", ("line %d has %d units to ship and %d would have shipped"):format(
        w.line, cap[w.line], done[w.line]), { line = w.line, qty = cap[w.line] })
    end
  end
  local all = true
  for i in ipairs(o.lines) do all = all and (done[i] or 0) >= cap[i] end
  local state = all and "shipped" or "partially_shipped"
  tell_orders(o, state)
  if tp.db.one("SELECT 1 AS taken FROM fulfilment_shipments WHERE carrier = ? AND tracking_no = ?",
      carrier, tracking_no) then
    tp.fail(409, "tracking_no_used", "this carrier's tracking number is on another shipment")
  end
  local _, sid = tp.db.exec([[INSERT INTO fulfilment_shipments (order_id, carrier, tracking_no, status, shipped_at)
    VALUES (?, ?, ?, 'shipped', ?)]], id, carrier, tracking_no, tp.now())
  local lines = tp.json.array()
  for i, w in ipairs(want) do
    tp.db.exec([[INSERT INTO fulfilment_shipment_lines (shipment_id, order_id, line, sku, qty)
      VALUES (?, ?, ?, ?, ?)]], sid, id, w.line, o.lines[w.line].sku, w.qty)
    lines[i] = { line = w.line, sku = o.lines[w.line].sku, qty = w.qty }
  end
  tp.db.exec([[UPDATE fulfilment_orders SET state = ?, updated_at = ?
    WHERE order_id = ? AND state IN ('pending', 'partially_shipped')]], state, tp.now(), id)
  if all then complete_in(id, receive_after()) end
  local shipment = { id = sid, carrier = carrier, tracking_no = tracking_no, status = "shipped",
                     shipped_at = tp.now(), lines = lines }
  tp.events.emit("order.shipped", { order = order_of(id), shipment = shipment, all_shipped = all })
  return shipment, ship.view(id)
end

---Every shipment delivered: the order is delivered, order.delivered, and the
---completion timer restarts from now. auto (the timer): an order that may no
---longer move (refunded meanwhile) is left as it is, and false returned.
local function delivered(id, auto)
  local r = record(id)
  if not r or r.state ~= "shipped" then return false end
  if not tp.call("orders", "set_fulfilment", id, "delivered") then
    if auto then return false end
    tell_orders(order_of(id), "delivered")
  end
  tp.db.exec([[UPDATE fulfilment_orders SET state = 'delivered', delivered_at = ?, updated_at = ?
    WHERE order_id = ? AND state = 'shipped']], tp.now(), tp.now(), id)
  tp.events.emit("order.delivered", { order = order_of(id), method = "express", auto = auto })
  return true
end

---A shipment arrived (the carrier's word, through the operator's system).
---@param sid integer
---@return table view
function ship.deliver(sid)
  local s = tp.db.one("SELECT id, order_id, status FROM fulfilment_shipments WHERE id = ?", sid)
  if not s then tp.fail(404, "shipment_not_found", "no such shipment") end
  if tp.db.exec([[UPDATE fulfilment_shipments SET status = 'delivered', delivered_at = ?
      WHERE id = ? AND status = 'shipped']], tp.now(), sid) == 0 then
    tp.fail(409, "already_delivered", "this shipment was delivered before")
  end
  local left = tp.db.one([[SELECT count(*) AS n FROM fulfilment_shipments
    WHERE order_id = ? AND status = 'shipped']], s.order_id).n
  if left == 0 and delivered(s.order_id, false) then complete_in(s.order_id, complete_after()) end
  return ship.view(s.order_id)
end

---核销: a member of the store's staff redeems a pickup code there.
---@param staff string the caller
---@param body table {store, code}
---@return table pickup
function ship.redeem(staff, body)
  check.only(body, { store = true, code = true })
  local store = check.ident(body.store, "store", 32)
  local code = check.ident(body.code, "code", 16)
  if not book.is_staff(store, staff) then
    tp.fail(403, "not_store_staff", "only this store's staff may redeem its pickups")
  end
  local r = tp.db.one([[SELECT order_id FROM fulfilment_orders
    WHERE store = ? AND pickup_code = ? AND method = 'pickup' AND state = 'pending']], store, code)
  if not r then tp.fail(404, "pickup_not_found", "no pickup waits at this store under that code") end
  local o = order_of(r.order_id)
  tell_orders(o, "picked_up")
  tp.db.exec([[UPDATE fulfilment_orders SET state = 'picked_up', picked_up_at = ?, picked_up_by = ?,
    updated_at = ? WHERE order_id = ? AND state = 'pending']], tp.now(), staff, tp.now(), o.id)
  complete_in(o.id, complete_after())
  tp.events.emit("order.delivered", { order = order_of(o.id), method = "pickup", store = store, auto = false })
  local lines = tp.json.array()
  for i, l in ipairs(o.lines) do lines[i] = { line = i, sku = l.sku, title = l.title, qty = l.qty } end
  return { order_id = o.id, store = store, picked_up_at = tp.now(), picked_up_by = staff, lines = lines }
end

---The completion timer: an express order nobody marked delivered is taken
---as received, then the order completes (nothing when it was refunded or
---completed meanwhile).
---@param id integer
function ship.auto_complete(id)
  local r = record(id)
  if not r then return end
  if r.state == "shipped" then
    if not delivered(id, true) then return end  -- the order is no longer paid: nothing to complete
    tp.db.exec([[UPDATE fulfilment_shipments SET status = 'delivered', delivered_at = ?
      WHERE order_id = ? AND status = 'shipped']], tp.now(), id)
  elseif r.state ~= "delivered" and r.state ~= "picked_up" then
    return
  end
  local o = order_of(id)
  if o.status == "paid" then tp.call("orders", "complete", id) end
end

---Goods of a shipped or picked-up order came back (a return): the units go
---to the catalog. {lines = {{line, qty}}}.
---@param id integer
---@param body table
---@return table view
function ship.returned(id, body)
  check.only(body, { lines = true })
  local o = order_of(id)
  if o.fulfilment == nil and o.completed_at == nil then  -- neither shipped nor ever completed
    tp.fail(409, "goods_not_out", "nothing of this order left the shop: a refund returns its units")
  end
  local lines = {}
  for i, x in ipairs(check.list(body.lines, "lines", 1, #o.lines, "line")) do
    local f = ("lines[%d]"):format(i)
    if type(x) ~= "table" then check.field_error(f, "must be an object {line, qty}") end
    check.only(x, { line = true, qty = true })
    local line = check.integer(x.line, f .. ".line", 1, #o.lines)
    lines[i] = { line = line, qty = check.integer(x.qty, f .. ".qty", 1, o.lines[line].qty) }
  end
  tp.call("orders", "restock", id, lines)
  tp.db.exec("UPDATE fulfilment_orders SET updated_at = ? WHERE order_id = ?", tp.now(), id)
  local out = { order_id = id, restocked = tp.json.array(lines) }
  return out
end

return ship
