-- Expiry: each lot lives until the end of the year after the year it was
-- earned (year_end, years = 1), at local midnight in the brand's zone; spends
-- take the lot that expires first; the report reconciles with the ledger.

kit.plugins { points = { expiry = { kind = "year_end", years = 1 } } }

local function give(user, n)
  local res = kit.admin():post("/points/accounts/" .. user .. "/adjust", { points = n, reason = "grant" })
  assert(res.status == 201, "adjust answered " .. res.status)
end

local function balance(user) return kit.user(user):get("/points/me").body.balance end

local function report(from, to)
  local res = kit.admin():get(("/points/report?from=%s&to=%s"):format(from, to))
  assert(res.status == 200, "report answered " .. res.status)
  return res.body
end

describe("lots", function()
  it("expire first-in first-out, exactly at local midnight", function()
    kit.set_local("2026-05-01 12:00:00")
    give("ann", 100)                                     -- lives until 2028-01-01 00:00 local
    kit.set_local("2027-03-01 12:00:00")
    give("ann", 50)                                      -- lives until 2029-01-01 00:00 local
    local me = kit.user("ann"):get("/points/me").body
    expect(me.expiring).to_equal({ { points = 100, expires_at = kit.at_local("2028-01-01 00:00:00") },
                                   { points = 50, expires_at = kit.at_local("2029-01-01 00:00:00") } })
    -- a spend takes the lot that expires first
    expect(kit.admin():post("/points/accounts/ann/adjust", { points = -30, reason = "spend" }).status).to_be(201)
    kit.set_local("2027-12-31 23:59:59")
    expect(balance("ann")).to_be(120)                    -- one second before: all there
    kit.set_local("2028-01-01 00:00:00")
    expect(balance("ann")).to_be(50)                     -- the first lot's 70 left expired at midnight
    kit.set_local("2028-12-31 23:59:59")
    expect(balance("ann")).to_be(50)
    kit.set_local("2029-01-01 00:00:00")
    expect(balance("ann")).to_be(0)
    local kinds = {}
    for _, e in ipairs(kit.user("ann"):get("/points/me/entries").body.items) do
      table.insert(kinds, 1, { e.kind, e.points, e.balance })
    end
    expect(kinds).to_equal({ { "adjust", 100, 100 }, { "adjust", 50, 150 }, { "adjust", -30, 120 },
                             { "expire", -70, 50 }, { "expire", -50, 0 } })
  end)
end)

describe("the liability report", function()
  it("reconciles issued, spent, expired and adjusted with what is outstanding, by local day", function()
    kit.set_local("2029-02-01 09:00:00")
    give("bob", 300)
    kit.set_local("2029-02-02 23:59:59")
    give("cy", 40)
    kit.set_local("2029-02-03 00:00:00")
    expect(kit.admin():post("/points/accounts/bob/adjust", { points = -100, reason = "fix" }).status).to_be(201)
    local r = report("2029-02-01", "2029-02-02")
    expect({ r.opening, r.adjusted, r.expired, r.outstanding, r.reconciles }).to_equal({ 0, 340, 0, 340, true })
    local all = report("2026-01-01", "2029-02-03")
    expect({ all.opening, all.adjusted, all.expired, all.outstanding, all.reconciles, all.balances_total, all.entries })
      .to_equal({ 0, 360, 120, 240, true, 240, 8 })
    local day3 = report("2029-02-03", "2029-02-03")
    expect({ day3.opening, day3.adjusted, day3.outstanding }).to_equal({ 340, -100, 240 })
  end)

  it("reads a rollup that is exactly the ledger's entries summed by local day and kind", function()
    local sums, keys = {}, {}
    for _, e in ipairs(kit.query("SELECT kind, points, created_at FROM points_entries")) do
      local day = kit.local_time(e.created_at):sub(1, 10)
      local k = day .. " " .. e.kind
      if not sums[k] then sums[k] = { day = day, kind = e.kind, points = 0, entries = 0 }; keys[#keys + 1] = k end
      sums[k].points = sums[k].points + e.points
      sums[k].entries = sums[k].entries + 1
    end
    table.sort(keys)
    local want = {}
    for i, k in ipairs(keys) do want[i] = sums[k] end
    expect(#want >= 5).to_be(true)
    expect(kit.query("SELECT day, kind, points, entries FROM points_daily ORDER BY day, kind")).to_equal(want)
  end)

  it("refuses dates that are not local days", function()
    for _, q in ipairs({ "from=2029-02-01", "from=2029-2-1&to=2029-02-02", "from=2029-02-05&to=2029-02-01",
                         "from=2029-02-30&to=2029-03-01", "to=2029-03-01", "from=x&to=y" }) do
      expect(kit.admin():get("/points/report?" .. q)).to_be_error(400, "invalid_query")
    end
  end)
end)
