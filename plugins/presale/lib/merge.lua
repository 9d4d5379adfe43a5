-- Merging members (README "Merging members"). The members plugin merges the
-- younger member id `from` into the survivor `into` and calls member_merge
-- inside its transaction; an operator's undo calls member_unmerge.
--
-- presale keeps one thing per person that rules depend on: presale_buyers,
-- the units a user has taken of each presale (the per-user limit's counter).
-- A merge folds from's counts into into's (summed: one person never takes
-- past a limit with two ids), records each count it folded
-- (presale_merge_moves) so that an unmerge gives back exactly those, and
-- records the merge (presale_merges), so a repeat does nothing and an order
-- the orders plugin names `from` gives its units back to the survivor
-- (survivor()).

local tpmerge = require("tp.merge")

local merge = {}

---Folds every count of `from` into `into` and records what it folded.
---Idempotent: a merge_id already recorded moves nothing.
---@param from string   the younger member id, merged away
---@param into string   the survivor
---@param merge_id integer
---@return {buyers: integer} moved  counts of `from` folded into `into`
function merge.member_merge(from, into, merge_id)
  if not tpmerge.begin("presale_merges", from, into, merge_id) then return { buyers = 0 } end
  -- counts are found presale by presale through the primary key (presale_id, user)
  tp.db.exec([[INSERT INTO presale_merge_moves (merge_id, presale_id, amount, created)
    SELECT ?1, f.presale_id, f.bought,
      NOT EXISTS (SELECT 1 FROM presale_buyers i WHERE i.presale_id = f.presale_id AND i.user = ?3)
    FROM presale_presales s CROSS JOIN presale_buyers f ON f.presale_id = s.id AND f.user = ?2]],
    merge_id, from, into)
  tp.db.exec([[INSERT INTO presale_buyers (presale_id, user, bought)
    SELECT f.presale_id, ?2, f.bought FROM presale_presales s
    CROSS JOIN presale_buyers f ON f.presale_id = s.id AND f.user = ?1 WHERE true
    ON CONFLICT (presale_id, user) DO UPDATE SET bought = bought + excluded.bought]], from, into)
  return { buyers = (tp.db.exec([[DELETE FROM presale_buyers WHERE user = ?1
    AND presale_id IN (SELECT id FROM presale_presales)]], from)) }
end

---Undoes merge merge_id: `into` gives back what was folded (never below 0; a
---count the merge created goes when it is back at 0) and `from` gets its
---counts back. What `into` took since stays with `into`. Unknown or undone
---already: does nothing.
---@param from string
---@param into string
---@param merge_id integer
---@return {buyers: integer} moved  counts given back to `from`
function merge.member_unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("presale_merges", from, into, merge_id) then return { buyers = 0 } end
  tp.db.exec([[UPDATE presale_buyers SET bought = max(0, bought -
      (SELECT m.amount FROM presale_merge_moves m WHERE m.merge_id = ?1 AND m.presale_id = presale_buyers.presale_id))
    WHERE user = ?2 AND presale_id IN (SELECT presale_id FROM presale_merge_moves WHERE merge_id = ?1)]],
    merge_id, into)
  tp.db.exec([[DELETE FROM presale_buyers WHERE user = ?2 AND bought = 0 AND presale_id IN
      (SELECT presale_id FROM presale_merge_moves WHERE merge_id = ?1 AND created = 1)]], merge_id, into)
  local moved = tp.db.exec([[INSERT INTO presale_buyers (presale_id, user, bought)
    SELECT presale_id, ?2, amount FROM presale_merge_moves WHERE merge_id = ?1
    ON CONFLICT (presale_id, user) DO UPDATE SET bought = bought + excluded.bought]], merge_id, from)
  tp.db.exec("DELETE FROM presale_merge_moves WHERE merge_id = ?", merge_id)
  return { buyers = moved }
end

---The member id user's counts live under now (tp.merge.survivor).
---@param user string
---@return string
function merge.survivor(user)
  return tpmerge.survivor("presale_merges", user)
end

return merge
