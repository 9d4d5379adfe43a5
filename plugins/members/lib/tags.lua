---@diagnostic disable: undefined-global
-- members/lib/tags.lua: tags (标签) and their groups.
--
-- kind "manual": operators put it on members (one, or up to MAX_BULK per call,
-- by member id or by identity); kind "rule": the pool keeps it on exactly the
-- members its rule matches (lib/rules.lua) and nobody sets it by hand; any tag
-- may also be set by a plugin or campaign hook (tp.call("members", "tag", ...))
-- with source = that plugin. An assignment may expire (expires_at); expired
-- ones no longer count anywhere and the nightly sweep deletes them.

local check = require("tp.check")
local store = require("lib.store")
local segment = require("lib.segment")
local rules = require("lib.rules")
local schema = require("tp.schema")

local tags = {}

tags.MAX_BULK = 10000

-- A tag's fields and a tag group's, declared once: the bounds, the known
-- fields of a create and of a PATCH and the OpenAPI bodies come from here
-- (tp.schema); a name's characters, the group made on first use and a rule's
-- compile are the checks below.
tags.FIELDS = schema.new {
  { "name", "text", max = 32, required = true, patch = false,
    doc = "no control characters, commas, quotes or '|' (they would break the CSV)" },
  { "group", "text", max = 32, nullable = true, doc = "its tag group, made on first use (PATCH: null, none)" },
  { "kind", "enum", values = { "manual", "rule" }, default = "manual", patch = false,
    doc = "manual: operators and plugins set it; rule: the pool keeps it on the members its rule matches" },
  { "rule", "custom", schema = segment.RULE_SCHEMA },
  { "description", "text", max = 200, nullable = true, doc = "PATCH: null clears it" },
}
local T = tags.FIELDS

tags.GROUP_FIELDS = schema.new {
  { "name", "text", max = 32, required = true, doc = "no control characters, commas, quotes or '|'" },
}

local function check_name(v, field)
  local s = T:field("name", v, false, field)
  -- , " and | would make the CSV of an import or an export ambiguous
  if s:find("[%c,\"|]") then
    check.field_error(field, "must not contain control characters, commas, quotes or '|'")
  end
  return s
end

local function group_id(name, create)
  if name == nil or name == tp.json.null then return nil end
  local g = tp.db.one("SELECT id FROM members_tag_groups WHERE name = ?", name)
  if g then return g.id end
  if not create then tp.fail(404, "tag_group_not_found", ("no tag group '%s'"):format(name)) end
  local _, id = tp.db.exec("INSERT INTO members_tag_groups (name, created_at) VALUES (?, ?)", name, tp.now())
  return id
end

local function shape(row)
  return { name = row.name, group = row.group_name, kind = row.kind, description = row.description,
           rule = row.rule and tp.json.decode(row.rule) or nil, created_at = row.created_at,
           updated_at = row.updated_at }
end

local SELECT = [[SELECT t.id, t.name, g.name AS group_name, t.kind, t.description, t.rule,
  t.created_at, t.updated_at FROM members_tags t LEFT JOIN members_tag_groups g ON g.id = t.group_id]]

local BY_NAME_SQL = SELECT .. " WHERE t.name = ?"

---The tag called name, or 404 tag_not_found (with a guess).
---@param name string
---@return table row
function tags.need(name)
  local row = tp.db.one(BY_NAME_SQL, name)
  if row then return row end
  local names = {}
  for _, r in ipairs(tp.db.query("SELECT name FROM members_tags ORDER BY name LIMIT 1000")) do names[r.name] = true end
  local guess = check.suggest(tostring(name), names)
  tp.fail(404, "tag_not_found", ("no tag '%s'%s"):format(tostring(name),
    guess and ("; did you mean '%s'?"):format(guess) or ""))
end

---POST /members/tag-groups {name}
function tags.create_group(req)
  local body = check.body(req.body, true)
  check.only(body, tags.GROUP_FIELDS.names)
  local name = check_name(body.name, "name")
  if tp.db.one("SELECT 1 AS x FROM members_tag_groups WHERE name = ?", name) then
    tp.fail(409, "tag_group_exists", ("a tag group '%s' exists"):format(name))
  end
  group_id(name, true)
  return 201, { name = name }
end

---GET /members/tag-groups
function tags.list_groups()
  local rows = tp.db.query([[SELECT g.name, count(t.id) AS tags FROM members_tag_groups g
    LEFT JOIN members_tags t ON t.group_id = g.id GROUP BY g.id ORDER BY g.name]])
  return 200, { items = rows }
