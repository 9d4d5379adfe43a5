---@diagnostic disable: undefined-global
-- shipwatch: a subscriber used only by test/events_test.lua. It records each
-- order.shipped and order.delivered it is given, to show what fulfilment
-- announced (and that no address travels with it).

local function record(ev)
  local d = ev.data
  tp.db.exec([[INSERT INTO shipwatch_seen (name, order_id, tracking_no, all_shipped, method, auto, has_address, fulfilment)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)]], ev.name, d.order.id, d.shipment and d.shipment.tracking_no,
    d.all_shipped and 1 or 0, d.method, d.auto and 1 or 0,
    (d.address or (d.shipment and d.shipment.address)) and 1 or 0, d.order.fulfilment)
end

return {
  name = "shipwatch",
  version = "1.0.0",
  migrations = {
    [[CREATE TABLE shipwatch_seen (id INTEGER PRIMARY KEY, name TEXT, order_id INTEGER, tracking_no TEXT,
      all_shipped INTEGER, method TEXT, auto INTEGER, has_address INTEGER, fulfilment TEXT);]],
  },
  routes = {},
  subscribe = { ["order.shipped"] = record, ["order.delivered"] = record },
}
