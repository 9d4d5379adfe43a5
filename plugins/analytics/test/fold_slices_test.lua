-- analytics: fold_test.lua's day again, each run of the rollup taking at most
-- three events (rollup_max_events): a run's events cut anywhere by sequence
-- number, a session's across two runs, a login apart from the events before it.
-- After every run the per-day tables must still equal a rebuild of every day
-- whole; this file also checks that the runs were sliced (and that without a
-- cap, fold_test.lua's runs are one post each), orders' money and steps too.

FOLD_MAX_EVENTS = 3
dofile((debug.getinfo(1, "S").source:sub(2):gsub("fold_slices_test%.lua$", "fold_test.lua")))

describe("slices", function()
  it("took several posts for a run of many events, one for a run of a few", function()
    local most, fewest = 0, math.huge
    for _, posts in ipairs(FOLD_POSTS) do
      most, fewest = math.max(most, posts), math.min(fewest, posts)
    end
    expect(#FOLD_POSTS > 10).to_be(true)
    expect(most >= 4).to_be(true)
    expect(fewest).to_be(1)
  end)

  it("take three orders' money and steps a run when the money job has not run", function()
    for _, m in ipairs({ "jo", "kai", "lu", "mo", "ned" }) do
      local sku = kit.query("SELECT code FROM catalog_skus ORDER BY code LIMIT 1")[1].code
      expect(kit.user(m):post("/orders", { lines = { { sku = sku, qty = 1 } } }).status).to_be(201)
    end
    kit.drain()
    local function queued()
      return kit.query([[SELECT (SELECT count(*) FROM analytics_money_queue) AS money,
        (SELECT count(*) FROM analytics_steps_queue) AS steps]])[1]
    end
    expect(queued()).to_equal({ money = 5, steps = 5 })
    expect(kit.admin():post("/analytics/rollup").body.more).to_be(true)
    expect(queued()).to_equal({ money = 2, steps = 2 })
    -- the job goes on a second later
    kit.advance(1)
    expect(queued()).to_equal({ money = 0, steps = 0 })
    expect(kit.admin():post("/analytics/rollup").body.more).to_be(false)
  end)
end)
