---@diagnostic disable: undefined-global
-- evemit: emits events for the end-to-end tests (test_events.py), from a
-- route (which may then raise) and from a job.

local function body_of(req)
  return type(req.body) == "table" and req.body or {}
end

-- POST /evemit/emit {name, data} | {events = [{name, data}...]}, then = "error" | "fail"
local function emit(req)
  local b = body_of(req)
  local list = b.events or { { name = b.name, data = b.data } }
  local counts = {}
  for i, e in ipairs(list) do
    counts[i] = tp.events.emit(e.name, e.data)
  end
  if b["then"] == "error" then
    error("the emitter raises after emitting")
  elseif b["then"] == "fail" then
    tp.fail(409, "changed_my_mind", "the emitter fails after emitting")
  end
  return 200, { counts = counts, subscribers = counts[1], now = tp.now(), now_ms = tp.now_ms() }
end

-- POST /evemit/emit-function {name}: emits data JSON cannot hold; the answer
-- says whether emit raised (it encodes only when someone subscribes)
local function emit_function(req)
  local ok, err = pcall(tp.events.emit, body_of(req).name, { f = function() end })
  return 200, { ok = ok, count = ok and err or nil, error = not ok and tostring(err) or nil }
end

-- POST /evemit/emit-later {after, name, data}: a job emits it
local function emit_later(req)
  local b = body_of(req)
  local id = tp.jobs.schedule("emit", { name = b.name, data = b.data }, { after = b.after })
  return 200, { id = id, now = tp.now(), now_ms = tp.now_ms() }
end

return {
  name = "evemit",
  version = "1.0.0",
  jobs = {
    emit = function(job)
      tp.events.emit(job.payload.name, job.payload.data)
    end,
  },
  routes = {
    { method = "POST", path = "/evemit/emit", auth = "none", handler = emit },
    { method = "POST", path = "/evemit/emit-later", auth = "none", handler = emit_later },
    { method = "POST", path = "/evemit/emit-function", auth = "none", handler = emit_function },
  },
}
