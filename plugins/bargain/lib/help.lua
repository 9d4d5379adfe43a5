-- A friend's cut (帮砍): who may cut, and the cut itself. The cut is one
-- conditional UPDATE on the bargain's remaining fen and cut count, so two
-- helpers arriving at the same instant can never both take the last cut or
-- push the price below the floor, on SQLite or on a multi-host backend.

local customer = require("tp.customer")
local cuts = require("lib.cuts")
local rules = require("lib.rules")
local store = require("lib.store")

local help = {}

local REFUSALS = {
  floor_reached = { "floor_reached", "this bargain has reached its floor price" },
  ordered = { "bargain_bought", "the initiator has bought at this price; cutting is over" },
  paid = { "bargain_bought", "the initiator has bought at this price; cutting is over" },
  expired = { "bargain_expired", "this bargain's time is up" },
  closed = { "bargain_closed", "this bargain is closed" },
}

---409 with code and message.
local function refuse(code, message, details)
  tp.fail(409, code, message, details)
end


---Counts one help of user in the activity unless that passes limit.
---@return boolean
local function count_help(activity_id, user, limit)
  -- a refused update changes no row (RETURNING would cost an ephemeral table)
  return tp.db.exec([[
    INSERT INTO bargain_helpers (activity_id, helper, helps) VALUES (?1, ?2, 1)
    ON CONFLICT (activity_id, helper) DO UPDATE SET helps = helps + 1 WHERE helps + 1 <= ?3]],
    activity_id, user, limit) == 1
end

---Makes the next cut of b for helper: draws it (the first draw of this
---invocation, so tp.seed() replays it), takes it off with a conditional
---UPDATE, records seed and draw, and at the last cut opens the pay window.
---@param b Bargain   as loaded in this transaction
---@param helper string
---@param now integer
---@param r BargainRules?  b's rules, when the caller has decoded them
---@return integer cut_fen
function help.record_cut(b, helper, now, r)
  r = r or rules.decode(b.rules)
  local cut, draw = cuts.next(b.remaining_fen, b.cuts_left, tp.random)
  -- conditional on what was loaded, so the new values are known without
  -- RETURNING (which costs an ephemeral table)
  local changed = tp.db.exec([[
    UPDATE bargain_bargains SET remaining_fen = remaining_fen - ?1, cuts_left = cuts_left - 1,
      state = CASE WHEN cuts_left = 1 THEN 'floor_reached' ELSE state END,
      floor_reached_at = CASE WHEN cuts_left = 1 THEN ?2 ELSE floor_reached_at END,
      pay_deadline = CASE WHEN cuts_left = 1 THEN ?2 + ?3 ELSE pay_deadline END
    WHERE id = ?4 AND state = 'open' AND remaining_fen = ?5 AND cuts_left = ?6
      AND remaining_fen - ?1 >= cuts_left - 1]],
    cut, now, r.pay_window_seconds, b.id, b.remaining_fen, b.cuts_left)
  if changed ~= 1 then refuse("bargain_changed", "the bargain changed while you cut; try again") end
  local row = { cuts_left = b.cuts_left - 1, pay_deadline = now + r.pay_window_seconds }
  tp.db.exec([[INSERT INTO bargain_helps (bargain_id, seq, helper, cut_fen, remaining_before_fen,
      cuts_left_before, draw, seed, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)]],
    b.id, b.cuts_total - b.cuts_left + 1, helper, cut, b.remaining_fen, b.cuts_left, draw, tp.seed(), now)
  if row.cuts_left == 0 then
    tp.jobs.cancel("expire:" .. b.id)
    tp.jobs.schedule("pay_deadline", { bargain_id = b.id }, { at = row.pay_deadline, key = "pay:" .. b.id })
    tp.events.emit("bargain.floor_reached", { bargain = store.public(store.load(b.id), now, true, r) })
  end
  return cut
end

---POST /bargains/{id}/help: the checks that write nothing, the helper's
---count in the activity, then the cut.
---@param id integer
---@param helper string
---@return table answer {cut_fen, bargain}
function help.cut(id, helper)
  local b = store.load(id)
  if not b then tp.fail(404, "bargain_not_found", "no such bargain") end
  local now = tp.now()
  local state = store.state_at(b, now)
  if state ~= "open" then refuse(REFUSALS[state][1], REFUSALS[state][2], { state = state }) end
  if helper == b.initiator then refuse("own_bargain", "you cannot help your own bargain") end
  if tp.db.one("SELECT 1 AS yes FROM bargain_helps WHERE bargain_id = ? AND helper = ?", id, helper) then
    refuse("already_helped", "you have already helped this bargain")
  end
  local r = rules.decode(b.rules)
  if r.new_users_only and not customer.is_new(helper) then
    refuse("new_users_only", "only users who have not bought here yet can help")
  end
  if not count_help(b.activity_id, helper, r.helps_per_helper) then
    refuse("help_limit_reached", ("a user may help at most %d bargains of this activity")
      :format(r.helps_per_helper), { helps_per_helper = r.helps_per_helper })
  end
  -- a bargain's rules never change: decoded once here, for the cut and the answer
  local cut = help.record_cut(b, helper, now, r)
  return { cut_fen = cut, bargain = store.public(store.load(id), now, true, r) }
end

return help
