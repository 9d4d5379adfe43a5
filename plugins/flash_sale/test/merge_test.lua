-- flash_sale and merged members: member_merge folds what the younger id
-- `from` bought of each sale into the survivor `into`, so one person never
-- buys past a per-user limit with two ids; member_unmerge gives the counts
-- back exactly. The exports are called as the members plugin will call them,
-- through the test-only helper sdk/testplugins/merger (tp.call inside the
-- request's transaction). After a merge the host names `from`'s tokens
-- `into`: here that is simply kit.user(into).

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "flash-sale-kit-secret-0123" },
  flash_sale = {},
  merger = {},
}

local DAY = 86400
local shop = require("tp.testshop")

-- ---- helpers

---A sale open from a minute ago for a day, of a new SKU, with fields overriding.
local function new_sale(fields)
  local code = shop.sku{ price_fen = 9900, stock = 100 }
  local now = kit.now()
  local body = { sku = code, price_fen = 1990, quantity = 50, per_user_limit = 1, per_order_limit = 1,
                 starts_at = now - 60, ends_at = now + DAY }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/flash-sales", body)
  assert(res.status == 201, "the sale was refused: " .. res.status)
  return res.body.id
end

local function buy(id, user, qty)
  return kit.user(user):post("/flash-sales/" .. id .. "/buy", { qty = qty or 1 })
end

local function bought(id, user, qty)
  local res = buy(id, user, qty)
  assert(res.status == 201, ("%s's buy answered %d"):format(user, res.status))
  return res.body
end

---What flash_sale keeps per person: every buyer's counts, and the merge records.
local function state()
  return {
    buyers = kit.query("SELECT sale_id, user, bought FROM flash_sale_buyers ORDER BY sale_id, user"),
    merges = kit.query("SELECT merge_id, from_user, into_user FROM flash_sale_merges ORDER BY merge_id"),
    moves = kit.query("SELECT merge_id, kind, row_id, amount, created FROM flash_sale_merge_moves ORDER BY 1, 2, 3"),
  }
end

local mt = require("tp.mergetest").new { plugin = "flash_sale", state = state }
local merged, unmerged = mt.merged, mt.unmerged
local NONE = { buyers = 0 }

local function counts(user)
  return kit.query("SELECT sale_id, bought FROM flash_sale_buyers WHERE user = ? ORDER BY sale_id", user)
end

local function remaining(id)
  return kit.admin():get("/flash-sales/" .. id).body.remaining
end

-- ---- the limit

describe("a merged person", function()
  it("cannot buy again under a limit of 1 that `from` used up: into gets 409 limit_reached", function()
    local s = new_sale({ per_user_limit = 1 })
    bought(s, "lim-from")
    expect(merged("lim-from", "lim-into", 1)).to_equal({ buyers = 1 })
    local before = remaining(s)
    expect(buy(s, "lim-into")).to_be_error(409, "limit_reached")
    expect(remaining(s)).to_be(before)                 -- the refused buy took no unit
    expect(counts("lim-into")).to_equal({ { sale_id = s, bought = 1 } })
  end)

  it("sums both counts and may sit above the limit, which only blocks further buys", function()
    local s = new_sale({ per_user_limit = 2, per_order_limit = 2 })
    bought(s, "sum-from", 2)
    bought(s, "sum-into", 1)
    merged("sum-from", "sum-into", 2)
    expect(counts("sum-into")).to_equal({ { sale_id = s, bought = 3 } })
    expect(counts("sum-from")).to_equal({})
    expect(buy(s, "sum-into")).to_be_error(409, "limit_reached")
  end)

  it("has the units of an order still named `from` given back to the survivor's count", function()
    local s = new_sale({ per_user_limit = 2, per_order_limit = 2, unpaid_timeout_seconds = 300 })
    bought(s, "late-from")                             -- an order of late-from, unpaid
    merged("late-from", "late-into", 3)
    expect(counts("late-into")).to_equal({ { sale_id = s, bought = 1 } })
    kit.advance(300)                                   -- the unpaid timeout cancels it
    expect(counts("late-into")).to_equal({ { sale_id = s, bought = 0 } })
    expect(counts("late-from")).to_equal({})
    bought(s, "late-into", 2)                          -- the whole limit is the survivor's again
  end)
end)

-- ---- what moves

