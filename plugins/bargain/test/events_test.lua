-- bargain's events, seen by the test-only subscriber in test/plugins/bargainwatch
-- (the kit puts <plugin>/test/plugins first on the plugin path): a bargain
-- announces that it started and that it reached its floor, each once, after
-- the commit, and an expired bargain says so when its job runs.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "bargain-kit-secret-0123456789" },
  bargain = {},
  bargainwatch = {},
}

local DAY = 86400

local function activity(helpers)
  local code = "ev-sku-" .. helpers
  kit.admin():post("/catalog/products", { name = code,
    skus = { { code = code, title = code, price_fen = 9900, stock = 10 } } })
  local now = kit.now()
  local res = kit.admin():post("/bargain/activities", { sku = code, original_price_fen = 1000,
    floor_price_fen = 100, helpers_needed = helpers, duration_seconds = 3600,
    starts_at = now, ends_at = now + DAY })
  expect(res.status).to_be(201)
  return res.body.id
end

local function seen()
  return kit.admin():get("/bargainwatch/seen").body.items
end

describe("bargain events", function()
  it("announces the start and the floor once each, after the commit", function()
    local id = activity(2)
    local b = kit.user("ev-init"):post("/bargain/activities/" .. id .. "/start").body
    expect(#seen()).to_be(0)          -- delivered after the commit, when the kit drains
    kit.drain()
    expect(seen()).to_equal({ { name = "bargain.started", bargain_id = b.id, state = "open",
                                price_fen = 1000 } })
    kit.user("ev-f1"):post("/bargains/" .. b.id .. "/help")
    kit.user("ev-f2"):post("/bargains/" .. b.id .. "/help")
    kit.drain()
    local items = seen()
    expect(#items).to_be(2)
    expect({ items[2].name, items[2].bargain_id, items[2].state, items[2].price_fen })
      .to_equal({ "bargain.floor_reached", b.id, "floor_reached", 100 })
    kit.drain()
    expect(#seen()).to_be(2)          -- nothing twice
  end)

  it("says a bargain expired when its time ran out", function()
    local id = activity(3)
    local b = kit.user("ev-init2"):post("/bargain/activities/" .. id .. "/start").body
    kit.advance(3600)
    local last = seen()[#seen()]
    expect({ last.name, last.bargain_id, last.state }).to_equal({ "bargain.expired", b.id, "expired" })
  end)
end)
