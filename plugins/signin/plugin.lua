---@diagnostic disable: undefined-global
-- signin (签到): once per local day in the brand's zone, a streak that grows
-- with each consecutive day and starts again at 1 after a missed day, points
-- for each day (daily, plus a bonus on the streak days the brand names, per
-- cycle if it sets one) through the points plugin, and an optional make-up
-- sign-in (补签) of a missed day of the current month, limited per month and
-- priced in points. Every sign-in, made up or not, emits signin.checked_in
-- {user, day, streak}. README.md states the rules.

local check = require("tp.check")
local days = require("lib.days")
local settings = require("lib.settings")
local merge = require("lib.merge")
local risk = require("tp.risk")

local S = settings.read(tp.config())

---@param fn string
local function points(fn, ...)
  local ok, result = pcall(tp.call, "points", fn, ...)
  if ok then return result end
  if type(result) == "table" then error(result, 0) end  -- the points plugin's own refusal
  tp.log("warn", "the points plugin could not be called", { error = tostring(result) })
  tp.fail(409, "points_unavailable", "sign-in rewards need the points plugin, which this shop does not serve")
end

local function row(user, day)
  return tp.db.one("SELECT day, streak, points, makeup, cost FROM signin_days WHERE user = ? AND day = ?", user, day)
end

---Records user's sign-in of `day` as the n-th of a streak, credits its
---reward and announces it. 409 already_signed_in when the day has one.
local function record(user, day, makeup, cost)
  local before = row(user, days.add(day, -1))
  local streak = before and before.streak + 1 or 1
  local reward = settings.reward(S, streak)
  -- counted, not RETURNING (which costs an ephemeral table)
  local inserted = tp.db.exec([[INSERT INTO signin_days (user, day, streak, points, makeup, cost, at)
    VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user, day) DO NOTHING]],
    user, day, streak, reward, makeup and 1 or 0, cost, tp.now())
  if inserted ~= 1 then
    tp.fail(409, "already_signed_in", ("you have signed in on %s already"):format(day), { day = day })
  end
  local balance
  if reward > 0 then balance = points("grant", user, reward, day, makeup and "make-up sign-in" or "sign-in").balance end
  tp.events.emit("signin.checked_in", { user = user, day = day, streak = streak })
  return { day = day, streak = streak, points = reward, makeup = makeup, balance = balance }
end

---POST /signin: today's sign-in.
local function sign_in(req)
  risk.check(req, "claim", { plugin = "signin", id = 0 })
  return 201, record(req.user, days.of(), false, 0)
end

---A make-up fills a gap: the signed days right after it now continue its
---streak (their rewards stay as they were paid).
local function renumber_after(user, day, streak)
  local d = days.add(day, 1)
  local today = days.of()
  while d <= today do
    if tp.db.exec("UPDATE signin_days SET streak = ? WHERE user = ? AND day = ?", streak + 1, user, d) == 0 then
      break
    end
    streak, d = streak + 1, days.add(d, 1)
  end
end

local function month_of(day) return day:sub(1, 7) end

local function makeups_used(user, month)
  return tp.db.one([[SELECT count(*) AS n FROM signin_days WHERE user = ? AND makeup = 1
    AND day >= ? AND day < ?]], user, month .. "-01", month .. "-32").n
end

---POST /signin/makeup {day}: a missed earlier day of this month, for points.
local function make_up(req)
  local b = check.body(req.body, true)
  check.only(b, { day = true })
  local day = days.parse(b.day)
  if not day then check.field_error("day", "must be a local date YYYY-MM-DD") end
  local m = S.makeup
  if not m then tp.fail(409, "makeup_not_allowed", "this shop has no make-up sign-in") end
  local today = days.of()
  if day >= today or month_of(day) ~= month_of(today) then
    check.field_error("day", ("must be an earlier day of this month (today is %s)"):format(today))
  end
  local used = makeups_used(req.user, month_of(today))
  if used >= m.per_month then
    tp.fail(409, "makeup_limit_reached", ("you may make up %d days a month"):format(m.per_month),
      { per_month = m.per_month, used = used })
  end
  if row(req.user, day) then
    tp.fail(409, "already_signed_in", ("you have signed in on %s already"):format(day), { day = day })
  end
  risk.check(req, "claim", { plugin = "signin", id = 0 })
  if m.cost_points > 0 then points("charge", req.user, m.cost_points, "makeup:" .. day, "make-up sign-in") end
  local out = record(req.user, day, true, m.cost_points)
  renumber_after(req.user, day, out.streak)
  out.cost_points = m.cost_points
  if out.balance == nil and m.cost_points > 0 then out.balance = points("balance", req.user) end
  return 201, out
end

