---@diagnostic disable: undefined-global
-- fulfilment: how a paid order reaches its buyer. An address book per member
-- (personal data), express delivery in one or more shipments (carrier,
-- tracking number, per line and quantity), store pickup (自提) with a code the
-- store's staff redeem (核销), and the automatic completion. The orders plugin
-- keeps the order's status; this plugin tells it how far the goods went
-- (orders.set_fulfilment), which also decides whether a refund returns units.

---@class FulfilmentConfig
---@field auto_receive_seconds integer? after the last shipment, an order nobody marked delivered is taken as received and completed (default 864000: 10 days)
---@field auto_complete_seconds integer? after delivery or pickup, the order completes (default 604800: 7 days)
---@field aftersale_auto_approve_seconds integer? an after-sales request the operator leaves undecided is approved after this (default 172800: 2 days)
---@field return_coupon "never"|"full_refund"? whether an after-sales refund that completes an order's full refund gives its coupon back (default "never")

local check = require("tp.check")
local schema = require("tp.schema")
local book = require("lib.book")
local ship = require("lib.ship")
local aftersale = require("lib.aftersale")

local INT, STR, BOOL = { type = "integer" }, { type = "string" }, { type = "boolean" }
local EPOCH = { type = "integer", minimum = 0, description = "UTC epoch seconds" }

local ADDRESS = { type = "object", description = "an address of the caller's book (personal data)",
  required = { "id", "name", "phone", "province", "city", "detail", "is_default" },
  properties = { id = INT, name = STR, phone = STR, province = STR, city = STR, district = STR, detail = STR,
                 is_default = BOOL, created_at = EPOCH, updated_at = EPOCH } }
local SNAPSHOT = { type = "object", description = "the address as chosen, kept on the order (personal data)",
  properties = { name = STR, phone = STR, province = STR, city = STR, district = STR, detail = STR } }
local STORE = { type = "object", required = { "id", "name", "address", "status" },
  properties = { id = STR, name = STR, address = STR, hours = STR,
                 status = { type = "string", enum = { "open", "closed" } }, created_at = EPOCH } }
local LINE_QTY = { type = "object", required = { "line", "qty" }, properties = {
  line = { type = "integer", minimum = 1, description = "the line's place in order.lines, from 1" },
  sku = STR, qty = { type = "integer", minimum = 1 } } }
local SHIPMENT = { type = "object", required = { "id", "carrier", "tracking_no", "status", "lines" },
  properties = { id = INT, carrier = STR, tracking_no = STR,
                 status = { type = "string", enum = { "shipped", "delivered" } },
                 shipped_at = EPOCH, delivered_at = EPOCH, lines = { type = "array", items = LINE_QTY } } }
local VIEW = { type = "object", description = "an order's delivery",
  required = { "order_id", "method", "state", "lines", "shipments" },
  properties = { order_id = INT, method = { type = "string", enum = { "express", "pickup" } },
    state = { type = "string", enum = { "pending", "partially_shipped", "shipped", "delivered", "picked_up" } },
    address = SNAPSHOT, store = STORE,
    pickup_code = { type = "string", description = "8 digits the buyer shows at the store (pickup only)" },
    lines = { type = "array", items = { type = "object", properties = { line = INT, sku = STR, title = STR,
      qty = INT, shipped = { type = "integer", description = "units shipped so far" } } } },
    shipments = { type = "array", items = SHIPMENT },
    created_at = EPOCH, updated_at = EPOCH, delivered_at = EPOCH, picked_up_at = EPOCH } }
local LINES_BODY = { type = "array", minItems = 1, items = { type = "object", required = { "line", "qty" },
  properties = { line = { type = "integer", minimum = 1 }, qty = { type = "integer", minimum = 1 } } } }

local function body_of(req) return check.body(req.body == nil and {} or req.body) end
local function id_of(req) return req.params.id end

-- ---- the buyer

local function list_addresses(req) return 200, { items = tp.json.array(book.addresses(req.user)) } end
local function add_address(req) return 201, book.add_address(req.user, body_of(req)) end
local function update_address(req) return 200, book.update_address(req.user, id_of(req), body_of(req)) end
local function delete_address(req)
  book.delete_address(req.user, id_of(req))
  return 200, { deleted = true }
