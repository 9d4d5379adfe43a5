-- analytics: a rollup that may recompute one hour per run still reaches every
-- pending hour, in order, across runs (the job's and POST /analytics/rollup's);
-- an hour recomputed whole while events are pending (a day's first pass in a
-- later slice, POST /analytics/rollup {day}) is not added to again by the next
-- run (analytics_hour_seq).

kit.plugins {
  catalog = {},
  orders = {},
  analytics = { rollup_max_hours = 1 },
}

local HOUR = 3600

describe("a rollup in slices", function()
  it("goes on where the last run stopped until every pending hour is done", function()
    local t = kit.localtime(kit.now() + 86400)
    local day = ("%04d-%02d-%02d"):format(t.year, t.month, t.day)
    kit.set_local(day .. " 12:00:00")
    local base = kit.now()
    for i, dt in ipairs({ -2 * HOUR, -HOUR, 0 }) do   -- three hours: two late, one now
      local res = kit.anon():post("/track", { device = "dev-" .. i, events = {
        { id = "e" .. i, kind = "enter", at = (base + dt) * 1000, session = "s" .. i, scene = 1008 } } })
      expect(res.status).to_be(200)
    end
    local runs = {}
    for _ = 1, 4 do
      local r = kit.admin():post("/analytics/rollup").body
      runs[#runs + 1] = r.hours .. (r.more and "+" or "")
    end
    expect(table.concat(runs, " ")).to_be("1+ 1+ 1 0")
    local ov = kit.admin():get("/analytics/overview?from=" .. day .. "&to=" .. day).body
    expect(ov.total.uv).to_be(3)
  end)

  it("lets the job go on a second later when hours are left", function()
    local base = kit.now()
    for i, dt in ipairs({ -2 * HOUR, -HOUR }) do
      kit.anon():post("/track", { device = "dev-j" .. i, events = {
        { id = "j" .. i, kind = "enter", at = (base + dt) * 1000, session = "sj" .. i, scene = 1154 } } })
    end
    kit.advance(300)   -- the recurring job runs (its slot may fall at the very end of these 300 s)
    kit.advance(2)     -- and its follow-up a second after it
    expect(#kit.query("SELECT DISTINCT visitor FROM analytics_hits WHERE source = 'moments'")).to_be(2)
  end)

  local n = 0
  ---Tracks one page_view of device v at epoch `at` (a new session each time).
  local function view(v, at)
    n = n + 1
    local res = kit.anon():post("/track", { device = v, events = {
      { id = "w" .. n, kind = "page_view", at = at * 1000, session = "sw" .. n, scene = 1008 } } })
    expect(res.status).to_be(200)
  end
  local function views(v)
    return kit.query("SELECT coalesce(sum(n), 0) AS n FROM analytics_hits WHERE visitor = ?", "device:" .. v)[1].n
  end
  local function run_all()
    repeat local r = kit.admin():post("/analytics/rollup").body until not r.more
  end

  it("counts an event that came between two slices of a run once", function()
    run_all()
    local midnight = kit.at_local(kit.local_time(kit.now() + 3 * 86400):sub(1, 10) .. " 00:00")
    kit.set_now(midnight + 180)
    view("dev-s", midnight - HOUR)       -- the last hour of a day
    view("dev-s", midnight + 60)         -- the first of the next
    expect(kit.admin():post("/analytics/rollup").body.more).to_be(true)   -- the first slice: one hour
    view("dev-s", midnight + 120)        -- comes before the run's second slice, which counts
    run_all()                            -- the next day's first hour whole
    expect(views("dev-s")).to_be(3)
    run_all()                            -- the next run finds it above its watermark
    expect(views("dev-s")).to_be(3)
  end)

  it("counts the events of a day recomputed between two runs once", function()
    run_all()
    kit.set_local(kit.local_time(kit.now() + 5 * 86400):sub(1, 10) .. " 10:00:00")
    local at = kit.now()
    view("dev-d", at - 120)
    run_all()
    view("dev-d", at - 60)               -- pending when the day is recomputed
    expect(kit.admin():post("/analytics/rollup", { day = kit.local_time(at):sub(1, 10) }).status).to_be(200)
    expect(views("dev-d")).to_be(2)
    run_all()
    expect(views("dev-d")).to_be(2)
  end)
end)
