-- A fixture of the test kit's own test: a job on the clock, events, and a
-- call into a built-in plugin (catalog).
local function log(what)
  tp.db.exec("INSERT INTO kit_clock_log (what, at) VALUES (?, ?)", what, tp.now())
end

return {
  name = "kit_clock", version = "1.0.0",
  migrations = {
    "CREATE TABLE kit_clock_log (id INTEGER PRIMARY KEY, what TEXT NOT NULL, at INTEGER NOT NULL)",
  },
  routes = {
    { method = "POST", path = "/reminders", auth = "user", handler = function(req)
        local delay = tp.config().delay_seconds
        tp.jobs.schedule("remind", { user = req.user }, { after = delay })
        return 202, { due_at = tp.now() + delay }
      end },
    { method = "POST", path = "/pings", auth = "user", handler = function(req)
        tp.events.emit("kit_clock.pinged", { user = req.user })
        return 202, {}
      end },
    { method = "GET", path = "/log", auth = "none", handler = function()
        return { items = tp.json.array(tp.db.query("SELECT what, at FROM kit_clock_log ORDER BY id")) }
      end },
    { method = "GET", path = "/prices/{code}", auth = "none", handler = function(req)
        local sku = tp.call("catalog", "sku", req.params.code)
        if not sku then tp.fail(404, "sku_not_found", "no such sku") end
        return { code = sku.code, price_fen = sku.price_fen }
      end },
  },
  jobs = {
    remind = function(job)
      log("reminded " .. job.payload.user)
      tp.events.emit("kit_clock.reminded", { user = job.payload.user })
    end,
  },
  subscribe = {
    ["kit_clock.pinged"] = function(ev) log("pinged " .. ev.data.user) end,
    ["kit_clock.reminded"] = function(ev) log("heard " .. ev.data.user) end,
  },
}
