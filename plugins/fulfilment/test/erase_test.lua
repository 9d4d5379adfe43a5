-- fulfilment and the customer pool: an erased member's address book goes, and
-- the copies kept on her orders are blanked (member.erased).

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "fulfilment-kit-payment-secret-0123" },
  members = { phone_pepper = "fulfilment-kit-pepper" },
  fulfilment = {},
}

local shop = require("tp.testshop")

describe("erasure", function()
  it("deletes the member's addresses and the copies on her orders, and no one else's", function()
    local r = kit.admin():post("/members/identify", { identities = { { channel = "mp_openid", id = "oE" } } }).body
    local id = r.member.id
    local her, other = kit.user(id), kit.user("keeps")
    local addr = { name = "阿花", phone = "13900002222", province = "浙江", city = "杭州", detail = "1 号" }
    her:post("/fulfilment/addresses", addr)
    other:post("/fulfilment/addresses", addr)
    local tea = shop.sku{ price_fen = 1000, stock = 5 }
    local o = her:post("/orders", { lines = { { sku = tea, qty = 1 } } }).body
    expect(her:post("/fulfilment/orders/" .. o.id .. "/delivery", { method = "express" }).body.address.name)
      .to_be("阿花")
    expect(kit.admin():post("/members/" .. id .. "/erase", {}).status).to_be(200)
    kit.drain()
    expect(kit.query("SELECT count(*) AS n FROM fulfilment_addresses WHERE user = ?", id)[1].n).to_be(0)
    expect(kit.query("SELECT address FROM fulfilment_orders WHERE order_id = ?", o.id)[1].address)
      .to_be('{"erased":true}')
    expect(#other:get("/fulfilment/addresses").body.items).to_be(1)
  end)
end)
