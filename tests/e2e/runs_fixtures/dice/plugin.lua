-- dice: a plugin whose outcome depends on tp.random and the clock, for the
-- recorded-run tests of test_runs.py (kit.replay and the budget table).
-- The test records runs of it on a live host, saves them in test/runs/, and
-- runs test/dice_test.lua against them.
return {
  name = "dice",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE dice_tallies (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
  },
  routes = {
    { method = "POST", path = "/dice/roll/{sides:int}",
      handler = function(req)
        local rolls = {}
        for i = 1, req.body.times do rolls[i] = tp.random(req.params.sides) end
        return 200, { rolls = rolls, now = tp.now(), user = req.user }
      end },
    { method = "POST", path = "/dice/tally", auth = "none",
      handler = function(req)
        return 201, { job = tp.jobs.schedule("tally", { n = req.body.n }, { after = 0 }) }
      end },
  },
  jobs = {
    tally = function(job)
      tp.db.exec("INSERT INTO dice_tallies (n) VALUES (?)", job.payload.n)
      if job.payload.n > 3 then error("too many: " .. job.payload.n) end
    end,
  },
}
