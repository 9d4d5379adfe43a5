---@diagnostic disable: undefined-global
-- members/lib/segment.lua: segments (人群) are saved boolean rules over tags,
-- profile fields and order facts, written as JSON:
--
--   {"all": [rule, ...]}  {"any": [rule, ...]}  {"not": rule}
--   {"tag": "name"}                                   has the tag (unexpired)
--   {"field": "city", "op": "eq", "value": "上海"}     profile, custom or fact field
--   {"field": "paid_fen", "within_days": 90, "op": "gte", "value": 10000}
--   {"bought": ["sku-1", "sku-2"], "within_days": 30}  paid for any of the SKUs
--   {"campaign": "flash_sale:12"}                       paid an order of that campaign
--   {"segment": "name"}                                 another saved segment
--   {"rfm": "重要挽留"}, {"tier": "gold"}                a dimension's value (lib/dimensions.lua):
--                                                       the tag "rfm:重要挽留" another plugin keeps;
--                                                       also a field: {"field": "rfm", "op": "in", ...}
--
-- ops: eq ne gt gte lt lte between ([lo, hi], inclusive) in not_in (lists)
-- is_empty not_empty (no value). A rule compiles to one SQL condition over the
-- member row m, with named parameters; a top-level tag condition drives the
-- query from that tag's assignments, which is what keeps a count over a
-- million members fast. The same compiler serves rule tags (lib/rules.lua).

local check = require("tp.check")
local fields = require("lib.fields")
local settings = require("lib.settings")
local dimensions = require("lib.dimensions")

local segment = {}

---A rule's schema for the route docs (segment.compile reads and checks one).
segment.RULE_SCHEMA = { type = "object", description = "a segment rule: {all:[...]}, {any:[...]}, {not:...}, "
  .. "{tag}, {field, op, value, within_days?}, {bought:[sku], within_days?}, {campaign}, {segment}, "
  .. "{rfm: layer}, {tier: id} (a dimension: a tag group another plugin keeps) "
  .. "(plugins/members/README.md)" }

local MAX_NODES = 64
local MAX_DEPTH = 6
local MAX_LIST = 1000

local OPS = { eq = "=", ne = "<>", gt = ">", gte = ">=", lt = "<", lte = "<=" }
local ALL_OPS = { eq = true, ne = true, gt = true, gte = true, lt = true, lte = true, between = true,
                  ["in"] = true, not_in = true, is_empty = true, not_empty = true }
local ORDERED = { integer = true, date = true, string = true }

---The field a name stands for: built-in, fact or custom.
local function field_of(name)
  return fields.BUILTIN[name] or fields.FACTS[name] or settings.custom[name] or dimensions.field(name)
end

local function all_field_names()
  local names = {}
  for k in pairs(fields.BUILTIN) do names[k] = true end
  for k in pairs(fields.FACTS) do names[k] = true end
  for k in pairs(settings.custom) do names[k] = true end
  return names
end

---@class SegmentCompiler
---@field params table named parameters (p1, p2, ...; now)
---@field np integer
---@field nodes integer
---@field tags table<string, integer> tag name -> id (looked up once)
---@field seen table<string, boolean> segments being expanded (cycles)

local function param(c, v)
  c.np = c.np + 1
  local name = "p" .. c.np
  c.params[name] = v
  return ":" .. name
end

local function scalar(v, f, where)
  if f.type == "integer" then
    if math.type(v) ~= "integer" then check.field_error(where, "must be an integer") end
  elseif f.type == "boolean" then
    if type(v) ~= "boolean" then check.field_error(where, "must be true or false") end
    return v and 1 or 0
  elseif f.type == "date" then
    if type(v) ~= "string" or not fields.is_date(v) then check.field_error(where, "must be a date YYYY-MM-DD") end
  elseif f.type == "enum" then
    local ok = false
    for _, x in ipairs(f.values) do ok = ok or x == v end
    if not ok then check.field_error(where, "must be one of " .. table.concat(f.values, ", ")) end
  elseif type(v) ~= "string" or #v > 1000 then
    check.field_error(where, "must be a string")
  end
  return v
