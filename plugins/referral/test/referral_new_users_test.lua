-- referral with binding_mode new_users, one-day bindings, and distributors
-- made by the operator only (join_mode designated).

local DAY = 86400

kit.plugins {
  catalog = {},
  orders = { attribution_plugin = "referral", max_unpaid_orders = 5 },
  payments = { secret = "referral-kit-secret-0123456789" },
  referral = { level1_rate_bp = 1000, level2_rate_bp = 500, binding_mode = "new_users", binding_days = 1,
               join_mode = "designated" },
}

-- the shared helpers (test/support.lua), found beside this file
local support = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/support.lua")
local new_sku, bind_to, create, buy = support.new_sku, support.bind_to, support.create, support.buy
local balance, money = support.balance, support.money

describe("designated distributors", function()
  it("cannot join by themselves; the operator makes them", function()
    expect(kit.user("new-ref"):post("/referral/join", {})).to_be_error(403, "join_by_designation_only")
    local res = kit.admin():post("/referral/distributors", { user = "new-ref" })
    expect({ res.status, res.body.kind, res.body.status }).to_equal({ 201, "promoter", "active" })
    local bad = expect(kit.admin():post("/referral/distributors", { user = "x", kind = "boss" })).to_be_error(400, "invalid_field")
    expect(bad.details).to_equal({ field = "kind" })
    local store = expect(kit.admin():post("/referral/distributors", { user = "x", store = "s1" })).to_be_error(400, "invalid_field")
    expect(store.details).to_equal({ field = "store" })
    expect(kit.admin():get("/referral/distributors/x").status).to_be(404)
  end)
end)

describe("new users only", function()
  local code, sku

  it("refuses to bind a user who has paid an order", function()
    code = kit.admin():get("/referral/distributors/new-ref").body.code
    sku = new_sku(5000)
    buy("new-old", { { sku = sku, qty = 1 } })
    expect(bind_to("new-old", code)).to_be_error(409, "not_a_new_user")
    expect(kit.user("new-old"):get("/referral/me").body.binding).to_be(kit.null)
  end)

  it("binds a new user for a day; her orders earn the referrer until then", function()
    local b = bind_to("new-fresh", code)
    expect({ b.status, b.body.expires_at }).to_equal({ 201, kit.now() + DAY })
    local o = buy("new-fresh", { { sku = sku, qty = 1 } })
    expect(o.attribution).to_equal({ referrer = "new-ref" })
    expect(balance("new-ref")).to_equal(money(500))
    kit.advance(DAY - 1)
    expect(kit.user("new-fresh"):get("/referral/me").body.binding.referrer).to_be("new-ref")
    kit.advance(1)
    expect(kit.user("new-fresh"):get("/referral/me").body.binding).to_be(kit.null)
    expect(create("new-fresh", { { sku = sku, qty = 1 } }).attribution).to_equal({})
    -- she paid meanwhile, so she is no longer new
    expect(bind_to("new-fresh", code)).to_be_error(409, "not_a_new_user")
  end)

  it("binds a user who never paid again once her binding ran out", function()
    expect(bind_to("new-later", code).status).to_be(201)
    expect(bind_to("new-later", "ZZZZZZZZ")).to_be_error(404, "code_not_found")
    kit.advance(DAY)
    expect(kit.user("new-later"):get("/referral/me").body.binding).to_be(kit.null)
    local again = bind_to("new-later", code)
    expect({ again.status, again.body.changed, again.body.bound_at }).to_equal({ 201, true, kit.now() })
  end)
end)