end

local function choose(req) return 200, ship.choose(req.user, id_of(req), body_of(req)) end

local function my_delivery(req)
  local o = tp.call("orders", "get", id_of(req))
  if not o or o.user ~= req.user then tp.fail(404, "order_not_found", "no such order") end
  return 200, ship.view(o.id, o)
end

local function open_stores() return 200, { items = tp.json.array(book.stores(true)) } end

-- ---- store staff

local function redeem(req) return 200, ship.redeem(req.user, body_of(req)) end

-- ---- operators

local function create_store(req) return 201, book.create_store(body_of(req)) end
local function update_store(req)
  return 200, book.update_store(check.ident(req.params.id, "id", 32), body_of(req))
end
local function all_stores() return 200, { items = tp.json.array(book.stores(false)) } end
local function store_staff(req)
  local id = check.ident(req.params.id, "id", 32)
  if not book.store(id) then tp.fail(404, "store_not_found", ("no store %s"):format(id)) end
  return 200, { store = id, staff = book.staff(id) }
end
local function add_staff(req)
  local id = check.ident(req.params.id, "id", 32)
  local body = body_of(req)
  check.only(body, { user = true })
  local user = tp.auth.resolve(check.user(body.user, "user")) or body.user
  book.add_staff(id, user)
  return 201, { store = id, staff = book.staff(id) }
end
local function remove_staff(req)
  local id = check.ident(req.params.id, "id", 32)
  book.remove_staff(id, check.user(req.params.user, "user"))
  return 200, { store = id, staff = book.staff(id) }
end

local function admin_delivery(req) return 200, ship.view(id_of(req)) end

local function post_shipment(req)
  local shipment, view = ship.ship(id_of(req), body_of(req))
  return 201, { shipment = shipment, delivery = view }
end

local function shipment_delivered(req) return 200, ship.deliver(id_of(req)) end

local function returned(req) return 200, ship.returned(id_of(req), body_of(req)) end

local function to_ship(req)
  local limit, after = check.page(req.query, 50, 500)
  local state = check.enum(req.query.state, "state",
    { pending = true, partially_shipped = true, shipped = true, delivered = true, picked_up = true }, true)
  local rows = tp.db.query([[SELECT order_id, method, state, store, updated_at FROM fulfilment_orders
    WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR order_id < ?2) ORDER BY order_id DESC LIMIT ?3]],
    state, after, limit)
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].order_id or nil }
end

-- ---- after-sales

local function aftersale_request(req) return 201, aftersale.request(req.user, body_of(req)) end
local function my_aftersales(req)
  local rows = tp.db.query("SELECT id FROM fulfilment_aftersales WHERE user = ? ORDER BY id DESC LIMIT 100", req.user)
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = aftersale.load(r.id) end
  return 200, { items = items }
end
local function my_aftersale(req) return 200, aftersale.own(req.user, id_of(req)) end
local function aftersale_cancel(req) return 200, aftersale.cancel(req.user, id_of(req)) end
local function aftersale_return(req) return 200, aftersale.returned(req.user, id_of(req), body_of(req)) end

local function note_of(req)
  local body = body_of(req)
  check.only(body, { note = true })
  return check.text(body.note, "note", 200, true)
end
local function admin_aftersale(req)
  local r = aftersale.load(id_of(req))
  if not r then tp.fail(404, "aftersale_not_found", "no such after-sales request") end
  return r
end
local function aftersale_approve(req)
  local note = note_of(req)
  local r = admin_aftersale(req)
  if not aftersale.approve(r.id, "operator", note) then
    tp.fail(409, "already_decided", ("a request that is %s was decided"):format(r.status), { status = r.status })
  end
  return 200, aftersale.load(r.id)
end
local function aftersale_reject(req)
  local note = note_of(req)
  local r = admin_aftersale(req)
  if note == nil then check.field_error("note", "a rejection tells the buyer why") end
  if not aftersale.reject(r.id, note) then
    tp.fail(409, "already_decided", ("a request that is %s was decided"):format(r.status), { status = r.status })
  end
  return 200, aftersale.load(r.id)
