-- A sign-in and a make-up are claims: the brand's risk rules (here the
-- blocklist) are asked first, and a refusal writes nothing.

kit.plugins { points = {}, signin = { daily = 5, makeup = { per_month = 2, cost_points = 0 } }, blocklist = {} }

describe("a blocked member", function()
  it("cannot sign in or make up a day: 403 risk_blocked, nothing written", function()
    kit.set_local("2026-11-20 09:00:00")
    expect(kit.admin():put("/blocklist/members/bad", { reason = "scalper" }).status < 300).to_be(true)
    expect(kit.user("bad"):post("/signin")).to_be_error(403, "risk_blocked")
    expect(kit.user("bad"):post("/signin/makeup", { day = "2026-11-19" })).to_be_error(403, "risk_blocked")
    expect(kit.query("SELECT count(*) AS n FROM signin_days")[1].n).to_be(0)
    expect(kit.user("good"):post("/signin").status).to_be(201)
  end)
end)