end

local BY_ID_SQL = SELECT .. " WHERE t.id = ?"

---POST /members/tags {name, group?, kind?, rule?, description?}
function tags.create(req)
  local body = check.body(req.body, true)
  check.only(body, T.create_names)
  local name = check_name(body.name, "name")
  local kind = T:field("kind", body.kind, true) or T.by_name.kind.default
  local description = T:field("description", body.description, true)
  if body.group ~= nil then check_name(body.group, "group") end
  if kind == "rule" then
    if body.rule == nil then check.field_error("rule", "is required for a rule tag") end
    segment.compile(body.rule, "rule")
  elseif body.rule ~= nil then
    check.field_error("rule", "only a rule tag has a rule (kind: \"rule\")")
  end
  if tp.db.one("SELECT 1 AS x FROM members_tags WHERE name = ?", name) then
    tp.fail(409, "tag_exists", ("a tag '%s' exists"):format(name))
  end
  local now = tp.now()
  local _, id = tp.db.exec([[INSERT INTO members_tags (name, group_id, kind, rule, description, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)]], name, group_id(body.group, true), kind,
    kind == "rule" and tp.json.encode(body.rule) or nil, description, now, now)
  if kind == "rule" then rules.start_sweep(id) end
  return 201, shape(tp.db.one(BY_ID_SQL, id))
end

local LIST_IN_GROUP_SQL = SELECT .. " WHERE g.name = ? AND t.id > ? ORDER BY t.id LIMIT ?"
local LIST_ALL_SQL = SELECT .. " WHERE t.id > ? ORDER BY t.id LIMIT ?"

---GET /members/tags?group=&limit=&after=
function tags.list(req)
  local limit, after = check.page(req.query, 200, 1000)
  local rows
  if req.query.group then
    rows = tp.db.query(LIST_IN_GROUP_SQL, req.query.group, after or 0, limit)
  else
    rows = tp.db.query(LIST_ALL_SQL, after or 0, limit)
  end
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = shape(r) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].id or nil }
end

---GET /members/tags/{name}: with how many members carry it now
function tags.get(req)
  local row = tags.need(req.params.name)
  local t = shape(row)
  t.members = tp.db.one([[SELECT count(*) AS n FROM members_member_tags WHERE tag_id = ?
    AND (expires_at IS NULL OR expires_at > ?)]], row.id, tp.now()).n
  return 200, t
end

---PATCH /members/tags/{name} {group?, description?, rule?}
function tags.update(req)
  local row = tags.need(req.params.name)
  local body = check.body(req.body, true)
  check.only(body, T.patch_names)
  if body.rule ~= nil and row.kind ~= "rule" then check.field_error("rule", "only a rule tag has a rule") end
  if body.rule ~= nil then segment.compile(body.rule, "rule") end
  local description = T:field("description", check.present(body.description), true)
  if body.group ~= nil and body.group ~= tp.json.null then check_name(body.group, "group") end
  if body.group ~= nil then
    tp.db.exec("UPDATE members_tags SET group_id = ? WHERE id = ?", group_id(body.group, true), row.id)
  end
  if body.description ~= nil then
    tp.db.exec("UPDATE members_tags SET description = ? WHERE id = ?", description, row.id)
  end
  if body.rule ~= nil then
    tp.db.exec("UPDATE members_tags SET rule = ? WHERE id = ?", tp.json.encode(body.rule), row.id)
    rules.start_sweep(row.id)
  end
  tp.db.exec("UPDATE members_tags SET updated_at = ? WHERE id = ?", tp.now(), row.id)
  return 200, shape(tp.db.one(BY_ID_SQL, row.id))
end

---DELETE /members/tags/{name}: the tag and every assignment of it. Refused
---while a segment's rule names it.
function tags.delete(req)
  local row = tags.need(req.params.name)
  local needle = tp.json.encode(row.name)
  local seg = tp.db.one("SELECT name FROM members_segments WHERE instr(rule, ?) > 0 LIMIT 1", needle)
  if seg then
    tp.fail(409, "tag_in_use", ("segment '%s' uses this tag"):format(seg.name), { segment = seg.name })
  end
  local rule = tp.db.one([[SELECT name FROM members_tags WHERE kind = 'rule' AND id <> ?
    AND instr(rule, ?) > 0 LIMIT 1]], row.id, needle)
  if rule then
    tp.fail(409, "tag_in_use", ("rule tag '%s' uses this tag"):format(rule.name), { tag = rule.name })
  end
  tp.db.exec("DELETE FROM members_member_tags WHERE tag_id = ?", row.id)
  tp.db.exec("DELETE FROM members_tags WHERE id = ?", row.id)
  return 200, { deleted = row.name }
