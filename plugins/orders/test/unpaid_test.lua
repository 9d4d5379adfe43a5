-- The unpaid timeout's sweep (lib/unpaid.lua, 1.10.0): one job kept due at the
-- earliest pending deadline, brought forward by a campaign's shorter timeout,
-- each order cancelled at its own deadline and no other; a paid order left
-- alone; more due orders than one run takes finished by the next run at once.
-- A sweep whose job was lost, healed by the next checkout, needs the host
-- stopped and its database edited: tests/e2e/test_orders.py.

kit.plugins {
  catalog = {},
  orders = { unpaid_timeout_seconds = 600, max_unpaid_orders = 2 },
  payments = { secret = "orders-kit-unpaid-secret-0123456" },
  depositor = {},
}

local TIMEOUT = 600
local shop = require("tp.testshop")

local function sweep_due()
  local j = kit.query("SELECT due_ms FROM _tp_jobs WHERE plugin = 'orders' AND name = 'sweep_unpaid' AND dead_ms IS NULL")
  return j[1] and j[1].due_ms // 1000
end

local function checkout(user, sku)
  local res = kit.user(user):post("/orders", { lines = { { sku = sku, qty = 1 } } })
  assert(res.status == 201, ("checkout answered %d"):format(res.status))
  return res.body
end

---An order a campaign makes with its own unpaid timeout.
local function campaign_order(user, sku, timeout)
  local res = kit.admin():post("/depositor/orders", { user = user, lines = { { sku = sku, qty = 1 } },
    campaign = { id = "short", unpaid_timeout_seconds = timeout } })
  assert(res.status == 201, ("the campaign's checkout answered %d"):format(res.status))
  return res.body
end

local function status_of(id)
  local o = kit.query("SELECT status, cancel_reason, cancelled_at FROM orders_orders WHERE id = ?", id)[1]
  return o.status, o.cancel_reason, o.cancelled_at
end

local function stock(code)
  return kit.query("SELECT stock FROM catalog_skus WHERE code = ?", code)[1].stock
end

describe("the unpaid sweep", function()
  it("cancels each order at its own deadline, a campaign's shorter timeout first", function()
    local sku = shop.sku { price_fen = 100, stock = 10 }
    local t0 = kit.now()
    local a = checkout("ua", sku)
    expect(sweep_due()).to_be(t0 + TIMEOUT)
    kit.advance(100)
    local b = checkout("ub", sku)
    expect(sweep_due()).to_be(t0 + TIMEOUT)               -- a later deadline leaves it where it is
    kit.advance(100)
    local c = campaign_order("uc", sku, 120)
    expect(c.pay_deadline).to_be(t0 + 320)
    expect(sweep_due()).to_be(t0 + 320)                   -- brought forward
    expect(stock(sku)).to_be(7)
    kit.advance(119)
    expect(status_of(c.id)).to_be("pending_payment")
    kit.advance(1)
    expect({ status_of(c.id) }).to_equal({ "cancelled", "timeout", t0 + 320 })
    expect({ status_of(a.id) }).to_equal({ "pending_payment" })
    expect(sweep_due()).to_be(a.pay_deadline)
    kit.advance(a.pay_deadline - kit.now() - 1)
    expect(status_of(a.id)).to_be("pending_payment")
    kit.advance(1)
    expect({ status_of(a.id) }).to_equal({ "cancelled", "timeout", a.pay_deadline })
    expect({ status_of(b.id) }).to_equal({ "pending_payment" })
    expect(sweep_due()).to_be(b.pay_deadline)
    kit.advance(100)
    expect({ status_of(b.id) }).to_equal({ "cancelled", "timeout", b.pay_deadline })
    expect(sweep_due()).to_be(nil)                        -- nothing pending: nothing scheduled
    expect(stock(sku)).to_be(10)
    local d = checkout("ud", sku)                         -- and the next order schedules it again
    expect(sweep_due()).to_be(d.pay_deadline)
  end)

  it("leaves a paid order alone", function()
    local sku = shop.sku { price_fen = 100, stock = 10 }
    local o = checkout("upaid", sku)
    local pay = kit.admin():post("/payments/simulate", { order_id = o.id })
    expect(pay.body.result.outcome).to_be("paid")
    kit.advance(TIMEOUT + 60)
    expect(status_of(o.id)).to_be("paid")
    expect(stock(sku)).to_be(9)
  end)

  it("takes 500 due orders a run and finishes the rest at once, however many share a second", function()
    local sku = shop.sku { price_fen = 100, stock = 1000 }
    kit.advance(TIMEOUT)                                  -- the earlier tests' orders are gone
    local ids = {}
    for i = 1, 501 do ids[i] = checkout("many-" .. i, sku).id end
    expect(stock(sku)).to_be(499)
    local ran, failed = kit.advance(TIMEOUT)
    -- two sweep runs (500, then 1) and one expire_unpaid job per order
    expect({ ran, failed }).to_equal({ 503, 0 })
    for _, id in ipairs(ids) do expect(status_of(id)).to_be("cancelled") end
    expect(stock(sku)).to_be(1000)
    expect(kit.query("SELECT due, swept_id FROM orders_sweep")).to_equal({ { swept_id = ids[501] } })
  end)
end)
