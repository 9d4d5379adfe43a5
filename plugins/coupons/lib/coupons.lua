---@diagnostic disable: undefined-global
-- coupons/lib/coupons.lua: issued coupons as users (and operators) read them.

local check = require("tp.check")
local templates = require("lib.templates")

---@alias CouponState "unused"|"locked"|"used"|"expired"

---A coupon: one user's copy of a template, with what is needed to display it.
---@class Coupon
---@field id integer
---@field template_id integer
---@field user string the owner
---@field seq integer the owner's n-th coupon of this template
---@field source "claim"|"issue" claimed by the user or issued by an operator
---@field claimed_at integer epoch of issue
---@field valid_from integer epoch
---@field valid_until integer epoch; valid while valid_from <= now < valid_until
---@field state CouponState expired = unused and now >= valid_until (derived, never stored)
---@field usable boolean unused and valid right now
---@field order_id integer|string? the order holding it (locked) or that used it
---@field locked_at integer?
---@field used_at integer?
---@field name string the template's
---@field kind CouponKind
---@field amount_off_fen integer?
---@field percent_off integer?
---@field max_discount_fen integer?
---@field min_spend_fen integer
---@field scope CouponScope
---@field product_ids integer[]

local coupons = {}

local SELECT = [[
  SELECT c.id, c.template_id, c.user, c.seq, c.source, c.claimed_at, c.valid_from, c.valid_until,
    c.state, c.order_id, c.locked_at, c.used_at, t.name, t.kind, t.amount_off_fen, t.percent_off,
    t.max_discount_fen, t.min_spend_fen, t.scope
  FROM coupons_coupons c JOIN coupons_templates t ON t.id = c.template_id]]

-- state filters: fixed SQL chosen by name, never built from input
local STATE_FILTERS = {
  unused = "c.state = 'unused' AND c.valid_until > :now",
  expired = "c.state = 'unused' AND c.valid_until <= :now",
  locked = "c.state = 'locked'",
  used = "c.state = 'used'",
}
coupons.STATES = { unused = true, locked = true, used = true, expired = true }

---The state a coupon shows at now.
---@param state string stored state
---@param valid_until integer
---@param now integer
---@return CouponState
function coupons.state_at(state, valid_until, now)
  if state == "unused" and now >= valid_until then return "expired" end
  return state
end

---Completes coupon rows (in place) with derived state and product ids.
---@param rows table[]
---@param now integer
---@return Coupon[]
function coupons.shape_all(rows, now)
  local ids, seen = {}, {}
  for _, r in ipairs(rows) do
    if not seen[r.template_id] then
      seen[r.template_id] = true
      ids[#ids + 1] = r.template_id
    end
  end
  local products = templates.product_ids(ids)
  for _, r in ipairs(rows) do
    r.state = coupons.state_at(r.state, r.valid_until, now)
    r.usable = r.state == "unused" and r.valid_from <= now
    r.product_ids = products[r.template_id]
  end
  return tp.json.array(rows)
end

local LOAD_SQL = SELECT .. " WHERE c.id = ? AND c.user = ?"

---One coupon of user, or nil.
---@param id integer
---@param user string
---@param now integer
---@return Coupon|nil
function coupons.load(id, user, now)
  local row = tp.db.one(LOAD_SQL, id, user)
  return row and coupons.shape_all({ row }, now)[1]
end

---Reads ?state=&limit=&after= of a coupon list.
local function list_query(q, max_limit)
  local limit, after = check.page(q, 100, max_limit)
  after = after or 0
  if q.state ~= nil and not coupons.STATES[q.state] then
    tp.fail(400, "invalid_query", "state must be unused, locked, used or expired")
  end
  return limit, after, q.state and STATE_FILTERS[q.state] or "1"
end

---GET /coupons/mine?state=unused|locked|used|expired&limit=&after= (user): the user's own coupons.
function coupons.mine(req)
  local limit, after, filter = list_query(req.query, 200)
  local now = tp.now()
  local rows = tp.db.query(SELECT .. " WHERE c.user = :user AND c.id > :after AND " .. filter ..
    " ORDER BY c.id LIMIT :limit", { user = req.user, after = after, now = now, limit = limit })
  local items = coupons.shape_all(rows, now)
  return 200, { items = items, next_after = #items == limit and items[#items].id or nil }
end

---GET /coupons/templates/{id}/coupons?state=&limit=&after= (admin): every coupon of a template.
function coupons.of_template(req)
  local limit, after, filter = list_query(req.query, 1000)
  if not templates.row(req.params.id) then
    tp.fail(404, "template_not_found", "no such coupon template")
  end
  local now = tp.now()
  local rows = tp.db.query(SELECT .. " WHERE c.template_id = :tid AND c.id > :after AND " .. filter ..
    " ORDER BY c.id LIMIT :limit", { tid = req.params.id, after = after, now = now, limit = limit })
  local items = coupons.shape_all(rows, now)
  return 200, { items = items, next_after = #items == limit and items[#items].id or nil }
end

return coupons
