---@diagnostic disable: undefined-global
-- riskprobe: a risk rule for test_scalper.py (sdk/tp/risk.lua). It notes every
-- check it is asked in a table of its own, and refuses members whose id starts
-- with "bot-" with the code captcha_required (the mini-program would show a
-- captcha). A refused request's note goes with its savepoint.

local exports = {}

function exports.risk_check(ask)
  tp.db.exec("INSERT INTO riskprobe_checks (user, action, plugin) VALUES (?, ?, ?)",
    ask.user or "", ask.action, ask.subject and ask.subject.plugin or "")
  if (ask.user or ""):sub(1, 4) == "bot-" then
    return { code = "captcha_required", message = "solve the captcha first" }
  end
  return nil
end

local function checks()
  return 200, { items = tp.json.array(tp.db.query("SELECT user, action, plugin FROM riskprobe_checks ORDER BY id")) }
end

return {
  name = "riskprobe",
  version = "1.0.0",
  migrations = { "CREATE TABLE riskprobe_checks (id INTEGER PRIMARY KEY, user TEXT, action TEXT, plugin TEXT)" },
  routes = { { method = "GET", path = "/riskprobe/checks", auth = "admin", handler = checks } },
  exports = exports,
}
