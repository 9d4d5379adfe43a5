---@diagnostic disable: undefined-global
-- Member-only activities (会员专享): an activity's optional audience, one
-- segment or one tag of the members plugin, {segment = name} or {tag = name}.
--
--   written   create, PATCH and a campaign's apply check it (read): the members
--             plugin must be enabled and know the segment or tag; absent on a
--             PATCH keeps it, null clears it (everyone again)
--   stored    one column, audience: the JSON text, or NULL for everyone
--   shown     every read of the activity, admin and public: the object, or null
--   enforced  when a user acts (admit): members.matches(user, audience), judged
--             at that moment; outside, 403 members_only
--
-- flash_sale, group_buy and bargain share it: `require("tp.audience")`.

local check = require("tp.check")

local audience = {}

local KINDS = { segment = true, tag = true }
local MAX_NAME = 64   -- members: segments 1-64 of [%w_-], tags 1-32 characters

---The audience's schema for the route docs; who says what the audience may
---do ("may buy").
---@param who string
---@return table
function audience.schema(who)
  return { type = "object", nullable = true, minProperties = 1, maxProperties = 1,
    description = ("会员专享: only members of this segment, or carrying this tag, of the members plugin %s "
      .. "(403 members_only for anyone else); null: everyone. Exactly one key."):format(who),
    properties = { segment = { type = "string", maxLength = MAX_NAME },
                   tag = { type = "string", maxLength = MAX_NAME } } }
end

---True when the tenant serves the members plugin.
---@return boolean
local function members_enabled()
  return tp.exports("members", "matches")
end

---The column's value for a body's audience: nil for none (absent or null),
---else the JSON text of {segment = name} or {tag = name}. Refuses with 400
---invalid_field naming audience, audience.segment or audience.tag.
---@param v any
---@return string|nil
function audience.read(v)
  if check.absent(v) then return nil end
  if type(v) ~= "table" or #v > 0 or next(v) == nil then
    check.field_error("audience", "must be {segment = name} or {tag = name} (null: everyone)")
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if not KINDS[k] then
      local guess = check.suggest(k, KINDS)
      check.field_error("audience." .. k, "is not a known field: an audience is {segment = name} or {tag = name}"
        .. (guess and ("; did you mean '%s'?"):format(guess) or ""))
    end
  end
  if #keys ~= 1 then
    check.field_error("audience", "names both a segment and a tag: give exactly one")
  end
  local kind = keys[1]
  local field = "audience." .. kind
  local name = check.text(v[kind], field, MAX_NAME)
  if not members_enabled() then
    check.field_error(field, "cannot be set: member-only activities need the members plugin, "
      .. "which is not enabled for this tenant")
  end
  if not tp.call("members", "exists", kind, name) then
    check.field_error(field, ("names no %s of the members plugin: '%s'"):format(kind, name))
  end
  return tp.json.encode({ [kind] = name })
end

---The audience as reads show it: {segment = name}, {tag = name} or null.
---@param stored string|nil the column
---@return table|lightuserdata
function audience.show(stored)
  if stored == nil then return tp.json.null end
  return tp.json.decode(stored)
end

---Lets user act on an activity whose audience column is stored, or refuses
---with 403 members_only and the audience as details. No audience admits
---everyone. Nobody is inside while the members plugin is not enabled, nor
---in a segment deleted since the activity named it.
---@param stored string|nil the column
---@param user string
---@param what string the activity, for the message ("flash sale")
function audience.admit(stored, user, what)
  if stored == nil then return end
  local aud = tp.json.decode(stored)
  local inside = false
  if members_enabled() then
    local ok, result = pcall(tp.call, "members", "matches", user, aud)
    if ok then
      inside = result == true
    elseif not (type(result) == "table" and result.code == "segment_not_found") then
      error(result, 0)
    end
  end
  if not inside then
    local kind = aud.segment and "segment" or "tag"
    tp.fail(403, "members_only", ("this %s is for members only (%s '%s')"):format(what, kind, aud[kind]), aud)
  end
end

return audience
