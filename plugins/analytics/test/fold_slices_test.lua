-- analytics: fold_test.lua's day again, each run of the rollup taking at most
-- three events (rollup_max_events): a run's events cut anywhere by sequence
-- number, a session's across two runs, a login apart from the events before it.
-- After every run the per-day tables must still equal a rebuild of every day
-- whole; this file also checks that the runs were sliced (and that without a
-- cap, fold_test.lua's runs are one post each).

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
end)
