-- flash_sale for campaign scripts: campaign_apply creates a sale the first time
-- a ref is seen and changes that same sale after, by the PATCH's rules;
-- campaign_withdraw disables it and keeps its orders. campaign_probe
-- (sdk/testplugins) and campaign_rival (test/plugins) stand in for two
-- campaign plugins.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "flash-sale-kit-secret-0123" },
  flash_sale = {},
  campaign_probe = {},
  campaign_rival = {},
}

local DAY = 86400
local shop = require("tp.testshop")

local ct = require("tp.campaigntest").new { plugin = "flash_sale", activities = "flash_sale_sales",
  items = "flash_sale_campaign_items", item_column = "sale_id" }
local apply, withdraw, count_sales = ct.apply, ct.withdraw, ct.count

---Settings of a sale of sku open for a day, overridden by extra.
local function settings(sku, extra)
  local now = kit.now()
  local s = { sku = sku, price_fen = 990, quantity = 500, starts_at = now - 60, ends_at = now + DAY }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function sale(id)
  return kit.admin():get("/flash-sales/" .. id).body
end


describe("campaign_apply", function()
  it("creates the sale the first time a ref is seen, with a one-line summary", function()
    shop.sku{ code = "tea-001", price_fen = 1990, stock = 1000 }
    local now = kit.now()
    local res = apply("double11/flash_sale/1", settings("tea-001"))
    expect(res.status).to_be(200)
    local id = res.body.id
    expect(res.body).to_equal({ id = id, summary = ("flash sale #%d: 500 × tea-001 at ¥9.90, 1 per user"):format(id),
                                opens_at = now - 60, closes_at = now + DAY })
    local s = sale(id)
    expect({ s.sku, s.title, s.price_fen, s.quantity, s.per_user_limit, s.status, s.state })
      .to_equal({ "tea-001", "title tea-001", 990, 500, 1, "active", "open" })
    expect(kit.query("SELECT ref, sale_id, campaign, withdrawn_at FROM flash_sale_campaign_items"))
      .to_equal({ { ref = "double11/flash_sale/1", sale_id = id, campaign = "campaign_probe" } })
  end)

  it("changes that same sale when the ref comes again, never a second one", function()
    local before = count_sales()
    local id = kit.query("SELECT sale_id FROM flash_sale_campaign_items")[1].sale_id
    local res = apply("double11/flash_sale/1", settings("tea-001", { quantity = 800, price_fen = 1500,
      per_user_limit = 3, per_order_limit = 2, title = "Double 11 tea", slots = { "10:00-12:00" } }))
    expect(res.body.id).to_be(id)
    expect(res.body.summary).to_be(("flash sale #%d: 800 × tea-001 at ¥15.00, 3 per user"):format(id))
    expect(count_sales()).to_be(before)
    local s = sale(id)
    expect({ s.title, s.price_fen, s.quantity, s.remaining, s.per_user_limit, s.per_order_limit, s.slots })
      .to_equal({ "Double 11 tea", 1500, 800, 800, 3, 2, { "10:00-12:00" } })
    -- what the script no longer says goes back to its default, as on a first apply
    apply("double11/flash_sale/1", settings("tea-001"))
    s = sale(id)
    expect({ s.title, s.price_fen, s.quantity, s.per_user_limit, s.per_order_limit, s.slots })
      .to_equal({ "title tea-001", 990, 500, 1, 1, {} })
    expect(count_sales()).to_be(before)
  end)

  it("refuses a key it does not know, naming it and what was probably meant", function()
    ct.refuses_unknown_key("double11/flash_sale/2", settings("tea-001"), "per_user", "per_user_limit")
    ct.refuses_unknown_key("double11/flash_sale/2", settings("tea-001"), "prcie_fen", "price_fen")
    -- status belongs to apply and withdraw, not to the script, and has no guess
    local err = expect(apply("double11/flash_sale/2", settings("tea-001", { status = "disabled" })))
      .to_be_error(400, "invalid_field")
    expect(err.message).to_be("status is not a known field")
  end)

  it("refuses a ref that is not 1-128 of a-z, 0-9, '_', '/', '.' or '-'", function()
    for _, ref in ipairs({ "", "Double11/x", "a b", ("x"):rep(129) }) do
      expect(expect(apply(ref, settings("tea-001"))).to_be_error(400, "invalid_field").details)
        .to_equal({ field = "ref" })
    end
    expect(expect(withdraw(7)).to_be_error(400, "invalid_field").details).to_equal({ field = "ref" })
  end)

  it("passes every refusal of the admin routes through, naming the field", function()
    shop.sku{ code = "tea-002", price_fen = 1990, stock = 100 }
    local before = count_sales()
    local function refused(s, status, code, field)
      local err = expect(apply("double11/flash_sale/3", s)).to_be_error(status, code)
      expect({ code, err.details.field }).to_equal({ code, field })
      return err
    end
    refused(settings("no-such-sku"), 400, "sku_not_found", "sku")
    refused(settings("tea-002", { price_fen = 1991 }), 400, "invalid_field", "price_fen")
    refused(settings("tea-002", { quantity = 101 }), 409, "insufficient_stock", "quantity")
    refused(settings("tea-002", { ends_at = kit.now() - 60 }), 400, "invalid_field", "ends_at")
    refused(settings("tea-002", { per_user_limit = 1, per_order_limit = 2 }), 400, "invalid_field", "per_order_limit")
    refused(settings("tea-002", { slots = { "25:00-26:00" } }), 400, "invalid_field", "slots[1]")
    -- tea-001 is already on sale today
    local overlap = refused(settings("tea-001", { quantity = 1 }), 409, "sale_overlap", "starts_at")
    expect(overlap.details.sale_id).to_be(kit.query("SELECT sale_id FROM flash_sale_campaign_items")[1].sale_id)
    expect(count_sales()).to_be(before)

    -- and those of a PATCH on the second apply
    local id = apply("double11/flash_sale/3", settings("tea-002", { quantity = 10, per_user_limit = 5,
      per_order_limit = 5 })).body.id
    expect(kit.user("c1"):post("/flash-sales/" .. id .. "/buy", { qty = 4 }).status).to_be(201)
    refused(settings("tea-001", { quantity = 10 }), 400, "invalid_field", "sku")
    local below = refused(settings("tea-002", { quantity = 3, per_user_limit = 5, per_order_limit = 5 }),
      409, "quantity_below_sold", "quantity")
    expect(below.details.sold).to_be(4)
    expect(sale(id).quantity).to_be(10)
  end)

  it("leaves a sale alone when another campaign applies the same ref", function()
    local err = expect(apply("double11/flash_sale/1", settings("tea-001"), "campaign_rival"))
      .to_be_error(409, "campaign_ref_taken")
    expect(err.details).to_equal({ ref = "double11/flash_sale/1", campaign = "campaign_probe" })
    expect(withdraw("double11/flash_sale/1", "campaign_rival").body.withdrawn).to_be(false)
    expect(sale(kit.query("SELECT sale_id FROM flash_sale_campaign_items WHERE ref = 'double11/flash_sale/1'")[1]
      .sale_id).status).to_be("active")
  end)
end)

