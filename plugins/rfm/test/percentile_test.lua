-- rfm with percentile splits: high means strictly better than the value at
-- the percentile of this run's buyers (nearest rank): more recent, more
-- orders, more money than the median here.

kit.plugins { members = {}, orderfeed = {},
  rfm = { r = { percentile = 50 }, f = { percentile = 50 }, m = { percentile = 50 }, batch = 4 } }

local DAY = 86400
kit.set_local("2027-06-01 12:00:00")
local T = kit.now()

-- ten buyers: b1 .. b10 with i orders of 1000 * i fen each, the last i days ago
local id = 0
for i = 1, 10 do
  for k = 1, i do
    id = id + 1
    kit.admin():post("/orderfeed/paid", { id = id, user = "b" .. i, paid_fen = 1000 * i,
      paid_at = T - (k == 1 and i or 100) * DAY })
  end
end
kit.drain()

describe("percentile thresholds", function()
  it("split at the median of the run's buyers", function()
    local res = kit.admin():post("/rfm/runs")
    kit.drain()
    local r = kit.admin():get("/rfm/runs/" .. res.body.id).body
    -- recency 1..10 days (descending, rank 5 of 10: 6 days), orders 1..10 (rank 5: 5), money i*i*1000 (rank 5: 25000)
    expect(r.thresholds).to_equal({ r_days = 6, r_strict = true, f_orders = 5, f_strict = true,
                                    m_fen = 25000, m_strict = true })
    -- b1..b5: recent (1-5 days < 6), but 1-5 orders (not > 5) and 1000-25000 fen (not > 25000)
    -- b6..b10: 6-10 days (not < 6), 6-10 orders and 36000-100000 fen: 重要保持
    local want = { "一般发展", "一般发展", "一般发展", "一般发展", "一般发展",
                   "重要保持", "重要保持", "重要保持", "重要保持", "重要保持" }
    for i = 1, 10 do
      expect({ i, kit.admin():get("/rfm/members/b" .. i).body.layer }).to_equal({ i, want[i] })
    end
  end)
end)
