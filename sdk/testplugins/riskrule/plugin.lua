---@diagnostic disable: undefined-global
-- riskrule: a stand-in risk rule (sdk/tp/risk.lua) any plugin's kit tests may
-- enable: it refuses members whose id starts with "bot-" with the code
-- captcha_required, and lets everyone else through.
local exports = {}

---@param ask table { action, user, device, subject }
function exports.risk_check(ask)
  if (ask.user or ""):sub(1, 4) == "bot-" then
    return { code = "captcha_required", message = "solve the captcha first" }
  end
  return nil
end

return { name = "riskrule", version = "1.0.0", exports = exports }
