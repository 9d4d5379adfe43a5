-- The referral plugin's config, checked once when the plugin loads. A config
-- the plugin cannot honour stops the load (the host reports the plugin as
-- failed, with this message, and the rest of the brand keeps serving).
--
-- Two rules are invariants, not options, and no key can change them:
--   * commission is paid on at most two levels (the buyer's referrer and the
--     referrer's referrer); a third level is the 多层级 model WeChat treats as
--     pyramid-like (《禁止传销条例》), so any key asking for one is refused;
--   * earning rights are never bought: no join fee, deposit, or "spend X to
--     become a distributor" (变相入门费), so any such key is refused too.
-- Unknown keys are refused as well, so a typo never silently falls back to a
-- default.

local settings = {}

---@class ReferralSettings
---@field join_mode "everyone"|"application"|"designated"
---@field binding_mode "unbound"|"new_users"|"last_touch"
---@field binding_seconds integer|nil   nil: a binding lasts forever
---@field level1_rate_bp integer        basis points (1/100 of a percent) of a line's paid_fen
---@field level2_rate_bp integer
---@field self_purchase_rebate boolean  a distributor's own purchase earns level 1 for herself
---@field daily_cap_fen integer|nil     most commission one distributor earns per local day
---@field settle_after_seconds integer  after completion, before frozen commission settles
---@field min_withdrawal_fen integer
---@field transfer_remark string        what WeChat shows the member on a withdrawal's transfer

local DEFAULTS = {
  join_mode = "everyone",
  binding_mode = "unbound",
  level1_rate_bp = 1000,
  level2_rate_bp = 500,
  self_purchase_rebate = false,
  settle_after_seconds = 7 * 86400,
  min_withdrawal_fen = 100,
  transfer_remark = "佣金提现",
}

local JOIN_MODES = { everyone = true, application = true, designated = true }
local BINDING_MODES = { unbound = true, new_users = true, last_touch = true }

local KNOWN = { "join_mode", "binding_mode", "binding_seconds", "binding_days", "level1_rate_bp",
  "level2_rate_bp", "self_purchase_rebate", "daily_cap_fen", "settle_after_seconds",
  "min_withdrawal_fen", "transfer_remark" }

settings.MAX_RATE_BP = 10000
settings.KNOWN = KNOWN

local THIRD_LEVEL = "referral pays commission on at most two levels (the buyer's referrer and "
  .. "that referrer's referrer); a third level or more is a pyramid-like scheme and cannot be "
  .. "configured (see plugins/referral/README.md, Invariants)"
local FEE = "earning rights cannot be bought: no join fee, deposit, purchase or spend threshold "
  .. "can make someone a distributor (see plugins/referral/README.md, Invariants)"

---Why a key is refused, naming the invariant it would break if it is one.
---@param key string
---@return string
local function refusal(key)
  local k = key:lower()
  if k:find("level_?[3-9]") or k:find("third") or k:find("rate_?[3-9]") or k:find("^l[3-9]")
     or k:find("tier") or k:find("levels") or k:find("max_level") or k:find("depth") then
    return THIRD_LEVEL
  end
  if k:find("fee") or k:find("price") or k:find("spend") or k:find("deposit") or k:find("pay")
     or k:find("cost") or k:find("charge") then
    return FEE
  end
  return "is not a known key (known: " .. table.concat(KNOWN, ", ") .. ")"
end

local function fail(key, message)
  error(("referral config: %s: %s"):format(key, message), 0)
end

local function integer(cfg, key, min, max)
  local v = cfg[key]
  if v == nil then return nil end
  if math.type(v) ~= "integer" or v < min or v > max then
    fail(key, ("must be an integer from %d to %d"):format(min, max))
  end
  return v
end

local function enum(cfg, key, allowed)
  local v = cfg[key]
  if v == nil then return nil end
  if type(v) ~= "string" or not allowed[v] then
    local names = {}
    for name in pairs(allowed) do names[#names + 1] = name end
    table.sort(names)
    fail(key, "must be one of " .. table.concat(names, ", "))
  end
  return v
end

---Checks the plugin's config and returns it with defaults filled in; raises
---"referral config: <key>: <why>" for anything it cannot honour.
---@param cfg table
---@return ReferralSettings
function settings.read(cfg)
  if type(cfg) ~= "table" then error("referral config: must be a table", 0) end
  local known = {}
  for _, k in ipairs(KNOWN) do known[k] = true end
  local keys = {}
  for k in pairs(cfg) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if not known[k] then fail(k, refusal(k)) end
  end
  local s = {}
  for k, v in pairs(DEFAULTS) do s[k] = v end
  s.join_mode = enum(cfg, "join_mode", JOIN_MODES) or s.join_mode
  s.binding_mode = enum(cfg, "binding_mode", BINDING_MODES) or s.binding_mode
  local seconds = integer(cfg, "binding_seconds", 1, 10 * 366 * 86400)
  local days = integer(cfg, "binding_days", 1, 10 * 366)
  if seconds and days then fail("binding_days", "give binding_seconds or binding_days, not both") end
  s.binding_seconds = seconds or (days and days * 86400)
  s.level1_rate_bp = integer(cfg, "level1_rate_bp", 0, settings.MAX_RATE_BP) or s.level1_rate_bp
  s.level2_rate_bp = integer(cfg, "level2_rate_bp", 0, settings.MAX_RATE_BP) or s.level2_rate_bp
  if s.level1_rate_bp + s.level2_rate_bp > settings.MAX_RATE_BP then
    fail("level2_rate_bp", "level1_rate_bp + level2_rate_bp cannot exceed 10000 (all of the price)")
  end
  local rebate = cfg.self_purchase_rebate
  if rebate ~= nil and type(rebate) ~= "boolean" then fail("self_purchase_rebate", "must be true or false") end
  if rebate ~= nil then s.self_purchase_rebate = rebate end
  s.daily_cap_fen = integer(cfg, "daily_cap_fen", 1, 1000000000000)
  s.settle_after_seconds = integer(cfg, "settle_after_seconds", 0, 366 * 86400) or s.settle_after_seconds
  s.min_withdrawal_fen = integer(cfg, "min_withdrawal_fen", 1, 1000000000000) or s.min_withdrawal_fen
  local remark = cfg.transfer_remark
  if remark ~= nil then
    if type(remark) ~= "string" or remark == "" or (utf8.len(remark) or 99) > 32 then
      fail("transfer_remark", "must be text of 1 to 32 characters (WeChat's limit; the member sees it)")
    end
    s.transfer_remark = remark
  end
  return s
end

return settings