end
local function aftersale_received(req) return 200, aftersale.received(id_of(req)) end
local function admin_aftersales(req)
  local limit, after = check.page(req.query, 50, 500)
  local status = check.enum(req.query.status, "status", { requested = true, approved = true, returning = true,
    refunded = true, rejected = true, cancelled = true }, true)
  local rows = tp.db.query([[SELECT id FROM fulfilment_aftersales WHERE (?1 IS NULL OR status = ?1)
    AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3]], status, after, limit)
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = aftersale.load(r.id) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

local AFTERSALE = { type = "object", description = "an after-sales request (售后)",
  required = { "id", "order_id", "kind", "status", "reason", "amount_fen", "lines" },
  properties = { id = INT, order_id = INT, user = STR,
    kind = { type = "string", enum = { "refund_only", "return_refund" } },
    status = { type = "string", enum = { "requested", "approved", "returning", "refunded", "rejected", "cancelled" } },
    reason = STR, photos = { type = "array", items = STR },
    amount_fen = { type = "integer", minimum = 0, description = "integer fen: what the lines' units paid" },
    note = { type = "string", description = "the operator's" },
    decided_by = { type = "string", enum = { "operator", "timer" } },
    return_carrier = STR, return_tracking_no = STR,
    refund_no = { type = "string", description = "the orders plugin's refund number (R<order>-<n>), paid out once" },
    restocked = { type = "boolean", description = "its units went back to the catalog" },
    lines = { type = "array", items = { type = "object", properties = { line = INT, sku = STR, qty = INT,
      amount_fen = INT } } },
    created_at = EPOCH, decided_at = EPOCH, returned_at = EPOCH, received_at = EPOCH, refunded_at = EPOCH,
    updated_at = EPOCH } }
local AFTERSALES = { type = "object", required = { "items" }, properties = {
  items = { type = "array", items = AFTERSALE }, next_after = INT } }
local NOTE_BODY = { type = "object", properties = { note = { type = "string", maxLength = 200 } } }

local ORDER_404 = { [404] = { "order_not_found" } }

