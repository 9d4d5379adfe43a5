-- Every instant and duration of a group buy, computed from the activity's
-- config in this one place (research pitfall 22: a duration hard-coded in an
-- edge path, such as a promoted leader's group getting a fresh 24 h, is the
-- bug the incumbents have). Nothing else in the plugin adds seconds to a time.

local deadlines = {}

-- orders accepts an unpaid timeout of 60 s to 1 day
local MIN_PAY_SECONDS, MAX_PAY_SECONDS = 60, 86400

---When a group opened at opened_at expires: its time to fill, but never after
---the activity ends (no group outlives its activity, so a payment landing
---after the end finds no open group and is refunded).
---@param activity GroupBuyActivity
---@param opened_at integer epoch seconds
---@return integer
function deadlines.group_expires_at(activity, opened_at)
  return math.min(opened_at + activity.group_ttl_seconds, activity.ends_at)
end

---How long the user has to pay an order created now: the activity's unpaid
---timeout, cut to what is left of the group being joined (or of the activity,
---for a group being opened), within the bounds orders accepts. A payment that
---still lands after the group closed is placed in another group or refunded.
---@param activity GroupBuyActivity
---@param now integer
---@param group GroupBuyGroup|nil the open group being joined
---@return integer seconds
function deadlines.pay_within(activity, now, group)
  local closes_at = group and group.expires_at or activity.ends_at
  local seconds = math.min(activity.unpaid_timeout_seconds, closes_at - now)
  return math.max(MIN_PAY_SECONDS, math.min(MAX_PAY_SECONDS, seconds))
end

---Seconds a group still has to fill (0 once expired).
---@param group GroupBuyGroup
---@param now integer
---@return integer
function deadlines.seconds_left(group, now)
  if not group.expires_at then return 0 end
  return math.max(0, group.expires_at - now)
end

---True while the activity takes new orders and opens new groups.
---@param activity GroupBuyActivity
---@param now integer
---@return boolean
function deadlines.in_window(activity, now)
  return activity.starts_at <= now and now < activity.ends_at
end

deadlines.MIN_PAY_SECONDS, deadlines.MAX_PAY_SECONDS = MIN_PAY_SECONDS, MAX_PAY_SECONDS

return deadlines
