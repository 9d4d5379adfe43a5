-- referral (分销): the plugin's own fast suite, with catalog, orders
-- (attribution_plugin = "referral") and payments on the kit's test clock.
-- This file runs the default modes (join_mode everyone, binding_mode
-- unbound, bindings forever); referral_modes_test.lua and
-- referral_new_users_test.lua run the other configs (the kit enables one
-- config per file). Commission comes from orders' events, so every payment,
-- refund and confirmation is followed by kit.drain(); the refund window is
-- crossed with kit.advance. What the kit cannot do stays in
-- tests/e2e/test_referral.py: an event delivered twice (the kit has no way
-- to redeliver or emit one), concurrent withdrawals, a config that keeps the
-- plugin from loading.

local DAY = 86400
local WINDOW = 7 * DAY

kit.plugins {
  catalog = {},
  orders = { attribution_plugin = "referral", max_unpaid_orders = 5 },
  payments = { secret = "referral-kit-secret-0123456789" },
  referral = { level1_rate_bp = 1000, level2_rate_bp = 500, settle_after_seconds = WINDOW,
               min_withdrawal_fen = 100 },
}

-- the shared helpers (test/support.lua), found beside this file
local support = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/support.lua")
local new_sku, join, code_of, bind_to, bind = support.new_sku, support.join, support.code_of,
  support.bind_to, support.bind
local create, pay, buy, refund, confirm = support.create, support.pay, support.buy, support.refund,
  support.confirm
local balance, money, entries = support.balance, support.money, support.entries
local withdraw, decide = support.withdraw, support.decide

-- ---- distributors and bindings

