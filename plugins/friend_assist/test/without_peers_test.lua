-- friend_assist alone: the settings that need another plugin are refused with a
-- clear error; everything else works without them.

kit.plugins { friend_assist = {} }

local function campaign(fields)
  local body = { name = "Invite 1", reward = { kind = "points", points = 100 },
                 friends_needed = 1, drive_seconds = 600, ends_at = kit.now() + 86400 }
  for k, v in pairs(fields or {}) do body[k] = v end
  return kit.admin():post("/friend_assist/campaigns", body)
end

describe("without orders and coupons", function()
  it("refuses new_users_only, naming the orders plugin", function()
    local res = campaign({ new_users_only = true })
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("orders_unavailable")
    expect(res.body.error.message).to_contain("orders plugin is not enabled")
    expect(res.body.error.details).to_equal({ field = "new_users_only" })
    expect(#kit.query("SELECT id FROM friend_assist_campaigns")).to_be(0)
  end)

  it("refuses turning new_users_only on by PATCH", function()
    local id = campaign().body.id
    local res = kit.admin():patch("/friend_assist/campaigns/" .. id, { new_users_only = true })
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("orders_unavailable")
    expect(kit.admin():get("/friend_assist/campaigns/" .. id).body.new_users_only).to_be(false)
  end)

  it("refuses a coupon reward, naming the coupons plugin", function()
    local res = campaign({ reward = { kind = "coupon", template_id = 7 } })
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("coupons_unavailable")
    expect(res.body.error.message).to_contain("coupons plugin is not enabled")
  end)

  it("completes a one-friend drive with a points reward", function()
    local id = campaign().body.id
    local share = kit.user("solo"):post("/friend_assist/campaigns/" .. id .. "/drives").body.share_id
    local res = kit.user("pal"):post("/friend_assist/drives/" .. share .. "/assists")
    expect(res.status).to_be(201)
    expect(res.body.completed).to_be(true)
    expect(kit.query("SELECT user, kind, points FROM friend_assist_rewards"))
      .to_equal({ { user = "solo", kind = "points", points = 100 } })
    local mine = kit.user("solo"):get("/friend_assist/me/drives").body.items
    expect(#mine).to_be(1)
    expect(mine[1].granted.points).to_be(100)
  end)
end)
