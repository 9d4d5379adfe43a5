---@diagnostic disable: undefined-global
-- tp.risk: the brand's risk rules, asked before a buy, a join, a help or a
-- claim (sdk/GUIDE.md "Risk rules"). A mechanic calls
--
--   risk.check(req, "buy", { plugin = "flash_sale", id = sale.id, sku = sale.sku })
--
-- first thing in its handler. Every plugin of the brand that exports
-- risk_check is asked, in name order, with one plain table:
--
--   { action = "buy" | "join" | "help" | "claim", user = "<member id>",
--     device = "<X-Device-Id>" | nil, subject = { plugin = ..., id = ..., ... } }
--
-- and answers nil or true to let it pass, or a refusal { code = "blocked",
-- message = "..." } (false: code "refused"). The first refusal ends the
-- request: 403 with the code "risk_" .. code (stable, for the mini-program to
-- act on: risk_captcha_required shows a captcha), details { action, by }.
-- Like any tp.fail it rolls back the request's savepoint and nothing else:
-- what other requests of the batch did stays. The host counts every answer
-- whose code starts with "risk_" in tidepool_refusals_total{code}.
--
-- A rule is the agency's own code in its own plugin: a blocklist (the
-- blocklist plugin), a captcha ticket check, a velocity rule over its own
-- table. It runs inside the request's transaction, so it should cost an
-- indexed read; a rule that must call out (a captcha service) checks a ticket
-- the mini-program got beforehand, it cannot wait here.

local risk = {}

local ACTIONS = { buy = true, join = true, help = true, claim = true }
local MAX_DEVICE = 64

---The X-Device-Id header when it is a plausible device id (1-64 printable
---ASCII, no spaces); nil otherwise. The client says it: a rule may trust it to
---refuse, never to admit.
---@param req TpRequest
---@return string?
function risk.device(req)
  local d = req.headers["x-device-id"]
  if type(d) == "string" and #d >= 1 and #d <= MAX_DEVICE and not d:find("[^\33-\126]") then return d end
  return nil
end

---Asks every risk rule of the brand about action by req.user; raises 403
---risk_<code> on the first refusal, returns nothing when all let it pass.
---@param req TpRequest
---@param action "buy"|"join"|"help"|"claim"
---@param subject table? what is at stake: { plugin =, id =, ... } (plain data)
function risk.check(req, action, subject)
  if not ACTIONS[action] then error("tp.risk.check: action must be buy, join, help or claim", 2) end
  local rules = tp.exporters("risk_check")
  if #rules == 0 then return end
  local ask = { action = action, user = req.user, device = risk.device(req), subject = subject }
  for _, name in ipairs(rules) do
    local verdict = tp.call(name, "risk_check", ask)
    if verdict ~= nil and verdict ~= true then
      local code = type(verdict) == "table" and verdict.code or "refused"
      if type(code) ~= "string" or not code:find("^[a-z][a-z0-9_]*$") or #code > 32 then code = "refused" end
      local message = type(verdict) == "table" and type(verdict.message) == "string" and verdict.message
        or ("refused by the brand's rules (%s)"):format(code)
      tp.fail(403, "risk_" .. code, message, { action = action, by = name })
    end
  end
end

return risk
