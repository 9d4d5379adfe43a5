-- referral: merging members. The members plugin calls member_merge(from,
-- into, merge_id) and member_unmerge with tp.call inside its transaction; the
-- test-only plugin sdk/testplugins/merger does the same from an admin route.
-- The merged person keeps one distributor record (the stronger status; both
-- codes keep binding), one binding (the survivor's while current), from's team
-- and every fen of from's money; the daily cap counts both ids' earnings;
-- self-links and cycles are dropped; an undo moves back exactly what moved.

local DAY = 86400
local WINDOW = 7 * DAY
local CAP = 300

kit.plugins {
  catalog = {},
  orders = { attribution_plugin = "referral", max_unpaid_orders = 5 },
  payments = { secret = "referral-merge-kit-secret-0123" },
  referral = { level1_rate_bp = 1000, level2_rate_bp = 500, settle_after_seconds = WINDOW,
               min_withdrawal_fen = 100, daily_cap_fen = CAP },
  merger = {},
}

local support = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/support.lua")
local join, code_of, bind_to, bind = support.join, support.code_of, support.bind_to, support.bind
local create, pay, buy, confirm = support.create, support.pay, support.buy, support.confirm
local balance, money, entries, withdraw = support.balance, support.money, support.entries, support.withdraw

local SKU = support.new_sku(1000)      -- level 1 earns 100 fen, level 2 50
local LINE = { { sku = SKU, qty = 1 } }

local function moved(t)
  local all = { distributors = 0, bindings = 0, team = 0, ledger = 0, withdrawals = 0, orders = 0,
                bind_log = 0, daily = 0 }
  for k, v in pairs(t) do all[k] = v end
  return all
end

local function distributor(user)
  local res = kit.admin():get("/referral/distributors/" .. user)
  if res.status == 404 then return nil end
  return { res.body.status, res.body.code }
end

local function referrer_of(user)
  local b = kit.user(user):get("/referral/me").body.binding
  return b ~= kit.null and b.referrer or nil
end

local function team(user)
  local out = {}
  for i, m in ipairs(kit.user(user):get("/referral/team").body.items) do out[i] = m.user end
  table.sort(out)
  return out
end

local TABLES = { "referral_distributors ORDER BY user", "referral_bindings ORDER BY user",
  "referral_bind_log ORDER BY id", "referral_orders ORDER BY order_id", "referral_ledger ORDER BY id",
  "referral_daily ORDER BY user, day", "referral_withdrawals ORDER BY id",
  "referral_merged_codes ORDER BY code" }

local function snapshot()
  local out = {}
  for i, t in ipairs(TABLES) do out[i] = kit.query("SELECT * FROM " .. t) end
  return out
end

local mt = require("tp.mergetest").new { plugin = "referral", state = snapshot }

local function merge(from, into, merge_id) return mt.call("merge", from, into, merge_id) end
local function unmerge(from, into, merge_id) return mt.call("unmerge", from, into, merge_id) end

describe("member_merge", function()
  it("gives the survivor from's distributor record, team, money and withdrawals", function()
    local code = join("mv-from")
    bind("mv-b1", "mv-from")
    local o1 = buy("mv-b1", LINE)
    confirm("mv-b1", o1.id)
    kit.advance(WINDOW)
    local o2 = create("mv-b1", LINE)              -- attributed to mv-from, paid after the merge
    expect(withdraw("mv-from", 100).status).to_be(201)
    expect(balance("mv-from")).to_equal(money(0, 100, 0, 100))
    local res = merge("mv-from", "mv-into", 1)
    expect(res.status).to_be(200)
    expect(res.body.moved).to_equal(moved({ distributors = 1, team = 1, ledger = 1, withdrawals = 1,
                                            orders = 1, bind_log = 1, daily = 1 }))
    expect(distributor("mv-into")).to_equal({ "active", code })
    expect(distributor("mv-from")).to_be_nil()
    expect(team("mv-into")).to_equal({ "mv-b1" })
    expect(referrer_of("mv-b1")).to_be("mv-into")
    expect(balance("mv-into")).to_equal(money(0, 100, 0, 100))
    expect(balance("mv-from")).to_equal(money())
    expect(kit.admin():get("/referral/withdrawals?user=mv-into").body.items[1].amount_fen).to_be(100)
    -- the order keeps the attribution it was created with; its commission goes to the person
    expect(o2.attribution).to_equal({ referrer = "mv-from" })
    pay(o2)
    expect(entries("mv-into", o2.id)).to_equal({ { "commission", 1, 100, "frozen" } })
    expect(kit.query("SELECT buyer, referrer FROM referral_orders WHERE order_id = ?", o2.id))
      .to_equal({ { buyer = "mv-b1", referrer = "mv-into" } })
    -- the code on share links already out binds to the survivor
    bind_to("mv-b2", code)
    expect(referrer_of("mv-b2")).to_be("mv-into")
    local board = kit.admin():get("/referral/leaderboard?by=new_members").body.items
    local mine
    for _, r in ipairs(board) do if r.user == "mv-into" then mine = r.value end end
    expect(mine).to_be(2)
  end)

  it("counts both ids' earnings against the daily cap: the merged person never earns past it", function()
    join("cap-from")
    join("cap-into")
    bind("cap-b1", "cap-from")
    bind("cap-b2", "cap-into")
    bind("cap-b3", "cap-into")
    buy("cap-b1", LINE)
    buy("cap-b1", LINE)                          -- from earned 200 today
    buy("cap-b2", LINE)                          -- into earned 100 today: 300 together, the cap
    expect(merge("cap-from", "cap-into", 2).body.moved)
      .to_equal(moved({ distributors = 1, team = 1, ledger = 2, orders = 2, bind_log = 1, daily = 1 }))
    local o = buy("cap-b3", LINE)
    expect(entries("cap-into", o.id)).to_equal({ { "commission", 1, 0, "frozen" } })
    expect(kit.query("SELECT capped_fen FROM referral_ledger WHERE order_id = ?", o.id)[1].capped_fen).to_be(100)
    expect(balance("cap-into")).to_equal(money(300))
    kit.advance(DAY)                             -- a new local day has room again
    local later = buy("cap-b1", LINE)
    expect(entries("cap-into", later.id)).to_equal({ { "commission", 1, 100, "frozen" } })
  end)

  it("keeps the survivor's record when both are distributors, and both codes bind to her", function()
    local from_code = join("two-from")
    local into_code = join("two-into")
    merge("two-from", "two-into", 3)
    expect(distributor("two-into")).to_equal({ "active", into_code })
    expect(distributor("two-from")).to_be_nil()
    bind_to("two-b1", from_code)
    bind_to("two-b2", into_code)
    expect({ referrer_of("two-b1"), referrer_of("two-b2") }).to_equal({ "two-into", "two-into" })
  end)

  it("keeps the stronger record: an operator's disable sticks to the person", function()
    local from_code = join("dis-from")
    local into_code = join("dis-into")
    expect(kit.admin():patch("/referral/distributors/dis-from", { status = "disabled" }).status).to_be(200)
    expect(merge("dis-from", "dis-into", 4).body.moved.distributors).to_be(1)
    expect(distributor("dis-into")).to_equal({ "disabled", from_code })
    expect(bind_to("dis-b", into_code)).to_be_error(404, "code_not_found")   -- names a disabled distributor
  end)

  it("keeps the survivor's binding when both are bound, and drops from's", function()
    join("bb-p")
    join("bb-q")
    bind("bb-from", "bb-p")
    bind("bb-into", "bb-q")
    expect(merge("bb-from", "bb-into", 5).body.moved).to_equal(moved({ bindings = 1, bind_log = 1 }))
    expect({ referrer_of("bb-into"), referrer_of("bb-from") }).to_equal({ "bb-q", nil })
    expect(team("bb-p")).to_equal({})
    expect(team("bb-q")).to_equal({ "bb-into" })
  end)

  it("drops a binding between the two ids (nobody is her own referrer) and takes from's instead", function()
    join("self-x")
    join("self-from")
    bind("self-from", "self-x")
    bind("self-into", "self-from")               -- the survivor was bound to her other id
    merge("self-from", "self-into", 6)
    expect(referrer_of("self-into")).to_be("self-x")
    expect(kit.query("SELECT count(*) AS n FROM referral_bindings WHERE user = referrer")[1].n).to_be(0)
    expect(kit.query("SELECT count(*) AS n FROM referral_bind_log WHERE user = 'self-into'")[1].n).to_be(1)
  end)

  it("drops the survivor's own binding when her team would become her ancestor (a cycle)", function()
    join("cy-from")
    join("cy-x")
    bind("cy-x", "cy-from")                      -- from -> x
    bind("cy-into", "cy-x")                      -- x -> into
    merge("cy-from", "cy-into", 7)               -- into -> x -> into: into's binding goes
    expect(referrer_of("cy-into")).to_be_nil()
    expect(referrer_of("cy-x")).to_be("cy-into")
    expect(team("cy-into")).to_equal({ "cy-x" })
  end)

  it("pays no commission to the buyer herself when her referrer was her other id", function()
    join("sb-top")
    join("sb-from")
    bind("sb-from", "sb-top")
    bind("sb-into", "sb-from")
    local o = create("sb-into", LINE)            -- attributed to from (level 1) and top (level 2)
    expect(o.attribution).to_equal({ referrer = "sb-from", referrer2 = "sb-top" })
    merge("sb-from", "sb-into", 8)
    pay(o)
    expect(entries("sb-into", o.id)).to_equal({})
    expect(entries("sb-top", o.id)).to_equal({ { "commission", 2, 50, "frozen" } })
  end)

  it("does nothing the second time with the same merge_id", function()
    join("tw-from")
    bind("tw-b", "tw-from")
    buy("tw-b", LINE)
    expect(merge("tw-from", "tw-into", 9).body.moved.ledger).to_be(1)
    mt.again("tw-from", "tw-into", 9, moved({}))
  end)

  it("refuses what cannot be a merge with 400 invalid_merge, and a merge_id recorded for others too", function()
    mt.refuses_malformed()
    mt.refuses_reused("tw-from", "tw-into", 9)
    expect(kit.query("SELECT count(*) AS n FROM referral_merges WHERE merge_id = 10")[1].n).to_be(0)
  end)
end)

-- a person with everything at once under two ids: both distributors, from bound
-- to x, into bound to from, a team under each, commission under each on one
-- day, a pending withdrawal
local function rich(p)
  local from, into, x = p .. "-from", p .. "-into", p .. "-x"
  join(x)
  join(from)
  join(into)
  bind(from, x)
  bind(into, from)
  bind(p .. "-b", from)
  bind(p .. "-c", into)
  local o = buy(p .. "-b", LINE)                 -- from 100, x 50
  confirm(p .. "-b", o.id)
  kit.advance(WINDOW)
  expect(withdraw(from, 100).status).to_be(201)
  buy(into, LINE)                                -- from 100 (level 1), x 50
  buy(p .. "-c", LINE)                           -- into 100 on the same day as from's
  return from, into, x
end

describe("member_unmerge", function()
  it("restores exactly the state before the merge", function()
    local from, into = rich("un")
    local before = snapshot()
    expect(merge(from, into, 20).body.moved).to_equal(moved({ distributors = 1, bindings = 2, team = 1,
      ledger = 3, withdrawals = 1, orders = 3, bind_log = 3, daily = 2 }))
    expect(distributor(from)).to_be_nil()
    expect(unmerge(from, into, 20).body.moved).to_equal(moved({ distributors = 1, bindings = 2, team = 1,
      ledger = 3, withdrawals = 1, orders = 3, bind_log = 3, daily = 2 }))
    expect(snapshot()).to_equal(before)
    expect(kit.query("SELECT count(*) AS n FROM referral_merge_moves WHERE merge_id = 20")[1].n).to_be(0)
    expect(kit.query("SELECT count(*) AS n FROM referral_merges WHERE merge_id = 20")[1].n).to_be(0)
    -- once: a second undo, or one of an unknown merge, does nothing
    expect(unmerge(from, into, 20).body.moved).to_equal(moved({}))
    expect(unmerge(from, into, 999).body.moved).to_equal(moved({}))
    expect(snapshot()).to_equal(before)
  end)

  it("leaves what into did after the merge with into", function()
    local from, into = rich("lt")
    local from_code = code_of(from)
    merge(from, into, 21)
    bind_to("lt-d", from_code)                   -- a new member through from's old link
    local o = buy("lt-d", LINE)                  -- into earns on it, up to the day's cap:
    local cap_left = CAP - 100 - 150             -- into's 100 and from's 150 of today count
    expect(entries(into, o.id)).to_equal({ { "commission", 1, cap_left, "frozen" } })
    kit.advance(DAY)
    local o2 = buy("lt-d", LINE)
    expect(entries(into, o2.id)).to_equal({ { "commission", 1, 100, "frozen" } })
    unmerge(from, into, 21)
    -- from has her own again: record, code, binding, team, money
    expect(distributor(from)).to_equal({ "active", from_code })
    expect({ referrer_of(from), referrer_of(into) }).to_equal({ "lt-x", from })
    expect(team(from)).to_equal({ "lt-b", into })
    expect(balance(from)).to_equal(money(150, 100, 0, 100))
    -- what happened after the merge stays with into
    expect(team(into)).to_equal({ "lt-c", "lt-d" })
    expect(balance(into)).to_equal(money(100 + cap_left + 100))
    -- the day's counters: what was folded goes back, what into earned since stays
    expect(kit.query("SELECT user, earned_fen FROM referral_daily WHERE user IN (?, ?) ORDER BY user, day",
      from, into)).to_equal({ { user = from, earned_fen = 100 }, { user = from, earned_fen = 150 },
                              { user = into, earned_fen = 100 + cap_left }, { user = into, earned_fen = 100 } })
    -- and from's code names from again
    bind_to("lt-e", from_code)
    expect(referrer_of("lt-e")).to_be(from)
  end)
end)
