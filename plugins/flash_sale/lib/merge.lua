-- Merging members (README "Merging members"). The members plugin merges the
-- younger member id `from` into the survivor `into` and calls member_merge
-- inside its transaction; an operator's undo calls member_unmerge.
--
-- flash_sale keeps one thing per person: flash_sale_buyers, what a user has
-- bought of each sale (the per-user limit's counter). A merge folds from's
-- counts into into's (summed: a person who bought 1 under a limit of 1 as
-- `from` cannot buy again as `into`, and may even sit above the limit, which
-- only blocks further buys). flash_sale_merge_moves records every count it
-- folded, so an unmerge gives back exactly those amounts; flash_sale_merges
-- records the merge itself, so a repeat does nothing and an order of `from`
-- that the orders plugin still names `from` is counted against the survivor
-- (survivor()).

local tpmerge = require("tp.merge")

local merge = {}

---Folds every count of `from` into `into` and records what it folded.
---Idempotent: a merge_id already recorded does nothing and moves nothing.
---@param from string   the younger member id, merged away
---@param into string   the survivor
---@param merge_id integer
---@return {buyers: integer} moved  counts of `from` folded into `into`
function merge.member_merge(from, into, merge_id)
  if not tpmerge.begin("flash_sale_merges", from, into, merge_id) then return { buyers = 0 } end
  -- a user's counts are found sale by sale through the primary key (sale_id,
  -- user), sales first (CROSS JOIN keeps that order): sales are few, and an
  -- index on user alone would cost every buy
  -- what only a rare merge needs
  tp.db.exec([[INSERT INTO flash_sale_merge_moves (merge_id, kind, row_id, amount, created)
    SELECT ?1, 'buyers', f.sale_id, f.bought,
      NOT EXISTS (SELECT 1 FROM flash_sale_buyers i WHERE i.sale_id = f.sale_id AND i.user = ?3)
    FROM flash_sale_sales s CROSS JOIN flash_sale_buyers f ON f.sale_id = s.id AND f.user = ?2]],
    merge_id, from, into)
  tp.db.exec([[INSERT INTO flash_sale_buyers (sale_id, user, bought)
    SELECT f.sale_id, ?2, f.bought FROM flash_sale_sales s
    CROSS JOIN flash_sale_buyers f ON f.sale_id = s.id AND f.user = ?1 WHERE true
    ON CONFLICT (sale_id, user) DO UPDATE SET bought = bought + excluded.bought]], from, into)
  -- a reservation (预约) of `from` is the person's: into may buy as if it reserved
  -- (kept by an unmerge: it only lets into buy what from could)
  tp.db.exec([[INSERT INTO flash_sale_reservations (sale_id, user, reserved_at)
    SELECT r.sale_id, ?2, r.reserved_at FROM flash_sale_sales s
    CROSS JOIN flash_sale_reservations r ON r.sale_id = s.id AND r.user = ?1 WHERE true
    ON CONFLICT (sale_id, user) DO NOTHING]], from, into)
  return { buyers = (tp.db.exec([[DELETE FROM flash_sale_buyers WHERE user = ?1
    AND sale_id IN (SELECT id FROM flash_sale_sales)]], from)) }
end

---Undoes merge merge_id: `into` gives back what was folded (never below 0; a
---count the merge created goes when it is back at 0) and `from` gets its
---counts back. What `into` bought since stays with `into`. Then the record
---is forgotten. Unknown or undone already: does nothing.
---@param from string
---@param into string
---@param merge_id integer
---@return {buyers: integer} moved  counts given back to `from`
function merge.member_unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("flash_sale_merges", from, into, merge_id) then return { buyers = 0 } end
  tp.db.exec([[UPDATE flash_sale_buyers SET bought = max(0, bought -
      (SELECT m.amount FROM flash_sale_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'buyers'
         AND m.row_id = flash_sale_buyers.sale_id))
    WHERE user = ?2 AND sale_id IN
      (SELECT row_id FROM flash_sale_merge_moves WHERE merge_id = ?1 AND kind = 'buyers')]], merge_id, into)
  tp.db.exec([[DELETE FROM flash_sale_buyers WHERE user = ?2 AND bought = 0 AND sale_id IN
      (SELECT row_id FROM flash_sale_merge_moves WHERE merge_id = ?1 AND kind = 'buyers' AND created = 1)]],
    merge_id, into)
  local moved = tp.db.exec([[INSERT INTO flash_sale_buyers (sale_id, user, bought)
    SELECT row_id, ?2, amount FROM flash_sale_merge_moves WHERE merge_id = ?1 AND kind = 'buyers'
    ON CONFLICT (sale_id, user) DO UPDATE SET bought = bought + excluded.bought]], merge_id, from)
  tp.db.exec("DELETE FROM flash_sale_merge_moves WHERE merge_id = ?", merge_id)
  return { buyers = moved }
end

---The member id user's counts live under now (tp.merge.survivor).
---@param user string
---@return string
function merge.survivor(user)
  return tpmerge.survivor("flash_sale_merges", user)
end

return merge
