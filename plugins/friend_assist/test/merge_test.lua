-- friend_assist: merging members. The members plugin calls member_merge(from,
-- into, merge_id) and member_unmerge with tp.call inside its transaction; the
-- test-only plugin sdk/testplugins/merger does the same from an admin route.
-- from's drives, assists and rewards become into's; drives_per_user counts
-- both ids' drives and the per-friend and per-day counters are summed, so the
-- person can never have a rule twice; an undo moves back exactly what moved.

kit.plugins { friend_assist = {}, merger = {} }

local HOUR, DAY = 3600, 86400

local function campaign(fields)
  local body = { name = "Invite friends", reward = { kind = "code", code = "GIFT-10" },
                 friends_needed = 2, drive_seconds = HOUR, ends_at = kit.now() + 30 * DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/friend_assist/campaigns", body)
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

local function assisted(friend, share)
  local res = assist(friend, share)
  assert(res.status == 201, friend .. " assist: " .. tostring(res.status))
  return res.body
end

local function drive(share)
  return kit.query("SELECT initiator, seq, assists, state FROM friend_assist_drives WHERE share_id = ?", share)[1]
end

local function friends_of(share)
  local out = {}
  for i, r in ipairs(kit.query([[SELECT a.friend FROM friend_assist_assists a
      JOIN friend_assist_drives d ON d.id = a.drive_id WHERE d.share_id = ? ORDER BY a.id]], share)) do
    out[i] = r.friend
  end
  return out
end

local TABLES = { "friend_assist_drives ORDER BY id", "friend_assist_assists ORDER BY id",
  "friend_assist_friends ORDER BY campaign_id, friend", "friend_assist_daily ORDER BY campaign_id, friend, day",
  "friend_assist_rewards ORDER BY drive_id" }

local function snapshot()
  local out = {}
  for i, t in ipairs(TABLES) do out[i] = kit.query("SELECT * FROM " .. t) end
  return out
end

local mt = require("tp.mergetest").new { plugin = "friend_assist", state = snapshot }

local function merge(from, into, merge_id) return mt.call("merge", from, into, merge_id) end
local function unmerge(from, into, merge_id) return mt.call("unmerge", from, into, merge_id) end

describe("member_merge", function()
  it("gives into from's drives, numbered after hers, and counts both against drives_per_user", function()
    local c = campaign({ drives_per_user = 2 })
    local f = share_id("dr-from", c)
    local i = share_id("dr-into", c)
    local res = merge("dr-from", "dr-into", 1)
    expect(res.status).to_be(200)
    expect(res.body.moved).to_equal({ drives = 1, assists = 0, rewards = 0, counters = 0 })
    expect({ drive(i).initiator, drive(i).seq }).to_equal({ "dr-into", 1 })
    expect({ drive(f).initiator, drive(f).seq }).to_equal({ "dr-into", 2 })
    expect(#kit.user("dr-into"):get("/friend_assist/me/drives").body.items).to_be(2)
    expect(#kit.user("dr-from"):get("/friend_assist/me/drives").body.items).to_be(0)
    -- the share link of from's drive is the person's: she sees it as its initiator
    expect(kit.user("dr-into"):get("/friend_assist/drives/" .. f).body.you).to_equal({ initiator = true,
                                                                                      assisted = false })
    kit.advance(HOUR)                            -- both drives expire: none open to answer with
    local again = expect(start("dr-into", c)).to_be_error(409, "drive_limit_reached")
    expect(again.details).to_equal({ drives_per_user = 2 })
  end)

  it("sums the per-friend counter: a friend who used K assists under both ids cannot assist again", function()
    local c = campaign({ assists_per_friend = 2, friends_needed = 3 })
    local d1, d2, d3 = share_id("k-t1", c), share_id("k-t2", c), share_id("k-t3", c)
    assisted("k-from", d1)
    assisted("k-into", d2)
    expect(merge("k-from", "k-into", 2).body.moved).to_equal({ drives = 0, assists = 1, rewards = 0, counters = 2 })
    local res = expect(assist("k-into", d3)).to_be_error(409, "assist_limit_reached")
    expect(res.details).to_equal({ assists_per_friend = 2 })
    expect(kit.query("SELECT assists FROM friend_assist_friends WHERE campaign_id = ? AND friend = ?", c, "k-into"))
      .to_equal({ { assists = 2 } })
    -- and she cannot assist again a drive she assisted under the other id
    expect(assist("k-into", d1)).to_be_error(409, "already_assisted")
  end)

  it("sums the day's counter: with friend_once_per_day, from's assist today is the person's", function()
    local c = campaign({ friend_once_per_day = true, assists_per_friend = 5, friends_needed = 3 })
    local d1, d2 = share_id("day-t1", c), share_id("day-t2", c)
    assisted("day-from", d1)
    merge("day-from", "day-into", 3)
    expect(assist("day-into", d2)).to_be_error(409, "assisted_today")
    kit.advance(DAY)
    local d3 = share_id("day-t3", c)
    expect(assist("day-into", d3).status).to_be(201)
  end)

  it("keeps the survivor's assist when both ids assisted one drive; the drive keeps its count", function()
    local c = campaign({ friends_needed = 3 })
    local d = share_id("both-t", c)
    assisted("both-from", d)
    assisted("both-into", d)
    expect(merge("both-from", "both-into", 4).body.moved).to_equal({ drives = 0, assists = 0, rewards = 0,
                                                                     counters = 2 })
    expect(friends_of(d)).to_equal({ "both-into" })
    expect(drive(d)).to_equal({ initiator = "both-t", seq = 1, assists = 2, state = "open" })
    expect(assist("both-into", d)).to_be_error(409, "already_assisted")
  end)

  it("keeps an assist one id gave the other's drive, and the reward of a completed drive", function()
    local c = campaign({ friends_needed = 2, assists_per_friend = 3 })
    local f = share_id("own-from", c)
    local i = share_id("own-into", c)
    assisted("own-into", f)
    assisted("own-x", f)                         -- from's drive completes: its reward is from's
    assisted("own-from", i)
    expect(merge("own-from", "own-into", 5).body.moved).to_equal({ drives = 1, assists = 1, rewards = 1,
                                                                   counters = 2 })
    expect(drive(f)).to_equal({ initiator = "own-into", seq = 2, assists = 2, state = "completed" })
    expect(drive(i)).to_equal({ initiator = "own-into", seq = 1, assists = 1, state = "open" })
    expect(friends_of(i)).to_equal({ "own-into" })
    expect(kit.query("SELECT user, code FROM friend_assist_rewards r JOIN friend_assist_drives d ON d.id = r.drive_id WHERE d.share_id = ?", f))
      .to_equal({ { user = "own-into", code = "GIFT-10" } })
    local mine = kit.user("own-into"):get("/friend_assist/me/drives").body.items
    expect(mine[2].granted.code).to_be("GIFT-10")
    -- from now on she cannot assist her own drive
    expect(assist("own-into", i)).to_be_error(409, "self_assist")
  end)

  it("does nothing the second time with the same merge_id", function()
    local c = campaign()
    share_id("tw-from", c)
    expect(merge("tw-from", "tw-into", 6).body.moved.drives).to_be(1)
    mt.again("tw-from", "tw-into", 6, { drives = 0, assists = 0, rewards = 0, counters = 0 })
  end)

  it("refuses what cannot be a merge with 400 invalid_merge, and a merge_id recorded for others too", function()
    mt.refuses_malformed()
    mt.refuses_reused("tw-from", "tw-into", 6)
  end)
end)

-- a person under two ids in one campaign: a drive each (from's completed),
-- each id assisting the other's drive, both assisting a third drive
local function rich(p, k)
  local c = campaign({ friends_needed = 2, drives_per_user = 3, assists_per_friend = k })
  local from, into = p .. "-from", p .. "-into"
  local f = share_id(from, c)
  local i = share_id(into, c)
  local t = share_id(p .. "-t", c)
  assisted(from, t)
  assisted(into, t)                              -- t completes
  assisted(into, f)
  assisted(p .. "-x", f)                         -- f completes: from's reward
  assisted(from, i)
  return c, from, into, f, i, t
end

describe("member_unmerge", function()
  it("restores exactly the state before the merge", function()
    local _, from, into = rich("un", 3)
    local before = snapshot()
    expect(merge(from, into, 20).body.moved).to_equal({ drives = 1, assists = 1, rewards = 1, counters = 2 })
    expect(kit.query("SELECT count(*) AS n FROM friend_assist_drives WHERE initiator = ?", from)[1].n).to_be(0)
    expect(unmerge(from, into, 20).body.moved).to_equal({ drives = 1, assists = 2, rewards = 1, counters = 2 })
    expect(snapshot()).to_equal(before)
    expect(kit.query("SELECT count(*) AS n FROM friend_assist_merge_moves WHERE merge_id = 20")[1].n).to_be(0)
    expect(kit.query("SELECT count(*) AS n FROM friend_assist_merges WHERE merge_id = 20")[1].n).to_be(0)
    -- once: a second undo, or one of an unknown merge, does nothing
    expect(unmerge(from, into, 20).body.moved).to_equal({ drives = 0, assists = 0, rewards = 0, counters = 0 })
    expect(unmerge(from, into, 999).body.moved).to_equal({ drives = 0, assists = 0, rewards = 0, counters = 0 })
    expect(snapshot()).to_equal(before)
  end)

  it("takes away the counters the merge gave into when she had none", function()
    local c = campaign({ friend_once_per_day = true })
    assisted("nc-from", share_id("nc-t", c))
    local before = snapshot()
    expect(merge("nc-from", "nc-into", 22).body.moved.counters).to_be(2)
    expect(unmerge("nc-from", "nc-into", 22).body.moved.counters).to_be(2)
    expect(snapshot()).to_equal(before)
    expect(kit.query("SELECT count(*) AS n FROM friend_assist_daily WHERE friend = 'nc-into'")[1].n).to_be(0)
  end)

  it("leaves what into did after the merge with into", function()
    local c, from, into, f, i, t = rich("lt", 10)
    merge(from, into, 21)
    kit.advance(HOUR)                            -- her drives close: the next start is a new one
    local later = share_id(into, c)              -- her third drive (of 3): seq 3
    local other = share_id("lt-y", c)
    assisted(into, other)
    expect(drive(later).seq).to_be(3)
    expect(start(into, c).status).to_be(200)     -- her open drive, not a fourth
    unmerge(from, into, 21)
    expect({ drive(f).initiator, drive(f).seq }).to_equal({ from, 1 })
    expect({ drive(i).initiator, drive(i).seq }).to_equal({ into, 1 })
    expect({ drive(later).initiator, drive(later).seq }).to_equal({ into, 3 })
    expect(friends_of(t)).to_equal({ from, into })
    expect(friends_of(i)).to_equal({ from })
    expect(friends_of(other)).to_equal({ into })
    expect(kit.query("SELECT friend, assists FROM friend_assist_friends WHERE campaign_id = ? ORDER BY friend", c))
      .to_equal({ { friend = from, assists = 2 }, { friend = into, assists = 3 }, { friend = "lt-x", assists = 1 } })
    expect(kit.query("SELECT user FROM friend_assist_rewards WHERE user IN (?, ?)", from, into))
      .to_equal({ { user = from } })
    -- her next drive takes the number after her highest, past the gap the undo left
    kit.advance(HOUR)
    local next_one = start(into, c)
    expect(next_one.status).to_be(201)
    expect(drive(next_one.body.share_id).seq).to_be(4)
  end)

  it("skips what a later merge moved on", function()
    local c = campaign({ drives_per_user = 3 })
    local a = share_id("ch-a", c)
    share_id("ch-b", c)
    merge("ch-a", "ch-b", 30)
    merge("ch-b", "ch-c", 31)
    expect(unmerge("ch-a", "ch-b", 30).body.moved.drives).to_be(0)
    expect(drive(a).initiator).to_be("ch-c")
  end)
end)
