---@diagnostic disable: undefined-global
-- evsub_a: a subscriber for the end-to-end tests (test_events.py). It records
-- every delivery it accepts in evsub_a_seen; on chain.start it emits chain.next.

local function record(ev)
  tp.db.exec([[
    INSERT INTO evsub_a_seen (event_id, name, source, data, attempt, emitted_at, emitted_at_ms,
                              now_ms)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)]],
    ev.id, ev.name, ev.source, tp.json.encode(ev.data), ev.attempt, ev.emitted_at,
    ev.emitted_at_ms, tp.now_ms())
end

-- emits chain.next; with data.fail_first, the first attempt raises after
-- emitting (that emission must vanish with the attempt)
local function chain_start(ev)
  record(ev)
  tp.events.emit("chain.next", { n = ev.data.n + 1, via = "evsub_a", start_id = ev.id })
  if ev.data.fail_first and ev.attempt == 1 then
    error("evsub_a fails after emitting chain.next")
  end
end

local function seen()
  return 200, { seen = tp.db.query("SELECT * FROM evsub_a_seen ORDER BY id") }
end

return {
  name = "evsub_a",
  version = "1.0.0",
  migrations = {
    [[
    CREATE TABLE evsub_a_seen (
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
    ["order.doomed"] = record,
    ["chain.start"] = chain_start,
  },
  routes = {
    { method = "GET", path = "/evsub_a/seen", auth = "none", handler = seen },
  },
}
