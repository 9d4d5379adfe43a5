-- Table-driven pricing: every case sets up its promotions, previews a cart
-- (POST /orders/preview), checks the total and discount it expects to the fen,
-- checks that every line's split sums (each promotion's shares to its
-- discount, each line's discount to its promotions + coupon, the lines' paid
-- to the total), then checks out the same cart (POST /orders) and expects
-- the order to agree with the preview line by line. The brand's stacking here
-- is the default (item promotions, then the best order promotion on what is
-- left, then the coupon); stacking_test.lua has the other settings.

kit.plugins {
  catalog = {}, coupons = {}, promotions = {},
  orders = { promotions_plugin = "promotions", max_unpaid_orders = 1000 },
}

local shop = require("tp.testshop")
local A = shop.sku { code = "A", price_fen = 10000, stock = 100000 }
local B = shop.sku { code = "B", price_fen = 4990, stock = 100000 }
local C = shop.sku { code = "C", price_fen = 999, stock = 100000 }
local D = shop.sku { code = "D", price_fen = 3333, stock = 100000 }
local E = shop.sku { code = "E", price_fen = 1, stock = 100000 }

local function promo(kind, fields)
  local b = { name = kind, kind = kind, starts_at = kit.now() - 60, ends_at = kit.now() + 86400 }
  for k, v in pairs(fields) do b[k] = v end
  return b
end
local function tiers(t) return { tiers = t } end
local FR1 = promo("full_reduction", tiers { { min_fen = 19900, off_fen = 2000 }, { min_fen = 29900, off_fen = 4000 },
                                           { min_fen = 49900, off_fen = 8000 } })
local FR1_ALONE = promo("full_reduction", { stacks_with_coupon = false, tiers = FR1.tiers })
local FRA = promo("full_reduction", { skus = { A }, tiers = { { min_fen = 19900, off_fen = 2000 } } })
local FRQ = promo("full_reduction", tiers { { min_qty = 2, off_fen = 500 }, { min_qty = 4, off_fen = 1500 } })
local FR_HUGE = promo("full_reduction", tiers { { min_qty = 1, off_fen = 100000 } })
local FD1 = promo("full_discount", tiers { { min_qty = 2, percent = 90 }, { min_qty = 3, percent = 80 } })
local FDF = promo("full_discount", tiers { { min_fen = 10000, percent = 95 } })
local FD_1PCT = promo("full_discount", tiers { { min_qty = 1, percent = 1 } })
local NTH = promo("nth_discount", { skus = { B }, nth = 2, percent = 50, priority = 5 })
local NTH3 = promo("nth_discount", { skus = { C }, nth = 3, percent = 10 })
local BUN = promo("bundle", { skus = { B, C, D }, count = 3, price_fen = 9900 })
local TIM = promo("timed_discount", { skus = { A, C }, percent = 85 })
local TIM_B = promo("timed_discount", { skus = { B }, percent = 90 })
local TIM_E = promo("timed_discount", { skus = { E }, percent = 85 })
local OFF = promo("full_reduction", { status = "disabled", tiers = FR1.tiers })
local LATER = promo("full_reduction", { starts_at = kit.now() + 3600, ends_at = kit.now() + 7200, tiers = FR1.tiers })
local OVER = promo("full_reduction", { starts_at = kit.now() - 7200, ends_at = kit.now() - 3600, tiers = FR1.tiers })

local coupon_templates = {}
local function coupon_for(user, kind)
  if not coupon_templates[kind] then
    local body = kind == "fixed" and { name = "¥10", kind = "fixed", amount_off_fen = 1000 }
      or { name = "满199减20", kind = "threshold", amount_off_fen = 2000, min_spend_fen = 19900 }
    body.valid_days, body.total_quantity = 7, 100000
    local t = kit.admin():post("/coupons/templates", body)
    assert(t.status == 201, "template refused")
    coupon_templates[kind] = t.body.id
  end
  local c = kit.user(user):post("/coupons/templates/" .. coupon_templates[kind] .. "/claim")
  assert(c.status == 201, "claim refused")
  return c.body.id
