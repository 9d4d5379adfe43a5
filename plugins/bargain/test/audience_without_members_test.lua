-- bargain without the members plugin: an activity cannot be made member-only
-- (400 naming the audience's field, saying what is missing), and one without
-- an audience is open to everyone as before.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "bargain-kit-secret-0123456789" },
  bargain = {},
}

local DAY = 86400

local shop = require("tp.testshop")

local function activity_body(fields)
  local now = kit.now()
  local body = { sku = (shop.sku{ price_fen = 9900, stock = 10 }), original_price_fen = 1000,
                 floor_price_fen = 100, helpers_needed = 1, starts_at = now, ends_at = now + DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  return body
end

describe("a member-only bargain activity without the members plugin", function()
  it("is refused on create and on PATCH, naming the field and the plugin it needs", function()
    for _, c in ipairs({ { { segment = "vip" }, "audience.segment" }, { { tag = "gold" }, "audience.tag" } }) do
      local err = expect(kit.admin():post("/bargain/activities", activity_body({ audience = c[1] })))
        .to_be_error(400, "invalid_field")
      expect(err.details.field).to_be(c[2])
      expect(err.message).to_contain("member-only activities need the members plugin")
    end
    expect(kit.query("SELECT count(*) AS n FROM bargain_activities")[1].n).to_be(0)
    local a = kit.admin():post("/bargain/activities", activity_body()).body
    local err = expect(kit.admin():patch("/bargain/activities/" .. a.id, { audience = { tag = "gold" } }))
      .to_be_error(400, "invalid_field")
    expect(err.details.field).to_be("audience.tag")
    expect(kit.admin():get("/bargain/activities/" .. a.id).body.audience).to_be(kit.null)
  end)

  it("leaves an activity without an audience open to everyone", function()
    local a = kit.admin():post("/bargain/activities", activity_body()).body
    expect(a.audience).to_be(kit.null)
    expect(kit.admin():patch("/bargain/activities/" .. a.id, { audience = kit.null }).status).to_be(200)
    expect(kit.user("anyone"):post("/bargain/activities/" .. a.id .. "/start").status).to_be(201)
  end)
end)
