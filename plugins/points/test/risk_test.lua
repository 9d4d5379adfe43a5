-- A points-mall exchange is a claim: the brand's risk rules are asked first.

kit.plugins { catalog = {}, points = {}, blocklist = {} }

local shop = require("tp.testshop")

describe("a blocked member", function()
  it("cannot exchange: 403 risk_blocked, nothing spent", function()
    local sku = shop.sku{ price_fen = 100, stock = 5 }
    local item = kit.admin():post("/points/mall/items", { kind = "sku", sku = sku, title = "x", points_price = 10,
      stock = 5 }).body
    kit.admin():post("/points/accounts/bad/adjust", { points = 100, reason = "grant" })
    expect(kit.admin():put("/blocklist/members/bad", { reason = "scalper" }).status < 300).to_be(true)
    expect(kit.user("bad"):post("/points/mall/items/" .. item.id .. "/exchange")).to_be_error(403, "risk_blocked")
    expect(kit.user("bad"):get("/points/me").body.balance).to_be(100)
    expect(kit.query("SELECT stock FROM points_items WHERE id = ?", item.id)[1].stock).to_be(5)
  end)
end)
