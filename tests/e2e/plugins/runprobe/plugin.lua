-- runprobe: routes and a job for test_runs.py (recorded runs and replay).
-- ROLL_BONUS is rewritten by the test to change the plugin's outcome.
local ROLL_BONUS = 0 -- @BONUS@

return {
  name = "runprobe",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE runprobe_rows (id INTEGER PRIMARY KEY, what TEXT NOT NULL)",
  },
  routes = {
    { method = "POST", path = "/runprobe/roll/{sides:int}", auth = "optional",
      handler = function(req)
        local rolls = {}
        for i = 1, (req.body and req.body.times or 3) do
          rolls[i] = tp.random(req.params.sides) + ROLL_BONUS
        end
        return 200, { rolls = rolls, now_ms = tp.now_ms(), seed = tp.seed(),
                      user = req.user, page = req.query.page }
      end },
    { method = "POST", path = "/runprobe/boom", auth = "optional",
      handler = function(req)
        tp.db.exec("INSERT INTO runprobe_rows (what) VALUES (?)", "boom")
        local why = req.body and req.body.why or "no reason"
        error("boom: " .. why)
      end },
    { method = "GET", path = "/runprobe/ok", auth = "none",
      handler = function() return { ok = true } end },
    { method = "POST", path = "/runprobe/spin", auth = "none",
      handler = function()
        local n = 0
        while true do n = n + 1 end
      end },
    { method = "POST", path = "/runprobe/sold-out", auth = "none",
      handler = function() tp.fail(409, "sold_out", "nothing left") end },
    { method = "POST", path = "/runprobe/later", auth = "none",
      handler = function(req)
        local id = tp.jobs.schedule("flaky", { n = req.body.n }, { after = 0 })
        return 201, { job = id }
      end },
    { method = "GET", path = "/runprobe/rows", auth = "none",
      handler = function()
        return { rows = tp.db.one("SELECT count(*) AS n FROM runprobe_rows").n }
      end },
  },
  jobs = {
    flaky = function(job)
      tp.db.exec("INSERT INTO runprobe_rows (what) VALUES (?)", "job")
      if job.payload.n + ROLL_BONUS > 1 then error("flaky job failed for n=" .. job.payload.n) end
    end,
  },
}
