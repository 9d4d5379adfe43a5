-- Merging members (README "Merging members"). The members plugin merges the
-- younger member id `from` into the survivor `into` and calls member_merge
-- inside its transaction; an operator's undo calls member_unmerge.
--
-- What bargain keeps per person, and what a merge does with it:
--   bargain_bargains.initiator  from's bargains become into's (into may buy
--                               them; two live bargains of one activity both
--                               go on to their end)
--   bargain_helps.helper        from's cuts become into's, with the id they
--                               were cut under in merged_from; no amount, seed
--                               or draw changes, so every bargain still adds
--                               up to original - floor and replays
--   bargain_helpers             helps per activity (K): summed
--   bargain_starters            starts per activity: summed
--
-- Collisions. Both ids cut the same bargain: both cuts stay, both into's
-- (one helper per bargain is one per (bargain, helper, merged_from)). One id
-- cut the other's bargain: the cut stays as it is, now a cut of `into` on
-- into's own bargain (the money was cut; taking it back would change the
-- price a friend's help made). Counters summed may pass their limit: that
-- only refuses further helps or starts.
--
-- bargain_merge_moves records what moved, so member_unmerge moves back
-- exactly that; bargain_merges records the merge, so a repeat does nothing.

local tpmerge = require("tp.merge")

local merge = {}

---The per-activity counters: table, user column, count column.
local HELPERS = { kind = "helpers", tbl = "bargain_helpers", user = "helper", n = "helps" }
local STARTERS = { kind = "starters", tbl = "bargain_starters", user = "user", n = "started" }

---The SQL of template for counter c: {tbl}, {user}, {n} and {kind} filled in.
---@param template string
---@param c table
---@return string
local function counter_sql(template, c)
  return (template:gsub("{(%w+)}", c))
end

---Sums from's counts of counter c into into's, recording each amount and
---whether into had a count of the activity.
---@return integer moved
local function fold(c, from, into, merge_id)
  tp.db.exec(counter_sql([[INSERT INTO bargain_merge_moves (merge_id, kind, row_id, amount, created)
    SELECT ?1, '{kind}', f.activity_id, f.{n},
      NOT EXISTS (SELECT 1 FROM {tbl} i WHERE i.activity_id = f.activity_id AND i.{user} = ?3)
    FROM {tbl} f WHERE f.{user} = ?2]], c), merge_id, from, into)
  tp.db.exec(counter_sql([[INSERT INTO {tbl} (activity_id, {user}, {n})
    SELECT activity_id, ?2, {n} FROM {tbl} WHERE {user} = ?1
    ON CONFLICT (activity_id, {user}) DO UPDATE SET {n} = {n} + excluded.{n}]], c), from, into)
  return (tp.db.exec(counter_sql("DELETE FROM {tbl} WHERE {user} = ?", c), from))
end

---Takes the amounts merge_id folded off into's counts of counter c and gives
---them back to from. A count of into's at or below the amount goes (it was
---the merge's: into's own count is 1 or more). These counters only grow (a
---help or a start is never given back), so what stays on into is exactly
---into's own and what into did since.
---@return integer moved
local function unfold(c, from, into, merge_id)
  local folded = counter_sql([[(SELECT m.amount FROM bargain_merge_moves m
    WHERE m.merge_id = ?1 AND m.kind = '{kind}' AND m.row_id = {tbl}.activity_id)]], c)
  local scope = counter_sql([[{user} = ?2 AND activity_id IN
    (SELECT row_id FROM bargain_merge_moves WHERE merge_id = ?1 AND kind = '{kind}')]], c)
  tp.db.exec(counter_sql("DELETE FROM {tbl} WHERE {n} <= ", c) .. folded .. " AND " .. scope, merge_id, into)
  tp.db.exec(counter_sql("UPDATE {tbl} SET {n} = {n} - ", c) .. folded .. " WHERE " .. scope, merge_id, into)
  return (tp.db.exec(counter_sql([[INSERT INTO {tbl} (activity_id, {user}, {n})
    SELECT row_id, ?2, amount FROM bargain_merge_moves WHERE merge_id = ?1 AND kind = '{kind}'
    ON CONFLICT (activity_id, {user}) DO UPDATE SET {n} = {n} + excluded.{n}]], c), merge_id, from))
end

local NOTHING = { bargains = 0, helps = 0, helpers = 0, starters = 0 }

---Gives every bargain, cut and count of `from` to `into` (counts summed) and
---records what it moved. Idempotent: a merge_id already recorded does
---nothing and moves nothing.
---@param from string   the younger member id, merged away
---@param into string   the survivor
---@param merge_id integer
---@return {bargains: integer, helps: integer, helpers: integer, starters: integer} moved
function merge.member_merge(from, into, merge_id)
  if not tpmerge.begin("bargain_merges", from, into, merge_id) then return NOTHING end
  tp.db.exec([[INSERT INTO bargain_merge_moves (merge_id, kind, row_id)
    SELECT ?1, 'bargain', id FROM bargain_bargains WHERE initiator = ?2]], merge_id, from)
  local bargains = tp.db.exec("UPDATE bargain_bargains SET initiator = ?2 WHERE initiator = ?1", from, into)
  -- cuts: merged_from keeps the id a cut was made under (an earlier merge's,
  -- if any), so both ids' cuts of one bargain stay two cuts
  tp.db.exec([[INSERT INTO bargain_merge_moves (merge_id, kind, row_id, seq, prior)
    SELECT ?1, 'help', bargain_id, seq, merged_from FROM bargain_helps WHERE helper = ?2]], merge_id, from)
  local helps = tp.db.exec([[UPDATE bargain_helps SET helper = ?2, merged_from = ifnull(merged_from, ?1)
    WHERE helper = ?1]], from, into)
  return { bargains = bargains, helps = helps,
           helpers = fold(HELPERS, from, into, merge_id), starters = fold(STARTERS, from, into, merge_id) }
end

---Undoes merge merge_id: the bargains and cuts it moved go back to `from`
---(those still with `into`; a cut with the merged_from it had), and the
---counts it summed are taken off `into` and given back to `from`. What `into`
---did since stays with `into`. Then the record is forgotten. Unknown or
---undone already: nothing.
---@param from string
---@param into string
---@param merge_id integer
---@return {bargains: integer, helps: integer, helpers: integer, starters: integer} moved
function merge.member_unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("bargain_merges", from, into, merge_id) then return NOTHING end
  local bargains = tp.db.exec([[UPDATE bargain_bargains SET initiator = ?3 WHERE initiator = ?2 AND id IN
      (SELECT row_id FROM bargain_merge_moves WHERE merge_id = ?1 AND kind = 'bargain')]], merge_id, into, from)
  local helps = tp.db.exec([[UPDATE bargain_helps SET helper = ?3,
      merged_from = (SELECT m.prior FROM bargain_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'help'
                       AND m.row_id = bargain_helps.bargain_id AND m.seq = bargain_helps.seq)
    WHERE helper = ?2 AND EXISTS (SELECT 1 FROM bargain_merge_moves m WHERE m.merge_id = ?1 AND m.kind = 'help'
                                    AND m.row_id = bargain_helps.bargain_id AND m.seq = bargain_helps.seq)]],
    merge_id, into, from)
  local moved = { bargains = bargains, helps = helps,
                  helpers = unfold(HELPERS, from, into, merge_id),
                  starters = unfold(STARTERS, from, into, merge_id) }
  tp.db.exec("DELETE FROM bargain_merge_moves WHERE merge_id = ?", merge_id)
  return moved
end

return merge