describe("joining", function()
  it("makes an active promoter with an 8-character code, once", function()
    local res = kit.user("jo"):post("/referral/join", {})
    expect(res.status).to_be(201)
    expect({ res.body.user, res.body.kind, res.body.status, res.body.store })
      .to_equal({ "jo", "promoter", "active", nil })
    expect(res.body.code).to_match("^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]+$")
    expect(#res.body.code).to_be(8)
    local again = kit.user("jo"):post("/referral/join", {})
    expect({ again.status, again.body.code }).to_equal({ 200, res.body.code })
    local extra = expect(kit.user("jo2"):post("/referral/join", { fee_fen = 100 })).to_be_error(400, "invalid_field")
    expect(extra.details).to_equal({ field = "fee_fen" })
    expect(kit.admin():get("/referral/distributors/jo2").status).to_be(404)
  end)

  it("is shown in the effective settings, at most two levels", function()
    local s = kit.admin():get("/referral/settings").body
    expect({ s.max_levels, s.join_mode, s.binding_mode, s.level1_rate_bp, s.level2_rate_bp,
             s.settle_after_seconds, s.min_withdrawal_fen, s.self_purchase_rebate })
      .to_equal({ 2, "everyone", "unbound", 1000, 500, WINDOW, 100, false })
  end)
end)

describe("binding", function()
  it("keeps the first binding, and the same code again changes nothing", function()
    join("cyc-x")
    join("cyc-y")
    join("cyc-w")
    local b = bind("cyc-y", "cyc-x")
    expect({ b.referrer, b.code, b.changed, b.bound_at, b.expires_at })
      .to_equal({ "cyc-x", code_of("cyc-x"), true, kit.now(), nil })
    bind("cyc-w", "cyc-y")                              -- x -> y -> w
    local other = expect(bind_to("cyc-w", code_of("cyc-x"))).to_be_error(409, "already_bound")
    expect(other.details).to_equal({ referrer = "cyc-y" })
    local same = bind_to("cyc-w", code_of("cyc-y"))
    expect({ same.status, same.body.referrer, same.body.changed }).to_equal({ 200, "cyc-y", false })
    local me = kit.user("cyc-x"):get("/referral/me").body
    expect({ me.binding, me.team }).to_equal({ kit.null, { level1 = 1, level2 = 1 } })
    local team2 = kit.user("cyc-x"):get("/referral/team?level=2").body
    expect({ team2.level1, team2.level2, team2.items[1].user, team2.items[1].via })
      .to_equal({ 1, 1, "cyc-w", "cyc-y" })
  end)

  it("refuses any cycle through the whole chain, and a user binding herself", function()
    -- x -> y -> w from the test before
    local cycle = expect(bind_to("cyc-x", code_of("cyc-w"))).to_be_error(409, "binding_cycle")
    expect(cycle.details).to_equal({ referrer = "cyc-w" })
    expect(bind_to("cyc-x", code_of("cyc-y"))).to_be_error(409, "binding_cycle")
    expect(bind_to("cyc-x", code_of("cyc-x"))).to_be_error(409, "binding_cycle")
    expect(kit.user("cyc-x"):get("/referral/me").body.binding).to_be(kit.null)
  end)

  it("refuses unknown codes and bad bodies, naming the field", function()
    expect(bind_to("nobody", "NOSUCHCODE")).to_be_error(404, "code_not_found")
    local typed = expect(bind_to("nobody", 12)).to_be_error(400, "invalid_field")
    expect(typed.details).to_equal({ field = "code" })
    local extra = expect(kit.user("nobody"):post("/referral/bind", { code = "A", level = 3 })).to_be_error(400, "invalid_field")
    expect(extra.details).to_equal({ field = "level" })
    expect(kit.user("nobody"):post("/referral/bind", { 1, 2 })).to_be_error(400, "invalid_body")
    expect(kit.query("SELECT count(*) AS n FROM referral_bindings WHERE user = 'nobody'")).to_equal({ { n = 0 } })
  end)
end)

-- ---- commission

describe("commission", function()
  local o, sku

  it("pays two levels on payment, exact in fen, and nothing on a third", function()
    join("ch-z")
    join("ch-a")
    join("ch-b")
    bind("ch-a", "ch-z")
    bind("ch-b", "ch-a")
    bind("ch-c", "ch-b")                 -- z -> a -> b -> c: three levels above c
    sku = new_sku(12345)
    o = create("ch-c", { { sku = sku, qty = 1 } })
    expect(o.attribution).to_equal({ referrer = "ch-b", referrer2 = "ch-a" })
    expect(balance("ch-b")).to_equal(money())        -- nothing before the payment
    pay(o)
    expect(balance("ch-b")).to_equal(money(1234))    -- floor(12345 * 10 %)
    expect(balance("ch-a")).to_equal(money(617))     -- floor(12345 * 5 %)
    expect(balance("ch-z")).to_equal(money())
    expect(entries("ch-b", o.id)).to_equal({ { "commission", 1, 1234, "frozen" } })
    local mine = kit.user("ch-a"):get("/referral/orders").body.items
    expect({ #mine, mine[1].order_id, mine[1].level }).to_equal({ 1, o.id, 2 })
  end)

  it("gives back a partial refund in proportion, floor(C * kept / paid)", function()
    refund(o.id, 2345)
    expect(balance("ch-b")).to_equal(money(999))     -- 1234 * 10000 // 12345
    expect(balance("ch-a")).to_equal(money(499))     -- 617 * 10000 // 12345
    expect(entries("ch-b", o.id)).to_equal({ { "commission", 1, 1234, "frozen" },
                                             { "reversal", 1, -235, "frozen" } })
  end)

  it("settles at the second the refund window after completion closes", function()
    confirm("ch-c", o.id)
    kit.advance(WINDOW - 1)
    expect(balance("ch-b")).to_equal(money(999))
    kit.advance(1)
    expect(balance("ch-b")).to_equal(money(0, 999))
    expect(balance("ch-a")).to_equal(money(0, 499))
    expect(entries("ch-b", o.id)).to_equal({ { "commission", 1, 1234, "settled" },
                                             { "reversal", 1, -235, "settled" } })
  end)

  it("lets settled money be withdrawn: a minimum, never above what is free", function()
    local low = expect(withdraw("ch-b", 99)).to_be_error(400, "below_minimum")
    expect(low.details).to_equal({ min_withdrawal_fen = 100 })
    local high = expect(withdraw("ch-b", 1000)).to_be_error(409, "insufficient_balance")
    expect(high.details).to_equal({ available_fen = 999 })
    expect(withdraw("ch-z", 100)).to_be_error(409, "insufficient_balance")
    expect(withdraw("ch-b", 10.5)).to_be_error(400, "invalid_field")
    local w1 = withdraw("ch-b", 500)
    expect({ w1.status, w1.body.status, w1.body.amount_fen }).to_equal({ 201, "pending", 500 })
    expect(balance("ch-b")).to_equal(money(0, 999, 0, 500))
    expect(withdraw("ch-b", 600)).to_be_error(409, "insufficient_balance")      -- pending counts
    local w2 = withdraw("ch-b", 499).body
    expect(decide(w2, "reject").body.status).to_be("rejected")
    expect(balance("ch-b")).to_equal(money(0, 999, 0, 500))           -- the rejection gave it back
    expect(decide(w1.body, "approve").body.status).to_be("approved")
    expect(balance("ch-b")).to_equal(money(0, 999, 500))
    expect(decide(w1.body, "approve")).to_be_error(409, "not_pending")
    expect(decide(w2, "approve")).to_be_error(409, "not_pending")
    expect(decide(withdraw("ch-b", 499).body, "approve").status).to_be(200)
    expect(balance("ch-b")).to_equal(money(0, 999, 999))
    local listed = {}
    for i, w in ipairs(kit.admin():get("/referral/withdrawals?user=ch-b").body.items) do listed[i] = w.status end
    expect(listed).to_equal({ "approved", "rejected", "approved" })
  end)

  it("books a refund after settlement and withdrawal as a settled negative entry", function()
    refund(o.id)                                   -- the rest of the order
    expect(balance("ch-b")).to_equal(money(0, 0, 999))
    expect(balance("ch-b")[5]).to_be(-999)         -- available goes negative, nothing is lost
    expect(balance("ch-a")).to_equal(money(0, 0))
    expect(entries("ch-b", o.id)).to_equal({ { "commission", 1, 1234, "settled" },
                                             { "reversal", 1, -235, "settled" },
                                             { "reversal", 1, -999, "settled" } })
    -- a later order refunded in full before completion nets to exactly zero
    local o2 = buy("ch-c", { { sku = sku, qty = 1 } })
    expect(balance("ch-b")).to_equal(money(1234, 0, 999))
    refund(o2.id)
    expect(balance("ch-b")).to_equal(money(0, 0, 999))
    local net = 0
    for _, e in ipairs(entries("ch-a", o2.id)) do net = net + e[3] end
    expect(net).to_be(0)
  end)

  it("uses a SKU's own rates, per line, and pays no self-purchase rebate when off", function()
    join("sku-p1")
    join("sku-p2")
    bind("sku-p2", "sku-p1")
    bind("sku-buyer", "sku-p2")
    local x, y = new_sku(3333), new_sku(1001)
    local put = kit.admin():put("/referral/sku-rates/" .. x, { level1_rate_bp = 2000, level2_rate_bp = 0 })
    expect({ put.status, put.body }).to_equal({ 200, { sku = x, level1_rate_bp = 2000, level2_rate_bp = 0 } })
    buy("sku-buyer", { { sku = x, qty = 1 }, { sku = y, qty = 2 } })
    expect(balance("sku-p2")).to_equal(money(666 + 200))   -- 20 % of 3333; 10 % of 2002
    expect(balance("sku-p1")).to_equal(money(0 + 100))     -- 0 % of 3333; 5 % of 2002
    expect(kit.admin():delete("/referral/sku-rates/" .. x).status).to_be(200)
    expect(kit.admin():delete("/referral/sku-rates/" .. x)).to_be_error(404, "rate_not_found")
    buy("sku-buyer", { { sku = x, qty = 1 } })
    expect(balance("sku-p2")).to_equal(money(866 + 333))
    expect(balance("sku-p1")).to_equal(money(100 + 166))
    -- her own order: nothing for her, level 1 for her referrer
    local own = buy("sku-p2", { { sku = y, qty = 10 } })
    expect(entries("sku-p2", own.id)).to_equal({})
    expect(balance("sku-p1")).to_equal(money(266 + 1001))
  end)

  it("refuses SKU rates for a third level, above 100 % together, or not whole", function()
    local x = new_sku(500)
    local path = "/referral/sku-rates/" .. x
    local third = expect(kit.admin():put(path, { level1_rate_bp = 100, level2_rate_bp = 100, level3_rate_bp = 50 })).to_be_error(400, "invalid_field")
    expect(third.details).to_equal({ field = "level3_rate_bp" })
    expect(third.message).to_contain("two levels at most")
    local sum = expect(kit.admin():put(path, { level1_rate_bp = 9000, level2_rate_bp = 1001 })).to_be_error(400, "invalid_field")
    expect(sum.details).to_equal({ field = "level2_rate_bp" })
    local whole = expect(kit.admin():put(path, { level1_rate_bp = 1.5, level2_rate_bp = 0 })).to_be_error(400, "invalid_field")
    expect(whole.details).to_equal({ field = "level1_rate_bp" })
    expect(kit.query("SELECT count(*) AS n FROM referral_sku_rates WHERE sku = ?", x)).to_equal({ { n = 0 } })
  end)
end)

-- ---- stores, guides, reports

describe("stores and guides", function()
  local start

  it("need an open store; a guide's customers' orders carry her and her store", function()
    for _, s in ipairs({ { "s1", "Store One" }, { "s2", "Store Two" } }) do
      local res = kit.admin():post("/referral/stores", { id = s[1], name = s[2] })
      expect({ res.status, res.body.status }).to_equal({ 201, "open" })
    end
    expect(kit.admin():post("/referral/stores", { id = "s1", name = "again" })).to_be_error(409, "store_exists")
    local nostore = expect(kit.admin():post("/referral/distributors", { user = "st-g9", kind = "guide" })).to_be_error(400, "invalid_field")
    expect(nostore.details).to_equal({ field = "store" })
    expect(kit.admin():post("/referral/distributors", { user = "st-g9", kind = "guide", store = "nowhere" })).to_be_error(404, "store_not_found")
    for _, g in ipairs({ { "st-guide-1", "s1" }, { "st-guide-2", "s1" }, { "st-guide-3", "s2" } }) do
      local res = kit.admin():post("/referral/distributors", { user = g[1], kind = "guide", store = g[2] })
      expect({ res.status, res.body.kind, res.body.store }).to_equal({ 201, "guide", g[2] })
    end
    join("st-promoter")
    kit.advance(1)       -- the period [start, start + 1) holds this test's bindings and orders only
    start = kit.now()
    -- bound in an order that differs from the tie-break order (user id)
    bind("st-u4", "st-guide-3")
    bind("st-u3", "st-promoter")
    bind("st-u2", "st-guide-2")
    bind("st-promoter", "st-guide-1")
    bind("st-u1", "st-guide-1")
    sku = new_sku(1000)
    local u1 = buy("st-u1", { { sku = sku, qty = 10 } })
    buy("st-u2", { { sku = sku, qty = 20 } })
    buy("st-u2", { { sku = sku, qty = 5 } })
    local u3 = buy("st-u3", { { sku = sku, qty = 3 } })    -- promoter -> guide-1: the nearest guide is level 2
    buy("st-u4", { { sku = sku, qty = 7 } })
    expect(u1.attribution).to_equal({ referrer = "st-guide-1", store = "s1", guide = "st-guide-1" })
    expect(u3.attribution).to_equal({ referrer = "st-promoter", referrer2 = "st-guide-1", store = "s1",
                                      guide = "st-guide-1" })
    expect(balance("st-guide-1")).to_equal(money(1000 + 150))
    expect(balance("st-guide-2")).to_equal(money(2500))
    expect(balance("st-promoter")).to_equal(money(300))
  end)

  it("report a store's performance as the sum of its guides', inside the period", function()
    local period = ("?from=%d&to=%d"):format(start, start + 1)
    local s1 = kit.admin():get("/referral/stores/s1/performance" .. period).body
    expect({ s1.orders, s1.sales_fen, s1.commission_fen }).to_equal({ 4, 38000, 3950 })
    local guides = {}
    for i, g in ipairs(s1.guides) do guides[i] = { g.guide, g.orders, g.sales_fen, g.commission_fen } end
    expect(guides).to_equal({ { "st-guide-2", 2, 25000, 2500 }, { "st-guide-1", 2, 13000, 1450 } })
    local s2 = kit.admin():get("/referral/stores/s2/performance" .. period).body
    expect({ s2.orders, s2.sales_fen, s2.commission_fen }).to_equal({ 1, 7000, 700 })
    local later = kit.admin():get(("/referral/stores/s1/performance?from=%d&to=%d"):format(start + 1, start + 99)).body
    expect({ later.orders, later.sales_fen, later.commission_fen }).to_equal({ 0, 0, 0 })
    expect(kit.admin():get("/referral/stores/s1/performance?from=10&to=5")).to_be_error(400, "invalid_query")
    expect(kit.admin():get("/referral/stores/nope/performance")).to_be_error(404, "store_not_found")
  end)

  it("rank the leaderboard highest first, ties by user id", function()
    local period = ("?from=%d&to=%d"):format(start, start + 1)
    local board = {}
    for i, r in ipairs(kit.admin():get("/referral/leaderboard" .. period .. "&by=sales").body.items) do
      board[i] = { r.rank, r.user, r.value }
    end
    expect(board).to_equal({ { 1, "st-guide-2", 25000 }, { 2, "st-guide-1", 10000 }, { 3, "st-guide-3", 7000 },
                             { 4, "st-promoter", 3000 } })
    local members = {}
    for i, r in ipairs(kit.admin():get("/referral/leaderboard" .. period .. "&by=new_members").body.items) do
      members[i] = { r.user, r.value }
    end
    expect(members).to_equal({ { "st-guide-1", 2 }, { "st-guide-2", 1 }, { "st-guide-3", 1 }, { "st-promoter", 1 } })
    expect(kit.admin():get("/referral/leaderboard?by=level3")).to_be_error(400, "invalid_field")
  end)

  it("a disabled guide earns nothing, guides nobody, and her code binds nobody", function()
    expect(kit.admin():patch("/referral/stores/s2", { status = "closed" }).body.status).to_be("closed")
    local d = kit.admin():patch("/referral/distributors/st-guide-3", { status = "disabled" }).body
    expect({ d.status, d.store }).to_equal({ "disabled", "s2" })
    local o = buy("st-u4", { { sku = sku, qty = 1 } })
    expect(o.attribution).to_equal({ referrer = "st-guide-3" })
    expect(balance("st-guide-3")).to_equal(money(700))
    expect(bind_to("st-u5", d.code)).to_be_error(404, "code_not_found")
    expect(kit.admin():patch("/referral/distributors/st-guide-3", { store = "s2" })).to_be_error(409, "store_closed")
    expect(kit.user("st-guide-3"):post("/referral/join", {})).to_be_error(409, "distributor_disabled")
  end)
end)
