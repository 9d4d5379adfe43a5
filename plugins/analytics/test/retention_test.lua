-- analytics: an hour at the edge of raw-event retention, part of whose events
-- (or of their sessions) the host has deleted, keeps the rows it had when
-- something asks for it again (a login tying a device that has events in it,
-- a day recomputed); hours away from the edge are counted again as usual.

kit.plugins {
  catalog = {},
  orders = {},
  analytics = {},
}

local DAY, HOUR = 86400, 3600

local n = 0
---One event of `kind` in `session` at epoch `at` (a session's first event opens it).
local function track(client, device, session, kind, at)
  n = n + 1
  local res = client:post("/track", { device = device, events = {
    { id = "r" .. n, kind = kind, at = at * 1000, session = session, scene = 1008 } } })
  expect(res.status).to_be(200)
end

local function day_rows(day)
  return kit.query([[SELECT source, n FROM analytics_day_uv WHERE day = ? ORDER BY source]], day)
end

describe("an hour at the edge of retention", function()
  it("keeps its rows when a login or a day recomputed would count it from what is left", function()
    local date = kit.local_time(kit.now() + DAY):sub(1, 10)
    local day = kit.at_local(date .. " 00:00")
    local h = kit.at_local(date .. " 10:00")
    kit.set_now(h + 80 * 60)
    track(kit.anon(), "dev-old", "s-old", "enter", h + 10 * 60)      -- to go with retention
    track(kit.anon(), "dev-kept", "s-long", "enter", h + 20 * 60)    -- goes too, and its session
    track(kit.anon(), "dev-kept", "s-long", "page_view", h + 70 * 60)   -- stays, its session gone
    track(kit.anon(), "dev-kept", "s-kept", "enter", h + 50 * 60)    -- stays
    expect(kit.admin():post("/analytics/rollup").status).to_be(200)
    local before = day_rows(day)
    expect(before[1].source .. " " .. before[1].n).to_be(" 2")   -- '' (any source): 2 visitors
    -- dev-kept comes back 88 days later: that hour is far from the retention cutoff
    kit.set_now(h + 88 * DAY)
    track(kit.anon(), "dev-kept", "s-back", "enter", kit.now())
    expect(kit.admin():post("/analytics/rollup").status).to_be(200)
    -- 90 days on, the host deletes the raw events and sessions older than 90 days:
    -- half of hour h, and the session of an event in the hour after
    kit.set_now(h + 90 * DAY + 30 * 60)
    track(kit.anon(), "dev-new", "s-new", "enter", kit.now())       -- intake purges
    expect(#kit.query("SELECT 1 FROM track.analytics_events WHERE at < ?", (h + 2 * HOUR) * 1000)).to_be(2)
    expect(#kit.query("SELECT 1 FROM track.analytics_sessions WHERE id = 's-long'")).to_be(0)
    track(kit.user("m-kept"), "dev-kept", "s-login", "enter", kit.now())   -- ties dev-kept to m-kept
    expect(kit.admin():post("/analytics/rollup").status).to_be(200)
    expect(day_rows(day)).to_equal(before)
    -- the hour 88 days on was counted again: its visit is the member's now
    local back = h + 88 * DAY - (h + 88 * DAY) % HOUR
    expect(kit.query("SELECT DISTINCT visitor FROM analytics_hits WHERE hour = ?", back)[1].visitor)
      .to_be("m-kept")
    expect(kit.admin():post("/analytics/rollup", { day = date }).status).to_be(200)
    expect(day_rows(day)).to_equal(before)
  end)
end)