local ROUTES = {
  -- the buyer's address book
  { method = "GET", path = "/fulfilment/addresses", handler = list_addresses, personal = true,
    summary = "My address book, the default first",
    response = { type = "object", required = { "items" }, properties = { items = { type = "array", items = ADDRESS } } } },
  { method = "POST", path = "/fulfilment/addresses", handler = add_address, status = 201, personal = true,
    summary = "Add an address (the first becomes the default)", body = book.ADDRESS:body(), response = ADDRESS,
    errors = { [400] = { "invalid_field" }, [409] = { "address_book_full" } } },
  { method = "PATCH", path = "/fulfilment/addresses/{id:int}", handler = update_address, personal = true,
    summary = "Change an address, or make it the default", body = book.ADDRESS:body(true), response = ADDRESS,
    errors = { [400] = { "invalid_field" }, [404] = { "address_not_found" } } },
  { method = "DELETE", path = "/fulfilment/addresses/{id:int}", handler = delete_address,
    summary = "Remove an address (orders keep the copy they were sent to)",
    response = { type = "object", properties = { deleted = BOOL } },
    errors = { [404] = { "address_not_found" } } },
  -- the buyer's delivery
  { method = "GET", path = "/fulfilment/stores", auth = "none", handler = open_stores,
    summary = "Stores that take pickups (自提点)",
    response = { type = "object", required = { "items" }, properties = { items = { type = "array", items = STORE } } } },
  { method = "POST", path = "/fulfilment/orders/{id:int}/delivery", handler = choose, personal = true,
    summary = "Choose express delivery to an address of mine, or pickup at a store (gives the pickup code)",
    body = { type = "object", required = { "method" }, properties = {
      method = { type = "string", enum = { "express", "pickup" } },
      address_id = { type = "integer", minimum = 1, description = "express: an address of my book (default: my default)" },
      store = { type = "string", description = "pickup: an open store's id" } } },
    response = VIEW,
    errors = { [400] = { "invalid_field" }, [404] = { "order_not_found", "address_not_found", "store_not_found" },
               [409] = { "not_deliverable", "already_on_its_way", "store_closed" } } },
  { method = "GET", path = "/fulfilment/orders/{id:int}", handler = my_delivery, personal = true,
    summary = "My order's delivery: shipments, tracking numbers, or the pickup code", response = VIEW,
    errors = { [404] = { "order_not_found", "fulfilment_not_found" } } },
  -- store staff
  { method = "POST", path = "/fulfilment/pickups/redeem", handler = redeem,
    summary = "核销: the store's staff hand over an order for its pickup code",
    body = { type = "object", required = { "store", "code" }, properties = { store = STR, code = STR } },
    response = { type = "object", required = { "order_id", "store", "picked_up_at", "lines" },
      properties = { order_id = INT, store = STR, picked_up_at = EPOCH, picked_up_by = STR,
        lines = { type = "array", items = LINE_QTY } } },
    errors = { [400] = { "invalid_field" }, [403] = { "not_store_staff" }, [404] = { "pickup_not_found" },
               [409] = { "not_fulfillable" } } },
  -- operators
  { method = "POST", path = "/fulfilment/stores", auth = "admin", handler = create_store, status = 201,
    summary = "Open a pickup store", body = book.STORE:body(), response = STORE,
    errors = { [400] = { "invalid_field" }, [409] = { "store_exists" } } },
  { method = "GET", path = "/fulfilment/stores", auth = "admin", handler = all_stores, summary = "Every pickup store",
    response = { type = "object", required = { "items" }, properties = { items = { type = "array", items = STORE } } } },
  { method = "PATCH", path = "/fulfilment/stores/{id:str}", auth = "admin", handler = update_store,
    summary = "Rename, move or close a pickup store", body = book.STORE:body(true), response = STORE,
    errors = { [400] = { "invalid_field" }, [404] = { "store_not_found" } } },
  { method = "GET", path = "/fulfilment/stores/{id:str}/staff", auth = "admin", handler = store_staff,
    summary = "A store's staff (who may redeem its pickups)",
    response = { type = "object", properties = { store = STR, staff = { type = "array", items = STR } } },
    errors = { [404] = { "store_not_found" } } },
  { method = "POST", path = "/fulfilment/stores/{id:str}/staff", auth = "admin", handler = add_staff, status = 201,
    summary = "Make a member staff of a store: her own token then redeems that store's pickups, and only its",
    body = { type = "object", required = { "user" }, properties = { user = STR } },
    response = { type = "object", properties = { store = STR, staff = { type = "array", items = STR } } },
    errors = { [400] = { "invalid_field" }, [404] = { "store_not_found" } } },
  { method = "DELETE", path = "/fulfilment/stores/{id:str}/staff/{user:str}", auth = "admin", handler = remove_staff,
    summary = "Remove a member from a store's staff",
    response = { type = "object", properties = { store = STR, staff = { type = "array", items = STR } } },
    errors = { [400] = { "invalid_field" }, [404] = { "staff_not_found" } } },
  { method = "GET", path = "/fulfilment/orders", auth = "admin", handler = to_ship,
    summary = "Deliveries by state (pending: to ship or to pick up), newest first",
    query = { state = STR, limit = INT, after = INT },
    response = { type = "object", required = { "items" }, properties = {
      items = { type = "array", items = { type = "object", properties = { order_id = INT, method = STR, state = STR,
        store = STR, updated_at = EPOCH } } }, next_after = INT } },
    errors = { [400] = { "invalid_field", "invalid_query" } } },
  { method = "GET", path = "/fulfilment/orders/{id:int}", auth = "admin", handler = admin_delivery, personal = true,
    summary = "An order's delivery, with the address", response = VIEW,
    errors = { [404] = { "order_not_found", "fulfilment_not_found" } } },
  { method = "POST", path = "/fulfilment/orders/{id:int}/shipments", auth = "admin", handler = post_shipment,
    status = 201, personal = true,
    summary = "Ship lines of an express order (all that is left without lines): emits order.shipped",
    body = { type = "object", required = { "carrier", "tracking_no" }, properties = {
      carrier = { type = "string", maxLength = 30 }, tracking_no = { type = "string", maxLength = 40 },
      lines = LINES_BODY } },
    response = { type = "object", required = { "shipment", "delivery" },
      properties = { shipment = SHIPMENT, delivery = VIEW } },
    errors = { [400] = { "invalid_field" }, [404] = { "order_not_found" },
               [409] = { "no_delivery_chosen", "not_express", "nothing_to_ship", "ship_exceeds_ordered",
                         "not_fulfillable", "tracking_no_used" } } },
  { method = "POST", path = "/fulfilment/shipments/{id:int}/delivered", auth = "admin", handler = shipment_delivered,
    personal = true, summary = "A shipment arrived; the last one delivers the order (order.delivered)",
    response = VIEW,
    errors = { [404] = { "shipment_not_found" }, [409] = { "already_delivered", "not_fulfillable" } } },
  { method = "POST", path = "/fulfilment/orders/{id:int}/returns", auth = "admin", handler = returned,
    summary = "Goods of a shipped or completed order came back: their units go back to the catalog",
    body = { type = "object", required = { "lines" }, properties = { lines = LINES_BODY } },
    response = { type = "object", properties = { order_id = INT, restocked = { type = "array", items = LINE_QTY } } },
    errors = { [400] = { "invalid_field" }, [404] = { "order_not_found" },
               [409] = { "goods_not_out", "restock_exceeds_ordered" } } },
  -- after-sales: the buyer
  { method = "POST", path = "/fulfilment/aftersales", handler = aftersale_request, status = 201,
    summary = "Ask for 仅退款 (refund_only) or 退货退款 (return_refund) of lines of my order",
    body = { type = "object", required = { "order_id", "kind", "lines", "reason" }, properties = {
      order_id = { type = "integer", minimum = 1 },
      kind = { type = "string", enum = { "refund_only", "return_refund" } },
      lines = LINES_BODY, reason = { type = "string", maxLength = 200 },
      photos = { type = "array", maxItems = 9, items = { type = "string", maxLength = 512,
        description = "an https:// URL" } } } },
    response = AFTERSALE,
    errors = { [400] = { "invalid_field" }, [404] = { "order_not_found" },
               [409] = { "not_refundable", "nothing_to_return", "exceeds_bought", "nothing_to_refund" } } },
  { method = "GET", path = "/fulfilment/aftersales", handler = my_aftersales, summary = "My after-sales requests",
    response = AFTERSALES },
  { method = "GET", path = "/fulfilment/aftersales/{id:int}", handler = my_aftersale,
    summary = "One of my after-sales requests", response = AFTERSALE, errors = { [404] = { "aftersale_not_found" } } },
  { method = "POST", path = "/fulfilment/aftersales/{id:int}/cancel", handler = aftersale_cancel,
    summary = "Withdraw my request before it is decided", response = AFTERSALE,
    errors = { [404] = { "aftersale_not_found" }, [409] = { "not_cancellable" } } },
  { method = "POST", path = "/fulfilment/aftersales/{id:int}/return", handler = aftersale_return,
    summary = "I sent the goods back: the carrier and tracking number",
    body = { type = "object", required = { "carrier", "tracking_no" }, properties = {
      carrier = { type = "string", maxLength = 30 }, tracking_no = { type = "string", maxLength = 40 } } },
    response = AFTERSALE,
    errors = { [400] = { "invalid_field" }, [404] = { "aftersale_not_found" },
               [409] = { "not_a_return", "not_awaiting_return" } } },
  -- after-sales: operators
  { method = "GET", path = "/fulfilment/aftersales", auth = "admin", handler = admin_aftersales,
    summary = "After-sales requests by status, newest first",
    query = { status = STR, limit = INT, after = INT }, response = AFTERSALES,
    errors = { [400] = { "invalid_field", "invalid_query" } } },
  { method = "GET", path = "/fulfilment/aftersales/{id:int}", auth = "admin", handler = function(req)
      return 200, admin_aftersale(req) end,
    summary = "An after-sales request", response = AFTERSALE, errors = { [404] = { "aftersale_not_found" } } },
  { method = "POST", path = "/fulfilment/aftersales/{id:int}/approve", auth = "admin", handler = aftersale_approve,
    summary = "Approve: a refund_only refunds now, a return_refund waits for the goods", body = NOTE_BODY,
    response = AFTERSALE,
    errors = { [400] = { "invalid_field" }, [404] = { "aftersale_not_found" },
               [409] = { "already_decided", "refund_exceeds_paid", "not_refundable", "refund_conflict",
                         "restock_exceeds_ordered" } } },
  { method = "POST", path = "/fulfilment/aftersales/{id:int}/reject", auth = "admin", handler = aftersale_reject,
    summary = "Reject, with a note for the buyer", body = NOTE_BODY, response = AFTERSALE,
    errors = { [400] = { "invalid_field" }, [404] = { "aftersale_not_found" }, [409] = { "already_decided" } } },
  { method = "POST", path = "/fulfilment/aftersales/{id:int}/received", auth = "admin", handler = aftersale_received,
    summary = "The returned goods arrived: their units go back to stock and the refund is made",
    response = AFTERSALE,
    errors = { [404] = { "aftersale_not_found" },
               [409] = { "not_returning", "refund_exceeds_paid", "not_refundable", "refund_conflict",
                         "restock_exceeds_ordered" } } },
}

