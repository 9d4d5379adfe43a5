-- presale and merged members: member_merge folds what the younger id `from`
-- took of each presale into the survivor `into`, so one person never takes
-- past a per-user limit with two ids; member_unmerge gives the counts back
-- exactly. The exports are called as the members plugin calls them, through
-- the test-only helper sdk/testplugins/merger.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "presale-kit-payment-secret-0123" },
  presale = {},
  merger = {},
}

local DAY = 86400
local shop = require("tp.testshop")

local function new_presale(fields)
  local sku = shop.sku { price_fen = 9900, stock = 100 }
  local now = kit.now()
  local body = { sku = sku, kind = "deposit", price_fen = 9900, deposit_fen = 1000, deposit_worth_fen = 2000,
                 quantity = 50, per_user_limit = 1, per_order_limit = 1, starts_at = now - 60, ends_at = now + DAY,
                 balance_starts_at = now + DAY, balance_ends_at = now + 2 * DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/presales", body)
  assert(res.status == 201, "the presale was refused: " .. res.status)
  return res.body.id
end

local function buy(id, user, qty)
  return kit.user(user):post("/presales/" .. id .. "/buy", { qty = qty or 1 })
end

local function bought(id, user, qty)
  local res = buy(id, user, qty)
  assert(res.status == 201, ("%s's buy answered %d"):format(user, res.status))
  return res.body
end

local function state()
  return {
    buyers = kit.query("SELECT presale_id, user, bought FROM presale_buyers ORDER BY presale_id, user"),
    merges = kit.query("SELECT merge_id, from_user, into_user FROM presale_merges ORDER BY merge_id"),
    moves = kit.query("SELECT merge_id, presale_id, amount, created FROM presale_merge_moves ORDER BY 1, 2"),
  }
end

local mt = require("tp.mergetest").new { plugin = "presale", state = state }
local merged, unmerged = mt.merged, mt.unmerged
local NONE = { buyers = 0 }

local function counts(user)
  return kit.query("SELECT presale_id, bought FROM presale_buyers WHERE user = ? ORDER BY presale_id", user)
end

describe("a merged person", function()
  it("cannot take again under a limit of 1 that `from` used up", function()
    local p = new_presale()
    bought(p, "lim-from")
    expect(merged("lim-from", "lim-into", 1)).to_equal({ buyers = 1 })
    expect(buy(p, "lim-into")).to_be_error(409, "limit_reached")
  end)

  it("has the units of a deposit still named `from` given back to the survivor's count", function()
    local p = new_presale({ per_user_limit = 2, per_order_limit = 2, unpaid_timeout_seconds = 300 })
    bought(p, "late-from")
    merged("late-from", "late-into", 2)
    expect(counts("late-into")).to_equal({ { presale_id = p, bought = 1 } })
    kit.advance(300)
    expect(counts("late-into")).to_equal({ { presale_id = p, bought = 0 } })
    bought(p, "late-into", 2)
  end)
end)

describe("member_merge and member_unmerge", function()
  it("fold every count of `from` into `into`, once, and give exactly that back", function()
    local a = new_presale({ per_user_limit = 4, per_order_limit = 4 })
    local b = new_presale({ per_user_limit = 4, per_order_limit = 4 })
    bought(a, "un-from", 2)
    bought(b, "un-from", 1)
    bought(a, "un-into", 1)
    local before = state()
    expect(merged("un-from", "un-into", 20)).to_equal({ buyers = 2 })
    expect(counts("un-into")).to_equal({ { presale_id = a, bought = 3 }, { presale_id = b, bought = 1 } })
    mt.again("un-from", "un-into", 20, NONE)
    expect(unmerged("un-from", "un-into", 20)).to_equal({ buyers = 2 })
    expect(state().buyers).to_equal(before.buyers)
  end)

  it("leave nothing behind when the caller's transaction fails after them", function()
    bought(new_presale(), "tx-from")
    mt.failing("tx-from", "tx-into", 13)
  end)

  it("do nothing for an unknown merge_id, nor a second undo", function()
    bought(new_presale(), "unk-from")
    merged("unk-from", "unk-into", 23)
    expect(mt.undone_again("unk-from", "unk-into", 23, NONE)).to_equal({ buyers = 1 })
  end)

  it("refuse what cannot be a merge, and a merge_id used for others", function()
    bought(new_presale(), "id-from")
    mt.refuses_malformed()
    merged("id-from", "id-into", 31)
    mt.refuses_reused("id-from", "id-into", 31)
  end)
end)
