-- tp.audiencetest: the member-only contract's tests (tp.audience), for
-- `tidepool test` files of a plugin whose activities take an optional
-- audience, {segment = name} or {tag = name} of the members plugin. It uses
-- the kit's globals. Who may act, and what acting makes, is the plugin's own;
-- what every such plugin keeps is here:
--
--   local at = require("tp.audiencetest").new {
--     path = "/flash-sales",               -- the collection: POST creates, PATCH and GET {path}/{id}
--     table = "flash_sale_sales",          -- its rows (counted: a refused write saves nothing)
--     body = function(fields) ... end,     -- a valid create body (a fresh SKU ...) with fields over it
--   }
--   at.member(card, profile)   a new member of the pool (members/identify); her id
--   at.tag(id, name)           tags her
--   at.pool()                  the tag "gold" and the segment "shanghai" (city 上海) the tests name
--   at.new(fields)             an activity made through the route, as the create answered it
--   at.admits_only_the_tag(act, made, gold_card, plain_card)  only the tag's members act
--   at.shown_in_reads(aud)     every read, admin and public, shows the audience (null: everyone)
--   at.patch_sets_keeps_clears(act, other, card)  a PATCH sets it, another field's keeps it, null clears it
--   at.refuses_wrong_audiences(cases)  each wrong audience: 400 naming its field, nothing saved
--   at.patch_keeps_on_refusal(had, wrong, field)  a refused PATCH keeps the audience it had
--   at.documents_audience()    create, PATCH and the reads document one audience schema
-- Without the members plugin (a file that does not enable it):
--   at.refused_without_members()  member-only: refused on create and PATCH, naming the plugin
--   at.open_without_members(act)  no audience: act(id) (a user's start, buy ...) answers 201

local audiencetest = {}

---Wrong audiences every plugin refuses the same way: { audience, field, words of the message }.
audiencetest.WRONG = {
  { { segment = "nowhere" }, "audience.segment", "names no segment of the members plugin: 'nowhere'" },
  { { tag = "silver" }, "audience.tag", "names no tag of the members plugin: 'silver'" },
  { { segment = "shanghai", tag = "gold" }, "audience", "exactly one" },
  { { segmnt = "shanghai" }, "audience.segmnt", "did you mean 'segment'" },
  { { tags = "gold" }, "audience.tags", "did you mean 'tag'" },
  { {}, "audience", "must be {segment = name} or {tag = name}" },
  { "gold", "audience", "must be {segment = name} or {tag = name}" },
  { { tag = 7 }, "audience.tag", "audience.tag" },
  { { tag = "" }, "audience.tag", "audience.tag" },
}

---@class AudienceTestSpec
---@field path string the admin collection
---@field table string the activities' table
---@field body fun(fields: table?): table a valid create body with fields over it

---@param spec AudienceTestSpec
function audiencetest.new(spec)
  local at = {}

  local function count()
    return kit.query("SELECT count(*) AS n FROM " .. spec.table)[1].n
  end

  function at.member(card, profile)
    local res = kit.admin():post("/members/identify",
      { identities = { { channel = "card", id = card } }, profile = profile })
    assert(res.status == 201, "identify answered " .. tostring(res.status))
    return res.body.member.id
  end

  function at.tag(id, name)
    local res = kit.admin():post("/members/" .. id .. "/tags", { tag = name })
    assert(res.status == 200 or res.status == 201, "tagging answered " .. tostring(res.status))
  end

  function at.pool()
    kit.admin():post("/members/tags", { name = "gold" })
    kit.admin():post("/members/segments", { name = "shanghai", rule = { field = "city", op = "eq", value = "上海" } })
  end

  function at.new(fields)
    local res = kit.admin():post(spec.path, spec.body(fields))
    assert(res.status == 201, ("%s refused the activity: %s %s"):format(spec.path, tostring(res.status),
      type(res.body) == "table" and res.body.error and res.body.error.message or ""))
    return res.body
  end

  ---An activity for the members carrying the tag gold: one carrying it acts
  ---(act(user, id) answers 201); a member without it and a user who is no
  ---member get 403 members_only naming the tag, and made(id, user), what
  ---acting makes for a user (a count, or nil), stays empty. Cards name the
  ---two members. Returns the activity's id and the member without the tag.
  function at.admits_only_the_tag(act, made, gold_card, plain_card)
    local a = at.new({ audience = { tag = "gold" } })
    local gold, plain = at.member(gold_card), at.member(plain_card)
    at.tag(gold, "gold")
    expect(act(gold, a.id).status).to_be(201)
    for _, user in ipairs({ plain, "not-a-member" }) do
      local err = expect(act(user, a.id)).to_be_error(403, "members_only")
      expect(err.details).to_equal({ tag = "gold" })
      expect({ user, made(a.id, user) or 0 }).to_equal({ user, 0 })
    end
    return a.id, plain
  end

  ---An activity with audience aud, and one without: every read, admin and
  ---public, one and the list, shows aud, or null for the one open to
  ---everyone. Returns the first's id.
  function at.shown_in_reads(aud)
    local a, open_to_all = at.new({ audience = aud }), at.new()
    expect({ a.audience, open_to_all.audience }).to_equal({ aud, kit.null })
    expect(kit.admin():get(spec.path .. "/" .. a.id).body.audience).to_equal(aud)
    expect(kit.anon():get(spec.path .. "/" .. a.id).body.audience).to_equal(aud)
    for _, client in ipairs({ kit.anon(), kit.admin() }) do
      local listed = {}
      for _, item in ipairs(client:get(spec.path).body.items) do listed[item.id] = item.audience end
      expect({ listed[a.id], listed[open_to_all.id] }).to_equal({ aud, kit.null })
    end
    return a.id
  end

  ---A PATCH sets an audience (act(user, id), what a member does, is then
  ---403 members_only for one outside it), a PATCH of another field (other)
  ---keeps it, and a null clears it (act answers 201 again). Returns the id.
  function at.patch_sets_keeps_clears(act, other, card)
    local a = at.new()
    local plain = at.member(card)
    local set = kit.admin():patch(spec.path .. "/" .. a.id, { audience = { segment = "shanghai" } })
    expect({ set.status, set.body.audience }).to_equal({ 200, { segment = "shanghai" } })
    expect(act(plain, a.id)).to_be_error(403, "members_only")
    expect(kit.admin():patch(spec.path .. "/" .. a.id, other).body.audience).to_equal({ segment = "shanghai" })
    expect(act(plain, a.id)).to_be_error(403, "members_only")
    local cleared = kit.admin():patch(spec.path .. "/" .. a.id, { audience = kit.null })
    expect({ cleared.status, cleared.body.audience }).to_equal({ 200, kit.null })
    expect(kit.anon():get(spec.path .. "/" .. a.id).body.audience).to_be(kit.null)
    expect(act(plain, a.id).status).to_be(201)
    return a.id, plain
  end

  ---Each case (default WRONG), { audience, field, words }: the create is 400
  ---invalid_field naming field, its message has the words; nothing is saved.
  function at.refuses_wrong_audiences(cases)
    local before = count()
    for _, c in ipairs(cases or audiencetest.WRONG) do
      local err = expect(kit.admin():post(spec.path, spec.body({ audience = c[1] })))
        .to_be_error(400, "invalid_field")
      expect({ c[1], err.details.field }).to_equal({ c[1], c[2] })
      expect(err.message).to_contain(c[3])
    end
    expect(count()).to_be(before)
  end

  ---An activity with audience had; a PATCH to the unknown audience wrong is
  ---400 naming field, and the activity keeps had.
  function at.patch_keeps_on_refusal(had, wrong, field)
    local a = at.new({ audience = had })
    local err = expect(kit.admin():patch(spec.path .. "/" .. a.id, { audience = wrong }))
      .to_be_error(400, "invalid_field")
    expect(err.details.field).to_be(field)
    expect(kit.admin():get(spec.path .. "/" .. a.id).body.audience).to_equal(had)
  end

  ---The create and PATCH bodies, and the public and admin reads (one and
  ---the list), document the same audience: an object of one segment or tag,
  ---nullable.
  function at.documents_audience()
    local paths = require("tp.schematest").paths()
    local function body(op) return op.requestBody.content["application/json"].schema end
    local function answer(op) return op.responses["200"].content["application/json"].schema end
    local one = spec.path .. "/{id}"
    local audience = body(paths["/admin/test" .. spec.path].post).properties.audience
    expect(audience.properties).to_equal({ segment = { type = "string", maxLength = 64 },
                                           tag = { type = "string", maxLength = 64 } })
    expect(audience.nullable).to_be(true)
    expect(body(paths["/admin/test" .. one].patch).properties.audience).to_equal(audience)
    expect(answer(paths["/v1/test" .. one].get).properties.audience).to_equal(audience)
    expect(answer(paths["/v1/test" .. spec.path].get).properties.items.items.properties.audience)
      .to_equal(audience)
    expect(answer(paths["/admin/test" .. one].get).properties.audience).to_equal(audience)
  end

  ---Without the members plugin: a segment's or a tag's audience is refused on
  ---create (nothing saved) and on PATCH (the activity stays for everyone),
  ---naming the field and the plugin it needs.
  function at.refused_without_members()
    local before = count()
    for _, c in ipairs({ { { segment = "vip" }, "audience.segment" }, { { tag = "gold" }, "audience.tag" } }) do
      local err = expect(kit.admin():post(spec.path, spec.body({ audience = c[1] })))
        .to_be_error(400, "invalid_field")
      expect(err.details.field).to_be(c[2])
      expect(err.message).to_contain("member-only activities need the members plugin")
    end
    expect(count()).to_be(before)
    local a = at.new()
    for _, c in ipairs({ { { segment = "vip" }, "audience.segment" }, { { tag = "gold" }, "audience.tag" } }) do
      local err = expect(kit.admin():patch(spec.path .. "/" .. a.id, { audience = c[1] }))
        .to_be_error(400, "invalid_field")
      expect(err.details.field).to_be(c[2])
    end
    expect(kit.admin():get(spec.path .. "/" .. a.id).body.audience).to_be(kit.null)
  end

  ---Without the members plugin: an activity without an audience (null, and a
  ---PATCH to null) is open to everyone: act(id) answers 201.
  function at.open_without_members(act)
    local a = at.new()
    expect(a.audience).to_be(kit.null)
    expect(kit.admin():patch(spec.path .. "/" .. a.id, { audience = kit.null }).status).to_be(200)
    expect(act(a.id).status).to_be(201)
  end

  return at
end

return audiencetest
