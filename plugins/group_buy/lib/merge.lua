-- Merging members (README "Merging members"). The members plugin merges the
-- younger member id `from` into the survivor `into` and calls member_merge
-- inside its transaction; an operator's undo calls member_unmerge.
--
-- What group_buy keeps per person, and what a merge does with it:
--   group_buy_orders.user   every group order of `from` becomes into's; the
--                           row keeps the id it was placed under in
--                           merged_from (see "one group" below)
--   group_buy_groups.leader the groups `from` leads are led by `into`
--   group_buy_buyers        units ordered per activity (the per-user limit's
--                           counter): from's are summed into into's, so a
--                           merged person never passes per_user_limit
--
-- One group, two ids (the collision): the merge never cancels or refunds.
--   both seated (both paid)  both rows stay, both seats count: `into` holds
--                            two seats of the group. The seat index is one
--                            seat per (group, user, merged_from), so the
--                            moved seat is told apart by merged_from.
--   one seated, one unpaid   the seat is the survivor's; the unpaid order
--                            stays an order of `into`: if it is paid it
--                            cannot sit in a group `into` already sits in,
--                            so it overflows like any late payment (the
--                            fullest other open group, else a new group led
--                            by `into`, else a refund); unpaid, it times out
--   both unpaid              both stay; the first paid takes the seat, the
--                            other overflows as above
--
-- group_buy_merge_moves records every row and amount moved, so
-- member_unmerge moves back exactly those; group_buy_merges records the merge
-- itself, so a repeat does nothing.

local tpmerge = require("tp.merge")

local merge = {}

local NOTHING = { orders = 0, groups = 0, buyers = 0 }

---Gives every group order, group and count of `from` to `into` (counts
---summed) and records what it moved. Idempotent: a merge_id already recorded
---does nothing and moves nothing.
---@param from string   the younger member id, merged away
---@param into string   the survivor
---@param merge_id integer
---@return {orders: integer, groups: integer, buyers: integer} moved
function merge.member_merge(from, into, merge_id)
  if not tpmerge.begin("group_buy_merges", from, into, merge_id) then return NOTHING end
  -- orders: re-keyed; merged_from keeps the id a seat was taken under (an
  -- earlier merge's, if any), so two seats of one group stay two seats
  tp.db.exec([[INSERT INTO group_buy_merge_moves (merge_id, kind, row_id, prior)
    SELECT ?1, 'order', order_id, merged_from FROM group_buy_orders WHERE user = ?2]], merge_id, from)
  local orders = tp.db.exec([[UPDATE group_buy_orders SET user = ?2, merged_from = ifnull(merged_from, ?1)
    WHERE user = ?1]], from, into)
  -- groups led
  tp.db.exec([[INSERT INTO group_buy_merge_moves (merge_id, kind, row_id)
    SELECT ?1, 'group', id FROM group_buy_groups WHERE leader = ?2]], merge_id, from)
  local groups = tp.db.exec("UPDATE group_buy_groups SET leader = ?2 WHERE leader = ?1", from, into)
  -- the per-user limit's counts: summed
  tp.db.exec([[INSERT INTO group_buy_merge_moves (merge_id, kind, row_id, amount, created)
    SELECT ?1, 'buyers', f.activity_id, f.units,
      NOT EXISTS (SELECT 1 FROM group_buy_buyers i WHERE i.activity_id = f.activity_id AND i.user = ?3)
    FROM group_buy_buyers f WHERE f.user = ?2]], merge_id, from, into)
  tp.db.exec([[INSERT INTO group_buy_buyers (activity_id, user, units)
    SELECT activity_id, ?2, units FROM group_buy_buyers WHERE user = ?1
    ON CONFLICT (activity_id, user) DO UPDATE SET units = units + excluded.units]], from, into)
  local buyers = tp.db.exec("DELETE FROM group_buy_buyers WHERE user = ?", from)
  return { orders = orders, groups = groups, buyers = buyers }
end

---Undoes merge merge_id: the orders it moved go back to `from` (those still
---with `into`), with the merged_from they had; the groups it moved are led by
---`from` again while their leader order is from's; the two ids' counts of
---the activities it summed are what their orders hold (a count of into's
---that the merge created and that is back at 0 goes). What `into` did since
---stays with `into`. Then the record is forgotten. Unknown or undone
---already: nothing.
---@param from string
---@param into string
---@param merge_id integer
---@return {orders: integer, groups: integer, buyers: integer} moved
function merge.member_unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("group_buy_merges", from, into, merge_id) then return NOTHING end
  local orders = tp.db.exec([[UPDATE group_buy_orders SET user = ?3,
      merged_from = (SELECT m.prior FROM group_buy_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'order'
                       AND m.row_id = group_buy_orders.order_id)
    WHERE user = ?2 AND order_id IN
      (SELECT row_id FROM group_buy_merge_moves WHERE merge_id = ?1 AND kind = 'order')]], merge_id, into, from)
  -- a group whose leader changed since (the leader left, another member leads) stays as it is
  local groups = tp.db.exec([[UPDATE group_buy_groups SET leader = ?3
    WHERE leader = ?2 AND id IN (SELECT row_id FROM group_buy_merge_moves WHERE merge_id = ?1 AND kind = 'group')
      AND leader_order_id IN (SELECT order_id FROM group_buy_orders WHERE user = ?3)]], merge_id, into, from)
  -- the counts of the activities the merge summed, for both ids, are what
  -- their orders hold now (lib/quota.lua: units of the orders counted = 1).
  -- With nothing done in between that is the folded amount taken off into's
  -- and given back to from's; after a cancel or a refund it stays exact,
  -- where subtracting the folded amount would leave a unit on the wrong id.
  tp.db.exec([[UPDATE group_buy_buyers SET units = (SELECT ifnull(sum(o.qty), 0) FROM group_buy_orders o
      WHERE o.activity_id = group_buy_buyers.activity_id AND o.user = ?2 AND o.counted = 1)
    WHERE user = ?2 AND activity_id IN
      (SELECT row_id FROM group_buy_merge_moves WHERE merge_id = ?1 AND kind = 'buyers')]], merge_id, into)
  tp.db.exec([[DELETE FROM group_buy_buyers WHERE user = ?2 AND units = 0 AND activity_id IN
      (SELECT row_id FROM group_buy_merge_moves WHERE merge_id = ?1 AND kind = 'buyers' AND created = 1)]],
    merge_id, into)
  local buyers = tp.db.exec([[INSERT INTO group_buy_buyers (activity_id, user, units)
    SELECT m.row_id, ?2, (SELECT ifnull(sum(o.qty), 0) FROM group_buy_orders o
                          WHERE o.activity_id = m.row_id AND o.user = ?2 AND o.counted = 1)
    FROM group_buy_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'buyers'
    ON CONFLICT (activity_id, user) DO UPDATE SET units = excluded.units]], merge_id, from)
  tp.db.exec("DELETE FROM group_buy_merge_moves WHERE merge_id = ?", merge_id)
  return { orders = orders, groups = groups, buyers = buyers }
end

return merge
