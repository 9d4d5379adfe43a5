-- bargain for campaign scripts: campaign_apply creates a bargain activity the
-- first time a ref is seen and changes that same one after, by the PATCH's
-- rules; campaign_withdraw disables it and leaves bargains in progress alone.
-- campaign_probe (sdk/testplugins) stands in for the campaign plugin.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "bargain-kit-secret-0123456789" },
  bargain = {},
  campaign_probe = {},
}

local DAY = 86400
local REF = "double11/bargain/1"
local shop = require("tp.testshop")

local ct = require("tp.campaigntest").new { plugin = "bargain", activities = "bargain_activities",
  items = "bargain_campaign_items", item_column = "activity_id" }
local apply, withdraw, count_activities, item_id = ct.apply, ct.withdraw, ct.count, ct.item

---Settings of a bargain on sku down to ¥9.90 with 5 friends for a week, overridden by extra.
local function settings(sku, extra)
  local now = kit.now()
  local s = { sku = sku, floor_price_fen = 990, helpers_needed = 5, starts_at = now - 60, ends_at = now + 7 * DAY }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function activity(id)
  return kit.admin():get("/bargain/activities/" .. id).body
end


describe("campaign_apply", function()
  it("creates the activity the first time a ref is seen, with a one-line summary", function()
    shop.sku{ code = "tea-003", price_fen = 9900, stock = 100 }
    local now = kit.now()
    local res = apply(REF, settings("tea-003"))
    expect(res.status).to_be(200)
    local id = res.body.id
    expect(res.body).to_equal({ id = id, summary = ("bargain #%d: tea-003 cut from ¥99.00 to ¥9.90 by 5 friends"):format(id),
                                opens_at = now - 60, closes_at = now + 7 * DAY })
    local a = activity(id)
    expect({ a.sku, a.title, a.original_price_fen, a.floor_price_fen, a.helpers_needed, a.status, a.state })
      .to_equal({ "tea-003", "title tea-003", 9900, 990, 5, "active", "open" })
    expect(kit.query("SELECT ref, activity_id, campaign FROM bargain_campaign_items"))
      .to_equal({ { ref = REF, activity_id = id, campaign = "campaign_probe" } })
  end)

  it("changes that same activity when the ref comes again, never a second one", function()
    local id, before = item_id(REF), count_activities()
    local res = apply(REF, settings("tea-003", { original_price_fen = 5000, helpers_needed = 1, first_cut = true,
      title = "Cut the tea" }))
    expect(res.body.id).to_be(id)
    expect(res.body.summary).to_be(("bargain #%d: tea-003 cut from ¥50.00 to ¥9.90 by 1 friend"):format(id))
    local a = activity(id)
    expect({ a.title, a.original_price_fen, a.first_cut }).to_equal({ "Cut the tea", 5000, true })
    -- what the script no longer says goes back to its default, the list price too
    apply(REF, settings("tea-003"))
    a = activity(id)
    expect({ a.title, a.original_price_fen, a.helpers_needed, a.first_cut })
      .to_equal({ "title tea-003", 9900, 5, false })
    expect(count_activities()).to_be(before)
  end)

  it("refuses a key it does not know, naming it and what was probably meant", function()
    ct.refuses_unknown_key("double11/bargain/2", settings("tea-003"), "helpers", "helpers_needed")
  end)

  it("passes every refusal of the admin routes through, naming the field", function()
    ct.refuses("double11/bargain/3", {
      { settings("no-such-sku"), 400, "sku_not_found", "sku" },
      { settings("tea-003", { original_price_fen = 9901 }), 400, "invalid_field", "original_price_fen" },
      { settings("tea-003", { floor_price_fen = 9900 }), 400, "invalid_field", "floor_price_fen" },
      { settings("tea-003", { floor_price_fen = 9899, helpers_needed = 2 }), 400, "invalid_field", "helpers_needed" },
      { settings("tea-003", { ends_at = kit.now() - 60 }), 400, "invalid_field", "ends_at" },
      { settings("tea-003", { pay_window_seconds = 10 }), 400, "invalid_field", "pay_window_seconds" },
      { settings("tea-003", { first_cut = "yes" }), 400, "invalid_field", "first_cut" },
    })
    -- and the PATCH's: the SKU of an activity never changes
    shop.sku{ code = "tea-004", price_fen = 9900, stock = 100 }
    expect(expect(apply(REF, settings("tea-004"))).to_be_error(400, "invalid_field").details)
      .to_equal({ field = "sku" })
    expect(activity(item_id(REF)).sku).to_be("tea-003")
  end)
end)

describe("campaign_withdraw", function()
  it("disables the activity, keeps a bargain in progress, and a second apply re-enables it", function()
    local id = item_id(REF)
    local started = kit.user("b1"):post("/bargain/activities/" .. id .. "/start")
    expect(started.status).to_be(201)

    expect(withdraw(REF).body).to_equal({ withdrawn = true })
    expect(activity(id).state).to_be("disabled")
    expect(kit.user("b2"):post("/bargain/activities/" .. id .. "/start")).to_be_error(404, "activity_not_found")
    expect(kit.user("b3"):post("/bargains/" .. started.body.id .. "/help").status).to_be(201)

    expect(apply(REF, settings("tea-003")).body.id).to_be(id)
    expect(activity(id).state).to_be("open")
    expect(kit.user("b2"):post("/bargain/activities/" .. id .. "/start").status).to_be(201)
  end)

  it("answers false for a ref it does not know", function()
    ct.unknown_ref_withdraws_nothing("double11/bargain/99")
  end)
end)
