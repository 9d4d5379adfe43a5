-- rfm: the eight layers at their boundaries (table-driven), refunds and the
-- window, a run in slices, moves between runs, history per run, and the layer
-- as a members dimension that a segment rule names.

kit.plugins { members = {}, orderfeed = {},
  rfm = { window_days = 365, r = { days = 30 }, f = { orders = 2 }, m = { fen = 50000 }, batch = 3 } }

local DAY = 86400
kit.set_local("2027-06-01 12:00:00")
local T = kit.now()

-- name, orders {fen, days_ago[, refunded_fen]}, layer at T (nil: none)
local CASES = {
  { "v-edge", { { 25000, 0 }, { 25000, 0 } }, "重要价值" },                 -- f and m exactly at the threshold
  { "d-edge", { { 50000, 30 } }, "重要发展" },                              -- 30 days ago: still recent
  { "k-edge", { { 25000, 31 }, { 25000, 40 } }, "重要保持" },               -- 31 days: no longer recent
  { "w-edge", { { 50000, 31 } }, "重要挽留" },
  { "gv", { { 24999, 0 }, { 25000, 1 } }, "一般价值" },                     -- 1 fen short of m
  { "gd", { { 49999, 30 } }, "一般发展" },
  { "gk", { { 10000, 31 }, { 10000, 50 }, { 10000, 60 } }, "一般保持" },
  { "gw", { { 100, 364 } }, "一般挽留" },                                    -- inside the window
  { "refund-full", { { 30000, 0 }, { 30000, 2, 30000 } }, "一般发展" },      -- a full refund is no order
  { "refund-part", { { 30000, 0 }, { 30000, 2, 10001 } }, "一般价值" },      -- net 49999
  { "out", { { 900000, 366 } }, nil },                                       -- outside the window
  { "edge-time", { { 50000, 31, nil, 1 } }, "重要发展" },                    -- 31 days less 1 s: 30 whole days
}

local order_id = 0
for _, c in ipairs(CASES) do
  for _, o in ipairs(c[2]) do
    order_id = order_id + 1
    kit.admin():post("/orderfeed/paid", { id = order_id, user = c[1], paid_fen = o[1],
      paid_at = T - o[2] * DAY + (o[4] or 0) })
    if o[3] then
      kit.admin():post("/orderfeed/refunded", { id = order_id, user = c[1], paid_fen = o[1], refunded_fen = o[3] })
    end
  end
end
kit.drain()

local function run_now()
  local res = kit.admin():post("/rfm/runs")
  expect(res.status).to_be(202)
  local again = kit.admin():post("/rfm/runs")
  expect(again).to_be_error(409, "run_in_progress")
  kit.drain()
  return kit.admin():get("/rfm/runs/" .. res.body.id).body
end

local function layer_of(user)
  local res = kit.admin():get("/rfm/members/" .. user)
  if res.status == 404 then return nil end
  return res.body.layer
end

