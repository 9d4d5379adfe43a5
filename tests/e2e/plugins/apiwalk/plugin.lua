---@diagnostic disable: undefined-global
-- apiwalk: reports what the host really hands a plugin, for test_sdk_stubs.py
-- to compare with sdk/types/tp.lua: every key of the tp table (recursively),
-- the keys of a handler's req, a job's and an event delivery's argument.
--
-- req builds headers, query and raw_body when first read (a metatable), so
-- pairs() alone cannot see them: the test sends the names the stubs declare
-- as body.probe, and the handler reads each one before it lists the keys.

local function walk(t, prefix, out, seen)
  seen[t] = true
  for k, v in pairs(t) do
    local name = prefix .. "." .. tostring(k)
    out[#out + 1] = name
    if type(v) == "table" and not seen[v] then walk(v, name, out, seen) end
  end
  return out
end

local function keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = tostring(k) end
  table.sort(out)
  return out
end

local function record(kind, t)
  tp.db.exec("INSERT INTO apiwalk_seen (kind, keys) VALUES (?, ?) ON CONFLICT (kind) DO UPDATE "
             .. "SET keys = excluded.keys", kind, tp.json.encode(tp.json.array(keys(t))))
end

local at_load = walk(tp, "tp", {}, {})

return {
  name = "apiwalk", version = "1.0.0",
  migrations = { "CREATE TABLE apiwalk_seen (kind TEXT PRIMARY KEY, keys TEXT NOT NULL)" },
  routes = {
    { method = "GET", path = "/apiwalk/tp", auth = "none", handler = function()
        return { load = tp.json.array(at_load), handler = tp.json.array(walk(tp, "tp", {}, {})) }
      end },
    { method = "POST", path = "/apiwalk/req/{id:int}", auth = "user", handler = function(req)
        for _, name in ipairs(req.body.probe) do local _ = req[name] end
        return { keys = keys(req) }
      end },
    { method = "POST", path = "/apiwalk/start", auth = "user", handler = function()
        tp.jobs.schedule("look", { n = 1 }, { after = 1, key = "look" })
        tp.events.emit("apiwalk.ping", { n = 2 })
        return 201, {}
      end },
    { method = "GET", path = "/apiwalk/seen", auth = "none", handler = function()
        local out = {}
        for _, row in ipairs(tp.db.query("SELECT kind, keys FROM apiwalk_seen")) do
          out[row.kind] = tp.json.decode(row.keys)
        end
        return out
      end },
  },
  jobs = { look = function(job) record("job", job) end },
  subscribe = { ["apiwalk.ping"] = function(ev) record("event", ev) end },
}
