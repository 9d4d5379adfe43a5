---@diagnostic disable: undefined-global
-- ordprobe: a subscriber for the end-to-end tests of orders and payments
-- (test_payments.py). It records every order.paid and order.refunded it
-- accepts, so a test can count side effects of a payment.

local function record(ev)
  local o = ev.data.order or {}
  tp.db.exec([[INSERT INTO ordprobe_seen (event_id, name, order_id, status, late, data)
    VALUES (?, ?, ?, ?, ?, ?)]], ev.id, ev.name, o.id, o.status, ev.data.late and 1 or 0,
    tp.json.encode(ev.data))
end

local function seen(req)
  return 200, { seen = tp.json.array(tp.db.query(
    "SELECT event_id, name, order_id, status, late FROM ordprobe_seen ORDER BY id")) }
end

return {
  name = "ordprobe",
  version = "1.0.0",
  migrations = {
    [[
    CREATE TABLE ordprobe_seen (
      id INTEGER PRIMARY KEY,
      event_id INTEGER NOT NULL,
      name TEXT NOT NULL,
      order_id INTEGER,
      status TEXT,
      late INTEGER NOT NULL,
      data TEXT NOT NULL
    );
    ]],
  },
  subscribe = {
    ["order.paid"] = record,
    ["order.refunded"] = record,
  },
  routes = {
    { method = "GET", path = "/ordprobe/seen", auth = "none", handler = seen },
  },
}
