-- coupons: templates, claims and their limits, and validity on the test clock.

local function template(fields)
  local body = { name = "¥20 off", kind = "fixed", amount_off_fen = 2000, valid_days = 7,
                 total_quantity = 100 }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/coupons/templates", body)
  return res, res.body.id
end

local function claim(user, id)
  return kit.user(user):post("/coupons/templates/" .. id .. "/claim")
end

describe("creating a template", function()
  it("answers 201 with the rules and what remains", function()
    local res = template({ per_user_limit = 2 })
    expect(res.status).to_be(201)
    expect(res.body.kind).to_be("fixed")
    expect(res.body.amount_off_fen).to_be(2000)
    expect(res.body.remaining).to_be(100)
    expect(res.body.per_user_limit).to_be(2)
    expect(res.body.scope).to_be("all")
    expect(res.body.status).to_be("active")
  end)

  it("refuses two forms of validity, naming the field", function()
    local now = kit.now()
    local res = template({ valid_from = now, valid_until = now + 86400 })
    expect(res.status).to_be(400)
    expect(res.body.error.code).to_be("invalid_field")
    expect(res.body.error.details).to_equal({ field = "valid_days" })
  end)

  it("refuses a threshold that is not above the amount off", function()
    local res = template({ kind = "threshold", min_spend_fen = 2000 })
    expect(res.status).to_be(400)
    expect(res.body.error.details.field).to_be("min_spend_fen")
  end)

  it("refuses a discount field of another kind", function()
    local res = template({ percent_off = 10 })
    expect(res.status).to_be(400)
    expect(res.body.error.message).to_contain("does not apply to kind fixed")
  end)
end)

describe("claiming", function()
  it("gives a user at most per_user_limit coupons", function()
    local _, id = template({ per_user_limit = 2 })
    expect(claim("alice", id).status).to_be(201)
    expect(claim("alice", id).status).to_be(201)
    local third = claim("alice", id)
    expect(third.status).to_be(409)
    expect(third.body.error.code).to_be("limit_reached")
    expect(third.body.error.details).to_equal({ per_user_limit = 2, held = 2 })
    expect(claim("bob", id).status).to_be(201)
  end)

  it("stops at the total quantity, for everyone", function()
    local _, id = template({ total_quantity = 2 })
    expect(claim("u1", id).status).to_be(201)
    expect(claim("u2", id).status).to_be(201)
    local res = claim("u3", id)
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("sold_out")
    expect(kit.query("SELECT issued FROM coupons_templates WHERE id = ?", id))
      .to_equal({ { issued = 2 } })
  end)

  it("needs a user", function()
    local _, id = template()
    local res = kit.anon():post("/coupons/templates/" .. id .. "/claim")
    expect(res.status).to_be(401)
    expect(res.body.error.code).to_be("auth_required")
  end)

  it("allows per_user_daily_limit a day, and more the next day", function()
    local _, id = template({ per_user_limit = 3, per_user_daily_limit = 1 })
    expect(claim("carol", id).status).to_be(201)
    local again = claim("carol", id)
    expect(again.status).to_be(409)
    expect(again.body.error.code).to_be("daily_limit_reached")
    kit.advance(86400)
    expect(claim("carol", id).status).to_be(201)
  end)
end)

describe("audience", function()
  local function claimable_ids()
    local ids = {}
    for _, t in ipairs(kit.anon():get("/coupons/claimable").body.items) do ids[t.id] = true end
    return ids
  end

  it("lists and lets anyone claim a public template, the default", function()
    local res, id = template()
    expect(res.body.audience).to_be("public")
    expect(claimable_ids()[id]).to_be(true)
    expect(claim("stranger", id).status).to_be(201)
  end)

  it("keeps an issue-only template off the list and refuses its claims, but issues it", function()
    local res, id = template({ audience = "issue_only", total_quantity = 3 })
    expect(res.body.audience).to_be("issue_only")
    expect(claimable_ids()[id]).to_be(nil)
    local refused = claim("stranger", id)
    expect(refused.status).to_be(403)
    expect(refused.body.error.code).to_be("issue_only")
    local issued = kit.admin():post("/coupons/templates/" .. id .. "/issue", { users = { "ann", "bob" } })
    expect(issued.status).to_be(200)
    expect(issued.body.issued).to_be(2)
  end)

  it("can be changed by a PATCH, and refuses an unknown audience", function()
    local _, id = template({ audience = "issue_only" })
    local res = kit.admin():patch("/coupons/templates/" .. id, { audience = "public" })
    expect(res.status).to_be(200)
    expect(claimable_ids()[id]).to_be(true)
    local bad = template({ audience = "vips" })
    expect(bad.status).to_be(400)
    expect(bad.body.error.details).to_equal({ field = "audience" })
  end)
end)

describe("time", function()
  it("opens claims at claim_starts_at and closes them at claim_ends_at", function()
    local now = kit.now()
    local _, id = template({ claim_starts_at = now + 3600, claim_ends_at = now + 7200 })
    local early = claim("dave", id)
    expect(early.status).to_be(409)
    expect(early.body.error.details).to_equal({ reason = "not_started" })
    kit.advance(3600)
    expect(claim("dave", id).status).to_be(201)
    kit.advance(3600)
    local late = claim("erin", id)
    expect(late.status).to_be(409)
    expect(late.body.error.details.reason).to_be("ended")
  end)

  it("keeps a claimed coupon valid for valid_days, then shows it expired", function()
    local _, id = template({ valid_days = 7 })
    local coupon = claim("frank", id).body
    expect(coupon.valid_from).to_be(kit.now())
    expect(coupon.valid_until).to_be(kit.now() + 7 * 86400)
    expect(coupon.state).to_be("unused")
    expect(coupon.usable).to_be(true)

    kit.advance(7 * 86400 - 1)
    expect(kit.user("frank"):get("/coupons/mine?state=unused").body.items[1].id).to_be(coupon.id)

    kit.advance(1)
    local mine = kit.user("frank"):get("/coupons/mine").body.items
    expect(#mine).to_be(1)
    expect(mine[1].state).to_be("expired")
    expect(mine[1].usable).to_be(false)
  end)
end)
