-- group_buy for campaign scripts: campaign_apply creates a group buy the first
-- time a ref is seen and changes that same one after, by the PATCH's rules;
-- campaign_withdraw disables it and lets the groups in flight finish.
-- campaign_probe (sdk/testplugins) stands in for the campaign plugin.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "group-buy-kit-secret-0123456789" },
  group_buy = {},
  campaign_probe = {},
}

local DAY = 86400
local REF = "double11/group_buy/1"
local shop = require("tp.testshop")

local ct = require("tp.campaigntest").new { plugin = "group_buy", activities = "group_buy_activities",
  items = "group_buy_campaign_items", item_column = "activity_id" }
local apply, withdraw, count_activities, item_id = ct.apply, ct.withdraw, ct.count, ct.item

---Settings of groups of 3 for sku open for a week, overridden by extra.
local function settings(sku, extra)
  local now = kit.now()
  local s = { sku = sku, group_size = 3, price_fen = 5900, starts_at = now - 60, ends_at = now + 7 * DAY }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function activity(id)
  return kit.admin():get("/group-buys/" .. id).body
end


local function pay(order_id)
  expect(kit.admin():post("/payments/simulate", { order_id = order_id }).status).to_be(200)
  kit.drain()
end

describe("campaign_apply", function()
  it("creates the group buy the first time a ref is seen, with a one-line summary", function()
    shop.sku{ code = "tea-002", price_fen = 9900, stock = 100 }
    local now = kit.now()
    local res = apply(REF, settings("tea-002"))
    expect(res.status).to_be(200)
    local id = res.body.id
    expect(res.body).to_equal({ id = id, summary = ("group buy #%d: groups of 3 for tea-002 at ¥59.00, 24 h to fill"):format(id),
                                opens_at = now - 60, closes_at = now + 7 * DAY })
    local a = activity(id)
    expect({ a.sku, a.title, a.group_size, a.price_fen, a.group_ttl_seconds, a.status, a.phase })
      .to_equal({ "tea-002", "title tea-002", 3, 5900, DAY, "active", "running" })
    expect(kit.query("SELECT ref, activity_id, campaign FROM group_buy_campaign_items"))
      .to_equal({ { ref = REF, activity_id = id, campaign = "campaign_probe" } })
  end)

  it("changes that same group buy when the ref comes again, never a second one", function()
    local id, before = item_id(REF), count_activities()
    local res = apply(REF, settings("tea-002", { group_size = 5, price_fen = 6900, leader_price_fen = 4900,
      group_ttl_seconds = 5400, title = "Tea for five", virtual_fill = true }))
    expect(res.body.id).to_be(id)
    expect(res.body.summary)
      .to_be(("group buy #%d: groups of 5 for tea-002 at ¥69.00 (leader ¥49.00), 90 min to fill"):format(id))
    local a = activity(id)
    expect({ a.title, a.group_size, a.leader_price_fen, a.virtual_fill }).to_equal({ "Tea for five", 5, 4900, true })
    -- what the script no longer says goes back to its default, the leader price too
    res = apply(REF, settings("tea-002"))
    a = activity(id)
    expect({ a.title, a.group_size, a.price_fen, a.leader_price_fen, a.group_ttl_seconds, a.virtual_fill })
      .to_equal({ "title tea-002", 3, 5900, nil, DAY, false })
    expect(count_activities()).to_be(before)
  end)

  it("refuses a key it does not know, naming it and what was probably meant", function()
    ct.refuses_unknown_key("double11/group_buy/2", settings("tea-002"), "group_sise", "group_size")
  end)

  it("passes every refusal of the admin routes through, naming the field", function()
    ct.refuses("double11/group_buy/3", {
      { settings("no-such-sku"), 400, "sku_not_found", "sku" },
      { settings("tea-002", { price_fen = 9901 }), 400, "invalid_field", "price_fen" },
      { settings("tea-002", { leader_price_fen = 9901 }), 400, "invalid_field", "leader_price_fen" },
      { settings("tea-002", { group_size = 1 }), 400, "invalid_field", "group_size" },
      { settings("tea-002", { ends_at = kit.now() - 60 }), 400, "invalid_field", "ends_at" },
      { settings("tea-002", { per_user_limit = 1, per_order_limit = 2 }), 400, "invalid_field", "per_order_limit" },
      { settings("tea-002", { virtual_fill_min_percent = 0 }), 400, "invalid_field", "virtual_fill_min_percent" },
      { settings("tea-002", { unpaid_timeout_seconds = 10 }), 400, "invalid_field", "unpaid_timeout_seconds" },
    })
    -- and the PATCH's: the SKU of an activity never changes
    shop.sku{ code = "tea-003", price_fen = 9900, stock = 100 }
    local err = expect(apply(REF, settings("tea-003"))).to_be_error(400, "invalid_field")
    expect(err.details).to_equal({ field = "sku" })
    expect(activity(item_id(REF)).sku).to_be("tea-002")
  end)
end)

describe("campaign_withdraw", function()
  it("disables the group buy, lets a group in flight fill, and a second apply re-enables it", function()
    local id = item_id(REF)
    local opened = kit.user("g1"):post("/group-buys/" .. id .. "/open", {})
    expect(opened.status).to_be(201)
    pay(opened.body.order.id)
    local gid = opened.body.group.id

    expect(withdraw(REF).body).to_equal({ withdrawn = true })
    local a = activity(id)
    expect({ a.status, a.phase }).to_equal({ "disabled", "disabled" })
    expect(kit.user("g2"):post("/group-buys/" .. id .. "/open", {})).to_be_error(404, "activity_not_found")
    expect(kit.admin():get("/group-buys/" .. id .. "/groups/" .. gid).body.paid).to_be(1)

    expect(apply(REF, settings("tea-002")).body.id).to_be(id)
    expect(activity(id).status).to_be("active")
    local joined = kit.user("g2"):post("/group-buys/" .. id .. "/groups/" .. gid .. "/join", {})
    expect(joined.status).to_be(201)
  end)

  it("answers false for a ref it does not know", function()
    ct.unknown_ref_withdraws_nothing("double11/group_buy/99")
  end)
end)
