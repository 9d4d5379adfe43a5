-- A campaign script's bargain activities (README "Campaigns"): campaign_apply
-- and campaign_withdraw, on the operator's create and PATCH paths.

local money = require("tp.money")
local activities = require("lib.activities")
local rules = require("lib.rules")
local campaign_items = require("tp.campaign_items")

local items = campaign_items.of("bargain_campaign_items", "activity_id")

local campaign = {}

---What a campaign item may set: the create body but status, which apply and
---withdraw own.
local SETTINGS = {}
for field in pairs(rules.FIELDS.names) do SETTINGS[field] = field ~= "status" or nil end

---One line for a campaign's preview: "bargain #4: tea-003 cut from ¥99.00 to ¥9.90 by 5 friends".
local function summary(a)
  return ("bargain #%d: %s cut from %s to %s by %d friend%s"):format(a.id, a.sku,
    money.yuan(a.original_price_fen), money.yuan(a.floor_price_fen), a.helpers_needed,
    a.helpers_needed == 1 and "" or "s")
end

---exports.campaign_apply(ref, settings): creates the bargain activity of
---campaign item ref, or changes the one it made (by the rules of a PATCH, with
---what settings leave out back at its default), and makes it active again if
---it was withdrawn. opens_at/closes_at: starts_at/ends_at.
---@param ref string
---@param settings table the fields of POST /bargain/activities but status
---@return {id: integer, summary: string, opens_at: integer, closes_at: integer}
function campaign.apply(ref, settings)
  return items:apply(ref, settings, SETTINGS, {
    create = activities.create_from, load = activities.load, describe = summary,
    change = function(id, b) activities.change(activities.load(id), b, true) end })
end

---exports.campaign_withdraw(ref): disables the bargain activity of campaign
---item ref (it starts no more bargains; those in progress keep their rules,
---cuts and orders); false if this campaign has no item ref.
---@param ref string
---@return boolean
function campaign.withdraw(ref)
  local id = items:withdraw(ref)
  if not id then return false end
  tp.db.exec("UPDATE bargain_activities SET status = 'disabled', updated_at = ? WHERE id = ?", tp.now(), id)
  return true
end

return campaign
