-- orders: merging members. The members plugin calls member_merge(from, into,
-- merge_id) and member_unmerge with tp.call inside its transaction; the
-- test-only plugin sdk/testplugins/merger does the same from an admin route.
-- Every order of `from` becomes `into`'s, attribution untouched; the unpaid
-- cap and customer() count both ids' orders; Idempotency-Keys are the host's
-- (store/idem.h) and are not touched; an undo moves back exactly what moved.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 2 },
  payments = { secret = "orders-merge-kit-secret-0123" },
  merger = {},
}

local shop = require("tp.testshop")

local SKU = (shop.sku{ price_fen = 500, stock = 1000 })

local function checkout(user, key)
  return kit.user(user):post("/orders", { lines = { { sku = SKU, qty = 1 } } },
    key and { ["Idempotency-Key"] = key } or nil)
end

local function created(user, key)
  local res = checkout(user, key)
  assert(res.status == 201, ("checkout answered %d"):format(res.status))
  return res.body
end

local function pay(id)
  expect(kit.admin():post("/payments/simulate", { order_id = id }).body.result.outcome).to_be("paid")
end

local function customer(user)
  return kit.admin():post("/merger/call", { plugin = "orders", fn = "customer", args = { user } }).body.result
end

local function owners(ids)
  local out = {}
  for i, id in ipairs(ids) do
    out[i] = kit.query("SELECT user FROM orders_orders WHERE id = ?", id)[1].user
  end
  return out
end

local function snapshot()
  return kit.query("SELECT * FROM orders_orders ORDER BY id")
end

local mt = require("tp.mergetest").new { plugin = "orders", state = snapshot }

local function merge(from, into, merge_id) return mt.call("merge", from, into, merge_id) end
local function unmerge(from, into, merge_id) return mt.call("unmerge", from, into, merge_id) end

-- from holds an unpaid order (key "k1") and a paid one; into an unpaid order;
-- attribution names from on one of into's orders
local function two_members(prefix)
  local from, into = prefix .. "-from", prefix .. "-into"
  local a = created(from, "k1")
  local b = created(from)
  pay(b.id)
  -- a checkout as a campaign plugin would make it, with the attribution given
  local c = kit.admin():post("/merger/call", { plugin = "orders", fn = "create", args = { {
    user = into, lines = { { sku = SKU, qty = 1 } },
    attribution = { referrer = from, guide = from } } } }).body.result
  return from, into, a, b, c
end