end

local function L(sku, qty) return { sku = sku, qty = qty } end

-- { name, promotions, lines, expected total_fen, expected promotions_fen, coupon kind?, expected error? }
local cases = {
  { "满减: below the first tier", { FR1 }, { L(A, 1) }, 10000, 0 },
  { "满减: the first tier", { FR1 }, { L(A, 2) }, 18000, 2000 },
  { "满减: the second tier", { FR1 }, { L(A, 3) }, 26000, 4000 },
  { "满减: the top tier", { FR1 }, { L(A, 5) }, 42000, 8000 },
  { "满减: split over two lines by largest remainder", { FR1 }, { L(A, 1), L(B, 2) }, 17980, 2000 },
  { "满折: one unit is not two", { FD1 }, { L(B, 1) }, 4990, 0 },
  { "满折: two units at 90 %", { FD1 }, { L(B, 2) }, 8982, 998 },
  { "满折: three units at 80 %", { FD1 }, { L(B, 3) }, 11976, 2994 },
  { "满折: two SKUs count together, rounded down for the buyer", { FD1 }, { L(A, 1), L(C, 1) }, 9899, 1100 },
  { "满折 by amount: 10 fen short", { FDF }, { L(C, 10) }, 9990, 0 },
  { "满折 by amount: reached", { FDF }, { L(A, 1) }, 9500, 500 },
  { "第二件半价: one unit", { NTH }, { L(B, 1) }, 4990, 0 },
  { "第二件半价: two units", { NTH }, { L(B, 2) }, 7485, 2495 },
  { "第二件半价: three units, one at half", { NTH }, { L(B, 3) }, 12475, 2495 },
  { "第二件半价: four units, two at half", { NTH }, { L(B, 4) }, 14970, 4990 },
  { "第二件半价: a SKU out of scope", { NTH }, { L(A, 2) }, 20000, 0 },
  { "第三件1折", { NTH3 }, { L(C, 3) }, 2097, 900 },
  { "N元任选: three of one SKU", { BUN }, { L(B, 3) }, 9900, 5070 },
  { "N元任选: three cheaper than the bundle take nothing", { BUN }, { L(B, 1), L(C, 1), L(D, 1) }, 9322, 0 },
  { "N元任选: split over two SKUs", { BUN }, { L(B, 2), L(D, 1) }, 9900, 3413 },
  { "N元任选: the fourth unit at its price", { BUN }, { L(B, 4) }, 14890, 5070 },
  { "N元任选: the dearest units go in the bundle", { BUN }, { L(B, 2), L(D, 2) }, 13233, 3413 },
  { "N元任选: a SKU out of scope does not count", { BUN }, { L(B, 2), L(A, 1) }, 19980, 0 },
  { "限时折扣: 85 %", { TIM }, { L(A, 1) }, 8500, 1500 },
  { "限时折扣: rounded down per unit", { TIM }, { L(C, 3) }, 2547, 450 },
  { "限时折扣: a SKU out of scope", { TIM }, { L(B, 1) }, 4990, 0 },
  { "限时折扣: a 1-fen unit stays 1 fen", { TIM_E }, { L(E, 3) }, 3, 0 },
  { "限时折扣 then 满减 on what is left", { TIM, FR1 }, { L(A, 3) }, 23500, 6500 },
  { "限时折扣 then 满减: the discount can leave the tier", { TIM, FR1 }, { L(A, 2) }, 17000, 3000 },
  { "第二件半价 then 满减", { NTH, FR1 }, { L(B, 4), L(A, 1) }, 22970, 6990 },
  { "two order promotions: the larger wins (满减)", { FR1, FDF }, { L(A, 2) }, 18000, 2000 },
  { "two order promotions: the larger wins (满减, top)", { FR1, FDF }, { L(A, 5) }, 42000, 8000 },
  { "两个 order promotions: only 满折 reached", { FR1, FD1 }, { L(B, 3) }, 11976, 2994 },
  { "two order promotions: 满折 takes more", { FR1, FD1 }, { L(A, 3) }, 24000, 6000 },
  { "two item promotions on different SKUs", { TIM, NTH }, { L(A, 1), L(B, 2) }, 15985, 3995 },
  { "two item promotions on one SKU: the higher priority", { TIM_B, NTH }, { L(B, 2) }, 7485, 2495 },
  { "two item promotions on one SKU: the other when the first takes nothing", { TIM_B, NTH }, { L(B, 1) }, 4491, 499 },
  { "满减 scoped to one SKU: not reached", { FRA }, { L(A, 1), L(B, 4) }, 29960, 0 },
  { "满减 scoped to one SKU: reached on it alone", { FRA }, { L(A, 2), L(B, 1) }, 22990, 2000 },
  { "满减 by count: two", { FRQ }, { L(C, 3) }, 2497, 500 },
  { "满减 by count: four", { FRQ }, { L(C, 4) }, 2496, 1500 },
  { "满减 by count: one", { FRQ }, { L(C, 1) }, 999, 0 },
  { "满减 larger than the order leaves 1 fen", { FR_HUGE }, { L(C, 2) }, 1, 1997 },
  { "满减 on a 1-fen order takes nothing", { FR_HUGE }, { L(E, 1) }, 1, 0 },
  { "满折 at 1 %", { FD_1PCT }, { L(C, 1) }, 9, 990 },
  { "a disabled promotion", { OFF }, { L(A, 2) }, 20000, 0 },
  { "a promotion not started", { LATER }, { L(A, 2) }, 20000, 0 },
  { "a promotion that ended", { OVER }, { L(A, 2) }, 20000, 0 },
  { "满减 then a ¥10 coupon", { FR1 }, { L(A, 2) }, 17000, 2000, "fixed" },
  { "满减 then a threshold coupon met on what is left", { FR1 }, { L(A, 3) }, 24000, 4000, "threshold" },
  { "a threshold coupon is measured after 满减", { FR1 }, { L(A, 2) }, nil, nil, "threshold", { 409, "coupon_not_usable" } },
  { "a promotion that does not stack refuses the coupon", { FR1_ALONE }, { L(A, 2) }, nil, nil, "fixed", { 409, "coupon_not_stackable" } },
  { "a promotion that does not stack, not reached: the coupon", { FR1_ALONE }, { L(A, 1) }, 9000, 0, "fixed" },
  { "限时折扣, 第二件半价, 满减 and a coupon", { TIM, NTH, FR1 }, { L(A, 2), L(B, 2), L(C, 1) }, 22334, 7645, "fixed" },
}

