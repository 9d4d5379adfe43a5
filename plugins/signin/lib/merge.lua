-- Merging members: the days `from` signed in on move to `into`, except days
-- `into` signed in on itself (one sign-in a day per person; those of from stay
-- behind, unused). signin_merge_moves records the days moved, so an unmerge
-- moves exactly those back. Streaks are not recomputed: a sign-in after the
-- merge continues from whichever row holds yesterday.

local tpmerge = require("tp.merge")

local merge = {}

function merge.member_merge(from, into, merge_id)
  if not tpmerge.begin("signin_merges", from, into, merge_id) then return { days = 0 } end
  tp.db.exec([[INSERT INTO signin_merge_moves (merge_id, day)
    SELECT ?1, f.day FROM signin_days f WHERE f.user = ?2
      AND NOT EXISTS (SELECT 1 FROM signin_days i WHERE i.user = ?3 AND i.day = f.day)]], merge_id, from, into)
  local n = tp.db.exec([[UPDATE signin_days SET user = ?3 WHERE user = ?2 AND day IN
    (SELECT day FROM signin_merge_moves WHERE merge_id = ?1)]], merge_id, from, into)
  return { days = n }
end

function merge.member_unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("signin_merges", from, into, merge_id) then return { days = 0 } end
  local n = tp.db.exec([[UPDATE signin_days SET user = ?2 WHERE user = ?3 AND day IN
    (SELECT day FROM signin_merge_moves WHERE merge_id = ?1)]], merge_id, from, into)
  tp.db.exec("DELETE FROM signin_merge_moves WHERE merge_id = ?", merge_id)
  return { days = n }
end

return merge
