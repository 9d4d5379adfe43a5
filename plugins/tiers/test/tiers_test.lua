-- tiers: growth from paid orders, sign-in and tasks; refunds take it back;
-- upgrades at once, downgrades only at the review's local midnight (with
-- grace); paid membership granted, renewed and expired at local midnight; the
-- tier as a members dimension (segment {tier = ...}) and the upgrade gift.

kit.plugins {
  catalog = {}, coupons = {}, members = {}, tierfeed = {},
  orders = { member_price_plugin = "tiers", max_unpaid_orders = 20 },
  payments = { secret = "tiers-kit-payment-secret-0123" },
  tiers = {
    levels = {
      { id = "regular", name = "会员", growth = 0 },
      { id = "silver", name = "银卡", growth = 1000, discount_percent = 98 },
      { id = "gold", name = "金卡", growth = 5000, discount_percent = 95, free_shipping = true,
        upgrade_coupon = 1 },
    },
    growth = { per_100_fen = 1, signin = 5 },
    window_days = 365,
    review = { every = "month", grace_days = 10 },
    paid = { { sku = "svip-30", tier = "gold", days = 30 } },
  },
}

local shop = require("tp.testshop")

local function pay(id)
  return kit.admin():post("/payments/simulate", { order_id = id }).body.result.outcome
end

local BIG = shop.sku { price_fen = 100000, stock = 1000 }   -- ¥1000: 1000 growth
local SMALL = shop.sku { price_fen = 10000, stock = 1000 }  -- ¥100: 100 growth
shop.sku { code = "svip-30", price_fen = 1900, stock = 1000 }

local function buy(user, sku, qty)
  local o = kit.user(user):post("/orders", { lines = { { sku = sku, qty = qty or 1 } } })
  assert(o.status == 201, "the checkout failed: " .. tostring(o.status))
  expect(pay(o.body.id)).to_be("paid")
  kit.drain()
  return o.body
end

local function me(user) return kit.user(user):get("/tiers/me").body end

kit.set_local("2027-03-10 12:00:00")
-- the gift's template: coupons template 1
local gift_template = kit.admin():post("/coupons/templates", { name = "gold gift", kind = "fixed", amount_off_fen = 2000,
  valid_days = 30, total_quantity = 100 })
assert(gift_template.status == 201, "coupons refused the gift's template")

describe("growth", function()
  it("comes from a paid order at once, and the tier rises at once", function()
    expect(me("ann").tier).to_be_nil()
    buy("ann", BIG)
    local s = me("ann")
    expect(s.growth).to_be(1000)
    expect(s.tier).to_be("silver")
    expect(s.next).to_equal({ tier = "gold", growth_needed = 4000 })
  end)

  it("comes from a sign-in once a day", function()
    local a = kit.admin()
    a:post("/tierfeed/signin", { user = "bea", day = "2027-03-10", streak = 1 })
    a:post("/tierfeed/signin", { user = "bea", day = "2027-03-10", streak = 1 })  -- redelivered
    a:post("/tierfeed/signin", { user = "bea", day = "2027-03-11", streak = 2 })
    kit.drain()
    expect(me("bea").growth).to_be(10)
    expect(me("bea").tier).to_be("regular")
  end)

  it("comes from a task once per ref, and an unknown body is refused", function()
    local a = kit.admin()
    expect(a:post("/tiers/members/cat/growth", { amount = 1200, ref = "task-7" }).status).to_be(201)
    local again = a:post("/tiers/members/cat/growth", { amount = 1200, ref = "task-7" })
    expect(again.status).to_be(200)
    expect(again.body.added).to_be(false)
    expect(again.body.standing.growth).to_be(1200)
    expect(again.body.standing.tier).to_be("silver")
    local err = expect(a:post("/tiers/members/cat/growth", { amount = "10", ref = "x" })).to_be_error(400, "invalid_field")
    expect(err.details.field).to_be("amount")
    expect(a:post("/tiers/members/cat/growth", { amount = 5, ref = "x", bonus = 1 })).to_be_error(400, "invalid_field")
    expect(a:post("/tiers/members/cat/growth", { amount = 0, ref = "x" })).to_be_error(400, "invalid_field")
    expect(me("cat").growth).to_be(1200)
  end)
end)

