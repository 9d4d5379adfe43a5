-- group_chain with anyone_may_organise: every user may publish, no grant needed.

kit.plugins {
  catalog = {},
  orders = {},
  group_chain = { anyone_may_organise = true },
}

describe("a tenant where anyone may organise", function()
  it("lets a user without the role publish a post", function()
    expect(kit.admin():post("/catalog/products", { name = "Fruit", skus = {
      { code = "PEACH", title = "Peaches, 2kg", price_fen = 4800, stock = 50 } } }).status).to_be(201)
    local res = kit.user("neighbour"):post("/group_chain/posts", { title = "Peaches",
      cutoff_at = kit.now() + 3600,
      items = { { sku = "PEACH", chain_price_fen = 3900, per_member_limit = 2 } } })
    expect(res.status).to_be(201)
    expect(res.body.organiser).to_be("neighbour")
    expect(res.body.pickup).to_be_nil()
    expect(kit.anon():get("/group_chain/posts/" .. res.body.id).body.organiser).to_be("n******r")  -- at most 6 stars: the length stays private
  end)
end)