end

local compile

local compare_raw

---A comparison is true or false, never unknown: a member without a value is
---"not equal" and "not greater", so {not: {city eq X}} includes members with
---no city, as a marketer reads it.
local function compare(c, expr, f, op, value, where)
  return "coalesce(" .. compare_raw(c, expr, f, op, value, where) .. ", 0)"
end

compare_raw = function(c, expr, f, op, value, where)
  if op == "is_empty" or op == "not_empty" then
    if value ~= nil then check.field_error(where .. ".value", "is not used with " .. op) end
    return ("(%s IS %sNULL)"):format(expr, op == "is_empty" and "" or "NOT ")
  end
  if value == nil then check.field_error(where .. ".value", "is required with " .. op) end
  if OPS[op] then
    if (op ~= "eq" and op ~= "ne") and not ORDERED[f.type] then
      check.field_error(where .. ".op", ("%s cannot be ordered: use eq, ne, in or not_in"):format(where))
    end
    local v = param(c, scalar(value, f, where .. ".value"))
    if op == "ne" then return ("(%s IS NULL OR %s <> %s)"):format(expr, expr, v) end
    return ("(%s %s %s)"):format(expr, OPS[op], v)
  elseif op == "between" then
    if not ORDERED[f.type] then check.field_error(where .. ".op", "between needs an ordered field") end
    if type(value) ~= "table" or #value ~= 2 then check.field_error(where .. ".value", "must be [low, high]") end
    local lo = param(c, scalar(value[1], f, where .. ".value[1]"))
    local hi = param(c, scalar(value[2], f, where .. ".value[2]"))
    return ("(%s BETWEEN %s AND %s)"):format(expr, lo, hi)
  else  -- in, not_in
    if type(value) ~= "table" or #value < 1 or #value > MAX_LIST then
      check.field_error(where .. ".value", ("must be a list of 1-%d values"):format(MAX_LIST))
    end
    local ps = {}
    for i, v in ipairs(value) do ps[i] = param(c, scalar(v, f, ("%s.value[%d]"):format(where, i))) end
    local list = table.concat(ps, ", ")
    if op == "in" then return ("(%s IN (%s))"):format(expr, list) end
    return ("(%s IS NULL OR %s NOT IN (%s))"):format(expr, expr, list)
  end
end

local function within(c, rule, where)
  if rule.within_days == nil then return "" end
  local d = check.integer(rule.within_days, where .. ".within_days", 1, 3650)
  return (" AND o.paid_at > :now - %s * 86400"):format(param(c, d))
end

local function tag_id(c, name, where)
  if type(name) ~= "string" then check.field_error(where, "must be a tag name") end
  if c.tags[name] == nil then
    local t = tp.db.one("SELECT id FROM members_tags WHERE name = ?", name)
    if not t then
      local names = {}
      for _, r in ipairs(tp.db.query("SELECT name FROM members_tags ORDER BY name LIMIT 1000")) do
        names[r.name] = true
      end
      local guess = check.suggest(name, names)
      check.field_error(where, ("names no tag '%s'%s"):format(name,
        guess and ("; did you mean '%s'?"):format(guess) or ""))
    end
    c.tags[name] = t.id
  end
  return c.tags[name]
end

local KEYS = { all = true, any = true, ["not"] = true, tag = true, field = true, bought = true,
               campaign = true, segment = true }

