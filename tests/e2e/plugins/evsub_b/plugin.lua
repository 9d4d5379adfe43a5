---@diagnostic disable: undefined-global
-- evsub_b: a subscriber for the end-to-end tests (test_events.py) that fails
-- on purpose: always on order.doomed, on order.flaky only for event n = 1 and
-- only its first two attempts, on order.once only on the first attempt. What
-- it accepts is recorded in evsub_b_seen (a failed attempt leaves nothing).

local function record(ev)
  tp.db.exec([[
    INSERT INTO evsub_b_seen (event_id, name, source, data, attempt, emitted_at, emitted_at_ms,
                              now_ms)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)]],
    ev.id, ev.name, ev.source, tp.json.encode(ev.data), ev.attempt, ev.emitted_at,
    ev.emitted_at_ms, tp.now_ms())
end

local function doomed(ev)
  record(ev)   -- rolled back with the attempt
  error("subscriber b refuses event " .. tostring(ev.data.n))
end

local function flaky(ev)
  if ev.data.n == 1 and ev.attempt <= 2 then
    error("subscriber b is not ready for event 1 (attempt " .. ev.attempt .. ")")
  end
  record(ev)
end

local function once(ev)
  if ev.attempt == 1 then
    error("subscriber b fails its first attempt")
  end
  record(ev)
end

local function seen()
  return 200, { seen = tp.db.query("SELECT * FROM evsub_b_seen ORDER BY id") }
end

return {
  name = "evsub_b",
  version = "1.0.0",
  migrations = {
    [[
    CREATE TABLE evsub_b_seen (
      id INTEGER PRIMARY KEY,
      event_id INTEGER NOT NULL,
      name TEXT NOT NULL,
      source TEXT NOT NULL,
      data TEXT NOT NULL,
      attempt INTEGER NOT NULL,
      emitted_at INTEGER NOT NULL,
      emitted_at_ms INTEGER NOT NULL,
      now_ms INTEGER NOT NULL
    );
    ]],
  },
  subscribe = {
    ["order.placed"] = record,
    ["order.doomed"] = doomed,
    ["order.flaky"] = flaky,
    ["order.once"] = once,
    ["chain.next"] = record,
  },
  routes = {
    { method = "GET", path = "/evsub_b/seen", auth = "none", handler = seen },
  },
}
