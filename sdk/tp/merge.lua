---@diagnostic disable: undefined-global
-- tp.merge: the frame every plugin's member_merge and member_unmerge share
-- (the members plugin calls them; sdk/GUIDE.md "Your plugin and the customer
-- pool"). A plugin keeps one row per merge it applied in a table of its own,
--
--   CREATE TABLE <plugin>_merges (merge_id INTEGER PRIMARY KEY,
--     from_user TEXT NOT NULL, into_user TEXT NOT NULL, merged_at INTEGER NOT NULL);
--
-- so that a merge delivered twice moves nothing the second time, and an undo
-- of a merge it never applied does nothing. What moves is each plugin's own.
--
--   function M.member_merge(from, into, merge_id)
--     if not tpmerge.begin("flash_sale_merges", from, into, merge_id) then return { buyers = 0 } end
--     ... move and record ...
--   end

local check = require("tp.check")

local merge = {}

---400 invalid_merge unless from and into are two different user ids and
---merge_id a positive integer.
local function check_args(from, into, merge_id)
  if not (check.is_user_id(from) and check.is_user_id(into)) then
    tp.fail(400, "invalid_merge", "from and into must be user ids: 1-64 letters, digits, '-', '_', ':' or '@'")
  end
  if from == into then tp.fail(400, "invalid_merge", "a member cannot be merged into itself") end
  if math.type(merge_id) ~= "integer" or merge_id < 1 then
    tp.fail(400, "invalid_merge", "merge_id must be a positive integer")
  end
end

---The recorded merge, or nil; a merge_id recorded for other ids is refused
---(400 invalid_merge): the caller confused two merges.
local function recorded(tbl, from, into, merge_id)
  local m = tp.db.one("SELECT from_user, into_user FROM " .. tbl .. " WHERE merge_id = ?", merge_id)
  if m and (m.from_user ~= from or m.into_user ~= into) then
    tp.fail(400, "invalid_merge", ("merge %d merged %s into %s"):format(merge_id, m.from_user, m.into_user),
      { merge_id = merge_id })
  end
  return m
end

---Checks a member_merge's arguments and records the merge in tbl (the
---plugin's <plugin>_merges, a literal): true when it is new and its rows are
---to move now, false when this merge_id was applied before (move nothing).
---@param tbl string
---@param from any
---@param into any
---@param merge_id any
---@return boolean
function merge.begin(tbl, from, into, merge_id)
  check_args(from, into, merge_id)
  if recorded(tbl, from, into, merge_id) then return false end
  tp.db.exec("INSERT INTO " .. tbl .. " (merge_id, from_user, into_user, merged_at) VALUES (?, ?, ?, ?)",
    merge_id, from, into, tp.now())
  return true
end

---Checks a member_unmerge's arguments and forgets the merge: true when it was
---applied and is to be undone now, false when it is unknown (undo nothing).
---@param tbl string
---@param from any
---@param into any
---@param merge_id any
---@return boolean
function merge.begin_undo(tbl, from, into, merge_id)
  check_args(from, into, merge_id)
  if not recorded(tbl, from, into, merge_id) then return false end
  tp.db.exec("DELETE FROM " .. tbl .. " WHERE merge_id = ?", merge_id)
  return true
end

---The member id user's rows live under now, by the merges recorded in tbl
---(the plugin's <plugin>_merges, a literal): user itself, or the survivor it
---was merged into, followed along later merges. An order another plugin still
---names by `from` finds its counts on the survivor this way.
---@param tbl string
---@param user string
---@return string
function merge.survivor(tbl, user)
  for _ = 1, 16 do  -- members never makes a cycle; the bound only keeps a bad record finite
    local m = tp.db.one("SELECT into_user FROM " .. tbl .. " WHERE from_user = ? ORDER BY merge_id DESC LIMIT 1", user)
    if not m then break end
    user = m.into_user
  end
  return user
end

return merge
