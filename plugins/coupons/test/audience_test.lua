-- coupons for a segment or a tag of the members plugin: a template with
-- audience "segment" (or "tag") is listed to, and claimed by, only the members
-- in it; the name is checked with the members plugin when the template is
-- written; an issue gives it to anyone, as for every audience.

kit.plugins { coupons = {}, members = {}, couponkit = {} }

local function template(fields)
  local body = { name = "VIP ¥30 off", kind = "fixed", amount_off_fen = 3000, valid_days = 7,
                 total_quantity = 100 }
  for k, v in pairs(fields or {}) do body[k] = v end
  return kit.admin():post("/coupons/templates", body)
end

local function claim(user, id)
  return kit.user(user):post("/coupons/templates/" .. id .. "/claim")
end

---The ids GET /coupons/claimable lists to client (every page).
local function listed(client)
  local ids, after = {}, nil
  repeat
    local res = client:get("/coupons/claimable?limit=200" .. (after and ("&after=" .. after) or ""))
    assert(res.status == 200, "claimable answered " .. res.status)
    for _, t in ipairs(res.body.items) do ids[t.id] = true end
    after = res.body.next_after
  until after == nil
  return ids
end

-- the pool: vip00001-vip00003 carry the tag vip, reg00001-reg00002 carry regular;
-- the segment vips is everyone tagged vip
local function setup_pool()
  expect(kit.admin():post("/members/tags", { name = "vip" }).status).to_be(201)
  expect(kit.admin():post("/members/tags", { name = "regular" }).status).to_be(201)
  kit.admin():post("/couponkit/members", { prefix = "vip", from = 1, to = 3, tag = "vip" })
  kit.admin():post("/couponkit/members", { prefix = "reg", from = 1, to = 2, tag = "regular" })
  expect(kit.admin():post("/members/segments", { name = "vips", rule = { tag = "vip" } }).status).to_be(201)
end

describe("a segment template", function()
  it("is created naming a segment the members plugin has", function()
    setup_pool()
    local res = template({ audience = "segment", segment = "vips" })
    expect(res.status).to_be(201)
    expect({ res.body.audience, res.body.segment, res.body.tag }).to_equal({ "segment", "vips", nil })
    expect(kit.admin():get("/coupons/templates/" .. res.body.id).body.segment).to_be("vips")
  end)

  it("is refused naming no segment, an unknown one, or one with another audience", function()
    for _, case in ipairs({
      { { audience = "segment" }, "segment", "segment is required with audience segment" },
      { { audience = "segment", segment = "sleepers" }, "segment", "names no segment of the members plugin: 'sleepers'" },
      { { audience = "segment", segment = "no spaces" }, "segment", nil },
      { { audience = "public", segment = "vips" }, "segment", "segment only applies to audience segment" },
      { { audience = "segment", segment = "vips", tag = "vip" }, "tag", "tag only applies to audience tag" },
      { { audience = "tag", tag = "gold" }, "tag", "names no tag of the members plugin: 'gold'" },
    }) do
      local err = expect(template(case[1])).to_be_error(400, "invalid_field")
      expect(err.details).to_equal({ field = case[2] })
      if case[3] then expect(err.message).to_contain(case[3]) end
    end
  end)

  it("is listed to the segment's members only, never to anonymous callers", function()
    local id = template({ audience = "segment", segment = "vips" }).body.id
    expect(listed(kit.user("vip00001"))[id]).to_be(true)
    expect(listed(kit.user("reg00001"))[id]).to_be(nil)
    expect(listed(kit.user("stranger"))[id]).to_be(nil)    -- never seen by the pool
    expect(listed(kit.anon())[id]).to_be(nil)
    -- a member's item says what they hold, as for a public template
    local item
    for _, t in ipairs(kit.user("vip00002"):get("/coupons/claimable?limit=200").body.items) do
      if t.id == id then item = t end
    end
    expect({ item.claimed, item.can_claim }).to_equal({ 0, true })
    -- the brand's name for the segment is not shown to customers
    expect({ item.audience, item.segment }).to_equal({ "segment", nil })
  end)

  it("is claimed by a member; anyone else gets 403 members_only and takes nothing", function()
    local id = template({ audience = "segment", segment = "vips", total_quantity = 5 }).body.id
    expect(claim("vip00001", id).status).to_be(201)
    expect(claim("reg00001", id)).to_be_error(403, "members_only")
    expect(claim("stranger", id)).to_be_error(403, "members_only")
    expect(kit.anon():post("/coupons/templates/" .. id .. "/claim").status).to_be(401)
    expect(kit.query("SELECT user FROM coupons_coupons WHERE template_id = ?", id))
      .to_equal({ { user = "vip00001" } })
    expect(kit.query("SELECT issued FROM coupons_templates WHERE id = ?", id)).to_equal({ { issued = 1 } })
  end)

  it("follows the segment as it changes: a member tagged later can claim", function()
    local id = template({ audience = "segment", segment = "vips" }).body.id
    expect(claim("reg00002", id)).to_be_error(403, "members_only")
    expect(kit.admin():post("/members/reg00002/tags", { tag = "vip" }).status).to_be(200)
    expect(listed(kit.user("reg00002"))[id]).to_be(true)
    expect(claim("reg00002", id).status).to_be(201)
  end)

  it("is issued to anyone by the admin issue, whatever the audience", function()
    local id = template({ audience = "segment", segment = "vips" }).body.id
    local res = kit.admin():post("/coupons/templates/" .. id .. "/issue", { users = { "stranger", "reg00001" } })
    expect({ res.status, res.body.issued }).to_equal({ 200, 2 })
  end)
end)

