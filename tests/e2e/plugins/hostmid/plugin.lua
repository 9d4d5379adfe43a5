---@diagnostic disable: undefined-global
-- hostmid: the middle of a call chain for test_hostapi.py. hostapi calls its
-- exports; relay calls on into hostend. It also subscribes to hostapi.ping to
-- show tp.config() and tp.caller() in an event handler.

local function show(v)
  return v == nil and "nil" or v
end

local exports = {}

function exports.whoami()
  return { caller = show(tp.caller()), role = tp.config().role }
end

-- A calls B (us) calls C: C sees B, and we still see A before and after
function exports.relay()
  local before = tp.caller()
  local inner = tp.call("hostend", "whoami")
  return { before = show(before), inner = inner, after = show(tp.caller()) }
end

-- the callee fails: our caller is still ours afterwards
function exports.relay_error()
  local ok = pcall(tp.call, "hostend", "boom")
  return { callee_failed = not ok, after = show(tp.caller()) }
end

local function on_ping(ev)
  tp.db.exec("INSERT INTO hostmid_seen (kind, role, caller, source) VALUES ('event', ?, ?, ?)",
    tostring(tp.config().role), show(tp.caller()), ev.source)
end

local function seen()
  return 200, { seen = tp.db.query("SELECT kind, role, caller, source FROM hostmid_seen ORDER BY id") }
end

-- GET /hostmid/caller: a route the host invokes directly, after all the calls
local function caller()
  return 200, { caller = show(tp.caller()) }
end

return {
  name = "hostmid",
  version = "1.0.0",
  migrations = {
    "CREATE TABLE hostmid_seen (id INTEGER PRIMARY KEY, kind TEXT, role TEXT, caller TEXT, source TEXT)",
  },
  exports = exports,
  subscribe = { ["hostapi.ping"] = on_ping },
  routes = {
    { method = "GET", path = "/hostmid/seen", auth = "none", handler = seen },
    { method = "GET", path = "/hostmid/caller", auth = "none", handler = caller },
  },
}
