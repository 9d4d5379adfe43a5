-- group_chain: counts the visits of each user and thanks a visitor an hour after the
-- first visit. A starting point: replace the rules, keep the shape (manifest and
-- schema first, then one small function per route or job).
--
-- Editor support: add tidepool's sdk/types folder to LuaLS ("workspace.library");
-- tp, req and job then complete and type-check. Reference: sdk/reference.md.
-- Check without serving: tidepool check <this folder>. Tests: tidepool test <this folder>.

local THANK_AFTER_S = 3600

---POST /group_chain/visits: one more visit of the calling user.
---@param req TpRequest
local function visit(req)
  local row = tp.db.one([[
    INSERT INTO group_chain_visits (user, visits, thanked, last_at) VALUES (?, 1, 0, ?)
    ON CONFLICT (user) DO UPDATE SET visits = visits + 1, last_at = excluded.last_at
    RETURNING visits]], req.user, tp.now())
  if row.visits == 1 then
    -- written in this transaction: the job exists only if the visit is saved
    tp.jobs.schedule("thank", { user = req.user },
                     { after = THANK_AFTER_S, key = "thank:" .. req.user })
  end
  return 201, { user = req.user, visits = row.visits }
end

---GET /group_chain/visits/me: the calling user's visits.
---@param req TpRequest
local function mine(req)
  local row = tp.db.one("SELECT visits, thanked FROM group_chain_visits WHERE user = ?", req.user)
  if not row then tp.fail(404, "no_visits", "this user has not visited yet") end
  return 200, { user = req.user, visits = row.visits, thanked = row.thanked == 1 }
end

---The thank-you job, an hour after a user's first visit.
---@param job TpJob
local function thank(job)
  tp.db.exec("UPDATE group_chain_visits SET thanked = 1 WHERE user = ?", job.payload.user)
end

local visit_schema = {
  type = "object", required = { "user", "visits" },
  properties = { user = { type = "string" }, visits = { type = "integer" } },
}

---@type TpManifest
return {
  name = "group_chain",
  version = "0.1.0",
  description = "Counts visits and thanks first-time visitors",

  -- applied once each, in order; append new ones, never edit a released one
  migrations = {
    [[CREATE TABLE group_chain_visits (
        user    TEXT PRIMARY KEY,
        visits  INTEGER NOT NULL,
        thanked INTEGER NOT NULL DEFAULT 0,
        last_at INTEGER NOT NULL)]],
  },

  routes = {
    { method = "POST", path = "/group_chain/visits", auth = "user", handler = visit,
      summary = "Count a visit of the calling user",
      description = "The first visit schedules a thank-you an hour later.",
      status = 201, response = visit_schema },
    { method = "GET", path = "/group_chain/visits/me", auth = "user", handler = mine,
      summary = "The calling user's visits",
      response = { type = "object", properties = {
        user = { type = "string" }, visits = { type = "integer" },
        thanked = { type = "boolean" } } } },
  },

  jobs = { thank = thank },
}
