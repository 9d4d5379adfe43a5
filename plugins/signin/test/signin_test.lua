-- sign-in: once per local day (midnight in the brand's zone), the streak and
-- its rewards, the streak starting again after a missed day, make-up limits
-- and cost, and the signin.checked_in event.

kit.plugins {
  points = {},
  signin = { daily = 5, streak = { { day = 3, points = 10 }, { day = 7, points = 30 } }, cycle = 7,
             makeup = { per_month = 2, cost_points = 20 } },
  checkin_probe = {},
}

local function sign(user) return kit.user(user):post("/signin") end
local function balance(user) return kit.user(user):get("/points/me").body.balance end
local function me(user) return kit.user(user):get("/signin/me").body end

describe("signing in", function()
  it("is once per local day: refused at 23:59:59, open again at local midnight", function()
    kit.set_local("2026-11-10 08:00:00")
    local res = sign("ann")
    expect(res.status).to_be(201)
    expect(res.body).to_equal({ day = "2026-11-10", streak = 1, points = 5, makeup = false, balance = 5 })
    kit.set_local("2026-11-10 23:59:59")
    local err = expect(sign("ann")).to_be_error(409, "already_signed_in")
    expect(err.details.day).to_be("2026-11-10")
    kit.set_local("2026-11-11 00:00:00")
    expect(sign("ann").body.streak).to_be(2)
    expect(balance("ann")).to_be(10)
  end)

  it("pays the streak's bonus on its day, per cycle, and starts again at 1 after a missed day", function()
    -- ann: day 3 (bonus 10) on 11-12, then days 4..7 (bonus 30 on 7), then 8 = cycle day 1
    local got = {}
    for d = 12, 18 do
      kit.set_local(("2026-11-%02d 09:00:00"):format(d))
      local b = sign("ann").body
      got[#got + 1] = { b.streak, b.points }
    end
    expect(got).to_equal({ { 3, 15 }, { 4, 5 }, { 5, 5 }, { 6, 5 }, { 7, 35 }, { 8, 5 }, { 9, 5 } })
    kit.set_local("2026-11-20 09:00:00")            -- 11-19 missed
    expect(me("ann").streak).to_be(0)
    expect(sign("ann").body.streak).to_be(1)
  end)

  it("announces each sign-in as signin.checked_in {user, day, streak}", function()
    kit.drain()
    local rows = kit.query([[SELECT json_extract(data, '$.user') AS user, json_extract(data, '$.day') AS day,
      json_extract(data, '$.streak') AS streak, (SELECT count(*) FROM json_each(data)) AS fields
      FROM checkin_probe_events ORDER BY id DESC LIMIT 1]])
    expect(rows[1]).to_equal({ user = "ann", day = "2026-11-20", streak = 1, fields = 3 })
    expect(kit.query("SELECT count(*) AS n FROM checkin_probe_events")[1].n).to_be(10)
  end)
end)

describe("make-up sign-in", function()
  it("fills a missed day of this month for its cost, joining the streak", function()
    -- ann: 11-18 streak 9, missed 11-19, 11-20 streak 1
    local before = balance("ann")
    local res = kit.user("ann"):post("/signin/makeup", { day = "2026-11-19" })
    expect(res.status).to_be(201)
    expect({ res.body.day, res.body.streak, res.body.points, res.body.makeup, res.body.cost_points })
      .to_equal({ "2026-11-19", 10, 15, true, 20 })   -- day 10 is day 3 of its cycle: 5 + 10
    expect(balance("ann")).to_be(before - 20 + 15)
    expect(me("ann").streak).to_be(11)              -- today's sign-in now continues the streak
    expect(me("ann").makeup.left).to_be(1)
  end)

  it("is refused for today, a future day, another month, a signed day, and past the monthly limit", function()
    for _, day in ipairs({ "2026-11-20", "2026-11-21", "2026-10-31", "2026-11-31", "11-05", 20261105 }) do
      local err = expect(kit.user("ann"):post("/signin/makeup", { day = day })).to_be_error(400, "invalid_field")
      expect(err.details.field).to_be("day")
    end
    expect(kit.user("ann"):post("/signin/makeup", { day = "2026-11-19" })).to_be_error(409, "already_signed_in")
    expect(kit.user("ann"):post("/signin/makeup", { day = "2026-11-01" }).status).to_be(201)
    local before = balance("ann")
    local err = expect(kit.user("ann"):post("/signin/makeup", { day = "2026-11-02" }))
      .to_be_error(409, "makeup_limit_reached")
    expect(err.details).to_equal({ per_month = 2, used = 2 })
    expect(balance("ann")).to_be(before)            -- nothing charged
  end)

  it("needs the points to pay for it, and a new month gives new make-ups", function()
    kit.set_local("2026-12-03 09:00:00")
    sign("bob")                                      -- 5 points: not enough for 20
    local err = expect(kit.user("bob"):post("/signin/makeup", { day = "2026-12-02" }))
      .to_be_error(409, "insufficient_points")
    expect(err.details.balance).to_be(5)
    expect(kit.query("SELECT count(*) AS n FROM signin_days WHERE user = 'bob'")[1].n).to_be(1)
    expect(me("ann").makeup.left).to_be(2)
  end)
end)