-- families, each priced by its rule written out here
for q = 1, 10 do
  local items = 10000 * q
  local off = items >= 49900 and 8000 or items >= 29900 and 4000 or items >= 19900 and 2000 or 0
  cases[#cases + 1] = { ("满减 family: %d x ¥100"):format(q), { FR1 }, { L(A, q) }, items - off, off }
end
for q = 1, 10 do
  local off = (q // 2) * 2495
  cases[#cases + 1] = { ("第二件半价 family: %d x ¥49.90"):format(q), { NTH }, { L(B, q) }, 4990 * q - off, off }
end
for q = 1, 9 do
  local off = (q // 3) * (3 * 4990 - 9900)
  cases[#cases + 1] = { ("N元任选 family: %d x ¥49.90"):format(q), { BUN }, { L(B, q) }, 4990 * q - off, off }
end
for q = 1, 10 do
  cases[#cases + 1] = { ("限时折扣 family: %d x ¥9.99"):format(q), { TIM }, { L(C, q) }, 849 * q, 150 * q }
end
for q = 1, 8 do
  local items = 3333 * q
  local total = q >= 3 and items * 80 // 100 or q == 2 and items * 90 // 100 or items
  cases[#cases + 1] = { ("满折 family: %d x ¥33.33"):format(q), { FD1 }, { L(D, q) }, total, items - total }
end
for q = 1, 8 do
  local base = 8500 * q
  local off = base >= 49900 and 8000 or base >= 29900 and 4000 or base >= 19900 and 2000 or 0
  cases[#cases + 1] = { ("限时折扣 + 满减 family: %d x ¥100"):format(q), { TIM, FR1 }, { L(A, q) }, base - off,
                        1500 * q + off }
end
for q = 1, 6 do
  local items = 10000 * q
  local off = items >= 49900 and 8000 or items >= 29900 and 4000 or items >= 19900 and 2000 or 0
  cases[#cases + 1] = { ("满减 + ¥10 coupon family: %d x ¥100"):format(q), { FR1 }, { L(A, q) }, items - off - 1000,
                        off, "fixed" }
end

local made = {}
local function setup(promos)
  for _, id in ipairs(made) do assert(kit.admin():delete("/promotions/" .. id).status == 200) end
  made = {}
  for _, p in ipairs(promos) do
    local r = kit.admin():post("/promotions", p)
    assert(r.status == 201, "promotion refused: " .. tostring(r.body and r.body.error and r.body.error.message))
    made[#made + 1] = r.body.id
  end
end

---Every split sums: each promotion's shares, each line's discount, the total.
local function check_sums(p)
  local by_line, promos = {}, 0
  for _, pr in ipairs(p.promotions) do
    local sum = 0
    for _, s in ipairs(pr.lines) do
      sum = sum + s.discount_fen
      by_line[s.line] = (by_line[s.line] or 0) + s.discount_fen
    end
    expect(sum).to_be(pr.discount_fen)
    promos = promos + pr.discount_fen
  end
  expect(promos).to_be(p.promotions_fen)
  local paid, discount, coupon = 0, 0, 0
  for i, l in ipairs(p.lines) do
    expect(l.amount_fen).to_be(l.qty * l.unit_price_fen)
    local shares = 0
    for _, s in ipairs(l.promotions) do shares = shares + s.discount_fen end
    expect(shares).to_be(by_line[i] or 0)
    expect(l.discount_fen >= shares and l.discount_fen <= l.amount_fen).to_be(true)
    coupon = coupon + (l.discount_fen - shares)
    expect(l.paid_fen).to_be(l.amount_fen - l.discount_fen)
    paid, discount = paid + l.paid_fen, discount + l.discount_fen
  end
  expect(coupon).to_be(p.coupon_fen + p.points_fen)
  expect(discount).to_be(p.discount_fen)
  expect(paid).to_be(p.total_fen)
  expect(p.items_fen - p.discount_fen).to_be(p.total_fen)
  expect(p.total_fen >= 1).to_be(true)
end

describe("pricing with promotions (table-driven)", function()
  it("has more than 100 cases", function() expect(#cases > 100).to_be(true) end)
  for n, c in ipairs(cases) do
    it(c[1], function()
      setup(c[2])
      local user = "buyer" .. n
      local body = { lines = c[3], coupon_id = c[6] and coupon_for(user, c[6]) or nil }
      local p = kit.user(user):post("/orders/preview", body)
      if c[7] then
        expect(p).to_be_error(c[7][1], c[7][2])
        local o = kit.user(user):post("/orders", body)
        expect(o).to_be_error(c[7][1], c[7][2])
        return
      end
      expect(p.status).to_be(200)
      expect(p.body.total_fen).to_be(c[4])
      expect(p.body.promotions_fen).to_be(c[5])
      check_sums(p.body)
      -- the checkout agrees with its preview, line by line
      local o = kit.user(user):post("/orders", body)
      expect(o.status).to_be(201)
      expect({ o.body.items_fen, o.body.discount_fen, o.body.total_fen })
        .to_equal({ p.body.items_fen, p.body.discount_fen, p.body.total_fen })
      for i, l in ipairs(o.body.lines) do
        expect({ l.sku, l.unit_price_fen, l.discount_fen, l.paid_fen })
          .to_equal({ p.body.lines[i].sku, p.body.lines[i].unit_price_fen, p.body.lines[i].discount_fen,
                      p.body.lines[i].paid_fen })
      end
      -- what each promotion took off each line is on record
      local kept = kit.query([[SELECT coalesce(sum(discount_fen), 0) AS s FROM orders_promotion_lines
        WHERE order_id = ?]], o.body.id)[1].s
      expect(kept).to_be(c[5])
    end)
  end
end)

describe("the split", function()
  it("gives the odd fen of a 满减 to the largest remainder", function()
    setup({ FR1 })
    local p = kit.user("split"):post("/orders/preview", { lines = { L(A, 1), L(B, 2) } }).body
    expect({ p.lines[1].discount_fen, p.lines[2].discount_fen }).to_equal({ 1001, 999 })
  end)
  it("splits an N元任选 by what the bundled units cost", function()
    setup({ BUN })
    local p = kit.user("split2"):post("/orders/preview", { lines = { L(B, 2), L(D, 1) } }).body
    expect({ p.lines[1].discount_fen, p.lines[2].discount_fen }).to_equal({ 2559, 854 })
  end)
end)

describe("凑单 hints", function()
  it("says what to add for the next tier", function()
    setup({ FR1 })
    local p = kit.user("hint1"):post("/orders/preview", { lines = { L(A, 1) } }).body
    expect(p.hints[1].add_fen).to_be(9900)
    expect(p.hints[1].off_fen).to_be(2000)
    expect(p.hints[1].message).to_be("add ¥99.00 for ¥20.00 off")
    p = kit.user("hint1"):post("/orders/preview", { lines = { L(A, 2) } }).body
    expect({ p.hints[1].add_fen, p.hints[1].off_fen }).to_equal({ 9900, 4000 })
    p = kit.user("hint1"):post("/orders/preview", { lines = { L(A, 5) } }).body
    expect(#p.hints).to_be(0)
  end)
  it("counts units for a tier by count, after item promotions for one by amount", function()
    setup({ FRQ })
    local p = kit.user("hint2"):post("/orders/preview", { lines = { L(C, 1) } }).body
    expect({ p.hints[1].add_qty, p.hints[1].message }).to_equal({ 1, "add 1 more for ¥5.00 off" })
    setup({ TIM, FR1 })
    p = kit.user("hint2"):post("/orders/preview", { lines = { L(A, 2) } }).body
    expect(p.hints[1].add_fen).to_be(2900)
  end)
end)

describe("a preview", function()
  it("reserves nothing and locks nothing", function()
    setup({ FR1 })
    local before = kit.query("SELECT stock FROM catalog_skus WHERE code = 'A'")[1].stock
    local coupon = coupon_for("looker", "fixed")
    local p = kit.user("looker"):post("/orders/preview", { lines = { L(A, 2) }, coupon_id = coupon })
    expect(p.body.total_fen).to_be(17000)
    expect(kit.query("SELECT stock FROM catalog_skus WHERE code = 'A'")[1].stock).to_be(before)
    expect(kit.query("SELECT state FROM coupons_coupons WHERE id = ?", coupon)[1].state).to_be("unused")
    expect(kit.query("SELECT count(*) AS n FROM orders_orders WHERE user = 'looker'")[1].n).to_be(0)
  end)
  it("refuses what the checkout refuses", function()
    expect(kit.user("x"):post("/orders/preview", { lines = { L("nope", 1) } })).to_be_error(404, "sku_not_found")
    expect(kit.user("x"):post("/orders/preview", { lines = { L(A, 1000000) } })).to_be_error(400, "invalid_field")
    expect(kit.user("x"):post("/orders/preview", { lines = {} })).to_be_error(400, "invalid_field")
    expect(kit.user("x"):post("/orders/preview", { lines = { L(A, 1) }, extra = 1 })).to_be_error(400, "invalid_field")
    expect(kit.anon():post("/orders/preview", { lines = { L(A, 1) } }).status).to_be(401)
  end)
end)
