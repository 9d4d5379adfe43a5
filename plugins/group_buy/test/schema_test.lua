-- group_buy's activity schema (tp.schema) against what the host serves:
-- every bound the OpenAPI body of POST /group-buys documents is one the route
-- enforces, field by field (tp.schematest).

kit.plugins { catalog = {}, orders = {}, payments = { secret = "group-buy-kit-secret-0123" }, group_buy = {} }

local shop = require("tp.testshop")
local st = require("tp.schematest")
local made

local function valid()
  if not made then made = shop.sku{ code = "schema-sku", price_fen = 9900, stock = 1000 } end
  local now = kit.now()
  return { sku = made, group_size = 3, price_fen = 5900, starts_at = now, ends_at = now + 3600 }
end

describe("the activity schema", function()
  it("documents exactly what the create route refuses", function()
    local n = st.walk {
      path = "/admin/test/group-buys", method = "post", valid = valid,
      count = function() return kit.query("SELECT count(*) AS n FROM group_buy_activities")[1].n end,
      skip = { audience = true },   -- its own test: test/audience_test.lua
    }
    expect(n >= 40).to_be(true)
  end)

  it("states the caps the validation has", function()
    local body = st.body("/admin/test/group-buys", "post")
    expect({ body.properties.group_ttl_seconds.maximum, body.properties.per_user_limit.maximum,
             body.properties.leader_price_fen.nullable })
      .to_equal({ 30 * 86400, 1000, true })
  end)
end)
