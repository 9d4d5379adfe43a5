-- referral with the other modes: join_mode application, binding_mode
-- last_touch with one-hour bindings, the self-purchase rebate and a daily cap
-- in the tenant's local day (Asia/Shanghai, the kit tenant's default zone).

local HOUR, DAY = 3600, 86400
local CAP = 1500

kit.plugins {
  catalog = {},
  orders = { attribution_plugin = "referral", max_unpaid_orders = 5 },
  payments = { secret = "referral-kit-secret-0123456789" },
  referral = { level1_rate_bp = 1000, level2_rate_bp = 500, join_mode = "application",
               binding_mode = "last_touch", binding_seconds = HOUR, self_purchase_rebate = true,
               daily_cap_fen = CAP },
}

-- the shared helpers (test/support.lua), found beside this file
local support = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/support.lua")
local new_sku, code_of, bind_to, bind = support.new_sku, support.code_of, support.bind_to, support.bind
local create, pay, buy = support.create, support.pay, support.buy
local balance, money, entries = support.balance, support.money, support.entries

---user applies; the operator approves.
local function approved(user)
  assert(kit.user(user):post("/referral/join", {}).status == 202)
  assert(kit.admin():post("/referral/distributors/" .. user .. "/approve").status == 200)
end

---Seconds from now to the next local midnight (UTC+8).
local function to_next_local_day()
  return DAY - (kit.now() + 8 * HOUR) % DAY
end

describe("joining by application", function()
  it("makes a pending applicant whose code binds nobody until approved", function()
    local res = kit.user("ap-one"):post("/referral/join", {})
    expect({ res.status, res.body.status, res.body.decided_at }).to_equal({ 202, "pending", nil })
    expect(kit.user("ap-one"):post("/referral/join", {}).status).to_be(200)   -- still pending
    expect(bind_to("ap-buyer", res.body.code)).to_be_error(404, "code_not_found")
    local pending = kit.admin():get("/referral/distributors?status=pending").body.items
    expect(#pending).to_be(1)
    expect(pending[1].user).to_be("ap-one")
    local ok = kit.admin():post("/referral/distributors/ap-one/approve")
    expect({ ok.status, ok.body.status, ok.body.decided_at }).to_equal({ 200, "active", kit.now() })
    expect(bind_to("ap-buyer", res.body.code).status).to_be(201)
  end)

  it("lets a rejected applicant apply again; a decision is made once", function()
    kit.user("ap-two"):post("/referral/join", {})
    expect(kit.admin():post("/referral/distributors/ap-two/reject").body.status).to_be("rejected")
    local again = expect(kit.admin():post("/referral/distributors/ap-two/reject")).to_be_error(409, "not_pending")
    expect(again.details).to_equal({ status = "rejected" })
    local reapply = kit.user("ap-two"):post("/referral/join", {})
    expect({ reapply.status, reapply.body.status }).to_equal({ 202, "pending" })
    expect(kit.admin():post("/referral/distributors/nobody/approve")).to_be_error(404, "distributor_not_found")
  end)
end)

describe("last touch", function()
  local sku, o1

  it("rebinds on every code, still refusing cycles", function()
    approved("lt-one")
    approved("lt-two")
    bind("lt-two", "lt-one")
    expect(bind_to("lt-one", code_of("lt-two"))).to_be_error(409, "binding_cycle")
    bind("lt-buyer", "lt-one")
    sku = new_sku(8000)
    o1 = create("lt-buyer", { { sku = sku, qty = 1 } })
    expect(o1.attribution).to_equal({ referrer = "lt-one" })
    local b = bind("lt-buyer", "lt-two")               -- the last touch wins for what comes next
    expect({ b.referrer, b.changed, b.expires_at }).to_equal({ "lt-two", true, kit.now() + HOUR })
    local o2 = create("lt-buyer", { { sku = sku, qty = 1 } })
    expect(o2.attribution).to_equal({ referrer = "lt-two", referrer2 = "lt-one" })
    pay(o2)
    expect(balance("lt-two")).to_equal(money(800))
    expect(balance("lt-one")).to_equal(money(400))
  end)

  it("never moves an order placed before the rebinding", function()
    expect(kit.user("lt-buyer"):get("/orders/" .. o1.id).body.attribution).to_equal({ referrer = "lt-one" })
    pay(o1)                                               -- paid after the rebinding: still lt-one's
    expect(balance("lt-one")).to_equal(money(400 + 800))
    expect(balance("lt-two")).to_equal(money(800))
  end)

  it("restarts the period on the same code, and ends the binding when it runs out", function()
    kit.advance(HOUR - 10)
    local same = bind_to("lt-buyer", code_of("lt-two"))
    expect({ same.status, same.body.changed, same.body.expires_at }).to_equal({ 200, false, kit.now() + HOUR })
    kit.advance(HOUR - 1)
    expect(create("lt-buyer", { { sku = sku, qty = 1 } }).attribution.referrer).to_be("lt-two")
    kit.advance(1)
    expect(kit.user("lt-buyer"):get("/referral/me").body.binding).to_be(kit.null)
    expect(create("lt-buyer", { { sku = sku, qty = 1 } }).attribution).to_equal({})
    expect(kit.user("lt-two"):get("/referral/me").body.team).to_equal({ level1 = 0, level2 = 0 })
  end)
end)

describe("self-purchase rebate and the daily cap", function()
  local sku

  it("pays a distributor level 1 on her own order, her referrer level 2, nobody above", function()
    for _, u in ipairs({ "self-r", "self-q", "self-p" }) do approved(u) end
    sku = new_sku(10000)
    -- the next 23:30 in Shanghai (15:30 UTC): today's, or tomorrow's when the tests
    -- before this one have moved the clock past it (it failed from 21:30 to 22:00)
    kit.advance((to_next_local_day() - 1800) % DAY)
    bind("self-q", "self-r")
    bind("self-p", "self-q")
    bind("self-u", "self-p")                              -- r -> q -> p -> u, for an hour
    local own = buy("self-p", { { sku = sku, qty = 1 } })
    expect(balance("self-p")).to_equal(money(1000))
    expect(balance("self-q")).to_equal(money(500))
    expect(balance("self-r")).to_equal(money())
    expect(entries("self-p", own.id)).to_equal({ { "commission", 1, 1000, "frozen" } })
  end)

  it("caps what one distributor books per local day, and shows what was capped", function()
    local o2 = buy("self-u", { { sku = sku, qty = 1 } })
    expect(balance("self-p")).to_equal(money(CAP))       -- 1000 + 1000 passes 1500: 500 granted
    expect(balance("self-q")).to_equal(money(1000))
    local e = kit.user("self-p"):get("/referral/earnings").body.entries.items[1]
    expect({ e.order_id, e.amount_fen, e.capped_fen }).to_equal({ o2.id, 500, 500 })
    local o3 = buy("self-u", { { sku = sku, qty = 1 } })
    expect(entries("self-p", o3.id)).to_equal({ { "commission", 1, 0, "frozen" } })
    expect(balance("self-q")).to_equal(money(CAP))
  end)

  it("starts the cap again on the next local day", function()
    kit.advance(to_next_local_day())                      -- 00:00 in Shanghai, the same UTC day
    expect((kit.now() + 8 * HOUR) % DAY).to_be(0)
    buy("self-u", { { sku = sku, qty = 1 } })
    expect(balance("self-p")).to_equal(money(CAP + 1000))
    expect(balance("self-q")).to_equal(money(CAP + 500))
    expect(balance("self-r")).to_equal(money())
  end)
end)