local first
describe("the first run", function()
  it("puts every buyer in its layer, at the boundaries", function()
    first = run_now()
    expect(first.state).to_be("done")
    expect(first.buyers).to_be(11)
    for _, c in ipairs(CASES) do
      expect({ c[1], layer_of(c[1]) }).to_equal({ c[1], c[3] })
    end
  end)

  it("counts each layer and moves everyone in from none", function()
    local by = {}
    for _, l in ipairs(first.layers) do by[l.layer] = l.members end
    expect(by).to_equal({ ["重要价值"] = 1, ["重要发展"] = 2, ["重要保持"] = 1, ["重要挽留"] = 1,
      ["一般价值"] = 2, ["一般发展"] = 2, ["一般保持"] = 1, ["一般挽留"] = 1 })
    local into = 0
    for _, m in ipairs(first.moves) do
      expect(m.from).to_be_nil()
      into = into + m.members
    end
    expect(into).to_be(11)
    expect(first.thresholds).to_equal({ r_days = 30, r_strict = false, f_orders = 2, f_strict = false,
                                        m_fen = 50000, m_strict = false })
  end)

  it("makes the layer a dimension a segment rule names", function()
    local res = kit.admin():post("/members/segments/preview", { rule = { rfm = "重要挽留" } })
    expect(res.status).to_be(200)
    expect(res.body.sample).to_equal({ "w-edge" })
    local err = expect(kit.admin():post("/members/segments/preview", { rule = { rfm = "重要挽" } }))
      .to_be_error(400, "invalid_field")
    expect(err.details.field).to_be("rule.rfm")
  end)

  it("makes the layer a segment field too: in, ne, is_empty", function()
    local function count(rule)
      local res = kit.admin():post("/members/segments/preview", { rule = rule })
      expect(res.status).to_be(200)
      return res.body.count
    end
    expect(count({ field = "rfm", op = "in", value = { "重要发展", "重要挽留" } })).to_be(3)
    expect(count({ field = "rfm", op = "eq", value = "一般挽留" })).to_be(1)
    expect(count({ field = "rfm", op = "ne", value = "重要价值" })).to_be(11)   -- 10 other buyers, and "out"
    expect(count({ field = "rfm", op = "is_empty" })).to_be(1)                -- "out": no order in the window
    local err = expect(kit.admin():post("/members/segments/preview",
      { rule = { field = "rfm", op = "gt", value = "重要价值" } })).to_be_error(400, "invalid_field")
    expect(err.details.field).to_be("rule.op")
    expect(kit.admin():post("/members/segments/preview",
      { rule = { field = "rfm", op = "eq", value = "VIP" } })).to_be_error(400, "invalid_field")
  end)
end)

describe("the next run", function()
  it("counts the moves since the last run, and keeps each run's counts", function()
    kit.set_local("2027-06-03 12:00:00")     -- two days on: the nightly run (03:00) ran twice
    local runs = kit.admin():get("/rfm/runs?limit=3").body.items
    expect(runs[3].id).to_be(first.id)
    expect(runs[1].trigger).to_be("schedule")
    expect(runs[2].trigger).to_be("schedule")
    local function moves_of(id)
      local out = {}
      for _, m in ipairs(kit.admin():get("/rfm/runs/" .. id).body.moves) do
        out[(m.from or "none") .. ">" .. (m.to or "none")] = m.members
      end
      return out
    end
    -- 06-02 03:00, 15 h after T: only edge-time (31 days less 1 s before T) is 31 whole days old
    expect(moves_of(runs[2].id)).to_equal({ ["重要发展>重要挽留"] = 1 })
    -- 06-03 03:00: d-edge and gd reach 31 days; gw's order (364 days before T) leaves the window
    expect(moves_of(runs[1].id)).to_equal({ ["重要发展>重要挽留"] = 1, ["一般发展>一般挽留"] = 1, ["一般挽留>none"] = 1 })
    local last = kit.admin():get("/rfm/runs/" .. runs[1].id).body
    expect(layer_of("gw")).to_be_nil()
    expect(kit.admin():get("/rfm/layers").body.run).to_be(last.id)
    -- the first run's counts are kept
    expect(kit.admin():get("/rfm/runs/" .. runs[3].id).body.layers[2]).to_equal({ layer = "重要发展", members = 2 })
    local res = kit.admin():post("/members/segments/preview", { rule = { rfm = "重要挽留" } })
    expect(res.body.count).to_be(3)
  end)

  it("lists the super-users by money, with store and guide", function()
    local items = kit.admin():get("/rfm/super-users?limit=2").body.items
    expect(#items).to_be(2)
    expect(items[1].net_fen >= items[2].net_fen).to_be(true)
    expect(items[1].net_fen).to_be(50000)
    expect(kit.admin():get("/rfm/super-users?limit=x")).to_be_error(400, "invalid_query")
  end)
end)
