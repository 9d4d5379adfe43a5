-- members: identify, merges, profile, tags, erasure. Segments are in
-- segments_test.lua.

kit.plugins { members = { fields = { shoe_size = { type = "integer", min = 30, max = 50, editable = true },
                                      vip_card = { type = "string", max_len = 20 } },
                          phone_pepper = "kit-pepper-0123" },
              orderfeed = {} }

local function identify(ids, extra)
  local body = extra or {}
  body.identities = ids
  return kit.admin():post("/members/identify", body)
end

local function me(token)
  return kit.anon():get("/members/me", { authorization = "Bearer " .. token })
end

describe("identify", function()
  it("makes a member on the first login and finds it on the next", function()
    local first = identify({ { channel = "mp_openid", id = "oA" } })
    expect(first.status).to_be(201)
    expect(first.body.created).to_be(true)
    local id = first.body.member.id
    expect(id).to_match("^m%d+$")
    local again = identify({ { channel = "mp_openid", id = "oA" } })
    expect(again.status).to_be(200)
    expect(again.body.member.id).to_be(id)
    expect(me(again.body.token).body.id).to_be(id)
  end)

  it("keeps phones only masked and as a digest", function()
    local r = identify({ { channel = "mp_openid", id = "oP" }, { channel = "phone", id = "13812345678", verified = true } })
    expect(r.body.member.phone).to_be("138****5678")
    for _, t in ipairs({ "members_members", "members_identities", "members_merge_rows" }) do
      for _, row in ipairs(kit.query("SELECT * FROM " .. t)) do
        for _, v in pairs(row) do expect(tostring(v):find("12345678", 1, true)).to_be_nil() end
      end
    end
  end)

  it("finds a member by a phone (its digest) or an openid; nothing else, and nobody else", function()
    local m = identify({ { channel = "mp_openid", id = "oLook" }, { channel = "phone", id = "13855556666", verified = true } })
      .body.member.id
    local by_phone = kit.admin():get("/members/lookup?channel=phone&id=13855556666")
    expect(by_phone.status).to_be(200)
    expect({ by_phone.body.id, by_phone.body.phone }).to_equal({ m, "138****6666" })
    expect(kit.admin():get("/members/lookup?channel=mp_openid&id=oLook").body.id).to_be(m)
    expect(kit.admin():get("/members/lookup?channel=phone&id=13855556667")).to_be_error(404, "member_not_found")
    expect(kit.admin():get("/members/lookup?channel=mp_openid&id=13855556666")).to_be_error(404, "member_not_found")
    expect(kit.admin():get("/members/lookup?channel=qq&id=x")).to_be_error(400, "invalid_field")
    expect(kit.admin():get("/members/lookup?channel=phone&id=12ab")).to_be_error(400, "invalid_field")
    expect(kit.admin():get("/members/lookup?channel=phone")).to_be_error(400, "invalid_field")
    expect(kit.user(m):get("/members/lookup?channel=phone&id=13855556666").status).to_be(404)  -- admin only
  end)

  it("merges the members a unionid proves to be one person, oldest surviving", function()
    local a = identify({ { channel = "mp_openid", id = "oU1" }, { channel = "unionid", id = "U1" } }).body
    local b = identify({ { channel = "oa_openid", id = "oaU1" } }).body
    local both = identify({ { channel = "oa_openid", id = "oaU1" }, { channel = "unionid", id = "U1" } })
    expect(both.status).to_be(200)
    expect(both.body.member.id).to_be(a.member.id)
    expect(both.body.merged).to_equal({ b.member.id })
    -- b's old token now enters as a
    expect(me(b.token).body.id).to_be(a.member.id)
    local m = kit.admin():get("/members/" .. b.member.id).body
    expect(m.id).to_be(a.member.id)
    expect(#m.identities).to_be(3)
  end)

  it("adds a verified phone to the member the caller names, merging the younger on it", function()
    local old = identify({ { channel = "card", id = "C-9" }, { channel = "phone", id = "13700009999", verified = true } }).body
    local young = identify({ { channel = "mp_openid", id = "oY" } }).body
    local lone = identify({ { channel = "mp_openid", id = "oZ" } }).body
    -- a phone nobody has: added to the named member
    local r = identify({ { channel = "phone", id = "13600001111", verified = true } }, { member = lone.member.id })
    expect(r.status).to_be(200)
    expect(r.body.member.id).to_be(lone.member.id)
    expect(r.body.member.phone).to_be("136****1111")
    -- the older member's phone: the named (younger) member merges into it
    r = identify({ { channel = "phone", id = "13700009999", verified = true } }, { member = young.member.id })
    expect(r.status).to_be(200)
    expect(r.body.member.id).to_be(old.member.id)
    expect(r.body.merged).to_equal({ young.member.id })
    expect(me(young.token).body.id).to_be(old.member.id)
    -- a member that is gone or never was
    expect(identify({ { channel = "phone", id = "13600002222", verified = true } }, { member = "m999999" }))
      .to_be_error(404, "member_not_found")
  end)

  it("refuses identities of two members without proof", function()
    identify({ { channel = "mp_openid", id = "oC1" } })
    identify({ { channel = "card", id = "C-1" } })
    local r = identify({ { channel = "mp_openid", id = "oC1" }, { channel = "card", id = "C-1" } })
    expect(r).to_be_error(409, "identity_conflict")
  end)

  it("never merges through a typed card or an unverified phone", function()
    local merges = kit.query("SELECT count(*) AS n FROM members_merges")[1].n
    local victim = identify({ { channel = "card", id = "VIC-1" }, { channel = "mp_openid", id = "oVic" } }).body
    identify({ { channel = "mp_openid", id = "oAtk" }, { channel = "unionid", id = "uAtk" } })
    -- the attacker's own unionid is proof of nothing about the victim's card
    local r = identify({ { channel = "mp_openid", id = "oAtk" }, { channel = "unionid", id = "uAtk" },
                         { channel = "card", id = "VIC-1" } })
    expect(r).to_be_error(409, "identity_conflict")
    r = identify({ { channel = "mp_openid", id = "oAtk2" }, { channel = "phone", id = "13911112222" } })
    local e = expect(r).to_be_error(400, "invalid_field")
    expect(e.details.field).to_be("identities[2].verified")
    expect(me(victim.token).body.id).to_be(victim.member.id)
    expect(kit.query("SELECT count(*) AS n FROM members_merges")[1].n).to_be(merges)
  end)

  it("checks every identity and field before doing anything", function()
    expect(identify({ { channel = "qq", id = "x" } })).to_be_error(400, "invalid_field")
    expect(identify({ { channel = "phone", id = "12ab" } })).to_be_error(400, "invalid_field")
    expect(identify({})).to_be_error(400, "invalid_field")
    local r = identify({ { channel = "mp_openid", id = "oF" } }, { profile = { shoe_size = 99 } })
    expect(r).to_be_error(400, "invalid_field")
    expect(r.body.error.details.field).to_be("profile.shoe_size")
    expect(kit.query("SELECT count(*) AS n FROM members_identities WHERE external_id = 'oF'")[1].n).to_be(0)
  end)

  it("keeps the first touch and moves the last", function()
    local r = identify({ { channel = "mp_openid", id = "oS" } },
      { source = { channel = "group_chat", store = "S01", guide = "g7" } }).body
    identify({ { channel = "mp_openid", id = "oS" } }, { source = { channel = "moments", store = "S02" } })
    local m = kit.admin():get("/members/" .. r.member.id).body
    expect(m.first_source).to_be("group_chat")
    expect(m.last_source).to_be("moments")
    expect(m.store).to_be("S01")
    expect(m.guide).to_be("g7")
  end)
end)

describe("profile", function()
  it("lets the member edit only its editable fields", function()
    local r = identify({ { channel = "mp_openid", id = "oE" } }).body
    local h = { authorization = "Bearer " .. r.token }
    local ok = kit.anon():patch("/members/me", { nickname = "小明", shoe_size = 42 }, h)
    expect(ok.status).to_be(200)
    expect(ok.body.fields.shoe_size).to_be(42)
    local no = kit.anon():patch("/members/me", { vip_card = "X" }, h)
    expect(no).to_be_error(400, "invalid_field")
    local op = kit.admin():patch("/members/" .. r.member.id, { vip_card = "VIP-9", birthday = "1990-02-29" })
    expect(op).to_be_error(400, "invalid_field")
    op = kit.admin():patch("/members/" .. r.member.id, { vip_card = "VIP-9", birthday = "1992-02-29" })
    expect(op.body.fields.vip_card).to_be("VIP-9")
  end)
end)

describe("manual merges", function()
  it("fold orders and tags into the survivor and can be undone exactly", function()
    local a = identify({ { channel = "card", id = "MA" } }).body.member.id
    local b = identify({ { channel = "card", id = "MB" } }).body.member.id
    kit.admin():post("/members/tags", { name = "vip" })
    kit.admin():post("/members/" .. b .. "/tags", { tag = "vip" })
    kit.admin():post("/orderfeed/paid", { id = 9001, user = b, paid_fen = 5000 })
    kit.drain()
    local before_a = kit.admin():get("/members/" .. a).body
    local before_b = kit.admin():get("/members/" .. b).body
    local m = kit.admin():post("/members/merges", { from = b, into = a, note = "same person, store desk" })
    expect(m.status).to_be(201)
    local merged = kit.admin():get("/members/" .. a).body
    expect(merged.facts.paid_fen).to_be(5000)
    expect(merged.tags[1].name).to_be("vip")
    expect(m.body.moved.members).to_equal({ identities = 1, tags = 1, orders = 1 })
    local undo = kit.admin():post("/members/merges/" .. m.body.id .. "/undo", {})
    expect(undo.status).to_be(200)
    local after_a = kit.admin():get("/members/" .. a).body
    local after_b = kit.admin():get("/members/" .. b).body
    after_a.updated_at, before_a.updated_at, after_b.updated_at, before_b.updated_at = 0, 0, 0, 0
    expect(after_a).to_equal(before_a)
    expect(after_b).to_equal(before_b)
    expect(kit.admin():post("/members/merges/" .. m.body.id .. "/undo", {})).to_be_error(409, "merge_undone")
  end)

  it("does not undo a merge a unionid proved", function()
    identify({ { channel = "mp_openid", id = "oV1" }, { channel = "unionid", id = "V1" } })
    identify({ { channel = "oa_openid", id = "oaV1" } })
    identify({ { channel = "oa_openid", id = "oaV1" }, { channel = "unionid", id = "V1" } })
    local merges = kit.admin():get("/members/merges").body.items
    expect(merges[1].reason).to_be("unionid")
    expect(kit.admin():post("/members/merges/" .. merges[1].id .. "/undo", {}))
      .to_be_error(409, "merge_not_manual")
  end)
end)

describe("tags", function()
  it("assigns, expires and refuses rule tags by hand", function()
    local id = identify({ { channel = "card", id = "T1" } }).body.member.id
    kit.admin():post("/members/tag-groups", { name = "兴趣" })
    expect(kit.admin():post("/members/tags", { name = "茶友", group = "兴趣" }).status).to_be(201)
    expect(kit.admin():post("/members/tags", { name = "茶友" })).to_be_error(409, "tag_exists")
    local r = kit.admin():post("/members/" .. id .. "/tags", { tag = "茶友", expires_at = kit.now() + 3600 })
    expect(r.body.tags[1].name).to_be("茶友")
    expect(r.body.tags[1].group).to_be("兴趣")
    kit.advance(3601)
    expect(#kit.admin():get("/members/" .. id).body.tags).to_be(0)
    local typo = kit.admin():post("/members/" .. id .. "/tags", { tag = "茶有" })
    expect(typo).to_be_error(404, "tag_not_found")
    kit.admin():post("/members/tags", { name = "spender", kind = "rule",
      rule = { field = "paid_fen", op = "gte", value = 100 } })
    expect(kit.admin():post("/members/" .. id .. "/tags", { tag = "spender" })).to_be_error(409, "tag_is_rule")
  end)

  it("keeps a rule tag true as orders are paid and refunded", function()
    local id = identify({ { channel = "card", id = "R1" } }).body.member.id
    kit.admin():post("/members/tags", { name = "big", kind = "rule",
      rule = { field = "net_fen", op = "gte", value = 10000 } })
    kit.drain()
    local function has_big()
      for _, t in ipairs(kit.admin():get("/members/" .. id).body.tags) do
        if t.name == "big" then return true end
      end
      return false
    end
    expect(has_big()).to_be(false)
    kit.admin():post("/orderfeed/paid", { id = 9101, user = id, paid_fen = 12000 })
    kit.drain()
    expect(has_big()).to_be(true)
    kit.admin():post("/orderfeed/refunded", { id = 9101, user = id, paid_fen = 12000, refunded_fen = 5000 })
    kit.drain()
    expect(has_big()).to_be(false)
  end)

  it("takes bulk assignments and reports unknown ids", function()
    local ids = {}
    for i = 1, 20 do ids[i] = identify({ { channel = "card", id = "B" .. i } }).body.member.id end
    kit.admin():post("/members/tags", { name = "bulk" })
    ids[21] = "nobody"
    local r = kit.admin():post("/members/tags/bulk/assign", { members = ids })
    expect(r.body.added).to_be(20)
    expect(r.body.unknown).to_equal({ "nobody" })
    expect(kit.admin():get("/members/tags/bulk").body.members).to_be(20)
  end)
end)

describe("erasure", function()
  it("erases personal data, refuses the token and keeps order money", function()
    local r = identify({ { channel = "mp_openid", id = "oX" }, { channel = "phone", id = "13900001111", verified = true } },
      { profile = { nickname = "阿花", city = "杭州" } }).body
    kit.admin():post("/orderfeed/paid", { id = 9201, user = r.member.id, paid_fen = 3000 })
    kit.drain()
    expect(kit.admin():post("/members/" .. r.member.id .. "/erase", {}).status).to_be(200)
    expect(me(r.token)).to_be_error(401, "member_erased")
    local row = kit.query("SELECT nickname, city, phone_masked, paid_fen, state FROM members_members WHERE id = ?", r.member.id)[1]
    expect(row).to_equal({ paid_fen = 3000, state = "erased" })
    expect(kit.query("SELECT count(*) AS n FROM members_identities WHERE n = (SELECT n FROM members_members WHERE id = ?)",
      r.member.id)[1].n).to_be(0)
    -- the same person logging in again is a new member
    local again = identify({ { channel = "mp_openid", id = "oX" } })
    expect(again.status).to_be(201)
  end)
end)

describe("tags in use", function()
  it("cannot be deleted while a segment or a rule tag names them", function()
    kit.admin():post("/members/tags", { name = "used" })
    kit.admin():post("/members/tags", { name = "watcher", kind = "rule", rule = { tag = "used" } })
    local r = kit.admin():delete("/members/tags/used")
    expect(expect(r).to_be_error(409, "tag_in_use").details).to_equal({ tag = "watcher" })
    kit.admin():delete("/members/tags/watcher")
    kit.admin():post("/members/segments", { name = "uses", rule = { tag = "used" } })
    expect(expect(kit.admin():delete("/members/tags/used")).to_be_error(409, "tag_in_use").details)
      .to_equal({ segment = "uses" })
    kit.admin():delete("/members/segments/uses")
    expect(kit.admin():delete("/members/tags/used").status).to_be(200)
  end)

  it("refuses names that would break a CSV", function()
    for _, name in ipairs({ "a|b", "a,b", 'a"b' }) do
      expect(kit.admin():post("/members/tags", { name = name })).to_be_error(400, "invalid_field")
    end
  end)

end)
