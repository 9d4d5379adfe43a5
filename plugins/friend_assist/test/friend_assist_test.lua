-- friend_assist: drives, assists, the single reward, refusals, frozen rules and expiry,
-- with orders (new users), payments (to make a user not new) and coupons (coupon rewards) enabled.
-- The kit is sequential: races are covered by the conditional statements (lib/assist.lua),
-- not by these tests.

kit.plugins {
  catalog = {}, orders = {}, payments = { secret = "friend-assist-test-secret" },
  coupons = {}, friend_assist = {},
}

local HOUR, DAY = 3600, 86400

---Creates a campaign (a reward code, 3 friends, an hour per drive, a week) with fields over it.
local function campaign(fields)
  local body = { name = "Invite 3 friends", reward = { kind = "code", code = "GIFT-10" },
                 friends_needed = 3, drive_seconds = HOUR, ends_at = kit.now() + 7 * DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  return kit.admin():post("/friend_assist/campaigns", body)
end

local function campaign_id(fields)
  local res = campaign(fields)
  assert(res.status == 201, "campaign: " .. tostring(res.status))
  return res.body.id
end

local function start(user, id)
  return kit.user(user):post("/friend_assist/campaigns/" .. id .. "/drives")
end

local function share_id(user, id)
  local res = start(user, id)
  assert(res.status == 201, "start: " .. tostring(res.status))
  return res.body.share_id
end

local function assist(friend, share)
  return kit.user(friend):post("/friend_assist/drives/" .. share .. "/assists")
end

local function code_of(res) return res.body.error and res.body.error.code end

local function rewards_of(user)
  return kit.query("SELECT drive_id, kind, code FROM friend_assist_rewards WHERE user = ?", user)
end

describe("creating a campaign", function()
  it("answers 201 with the rules and their defaults", function()
    local res = campaign()
    expect(res.status).to_be(201)
    expect(res.body.reward).to_equal({ kind = "code", code = "GIFT-10" })
    expect(res.body.friends_needed).to_be(3)
    expect(res.body.starts_at).to_be(kit.now())
    expect(res.body.drives_per_user).to_be(1)
    expect(res.body.assists_per_friend).to_be(1)
    expect(res.body.new_users_only).to_be(false)
    expect(res.body.friend_once_per_day).to_be(false)
    expect(res.body.status).to_be("active")
    expect(res.body.drives).to_equal({ open = 0, completed = 0, expired = 0 })
  end)

  it("refuses each broken rule with 400 invalid_field naming it, writing nothing", function()
    local before = kit.query("SELECT count(*) AS n FROM friend_assist_campaigns")[1].n
    local cases = {
      { { friends_needed = 0 }, "friends_needed" },
      { { friends_needed = 101 }, "friends_needed" },
      { { friends_needed = 2.5 }, "friends_needed" },
      { { drive_seconds = 59 }, "drive_seconds" },
      { { assists_per_friend = 0 }, "assists_per_friend" },
      { { drives_per_user = 101 }, "drives_per_user" },
      { { ends_at = kit.now() - 1, starts_at = kit.now() - 10 }, "ends_at" },
      { { starts_at = kit.now() + 10, ends_at = kit.now() + 5 }, "ends_at" },
      { { name = "" }, "name" },
      { { new_users_only = "yes" }, "new_users_only" },
      { { reward = { kind = "cash" } }, "reward.kind" },
      { { reward = { kind = "code" } }, "reward.code" },
      { { reward = { kind = "code", code = "A", points = 5 } }, "reward.points" },
      { { reward = { kind = "points", points = 0 } }, "reward.points" },
      { { reward = "GIFT" }, "reward" },
      { { bonus = 1 }, "bonus" },
    }
    for _, case in ipairs(cases) do
      local res = campaign(case[1])
      expect(res.status).to_be(400)
      expect(res.body.error.code).to_be("invalid_field")
      expect(res.body.error.details).to_equal({ field = case[2] })
    end
    expect(kit.admin():post("/friend_assist/campaigns", { 1, 2 }).body.error.code).to_be("invalid_body")
    expect(kit.query("SELECT count(*) AS n FROM friend_assist_campaigns")[1].n).to_be(before)
  end)

  it("accepts a coupon reward now that coupons exports issue", function()
    local res = campaign({ reward = { kind = "coupon", template_id = 1 } })
    expect(res.status).to_be(201)
    expect(res.body.reward).to_equal({ kind = "coupon", template_id = 1 })
  end)
end)

describe("a drive that completes", function()
  local id, share
  it("starts with a share id and an hour on the clock", function()
    id = campaign_id()
    local res = start("alice", id)
    expect(res.status).to_be(201)
    share = res.body.share_id
    expect(share).to_match("^%x+$")
    expect(#share).to_be(16)
    expect(res.body.state).to_be("open")
    expect(res.body.seconds_left).to_be(HOUR)
    expect(res.body.expires_at).to_be(kit.now() + HOUR)
    expect(res.body.rules.friends_needed).to_be(3)
  end)

  it("gives the open drive back on a second start instead of spending another", function()
    local res = start("alice", id)
    expect(res.status).to_be(200)
    expect(res.body.share_id).to_be(share)
  end)

  it("counts assists below N without completing", function()
    kit.advance(60)
    local res = assist("bob", share)
    expect(res.status).to_be(201)
    expect(res.body.completed).to_be(false)
    expect(res.body.drive.assists).to_be(1)
    res = assist("carol", share)
    expect(res.body.drive.remaining).to_be(1)
    expect(res.body.drive.state).to_be("open")
    expect(#rewards_of("alice")).to_be(0)
  end)

  it("shows strangers progress, masked assisters and the seconds left", function()
    local res = kit.anon():get("/friend_assist/drives/" .. share)
    expect(res.status).to_be(200)
    expect(res.body.initiator).to_be("a***e")
    expect(res.body.assists).to_be(2)
    expect(res.body.friends_needed).to_be(3)
    expect(res.body.seconds_left).to_be(HOUR - 60)
    expect(res.body.assisters).to_equal({
      { user = "b***b", assisted_at = kit.now() }, { user = "c***l", assisted_at = kit.now() } })
    expect(res.body.reward).to_equal({ kind = "code" })   -- the code itself is the initiator's
    expect(res.body.you).to_be_nil()
    expect(kit.user("bob"):get("/friend_assist/drives/" .. share).body.you)
      .to_equal({ initiator = false, assisted = true })
  end)

  it("completes at exactly the N-th assist and grants the reward once", function()
    local res = assist("dave", share)
    expect(res.status).to_be(201)
    expect(res.body.completed).to_be(true)
    expect(res.body.drive.state).to_be("completed")
    expect(res.body.drive.seconds_left).to_be(0)
    local rewards = rewards_of("alice")
    expect(#rewards).to_be(1)
    expect(rewards[1].code).to_be("GIFT-10")
  end)

  it("refuses an assist after completion and still holds one reward", function()
    local res = assist("erin", share)
    expect(res.status).to_be(409)
    expect(code_of(res)).to_be("drive_completed")
    expect(#rewards_of("alice")).to_be(1)
    expect(kit.query("SELECT assists FROM friend_assist_drives WHERE share_id = ?", share)[1].assists).to_be(3)
  end)

  it("cancels the expiry job: the drive stays completed past its deadline", function()
    expect(#kit.query("SELECT id FROM _tp_jobs WHERE plugin = 'friend_assist' AND key LIKE 'drive:%'")).to_be(0)
    kit.advance(2 * HOUR)
    local res = kit.user("alice"):get("/friend_assist/me/drives")
    expect(res.body.items[1].state).to_be("completed")
    expect(res.body.items[1].granted.code).to_be("GIFT-10")
    expect(res.body.items[1].granted.kind).to_be("code")
  end)

  it("does not start a second drive past drives_per_user", function()
    local res = start("alice", id)
    expect(res.status).to_be(409)
    expect(code_of(res)).to_be("drive_limit_reached")
  end)
end)

describe("refusals", function()
  it("refuses the initiator and a second assist by the same friend", function()
    local share = share_id("frank", campaign_id())
    local res = assist("frank", share)
    expect(res.status).to_be(409)
    expect(code_of(res)).to_be("self_assist")
    expect(assist("gina", share).status).to_be(201)
    res = assist("gina", share)
    expect(code_of(res)).to_be("already_assisted")
    expect(kit.anon():get("/friend_assist/drives/" .. share).body.assists).to_be(1)
  end)

  it("refuses a friend past K assists in the campaign, and counts nothing for it", function()
    local id = campaign_id({ assists_per_friend = 2 })
    local a, b, c = share_id("k1", id), share_id("k2", id), share_id("k3", id)
    expect(assist("helper", a).status).to_be(201)
    expect(assist("helper", b).status).to_be(201)
    local res = assist("helper", c)
    expect(res.status).to_be(409)
    expect(code_of(res)).to_be("assist_limit_reached")
    expect(res.body.error.details).to_equal({ assists_per_friend = 2 })
    expect(kit.query([[SELECT assists FROM friend_assist_friends WHERE campaign_id = ? AND friend = 'helper']],
      id)[1].assists).to_be(2)
    expect(kit.anon():get("/friend_assist/drives/" .. c).body.assists).to_be(0)
  end)

  it("with friend_once_per_day, refuses a second drive the same local day, not the next", function()
    local id = campaign_id({ assists_per_friend = 5, friend_once_per_day = true })
    local a, b = share_id("d1", id), share_id("d2", id)
    expect(assist("daily", a).status).to_be(201)
    local res = assist("daily", b)
    expect(code_of(res)).to_be("assisted_today")
    expect(kit.anon():get("/friend_assist/drives/" .. b).body.assists).to_be(0)
    kit.advance(DAY)   -- the next local day (b's hour is over by then)
    expect(code_of(assist("daily", b))).to_be("drive_expired")
    local c = share_id("d3", id)
    expect(assist("daily", c).status).to_be(201)
  end)

  it("without friend_once_per_day, one friend may assist two drives in a day", function()
    local id = campaign_id({ assists_per_friend = 5 })
    expect(assist("busy", share_id("e1", id)).status).to_be(201)
    expect(assist("busy", share_id("e2", id)).status).to_be(201)
  end)

  it("with new_users_only, refuses a friend who has paid an order", function()
    local product = kit.admin():post("/catalog/products", { name = "Tea", skus = {
      { code = "TEA-1", title = "Tea", price_fen = 1990, stock = 10 } } })
    expect(product.status).to_be(201)
    local order = kit.user("regular"):post("/orders", { lines = { { sku = "TEA-1", qty = 1 } } })
    expect(order.status).to_be(201)
    expect(kit.admin():post("/payments/simulate", { order_id = order.body.id }).status).to_be(200)
    kit.drain()
    local share = share_id("n1", campaign_id({ new_users_only = true }))
    local res = assist("regular", share)
    expect(res.status).to_be(409)
    expect(code_of(res)).to_be("new_users_only")
    expect(assist("newcomer", share).status).to_be(201)
  end)

  it("refuses an assist once the drive has expired", function()
    local share = share_id("x1", campaign_id())
    expect(assist("early", share).status).to_be(201)
    kit.advance(HOUR)
    local res = assist("late", share)
    expect(res.status).to_be(409)
    expect(code_of(res)).to_be("drive_expired")
  end)

  it("refuses starts outside the campaign window and assists after it ends", function()
    local now = kit.now()
    local id = campaign_id({ starts_at = now + HOUR, ends_at = now + 2 * HOUR, drive_seconds = 3 * HOUR })
    local res = start("w1", id)
    expect(code_of(res)).to_be("campaign_not_started")
    kit.advance(HOUR)
    res = start("w1", id)
    expect(res.status).to_be(201)
    expect(res.body.expires_at).to_be(now + 2 * HOUR)   -- capped by the campaign's end
    local share = res.body.share_id
    kit.advance(HOUR)
    expect(code_of(assist("w2", share))).to_be("campaign_ended")
    expect(code_of(start("w3", id))).to_be("campaign_ended")
  end)

  it("refuses a paused campaign and an unknown drive", function()
    local id = campaign_id()
    expect(kit.admin():patch("/friend_assist/campaigns/" .. id, { status = "paused" }).status).to_be(200)
    expect(code_of(start("p1", id))).to_be("campaign_paused")
    local res = assist("p2", "0123456789abcdef")
    expect(res.status).to_be(404)
    expect(code_of(res)).to_be("drive_not_found")
  end)
end)

describe("frozen rules", function()
  it("keeps a started drive on its rules after an admin PATCH", function()
    local id = campaign_id({ friends_needed = 2 })
    local old = share_id("f1", id)
    local res = kit.admin():patch("/friend_assist/campaigns/" .. id,
      { friends_needed = 1, drive_seconds = 2 * HOUR, reward = { kind = "points", points = 500 } })
    expect(res.status).to_be(200)
    expect(res.body.friends_needed).to_be(1)
    expect(res.body.reward).to_equal({ kind = "points", points = 500 })
    -- the old drive still needs two and still expires an hour after its start
    res = assist("g1", old)
    expect(res.body.completed).to_be(false)
    expect(res.body.drive.friends_needed).to_be(2)
    expect(res.body.drive.seconds_left).to_be(HOUR)
    expect(assist("g2", old).body.completed).to_be(true)
    expect(kit.query("SELECT kind, code, points FROM friend_assist_rewards WHERE user = 'f1'"))
      .to_equal({ { kind = "code", code = "GIFT-10" } })
    -- a new drive takes the new rules
    local new = start("f2", id)
    expect(new.body.friends_needed).to_be(1)
    expect(new.body.seconds_left).to_be(2 * HOUR)
    expect(assist("g3", new.body.share_id).body.completed).to_be(true)
    expect(kit.query("SELECT kind, points FROM friend_assist_rewards WHERE user = 'f2'"))
      .to_equal({ { kind = "points", points = 500 } })
  end)

  it("refuses a PATCH that breaks a rule, changing nothing", function()
    local id = campaign_id()
    local res = kit.admin():patch("/friend_assist/campaigns/" .. id, { friends_needed = 0 })
    expect(res.status).to_be(400)
    expect(res.body.error.details).to_equal({ field = "friends_needed" })
    res = kit.admin():patch("/friend_assist/campaigns/" .. id, { ends_at = kit.now() - 10 * DAY })
    expect(res.body.error.details).to_equal({ field = "ends_at" })
    expect(kit.admin():get("/friend_assist/campaigns/" .. id).body.friends_needed).to_be(3)
    expect(kit.admin():patch("/friend_assist/campaigns/999", { name = "x" }).status).to_be(404)
  end)
end)

describe("the expiry job", function()
  it("closes an open drive at its deadline, not before, and only once", function()
    local id = campaign_id()
    local share = share_id("late_starter", id)
    local drive = kit.query("SELECT id FROM friend_assist_drives WHERE share_id = ?", share)[1].id
    local jobs = kit.query("SELECT due_ms FROM _tp_jobs WHERE plugin = 'friend_assist' AND key = ?",
      "drive:" .. drive)
    expect(#jobs).to_be(1)
    expect(jobs[1].due_ms).to_be((kit.now() + HOUR) * 1000)
    kit.advance(HOUR - 1)
    expect(kit.query("SELECT state FROM friend_assist_drives WHERE id = ?", drive)[1].state).to_be("open")
    kit.advance(1)
    local row = kit.query("SELECT state, closed_at FROM friend_assist_drives WHERE id = ?", drive)[1]
    expect(row).to_equal({ state = "expired", closed_at = kit.now() })
    expect(#kit.query("SELECT id FROM _tp_jobs WHERE plugin = 'friend_assist' AND key = ?", "drive:" .. drive))
      .to_be(0)
    local res = kit.anon():get("/friend_assist/drives/" .. share)
    expect(res.body.state).to_be("expired")
    expect(res.body.seconds_left).to_be(0)
    local counts = kit.admin():get("/friend_assist/campaigns/" .. id).body.drives
    expect(counts).to_equal({ open = 0, completed = 0, expired = 1 })
    -- with drives_per_user = 1, an expired drive has used the user's start
    expect(code_of(start("late_starter", id))).to_be("drive_limit_reached")
  end)
end)

describe("a coupon reward", function()
  ---A coupon template of total coupons, one per user; returns its id.
  local function template(total)
    local res = kit.admin():post("/coupons/templates", { name = "¥10 off", kind = "fixed", amount_off_fen = 1000,
      valid_days = 7, total_quantity = total })
    assert(res.status == 201, "template: " .. tostring(res.status))
    return res.body.id
  end

  it("is a coupon of the template, issued through coupons when the drive completes", function()
    local tid = template(10)
    local id = campaign_id({ friends_needed = 1, reward = { kind = "coupon", template_id = tid } })
    local share = share_id("cora", id)
    local res = assist("cole", share)
    expect(res.status).to_be(201)
    expect(res.body.completed).to_be(true)
    local drive_id = kit.query("SELECT id FROM friend_assist_drives WHERE share_id = ?", share)[1].id
    local coupons = kit.query([[SELECT id, user, source, issued_for FROM coupons_coupons
      WHERE template_id = ?]], tid)
    expect(#coupons).to_be(1)
    expect({ coupons[1].user, coupons[1].source, coupons[1].issued_for })
      .to_equal({ "cora", "issue", "friend_assist:drive:" .. drive_id })
    expect(kit.query("SELECT coupon_id FROM friend_assist_rewards WHERE drive_id = ?", drive_id))
      .to_equal({ { coupon_id = coupons[1].id } })
    expect(kit.user("cora"):get("/friend_assist/me/drives").body.items[1].granted.coupon_id).to_be(coupons[1].id)
    expect(kit.user("cora"):get("/coupons/mine").body.items[1].id).to_be(coupons[1].id)
  end)

  it("undoes the completing assist when coupons cannot give the coupon", function()
    local tid = template(1)
    local id = campaign_id({ friends_needed = 1, drives_per_user = 2, reward = { kind = "coupon", template_id = tid } })
    expect(assist("dex", share_id("dana", id)).body.completed).to_be(true)
    -- the template's one coupon is gone: the next completing assist is refused and leaves nothing
    local share = share_id("dora", id)
    local err = expect(assist("dex2", share)).to_be_error(409, "reward_unavailable")
    expect(err.details).to_equal({ reason = "insufficient_quantity" })
    local d = kit.query("SELECT state, assists FROM friend_assist_drives WHERE share_id = ?", share)[1]
    expect({ d.state, d.assists }).to_equal({ "open", 0 })
    -- dana holds the template's one-per-user coupon already: skipped by coupons, refused here
    kit.admin():patch("/coupons/templates/" .. tid, { total_quantity = 5 })
    err = expect(assist("dex3", share_id("dana", id))).to_be_error(409, "reward_unavailable")
    expect(err.details).to_equal({ reason = "limit_reached" })
    expect(assist("dex2", share).body.completed).to_be(true)
  end)
end)