describe("a refund", function()
  it("takes back the refunded share of the order's growth at once", function()
    local o = buy("dan", BIG, 2)                     -- ¥2000: 2000 growth
    expect(me("dan").growth).to_be(2000)
    kit.admin():post("/orders/" .. o.id .. "/refund", { amount_fen = 150000 })
    kit.drain(); kit.drain()
    expect(kit.admin():get("/orders/" .. o.id).body.refunded_fen).to_be(150000)
    expect(me("dan").growth).to_be(500)
    kit.drain()                                      -- nothing is taken twice
    expect(me("dan").growth).to_be(500)
    kit.admin():post("/orders/" .. o.id .. "/refund", {})   -- the rest
    kit.drain(); kit.drain()
    expect(me("dan").growth).to_be(0)
    local ledger = kit.admin():get("/tiers/members/dan").body.ledger
    expect(#ledger).to_be(3)
    expect(ledger[1].amount + ledger[2].amount).to_be(-2000)
    -- the tier stays until the review
    expect(me("dan").tier).to_be("silver")
  end)
end)

describe("the review", function()
  it("downgrades exactly at local midnight starting the month, not a second before", function()
    kit.set_local("2027-03-31 23:59:59")
    expect(me("dan").tier).to_be("silver")
    kit.set_local("2027-04-01 00:00:00")
    local s = me("dan")
    expect(s.tier).to_be("regular")
    local hist = kit.admin():get("/tiers/members/dan").body.history
    expect(hist[1]).to_equal({ from = "silver", to = "regular", reason = "downgrade", at = kit.at_local("2027-04-01 00:00:00") })
    -- ann kept her growth: still silver
    expect(me("ann").tier).to_be("silver")
  end)

  it("keeps a tier reached within grace_days until the next review", function()
    kit.set_local("2027-04-25 10:00:00")
    local o = buy("eve", BIG)
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain(); kit.drain()
    expect(me("eve").growth).to_be(0)
    kit.set_local("2027-05-01 00:00:00")           -- 6 days after: within grace
    expect(me("eve").tier).to_be("silver")
    kit.set_local("2027-05-31 23:59:59")
    expect(me("eve").tier).to_be("silver")
    kit.set_local("2027-06-01 00:00:00")
    expect(me("eve").tier).to_be("regular")
  end)

  it("counts only the window's growth", function()
    -- ann's order of 2027-03-10 leaves the 365-day window; the review after that drops her
    kit.set_local("2028-03-01 00:00:00")
    expect(me("ann").tier).to_be("silver")
    kit.set_local("2028-04-01 00:00:00")
    expect(me("ann").growth).to_be(0)
    expect(me("ann").tier).to_be("regular")
  end)
end)

describe("paid membership", function()
  it("grants its tier until local midnight 30 days on, renews, and expires exactly then", function()
    kit.set_local("2028-05-10 15:00:00")
    buy("fay", "svip-30")
    local s = me("fay")
    expect(s.tier).to_be("gold")
    expect(s.paid_until).to_be(kit.at_local("2028-06-09 00:00:00"))
    expect(s.benefits.free_shipping).to_be(true)
    kit.set_local("2028-06-01 09:00:00")
    buy("fay", "svip-30")                            -- renewed before the end: 30 more days
    expect(me("fay").paid_until).to_be(kit.at_local("2028-07-09 00:00:00"))
    kit.set_local("2028-07-08 23:59:59")
    expect(me("fay").tier).to_be("gold")
    kit.set_local("2028-07-09 00:00:00")
    expect(me("fay").tier).to_be("regular")
    local hist = kit.admin():get("/tiers/members/fay").body.history
    expect(hist[1].reason).to_be("paid_ended")
  end)

  it("is taken back by a full refund of its order", function()
    kit.set_local("2028-08-01 10:00:00")
    local o = buy("gus", "svip-30")
    expect(me("gus").tier).to_be("gold")
    kit.admin():post("/orders/" .. o.id .. "/refund", {})
    kit.drain(); kit.drain()
    expect(me("gus").tier).to_be("regular")
    expect(me("gus").paid_until).to_be(kit.at_local("2028-08-01 00:00:00"))
  end)
end)

describe("a tier change", function()
  it("is the member's tag in the dimension tier, which a segment rule names", function()
    kit.set_local("2028-09-01 10:00:00")
    buy("hal", BIG, 5)                               -- 5000: gold at once
    expect(me("hal").tier).to_be("gold")
    local a = kit.admin()
    local res = a:post("/members/segments/preview", { rule = { tier = "gold" } })
    expect(res.status).to_be(200)
    expect(res.body.sample).to_equal({ "hal" })
    res = a:post("/members/segments/preview", { rule = { all = { { tier = "silver" }, { ["not"] = { tier = "gold" } } } } })
    expect(res.body.count).to_be(0)   -- ann, dan, eve fell to regular; hal is gold
    local err = expect(a:post("/members/segments/preview", { rule = { tier = "gld" } })).to_be_error(400, "invalid_field")
    expect(err.message).to_match("did you mean 'gold'")
  end)

  it("up gives the tier's upgrade coupon, once", function()
    kit.drain()
    local mine = kit.user("hal"):get("/coupons/mine").body.items
    expect(#mine).to_be(1)
    expect(mine[1].template_id).to_be(1)
  end)
end)

describe("the report", function()
  it("counts members per tier", function()
    local r = kit.admin():get("/tiers/report").body
    local by = {}
    for _, t in ipairs(r.tiers) do by[t.tier] = t.members end
    expect(by.gold).to_be(1)          -- hal (fay's and gus's memberships ended)
    expect(by.silver).to_be(0)        -- cat's task growth left the window at the 2028-04 review
    expect(by.regular).to_be(7)
    expect(r.members).to_be(8)
    expect(r.paid_members).to_be(0)
  end)
end)
