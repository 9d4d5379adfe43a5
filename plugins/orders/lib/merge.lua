-- Merging members (README "Merging members"). When the members plugin proves
-- that two member ids are one person it calls member_merge(from, into,
-- merge_id) inside its own transaction, and member_unmerge with the same
-- arguments when an operator undoes a merge made by hand.
--
-- What moves: every order of `from` becomes an order of `into` (its `user`);
-- the per-user rules read the rows, so they hold for the merged person at once:
-- max_unpaid_orders counts both ids' unpaid orders, customer(user) counts both
-- ids' paid orders ("new user" rules). An order's attribution (referrer,
-- referrer2, store, guide) is what was true when it was created and is never
-- rewritten, a merge included: the referral plugin resolves a merged referrer
-- itself when it pays commission.
--
-- Nothing collides: Idempotency-Keys are the host's (store/idem.h), which
-- moves the merged id's keys to the survivor itself, the survivor's winning.
--
-- orders_merges keeps one row per merge (a second call with the same merge_id
-- does nothing); orders_merge_moves lists the orders it moved. Undo moves back
-- exactly those orders that still belong to `into` (an order a later merge
-- moved on stays where it is), so what `into` did after the merge stays hers.

local tpmerge = require("tp.merge")

local merge = {}

---Moves every order of `from` to `into`; see the top of this file.
---@param from string the younger member id, merged away
---@param into string the surviving member id
---@param merge_id integer unique per merge
---@return {orders: integer} moved
function merge.merge(from, into, merge_id)
  if not tpmerge.begin("orders_merges", from, into, merge_id) then return { orders = 0 } end
  tp.db.exec([[INSERT INTO orders_merge_moves (merge_id, order_id)
    SELECT ?1, id FROM orders_orders WHERE user = ?2]], merge_id, from)
  local moved = tp.db.exec("UPDATE orders_orders SET user = ? WHERE user = ?", into, from)
  return { orders = moved }
end

---Undoes merge_id: the orders it moved that still belong to `into` go back to
---`from`; then the record is forgotten.
---An unknown merge_id does nothing.
---@param from string
---@param into string
---@param merge_id integer
---@return {orders: integer} moved back
function merge.unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("orders_merges", from, into, merge_id) then return { orders = 0 } end
  local moved = tp.db.exec([[UPDATE orders_orders SET user = ?3
    WHERE user = ?2 AND id IN (SELECT order_id FROM orders_merge_moves WHERE merge_id = ?1)]],
    merge_id, into, from)
  tp.db.exec("DELETE FROM orders_merge_moves WHERE merge_id = ?", merge_id)
  return { orders = moved }
end

return merge
