---@diagnostic disable: undefined-global
-- coupons/lib/audience.lua: who may take a template's coupons.
--
--   public      listed by GET /coupons/claimable and claimed by anyone
--   issue_only  never listed, never claimed: given only by an issue (an
--               operator's targeted issue, another plugin's, a campaign's drop)
--   segment     listed to, and claimed by, the members of a segment of the
--               members plugin (template.segment), judged at each read
--   tag         likewise for the members carrying a tag (template.tag)
--
-- segment and tag need the members plugin: a template naming one is checked
-- against it when it is written (tp.call("members", "exists", ...)), and a
-- listing or a claim asks it whether the user is in (members.matches). An
-- issue gives any template to whoever it names, whatever its audience.

local check = require("tp.check")

local audience = {}

audience.KINDS = { public = true, issue_only = true, segment = true, tag = true }

-- the members plugin's rule for segment and tag names
local NAME_PATTERN = "^[%w_%-]+$"

---True when the tenant serves the members plugin.
---@return boolean
function audience.members_enabled()
  return tp.exports("members", "exists")
end

---Refuses (400 invalid_field naming field) a segment or tag name that the
---members plugin does not know, or any name when it is not enabled.
---@param kind "segment"|"tag"
---@param name any
---@param field string
---@return string name
function audience.need(kind, name, field)
  local s = check.text(name, field, 64)
  if not s:match(NAME_PATTERN) then
    check.field_error(field, ("must be the name of a %s of the members plugin (1-64 of letters, digits, _ and -)")
      :format(kind))
  end
  if not audience.members_enabled() then
    check.field_error(field, ("audience %s needs the members plugin, which is not enabled for this tenant")
      :format(kind))
  end
  if not tp.call("members", "exists", kind, s) then
    check.field_error(field, ("names no %s of the members plugin: '%s'"):format(kind, s))
  end
  return s
end

---Checks an audience with its segment or tag; returns the values to store
---(segment only with audience segment, tag only with audience tag).
---@param kind string the audience (already one of KINDS)
---@param segment any
---@param tag any
---@return string|nil segment, string|nil tag
function audience.check(kind, segment, tag)
  if segment ~= nil and kind ~= "segment" then
    check.field_error("segment", "only applies to audience segment")
  end
  if tag ~= nil and kind ~= "tag" then check.field_error("tag", "only applies to audience tag") end
  if kind == "segment" then
    if segment == nil then check.field_error("segment", "is required with audience segment: the segment's name") end
    return audience.need("segment", segment, "segment"), nil
  elseif kind == "tag" then
    if tag == nil then check.field_error("tag", "is required with audience tag: the tag's name") end
    return nil, audience.need("tag", tag, "tag")
  end
  return nil, nil
end

---Whether user (nil: anonymous) is in template t's audience. issue_only
---admits nobody; segment and tag only a user the members plugin places in
---it (nobody while the plugin is not enabled, nor in a segment deleted since
---the template named it).
---@param t {audience: string, segment: string?, tag: string?}
---@param user string|nil
---@return boolean
function audience.admits(t, user)
  if t.audience == "public" then return true end
  if t.audience ~= "segment" and t.audience ~= "tag" then return false end
  if not user or not audience.members_enabled() then return false end
  local ok, inside = pcall(tp.call, "members", "matches", user, { segment = t.segment, tag = t.tag })
  if not ok then
    if type(inside) == "table" and inside.code == "segment_not_found" then return false end
    error(inside, 0)
  end
  return inside == true
end

return audience
