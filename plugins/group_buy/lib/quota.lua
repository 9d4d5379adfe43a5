-- The per-user limit: units a user has ordered in an activity, counted when
-- the order is created (paid or not: check limits first, reserve second) and
-- given back once when the order lets go of its units (cancelled unpaid,
-- refunded in full). `counted` on the order's row makes the give-back happen
-- at most once, whoever asks first (release_order or the failed group's
-- refund job).

local quota = {}

---Adds qty to the user's units in the activity unless that passes limit.
---@return boolean
function quota.take(activity_id, user, qty, limit)
  -- a refused update changes no row (RETURNING would cost an ephemeral table)
  return qty <= limit and tp.db.exec([[
    INSERT INTO group_buy_buyers (activity_id, user, units) VALUES (?1, ?2, ?3)
    ON CONFLICT (activity_id, user) DO UPDATE SET units = units + ?3 WHERE units + ?3 <= ?4]],
    activity_id, user, qty, limit) == 1
end

---Gives the order's units back to its user's count, once.
---@param order_id integer
function quota.give_back(order_id)
  local row = tp.db.one([[UPDATE group_buy_orders SET counted = 0 WHERE order_id = ? AND counted = 1
    RETURNING activity_id, user, qty]], order_id)
  if not row then return end
  tp.db.exec([[UPDATE group_buy_buyers SET units = max(0, units - ?) WHERE activity_id = ? AND user = ?]],
    row.qty, row.activity_id, row.user)
end

---Counts the order's units again (a payment after its cancel); false if the
---user is at the limit by now.
---@return boolean
function quota.take_again(order_id, limit)
  local row = tp.db.one("SELECT activity_id, user, qty, counted FROM group_buy_orders WHERE order_id = ?", order_id)
  if not row then return false end
  if row.counted == 1 then return true end
  if not quota.take(row.activity_id, row.user, row.qty, limit) then return false end
  tp.db.exec("UPDATE group_buy_orders SET counted = 1 WHERE order_id = ?", order_id)
  return true
end

return quota
