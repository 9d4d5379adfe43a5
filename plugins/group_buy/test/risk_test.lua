-- group_buy asks the brand's risk rules (sdk/tp/risk.lua) before a member
-- opens or joins a group: a refusal is 403 risk_<code> and leaves nothing
-- behind; people pass. The rule is sdk/testplugins/riskrule (refuses "bot-").

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "group-buy-kit-secret-0123456789" },
  group_buy = {},
  riskrule = {},
}

local shop = require("tp.testshop")

local function activity()
  local now = kit.now()
  local res = kit.admin():post("/group-buys", { sku = (shop.sku{ price_fen = 9900, stock = 10 }),
    group_size = 2, price_fen = 5900, group_ttl_seconds = 86400, unpaid_timeout_seconds = 900,
    starts_at = now - 60, ends_at = now + 86400, per_user_limit = 1, per_order_limit = 1 })
  assert(res.status == 201, "activity refused: " .. tostring(res.status))
  return res.body.id
end

describe("a risk rule", function()
  it("refuses a bot's open with nothing left behind, and lets a person open", function()
    local id = activity()
    local bot = kit.user("bot-1"):post("/group-buys/" .. id .. "/open", { qty = 1 })
    expect(bot.status).to_be(403)
    expect(bot.body.error.code).to_be("risk_captcha_required")
    expect(kit.query("SELECT count(*) AS n FROM group_buy_orders WHERE user = 'bot-1'")[1].n).to_be(0)
    local ann = kit.user("ann"):post("/group-buys/" .. id .. "/open", { qty = 1 })
    expect(ann.status).to_be(201)
  end)
end)
