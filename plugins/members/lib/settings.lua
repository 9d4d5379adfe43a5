---@diagnostic disable: undefined-global
-- members/lib/settings.lua: the brand's config of the pool, read once per
-- loaded generation (a config change arrives with a reload). A wrong entry
-- stops the load with a message that names it.
--
--   fields       custom profile fields: { name = {type, max_len|min|max|values, editable, doc} }
--   phone_pepper the key of the phone digests (set it per brand; never change it after launch)
--   rules_hour   local hour (0-23) of the nightly re-evaluation of rule tags (default 3)

local fields = require("lib.fields")

local conf = tp.config()
local known = { fields = true, phone_pepper = true, rules_hour = true }
for k in pairs(conf) do
  if not known[k] then error(("members config: unknown key '%s'"):format(tostring(k)), 0) end
end
local hour = conf.rules_hour == nil and 3 or math.tointeger(conf.rules_hour)
if not hour or hour < 0 or hour > 23 then error("members config: rules_hour must be an hour 0-23", 0) end
if conf.phone_pepper ~= nil and (type(conf.phone_pepper) ~= "string" or #conf.phone_pepper < 8) then
  error("members config: phone_pepper must be a string of at least 8 bytes", 0)
end

return {
  custom = fields.custom_from_config(conf.fields),
  rules_hour = hour,
  phone_pepper = conf.phone_pepper or "tidepool-members",
}