compile = function(c, rule, where, depth)
  c.nodes = c.nodes + 1
  if c.nodes > MAX_NODES then check.field_error(where, ("a rule has at most %d conditions"):format(MAX_NODES)) end
  if depth > MAX_DEPTH then check.field_error(where, ("a rule nests at most %d deep"):format(MAX_DEPTH)) end
  if type(rule) ~= "table" or check.is_list(rule) then
    check.field_error(where, "must be a condition object ({all}, {any}, {not}, {tag}, {field, op, value}, ...)")
  end
  local kind
  for k in pairs(rule) do
    if KEYS[k] then
      if kind then check.field_error(where, ("has both '%s' and '%s': one condition per object"):format(kind, k)) end
      kind = k
    end
  end
  if not kind then
    -- {group = value}: a dimension (a tag group another plugin keeps, rfm or tier)
    local group, value = next(rule)
    if type(group) == "string" and next(rule, group) == nil then
      local id = dimensions.condition_tag(group, value, where .. "." .. group)
      if id then
        c.dims[rule] = id
        return ("EXISTS (SELECT 1 FROM members_member_tags mt WHERE mt.n = m.n AND mt.tag_id = %s"
          .. " AND (mt.expires_at IS NULL OR mt.expires_at > :now))"):format(param(c, id))
      end
    end
    local first = next(rule)
    local guess = first and check.suggest(tostring(first), KEYS)
    check.field_error(where, "is not a condition: use all, any, not, tag, field, bought, campaign, segment or a dimension ({rfm = ...})"
      .. (guess and ("; did you mean '%s'?"):format(guess) or ""))
  end
  if kind == "all" or kind == "any" then
    check.only(rule, { [kind] = true })
    local list = rule[kind]
    if type(list) ~= "table" or not check.is_list(list) or #list == 0 then
      check.field_error(where .. "." .. kind, "must be a non-empty list of conditions")
    end
    local parts = {}
    for i, r in ipairs(list) do parts[i] = compile(c, r, ("%s.%s[%d]"):format(where, kind, i), depth + 1) end
    return "(" .. table.concat(parts, kind == "all" and " AND " or " OR ") .. ")"
  elseif kind == "not" then
    check.only(rule, { ["not"] = true })
    return "(NOT " .. compile(c, rule["not"], where .. ".not", depth + 1) .. ")"
  elseif kind == "tag" then
    check.only(rule, { tag = true })
    local id = tag_id(c, rule.tag, where .. ".tag")
    return ("EXISTS (SELECT 1 FROM members_member_tags mt WHERE mt.n = m.n AND mt.tag_id = %s"
      .. " AND (mt.expires_at IS NULL OR mt.expires_at > :now))"):format(param(c, id))
  elseif kind == "field" then
    check.only(rule, { field = true, op = true, value = true, within_days = true })
    local name = rule.field
    local f = type(name) == "string" and field_of(name)
    if not f then
      local guess = type(name) == "string" and check.suggest(name, all_field_names())
      check.field_error(where .. ".field", ("names no field '%s'%s"):format(tostring(name),
        guess and ("; did you mean '%s'?"):format(guess) or ""))
    end
    local op = rule.op
    if type(op) ~= "string" or not ALL_OPS[op] then
      local guess = type(op) == "string" and check.suggest(op, ALL_OPS)
      check.field_error(where .. ".op", "must be eq, ne, gt, gte, lt, lte, between, in, not_in, is_empty or not_empty"
        .. (guess and ("; did you mean '%s'?"):format(guess) or ""))
    end
    local expr = f.column
    if rule.within_days ~= nil then
      local agg = fields.WINDOWED[name]
      if not agg then
        check.field_error(where .. ".within_days", "applies only to paid_orders, paid_fen, net_fen and coupon_orders")
      end
      expr = ("(SELECT %s FROM members_orders o WHERE o.n = m.n%s)"):format(agg, within(c, rule, where))
    end
    return compare(c, expr, f, op, rule.value, where)
  elseif kind == "bought" then
    check.only(rule, { bought = true, within_days = true })
    local skus = rule.bought
    if type(skus) ~= "table" or not check.is_list(skus) or #skus < 1 or #skus > MAX_LIST then
      check.field_error(where .. ".bought", ("must be a list of 1-%d SKUs"):format(MAX_LIST))
    end
    local ps = {}
    for i, s in ipairs(skus) do ps[i] = param(c, check.ident(s, ("%s.bought[%d]"):format(where, i), 64)) end
    return ("EXISTS (SELECT 1 FROM members_orders o JOIN members_order_skus s ON s.order_id = o.order_id"
      .. " WHERE o.n = m.n AND o.refunded_fen < o.paid_fen AND s.sku IN (%s)%s)")
      :format(table.concat(ps, ", "), within(c, rule, where))
  elseif kind == "campaign" then
    check.only(rule, { campaign = true, within_days = true })
    local ref = check.text(rule.campaign, where .. ".campaign", 200)
    return ("EXISTS (SELECT 1 FROM members_orders o WHERE o.n = m.n AND o.campaign = %s%s)")
      :format(param(c, ref), within(c, rule, where))
  else  -- segment
    check.only(rule, { segment = true })
    local name = rule.segment
    if type(name) ~= "string" then check.field_error(where .. ".segment", "must be a segment name") end
    if c.seen[name] then check.field_error(where .. ".segment", ("'%s' refers to itself"):format(name)) end
    local s = tp.db.one("SELECT rule FROM members_segments WHERE name = ?", name)
    if not s then check.field_error(where .. ".segment", ("names no segment '%s'"):format(name)) end
    c.seen[name] = true
    local sql = compile(c, tp.json.decode(s.rule), where .. ".segment", depth + 1)
    c.seen[name] = nil
    return sql
  end
