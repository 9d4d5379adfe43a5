-- friend_assist asks the brand's risk rules (sdk/tp/risk.lua) before a member
-- starts a drive (join) or assists one (help): a refusal is 403 risk_<code>
-- and counts for nothing; people pass. The rule is sdk/testplugins/riskrule
-- (refuses "bot-").

kit.plugins { friend_assist = {}, riskrule = {} }

describe("a risk rule", function()
  it("refuses a bot's drive and a bot's assist, and counts only people's", function()
    local c = kit.admin():post("/friend_assist/campaigns", { name = "Invite 2 friends",
      reward = { kind = "code", code = "GIFT-10" }, friends_needed = 2, drive_seconds = 3600,
      ends_at = kit.now() + 86400 })
    expect(c.status).to_be(201)
    local bot = kit.user("bot-1"):post("/friend_assist/campaigns/" .. c.body.id .. "/drives")
    expect(bot.status).to_be(403)
    expect(bot.body.error.code).to_be("risk_captcha_required")
    local ann = kit.user("ann"):post("/friend_assist/campaigns/" .. c.body.id .. "/drives")
    expect(ann.status).to_be(201)
    local share = ann.body.share_id
    local helper = kit.user("bot-2"):post("/friend_assist/drives/" .. share .. "/assists")
    expect(helper.status).to_be(403)
    expect(helper.body.error.code).to_be("risk_captcha_required")
    local bo = kit.user("bo"):post("/friend_assist/drives/" .. share .. "/assists")
    expect(bo.status).to_be(201)
    expect(bo.body.completed).to_be(false)  -- the bot's refused assist did not count
  end)
end)
