-- The points liability report (积分负债): over a period of local days in the
-- brand's zone, what was issued, clawed back, spent, returned, expired,
-- adjusted and moved by merges, between the outstanding points at its start
-- and at its end. Every figure is a sum of ledger entries, read from
-- points_daily (the entries' sums per local day and kind, written with each
-- entry), so a report costs the days it covers, not the entries, and
--
--   closing = opening + issued - clawed_back - spent + returned - expired + adjusted + merged
--
-- holds exactly; the closing of a period that ends today or later is the sum
-- of every balance (both are reported, and the kit tests check the rollup
-- against the entries themselves).

local when = require("tp.when")

local report = {}

local KINDS = { earn = "issued", clawback = "clawed_back", spend = "spent", ["return"] = "returned",
                expire = "expired", adjust = "adjusted", merge_in = "merged", merge_out = "merged" }

report.SCHEMA = { type = "object",
  required = { "from", "to", "timezone", "opening", "issued", "clawed_back", "spent", "returned", "expired",
               "adjusted", "merged", "outstanding", "reconciles", "balances_total" },
  properties = {
    from = { type = "string", description = "first local day, YYYY-MM-DD" },
    to = { type = "string", description = "last local day, YYYY-MM-DD (included)" },
    timezone = { type = "string" },
    opening = { type = "integer", description = "points outstanding at the start of from" },
    issued = { type = "integer", description = "earned: orders, sign-in, rewards (earn entries)" },
    clawed_back = { type = "integer", description = "earned points taken back by refunds (positive)" },
    spent = { type = "integer", description = "spent at checkout, in the mall, on make-up sign-ins (positive)" },
    returned = { type = "integer", description = "spent points given back by cancels and refunds" },
    expired = { type = "integer", description = "positive" },
    adjusted = { type = "integer", description = "operators' adjustments, net (signed)" },
    merged = { type = "integer", description = "moved by member merges, net (0: a merge moves, never makes points)" },
    outstanding = { type = "integer", description = "points outstanding at the end of to (the liability)" },
    outstanding_fen = { type = "integer", description = "what the outstanding points pay at checkout, in fen (with redeem set)" },
    entries = { type = "integer", description = "ledger entries in the period" },
    reconciles = { type = "boolean", description = "opening plus the movements equals outstanding" },
    balances_total = { type = "integer", description = "the sum of every balance now (for a period ending today or later: equals outstanding)" } } }

local function day(text, field)
  local ok = type(text) == "string" and text:match("^%d%d%d%d%-%d%d%-%d%d$")
  local e = ok and when.parse(text .. " 12:00")
  local t = e and tp.localtime(e)
  if not t or ("%04d-%02d-%02d"):format(t.year, t.month, t.day) ~= text then
    tp.fail(400, "invalid_query", ("%s must be a local date YYYY-MM-DD"):format(field), { field = field })
  end
  return text
end

---GET /points/report?from=YYYY-MM-DD&to=YYYY-MM-DD (admin)
---@param redeem {points_per_fen: integer}|nil
function report.build(req, redeem)
  local q = req.query
  local from, to = day(q.from, "from"), day(q.to, "to")
  if to < from then tp.fail(400, "invalid_query", "to must not be before from", { field = "to" }) end
  local out = { from = from, to = to, timezone = tp.timezone(), entries = 0,
                issued = 0, clawed_back = 0, spent = 0, returned = 0, expired = 0, adjusted = 0, merged = 0 }
  out.opening = tp.db.one("SELECT coalesce(sum(points), 0) AS n FROM points_daily WHERE day < ?", from).n
  for _, r in ipairs(tp.db.query([[SELECT kind, sum(points) AS n, sum(entries) AS e FROM points_daily
      WHERE day >= ? AND day <= ? GROUP BY kind]], from, to)) do
    local name = KINDS[r.kind]
    local sign = (name == "clawed_back" or name == "spent" or name == "expired") and -1 or 1
    out[name] = out[name] + sign * r.n
    out.entries = out.entries + r.e
  end
  local closing = tp.db.one("SELECT coalesce(sum(points), 0) AS n FROM points_daily WHERE day <= ?", to).n
  out.outstanding = closing
  out.reconciles = out.opening + out.issued - out.clawed_back - out.spent + out.returned - out.expired
    + out.adjusted + out.merged == closing
  out.balances_total = tp.db.one("SELECT coalesce(sum(balance), 0) AS n FROM points_accounts").n
  if redeem then out.outstanding_fen = math.max(closing, 0) // redeem.points_per_fen end
  return 200, out
end

return report
