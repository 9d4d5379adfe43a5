it("prices an order", function()
  local res = kit.user("ann"):post("/orders", { lines = { { sku = "a", qty = 1 } } })
  expect(res.status).to_be(201)
end)

it("passes, and shows no run of the test before", function()
  expect(kit.user("ann"):post("/orders", { lines = {} }).status).to_be(201)
end)

it("tallies later", function()
  expect(kit.anon():post("/later").status).to_be(202)
  local _, failed = kit.advance(60)
  expect(failed).to_be(0)
end)
