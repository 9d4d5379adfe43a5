-- friend_assist with the points plugin: a points reward is credited to the
-- initiator once, in the transaction of the completing assist.

kit.plugins { friend_assist = {}, points = {} }

describe("a points reward", function()
  it("is credited to the initiator by the points plugin, once", function()
    local c = kit.admin():post("/friend_assist/campaigns", { name = "Invite 2", friends_needed = 2,
      reward = { kind = "points", points = 300 }, drive_seconds = 3600, ends_at = kit.now() + 86400 })
    expect(c.status).to_be(201)
    local share = kit.user("init"):post("/friend_assist/campaigns/" .. c.body.id .. "/drives").body.share_id
    expect(kit.user("fr1"):post("/friend_assist/drives/" .. share .. "/assists").body.completed).to_be(false)
    expect(kit.user("init"):get("/points/me").body.balance).to_be(0)
    expect(kit.user("fr2"):post("/friend_assist/drives/" .. share .. "/assists").body.completed).to_be(true)
    local me = kit.user("init"):get("/points/me/entries").body.items
    expect(#me).to_be(1)
    expect({ me[1].kind, me[1].points, me[1].source }).to_equal({ "earn", 300, "friend_assist:drive:1" })
    expect(kit.user("fr3"):post("/friend_assist/drives/" .. share .. "/assists").status).to_be(409)
    expect(kit.user("init"):get("/points/me").body.balance).to_be(300)
  end)
end)
