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
-- The one collision: (user, idempotency_key) is unique. When an order of
-- `from` carries a key an order of `into` already has, the survivor's order
-- keeps the key and `from`'s order gives it up (NULL), so a retried request of
-- either answers with the survivor's order and never creates a second one.
-- The key given up is recorded and comes back on undo.
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
  -- what moves, and the keys that collide with the survivor's (given up below)
  tp.db.exec([[INSERT INTO orders_merge_moves (merge_id, order_id, idempotency_key)
    SELECT ?1, o.id, CASE WHEN EXISTS (SELECT 1 FROM orders_orders s
                                      WHERE s.user = ?3 AND s.idempotency_key = o.idempotency_key)
                          THEN o.idempotency_key END
    FROM orders_orders o WHERE o.user = ?2]], merge_id, from, into)
  tp.db.exec([[UPDATE orders_orders SET idempotency_key = NULL
    WHERE user = ?2 AND id IN (SELECT order_id FROM orders_merge_moves
                               WHERE merge_id = ?1 AND idempotency_key IS NOT NULL)]], merge_id, from)
  local moved = tp.db.exec("UPDATE orders_orders SET user = ? WHERE user = ?", into, from)
  return { orders = moved }
end

---Undoes merge_id: the orders it moved that still belong to `into` go back to
---`from`, with the Idempotency-Keys they gave up; then the record is forgotten.
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
  -- keys after the user: back with `from`, they collide with nothing
  tp.db.exec([[UPDATE orders_orders AS o SET idempotency_key = m.idempotency_key
    FROM orders_merge_moves m
    WHERE m.merge_id = ?1 AND m.order_id = o.id AND m.idempotency_key IS NOT NULL
      AND o.user = ?2 AND o.idempotency_key IS NULL
      AND NOT EXISTS (SELECT 1 FROM orders_orders x WHERE x.user = ?2 AND x.idempotency_key = m.idempotency_key)]],
    merge_id, from)
  tp.db.exec("DELETE FROM orders_merge_moves WHERE merge_id = ?", merge_id)
  return { orders = moved }
end

return merge
