-- analytics: a rollup that may recompute one hour per run still reaches every
-- pending hour, in order, across runs (the job's and POST /analytics/rollup's).

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
end)
