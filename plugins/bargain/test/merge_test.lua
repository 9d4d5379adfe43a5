-- bargain and merged members: member_merge gives every bargain started, every
-- cut and every per-activity count (helps, starts) of the younger id `from`
-- to the survivor `into` (counts summed, so one person never passes
-- helps_per_helper or starts_per_user with two ids); cuts keep their amounts
-- whoever they now belong to; member_unmerge moves back exactly what moved.
-- The exports are called as the members plugin will call them, through the
-- test-only helper sdk/testplugins/merger. After a merge the host names
-- `from`'s tokens `into`: here kit.user(into).

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "bargain-kit-secret-0123456789" },
  bargain = {},
  merger = {},
}

local DAY = 86400
local shop = require("tp.testshop")

-- ---- helpers

---A new activity (1000 → 100 fen by 3 helpers, one help and one start per
---user) on a fresh SKU, with fields overriding; returns its id.
local function new_activity(fields)
  local now = kit.now()
  local body = { sku = (shop.sku{ price_fen = 9900, stock = 100 }), original_price_fen = 1000,
    floor_price_fen = 100, helpers_needed = 3, duration_seconds = 3600, starts_at = now, ends_at = now + 30 * DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/bargain/activities", body)
  assert(res.status == 201, "activity refused: " .. res.status)
  return res.body.id
end

local function start(user, aid)
  return kit.user(user):post("/bargain/activities/" .. aid .. "/start")
end

local function started(user, aid)
  local res = start(user, aid)
  assert(res.status == 201, user .. "'s start answered " .. res.status)
  return res.body.id
end

local function help(user, id)
  return kit.user(user):post("/bargains/" .. id .. "/help")
end

local function helped(user, id)
  local res = help(user, id)
  assert(res.status == 201, user .. "'s help answered " .. res.status)
  return res.body.cut_fen
end

local function admin(id) return kit.admin():get("/bargains/" .. id).body end

---Everything bargain keeps per person, whole rows.
local function state()
  return {
    bargains = kit.query("SELECT * FROM bargain_bargains ORDER BY id"),
    helps = kit.query("SELECT * FROM bargain_helps ORDER BY bargain_id, seq"),
    helpers = kit.query("SELECT * FROM bargain_helpers ORDER BY activity_id, helper"),
    starters = kit.query("SELECT * FROM bargain_starters ORDER BY activity_id, user"),
    merges = kit.query("SELECT * FROM bargain_merges ORDER BY merge_id"),
    moves = kit.query("SELECT * FROM bargain_merge_moves ORDER BY merge_id, kind, row_id, seq"),
  }
end

local mt = require("tp.mergetest").new { plugin = "bargain", state = state }
local merged, unmerged = mt.merged, mt.unmerged
local NONE = { bargains = 0, helps = 0, helpers = 0, starters = 0 }

---A bargain's cuts as {seq, helper, merged_from or "-", cut_fen}.
local function cuts(id)
  local out = {}
  for i, h in ipairs(admin(id).helps) do out[i] = { h.seq, h.helper, h.merged_from or "-", h.cut_fen } end
  return out
end

local function helps_of(user)
  return kit.query("SELECT activity_id, helps AS n FROM bargain_helpers WHERE helper = ? ORDER BY activity_id", user)
end

local function starts_of(user)
  return kit.query("SELECT activity_id, started AS n FROM bargain_starters WHERE user = ? ORDER BY activity_id", user)
end

-- ---- the limits

describe("a merged person", function()
  it("cannot help again under helps_per_helper 1 that `from` used: into gets 409 help_limit_reached", function()
    local aid = new_activity({ helps_per_helper = 1 })
    local x = started("lim-x", aid)
    local y = started("lim-y", aid)
    helped("lim-from", x)
    expect(merged("lim-from", "lim-into", 1)).to_equal({ bargains = 0, helps = 1, helpers = 1, starters = 0 })
    expect(help("lim-into", y)).to_be_error(409, "help_limit_reached")
    expect(help("lim-into", x)).to_be_error(409, "already_helped")   -- from's cut is into's
    expect(admin(y).cuts_left).to_be(3)
    expect(helps_of("lim-into")).to_equal({ { activity_id = aid, n = 1 } })
  end)

  it("cannot start again under starts_per_user 1 that `from` used", function()
    local aid = new_activity({ starts_per_user = 1 })
    started("st-from", aid)
    merged("st-from", "st-into", 2)
    expect(start("st-into", aid)).to_be_error(409, "bargain_in_progress")  -- from's, still open
    kit.advance(3600)                                                       -- it expires
    expect(start("st-into", aid)).to_be_error(409, "start_limit_reached")
    expect(starts_of("st-into")).to_equal({ { activity_id = aid, n = 1 } })
  end)

  it("sums both ids' counts, and may sit above the limit, which only refuses further helps", function()
    local aid = new_activity({ helps_per_helper = 1 })
    local x, y, z = started("sum-x", aid), started("sum-y", aid), started("sum-z", aid)
    helped("sum-from", x)
    helped("sum-into", y)
    merged("sum-from", "sum-into", 3)
    expect(helps_of("sum-into")).to_equal({ { activity_id = aid, n = 2 } })
    expect(helps_of("sum-from")).to_equal({})
    expect(help("sum-into", z)).to_be_error(409, "help_limit_reached")
  end)

  it("buys the bargain `from` started, as its initiator", function()
    local aid = new_activity({ helpers_needed = 1 })
    local b = started("buy-from", aid)
    helped("buy-friend", b)
    merged("buy-from", "buy-into", 4)
    expect(kit.user("buy-from"):post("/bargains/" .. b .. "/buy")).to_be_error(403, "not_initiator")
    local res = kit.user("buy-into"):post("/bargains/" .. b .. "/buy")
    expect(res.status).to_be(201)
    expect({ res.body.user, res.body.total_fen }).to_equal({ "buy-into", 100 })
    local mine = kit.user("buy-into"):get("/bargains").body.items
    expect(mine[1].id).to_be(b)
  end)
end)

-- ---- what moves, and the collisions

describe("member_merge", function()
  it("moves every bargain, cut and count of `from`, and says how many", function()
    local a, c = new_activity(), new_activity()
    local mine = started("mv-from", a)
    local other = started("mv-other", c)
    helped("mv-from", other)
    started("mv-into", c)
    helped("mv-friend", mine)
    expect(merged("mv-from", "mv-into", 10)).to_equal({ bargains = 1, helps = 1, helpers = 1, starters = 1 })
    expect(admin(mine).initiator).to_be("mv-into")
    expect(cuts(mine)[1][2]).to_be("mv-friend")                    -- others' cuts stay theirs
    expect(cuts(other)[1][2]).to_be("mv-into")
    expect(cuts(other)[1][3]).to_be("mv-from")
    expect(kit.query([[SELECT count(*) AS n FROM bargain_bargains WHERE initiator = 'mv-from']])[1].n).to_be(0)
    expect(starts_of("mv-into")).to_equal({ { activity_id = a, n = 1 }, { activity_id = c, n = 1 } })
    expect(helps_of("mv-into")).to_equal({ { activity_id = c, n = 1 } })
  end)

  it("keeps both cuts when both ids helped one bargain, amounts and replay unchanged", function()
    local aid = new_activity({ helps_per_helper = 1 })
    local b = started("both-x", aid)
    local c1 = helped("both-from", b)
    local c2 = helped("both-into", b)
    local before = admin(b)
    expect(merged("both-from", "both-into", 11).helps).to_be(1)
    expect(cuts(b)).to_equal({ { 1, "both-into", "both-from", c1 }, { 2, "both-into", "-", c2 } })
    local after = admin(b)
    expect({ after.price_fen, after.cuts_left, after.state }).to_equal({ before.price_fen, before.cuts_left, "open" })
    expect(kit.admin():get("/bargains/" .. b .. "/replay").body.match).to_be(true)
    helped("both-third", b)                                        -- the last cut still lands on the floor
    expect(admin(b).price_fen).to_be(100)
  end)

  it("keeps a cut of one id on the other's bargain as it is: into has helped its own bargain", function()
    local aid = new_activity({ first_cut = true, helpers_needed = 2, helps_per_helper = 2 })
    local b = started("self-into", aid)                            -- into's first cut: seq 1
    local first = cuts(b)[1][4]
    local c = helped("self-from", b)                               -- from helps into's bargain
    local price = admin(b).price_fen
    merged("self-from", "self-into", 12)
    expect(cuts(b)).to_equal({ { 1, "self-into", "-", first }, { 2, "self-into", "self-from", c } })
    expect(admin(b).price_fen).to_be(price)                        -- the money cut stays cut
    expect(help("self-into", b)).to_be_error(409, "own_bargain")
    expect(kit.admin():get("/bargains/" .. b .. "/replay").body.match).to_be(true)
  end)

  it("lets both ids' live bargains of one activity go on", function()
    local aid = new_activity({ helpers_needed = 1 })
    local b1 = started("live-from", aid)
    local b2 = started("live-into", aid)
    merged("live-from", "live-into", 13)
    expect({ admin(b1).initiator, admin(b2).initiator }).to_equal({ "live-into", "live-into" })
    helped("live-f1", b1)
    helped("live-f2", b2)
    expect(kit.user("live-into"):post("/bargains/" .. b1 .. "/buy").status).to_be(201)
    expect(kit.user("live-into"):post("/bargains/" .. b2 .. "/buy").status).to_be(201)
  end)

  it("does nothing the second time with the same merge_id", function()
    local aid = new_activity({ helps_per_helper = 5 })
    local x, y = started("rep-x", aid), started("rep-y", aid)
    helped("rep-from", x)
    expect(merged("rep-from", "rep-into", 14)).to_equal({ bargains = 0, helps = 1, helpers = 1, starters = 0 })
    -- a cut as rep-from after the merge (the kit's token still says
    -- rep-from): the repeat must not take it as part of merge 14
    helped("rep-from", y)
    mt.again("rep-from", "rep-into", 14, NONE)
  end)

  it("leaves nothing behind when the caller's transaction fails after it", function()
    local aid = new_activity()
    helped("tx-from", started("tx-from-x", aid))
    started("tx-from", aid)
    mt.failing("tx-from", "tx-into", 15)
  end)
end)

-- ---- undo

describe("member_unmerge", function()
  it("restores exactly what there was before the merge, collisions included", function()
    local a = new_activity({ first_cut = true, helps_per_helper = 3 })
    local c = new_activity({ helps_per_helper = 3 })
    local own = started("un-into", a)
    helped("un-from", own)                                         -- from on into's bargain
    local x = started("un-x", c)
    helped("un-from", x)
    helped("un-into", x)                                           -- both on x
    started("un-from", c)
    local before = state()
    expect(merged("un-from", "un-into", 20)).to_equal({ bargains = 1, helps = 2, helpers = 2, starters = 1 })
    expect(unmerged("un-from", "un-into", 20)).to_equal({ bargains = 1, helps = 2, helpers = 2, starters = 1 })
    expect(state()).to_equal(before)
  end)

  it("keeps with `into` what into did after the merge", function()
    local aid = new_activity({ helps_per_helper = 3, starts_per_user = 2 })
    local x, y = started("la-x", aid), started("la-y", aid)
    local b = started("la-from", aid)
    helped("la-from", x)
    merged("la-from", "la-into", 21)
    helped("la-into", y)
    kit.advance(3600)                                              -- b expires; into may start its own
    local later = started("la-into", aid)
    expect(unmerged("la-from", "la-into", 21)).to_equal({ bargains = 1, helps = 1, helpers = 1, starters = 1 })
    expect({ admin(b).initiator, admin(later).initiator }).to_equal({ "la-from", "la-into" })
    expect({ cuts(x)[1][2], cuts(y)[1][2] }).to_equal({ "la-from", "la-into" })
    expect(helps_of("la-into")).to_equal({ { activity_id = aid, n = 1 } })
    expect(starts_of("la-into")).to_equal({ { activity_id = aid, n = 1 } })
    expect(helps_of("la-from")).to_equal({ { activity_id = aid, n = 1 } })
    expect(starts_of("la-from")).to_equal({ { activity_id = aid, n = 1 } })
  end)

  it("does nothing for an unknown merge_id, nor a second time", function()
    local aid = new_activity()
    started("unk-from", aid)
    merged("unk-from", "unk-into", 22)
    expect(mt.undone_again("unk-from", "unk-into", 22, NONE)).to_equal({ bargains = 1, helps = 0, helpers = 0, starters = 1 })
  end)
end)

-- ---- refusals

describe("invalid merges", function()
  it("are refused with 400 invalid_merge, and change nothing", function()
    local aid = new_activity()
    started("bad-from", aid)
    mt.refuses_malformed()
  end)

  it("refuses a merge_id already used for other members", function()
    local aid = new_activity()
    started("id-from", aid)
    merged("id-from", "id-into", 31)
    mt.refuses_reused("id-from", "id-into", 31)
  end)
end)
