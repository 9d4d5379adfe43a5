-- Replays the runs test_runs.py recorded on a live host into test/runs/.

describe("a recorded roll", function()
  it("replays with its time and seed", function()
    local run = kit.load_run("runs/roll.json")
    local res = kit.replay(run)
    expect(res).to_match_run(run)
    expect(res.random_draws).to_be(run.host.random_draws)
    expect(kit.now()).to_be(run.host.now_ms // 1000)
    expect(res.instructions > 0).to_be(true)
  end)
  it("lists what differs", function()
    local run = kit.load_run("runs/roll.json")
    local recorded = run.outcome.body.rolls[2]
    run.outcome.body.rolls[2] = 99
    run.outcome.status = 201
    local diffs = kit.run_differences(run, kit.replay(run))
    expect(diffs).to_equal({ "status: recorded 201, now 200",
                             ("body.rolls[2]: recorded 99, now %d"):format(recorded) })
  end)
  it("fails to_match_run when the outcome changed", function()
    local run = kit.load_run("runs/roll.json")
    run.outcome.body.rolls[1] = 99
    expect(kit.replay(run)).to_match_run(run)
  end)
end)

describe("a recorded job", function()
  it("fails again the same way", function()
    local run = kit.load_run("runs/tally.json")
    local res = kit.replay(run)
    expect(res.ok).to_be(false)
    expect(res.error).to_contain("too many: 5")
    expect(res).to_match_run(run)
  end)
end)

describe("a file that is no run", function()
  it("is refused", function()
    expect(function() kit.load_run("runs/missing.json") end).to_fail("kit.load_run:")
  end)
end)