end

---@class CompiledSegment
---@field where string SQL condition over m (members_members)
---@field params table named parameters, :now included
---@field drive integer? a tag id every match has (top-level): the query starts from its rows

---Checks a rule and compiles it. Errors are 400 invalid_field naming the path
---(rule.all[2].op) with a "did you mean" where one fits.
---@param rule any
---@param field string? the name of the rule in errors (default "rule")
---@param self_name string? the segment being saved (a rule cannot use itself)
---@return CompiledSegment
function segment.compile(rule, field, self_name)
  local c = { params = { now = tp.now() }, np = 0, nodes = 0, tags = {}, seen = {}, dims = {} }
  if self_name then c.seen[self_name] = true end
  local where = compile(c, rule, field or "rule", 1)
  -- a tag every match has: {tag} itself, or one of a top-level all's
  local drive
  if type(rule) == "table" and rule.tag then
    drive = c.tags[rule.tag]
  elseif type(rule) == "table" and c.dims[rule] then
    drive = c.dims[rule]
  elseif type(rule) == "table" and type(rule.all) == "table" then
    for _, r in ipairs(rule.all) do
      if type(r) == "table" and not drive then drive = r.tag and c.tags[r.tag] or c.dims[r] end
    end
  end
  return { where = where, params = c.params, drive = drive }
end

local function from_clause(s)
  if s.drive then
    s.params.drive = s.drive
    return [[members_member_tags d JOIN members_members m ON m.n = d.n
      WHERE d.tag_id = :drive AND (d.expires_at IS NULL OR d.expires_at > :now) AND m.state = 'active' AND ]]
  end
  return "members_members m WHERE m.state = 'active' AND "
end

---How many active members match.
---@param s CompiledSegment
---@return integer
function segment.count(s)
  return tp.db.one("SELECT count(*) AS n FROM " .. from_clause(s) .. s.where, s.params).n
end

---Active members that match with a number above after, in number order.
---@param s CompiledSegment
---@param after integer
---@param limit integer
---@return table[] rows {n, id}
function segment.page(s, after, limit)
  s.params.after, s.params.limit = after, limit
  return tp.db.query("SELECT m.n, m.id FROM " .. from_clause(s) .. s.where
    .. (s.drive and " AND d.n > :after ORDER BY d.n" or " AND m.n > :after ORDER BY m.n")
    .. " LIMIT :limit", s.params)
end

---True if member n matches.
---@param s CompiledSegment
---@param n integer
---@return boolean
function segment.matches(s, n)
  s.params.one = n
  return tp.db.one("SELECT 1 AS x FROM members_members m WHERE m.n = :one AND m.state = 'active' AND "
    .. s.where, s.params) ~= nil
end

---A saved segment compiled, or 404 segment_not_found.
---@param name string
---@return CompiledSegment, table row
function segment.load(name)
  local row = tp.db.one("SELECT id, name, description, rule, created_at, updated_at FROM members_segments WHERE name = ?", name)
  if not row then tp.fail(404, "segment_not_found", ("no segment '%s'"):format(tostring(name))) end
  return segment.compile(tp.json.decode(row.rule), "rule", nil), row
end

return segment
