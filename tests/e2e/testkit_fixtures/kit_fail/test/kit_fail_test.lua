describe("prices", function()
  it("match the list", function()
    local res = kit.anon():get("/items")
    expect(res.status).to_be(200)
    expect(res.body).to_equal({ items = { { sku = "a", price_fen = 100 },
                                          { sku = "b", price_fen = 990 } } })
  end)
  it("are two", function()
    expect(#kit.anon():get("/items").body.items).to_be(2)
  end)
  it("raises", function()
    local t = nil
    return t.x
  end)
end)

it("compares strings", function()
  local word = "hello"
  expect(word).to_be("world")
end)

it("answers the wrong error", function()
  expect(kit.anon():get("/nowhere")).to_be_error(404, "not_here")
end)
