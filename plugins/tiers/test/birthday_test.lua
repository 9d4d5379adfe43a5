-- the birthday coupon: on the 1st of the birthday month at birthday_hour, the
-- members of a tier with a birthday_coupon get it, once a year; other tiers and
-- other months get nothing.

kit.plugins {
  members = {}, coupons = {},
  tiers = {
    levels = {
      { id = "regular", name = "会员", growth = 0 },
      { id = "gold", name = "金卡", growth = 5000, birthday_coupon = 1 },
    },
    birthday_hour = 9,
  },
}

kit.set_local("2027-06-20 12:00:00")
local a = kit.admin()
local t = a:post("/coupons/templates", { name = "生日礼", kind = "fixed", amount_off_fen = 3000,
  valid_days = 30, total_quantity = 1000, per_user_limit = 100 })   -- one a year: the limit must allow it
assert(t.status == 201 and t.body.id == 1, "coupons refused the template")

local function member(card, birthday, growth)
  local r = a:post("/members/identify", { identities = { { channel = "card", id = card } },
    profile = { birthday = birthday } })
  assert(r.status == 201, "identify failed")
  local id = r.body.member.id
  if growth then a:post("/tiers/members/" .. id .. "/growth", { amount = growth, ref = "setup" }) end
  return id
end

local gold_july = member("c1", "1990-07-15", 5000)
local regular_july = member("c2", "1991-07-02", 10)
local gold_august = member("c3", "1992-08-30", 5000)

local function coupons(user)
  return #kit.user(user):get("/coupons/mine").body.items
end

describe("the birthday coupon", function()
  it("comes on the 1st of the birthday month at birthday_hour, to the tier that has one", function()
    kit.set_local("2027-07-01 08:59:59")
    expect(coupons(gold_july)).to_be(0)
    kit.set_local("2027-07-01 09:00:00")
    expect(coupons(gold_july)).to_be(1)
    expect(coupons(regular_july)).to_be(0)
    expect(coupons(gold_august)).to_be(0)
  end)

  it("comes once a year", function()
    kit.set_local("2027-08-01 09:00:00")
    expect(coupons(gold_july)).to_be(1)
    expect(coupons(gold_august)).to_be(1)
    kit.set_local("2028-07-01 09:00:00")
    expect(coupons(gold_july)).to_be(2)
    expect(coupons(gold_august)).to_be(1)
  end)
end)
