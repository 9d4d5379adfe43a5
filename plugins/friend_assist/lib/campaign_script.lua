---@diagnostic disable: undefined-global
-- friend_assist/lib/campaign_script.lua: a campaign script's friend-assist
-- campaigns (README "Campaign scripts"): campaign_apply and campaign_withdraw,
-- on the operator's create and PATCH paths (lib/campaigns.lua).

local campaigns = require("lib.campaigns")
local campaign_items = require("tp.campaign_items")
local when = require("tp.when")

local items = campaign_items.of("friend_assist_campaign_items", "assist_campaign_id")

local script = {}

---What the reward is, for the summary: "coupon template #5", "code GIFT-10", "100 points".
local function reward_text(r)
  if r.kind == "coupon" then return ("coupon template #%d"):format(r.template_id) end
  if r.kind == "code" then return "code " .. r.code end
  return ("%d points"):format(r.points)
end

---One line for a campaign's preview:
---`friend assist #3 "Invite 3 friends": 3 friends in 1 h for coupon template #5`.
local function summary(c)
  return ('friend assist #%d "%s": %d friend%s in %s for %s'):format(c.id, c.name, c.friends_needed,
    c.friends_needed == 1 and "" or "s", when.duration(c.drive_seconds), reward_text(c.reward))
end

---exports.campaign_apply(ref, settings): creates the friend-assist campaign of
---campaign item ref, or changes the one it made (by the rules of a PATCH, with
---what settings leave out back at its default, starts_at kept), and makes it
---active again if it was withdrawn. opens_at/closes_at: starts_at/ends_at.
---@param ref string
---@param settings table the fields of POST /friend_assist/campaigns but status
---@return {id: integer, summary: string, opens_at: integer, closes_at: integer}
function script.apply(ref, settings)
  return items:apply(ref, settings, campaigns.SETTINGS, {
    create = campaigns.create_from, load = campaigns.load, describe = summary,
    change = function(id, b) campaigns.change(campaigns.load(id), b, true) end })
end

---exports.campaign_withdraw(ref): pauses the friend-assist campaign of
---campaign item ref (it starts no drives; drives in flight go on and are
---rewarded); false if this campaign has no item ref.
---@param ref string
---@return boolean
function script.withdraw(ref)
  local id = items:withdraw(ref)
  if not id then return false end
  tp.db.exec("UPDATE friend_assist_campaigns SET status = 'paused', updated_at = ? WHERE id = ?", tp.now(), id)
  return true
end

return script
