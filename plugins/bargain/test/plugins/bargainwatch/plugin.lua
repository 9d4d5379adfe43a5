---@diagnostic disable: undefined-global
-- bargainwatch: a subscriber used only by tests: test/events_test.lua (the kit
-- puts <plugin>/test/plugins on the plugin path) and tests/e2e/test_bargain.py
-- (which adds this folder to the host's plugin_dirs). It records every
-- bargain.* event it is given, so the test can see what the bargain plugin
-- announced, with which bargain and in which state.

local function record(ev)
  local b = ev.data.bargain or {}
  tp.db.exec([[INSERT INTO bargainwatch_seen (name, bargain_id, state, price_fen, reason)
    VALUES (?, ?, ?, ?, ?)]], ev.name, b.id, b.state, b.price_fen, ev.data.reason)
end

local function seen()
  return 200, { items = tp.db.query("SELECT name, bargain_id, state, price_fen, reason FROM bargainwatch_seen ORDER BY id") }
end

return {
  name = "bargainwatch",
  version = "1.0.0",
  migrations = {
    [[
    CREATE TABLE bargainwatch_seen (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      bargain_id INTEGER,
      state TEXT,
      price_fen INTEGER,
      reason TEXT
    );
    ]],
  },
  routes = {
    { method = "GET", path = "/bargainwatch/seen", auth = "admin", handler = seen,
      summary = "The bargain events this test subscriber was given" },
  },
  subscribe = {
    ["bargain.started"] = record,
    ["bargain.floor_reached"] = record,
    ["bargain.expired"] = record,
    ["bargain.closed"] = record,
  },
}
