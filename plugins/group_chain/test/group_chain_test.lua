-- Tests of group_chain, run by `tidepool test`: a fresh database, tenant "test" on a
-- test clock, this plugin enabled.

describe("group_chain visits", function()
  it("counts a user's visits", function()
    local u = kit.user("u1")
    local res = u:post("/group_chain/visits", { page = "home" })
    expect(res.status).to_be(201)
    expect(res.body).to_equal({ user = "u1", visits = 1 })
    res = u:post("/group_chain/visits", { page = "home" })
    expect(res.body.visits).to_be(2)
  end)

  it("thanks a first-time visitor an hour later", function()
    local u = kit.user("u2")
    expect(u:post("/group_chain/visits", { page = "home" }).status).to_be(201)
    expect(u:get("/group_chain/visits/me").body.thanked).to_be(false)
    kit.advance(3600)
    local res = u:get("/group_chain/visits/me")
    expect(res.status).to_be(200)
    expect(res.body).to_equal({ user = "u2", visits = 1, thanked = true })
  end)

  it("answers 404 no_visits before the first visit", function()
    local res = kit.user("u3"):get("/group_chain/visits/me")
    expect(res.status).to_be(404)
    expect(res.body.error.code).to_be("no_visits")
  end)
end)
