-- tiers and merged members: member_merge moves the younger id's growth to the
-- survivor (a cause both have counts once), keeps the higher tier and the
-- longer paid membership; member_unmerge puts exactly that back. Called as
-- the members plugin calls them, through sdk/testplugins/merger.

kit.plugins {
  merger = {}, tierfeed = {},
  tiers = {
    levels = {
      { id = "regular", name = "会员", growth = 0 },
      { id = "silver", name = "银卡", growth = 1000 },
      { id = "gold", name = "金卡", growth = 5000 },
    },
    growth = { signin = 5 },
  },
}

local mt = require("tp.mergetest").new {
  plugin = "tiers",
  state = function()
    return { ledger = kit.query("SELECT user, amount, kind, ref FROM tiers_ledger ORDER BY id"),
             members = kit.query("SELECT user, tier, held, paid_tier, paid_until FROM tiers_members ORDER BY user"),
             paid = kit.query("SELECT order_id, user FROM tiers_paid ORDER BY order_id") }
  end,
}

local a = kit.admin()
local function grow(user, amount, ref) a:post("/tiers/members/" .. user .. "/growth", { amount = amount, ref = ref }) end
local function me(user) return kit.user(user):get("/tiers/me").body end

kit.set_local("2027-03-01 10:00:00")
grow("old", 3000, "t1")
grow("young", 2500, "t2")
grow("young", 100, "t1")                      -- the same task as old's: counted once after a merge
a:post("/tierfeed/signin", { user = "old", day = "2027-03-01", streak = 1 })
a:post("/tierfeed/signin", { user = "young", day = "2027-03-01", streak = 1 })
kit.drain()

describe("member_merge", function()
  it("refuses what cannot be a merge", function()
    mt.refuses_malformed()
  end)

  it("moves the growth, a cause both have once, and the tier follows", function()
    expect(me("old").growth).to_be(3005)
    expect(me("young").growth).to_be(2605)
    expect(mt.merged("young", "old", 7)).to_equal({ ledger = 1 })  -- t2 only: t1 and the day's sign-in were old's too
    expect(me("old").growth).to_be(5505)
    expect(me("old").tier).to_be("gold")
    expect(kit.query("SELECT count(*) AS n FROM tiers_members WHERE user = 'young'")[1].n).to_be(0)
  end)

  it("does nothing the second time, and refuses a merge_id reused", function()
    mt.again("young", "old", 7, { ledger = 0 })
    mt.refuses_reused("young", "old", 7)
  end)

  it("is undone exactly, and an undo twice does nothing", function()
    expect(mt.undone_again("young", "old", 7, { ledger = 0 })).to_equal({ ledger = 1 })
    expect(me("old").growth).to_be(3005)
    expect(me("young").growth).to_be(2605)
    expect(me("young").tier).to_be("silver")
  end)

  it("leaves nothing when a later step of the members' merge fails", function()
    mt.failing("young", "old", 8)
  end)
end)
