-- coupons: the daily limit counts the brand's local calendar day, which ends
-- at local midnight of the tenant's zone, not UTC's: written with the kit's
-- clock helpers (kit.timezone, kit.set_local, kit.local_time), no offsets by
-- hand. The brand of this file sells from Los Angeles (UTC-8 in November,
-- UTC-7 in summer), where 11-11 00:00 is 08:00 UTC.

kit.timezone("America/Los_Angeles")

local function daily_template()
  local res = kit.admin():post("/coupons/templates", { name = "Singles' Day ¥20", kind = "fixed",
    amount_off_fen = 2000, valid_days = 7, total_quantity = 100, per_user_limit = 5,
    per_user_daily_limit = 1 })
  assert(res.status == 201, "the template was refused")
  return res.body.id
end

local function claim(user, id)
  return kit.user(user):post("/coupons/templates/" .. id .. "/claim")
end

describe("a daily limit", function()
  it("starts a new day at local midnight", function()
    kit.set_local("2026-11-10 23:59:58")
    expect(kit.local_time()).to_be("2026-11-10 23:59:58")
    local id = daily_template()
    expect(claim("lin", id).status).to_be(201)
    kit.set_local("2026-11-10 23:59:59")                   -- the same local day: refused
    local err = expect(claim("lin", id)).to_be_error(409, "daily_limit_reached")
    expect(err.details.day).to_be("2026-11-10")
    kit.set_local("2026-11-11 00:00:00")                   -- local midnight: a new day
    expect(kit.now()).to_be(kit.at_local("2026-11-11 00:00"))
    local res = claim("lin", id)
    expect(res.status).to_be(201)
    expect(kit.query("SELECT claim_day FROM coupons_coupons WHERE id = ?", res.body.id)[1].claim_day)
      .to_be("2026-11-11")
  end)

  it("is not reset by UTC midnight, which falls in the local afternoon", function()
    local id = daily_template()
    kit.set_local("2026-11-12 15:59:59")                   -- 23:59:59 UTC
    expect(claim("mei", id).status).to_be(201)
    kit.set_local("2026-11-12 16:00:00")                   -- 00:00 UTC, still the 12th here
    expect(kit.localtime().utc_offset).to_be(-8 * 3600)
    expect(claim("mei", id)).to_be_error(409, "daily_limit_reached")
  end)

  it("counts summer days from midnight too (daylight saving time)", function()
    local id = daily_template()
    kit.set_local("2027-07-01 23:30:00")
    expect(kit.localtime().utc_offset).to_be(-7 * 3600)
    expect(claim("sam", id).status).to_be(201)
    kit.set_local("2027-07-02 00:00:00")
    expect(claim("sam", id).status).to_be(201)
  end)

  it("refuses a local time that does not exist (the spring-forward gap)", function()
    expect(function() kit.set_local("2027-03-14 02:30") end).to_fail("does not exist in America/Los_Angeles")
    expect(function() kit.at_local("2027-02-30 10:00") end).to_fail("is not a date and time that exists")
  end)
end)
