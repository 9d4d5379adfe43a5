---@diagnostic disable: undefined-global
-- tp.campaign_items: which activity each campaign item made, for a plugin that
-- takes part in campaigns (GUIDE "Taking part in campaigns"). A campaign script
-- names every item with a ref that stays the same across reloads
-- ("double11/flash_sale/2"), so a second apply of the ref changes the activity
-- the first one made instead of making another. The row keeps the campaign
-- (tp.caller()) that owns the ref.
--
-- Like every tp module it runs in the calling plugin's own Lua state, on that
-- plugin's tables: the plugin names its items table (<plugin>_campaign_items:
-- ref TEXT PRIMARY KEY, the activity id's column, campaign, updated_at,
-- withdrawn_at) in items.of. `require("tp.campaign_items")`.

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

---The ref of the campaign item that made activity id and still runs it, or
---nil (an operator's own activity, or a withdrawn item's). A refusal that
---names another activity gives its ref, so a campaign can say which of its
---items (or another campaign's) that is, with the line it is declared on.
---@param id integer
---@return string|nil
function items:ref_of(id)
  local row = tp.db.one(("SELECT ref FROM %s WHERE %s = ? AND withdrawn_at IS NULL"):format(self.tbl, self.column), id)
  return row and row.ref
end

---Records that ref names activity id, applied now (no longer withdrawn).
---@param ref string
---@param id integer
function items:remember(ref, id)
  tp.db.exec(([[INSERT INTO %s (ref, %s, campaign, updated_at) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (ref) DO UPDATE SET %s = ?2, updated_at = ?4, withdrawn_at = NULL]])
    :format(self.tbl, self.column, self.column), ref, id, tp.caller(), tp.now())
end

---exports.campaign_apply's usual shape: finds the activity ref made, refuses
---any setting not in allowed, then creates the activity from settings plus
---status = "active", or changes the one ref made with that body (so a withdrawn
---one is active again), remembers it and answers with it as it now is.
---fns: create(body) -> id; change(id, body); load(id) -> row;
---describe(row) -> the one-line summary; window(row) -> opens_at, closes_at
---(default row.starts_at, row.ends_at).
---@param ref string
---@param settings table the create body's fields but status
---@param allowed table<string, boolean> the fields settings may have
---@param fns {create: fun(body: table): integer, change: fun(id: integer, body: table), load: fun(id: integer): table, describe: fun(row: table): string, window: (fun(row: table): integer, integer)|nil}
---@return {id: integer, summary: string, opens_at: integer, closes_at: integer}
function items:apply(ref, settings, allowed, fns)
  local id = self:find(ref)
  check.only(check.body(settings, true), allowed)
  local body = { status = "active" }
  for k, v in pairs(settings) do body[k] = v end
  if id then fns.change(id, body) else id = fns.create(body) end
  self:remember(ref, id)
  local row = fns.load(id)
  local opens_at, closes_at
  if fns.window then opens_at, closes_at = fns.window(row) else opens_at, closes_at = row.starts_at, row.ends_at end
  return { id = id, summary = fns.describe(row), opens_at = opens_at, closes_at = closes_at }
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
