-- bargain asks the brand's risk rules (sdk/tp/risk.lua) before a member starts
-- a bargain (join) or helps one (help): a refusal is 403 risk_<code> and cuts
-- nothing; people pass. The rule is sdk/testplugins/riskrule (refuses "bot-").

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "bargain-kit-secret-0123456789" },
  bargain = {},
  riskrule = {},
}

local shop = require("tp.testshop")

local function activity()
  local now = kit.now()
  local res = kit.admin():post("/bargain/activities", { sku = (shop.sku{ price_fen = 9900, stock = 10 }),
    original_price_fen = 1000, floor_price_fen = 100, helpers_needed = 3, starts_at = now,
    ends_at = now + 86400 })
  assert(res.status == 201, "activity refused: " .. tostring(res.status))
  return res.body.id
end

describe("a risk rule", function()
  it("refuses a bot's start and a bot's help, and lets people start and help", function()
    local aid = activity()
    local bot = kit.user("bot-1"):post("/bargain/activities/" .. aid .. "/start")
    expect(bot.status).to_be(403)
    expect(bot.body.error.code).to_be("risk_captcha_required")
    local ann = kit.user("ann"):post("/bargain/activities/" .. aid .. "/start")
    expect(ann.status).to_be(201)
    local before = ann.body.price_fen
    local helper = kit.user("bot-2"):post("/bargains/" .. ann.body.id .. "/help")
    expect(helper.status).to_be(403)
    expect(helper.body.error.code).to_be("risk_captcha_required")
    expect(kit.anon():get("/bargains/" .. ann.body.id).body.price_fen).to_be(before)
    expect(kit.user("bo"):post("/bargains/" .. ann.body.id .. "/help").status).to_be(201)
  end)
end)
