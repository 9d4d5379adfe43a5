-- A campaign script's group buys (README "Campaigns"): campaign_apply and
-- campaign_withdraw, on the operator's create and PATCH paths.

local money = require("tp.money")
local when = require("tp.when")
local activities = require("lib.activities")
local campaign_items = require("tp.campaign_items")

local items = campaign_items.of("group_buy_campaign_items", "activity_id")

local campaign = {}

---One line for a campaign's preview:
---"group buy #2: groups of 3 for tea-002 at ¥59.00, 24 h to fill", with
---" (leader ¥49.00)" after the price when the leader pays another.
local function summary(a)
  local leader = a.leader_price_fen and (" (leader %s)"):format(money.yuan(a.leader_price_fen)) or ""
  return ("group buy #%d: groups of %d for %s at %s%s, %s to fill"):format(a.id, a.group_size, a.sku,
    money.yuan(a.price_fen), leader, when.duration(a.group_ttl_seconds))
end

---exports.campaign_apply(ref, settings): creates the group buy of campaign
---item ref, or changes the one it made (by the rules of a PATCH, with what
---settings leave out back at its default), and makes it active again if it was
---withdrawn. opens_at/closes_at: starts_at/ends_at.
---@param ref string
---@param settings table the fields of POST /group-buys but status
---@return {id: integer, summary: string, opens_at: integer, closes_at: integer}
function campaign.apply(ref, settings)
  return items:apply(ref, settings, activities.SETTINGS, {
    create = activities.create, load = activities.load, describe = summary,
    change = function(id, b) activities.change(activities.load(id), b, true) end })
end

---exports.campaign_withdraw(ref): disables the group buy of campaign item ref
---(as an operator's PATCH status = disabled does: no new orders; groups in
---flight still form, fill or fail and refund); false if this campaign has no
---item ref.
---@param ref string
---@return boolean
function campaign.withdraw(ref)
  local id = items:withdraw(ref)
  if not id then return false end
  tp.db.exec("UPDATE group_buy_activities SET status = 'disabled', updated_at = ? WHERE id = ?", tp.now(), id)
  return true
end

return campaign
