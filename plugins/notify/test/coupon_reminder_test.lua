-- notify's coupon reminder: every hour, a coupon.expiring message for each
-- unused coupon whose validity ends within within_hours, once per coupon;
-- a coupon that ends later, or was used, gets none.

kit.plugins {
  coupons = {},
  notify = {
    coupon_reminder = { within_hours = 24, every_minutes = 60 },
    templates = {
      coupon_expiring = {
        event = "coupon.expiring", template_id = "TPL_COUPON", page = "pages/coupons/index?id={coupon.id}",
        to = { user = "coupon.user" }, data = { thing1 = "coupon.name", time2 = "coupon.valid_until" },
      },
    },
  },
}
kit.destinations { wechat = { url = "http://127.0.0.1:9", plugins = { "notify" } } }

local function template(fields)
  local body = { name = "¥20 off", kind = "fixed", amount_off_fen = 2000, valid_days = 1, total_quantity = 100 }
  for k, v in pairs(fields or {}) do body[k] = v end
  return kit.admin():post("/coupons/templates", body).body.id
end

local function sends()
  return kit.query([[SELECT json_extract(body, '$.touser') AS touser, json_extract(body, '$.page') AS page,
    json_extract(body, '$.data.thing1.value') AS thing1 FROM _tp_outbox ORDER BY id]])
end

describe("the coupon reminder", function()
  it("sends once per coupon ending within the window, to a user who accepted it", function()
    local soon, later = template(), template({ name = "¥50 off", valid_days = 7 })
    for _, u in ipairs { "c1", "c2" } do
      expect(kit.user(u):post("/coupons/templates/" .. soon .. "/claim").status).to_be(201)
      expect(kit.user(u):post("/coupons/templates/" .. later .. "/claim").status).to_be(201)
    end
    expect(kit.user("c1"):post("/notify/subscriptions", { template_ids = { "TPL_COUPON" },
      accepted = { "TPL_COUPON" }, openid = "o-c1" }).status).to_be(200)
    kit.advance(61)   -- the job's first run
    local s = sends()
    expect(#s).to_be(1)
    expect(s[1].touser).to_be("o-c1")
    expect(s[1].thing1).to_be("¥20 off")
    expect(s[1].page:match("^pages/coupons/index%?id=%d+$") ~= nil).to_be(true)
    local skipped = kit.admin():get("/notify/deliveries?state=skipped").body.items
    expect(#skipped).to_be(1)
    expect(skipped[1].user).to_be("c2")
    expect(skipped[1].source:match("^coupon:%d+$") ~= nil).to_be(true)
    kit.advance(3600)  -- the next run finds the same coupons: nothing more
    expect(#sends()).to_be(1)
    expect(#kit.admin():get("/notify/deliveries").body.items).to_be(2)
  end)
end)
