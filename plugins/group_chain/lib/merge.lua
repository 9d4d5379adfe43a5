-- Merging members (README "Merging members"). The members plugin merges the
-- younger member id `from` into the survivor `into` and calls member_merge
-- inside its transaction; an operator's undo calls member_unmerge.
--
-- What group_chain keeps per person, and what a merge does with it:
--   group_chain_organisers  from's role becomes into's; if both had it, into
--                           keeps its own grant (one role per person)
--   group_chain_posts       the posts from organised are into's (summary,
--                           CSV, the close event name into)
--   group_chain_entries     from's entries are into's, numbers unchanged
--   group_chain_units       units held per post and item (the per-member
--                           limit's counter): summed, so a merged person
--                           never holds more than per_member_limit through
--                           new entries; above it only refuses new ones
--
-- group_chain_merge_moves records what moved, so member_unmerge moves back
-- exactly that; group_chain_merges records the merge, so a repeat does
-- nothing.

local tpmerge = require("tp.merge")

local merge = {}

local NOTHING = { organisers = 0, posts = 0, entries = 0, units = 0 }

---The units user holds of sku in post_id by its live entries: what
---group_chain_units holds (lib/entries.lua's invariant), as SQL over the
---outer row's post_id and sku (?N the user).
local function held_sql(post, sku, user_param)
  return ([[(SELECT ifnull(sum(l.qty), 0) FROM group_chain_entry_lines l
    JOIN group_chain_entries e ON e.id = l.entry_id
    WHERE e.post_id = %s AND l.sku = %s AND e.user = %s AND e.status != 'cancelled')]]):format(post, sku, user_param)
end

---Gives from's organiser role, posts, entries and units to `into` (units
---summed) and records what it moved. Idempotent: a merge_id already recorded
---does nothing and moves nothing.
---@param from string   the younger member id, merged away
---@param into string   the survivor
---@param merge_id integer
---@return {organisers: integer, posts: integer, entries: integer, units: integer} moved
function merge.member_merge(from, into, merge_id)
  if not tpmerge.begin("group_chain_merges", from, into, merge_id) then return NOTHING end
  -- the role: moved, or (into has its own) folded away; amount keeps from's grant time
  tp.db.exec([[INSERT INTO group_chain_merge_moves (merge_id, kind, row_id, amount, created)
    SELECT ?1, 'organiser', 0, granted_at,
      NOT EXISTS (SELECT 1 FROM group_chain_organisers WHERE user = ?3)
    FROM group_chain_organisers WHERE user = ?2]], merge_id, from, into)
  tp.db.exec([[INSERT INTO group_chain_organisers (user, granted_at)
    SELECT ?2, granted_at FROM group_chain_organisers WHERE user = ?1
    ON CONFLICT (user) DO NOTHING]], from, into)
  local organisers = tp.db.exec("DELETE FROM group_chain_organisers WHERE user = ?", from)
  tp.db.exec([[INSERT INTO group_chain_merge_moves (merge_id, kind, row_id)
    SELECT ?1, 'post', id FROM group_chain_posts WHERE organiser = ?2]], merge_id, from)
  local posts = tp.db.exec("UPDATE group_chain_posts SET organiser = ?2 WHERE organiser = ?1", from, into)
  tp.db.exec([[INSERT INTO group_chain_merge_moves (merge_id, kind, row_id)
    SELECT ?1, 'entry', id FROM group_chain_entries WHERE user = ?2]], merge_id, from)
  local entries = tp.db.exec("UPDATE group_chain_entries SET user = ?2 WHERE user = ?1", from, into)
  -- per-member units: summed
  tp.db.exec([[INSERT INTO group_chain_merge_moves (merge_id, kind, row_id, sku, amount, created)
    SELECT ?1, 'units', f.post_id, f.sku, f.units, NOT EXISTS (SELECT 1 FROM group_chain_units i
      WHERE i.post_id = f.post_id AND i.sku = f.sku AND i.user = ?3)
    FROM group_chain_units f WHERE f.user = ?2]], merge_id, from, into)
  tp.db.exec([[INSERT INTO group_chain_units (post_id, user, sku, units)
    SELECT post_id, ?2, sku, units FROM group_chain_units WHERE user = ?1
    ON CONFLICT (post_id, user, sku) DO UPDATE SET units = units + excluded.units]], from, into)
  local units = tp.db.exec("DELETE FROM group_chain_units WHERE user = ?", from)
  return { organisers = organisers, posts = posts, entries = entries, units = units }
end

---Undoes merge merge_id: the posts and entries it moved go back to `from`
---(those still with `into`); the role goes back as it was, unless the
---operator revoked the person's role since (an undo grants nothing revoked);
---the two ids' units of the items the merge summed are what their live
---entries hold (a count of into's that the merge created and that is back at
---0 goes). What `into` did since stays with `into`. Then the record is
---forgotten. Unknown or undone already: nothing.
---@param from string
---@param into string
---@param merge_id integer
---@return {organisers: integer, posts: integer, entries: integer, units: integer} moved
function merge.member_unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("group_chain_merges", from, into, merge_id) then return NOTHING end
  local role = tp.db.one([[SELECT amount AS granted_at, created FROM group_chain_merge_moves
    WHERE merge_id = ? AND kind = 'organiser']], merge_id)
  local organisers = 0
  if role and role.created == 1 then
    -- from's grant became into's: back, if it is still the same grant
    organisers = tp.db.exec("UPDATE group_chain_organisers SET user = ? WHERE user = ? AND granted_at = ?",
      from, into, role.granted_at)
  elseif role and tp.db.one("SELECT 1 AS yes FROM group_chain_organisers WHERE user = ?", into) then
    organisers = tp.db.exec([[INSERT INTO group_chain_organisers (user, granted_at) VALUES (?, ?)
      ON CONFLICT (user) DO NOTHING]], from, role.granted_at)
  end
  local posts = tp.db.exec([[UPDATE group_chain_posts SET organiser = ?3 WHERE organiser = ?2 AND id IN
      (SELECT row_id FROM group_chain_merge_moves WHERE merge_id = ?1 AND kind = 'post')]], merge_id, into, from)
  local entries = tp.db.exec([[UPDATE group_chain_entries SET user = ?3 WHERE user = ?2 AND id IN
      (SELECT row_id FROM group_chain_merge_moves WHERE merge_id = ?1 AND kind = 'entry')]], merge_id, into, from)
  -- units: with nothing done in between, the folded amounts taken off into's
  -- and given back to from's; after a cancel or an edit, still exact
  tp.db.exec([[UPDATE group_chain_units SET units = ]] .. held_sql("group_chain_units.post_id",
      "group_chain_units.sku", "?2") .. [[
    WHERE user = ?2 AND EXISTS (SELECT 1 FROM group_chain_merge_moves m WHERE m.merge_id = ?1
      AND m.kind = 'units' AND m.row_id = group_chain_units.post_id AND m.sku = group_chain_units.sku)]],
    merge_id, into)
  tp.db.exec([[DELETE FROM group_chain_units WHERE user = ?2 AND units = 0
    AND EXISTS (SELECT 1 FROM group_chain_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'units'
      AND m.created = 1 AND m.row_id = group_chain_units.post_id AND m.sku = group_chain_units.sku)]],
    merge_id, into)
  local units = tp.db.exec([[INSERT INTO group_chain_units (post_id, user, sku, units)
    SELECT m.row_id, ?2, m.sku, ]] .. held_sql("m.row_id", "m.sku", "?2") .. [[
    FROM group_chain_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'units'
    ON CONFLICT (post_id, user, sku) DO UPDATE SET units = excluded.units]], merge_id, from)
  tp.db.exec("DELETE FROM group_chain_merge_moves WHERE merge_id = ?", merge_id)
  return { organisers = organisers, posts = posts, entries = entries, units = units }
end

return merge
