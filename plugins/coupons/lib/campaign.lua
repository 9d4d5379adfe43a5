---@diagnostic disable: undefined-global
-- coupons/lib/campaign.lua: a campaign script's coupon templates (README
-- "Campaigns"). The template's rules are the create body's and go through the
-- same checks; a later apply changes what a PATCH may change.

local check = require("tp.check")
local templates = require("lib.templates")
local campaign_items = require("tp.campaign_items")

local items = campaign_items.of("coupons_campaign_items", "template_id")

local campaign = {}

---One line for a campaign's preview: `coupon template #5 "¥20 off ¥199": 1000 coupons`.
local function summary(t)
  return ('coupon template #%d "%s": %d coupons'):format(t.id, t.name, t.total_quantity)
end

---exports.campaign_apply(ref, settings): creates the template of campaign item
---ref, or changes the one it made (name, claim_ends_at and total_quantity; any
---other rule that differs is refused naming its field), and makes it active
---again if it was withdrawn. opens_at/closes_at: the claim window (from the
---template's creation when it has no start; to valid_until, else
---check.MAX_EPOCH, when it has no end).
---@param ref string
---@param settings table the fields of POST /coupons/templates but status
---@return {id: integer, summary: string, opens_at: integer, closes_at: integer}
function campaign.apply(ref, settings)
  return items:apply(ref, settings, templates.SETTINGS, {
    create = function(b) return templates.apply(nil, b) end,
    change = function(id, b) templates.apply(templates.row(id), b) end,
    load = templates.row,
    describe = summary,
    window = function(t)
      return t.claim_starts_at or t.created_at, t.claim_ends_at or t.valid_until or check.MAX_EPOCH
    end,
  })
end

---exports.campaign_withdraw(ref): pauses the template of campaign item ref (no
---more claims or issues; coupons already given stay usable); false if this
---campaign has no item ref.
---@param ref string
---@return boolean
function campaign.withdraw(ref)
  local id = items:withdraw(ref)
  if not id then return false end
  tp.db.exec("UPDATE coupons_templates SET status = 'paused', updated_at = ? WHERE id = ?", tp.now(), id)
  return true
end

return campaign
