-- friend_assist for campaign scripts: campaign_apply creates a friend-assist
-- campaign the first time a ref is seen and changes that same one after, by
-- the PATCH's rules; campaign_withdraw pauses it and lets drives in flight
-- finish. campaign_probe (sdk/testplugins) stands in for the campaign plugin.

kit.plugins {
  catalog = {}, orders = {}, payments = { secret = "friend-assist-test-secret" },
  coupons = {}, friend_assist = {}, campaign_probe = {},
}

local HOUR, DAY = 3600, 86400
local REF = "double11/friend_assist/1"

local function apply(ref, settings)
  return kit.admin():post("/campaign_probe/apply", { plugin = "friend_assist", ref = ref, settings = settings })
end

local function withdraw(ref)
  return kit.admin():post("/campaign_probe/withdraw", { plugin = "friend_assist", ref = ref })
end

---Settings of "3 friends in an hour for a code" for a week, overridden by extra.
local function settings(extra)
  local now = kit.now()
  local s = { name = "Invite 3 friends", reward = { kind = "code", code = "GIFT-10" }, friends_needed = 3,
              drive_seconds = HOUR, starts_at = now, ends_at = now + 7 * DAY }
  for k, v in pairs(extra or {}) do s[k] = v end
  return s
end

local function assist_campaign(id)
  return kit.admin():get("/friend_assist/campaigns/" .. id).body
end

local function count_campaigns()
  return kit.query("SELECT count(*) AS n FROM friend_assist_campaigns")[1].n
end

local function item_id(ref)
  return kit.query("SELECT assist_campaign_id FROM friend_assist_campaign_items WHERE ref = ?", ref)[1]
    .assist_campaign_id
end

describe("campaign_apply", function()
  it("creates the campaign the first time a ref is seen, with a one-line summary", function()
    local now = kit.now()
    local res = apply(REF, settings())
    expect(res.status).to_be(200)
    local id = res.body.id
    expect(res.body).to_equal({ id = id, summary = ('friend assist #%d "Invite 3 friends": 3 friends in 1 h for code GIFT-10'):format(id),
                                opens_at = now, closes_at = now + 7 * DAY })
    local c = assist_campaign(id)
    expect({ c.status, c.friends_needed, c.drives_per_user, c.reward }).to_equal({ "active", 3, 1,
      { kind = "code", code = "GIFT-10" } })
    expect(kit.query("SELECT ref, assist_campaign_id, campaign FROM friend_assist_campaign_items"))
      .to_equal({ { ref = REF, assist_campaign_id = id, campaign = "campaign_probe" } })
  end)

  it("changes that same campaign when the ref comes again, never a second one", function()
    local id, before = item_id(REF), count_campaigns()
    local tid = kit.admin():post("/coupons/templates", { name = "¥10 off", kind = "fixed", amount_off_fen = 1000,
      valid_days = 7, total_quantity = 10 }).body.id
    local res = apply(REF, settings({ friends_needed = 1, drive_seconds = 5400, drives_per_user = 2,
      reward = { kind = "coupon", template_id = tid } }))
    expect(res.body.id).to_be(id)
    expect(res.body.summary)
      .to_be(('friend assist #%d "Invite 3 friends": 1 friend in 90 min for coupon template #%d'):format(id, tid))
    -- what the script no longer says goes back to its default
    kit.advance(60)
    local s = settings()
    s.starts_at = nil
    res = apply(REF, s)
    local c = assist_campaign(id)
    expect({ c.friends_needed, c.drives_per_user, c.reward.kind }).to_equal({ 3, 1, "code" })
    expect(c.starts_at).to_be(kit.now() - 60)   -- but a start it leaves out stays where it was
    expect(res.body.summary).to_be(('friend assist #%d "Invite 3 friends": 3 friends in 1 h for code GIFT-10'):format(id))
    expect(count_campaigns()).to_be(before)
  end)

  it("refuses a key it does not know, naming it and what was probably meant", function()
    local before = count_campaigns()
    local err = expect(apply("double11/friend_assist/2", settings({ friends = 2 }))).to_be_error(400, "invalid_field")
    expect({ err.details, err.message }).to_equal({ { field = "friends" },
      "friends is not a known field; did you mean 'friends_needed'?" })
    err = expect(apply("double11/friend_assist/2", settings({ status = "paused" }))).to_be_error(400, "invalid_field")
    expect(err.details).to_equal({ field = "status" })
    expect(count_campaigns()).to_be(before)
  end)

  it("passes every refusal of the admin routes through, naming the field", function()
    local before = count_campaigns()
    for _, case in ipairs({
      { { friends_needed = 0 }, "friends_needed" },
      { { drive_seconds = 59 }, "drive_seconds" },
      { { reward = { kind = "cash" } }, "reward.kind" },
      { { reward = { kind = "code" } }, "reward.code" },
      { { ends_at = kit.now() - 1, starts_at = kit.now() - 10 }, "ends_at" },
      { { name = "" }, "name" },
    }) do
      local err = expect(apply("double11/friend_assist/3", settings(case[1]))).to_be_error(400, "invalid_field")
      expect({ case[2], err.details }).to_equal({ case[2], { field = case[2] } })
    end
    expect(count_campaigns()).to_be(before)
  end)
end)

describe("campaign_withdraw", function()
  it("pauses the campaign, lets a drive in flight complete, and a second apply resumes it", function()
    local id = item_id(REF)
    local share = kit.user("ann"):post("/friend_assist/campaigns/" .. id .. "/drives").body.share_id
    expect(withdraw(REF).body).to_equal({ withdrawn = true })
    expect(assist_campaign(id).status).to_be("paused")
    expect(kit.user("ben"):post("/friend_assist/campaigns/" .. id .. "/drives")).to_be_error(409, "campaign_paused")
    for _, friend in ipairs({ "f1", "f2", "f3" }) do
      expect(kit.user(friend):post("/friend_assist/drives/" .. share .. "/assists").status).to_be(201)
    end
    expect(kit.query("SELECT state FROM friend_assist_drives WHERE share_id = ?", share)[1].state).to_be("completed")

    expect(apply(REF, settings({ starts_at = assist_campaign(id).starts_at })).body.id).to_be(id)
    expect(assist_campaign(id).status).to_be("active")
    expect(kit.user("ben"):post("/friend_assist/campaigns/" .. id .. "/drives").status).to_be(201)
  end)

  it("answers false for a ref it does not know", function()
    expect(withdraw("double11/friend_assist/99").body).to_equal({ withdrawn = false })
  end)
end)