end

---Puts tag row on member n (source: "manual" or a plugin's name).
---@return boolean added false if it was already there (its expiry is updated)
function tags.put(row, n, source, expires_at)
  local changed = tp.db.exec([[INSERT INTO members_member_tags (tag_id, n, source, assigned_at, expires_at)
    VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tag_id, n) DO UPDATE SET expires_at = ?5, source = ?3,
      assigned_at = CASE WHEN members_member_tags.expires_at <= ?4 THEN ?4 ELSE assigned_at END]],
    row.id, n, source, tp.now(), expires_at)
  return changed > 0
end

local function expiry(v, field)
  local at = check.epoch(v, field, true)
  if at and at <= tp.now() then check.field_error(field, "must be in the future") end
  return at
end

local function settable(row)
  if row.kind == "rule" then
    tp.fail(409, "tag_is_rule", ("'%s' is a rule tag: the pool keeps it by its rule"):format(row.name))
  end
end

---POST /members/{id}/tags {tag, expires_at?}
function tags.assign_one(req)
  local member = store.need(req.params.id)
  local body = check.body(req.body, true)
  check.only(body, { tag = true, expires_at = true })
  local row = tags.need(check.text(body.tag, "tag", 32))
  settable(row)
  tags.put(row, member.n, "manual", expiry(body.expires_at, "expires_at"))
  return 200, { member = member.id, tags = store.tags(member.n) }
end

---DELETE /members/{id}/tags/{tag}
function tags.remove_one(req)
  local member = store.need(req.params.id)
  local row = tags.need(req.params.tag)
  settable(row)
  local n = tp.db.exec("DELETE FROM members_member_tags WHERE tag_id = ? AND n = ?", row.id, member.n)
  return 200, { member = member.id, removed = n > 0 }
end

---POST /members/tags/{name}/assign {members: [id...], expires_at?, remove?}:
---up to MAX_BULK member ids, all checked before any is tagged. Ids that name
---no member are listed in unknown (and nothing else is refused for them).
function tags.assign_bulk(req)
  local row = tags.need(req.params.name)
  settable(row)
  local body = check.body(req.body, true)
  check.only(body, { members = true, expires_at = true, remove = true })
  check.list(body.members, "members", 1, tags.MAX_BULK)
  local remove = check.boolean(body.remove, "remove", false)
  local at = not remove and expiry(body.expires_at, "expires_at") or nil
  for i, id in ipairs(body.members) do check.user(id, ("members[%d]"):format(i)) end
  local done, unknown = 0, tp.json.array()
  for _, id in ipairs(body.members) do
    local m = store.active(id)
    if not m then
      unknown[#unknown + 1] = id
    elseif remove then
      done = done + tp.db.exec("DELETE FROM members_member_tags WHERE tag_id = ? AND n = ?", row.id, m.n)
    elseif tags.put(row, m.n, "manual", at) then
      done = done + 1
    end
  end
  return 200, { tag = row.name, [remove and "removed" or "added"] = done, unknown = unknown }
end

---Export tag(user, tag, {expires_at?}) for plugins and campaign hooks: source
---is the calling plugin. The member is created if the pool has not seen it.
---@param user string
---@param name string
---@param opts {expires_at: integer?}?
---@return boolean added
function tags.export_tag(user, name, opts)
  local caller = tp.caller() or "members"
  check.user(user, "user")
  local row = tags.need(name)
  settable(row)
  local m = store.ensure(user)
  if not m then return false end
  return tags.put(row, m.n, caller, opts and expiry(opts.expires_at, "expires_at") or nil)
end

---Export untag(user, tag).
---@return boolean removed
function tags.export_untag(user, name)
  check.user(user, "user")
  local row = tags.need(name)
  settable(row)
  local m = store.active(user)
  if not m then return false end
  return tp.db.exec("DELETE FROM members_member_tags WHERE tag_id = ? AND n = ?", row.id, m.n) > 0
end

---Deletes expired assignments (the nightly job).
function tags.purge_expired()
  tp.db.exec("DELETE FROM members_member_tags WHERE expires_at IS NOT NULL AND expires_at <= ?", tp.now())
end

return tags