---The user's sign-in page: today's state, the streak, this month's days.
local function status(user)
  local today = days.of()
  local t, y = row(user, today), row(user, days.add(today, -1))
  local streak = t and t.streak or (y and y.streak) or 0
  local month = tp.db.query([[SELECT day, streak, points, makeup = 1 AS makeup FROM signin_days
    WHERE user = ? AND day >= ? AND day < ? ORDER BY day]], user, month_of(today) .. "-01", month_of(today) .. "-32")
  for _, d in ipairs(month) do d.makeup = d.makeup == 1 end
  local out = { user = user, today = today, signed_today = t ~= nil, streak = streak,
                next_points = settings.reward(S, streak + 1),
                month = tp.json.array(month) }
  if S.makeup then
    out.makeup = { per_month = S.makeup.per_month, cost_points = S.makeup.cost_points,
                   left = math.max(0, S.makeup.per_month - makeups_used(user, month_of(today))) }
  end
  return out
end

local function get_me(req) return 200, status(req.user) end

local function admin_get(req)
  local id = check.user(req.params.user, "user")
  local user = tp.auth.resolve(id)
  if not user then tp.fail(404, "member_not_found", "this member was erased") end
  return 200, status(user)
end

local INT, STR, BOOL = { type = "integer" }, { type = "string" }, { type = "boolean" }
local DAY = { type = "string", description = "a local day in the brand's zone, YYYY-MM-DD" }
local SIGNED = { type = "object", required = { "day", "streak", "points", "makeup" }, properties = {
  day = DAY, streak = { type = "integer", minimum = 1, description = "consecutive days, this one included" },
  points = { type = "integer", minimum = 0, description = "points this sign-in earned" },
  makeup = BOOL, cost_points = { type = "integer", description = "make-up: points it cost" },
  balance = { type = "integer", description = "the points balance after (when points moved)" } } }
local STATUS = { type = "object", required = { "user", "today", "signed_today", "streak", "month" }, properties = {
  user = STR, today = DAY, signed_today = BOOL,
  streak = { type = "integer", minimum = 0, description = "the current streak (0: broken)" },
  next_points = { type = "integer", description = "what the next sign-in earns if the streak holds" },
  month = { type = "array", items = { type = "object", properties = { day = DAY, streak = INT, points = INT,
    makeup = BOOL } } },
  makeup = { type = "object", description = "absent: no make-up sign-in", properties = {
    per_month = INT, cost_points = INT, left = INT } } } }

local ROUTES = {
  { method = "POST", path = "/signin", handler = sign_in, status = 201, rate_class = "claim",
    summary = "Sign in for today (once per local day)", response = SIGNED,
    errors = { [403] = { "risk_*" }, [409] = { "already_signed_in", "points_unavailable" } } },
  { method = "POST", path = "/signin/makeup", handler = make_up, status = 201, rate_class = "claim",
    summary = "Make up a missed day of this month, for points",
    body = { type = "object", required = { "day" }, properties = { day = DAY } },
    response = SIGNED,
    errors = { [400] = { "invalid_field", "invalid_body" }, [403] = { "risk_*" },
               [409] = { "makeup_not_allowed", "makeup_limit_reached", "already_signed_in", "insufficient_points",
                         "points_unavailable" } } },
  { method = "GET", path = "/signin/me", handler = get_me, summary = "My sign-in page: streak and this month",
    response = STATUS },
  { method = "GET", path = "/signin/users/{user}", auth = "admin", handler = admin_get,
    summary = "A member's sign-ins this month and streak", response = STATUS,
    errors = { [400] = { "invalid_field" }, [404] = { "member_not_found" } } },
}

return {
  name = "signin",
  version = "1.0.0",
  description = "sign-in (签到): once per local day, streak rewards in points, make-up sign-in",
  migrations = {
    [[
    CREATE TABLE signin_days (
      user TEXT NOT NULL,
      day TEXT NOT NULL,
      streak INTEGER NOT NULL CHECK (streak >= 1),
      points INTEGER NOT NULL CHECK (points >= 0),
      makeup INTEGER NOT NULL CHECK (makeup IN (0, 1)),
      cost INTEGER NOT NULL DEFAULT 0,
      at INTEGER NOT NULL,
      PRIMARY KEY (user, day)
    ) WITHOUT ROWID;
    CREATE TABLE signin_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE TABLE signin_merge_moves (
      merge_id INTEGER NOT NULL,
      day TEXT NOT NULL,
      PRIMARY KEY (merge_id, day)
    ) WITHOUT ROWID;
    ]],
  },
  routes = ROUTES,
  exports = {
    member_merge = merge.member_merge,
    member_unmerge = merge.member_unmerge,
  },
}