describe("member_merge", function()
  it("moves every order of from to into and keeps each order's attribution", function()
    local from, into, a, b, c = two_members("mv")
    local res = merge(from, into, 1)
    expect(res.status).to_be(200)
    expect(res.body.moved).to_equal({ orders = 2 })
    expect(owners({ a.id, b.id, c.id })).to_equal({ into, into, into })
    expect(kit.query("SELECT count(*) AS n FROM orders_orders WHERE user = ?", from)[1].n).to_be(0)
    -- what the survivor reads is everything both did
    local mine = kit.user(into):get("/orders").body.items
    expect({ #mine, mine[1].id, mine[2].id, mine[3].id }).to_equal({ 3, c.id, b.id, a.id })
    expect(kit.user(into):get("/orders/" .. b.id).body.status).to_be("paid")
    -- attribution is what was true at creation: never rewritten
    local attribution = kit.user(into):get("/orders/" .. c.id).body.attribution
    expect(attribution).to_equal({ referrer = from, guide = from })
  end)

  it("holds the unpaid cap for the merged person: both ids' unpaid orders count", function()
    local from, into = "cap-from", "cap-into"
    created(from)
    created(into)
    expect(merge(from, into, 2).body.moved).to_equal({ orders = 1 })
    local res = checkout(into)
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("too_many_unpaid_orders")
    expect(res.body.error.details).to_equal({ unpaid = 2 })
  end)

  it("makes the merged person a returning customer when either id paid", function()
    local from, into = "new-from", "new-into"
    local b = created(from)
    pay(b.id)
    expect(customer(into).paid_orders).to_be(0)
    merge(from, into, 3)
    local c = customer(into)
    expect(c.paid_orders).to_be(1)
    expect(c.first_paid_at).to_be(kit.now())
    expect(customer(from).paid_orders).to_be(0)
  end)

  it("leaves a key both used to the survivor's order: a retry of hers answers it", function()
    local a = created("key-from", "k1")
    local c = created("key-into", "k1")
    merge("key-from", "key-into", 4)
    local again = checkout("key-into", "k1")
    expect(again.status).to_be(200)
    expect(again.body.id).to_be(c.id)
    expect(owners({ a.id, c.id })).to_equal({ "key-into", "key-into" })
  end)

  it("does nothing the second time with the same merge_id", function()
    local from, into = two_members("twice")
    expect(merge(from, into, 5).body.moved).to_equal({ orders = 2 })
    local moves = kit.query("SELECT * FROM orders_merge_moves WHERE merge_id = 5 ORDER BY order_id")
    mt.again(from, into, 5, { orders = 0 })
    expect(kit.query("SELECT * FROM orders_merge_moves WHERE merge_id = 5 ORDER BY order_id")).to_equal(moves)
  end)

  it("refuses what cannot be a merge with 400 invalid_merge, and a merge_id recorded for others too", function()
    mt.refuses_malformed()
    mt.refuses_reused("mv-from", "mv-into", 1)
  end)
end)

describe("member_unmerge", function()
  it("restores exactly the state before the merge", function()
    local from, into = two_members("undo")
    local before = snapshot()
    expect(merge(from, into, 20).body.moved).to_equal({ orders = 2 })
    expect(kit.query("SELECT count(*) AS n FROM orders_orders WHERE user = ?", from)[1].n).to_be(0)
    expect(unmerge(from, into, 20).body.moved).to_equal({ orders = 2 })
    expect(snapshot()).to_equal(before)
    expect(kit.query("SELECT count(*) AS n FROM orders_merge_moves WHERE merge_id = 20")[1].n).to_be(0)
    expect(kit.query("SELECT count(*) AS n FROM orders_merges WHERE merge_id = 20")[1].n).to_be(0)
    -- idempotent too: a second undo, or an unknown merge, does nothing
    expect(unmerge(from, into, 20).body.moved).to_equal({ orders = 0 })
    expect(unmerge(from, into, 999).body.moved).to_equal({ orders = 0 })
    expect(snapshot()).to_equal(before)
  end)

  it("leaves what into did after the merge with into", function()
    local from, into, a, b, c = two_members("later")
    merge(from, into, 21)
    pay(c.id)                                   -- the survivor pays her own order
    pay(a.id)                                   -- and the one that came from `from`
    local d = created(into, "k2")               -- and checks out again
    expect(unmerge(from, into, 21).body.moved).to_equal({ orders = 2 })
    expect(owners({ a.id, b.id, c.id, d.id })).to_equal({ from, from, into, into })
    -- what happened to from's order meanwhile stays
    local rows = kit.query("SELECT id, status FROM orders_orders WHERE id IN (?, ?, ?) ORDER BY id",
      a.id, c.id, d.id)
    expect(rows).to_equal({ { id = a.id, status = "paid" },
                            { id = c.id, status = "paid" },
                            { id = d.id, status = "pending_payment" } })
    expect(customer(into).paid_orders).to_be(1)
    expect(customer(from).paid_orders).to_be(2)
  end)

  it("skips an order a later merge moved on", function()
    local a = created("chain-a")
    created("chain-b")
    merge("chain-a", "chain-b", 30)
    merge("chain-b", "chain-c", 31)
    expect(unmerge("chain-a", "chain-b", 30).body.moved).to_equal({ orders = 0 })
    expect(owners({ a.id })).to_equal({ "chain-c" })
    expect(unmerge("chain-b", "chain-c", 31).body.moved).to_equal({ orders = 2 })
    expect(owners({ a.id })).to_equal({ "chain-b" })
  end)
end)