return {
  name = "fulfilment",
  version = "1.1.0",
  description = "address book, express shipments, store pickup (自提) with 核销, automatic completion, after-sales (售后)",
  migrations = {
    [[
    CREATE TABLE fulfilment_addresses (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      name TEXT NOT NULL, phone TEXT NOT NULL, province TEXT NOT NULL, city TEXT NOT NULL,
      district TEXT, detail TEXT NOT NULL,
      is_default INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
    );
    CREATE INDEX fulfilment_addresses_user ON fulfilment_addresses(user);
    CREATE TABLE fulfilment_stores (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL, address TEXT NOT NULL, hours TEXT,
      status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
      created_at INTEGER NOT NULL
    );
    CREATE TABLE fulfilment_staff (
      store TEXT NOT NULL, user TEXT NOT NULL, created_at INTEGER NOT NULL,
      PRIMARY KEY (store, user)
    ) WITHOUT ROWID;
    CREATE TABLE fulfilment_orders (
      order_id INTEGER PRIMARY KEY,
      user TEXT NOT NULL,
      method TEXT NOT NULL CHECK (method IN ('express', 'pickup')),
      state TEXT NOT NULL CHECK (state IN ('pending', 'partially_shipped', 'shipped', 'delivered', 'picked_up')),
      address TEXT,               -- JSON: the address as chosen (personal data)
      store TEXT, pickup_code TEXT,
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
      delivered_at INTEGER, picked_up_at INTEGER, picked_up_by TEXT,
      CHECK ((method = 'express') = (address IS NOT NULL)),
      CHECK ((method = 'pickup') = (store IS NOT NULL AND pickup_code IS NOT NULL))
    );
    CREATE UNIQUE INDEX fulfilment_orders_code ON fulfilment_orders(store, pickup_code) WHERE state = 'pending';
    CREATE INDEX fulfilment_orders_user ON fulfilment_orders(user);
    CREATE TABLE fulfilment_shipments (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      order_id INTEGER NOT NULL,
      carrier TEXT NOT NULL, tracking_no TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('shipped', 'delivered')),
      shipped_at INTEGER NOT NULL, delivered_at INTEGER,
      UNIQUE (carrier, tracking_no)
    );
    CREATE INDEX fulfilment_shipments_order ON fulfilment_shipments(order_id);
    CREATE TABLE fulfilment_shipment_lines (
      shipment_id INTEGER NOT NULL, order_id INTEGER NOT NULL, line INTEGER NOT NULL,
      sku TEXT NOT NULL, qty INTEGER NOT NULL CHECK (qty >= 1),
      PRIMARY KEY (shipment_id, line)
    ) WITHOUT ROWID;
    CREATE INDEX fulfilment_shipment_lines_order ON fulfilment_shipment_lines(order_id, line);
    ]],
    [[
    CREATE TABLE fulfilment_aftersales (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      order_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('refund_only', 'return_refund')),
      status TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'returning', 'refunded', 'rejected',
                                             'cancelled')),
      reason TEXT NOT NULL,
      photos TEXT NOT NULL,      -- JSON array of https URLs
      amount_fen INTEGER NOT NULL CHECK (amount_fen >= 0),
      note TEXT, decided_by TEXT,
      return_carrier TEXT, return_tracking_no TEXT,
      refund_no TEXT,
      restocked INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL, decided_at INTEGER, returned_at INTEGER, received_at INTEGER,
      refunded_at INTEGER, updated_at INTEGER NOT NULL
    );
    CREATE INDEX fulfilment_aftersales_order ON fulfilment_aftersales(order_id);
    CREATE INDEX fulfilment_aftersales_user ON fulfilment_aftersales(user, id);
    CREATE INDEX fulfilment_aftersales_status ON fulfilment_aftersales(status, id);
    CREATE TABLE fulfilment_aftersale_lines (
      aftersale_id INTEGER NOT NULL, order_id INTEGER NOT NULL, line INTEGER NOT NULL,
      sku TEXT NOT NULL, qty INTEGER NOT NULL CHECK (qty >= 1),
      amount_fen INTEGER NOT NULL CHECK (amount_fen >= 0),
      PRIMARY KEY (aftersale_id, line)
    ) WITHOUT ROWID;
    CREATE INDEX fulfilment_aftersale_lines_order ON fulfilment_aftersale_lines(order_id, line);
    ]],
    -- 1.1.0: fulfilment_orders's state checked with ORs, not IN (...): SQLite evaluates
    -- a CHECK's IN list of three or more values by building a temporary b-tree of it on
    -- every row written, about 30k instructions, and every delivery chosen writes a row
    -- and every shipment changes its state (`tidepool check` warns of it). A CHECK
    -- cannot change in place, so the table is rebuilt: new, copy, drop, rename, indexes
    -- again.
    [[
    CREATE TABLE fulfilment_orders_v2 (
      order_id INTEGER PRIMARY KEY,
      user TEXT NOT NULL,
      method TEXT NOT NULL CHECK (method IN ('express', 'pickup')),
      state TEXT NOT NULL CHECK (state = 'pending' OR state = 'partially_shipped' OR state = 'shipped'
        OR state = 'delivered' OR state = 'picked_up'),
      address TEXT,               -- JSON: the address as chosen (personal data)
      store TEXT, pickup_code TEXT,
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
      delivered_at INTEGER, picked_up_at INTEGER, picked_up_by TEXT,
      CHECK ((method = 'express') = (address IS NOT NULL)),
      CHECK ((method = 'pickup') = (store IS NOT NULL AND pickup_code IS NOT NULL))
    );
    INSERT INTO fulfilment_orders_v2 (
        order_id, user, method, state, address, store, pickup_code, created_at, updated_at,
        delivered_at, picked_up_at, picked_up_by)
      SELECT
        order_id, user, method, state, address, store, pickup_code, created_at, updated_at,
        delivered_at, picked_up_at, picked_up_by
      FROM fulfilment_orders;
    DROP TABLE fulfilment_orders;
    ALTER TABLE fulfilment_orders_v2 RENAME TO fulfilment_orders;
    CREATE UNIQUE INDEX fulfilment_orders_code ON fulfilment_orders(store, pickup_code) WHERE state = 'pending';
    CREATE INDEX fulfilment_orders_user ON fulfilment_orders(user);
    ]],
  },
  routes = ROUTES,
  jobs = {
    auto_complete = function(job) ship.auto_complete(job.payload.order_id) end,
    auto_approve = function(job) aftersale.approve(job.payload.aftersale_id, "timer", nil) end,
  },
  subscribe = {
    -- an erased member's address book goes, and the copies kept on her orders
    ["member.erased"] = function(ev)
      local user = ev.data.member
      tp.db.exec("DELETE FROM fulfilment_addresses WHERE user = ?", user)
      tp.db.exec([[UPDATE fulfilment_orders SET address = '{"erased":true}' WHERE user = ? AND address IS NOT NULL]],
        user)
    end,
  },
  exports = {
    schemas = function() return schema.document(ROUTES) end,
  },
}