describe("member_merge", function()
  it("moves every count of `from`, folding where into has one, and says how many", function()
    local a = new_sale({ per_user_limit = 5, per_order_limit = 5 })
    local b = new_sale({ per_user_limit = 5, per_order_limit = 5 })
    local c = new_sale({ per_user_limit = 5, per_order_limit = 5 })
    bought(a, "mv-from", 2)
    bought(b, "mv-from", 1)
    bought(a, "mv-into", 3)
    bought(c, "mv-into", 1)
    bought(a, "mv-other", 1)
    expect(merged("mv-from", "mv-into", 10)).to_equal({ buyers = 2 })
    expect(counts("mv-from")).to_equal({})
    expect(counts("mv-into")).to_equal({ { sale_id = a, bought = 5 }, { sale_id = b, bought = 1 },
                                         { sale_id = c, bought = 1 } })
    expect(counts("mv-other")).to_equal({ { sale_id = a, bought = 1 } })
    expect(kit.query("SELECT row_id, amount, created FROM flash_sale_merge_moves WHERE merge_id = 10 ORDER BY row_id"))
      .to_equal({ { row_id = a, amount = 2, created = 0 }, { row_id = b, amount = 1, created = 1 } })
  end)

  it("does nothing the second time with the same merge_id", function()
    local s = new_sale({ per_user_limit = 3, per_order_limit = 3 })
    local t = new_sale()
    bought(s, "rep-from", 2)
    expect(merged("rep-from", "rep-into", 11)).to_equal({ buyers = 1 })
    -- a count of rep-from written after the merge (members resolves the id to
    -- rep-into from now on; the kit's token still says rep-from): the repeat
    -- must not take it as part of merge 11
    bought(t, "rep-from")
    mt.again("rep-from", "rep-into", 11, NONE)
    expect(counts("rep-into")).to_equal({ { sale_id = s, bought = 2 } })
    expect(counts("rep-from")).to_equal({ { sale_id = t, bought = 1 } })
  end)

  it("moves nothing for a member with no counts, and still records the merge once", function()
    expect(merged("none-from", "none-into", 12)).to_equal({ buyers = 0 })
    expect(kit.query("SELECT from_user, into_user FROM flash_sale_merges WHERE merge_id = 12"))
      .to_equal({ { from_user = "none-from", into_user = "none-into" } })
  end)

  it("leaves nothing behind when the caller's transaction fails after it", function()
    local s = new_sale()
    bought(s, "tx-from")
    mt.failing("tx-from", "tx-into", 13)
  end)
end)

-- ---- undo

describe("member_unmerge", function()
  it("restores exactly what there was before the merge, and forgets the merge", function()
    local a = new_sale({ per_user_limit = 4, per_order_limit = 4 })
    local b = new_sale({ per_user_limit = 4, per_order_limit = 4 })
    bought(a, "un-from", 2)
    bought(b, "un-from", 1)
    bought(a, "un-into", 1)
    local before = state()
    merged("un-from", "un-into", 20)
    expect(counts("un-into")).to_equal({ { sale_id = a, bought = 3 }, { sale_id = b, bought = 1 } })
    expect(unmerged("un-from", "un-into", 20)).to_equal({ buyers = 2 })
    expect(state()).to_equal(before)                   -- into's count of b, created by the merge, is gone
  end)

  it("keeps with `into` what into bought after the merge", function()
    local a = new_sale({ per_user_limit = 3, per_order_limit = 3 })
    local b = new_sale({ per_user_limit = 3, per_order_limit = 3 })
    bought(a, "la-from", 1)
    bought(a, "la-into", 1)
    merged("la-from", "la-into", 21)
    bought(a, "la-into", 1)                            -- 3: at the limit now
    bought(b, "la-into", 2)
    expect(unmerged("la-from", "la-into", 21)).to_equal({ buyers = 1 })
    expect(counts("la-into")).to_equal({ { sale_id = a, bought = 2 }, { sale_id = b, bought = 2 } })
    expect(counts("la-from")).to_equal({ { sale_id = a, bought = 1 } })
    bought(a, "la-into", 1)                            -- 3 again: into's own two and this one
    expect(buy(a, "la-into")).to_be_error(409, "limit_reached")
  end)

  it("never takes a count below 0", function()
    local s = new_sale({ per_user_limit = 2, per_order_limit = 2 })
    local o = bought(s, "zero-from", 2)
    merged("zero-from", "zero-into", 22)
    expect(kit.user("zero-from"):post("/orders/" .. o.id .. "/cancel").status).to_be(200)
    expect(counts("zero-into")).to_equal({ { sale_id = s, bought = 0 } })
    unmerged("zero-from", "zero-into", 22)
    expect(counts("zero-into")).to_equal({})           -- created by the merge, back at 0
    expect(counts("zero-from")).to_equal({ { sale_id = s, bought = 2 } })  -- what was folded
  end)

  it("does nothing for an unknown merge_id, nor a second time", function()
    local s = new_sale()
    bought(s, "unk-from")
    merged("unk-from", "unk-into", 23)
    expect(mt.undone_again("unk-from", "unk-into", 23, NONE)).to_equal({ buyers = 1 })
  end)
end)

-- ---- refusals

describe("invalid merges", function()
  it("are refused with 400 invalid_merge, and change nothing", function()
    bought(new_sale(), "bad-from")
    mt.refuses_malformed()
  end)

  it("refuses a merge_id already used for other members", function()
    bought(new_sale(), "id-from")
    merged("id-from", "id-into", 31)
    mt.refuses_reused("id-from", "id-into", 31)
  end)
end)