describe("a segment deleted after its template named it", function()
  it("admits nobody: the template is listed to nobody and a claim is 403", function()
    expect(kit.admin():post("/members/segments", { name = "brief", rule = { tag = "vip" } }).status).to_be(201)
    local id = template({ audience = "segment", segment = "brief" }).body.id
    expect(listed(kit.user("vip00001"))[id]).to_be(true)
    expect(kit.admin():delete("/members/segments/brief").status).to_be(200)
    expect(listed(kit.user("vip00001"))[id]).to_be(nil)
    expect(claim("vip00001", id)).to_be_error(403, "members_only")
  end)
end)

describe("a tag template", function()
  it("is listed to and claimed by the members carrying the tag", function()
    local res = template({ audience = "tag", tag = "regular" })
    expect(res.status).to_be(201)
    local id = res.body.id
    expect({ res.body.audience, res.body.tag, res.body.segment }).to_equal({ "tag", "regular", nil })
    expect(listed(kit.user("reg00001"))[id]).to_be(true)
    expect(listed(kit.user("vip00003"))[id]).to_be(nil)
    expect(claim("reg00001", id).status).to_be(201)
    expect(claim("vip00003", id)).to_be_error(403, "members_only")
  end)
end)

describe("GET /coupons/claimable", function()
  it("fills a page past the templates a user is not in, and pages on", function()
    -- five new templates: hidden, public, hidden, public, public (for reg00001)
    local ids = {}
    for i, aud in ipairs({ "segment", "public", "segment", "public", "public" }) do
      ids[i] = template(aud == "segment" and { audience = "segment", segment = "vips" } or {}).body.id
    end
    local after = ids[1] - 1
    local page = kit.user("reg00001"):get("/coupons/claimable?limit=2&after=" .. after).body
    expect({ page.items[1].id, page.items[2].id, page.next_after }).to_equal({ ids[2], ids[4], ids[4] })
    page = kit.user("reg00001"):get("/coupons/claimable?limit=2&after=" .. page.next_after).body
    expect({ #page.items, page.items[1].id, page.next_after }).to_equal({ 1, ids[5], nil })
    -- a member of vips sees all five, two to a page
    page = kit.user("vip00001"):get("/coupons/claimable?limit=2&after=" .. after).body
    expect({ page.items[1].id, page.items[2].id, page.next_after }).to_equal({ ids[1], ids[2], ids[2] })
  end)
end)

describe("PATCH of the audience", function()
  it("moves a template to a segment and back, checking the name", function()
    local id = template().body.id
    local err = expect(kit.admin():patch("/coupons/templates/" .. id, { audience = "segment" }))
      .to_be_error(400, "invalid_field")
    expect(err.details).to_equal({ field = "segment" })
    err = expect(kit.admin():patch("/coupons/templates/" .. id, { audience = "segment", segment = "nobody" }))
      .to_be_error(400, "invalid_field")
    expect(err.details).to_equal({ field = "segment" })
    local res = kit.admin():patch("/coupons/templates/" .. id, { audience = "segment", segment = "vips" })
    expect({ res.status, res.body.audience, res.body.segment }).to_equal({ 200, "segment", "vips" })
    -- a PATCH of something else keeps the audience as it is
    res = kit.admin():patch("/coupons/templates/" .. id, { name = "renamed" })
    expect({ res.body.name, res.body.audience, res.body.segment }).to_equal({ "renamed", "segment", "vips" })
    expect(claim("reg00001", id)).to_be_error(403, "members_only")
    -- a segment alone is refused while the audience is not segment
    res = kit.admin():patch("/coupons/templates/" .. id, { audience = "public" })
    expect({ res.body.audience, res.body.segment }).to_equal({ "public", nil })
    err = expect(kit.admin():patch("/coupons/templates/" .. id, { segment = "vips" })).to_be_error(400, "invalid_field")
    expect(err.details).to_equal({ field = "segment" })
    expect(claim("reg00001", id).status).to_be(201)
  end)

  it("moves a template between a segment and a tag", function()
    local id = template({ audience = "segment", segment = "vips" }).body.id
    local res = kit.admin():patch("/coupons/templates/" .. id, { audience = "tag", tag = "regular" })
    expect({ res.status, res.body.audience, res.body.segment, res.body.tag }).to_equal({ 200, "tag", nil, "regular" })
    expect(claim("reg00002", id).status).to_be(201)
  end)
end)