describe("campaign_withdraw", function()
  it("disables the sale and keeps what it sold; a second apply makes it active again", function()
    local id = kit.query("SELECT sale_id FROM flash_sale_campaign_items WHERE ref = 'double11/flash_sale/3'")[1].sale_id
    local now = kit.now()
    expect(withdraw("double11/flash_sale/3").body).to_equal({ withdrawn = true })
    local s = sale(id)
    expect({ s.status, s.state, s.sold }).to_equal({ "disabled", "disabled", 4 })
    expect(kit.user("c2"):post("/flash-sales/" .. id .. "/buy", {})).to_be_error(404, "sale_not_found")
    expect(kit.query("SELECT count(*) AS n FROM orders_orders")[1].n).to_be(1)
    expect(kit.query("SELECT withdrawn_at FROM flash_sale_campaign_items WHERE ref = 'double11/flash_sale/3'")[1])
      .to_equal({ withdrawn_at = now })

    local res = apply("double11/flash_sale/3", settings("tea-002", { quantity = 10, per_user_limit = 5,
      per_order_limit = 5 }))
    expect(res.body.id).to_be(id)
    s = sale(id)
    expect({ s.status, s.state, s.sold, s.remaining }).to_equal({ "active", "open", 4, 6 })
    expect(kit.query("SELECT withdrawn_at FROM flash_sale_campaign_items WHERE ref = 'double11/flash_sale/3'")[1])
      .to_equal({})
    expect(kit.user("c2"):post("/flash-sales/" .. id .. "/buy", {}).status).to_be(201)
  end)

  it("answers false for a ref it does not know", function()
    ct.unknown_ref_withdraws_nothing("double11/flash_sale/99")
  end)
end)

describe("the SDK helpers behind the contract", function()
  it("shows fen as yuan without a float", function()
    local money = require("tp.money")
    expect({ money.yuan(990), money.yuan(5900), money.yuan(0), money.yuan(5), money.yuan(-1250),
             money.yuan(123456789) })
      .to_equal({ "¥9.90", "¥59.00", "¥0.00", "¥0.05", "-¥12.50", "¥1234567.89" })
  end)

  it("suggests the name a typo is nearest to, or a name it begins", function()
    local check = require("tp.check")
    local names = { per_user_limit = true, per_order_limit = true, price_fen = true, per_user_daily_limit = true }
    expect({ check.suggest("per_user", names), check.suggest("price_fn", names), check.suggest("prcie_fen", names),
             check.suggest("per_order", names), check.suggest("colour", names), check.suggest("pe", names) })
      .to_equal({ "per_user_limit", "price_fen", "price_fen", "per_order_limit" })
  end)
end)
