-- group_chain and merged members: member_merge gives the younger id `from`'s
-- organiser role, posts, entries and per-member units to the survivor `into`
-- (units summed, so one person never passes per_member_limit with two ids);
-- member_unmerge moves back exactly what moved. The exports are called as
-- the members plugin will call them, through the test-only helper
-- sdk/testplugins/merger. After a merge the host names `from`'s tokens `into`:
-- here kit.user(into).

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 10 },
  payments = { secret = "group-chain-kit-secret-012345678" },
  group_chain = {},
  merger = {},
}

local HOUR = 3600
local shop = require("tp.testshop")
local admin = kit.admin()

-- ---- helpers

local EGG, MILK

---Grants user the organiser role.
local function grant(user)
  local res = admin:post("/group_chain/organisers", { user = user })
  assert(res.status == 201 or res.status == 200, "grant answered " .. res.status)
end

---A post by organiser (granted here): eggs (3 per member) and milk (5).
local function publish(organiser)
  if not EGG then
    EGG = shop.sku{ price_fen = 3000, stock = 1000 }
    MILK = shop.sku{ price_fen = 1500, stock = 1000 }
  end
  grant(organiser)
  local res = kit.user(organiser):post("/group_chain/posts", { title = "farm box", cutoff_at = kit.now() + 2 * HOUR,
    items = { { sku = EGG, chain_price_fen = 2500, per_member_limit = 3 },
              { sku = MILK, chain_price_fen = 1200, per_member_limit = 5 } } })
  assert(res.status == 201, "publish answered " .. res.status)
  return res.body.id
end

