---@diagnostic disable: undefined-global
-- members/lib/segments.lua: the saved segments' API (the rule language and its
-- compiler are lib/segment.lua).

local check = require("tp.check")
local segment = require("lib.segment")
local store = require("lib.store")
local schema = require("tp.schema")

local segments = {}

-- A saved segment's fields, declared once: the bounds, the known fields and
-- the OpenAPI body come from here (tp.schema); a rule is segment.compile's.
segments.FIELDS = schema.new {
  { "name", "text", max = 64, required = true, doc = "1-64 of letters, digits, _ and -" },
  { "rule", "custom", required = true, schema = segment.RULE_SCHEMA },
  { "description", "text", max = 200 },
}
local F = segments.FIELDS

local function check_name(v, field)
  local s = segments.FIELDS:field("name", v, false, field)
  if not s:match("^[%w_%-]+$") then check.field_error(field, "must be 1-64 of letters, digits, _ and -") end
  return s
end
segments.check_name = check_name

local function shape(row, count)
  return { name = row.name, description = row.description, rule = tp.json.decode(row.rule),
           created_at = row.created_at, updated_at = row.updated_at, count = count }
end

---Creates or replaces segment name with rule (the campaign's segment items use it too).
---@return boolean created
function segments.save(name, rule, description)
  segment.compile(rule, "rule", name)
  local now = tp.now()
  local changed = tp.db.exec([[INSERT INTO members_segments (name, description, rule, created_at, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO UPDATE SET description = ?2, rule = ?3, updated_at = ?4
    WHERE rule <> ?3 OR description IS NOT ?2]], name, description, tp.json.encode(rule), now)
  return changed > 0
end

---POST /members/segments {name, rule, description?}
function segments.create(req)
  local body = check.body(req.body, true)
  check.only(body, F.names)
  local name = check_name(body.name, "name")
  local description = F:field("description", body.description, true)
  if body.rule == nil then check.field_error("rule", "is required") end
  if tp.db.one("SELECT 1 AS x FROM members_segments WHERE name = ?", name) then
    tp.fail(409, "segment_exists", ("a segment '%s' exists: PUT /members/segments/%s replaces it"):format(name, name))
  end
  segments.save(name, body.rule, description)
  local s, row = segment.load(name)
  return 201, shape(row, segment.count(s))
end

---PUT /members/segments/{name} {rule, description?}
function segments.replace(req)
  local name = check_name(req.params.name, "name")
  local body = check.body(req.body, true)
  check.only(body, { rule = true, description = true })
  if body.rule == nil then check.field_error("rule", "is required") end
  segments.save(name, body.rule, F:field("description", body.description, true))
  local s, row = segment.load(name)
  return 200, shape(row, segment.count(s))
end

---GET /members/segments
function segments.list()
  local rows = tp.db.query("SELECT name, description, rule, created_at, updated_at FROM members_segments ORDER BY name")
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = shape(r) end
  return 200, { items = items }
end

---GET /members/segments/{name}: the segment with its count now
function segments.get(req)
  local s, row = segment.load(req.params.name)
  return 200, shape(row, segment.count(s))
end

---DELETE /members/segments/{name}: refused while another segment or a rule tag uses it
function segments.delete(req)
  local _, row = segment.load(req.params.name)
  local needle = tp.json.encode({ segment = row.name })
  local other = tp.db.one("SELECT name FROM members_segments WHERE instr(rule, ?) > 0", needle:sub(2, -2))
  local tag = tp.db.one("SELECT name FROM members_tags WHERE kind = 'rule' AND instr(rule, ?) > 0", needle:sub(2, -2))
  if other or tag then
    tp.fail(409, "segment_in_use", ("%s '%s' uses this segment"):format(other and "segment" or "rule tag",
      (other or tag).name))
  end
  tp.db.exec("DELETE FROM members_segments WHERE id = ?", row.id)
  return 200, { deleted = row.name }
end

---POST /members/segments/preview {rule}: the count, before saving
function segments.preview(req)
  local body = check.body(req.body, true)
  check.only(body, { rule = true })
  if body.rule == nil then check.field_error("rule", "is required") end
  local s = segment.compile(body.rule, "rule")
  local sample = segment.page(s, 0, 10)
  local ids = tp.json.array()
  for i, r in ipairs(sample) do ids[i] = r.id end
  return 200, { count = segment.count(s), sample = ids }
end

---GET /members/segments/{name}/members?limit=&after=: members in number order
function segments.members(req)
  local limit, after = check.page(req.query, 100, 1000)
  local s = segment.load(req.params.name)
  local rows = segment.page(s, after or 0, limit)
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = store.shape(store.by_n(r.n)) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].n or nil }
end

-- ---- exports

---Export matches(user, audience): whether the member user names is in the
---audience {segment = name} or {tag = name} (both: in either). An unknown
---user (never seen by the pool) matches only rules it satisfies as an empty
---member would not: it is not in any audience.
---@param user string
---@param audience {segment: string?, tag: string?}
---@return boolean
function segments.export_matches(user, audience)
  if type(audience) ~= "table" then error("members.matches: audience must be {segment=} or {tag=}", 2) end
  local m = store.active(user)
  if not m then return false end
  if audience.tag then
    local t = tp.db.one("SELECT id FROM members_tags WHERE name = ?", audience.tag)
    if t and tp.db.one([[SELECT 1 AS x FROM members_member_tags WHERE tag_id = ? AND n = ?
      AND (expires_at IS NULL OR expires_at > ?)]], t.id, m.n, tp.now()) then return true end
  end
  if audience.segment then
    local s = segment.load(audience.segment)
    if segment.matches(s, m.n) then return true end
  end
  return false
end

---Export page(segment, after, limit) -> {members = {id...}, numbers = {n...},
---next = n|nil}: one slice of a segment in member-number order, judged now;
---numbers[i] is members[i]'s number, so a caller that stops mid-slice can keep
---an exact cursor. A drop walks it with its own cursor (see the coupons plugin).
function segments.export_page(name, after, limit)
  local s = segment.load(name)
  limit = math.min(math.tointeger(limit) or 500, 5000)
  local rows = segment.page(s, math.tointeger(after) or 0, limit)
  local ids, ns = {}, {}
  for i, r in ipairs(rows) do ids[i], ns[i] = r.id, r.n end
  return { members = ids, numbers = ns, next = #rows == limit and rows[#rows].n or nil }
end

---Export exists(kind, name) -> boolean: for checks ("segment" or "tag").
function segments.export_exists(kind, name)
  if kind == "segment" then
    return tp.db.one("SELECT 1 AS x FROM members_segments WHERE name = ?", name) ~= nil
  elseif kind == "tag" then
    return tp.db.one("SELECT 1 AS x FROM members_tags WHERE name = ?", name) ~= nil
  end
  return false
end

---Export save_segment(name, rule, description?) -> boolean changed: campaigns'
---segment items.
function segments.export_save(name, rule, description)
  check_name(name, "segment")
  return segments.save(name, rule, description)
end

---Export count(name) -> integer
function segments.export_count(name)
  return segment.count((segment.load(name)))
end

return segments
