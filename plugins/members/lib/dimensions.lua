---@diagnostic disable: undefined-global
-- members/lib/dimensions.lua: a dimension is a tag group whose tags are the
-- values of one attribute another plugin keeps for each member: the rfm
-- plugin's layer (group "rfm", tags "rfm:重要价值" ...), the tiers plugin's
-- tier (group "tier", tags "tier:gold" ...). A member carries at most one tag
-- of a dimension. The owning plugin sets them in bulk with the export
-- set_dimension; a segment rule names one as {rfm = "重要挽留"} or
-- {tier = "gold"}, which is the tag "rfm:重要挽留" (lib/segment.lua), or as a
-- field, {field = "rfm", op = "in", value = {...}}, so campaign scripts target
-- layers and tiers like any tag or field.

local check = require("tp.check")
local store = require("lib.store")

local dimensions = {}

dimensions.MAX_CHANGES = 5000

---The tag's name for value of dimension group.
---@param group string
---@param value string
---@return string
function dimensions.tag_name(group, value)
  return group .. ":" .. value
end

local function group_id(group)
  local g = tp.db.one("SELECT id FROM members_tag_groups WHERE name = ?", group)
  if g then return g.id end
  local _, id = tp.db.exec("INSERT INTO members_tag_groups (name, created_at) VALUES (?, ?)", group, tp.now())
  return id
end

---Makes sure the group and one tag per value exist; returns value -> tag id.
local function ensure_tags(group, values, owner)
  local gid = group_id(group)
  local ids = {}
  for i, v in ipairs(values) do
    local name = dimensions.tag_name(group, check.text(v, ("values[%d]"):format(i), 24))
    if name:find("[%c,\"|]") then check.field_error(("values[%d]"):format(i), "must not contain , \" or |") end
    local t = tp.db.one("SELECT id FROM members_tags WHERE name = ?", name)
    if not t then
      local _, id = tp.db.exec([[INSERT INTO members_tags (name, group_id, kind, description, created_at, updated_at)
        VALUES (?, ?, 'manual', ?, ?, ?)]], name, gid, ("kept by the %s plugin"):format(owner), tp.now(), tp.now())
      ids[v] = id
    else
      ids[v] = t.id
    end
  end
  return ids, gid
end

---Export set_dimension(group, values, changes) -> integer changed: makes
---sure dimension group has one tag per value (values: the names it may
---take), then gives each change's member the tag of its value and takes the
---group's other tags off it (value false: none). changes: up to MAX_CHANGES
---{user, value|false}; a user the pool has not seen is added to it, an erased
---one is skipped. The tags' source is the calling plugin.
---@param group string 1-16 of a-z, 0-9, _
---@param values string[]
---@param changes {user: string, value: string|false}[]?
---@return integer changed members whose tag changed
function dimensions.export_set(group, values, changes)
  if type(group) ~= "string" or not group:match("^[a-z][a-z0-9_]*$") or #group > 16 then
    check.field_error("group", "must be 1-16 of a-z, 0-9, _ starting with a letter")
  end
  check.list(values, "values", 1, 100)
  local owner = tp.caller() or "members"
  local ids, gid = ensure_tags(group, values, owner)
  if changes == nil then return 0 end
  check.list(changes, "changes", 0, dimensions.MAX_CHANGES)
  local now, changed = tp.now(), 0
  -- the group's tag ids, written into the statement (they are integers)
  local all = {}
  for _, r in ipairs(tp.db.query("SELECT id FROM members_tags WHERE group_id = ?", gid)) do
    all[#all + 1] = math.tointeger(r.id)
  end
  local delete = ("DELETE FROM members_member_tags WHERE n = ?1 AND tag_id <> ?2 AND tag_id IN (%s)")
    :format(table.concat(all, ","))
  for i, c in ipairs(changes) do
    local user = check.user(type(c) == "table" and c.user or nil, ("changes[%d].user"):format(i))
    local tag = c.value and ids[c.value]
    if c.value and not tag then
      check.field_error(("changes[%d].value"):format(i), ("is not one of the group's values"))
    end
    -- the member's number: a lean lookup first, the full ensure only for one new to the pool
    local resolved = tp.auth.resolve(user)
    local m = resolved and tp.db.one("SELECT n, state FROM members_members WHERE id = ?", resolved)
    if not m then
      m = store.ensure(user)
    elseif m.state ~= "active" then
      m = nil
    end
    if m then
      local removed = tp.db.exec(delete, m.n, tag or 0)
      local added = 0
      if tag then
        added = tp.db.exec([[INSERT INTO members_member_tags (tag_id, n, source, assigned_at)
          VALUES (?, ?, ?, ?) ON CONFLICT (tag_id, n) DO NOTHING]], tag, m.n, owner, now)
      end
      if removed + added > 0 then changed = changed + 1 end
    end
  end
  return changed
end

---The tag id a dimension condition {group = value} names, or nil when group
---is no dimension (no tag group of that name). A value the group lacks is a
---field error with the nearest one.
---@param group string
---@param value any
---@param where string
---@return integer|nil
function dimensions.condition_tag(group, value, where)
  local g = tp.db.one("SELECT id FROM members_tag_groups WHERE name = ?", group)
  if not g then return nil end
  if type(value) ~= "string" then check.field_error(where, ("must be a %s value (a string)"):format(group)) end
  local t = tp.db.one("SELECT id FROM members_tags WHERE name = ? AND group_id = ?",
    dimensions.tag_name(group, value), g.id)
  if t then return t.id end
  local known = {}
  local prefix = #group + 2
  for _, r in ipairs(tp.db.query("SELECT name FROM members_tags WHERE group_id = ? LIMIT 1000", g.id)) do
    known[r.name:sub(prefix)] = true
  end
  local guess = check.suggest(value, known)
  check.field_error(where, ("names no %s '%s'%s"):format(group, value,
    guess and ("; did you mean '%s'?"):format(guess) or ""))
end

---A dimension as a segment field: {field = "rfm", op = "in", value = {...}}
---compares the member's value of dimension name (none: empty), an enum of the
---values the group has; nil when name is no dimension.
---@param name string
---@return table|nil MemberField
function dimensions.field(name)
  local g = tp.db.one("SELECT id FROM members_tag_groups WHERE name = ?", name)
  if not g then return nil end
  local values = {}
  local prefix = name .. ":"
  for _, r in ipairs(tp.db.query("SELECT name FROM members_tags WHERE group_id = ? ORDER BY name LIMIT 1000", g.id)) do
    if r.name:sub(1, #prefix) == prefix then values[#values + 1] = r.name:sub(#prefix + 1) end
  end
  if #values == 0 then return nil end
  return { type = "enum", values = values, doc = "the member's " .. name,
    column = ("(SELECT substr(t.name, %d) FROM members_member_tags mt JOIN members_tags t ON t.id = mt.tag_id"
      .. " WHERE mt.n = m.n AND t.group_id = %d AND (mt.expires_at IS NULL OR mt.expires_at > :now) LIMIT 1)")
      :format(#prefix + 1, math.tointeger(g.id)) }
end

return dimensions
