-- Reading bargains: the row, its cuts, the state it is in at an instant, and
-- the shapes the share page and the operator see.

local rules = require("lib.rules")

local store = {}

store.BARGAIN_COLUMNS = [[id, activity_id, initiator, rules, sku, original_price_fen, floor_price_fen,
  cuts_total, cuts_left, remaining_fen, state, order_id, started_at, expires_at, floor_reached_at,
  pay_deadline, ended_at, end_reason, paid_at]]

---@class Bargain
---@field id integer
---@field activity_id integer
---@field initiator string
---@field rules string          the frozen BargainRules, JSON
---@field original_price_fen integer
---@field floor_price_fen integer
---@field cuts_total integer
---@field cuts_left integer
---@field remaining_fen integer fen still to cut: the price is floor_price_fen + remaining_fen
---@field state "open"|"floor_reached"|"ordered"|"paid"|"expired"|"closed"
---@field order_id integer|nil  the order of the current buy
---@field expires_at integer    end of cutting (open)
---@field pay_deadline integer|nil  end of the pay window (once the floor is reached)

-- built once: a statement made at every call is a new long string, which Lua
-- hashes and compares in full to find its prepared statement
local LOAD_SQL = "SELECT " .. store.BARGAIN_COLUMNS .. " FROM bargain_bargains WHERE id = ?"

---@param id integer
---@return Bargain|nil
function store.load(id)
  return tp.db.one(LOAD_SQL, id)
end

---The price the initiator would pay now.
---@param b Bargain
---@return integer
function store.price(b)
  return b.floor_price_fen + b.remaining_fen
end

---The state at instant now: an open bargain whose time is up is "expired",
---and a bargain at the floor whose pay window passed is "closed", even before
---the job that writes so has run.
---@param b Bargain
---@param now integer
---@return string
function store.state_at(b, now)
  if b.state == "open" and now >= b.expires_at then return "expired" end
  if b.state == "floor_reached" and now >= b.pay_deadline then return "closed" end
  return b.state
end

store.SHARE_PAGE_HELPS = 50

local HELPS = [[SELECT seq, helper, cut_fen, remaining_before_fen, cuts_left_before, draw, seed,
    created_at, merged_from FROM bargain_helps WHERE bargain_id = ?]]
local HELPS_ALL = HELPS .. " ORDER BY seq"
local HELPS_LATEST = HELPS .. " ORDER BY seq DESC LIMIT ?"

---The cuts of a bargain: with_draws, all of them in order with what replays
---them (the operator's view); else the latest SHARE_PAGE_HELPS, newest first
---(the share page of a bargain with thousands of helpers stays small).
---@param id integer
---@param with_draws boolean
---@return table[]
function store.helps(id, with_draws)
  local rows = with_draws and tp.db.query(HELPS_ALL, id)
    or tp.db.query(HELPS_LATEST, id, store.SHARE_PAGE_HELPS)
  local out = tp.json.array()
  for i, r in ipairs(rows) do
    out[i] = { seq = r.seq, helper = r.helper, cut_fen = r.cut_fen, at = r.created_at }
    if with_draws then
      out[i].remaining_before_fen, out[i].cuts_left_before = r.remaining_before_fen, r.cuts_left_before
      out[i].draw, out[i].seed = r.draw, r.seed
      out[i].merged_from = r.merged_from  -- the id it was cut under, when a member merge moved it
    end
  end
  return out
end

---A bargain as the share page and its initiator see it; without_helps leaves
---out the list of cuts (the answer to a help, a list of bargains).
---@param b Bargain
---@param now integer
---@param without_helps boolean?
---@param r BargainRules?  b's rules, when the caller has decoded them (they never change)
---@return table
function store.public(b, now, without_helps, r)
  r = r or rules.decode(b.rules)
  local state = store.state_at(b, now)
  local deadline = (state == "open" and b.expires_at) or (state == "floor_reached" and b.pay_deadline)
  return {
    id = b.id, activity_id = b.activity_id, initiator = b.initiator, sku = b.sku, title = r.title,
    state = state, original_price_fen = b.original_price_fen, floor_price_fen = b.floor_price_fen,
    price_fen = store.price(b), cut_fen = b.original_price_fen - store.price(b),
    cuts_total = b.cuts_total, cuts_made = b.cuts_total - b.cuts_left, cuts_left = b.cuts_left,
    helpers_needed = r.helpers_needed, started_at = b.started_at, expires_at = b.expires_at,
    pay_deadline = b.pay_deadline, seconds_left = deadline and math.max(0, deadline - now) or 0,
    can_help = state == "open",
    can_buy = state == "floor_reached" or (state == "open" and r.buy_before_floor),
    order_id = b.order_id, now = now, helps = not without_helps and store.helps(b.id, false) or nil,
  }
end

---The operator's view: the public one, the frozen rules, the stored state and
---every cut's seed and draw.
---@param b Bargain
---@param now integer
---@return table
function store.admin(b, now)
  local out = store.public(b, now)
  out.rules = rules.decode(b.rules)
  out.stored_state = b.state
  out.remaining_fen = b.remaining_fen
  out.floor_reached_at, out.paid_at = b.floor_reached_at, b.paid_at
  out.ended_at, out.end_reason = b.ended_at, b.end_reason
  out.helps = store.helps(b.id, true)
  return out
end

return store
