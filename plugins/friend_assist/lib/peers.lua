---@diagnostic disable: undefined-global
-- friend_assist/lib/peers.lua: what this plugin asks other plugins, in one place.
--
-- Whether orders can answer customer(user) at all is asked when a campaign turns
-- on new_users_only (each assist's own check is tp.customer.is_new); coupons.issue
-- gives the reward coupon. Either plugin may be absent for a tenant, and the
-- host has no way to ask "does plugin P export F?" without calling it, so the
-- probes below call and read the host's error text (see README "Caveats").

local peers = {}

local NOT_ENABLED = "is enabled for this tenant"   -- tp.call: no plugin 'x' is enabled for this tenant
local NO_EXPORT = "exports no function"            -- tp.call x.f: plugin 'x' exports no function 'f'

---The export of the coupons plugin that gives one coupon to one user.
peers.COUPON_EXPORT = "issue"

local function message_of(err)
  if type(err) == "table" then return tostring(err.message) end
  return tostring(err)
end

---nil if the orders plugin answers customer(user) here, else why not.
---@return string|nil
function peers.orders_problem()
  local ok, err = pcall(tp.call, "orders", "customer", "friend_assist_probe")
  if ok then return nil end
  local msg = message_of(err)
  if msg:find(NOT_ENABLED, 1, true) then return "the orders plugin is not enabled for this shop" end
  return "the orders plugin cannot tell new users apart: " .. msg
end


---nil if the coupons plugin is enabled and exports issue, else why not.
---The probe calls issue with no arguments: a real issue export refuses that
---(its failure is rolled back with it), and only the host's own "not enabled" /
---"exports no function" errors mean the reward could never be given.
---@return string|nil
function peers.coupons_problem()
  local ok, err = pcall(tp.call, "coupons", peers.COUPON_EXPORT)
  if ok then return nil end
  local msg = message_of(err)
  if msg:find(NOT_ENABLED, 1, true) then return "the coupons plugin is not enabled for this shop" end
  if msg:find(NO_EXPORT, 1, true) then
    return ("the coupons plugin has no '%s' export to give a coupon to a user"):format(peers.COUPON_EXPORT)
  end
  return nil
end

---Gives user one coupon of template_id, inside this transaction, through
---coupons' issue(template_id, users, source) export; source names the drive
---("friend_assist:drive:12"), which coupons keeps on the coupon. Any refusal by
---coupons (paused, expired, sold out), or the user already holding as many
---coupons of the template as it allows (issue skips them), is re-raised as 409
---reward_unavailable, which rolls back the completing assist too: a drive
---completes only with its reward.
---@param template_id integer
---@param user string
---@param drive_id integer
---@return integer coupon_id
function peers.issue_coupon(template_id, user, drive_id)
  local ok, result = pcall(tp.call, "coupons", peers.COUPON_EXPORT, template_id, { user },
                           "friend_assist:drive:" .. drive_id)
  if not ok then
    tp.log("warn", "coupons.issue failed", { error = message_of(result), drive_id = drive_id })
    tp.fail(409, "reward_unavailable", "the reward coupon cannot be given right now; nothing was recorded",
      { reason = type(result) == "table" and result.code or "coupons_failed" })
  end
  local coupon = result.coupons[1]
  if not coupon then  -- skipped, and coupons says why (limit_reached, erased)
    local skip = type(result.skipped) == "table" and result.skipped[1] or {}
    local reason = type(skip.reason) == "string" and skip.reason or "limit_reached"
    tp.fail(409, "reward_unavailable", reason == "limit_reached"
      and "the initiator already holds as many of the reward coupon as it allows"
      or ("the reward coupon was not given (%s)"):format(reason), { reason = reason })
  end
  return coupon.coupon_id
end

---Credits a points reward to user through the points plugin's grant(user,
---points, source) export, inside this transaction (source "drive:<id>", kept
---on the ledger entry as friend_assist:drive:<id>). A shop without the points
---plugin gets what it always had: the points are only announced in
---friend_assist.completed (nil returned). A refusal by points is 409
---reward_unavailable, which rolls back the completing assist too.
---@param user string
---@param points integer
---@param drive_id integer
---@return integer|nil balance
function peers.credit_points(user, points, drive_id)
  local ok, result = pcall(tp.call, "points", "grant", user, points, "drive:" .. drive_id, "friend_assist reward")
  if ok then return result.balance end
  if message_of(result):find(NOT_ENABLED, 1, true) then return nil end
  tp.log("warn", "points.grant failed", { error = message_of(result), drive_id = drive_id })
  tp.fail(409, "reward_unavailable", "the reward points cannot be given right now; nothing was recorded",
    { reason = type(result) == "table" and result.code or "points_failed" })
end

return peers
