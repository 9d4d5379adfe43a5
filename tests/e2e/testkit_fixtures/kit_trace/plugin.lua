-- A fixture of the test kit's own test: a route with a bug, a job with one.
local function total(lines)
  local sum = 0
  for _, l in ipairs(lines) do sum = sum + l.price_fen * l.qty end
  return sum
end

return {
  name = "kit_trace", version = "1.0.0",
  routes = {
    { method = "POST", path = "/orders", auth = "user", handler = function(req)
        return 201, { total_fen = total(req.body.lines) }
      end },
    { method = "POST", path = "/later", auth = "none", handler = function()
        tp.jobs.schedule("tally", {}, { after = 60 })
        return 202, { scheduled = true }
      end },
  },
  jobs = {
    tally = function() error("the tally job has no ledger") end,
  },
}
