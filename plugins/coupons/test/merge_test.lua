-- coupons and merged members: member_merge moves every coupon and coupon lock
-- of the younger id `from` to the survivor `into`, so one person never holds
-- more than per_user_limit with two ids; colliding numbers are renumbered
-- after into's; member_unmerge gives back exactly what moved. The exports are
-- called as the members plugin calls them, through the test-only helper
-- sdk/testplugins/merger (tp.call inside the request's transaction); the last
-- tests merge through the members plugin itself (its merge ids count from 1:
-- the merger's here start at 101, as members would never reuse one).

kit.plugins { coupons = {}, members = {}, merger = {}, couponkit = {} }

-- ---- helpers

local function template(fields)
  local body = { name = "¥10 off", kind = "fixed", amount_off_fen = 1000, valid_days = 30, total_quantity = 1000 }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/coupons/templates", body)
  assert(res.status == 201, "the template was refused: " .. res.status)
  return res.body.id
end

local function claim(user, id)
  return kit.user(user):post("/coupons/templates/" .. id .. "/claim")
end

local function claimed(user, id)
  local res = claim(user, id)
  assert(res.status == 201, ("%s's claim answered %d"):format(user, res.status))
  return res.body.id
end

---Everything coupons keeps per person, and its merge records.
local function state()
  return {
    coupons = kit.query([[SELECT id, template_id, user, seq, claim_day, day_seq, state, order_id, drop_id,
      issued_for FROM coupons_coupons ORDER BY id]]),
    orders = kit.query("SELECT order_id, coupon_id, user, discount_fen FROM coupons_orders ORDER BY order_id"),
    skips = kit.query("SELECT drop_id, user FROM coupons_drop_skips ORDER BY drop_id, user"),
    merges = kit.query("SELECT merge_id, from_user, into_user FROM coupons_merges ORDER BY merge_id"),
    moves = kit.query("SELECT count(*) AS n FROM coupons_merge_moves")[1].n,
  }
end

local mt = require("tp.mergetest").new { plugin = "coupons", state = state }
local merged, unmerged = mt.merged, mt.unmerged
local NONE = { coupons = 0, orders = 0, skips = 0 }

---user's coupons of template id as {seq, day_seq}, in seq order.
local function numbers(user, id)
  return kit.query([[SELECT seq, day_seq FROM coupons_coupons WHERE user = ? AND template_id = ?
    ORDER BY seq]], user, id)
end

local function lock(user, coupon_id, order_id)
  local res = kit.admin():post("/couponkit/lock", { user = user, coupon_id = coupon_id, order_id = order_id })
  assert(res.status == 200, "lock answered " .. res.status)
  return res.body
end

-- ---- the limit

describe("a merged person", function()
  it("cannot claim again a limit-1 coupon that `from` claimed: into gets 409 limit_reached", function()
    local t = template({ per_user_limit = 1 })
    claimed("lim-from", t)
    expect(merged("lim-from", "lim-into", 101)).to_equal({ coupons = 1, orders = 0, skips = 0 })
    local err = expect(claim("lim-into", t)).to_be_error(409, "limit_reached")
    expect(err.details).to_equal({ per_user_limit = 1, held = 1 })
    expect(kit.query("SELECT issued FROM coupons_templates WHERE id = ?", t)[1].issued).to_be(1)
  end)

  it("holds what both held, and the daily limit counts both too", function()
    local t = template({ per_user_limit = 5, per_user_daily_limit = 2 })
    claimed("day-from", t)
    claimed("day-into", t)
    merged("day-from", "day-into", 102)
    expect(claim("day-into", t)).to_be_error(409, "daily_limit_reached")
    kit.advance(86400)
    expect(claim("day-into", t).status).to_be(201)
    expect(#numbers("day-into", t)).to_be(3)
  end)

  it("gets no second coupon of an issue it had as `from`: the issue skips it", function()
    local t = template({ per_user_limit = 1, audience = "issue_only" })
    kit.admin():post("/coupons/templates/" .. t .. "/issue", { users = { "iss-from" } })
    merged("iss-from", "iss-into", 103)
    local res = kit.admin():post("/coupons/templates/" .. t .. "/issue", { users = { "iss-into" } })
    expect({ res.body.issued, res.body.skipped }).to_equal({ 0, { { user = "iss-into", reason = "limit_reached" } } })
  end)
end)

-- ---- what moves, and the collisions

describe("member_merge", function()
  it("renumbers from's coupons after into's: into's keep their numbers", function()
    local t = template({ per_user_limit = 4 })
    local i1 = claimed("num-into", t)
    local f1 = claimed("num-from", t)
    local f2 = claimed("num-from", t)
    expect(merged("num-from", "num-into", 110)).to_equal({ coupons = 2, orders = 0, skips = 0 })
    expect(kit.query("SELECT id, seq, day_seq FROM coupons_coupons WHERE user = 'num-into' ORDER BY seq"))
      .to_equal({ { id = i1, seq = 1, day_seq = 1 }, { id = f1, seq = 2, day_seq = 2 }, { id = f2, seq = 3, day_seq = 3 } })
    expect(numbers("num-from", t)).to_equal({})
    claimed("num-into", t)                              -- the fourth, then the limit
    expect(claim("num-into", t)).to_be_error(409, "limit_reached")
  end)

  it("renumbers the day's numbers per day, and leaves templates into never had as they were", function()
    local t = template({ per_user_limit = 5 })
    local other = template({ per_user_limit = 2 })
    claimed("dd-from", t)                               -- day 1: from's 1
    local o = claimed("dd-from", other)
    kit.advance(86400)
    claimed("dd-into", t)                               -- day 2: into's 1, from's 2
    claimed("dd-from", t)
    merged("dd-from", "dd-into", 111)
    expect(kit.query([[SELECT seq, day_seq, claim_day = (SELECT min(claim_day) FROM coupons_coupons
        WHERE template_id = ?1) AS first_day FROM coupons_coupons WHERE user = 'dd-into' AND template_id = ?1
      ORDER BY seq]], t)).to_equal({
        { seq = 1, day_seq = 1, first_day = 0 },        -- into's own, day 2
        { seq = 2, day_seq = 1, first_day = 1 },        -- from's day-1 coupon: alone that day
        { seq = 3, day_seq = 2, first_day = 0 } })      -- from's day-2 coupon: after into's
    expect(kit.query("SELECT id, seq, day_seq FROM coupons_coupons WHERE user = 'dd-into' AND template_id = ?", other))
      .to_equal({ { id = o, seq = 1, day_seq = 1 } })
  end)

  it("moves the coupon an order of from's locked, with the lock, and the order still uses it", function()
    local t = template({ per_user_limit = 2 })
    local c = claimed("ord-from", t)
    lock("ord-from", c, "order-1")
    expect(merged("ord-from", "ord-into", 112)).to_equal({ coupons = 1, orders = 1, skips = 0 })
    expect(kit.query("SELECT user, coupon_id FROM coupons_orders WHERE order_id = 'order-1'"))
      .to_equal({ { user = "ord-into", coupon_id = c } })
    expect(kit.admin():post("/couponkit/consume", { order_id = "order-1" }).body.used).to_be(true)
    local mine = kit.user("ord-into"):get("/coupons/mine?state=used").body.items
    expect({ #mine, mine[1].id, mine[1].order_id }).to_equal({ 1, c, "order-1" })
  end)

  it("does nothing a second time with the same merge_id", function()
    claimed("rep-from", template())
    merged("rep-from", "rep-into", 113)
    mt.again("rep-from", "rep-into", 113, NONE)
  end)

  it("leaves nothing when a later step of the members' merge fails", function()
    claimed("fail-from", template())
    mt.failing("fail-from", "fail-into", 114)
  end)

  it("refuses ids that are not user ids, one id twice, a bad merge_id, and a merge_id of other ids", function()
    mt.refuses_malformed()
    mt.refuses_reused("rep-from", "rep-into", 113)
  end)
end)

-- ---- segment drops: one coupon per member, two members who are one person

describe("a merge of two members who both got a drop's coupon", function()
  it("keeps both coupons with into; only into's counts as the drop's", function()
    expect(kit.admin():post("/members/tags", { name = "pair" }).status).to_be(201)
    kit.admin():post("/couponkit/members", { prefix = "pair", from = 1, to = 2, tag = "pair" })
    kit.admin():post("/members/segments", { name = "pairs", rule = { tag = "pair" } })
    local t = template({ per_user_limit = 1, audience = "issue_only" })
    local d = kit.admin():post("/couponkit/drop", { template_id = t, segment = "pairs", ref = "c/pairs" }).body.id
    kit.drain()
    expect(kit.query("SELECT user FROM coupons_coupons WHERE drop_id = ? ORDER BY user", d))
      .to_equal({ { user = "pair00001" }, { user = "pair00002" } })
    local before = state()
    expect(merged("pair00002", "pair00001", 130)).to_equal({ coupons = 1, orders = 0, skips = 0 })
    expect(kit.query("SELECT user, seq, drop_id FROM coupons_coupons WHERE template_id = ? ORDER BY seq", t))
      .to_equal({ { user = "pair00001", seq = 1, drop_id = d }, { user = "pair00001", seq = 2 } })
    unmerged("pair00002", "pair00001", 130)
    expect(state()).to_equal(before)
  end)

  it("keeps one skip record when a drop skipped both (each at per_user_limit)", function()
    local t = template({ per_user_limit = 1, audience = "issue_only" })
    kit.admin():post("/coupons/templates/" .. t .. "/issue", { users = { "pair00001", "pair00002" } })
    local d = kit.admin():post("/couponkit/drop", { template_id = t, segment = "pairs", ref = "c/pairs-2" }).body.id
    kit.drain()
    expect(kit.admin():get("/coupons/drops/" .. d).body.skipped).to_be(2)
    local before = state()
    expect(merged("pair00002", "pair00001", 131)).to_equal({ coupons = 2, orders = 0, skips = 1 })
    expect(kit.query("SELECT user FROM coupons_drop_skips WHERE drop_id = ?", d)).to_equal({ { user = "pair00001" } })
    expect(unmerged("pair00002", "pair00001", 131)).to_equal({ coupons = 2, orders = 0, skips = 1 })
    expect(state()).to_equal(before)
  end)
end)

-- ---- the undo

describe("member_unmerge", function()
  it("restores exactly the state before the merge", function()
    local a = template({ per_user_limit = 3 })
    local b = template({ per_user_limit = 2 })
    claimed("un-into", a)
    claimed("un-from", a)
    claimed("un-from", a)
    claimed("un-from", b)
    lock("un-from", claimed("un-from", b), "order-un-1")
    local before = state()
    expect(merged("un-from", "un-into", 140)).to_equal({ coupons = 4, orders = 1, skips = 0 })
    expect(kit.query("SELECT count(*) AS n FROM coupons_coupons WHERE user = 'un-from'")[1].n).to_be(0)
    expect(unmerged("un-from", "un-into", 140)).to_equal({ coupons = 4, orders = 1, skips = 0 })
    expect(state()).to_equal(before)
    -- forgotten: a second undo does nothing, and so does one of a merge never made
    expect(unmerged("un-from", "un-into", 140)).to_equal({ coupons = 0, orders = 0, skips = 0 })
    expect(unmerged("x-from", "x-into", 141)).to_equal({ coupons = 0, orders = 0, skips = 0 })
    expect(state()).to_equal(before)
  end)

  it("keeps into's later activity with into: its new coupons, and a moved coupon its order used", function()
    local t = template({ per_user_limit = 4 })
    local i1 = claimed("la-into", t)
    local f1 = claimed("la-from", t)
    local f2 = claimed("la-from", t)
    merged("la-from", "la-into", 142)
    local i2 = claimed("la-into", t)                    -- after the merge: seq 4
    lock("la-into", f2, "order-la-1")                   -- into's order takes one of from's coupons
    expect(unmerged("la-from", "la-into", 142)).to_equal({ coupons = 1, orders = 0, skips = 0 })
    expect(kit.query("SELECT id, user, seq FROM coupons_coupons WHERE template_id = ? ORDER BY id", t))
      .to_equal({ { id = i1, user = "la-into", seq = 1 }, { id = f1, user = "la-from", seq = 1 },
                  { id = f2, user = "la-into", seq = 3 }, { id = i2, user = "la-into", seq = 4 } })
    expect(kit.query("SELECT user FROM coupons_orders WHERE order_id = 'order-la-1'"))
      .to_equal({ { user = "la-into" } })
    -- into's numbers have a gap now (1, 3, 4): the limit counts its 3 coupons, the next takes 5
    expect(claim("la-into", t).status).to_be(201)
    expect(numbers("la-into", t)).to_equal({ { seq = 1, day_seq = 1 }, { seq = 3, day_seq = 3 },
                                             { seq = 4, day_seq = 4 }, { seq = 5, day_seq = 5 } })
    expect(claim("la-into", t)).to_be_error(409, "limit_reached")
    expect(claim("la-from", t).status).to_be(201)
    expect(numbers("la-from", t)).to_equal({ { seq = 1, day_seq = 1 }, { seq = 2, day_seq = 2 } })
  end)

  it("gives a coupon the next free numbers when from holds its old ones again", function()
    local t = template({ per_user_limit = 3, audience = "issue_only" })
    local issue = function(user) kit.admin():post("/coupons/templates/" .. t .. "/issue", { users = { user } }) end
    issue("fr-from")
    merged("fr-from", "fr-into", 143)
    issue("fr-from")                                    -- an issue naming the old id after the merge
    expect(unmerged("fr-from", "fr-into", 143)).to_equal({ coupons = 1, orders = 0, skips = 0 })
    expect(numbers("fr-from", t)).to_equal({ { seq = 1, day_seq = 1 }, { seq = 2, day_seq = 2 } })
    expect(numbers("fr-into", t)).to_equal({})
  end)
end)

-- ---- through the members plugin

describe("a merge made in the members plugin", function()
  it("moves the coupons, enters from's token as into, and an undo moves them back", function()
    local t = template({ per_user_limit = 1 })
    kit.admin():post("/couponkit/members", { prefix = "mm", from = 1, to = 2, tag = "pair" })
    claimed("mm00002", t)
    local before = state()
    local m = kit.admin():post("/members/merges", { from = "mm00002", into = "mm00001" })
    expect(m.status).to_be(201)
    expect(m.body.moved.coupons).to_equal({ coupons = 1, orders = 0, skips = 0 })
    -- from's token now enters as into, who holds the coupon and cannot take another
    expect(kit.user("mm00002"):get("/coupons/mine").body.items[1].user).to_be("mm00001")
    expect(claim("mm00002", t)).to_be_error(409, "limit_reached")
    expect(claim("mm00001", t)).to_be_error(409, "limit_reached")
    expect(kit.admin():post("/members/merges/" .. m.body.id .. "/undo").status).to_be(200)
    expect(state()).to_equal(before)
  end)

  it("makes an issue naming a merged id give to the survivor, once per person; an erased one is skipped", function()
    kit.admin():post("/couponkit/members", { prefix = "is", from = 1, to = 3, tag = "pair" })
    expect(kit.admin():post("/members/merges", { from = "is00002", into = "is00001" }).status).to_be(201)
    expect(kit.admin():post("/members/is00003/erase").status).to_be(200)
    local t = template({ per_user_limit = 1, audience = "issue_only" })
    local res = kit.admin():post("/coupons/templates/" .. t .. "/issue", { users = { "is00002", "is00001", "is00003" } })
    expect({ res.status, res.body.issued, res.body.skipped, res.body.coupons[1].user })
      .to_equal({ 200, 1, { { user = "is00003", reason = "erased" } }, "is00001" })
    res = kit.admin():post("/coupons/templates/" .. t .. "/issue", { users = { "is00002" } })
    expect(res.body.skipped).to_equal({ { user = "is00001", reason = "limit_reached" } })
    expect(kit.query("SELECT user FROM coupons_coupons WHERE template_id = ?", t)).to_equal({ { user = "is00001" } })
  end)
end)
