-- a run whose slices cannot run (here: no members plugin to read the facts
-- from, so each collect job fails and is retried, then dead-lettered) keeps
-- new runs out for 6 hours after its start; then it is marked failed and a
-- new run starts.

kit.plugins { rfm = {} }

describe("a run that stopped", function()
  it("blocks a new run for 6 hours, then is marked failed", function()
    local first = kit.admin():post("/rfm/runs")
    expect(first.status).to_be(202)
    kit.advance(3600)
    expect(kit.admin():get("/rfm/runs/" .. first.body.id).body.state).to_be("collecting")
    expect(kit.admin():post("/rfm/runs")).to_be_error(409, "run_in_progress")
    kit.advance(5 * 3600 - 1)                 -- 6 hours less a second after its start
    expect(kit.admin():post("/rfm/runs")).to_be_error(409, "run_in_progress")
    kit.advance(2)
    local again = kit.admin():post("/rfm/runs")
    expect(again.status).to_be(202)
    expect(kit.admin():get("/rfm/runs/" .. first.body.id).body.state).to_be("failed")
  end)
end)
