-- The points liability report (积分负债): over a period of local days in the
-- brand's zone, what was issued, clawed back, spent, returned, expired,
-- adjusted and moved by merges, between the outstanding points at its start
-- and at its end. Every figure is a sum of ledger entries, so
--
--   closing = opening + issued - clawed_back - spent + returned - expired + adjusted + merged
--
-- holds exactly, and the closing of a period that ends after the last entry is
-- the sum of every balance (both are checked and reported).

local when = require("tp.when")

local report = {}

local KINDS = { earn = "issued", clawback = "clawed_back", spend = "spent", ["return"] = "returned",
                expire = "expired", adjust = "adjusted", merge_in = "merged", merge_out = "merged" }

report.SCHEMA = { type = "object",
  required = { "from", "to", "timezone", "opening", "issued", "clawed_back", "spent", "returned", "expired",
               "adjusted", "merged", "outstanding", "reconciles" },
  properties = {
    from = { type = "string", description = "first local day, YYYY-MM-DD" },
    to = { type = "string", description = "last local day, YYYY-MM-DD (included)" },
    timezone = { type = "string" },
    starts_at = { type = "integer", description = "UTC epoch of the first day's local midnight" },
    ends_at = { type = "integer", description = "UTC epoch of the local midnight after the last day" },
    opening = { type = "integer", description = "points outstanding at the start" },
    issued = { type = "integer", description = "earned: orders, sign-in, rewards (earn entries)" },
    clawed_back = { type = "integer", description = "earned points taken back by refunds (positive)" },
    spent = { type = "integer", description = "spent at checkout, in the mall, on make-up sign-ins (positive)" },
    returned = { type = "integer", description = "spent points given back by cancels and refunds" },
    expired = { type = "integer", description = "positive" },
    adjusted = { type = "integer", description = "operators' adjustments, net (signed)" },
    merged = { type = "integer", description = "moved by member merges, net (0 unless a merge straddles the period)" },
    outstanding = { type = "integer", description = "points outstanding at the end (the liability)" },
    outstanding_fen = { type = "integer", description = "what the outstanding points pay at checkout, in fen (with redeem set)" },
    users = { type = "integer", description = "users holding points at the end" },
    reconciles = { type = "boolean", description = "opening plus the movements equals outstanding" },
    balances_total = { type = "integer", description = "the sum of every balance now (a period ending after now: equals outstanding)" } } }

local function day(text, field)
  local e = type(text) == "string" and text:match("^%d%d%d%d%-%d%d%-%d%d$") and when.parse(text .. " 00:00")
  if not e then
    tp.fail(400, "invalid_query", ("%s must be a local date YYYY-MM-DD"):format(field), { field = field })
  end
  return e
end

---The local midnight after the day that starts at `start`.
local function next_midnight(start)
  local t = tp.localtime(start + 36 * 3600)
  return when.parse(("%04d-%02d-%02d 00:00"):format(t.year, t.month, t.day))
end

---GET /points/report?from=YYYY-MM-DD&to=YYYY-MM-DD (admin)
---@param redeem {points_per_fen: integer}|nil
function report.build(req, redeem)
  local q = req.query
  local starts = day(q.from, "from")
  local last = day(q.to, "to")
  if last < starts then tp.fail(400, "invalid_query", "to must not be before from", { field = "to" }) end
  if last - starts > 3660 * 86400 then tp.fail(400, "invalid_query", "a report covers at most ten years", { field = "to" }) end
  local ends = next_midnight(last)
  local out = { from = q.from, to = q.to, timezone = tp.timezone(), starts_at = starts, ends_at = ends,
                issued = 0, clawed_back = 0, spent = 0, returned = 0, expired = 0, adjusted = 0, merged = 0 }
  out.opening = tp.db.one("SELECT coalesce(sum(points), 0) AS n FROM points_entries WHERE created_at < ?", starts).n
  for _, r in ipairs(tp.db.query([[SELECT kind, sum(points) AS n FROM points_entries
      WHERE created_at >= ? AND created_at < ? GROUP BY kind]], starts, ends)) do
    local name = KINDS[r.kind]
    local sign = (name == "clawed_back" or name == "spent" or name == "expired") and -1 or 1
    out[name] = out[name] + sign * r.n
  end
  local closing = tp.db.one("SELECT coalesce(sum(points), 0) AS n FROM points_entries WHERE created_at < ?", ends).n
  out.outstanding = closing
  out.reconciles = out.opening + out.issued - out.clawed_back - out.spent + out.returned - out.expired
    + out.adjusted + out.merged == closing
  out.balances_total = tp.db.one("SELECT coalesce(sum(balance), 0) AS n FROM points_accounts").n
  out.users = tp.db.one([[SELECT count(*) AS n FROM (SELECT user FROM points_entries WHERE created_at < ?
    GROUP BY user HAVING sum(points) > 0)]], ends).n
  if redeem then out.outstanding_fen = math.max(closing, 0) // redeem.points_per_fen end
  return 200, out
end

return report