local function append(user, post, eggs, milk)
  local lines = {}
  if eggs then lines[#lines + 1] = { sku = EGG, qty = eggs } end
  if milk then lines[#lines + 1] = { sku = MILK, qty = milk } end
  return kit.user(user):post("/group_chain/posts/" .. post .. "/entries", { lines = lines })
end

local function appended(user, post, eggs, milk)
  local res = append(user, post, eggs, milk)
  assert(res.status == 201, user .. "'s entry answered " .. res.status)
  return res.body
end

---Everything group_chain keeps per person, whole rows.
local function state()
  return {
    organisers = kit.query("SELECT * FROM group_chain_organisers ORDER BY user"),
    posts = kit.query("SELECT * FROM group_chain_posts ORDER BY id"),
    entries = kit.query("SELECT * FROM group_chain_entries ORDER BY id"),
    units = kit.query("SELECT * FROM group_chain_units ORDER BY post_id, user, sku"),
    merges = kit.query("SELECT * FROM group_chain_merges ORDER BY merge_id"),
    moves = kit.query("SELECT * FROM group_chain_merge_moves ORDER BY merge_id, kind, row_id, sku"),
  }
end

local mt = require("tp.mergetest").new { plugin = "group_chain", state = state }
local merged, unmerged = mt.merged, mt.unmerged
local NONE = { organisers = 0, posts = 0, entries = 0, units = 0 }

---What user holds of the post: {sku = units}.
local function held(user, post)
  local out = {}
  for _, r in ipairs(kit.query("SELECT sku, units FROM group_chain_units WHERE user = ? AND post_id = ?", user, post)) do
    out[r.sku == EGG and "egg" or "milk"] = r.units
  end
  return out
end

local function is_organiser(user)
  return #kit.query("SELECT 1 FROM group_chain_organisers WHERE user = ?", user) == 1
end

-- ---- the limit

describe("a merged person", function()
  it("cannot take more than per_member_limit that `from` held: into gets 409 limit_reached", function()
    local p = publish("lim-lead")
    appended("lim-from", p, 3)
    expect(merged("lim-from", "lim-into", 1)).to_equal({ organisers = 0, posts = 0, entries = 1, units = 1 })
    local err = expect(append("lim-into", p, 1)).to_be_error(409, "limit_reached")
    expect(err.details).to_equal({ sku = EGG, per_member_limit = 3, held = 3 })
    expect(held("lim-into", p)).to_equal({ egg = 3 })
    appended("lim-into", p, nil, 5)                          -- milk is another item's limit
  end)

  it("sums both ids' units, and may hold above the limit, which only refuses new entries", function()
    local p = publish("sum-lead")
    appended("sum-from", p, 2, 1)
    appended("sum-into", p, 2)
    merged("sum-from", "sum-into", 2)
    expect(held("sum-into", p)).to_equal({ egg = 4, milk = 1 })
    expect(held("sum-from", p)).to_equal({})
    expect(append("sum-into", p, 1)).to_be_error(409, "limit_reached")
  end)

  it("owns from's entries and can change them, and from's posts and their summaries", function()
    local p = publish("own-lead")
    local e = appended("own-from", p, 1)
    local mine = publish("own-from")
    merged("own-from", "own-into", 3)
    local list = kit.user("own-into"):get("/group_chain/posts/" .. p .. "/entries/mine").body.items
    expect(#list).to_be(1)
    expect({ list[1].seq, list[1].user }).to_equal({ e.seq, "own-into" })
    local res = kit.user("own-into"):post("/group_chain/posts/" .. p .. "/entries/" .. e.seq .. "/cancel")
    expect(res.status).to_be(200)
    expect(held("own-into", p)).to_equal({ egg = 0 })
    expect(kit.user("own-into"):get("/group_chain/posts/" .. mine .. "/summary").status).to_be(200)
    expect(kit.user("own-from"):get("/group_chain/posts/" .. mine .. "/summary"))
      .to_be_error(403, "not_post_organiser")
    expect({ is_organiser("own-into"), is_organiser("own-from") }).to_equal({ true, false })
    expect(kit.user("own-into"):post("/group_chain/posts", { title = "x", cutoff_at = kit.now() + HOUR,
      items = { { sku = EGG, chain_price_fen = 100, per_member_limit = 1 } } }).status).to_be(201)
  end)
end)

-- ---- what moves, and the collisions

describe("member_merge", function()
  it("keeps into's own grant when both were organisers", function()
    grant("both-into")
    kit.advance(60)
    grant("both-from")
    local into_grant = kit.query("SELECT granted_at FROM group_chain_organisers WHERE user = 'both-into'")[1]
    expect(merged("both-from", "both-into", 10)).to_equal({ organisers = 1, posts = 0, entries = 0, units = 0 })
    expect(kit.query("SELECT user, granted_at FROM group_chain_organisers WHERE user LIKE 'both-%'"))
      .to_equal({ { user = "both-into", granted_at = into_grant.granted_at } })
  end)

  it("moves every post, entry and unit of `from`, numbers unchanged, and says how many", function()
    local p = publish("mv-lead")
    appended("mv-other", p, 1)
    local e1 = appended("mv-from", p, 1, 1)
    local e2 = appended("mv-into", p, 1)
    local own = publish("mv-from")
    appended("mv-from", own, nil, 2)
    expect(merged("mv-from", "mv-into", 11)).to_equal({ organisers = 1, posts = 1, entries = 2, units = 3 })
    local seqs = kit.query("SELECT seq, user FROM group_chain_entries WHERE post_id = ? ORDER BY seq", p)
    expect(seqs).to_equal({ { seq = 1, user = "mv-other" }, { seq = e1.seq, user = "mv-into" },
                            { seq = e2.seq, user = "mv-into" } })
    expect(kit.query("SELECT organiser FROM group_chain_posts WHERE id = ?", own)[1].organiser).to_be("mv-into")
    expect(held("mv-into", p)).to_equal({ egg = 2, milk = 1 })
    expect(held("mv-into", own)).to_equal({ milk = 2 })
  end)

  it("does nothing the second time with the same merge_id", function()
    local p = publish("rep-lead")
    appended("rep-from", p, 1)
    expect(merged("rep-from", "rep-into", 12)).to_equal({ organisers = 0, posts = 0, entries = 1, units = 1 })
    -- an entry as rep-from after the merge (the kit's token still says
    -- rep-from): the repeat must not take it as part of merge 12
    appended("rep-from", p, 1)
    mt.again("rep-from", "rep-into", 12, NONE)
  end)

  it("leaves nothing behind when the caller's transaction fails after it", function()
    local p = publish("tx-from")
    appended("tx-from", p, 1)
    mt.failing("tx-from", "tx-into", 13)
  end)
end)

-- ---- undo

describe("member_unmerge", function()
  it("restores exactly what there was before the merge", function()
    local p = publish("un-from")
    grant("un-into")
    appended("un-from", p, 2, 1)
    appended("un-into", p, 1)
    local q = publish("un-lead")
    appended("un-from", q, nil, 3)
    local before = state()
    expect(merged("un-from", "un-into", 20)).to_equal({ organisers = 1, posts = 1, entries = 2, units = 3 })
    expect(unmerged("un-from", "un-into", 20)).to_equal({ organisers = 1, posts = 1, entries = 2, units = 3 })
    expect(state()).to_equal(before)
  end)

  it("keeps with `into` what into did after the merge, and units follow the live entries", function()
    local p = publish("la-lead")
    local e = appended("la-from", p, 2)
    merged("la-from", "la-into", 21)
    local res = kit.user("la-into"):post("/group_chain/posts/" .. p .. "/entries/" .. e.seq .. "/cancel")
    expect(res.status).to_be(200)
    local later = appended("la-into", p, 3)                    -- the whole limit, now the cancel freed it
    expect(unmerged("la-from", "la-into", 21)).to_equal({ organisers = 0, posts = 0, entries = 1, units = 1 })
    local rows = kit.query("SELECT seq, user, status FROM group_chain_entries WHERE post_id = ? ORDER BY seq", p)
    expect(rows).to_equal({ { seq = e.seq, user = "la-from", status = "cancelled" },
                            { seq = later.seq, user = "la-into", status = "unpaid" } })
    expect(held("la-into", p)).to_equal({ egg = 3 })
    expect(held("la-from", p)).to_equal({ egg = 0 })           -- its entry was cancelled meanwhile
    expect(append("la-into", p, 1)).to_be_error(409, "limit_reached")
  end)

  it("gives no role back that the operator revoked since", function()
    grant("rv-from")
    merged("rv-from", "rv-into", 22)
    expect(admin:delete("/group_chain/organisers/rv-into").status).to_be(200)
    expect(unmerged("rv-from", "rv-into", 22).organisers).to_be(0)
    expect({ is_organiser("rv-from"), is_organiser("rv-into") }).to_equal({ false, false })
    grant("rv2-from")
    grant("rv2-into")
    merged("rv2-from", "rv2-into", 23)
    expect(admin:delete("/group_chain/organisers/rv2-into").status).to_be(200)
    expect(unmerged("rv2-from", "rv2-into", 23).organisers).to_be(0)
    expect({ is_organiser("rv2-from"), is_organiser("rv2-into") }).to_equal({ false, false })
  end)

  it("does nothing for an unknown merge_id, nor a second time", function()
    local p = publish("unk-lead")
    appended("unk-from", p, 1)
    merged("unk-from", "unk-into", 24)
    expect(mt.undone_again("unk-from", "unk-into", 24, NONE)).to_equal({ organisers = 0, posts = 0, entries = 1, units = 1 })
  end)
end)

-- ---- refusals

describe("invalid merges", function()
  it("are refused with 400 invalid_merge, and change nothing", function()
    local p = publish("bad-from")
    appended("bad-from", p, 1)
    mt.refuses_malformed()
  end)

  it("refuses a merge_id already used for other members", function()
    local p = publish("id-lead")
    appended("id-from", p, 1)
    merged("id-from", "id-into", 31)
    mt.refuses_reused("id-from", "id-into", 31)
  end)
end)
