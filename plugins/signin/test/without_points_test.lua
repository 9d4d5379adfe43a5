-- sign-in without the points plugin: a sign-in that would earn points is 409
-- points_unavailable and records nothing (a shop with daily = 0 and no
-- streak rewards needs no points plugin: plugins/signin/README.md).

kit.plugins { signin = { daily = 5 } }

describe("a shop without the points plugin", function()
  it("refuses a rewarded sign-in with 409 points_unavailable, recording nothing", function()
    expect(kit.user("ann"):post("/signin")).to_be_error(409, "points_unavailable")
    expect(kit.query("SELECT count(*) AS n FROM signin_days")[1].n).to_be(0)
    expect(kit.user("ann"):get("/signin/me").body.signed_today).to_be(false)
  end)

  it("has no make-up sign-in unless the config gives one", function()
    kit.set_local("2026-11-20 09:00:00")
    expect(kit.user("ann"):post("/signin/makeup", { day = "2026-11-19" })).to_be_error(409, "makeup_not_allowed")
  end)
end)
