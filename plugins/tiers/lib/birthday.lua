---@diagnostic disable: undefined-global
-- tiers/lib/birthday.lua: the birthday coupon (生日礼). On the 1st of each
-- month, at birthday_hour local time, every member whose tier has a
-- birthday_coupon and whose birthday (the members plugin's profile) falls in
-- that month gets that tier's coupons template, once a year. The members
-- plugin finds them: a segment tiers_birthday_<tier> = {tier and
-- birthday_month} is saved and walked 500 members per job run, each run its own
-- transaction; tiers_gifts (kind "birthday-YYYY") keeps a member from a second
-- coupon in a year, across restarts and re-runs.

local program = require("lib.program")

local birthday = {}

birthday.SLICE = 500

local function has_members()
  return tp.exports("members", "save_segment")
end

---Job birthday (daily, at birthday_hour): starts the month's walk on the 1st.
function birthday.daily()
  local lt = tp.localtime()
  if lt.day ~= 1 or not has_members() then return end
  tp.jobs.schedule("birthday_slice", { level = 1, after = 0, year = lt.year, month = lt.month },
    { after = 0, key = "birthday_slice" })
end

---Job birthday_slice {level, after, year, month}: one page of one level's
---birthday members.
---@param job TpJob
function birthday.slice(job)
  local j = job.payload
  local levels = program.get().levels
  local level = levels[j.level]
  while level and not level.birthday_coupon do
    j.level, j.after = j.level + 1, 0
    level = levels[j.level]
  end
  if not level then return end
  local name = "tiers_birthday_" .. level.id
  if j.after == 0 then
    tp.call("members", "save_segment", name, { all = { { tier = level.id },
      { field = "birthday_month", op = "eq", value = j.month } } }, "tiers: this month's birthdays of a tier")
  end
  local page = tp.call("members", "page", name, j.after, birthday.SLICE)
  local kind = ("birthday-%04d"):format(j.year)
  local fresh = {}
  for _, user in ipairs(page.members) do
    if tp.db.exec([[INSERT INTO tiers_gifts (user, tier, kind, template_id, at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT DO NOTHING]], user, level.id, kind, level.birthday_coupon, tp.now()) == 1 then
      fresh[#fresh + 1] = user
    end
  end
  if #fresh > 0 then
    local res = tp.call("coupons", "issue", level.birthday_coupon, fresh, ("tiers:%s:%s"):format(kind, level.id))
    for _, c in ipairs(res.coupons or {}) do
      tp.db.exec("UPDATE tiers_gifts SET coupon_id = ? WHERE user = ? AND tier = ? AND kind = ?",
        c.coupon_id, c.user, level.id, kind)
    end
  end
  local next_job = page.next and { level = j.level, after = page.next, year = j.year, month = j.month }
    or { level = j.level + 1, after = 0, year = j.year, month = j.month }
  if page.next or levels[j.level + 1] then
    tp.jobs.schedule("birthday_slice", next_job, { after = 0, key = "birthday_slice" })
  end
end

---The next birthday_hour o'clock, local.
---@return integer
function birthday.next_at()
  local now = tp.now()
  local lt = tp.localtime(now)
  local at = now - (lt.hour * 3600 + lt.min * 60 + lt.sec) + program.get().birthday_hour * 3600
  if at <= now then at = at + 86400 end
  return at
end

return birthday
