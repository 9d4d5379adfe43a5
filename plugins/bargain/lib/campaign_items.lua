---@diagnostic disable: undefined-global
-- Which activity each campaign item made. A campaign script names every item
-- with a ref that stays the same across reloads ("double11/flash_sale/2"), so a
-- second apply of the ref changes the activity the first one made instead of
-- making another. The row keeps the campaign (tp.caller()) that owns the ref.
--
-- The mechanics that take campaign items (flash_sale, coupons, group_buy,
-- bargain, friend_assist) each carry this file: a plugin may only touch its
-- own tables, and the SDK has no shared home for it yet. Keep the copies
-- identical.

local check = require("tp.check")

---@class CampaignItems
---@field tbl string     <plugin>_campaign_items
---@field column string  the activity id's column
local items = {}
items.__index = items

---The items of table tbl, whose activity id is in column.
---@param tbl string
---@param column string
---@return CampaignItems
function items.of(tbl, column)
  return setmetatable({ tbl = tbl, column = column }, items)
end

---The id of the activity ref made, or nil for a ref not seen yet. A ref that
---another campaign made is refused (409 campaign_ref_taken): one campaign
---never changes another's items.
---@param ref string
---@return integer|nil
function items:find(ref)
  check.campaign_ref(ref)
  local row = tp.db.one(("SELECT %s AS id, campaign FROM %s WHERE ref = ?"):format(self.column, self.tbl), ref)
  if row and row.campaign ~= tp.caller() then
    tp.fail(409, "campaign_ref_taken", ("ref %s belongs to %s"):format(ref, row.campaign),
      { ref = ref, campaign = row.campaign })
  end
  return row and row.id
end

---Records that ref names activity id, applied now (no longer withdrawn).
---@param ref string
---@param id integer
function items:remember(ref, id)
  tp.db.exec(([[INSERT INTO %s (ref, %s, campaign, updated_at) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (ref) DO UPDATE SET %s = ?2, updated_at = ?4, withdrawn_at = NULL]])
    :format(self.tbl, self.column, self.column), ref, id, tp.caller(), tp.now())
end

---Marks ref withdrawn and returns its activity's id, or nil when the calling
---campaign has no item ref.
---@param ref string
---@return integer|nil
function items:withdraw(ref)
  check.campaign_ref(ref)
  local row = tp.db.one(([[UPDATE %s SET withdrawn_at = coalesce(withdrawn_at, ?3), updated_at = ?3
    WHERE ref = ?1 AND campaign = ?2 RETURNING %s AS id]]):format(self.tbl, self.column),
    ref, tp.caller(), tp.now())
  return row and row.id
end

return items
