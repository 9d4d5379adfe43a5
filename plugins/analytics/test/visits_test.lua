-- analytics: distinct visitors over whole days come from analytics_visits
-- (each visitor once a day with the day it was seen before) and the days'
-- counts. Whatever order the days are rolled up in (a late day between two
-- done ones, a merge, a day recomputed), every report over any run of days
-- equals the plain distinct count over the days' rows, and every `prev` is
-- the visitor's day before.

kit.plugins {
  catalog = {},
  orders = {},
  analytics = {},
  merger = {},
}

local DAY, HOUR = 86400, 3600

local function date_of(epoch) return kit.local_time(epoch):sub(1, 10) end

local n = 0
local function visit(device, at, scene)
  n = n + 1
  local res = kit.anon():post("/track", { device = device, events = {
    { id = "v" .. n, kind = "enter", at = at * 1000, session = "vs" .. n, scene = scene } } })
  expect(res.status).to_be(200)
end

local function member_visit(member, at, scene)
  n = n + 1
  local res = kit.user(member):post("/track", { events = {
    { id = "v" .. n, kind = "enter", at = at * 1000, session = "vs" .. n, scene = scene } } })
  expect(res.status).to_be(200)
end

local D = {}   -- D[1..3]: the local midnights of three days in a row

---Every prev is the visitor's latest earlier day (same source), 0 for none.
local function prev_is_true()
  local bad = kit.query([[SELECT count(*) AS n FROM analytics_visits v WHERE prev <>
    coalesce((SELECT max(p.day) FROM analytics_visits p WHERE p.source = v.source
      AND p.visitor = v.visitor AND p.day < v.day), 0)]])[1].n
  expect(bad).to_be(0)
  local counts = kit.query([[SELECT count(*) AS n FROM analytics_day_uv u WHERE n <>
    (SELECT count(*) FROM analytics_visits v WHERE v.source = u.source AND v.day = u.day)]])[1].n
  expect(counts).to_be(0)
end

---The overview's UV and the sources' visitors over every run of the three
---days equal count(DISTINCT visitor) over the days' rows.
local function reports_agree()
  for i = 1, 3 do
    for j = i, 3 do
      local a, b = D[i], D[j] + DAY
      local want = kit.query([[SELECT count(DISTINCT visitor) AS n FROM analytics_days
        WHERE day >= ? AND day < ?]], a, b)[1].n
      local q = "?from=" .. date_of(D[i]) .. "&to=" .. date_of(D[j])
      local ov = kit.admin():get("/analytics/overview" .. q).body
      expect(("%d-%d %d"):format(i, j, ov.total.uv)).to_be(("%d-%d %d"):format(i, j, want))
      local src = kit.admin():get("/analytics/sources" .. q).body
      local got = {}
      for _, r in ipairs(src.items) do got[r.key] = r.visitors end
      for _, r in ipairs(kit.query([[SELECT source, count(DISTINCT visitor) AS n FROM analytics_days
          WHERE day >= ? AND day < ? GROUP BY source]], a, b)) do
        expect(("%d-%d %s %d"):format(i, j, r.source, got[r.source] or -1))
          .to_be(("%d-%d %s %d"):format(i, j, r.source, r.n))
      end
      local moments = kit.admin():get("/analytics/overview" .. q .. "&source=moments").body
      local want_m = kit.query([[SELECT count(DISTINCT visitor) AS n FROM analytics_days
        WHERE day >= ? AND day < ? AND source = 'moments']], a, b)[1].n
      expect(moments.total.uv).to_be(want_m)
    end
  end
  prev_is_true()
end

describe("distinct visitors over whole days", function()
  it("agree with a plain count when days are rolled up out of order", function()
    kit.set_local(date_of(kit.now() + 3 * DAY) .. " 20:00:00")
    D[3] = kit.now() - 20 * HOUR
    D[2], D[1] = D[3] - DAY, D[3] - 2 * DAY
    -- days 2 and 3 first: amy on both, bo on 3, cy on 2 from moments
    visit("amy", D[2] + 10 * HOUR, 1008)
    visit("amy", D[3] + 9 * HOUR, 1008)
    visit("bo", D[3] + 11 * HOUR, 1154)
    visit("cy", D[2] + 12 * HOUR, 1154)
    member_visit("m-amy", D[2] + 15 * HOUR, 1154)
    member_visit("m-amy", D[3] + 15 * HOUR, 1154)
    kit.admin():post("/analytics/rollup")
    expect(kit.query("SELECT prev FROM analytics_visits WHERE visitor = 'device:amy' AND day = ? AND source = ''",
      D[3])[1].prev).to_be(D[2])
    reports_agree()
    -- then a late day 1 (45 h old): amy and bo; their later visits now point at it
    visit("amy", D[1] + 23 * HOUR, 1008)
    visit("bo", D[1] + 23 * HOUR + 1800, 1154)
    member_visit("m-amy", D[1] + 22 * HOUR, 1154)
    kit.admin():post("/analytics/rollup")
    expect(kit.query("SELECT prev FROM analytics_visits WHERE visitor = 'device:bo' AND day = ? AND source = ''",
      D[3])[1].prev).to_be(D[1])
    reports_agree()
    -- cy comes on day 3 too, from group chats
    visit("cy", D[3] + 13 * HOUR, 1008)
    kit.admin():post("/analytics/rollup")
    reports_agree()
  end)

  it("stay true when a day loses a visitor (a merge) and is recomputed", function()
    -- m-amy merges into m-bea: recomputing day 2 alone moves its visit to m-bea, and
    -- m-amy's day 3 visit must then point back to day 1
    expect(kit.admin():post("/merger/merge", { plugin = "analytics", from = "m-amy", into = "m-bea",
      merge_id = 1 }).status).to_be(200)
    for _, i in ipairs({ 2, 3, 1 }) do
      expect(kit.admin():post("/analytics/rollup", { day = date_of(D[i]) }).status).to_be(200)
      if i == 2 then
        expect(kit.query("SELECT prev FROM analytics_visits WHERE visitor = 'm-amy' AND day = ? AND source = ''",
          D[3])[1].prev).to_be(D[1])
      end
      reports_agree()
    end
    expect(#kit.query("SELECT 1 FROM analytics_visits WHERE visitor = 'm-amy'")).to_be(0)
    -- a login ties amy's device to bo: the next run recomputes the device's days
    kit.user("m-bo"):post("/track", { device = "amy", events = {
      { id = "login", kind = "page_view", at = (D[3] + 14 * HOUR) * 1000, session = "vs-login" } } })
    kit.admin():post("/analytics/rollup")
    expect(#kit.query("SELECT 1 FROM analytics_visits WHERE visitor = 'device:amy'")).to_be(0)
    reports_agree()
    -- recomputing one day alone, again, changes nothing
    local before = kit.query("SELECT * FROM analytics_visits ORDER BY source, visitor, day")
    kit.admin():post("/analytics/rollup", { day = date_of(D[2]) })
    expect(kit.query("SELECT * FROM analytics_visits ORDER BY source, visitor, day")).to_equal(before)
    reports_agree()
  end)
end)
