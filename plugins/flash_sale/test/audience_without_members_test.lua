-- flash_sale without the members plugin: a sale cannot be made member-only
-- (400 naming the audience's field, saying what is missing), and a sale
-- without an audience is open to everyone as before.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "flash-sale-kit-secret-0123" },
  flash_sale = {},
}

local DAY = 86400

local shop = require("tp.testshop")

local function sale_body(fields)
  local now = kit.now()
  local body = { sku = (shop.sku{ price_fen = 9900, stock = 10 }), price_fen = 1990, quantity = 5,
                 starts_at = now - 60, ends_at = now + DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  return body
end

describe("a member-only sale without the members plugin", function()
  it("is refused on create and on PATCH, naming the field and the plugin it needs", function()
    for _, c in ipairs({ { { segment = "vip" }, "audience.segment" }, { { tag = "gold" }, "audience.tag" } }) do
      local err = expect(kit.admin():post("/flash-sales", sale_body({ audience = c[1] })))
        .to_be_error(400, "invalid_field")
      expect(err.details.field).to_be(c[2])
      expect(err.message).to_contain("member-only activities need the members plugin")
    end
    expect(kit.query("SELECT count(*) AS n FROM flash_sale_sales")[1].n).to_be(0)
    local s = kit.admin():post("/flash-sales", sale_body()).body
    local err = expect(kit.admin():patch("/flash-sales/" .. s.id, { audience = { tag = "gold" } }))
      .to_be_error(400, "invalid_field")
    expect(err.details.field).to_be("audience.tag")
    expect(kit.admin():get("/flash-sales/" .. s.id).body.audience).to_be(kit.null)
  end)

  it("leaves a sale without an audience open to everyone", function()
    local s = kit.admin():post("/flash-sales", sale_body()).body
    expect(s.audience).to_be(kit.null)
    expect(kit.admin():patch("/flash-sales/" .. s.id, { audience = kit.null }).status).to_be(200)
    expect(kit.user("anyone"):post("/flash-sales/" .. s.id .. "/buy", {}).status).to_be(201)
  end)
end)
