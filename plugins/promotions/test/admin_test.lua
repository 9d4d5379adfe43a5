-- Operators' CRUD: the declared body agrees with the validation
-- (tp.schematest), each kind's own rules, and nothing changes on a refusal.

kit.plugins { catalog = {}, promotions = {}, orders = { promotions_plugin = "promotions" } }

local shop = require("tp.testshop")
local st = require("tp.schematest")
local A = shop.sku { code = "A", price_fen = 10000, stock = 100 }

local function count() return kit.query("SELECT count(*) AS n FROM promotions_promotions")[1].n end

local function valid(fields)
  local b = { name = "满199减20", kind = "full_reduction", starts_at = kit.now(), ends_at = kit.now() + 3600,
              tiers = { { min_fen = 19900, off_fen = 2000 } } }
  for k, v in pairs(fields or {}) do if v == false then b[k] = nil else b[k] = v end end
  return b
end

describe("the promotion schema", function()
  it("documents exactly what the create route refuses", function()
    local n = st.walk { path = "/admin/test/promotions", method = "post", valid = valid, count = count,
                        skip = { tiers = true } }
    expect(n >= 20).to_be(true)
    expect(st.required("/admin/test/promotions", "post")).to_equal({ "kind", "name" })
  end)
end)

describe("each kind's rules", function()
  local bad = {
    { "满减 without tiers", { tiers = false }, "tiers" },
    { "a tier both by amount and count", { tiers = { { min_fen = 100, min_qty = 1, off_fen = 10 } } }, "tiers[1]" },
    { "a tier with neither", { tiers = { { off_fen = 10 } } }, "tiers[1]" },
    { "tiers on two bases", { tiers = { { min_fen = 100, off_fen = 10 }, { min_qty = 3, off_fen = 20 } } }, "tiers[2].min_qty" },
    { "an amount off not below the tier", { tiers = { { min_fen = 100, off_fen = 100 } } }, "tiers[1].off_fen" },
    { "tiers not ascending", { tiers = { { min_fen = 300, off_fen = 10 }, { min_fen = 200, off_fen = 20 } } }, "tiers[2].min_fen" },
    { "a higher tier taking less off", { tiers = { { min_fen = 200, off_fen = 30 }, { min_fen = 300, off_fen = 20 } } }, "tiers[2].off_fen" },
    { "six tiers", { tiers = { { min_qty = 1, off_fen = 1 }, { min_qty = 2, off_fen = 2 }, { min_qty = 3, off_fen = 3 },
        { min_qty = 4, off_fen = 4 }, { min_qty = 5, off_fen = 5 }, { min_qty = 6, off_fen = 6 } } }, "tiers" },
    { "a percent on a 满减 tier", { tiers = { { min_fen = 100, off_fen = 10, percent = 90 } } }, "tiers[1].percent" },
    { "an unknown key in a tier", { tiers = { { min_fen = 100, off_fen = 10, extra = 1 } } }, "tiers[1].extra" },
    { "满折 with off_fen", { kind = "full_discount", tiers = { { min_qty = 2, off_fen = 10 } } }, "tiers[1].off_fen" },
    { "满折 at 100 %", { kind = "full_discount", tiers = { { min_qty = 2, percent = 100 } } }, "tiers[1].percent" },
    { "满折 rising", { kind = "full_discount", tiers = { { min_qty = 2, percent = 80 }, { min_qty = 3, percent = 90 } } }, "tiers[2].percent" },
    { "第N件 without nth", { kind = "nth_discount", tiers = false, percent = 50 }, "nth" },
    { "第N件 with tiers", { kind = "nth_discount", nth = 2, percent = 50 }, "tiers" },
    { "N元任选 without SKUs", { kind = "bundle", tiers = false, count = 3, price_fen = 9900 }, "skus" },
    { "N元任选 without a price", { kind = "bundle", tiers = false, count = 3, skus = { A } }, "price_fen" },
    { "限时折扣 without SKUs", { kind = "timed_discount", tiers = false, percent = 80 }, "skus" },
    { "a SKU twice", { skus = { A, A } }, "skus[2]" },
    { "a window that ends before it starts", { ends_at = kit.now() - 1 }, "ends_at" },
    { "no start at all", { starts_at = false }, "starts_at" },
    { "a start both ways", { starts_local = "2026-12-12 10:00" }, "starts_local" },
    { "a local time that is not one", { starts_at = false, starts_local = "2026-02-30 10:00" }, "starts_local" },
  }
  for _, c in ipairs(bad) do
    it("refuses " .. c[1], function()
      local b = valid(c[2])
      local before = count()
      local err = expect(kit.admin():post("/promotions", b)).to_be_error(400, "invalid_field")
      expect(err.details.field).to_be(c[3])
      expect(count()).to_be(before)
    end)
  end
  it("refuses a SKU the catalog does not have", function()
    expect(kit.admin():post("/promotions", valid { skus = { "nope" } })).to_be_error(400, "sku_not_found")
  end)
end)

describe("the window in the brand's zone", function()
  it("takes the brand's wall clock and shows it back", function()
    local r = kit.admin():post("/promotions", valid { starts_at = false, ends_at = false,
      starts_local = "2026-12-12 10:00", ends_local = "2026-12-12 22:00" })
    expect(r.status).to_be(201)
    expect({ r.body.window_local.starts, r.body.window_local.ends }).to_equal({ "2026-12-12 10:00", "2026-12-12 22:00" })
    expect(r.body.ends_at - r.body.starts_at).to_be(12 * 3600)
    expect(r.body.starts_at % 86400).to_be(2 * 3600)   -- 10:00 in Asia/Shanghai is 02:00 UTC
    local p = kit.admin():patch("/promotions/" .. r.body.id, { ends_local = "2026-12-13 00:00" })
    expect(p.body.ends_at - p.body.starts_at).to_be(14 * 3600)
    kit.admin():delete("/promotions/" .. r.body.id)
  end)
end)

describe("CRUD", function()
  it("creates, reads, changes, lists and deletes", function()
    local p = kit.admin():post("/promotions", valid { name = "第二件半价", kind = "nth_discount", tiers = false, nth = 2,
      percent = 50, skus = { A } })
    expect(p.status).to_be(201)
    expect(p.body.window_local.timezone).to_be("Asia/Shanghai")
    local id = p.body.id
    local r = kit.admin():patch("/promotions/" .. id, { percent = 60, priority = 3 })
    expect({ r.status, r.body.percent, r.body.priority, r.body.nth }).to_equal({ 200, 60, 3, 2 })
    expect(kit.admin():patch("/promotions/" .. id, { kind = "bundle" })).to_be_error(400, "invalid_field")
    expect(kit.admin():patch("/promotions/" .. id, { nth = 1 })).to_be_error(400, "invalid_field")
    expect(kit.admin():get("/promotions/" .. id).body.percent).to_be(60)
    expect(kit.anon():get("/promotions").body.items[1].id).to_be(id)
    r = kit.admin():patch("/promotions/" .. id, { status = "disabled" })
    expect(#kit.anon():get("/promotions").body.items).to_be(0)
    expect(kit.admin():get("/promotions").body.items[1].status).to_be("disabled")
    expect(kit.admin():delete("/promotions/" .. id).status).to_be(200)
    expect(kit.admin():get("/promotions/" .. id)).to_be_error(404, "promotion_not_found")
    expect(kit.admin():patch("/promotions/999", { percent = 60 })).to_be_error(404, "promotion_not_found")
  end)
end)
