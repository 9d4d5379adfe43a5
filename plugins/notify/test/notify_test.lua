-- notify: a template's message goes to a user only while she has an
-- acceptance of it left (each send takes one; none left: skipped, recorded);
-- its data comes from the event by path, cut to WeChat's limits per type;
-- the call is written to the outbox for the "wechat" destination, without
-- any token (the host adds it as it sends; the kit makes no calls).

kit.plugins {
  emitter = {},
  notify = {
    templates = {
      bargain_done = {
        event = "bargain.floor_reached", template_id = "TPL_BARGAIN",
        page = "pages/bargain/index?id={bargain.id}",
        to = { user = "bargain.initiator" },
        data = { thing1 = "bargain.title", amount2 = "bargain.price_fen", time3 = "bargain.pay_deadline",
                 phrase4 = { value = "砍价成功啦快来" }, character_string5 = { from = "bargain.sku" } },
      },
      group_fail = {
        event = "group.failed", template_id = "TPL_GROUP_FAILED",
        to = { users = "users" },
        data = { thing1 = { from = "reason", default = "未成团" } },
      },
    },
  },
}
kit.destinations {
  wechat = { url = "http://127.0.0.1:9", plugins = { "notify" }, secrets = { app_secret = "not-a-real-secret" },
             token = { appid = "wx0123456789", secret = "app_secret" } },
}

local admin = kit.admin()

local function accept(user, ids, accepted)
  return kit.user(user):post("/notify/subscriptions", { template_ids = ids, accepted = accepted or ids,
                                                        openid = "o-" .. user })
end

local function floor_reached(user, id)
  return kit.anon():post("/emitter/emit", { name = "bargain.floor_reached", data = { bargain = {
    id = id, initiator = user, title = "手工粗陶茶具六件套（含收纳礼盒与竹制茶盘）", price_fen = 5900,
    pay_deadline = 1767225600, sku = "CUP-6" } } })
end

local function sends()
  return kit.query("SELECT dest, path, key, body FROM _tp_outbox ORDER BY id")
end

describe("subscriptions", function()
  it("count one message per acceptance, and refuse templates the brand has not", function()
    local res = accept("u1", { "TPL_BARGAIN" })
    expect(res.status).to_be(200)
    expect(res.body.items).to_equal({ { template_id = "TPL_BARGAIN", remaining = 1 } })
    expect(accept("u1", { "TPL_BARGAIN" }).body.items[1].remaining).to_be(2)
    expect(accept("u1", { "TPL_GROUP_FAILED", "TPL_BARGAIN" }, {}).body.items).to_equal({
      { template_id = "TPL_GROUP_FAILED", remaining = 0 }, { template_id = "TPL_BARGAIN", remaining = 2 } })
    expect(accept("u1", { "TPL_NOPE" })).to_be_error(400, "invalid_field")
    local bad = kit.user("u1"):post("/notify/subscriptions", { template_ids = { "TPL_BARGAIN" },
      accepted = { "TPL_GROUP_FAILED" }, openid = "o-u1" })
    expect(bad).to_be_error(400, "invalid_field")
    expect(kit.user("u1"):get("/notify/subscriptions").body.items).to_equal({
      { template_id = "TPL_BARGAIN", remaining = 2 } })
  end)
end)

describe("an event", function()
  it("sends the template to its recipient, its data cut to WeChat's limits, without a token", function()
    accept("u2", { "TPL_BARGAIN" })
    local before = #sends()
    expect(floor_reached("u2", 7).status).to_be(201)
    kit.drain()
    local rows = sends()
    expect(#rows).to_be(before + 1)
    local call = rows[#rows]
    expect(call.dest).to_be("wechat")
    expect(call.path).to_be("/cgi-bin/message/subscribe/send")
    expect(call.path:find("access_token", 1, true)).to_be(nil)
    -- the kit has no JSON decoder: SQLite's json_extract reads the stored body
    local body = kit.query([[SELECT json_extract(body, '$.touser') AS touser,
      json_extract(body, '$.template_id') AS template_id, json_extract(body, '$.page') AS page,
      json_extract(body, '$.data') AS data FROM _tp_outbox WHERE key = ?]], call.key)[1]
    local function value(k)
      return kit.query("SELECT json_extract(?, '$.' || ? || '.value') AS v", body.data, k)[1].v
    end
    expect(body.touser).to_be("o-u2")
    expect(body.template_id).to_be("TPL_BARGAIN")
    expect(body.page).to_be("pages/bargain/index?id=7")
    expect(value("thing1")).to_be("手工粗陶茶具六件套（含收纳礼盒与竹制茶…")
    expect(utf8.len(value("thing1"))).to_be(20)
    expect(value("amount2")).to_be("¥59.00")
    expect(value("time3")).to_be("2026年1月1日 08:00")
    expect(value("phrase4")).to_be("砍价成功啦")
    expect(value("character_string5")).to_be("CUP-6")
    expect(kit.user("u2"):get("/notify/subscriptions").body.items[1].remaining).to_be(0)
    local d = admin:get("/notify/deliveries?user=u2").body.items
    expect(#d).to_be(1)
    expect(d[1].state).to_be("sending")
    expect(d[1].openid).to_be("o-u2")
  end)

  it("with no acceptance left is skipped, recorded, and sends nothing", function()
    local before = #sends()
    floor_reached("u2", 8)
    floor_reached("u3", 9)  -- u3 never subscribed
    kit.drain()
    expect(#sends()).to_be(before)
    local skipped = admin:get("/notify/deliveries?state=skipped").body.items
    expect(#skipped).to_be(2)
    for _, d in ipairs(skipped) do expect(d.reason).to_be("no_subscription") end
  end)

  it("to several users sends one each, with a default for a missing field", function()
    accept("u4", { "TPL_GROUP_FAILED" })
    accept("u5", { "TPL_GROUP_FAILED" })
    local before = #sends()
    kit.anon():post("/emitter/emit", { name = "group.failed", data = { users = { "u4", "u5", "u6" } } })
    kit.drain()
    local rows = sends()
    expect(#rows).to_be(before + 2)
    local v = kit.query("SELECT json_extract(body, '$.data.thing1.value') AS v FROM _tp_outbox WHERE key = ?",
      rows[#rows].key)[1].v
    expect(v).to_be("未成团")
    local d = admin:get("/notify/deliveries?user=u6").body.items
    expect(d[1].state).to_be("skipped")
  end)
end)
