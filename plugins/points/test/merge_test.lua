-- Merging members: from's balance is re-posted to into (merge_out, merge_in),
-- its lots move with their expiry; an unmerge moves back what is left of them.

kit.plugins { points = { expiry = { kind = "days", days = 30 } }, merger = {} }

local function give(user, n)
  assert(kit.admin():post("/points/accounts/" .. user .. "/adjust", { points = n, reason = "grant" }).status == 201)
end

local function state()
  return {
    accounts = kit.query("SELECT user, balance FROM points_accounts ORDER BY user"),
    lots = kit.query("SELECT id, user, remaining FROM points_lots ORDER BY id"),
    entries = kit.query("SELECT count(*) AS n, coalesce(sum(points), 0) AS s FROM points_entries"),
    merges = kit.query("SELECT merge_id, from_user, into_user, balance FROM points_merges ORDER BY merge_id"),
    moves = kit.query("SELECT merge_id, kind, row_id FROM points_merge_moves ORDER BY 1, 2, 3"),
  }
end

local mt = require("tp.mergetest").new { plugin = "points", state = state }
local NONE = { points = 0, rows = 0 }

local function balance(u) return kit.user(u):get("/points/me").body.balance end

describe("a merge", function()
  it("moves the balance and the lots, once; an unmerge moves back what is left", function()
    give("m-from", 100)
    give("m-into", 10)
    expect(mt.merged("m-from", "m-into", 1)).to_equal({ points = 100, rows = 1 })
    expect({ balance("m-from"), balance("m-into") }).to_equal({ 0, 110 })
    mt.again("m-from", "m-into", 1, NONE)
    -- into spends 30: both lots expire at once, so the older (from's) goes first
    assert(kit.admin():post("/points/accounts/m-into/adjust", { points = -30, reason = "spend" }).status == 201)
    local back = mt.undone_again("m-from", "m-into", 1, NONE)
    expect(back).to_equal({ points = 70, rows = 1 })   -- what is left of from's lot
    expect({ balance("m-from"), balance("m-into") }).to_equal({ 70, 10 })
  end)

  it("keeps the contract: malformed, reused and failing merges change nothing", function()
    give("f-from", 5)
    mt.failing("f-from", "f-into", 2)
    mt.refuses_malformed()
    expect(mt.merged("f-from", "f-into", 3)).to_equal({ points = 5, rows = 1 })
    mt.refuses_reused("f-from", "f-into", 3)
  end)
end)
