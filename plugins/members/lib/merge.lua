---@diagnostic disable: undefined-global
-- members/lib/merge.lua: two members who are one person become one.
--
-- A merge folds the younger member `from` into the survivor `into`, in one
-- transaction: every plugin that exports member_merge re-keys its own rows
-- (orders, coupons, limits, bindings: each plugin's README says how), the
-- pool moves identities, tags and order facts and fills the survivor's empty
-- profile fields, and the host makes from's tokens enter as into
-- (tp.auth.alias), so from here on everything counts once per person. What
-- moved is recorded (members_merge_rows, and each plugin's own record), so a
-- merge an operator made by hand can be undone; merges proven by a unionid or
-- a verified phone are facts about the person and are not undone.

local facts = require("lib.facts")
local fields = require("lib.fields")

local merge = {}

local PROFILE = {}
for name in pairs(fields.BUILTIN) do
  if name ~= "first_source" and name ~= "joined_at" then PROFILE[#PROFILE + 1] = name end
end
table.sort(PROFILE)

local function record(merge_id, kind, key, extra)
  tp.db.exec("INSERT INTO members_merge_rows (merge_id, kind, key, extra) VALUES (?, ?, ?, ?)",
    merge_id, kind, key, extra)
end

---Folds member row `from` into row `into`. reason: unionid, phone or manual;
---by: who asked (identify, or the operator's note).
---@return table the merge record
function merge.run(from, into, reason, by)
  if from.n == into.n then tp.fail(400, "invalid_merge", "a member cannot be merged into itself") end
  if from.state ~= "active" or into.state ~= "active" then
    tp.fail(409, "member_not_active", "both members must be active (not merged or erased)")
  end
  local now = tp.now()
  local _, merge_id = tp.db.exec([[INSERT INTO members_merges
      (from_n, into_n, from_id, into_id, reason, by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)]],
    from.n, into.n, from.id, into.id, reason, by, now)

  local moved = {}
  for _, plugin in ipairs(tp.exporters("member_merge")) do
    if plugin ~= "members" then
      moved[plugin] = tp.call(plugin, "member_merge", from.id, into.id, merge_id)
    end
  end

  -- identities
  tp.db.exec([[INSERT INTO members_merge_rows (merge_id, kind, key, extra)
    SELECT ?, 'identity', channel, external_id FROM members_identities WHERE n = ?]], merge_id, from.n)
  local n_ids = tp.db.exec("UPDATE members_identities SET n = ? WHERE n = ?", into.n, from.n)
  -- tags: the survivor keeps its own assignment of a tag both had
  tp.db.exec([[INSERT INTO members_merge_rows (merge_id, kind, key, extra)
    SELECT ?1, 'tag', f.tag_id, json_object('source', f.source, 'assigned_at', f.assigned_at,
      'expires_at', f.expires_at, 'had', EXISTS (SELECT 1 FROM members_member_tags i
        WHERE i.tag_id = f.tag_id AND i.n = ?3))
    FROM members_member_tags f WHERE f.n = ?2]], merge_id, from.n, into.n)
  local n_tags = tp.db.exec([[INSERT INTO members_member_tags (tag_id, n, source, assigned_at, expires_at)
    SELECT tag_id, ?2, source, assigned_at, expires_at FROM members_member_tags WHERE n = ?1
    ON CONFLICT (tag_id, n) DO NOTHING]], from.n, into.n)
  tp.db.exec("DELETE FROM members_member_tags WHERE n = ?", from.n)
  -- order facts
  tp.db.exec([[INSERT INTO members_merge_rows (merge_id, kind, key, extra)
    SELECT ?, 'order', order_id, NULL FROM members_orders WHERE n = ?]], merge_id, from.n)
  local n_orders = tp.db.exec("UPDATE members_orders SET n = ? WHERE n = ?", into.n, from.n)
  facts.refresh(into.n)
  facts.refresh(from.n)
  -- profile: the survivor's values win; its blanks take from's
  for _, name in ipairs(PROFILE) do
    if into[name] == nil and from[name] ~= nil then
      tp.db.exec(("UPDATE members_members SET %s = ? WHERE n = ?"):format(name), from[name], into.n)
      record(merge_id, "field", name, tp.json.encode({ value = from[name] }))
    end
  end
  if into.phone_masked == nil and from.phone_masked ~= nil then
    tp.db.exec("UPDATE members_members SET phone_masked = ? WHERE n = ?", from.phone_masked, into.n)
    record(merge_id, "field", "phone_masked", tp.json.encode({ value = from.phone_masked }))
  end
  local theirs = tp.json.decode(from.custom) or {}
  local ours = tp.json.decode(into.custom) or {}
  for k, v in pairs(theirs) do
    if ours[k] == nil then
      tp.db.exec("UPDATE members_members SET custom = json_set(custom, ?, ?) WHERE n = ?", "$." .. k, v, into.n)
      record(merge_id, "custom", k, tp.json.encode({ value = v }))
    end
  end

  tp.db.exec([[UPDATE members_members SET state = 'merged', merged_into = ?, updated_at = ?
    WHERE n = ?]], into.n, now, from.n)
  tp.db.exec("UPDATE members_members SET merged_into = ? WHERE merged_into = ?", into.n, from.n)
  tp.auth.alias(from.id, into.id)
  moved.members = { identities = n_ids, tags = n_tags, orders = n_orders }
  tp.db.exec("UPDATE members_merges SET moved = ? WHERE id = ?", tp.json.encode(moved), merge_id)
  tp.events.emit("member.merged", { merge_id = merge_id, from = from.id, into = into.id, reason = reason })
  require("lib.rules").refresh(into.n)
  return merge.load(merge_id)
end

---@param id integer
function merge.load(id)
  local m = tp.db.one([[SELECT id, from_id, into_id, reason, by, moved, created_at, undone_at, undone_by
    FROM members_merges WHERE id = ?]], id)
  if not m then return nil end
  return { id = m.id, from = m.from_id, into = m.into_id, reason = m.reason, by = m.by,
           moved = tp.json.object(tp.json.decode(m.moved or "{}") or {}), created_at = m.created_at,
           undone_at = m.undone_at, undone_by = m.undone_by }
end

---Undoes a manual merge: everything that moved goes back to from, which names
---itself again. Refused once the survivor itself was merged or erased.
---@param id integer
---@param by string
function merge.undo(id, by)
  local m = tp.db.one("SELECT * FROM members_merges WHERE id = ?", id)
  if not m then tp.fail(404, "merge_not_found", "no such merge") end
  if m.undone_at then tp.fail(409, "merge_undone", "this merge was already undone") end
  if m.reason ~= "manual" then
    tp.fail(409, "merge_not_manual", ("a merge proven by %s is not undone; only merges made by hand are")
      :format(m.reason))
  end
  local into = tp.db.one("SELECT n, id, state FROM members_members WHERE n = ?", m.into_n)
  if into.state ~= "active" then
    tp.fail(409, "merge_not_undoable", "the survivor was merged or erased since: undo that first")
  end
  for _, plugin in ipairs(tp.exporters("member_unmerge")) do
    if plugin ~= "members" then tp.call(plugin, "member_unmerge", m.from_id, m.into_id, m.id) end
  end
  local rows = tp.db.query("SELECT kind, key, extra FROM members_merge_rows WHERE merge_id = ?", m.id)
  for _, r in ipairs(rows) do
    if r.kind == "identity" then
      tp.db.exec("UPDATE members_identities SET n = ? WHERE channel = ? AND external_id = ? AND n = ?",
        m.from_n, r.key, r.extra, m.into_n)
    elseif r.kind == "tag" then
      local t = tp.json.decode(r.extra)
      tp.db.exec([[INSERT INTO members_member_tags (tag_id, n, source, assigned_at, expires_at)
        VALUES (?, ?, ?, ?, ?) ON CONFLICT (tag_id, n) DO NOTHING]],
        math.tointeger(r.key), m.from_n, t.source, t.assigned_at, t.expires_at)
      if t.had == 0 then
        tp.db.exec("DELETE FROM members_member_tags WHERE tag_id = ? AND n = ?", math.tointeger(r.key), m.into_n)
      end
    elseif r.kind == "order" then
      tp.db.exec("UPDATE members_orders SET n = ? WHERE order_id = ? AND n = ?", m.from_n, r.key, m.into_n)
    elseif r.kind == "field" then
      -- only if the survivor still holds what the merge gave it
      local v = tp.json.decode(r.extra).value
      tp.db.exec(("UPDATE members_members SET %s = NULL WHERE n = ? AND %s = ?"):format(r.key, r.key),
        m.into_n, v)
    elseif r.kind == "custom" then
      local v = tp.json.decode(r.extra).value
      tp.db.exec([[UPDATE members_members SET custom = json_remove(custom, ?1)
        WHERE n = ?2 AND json_extract(custom, ?1) = ?3]], "$." .. r.key, m.into_n, v)
    end
  end
  facts.refresh(m.from_n)
  facts.refresh(m.into_n)
  tp.db.exec("UPDATE members_members SET state = 'active', merged_into = NULL, updated_at = ? WHERE n = ?",
    tp.now(), m.from_n)
  tp.auth.unalias(m.from_id)
  -- ids merged into from before (and not undone) are from's again
  local earlier = tp.db.query([[SELECT from_n, from_id FROM members_merges
    WHERE into_n = ? AND undone_at IS NULL AND id < ?]], m.from_n, m.id)
  for _, e in ipairs(earlier) do
    tp.auth.alias(e.from_id, m.from_id)
    tp.db.exec("UPDATE members_members SET merged_into = ? WHERE n = ?", m.from_n, e.from_n)
  end
  tp.db.exec("UPDATE members_merges SET undone_at = ?, undone_by = ? WHERE id = ?", tp.now(), by, m.id)
  tp.events.emit("member.unmerged", { merge_id = m.id, from = m.from_id, into = m.into_id })
  local rules = require("lib.rules")
  rules.refresh(m.from_n)
  rules.refresh(m.into_n)
  return merge.load(m.id)
end

return merge
