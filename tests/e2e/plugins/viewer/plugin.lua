---@diagnostic disable: undefined-global
-- viewer: reads viewed's results as JSON views (tp.call_view) and reports
-- what it saw, beside the copies tp.call gives (tests/e2e/test_jsonview.py).

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  return keys
end

local function read()
  local v = tp.call_view("viewed", "order")
  local copy = tp.call("viewed", "order")
  local set_ok, set_err = pcall(function() v.id = 1 end)
  local bind_ok = pcall(tp.db.one, "SELECT ? AS x", v)
  local decoded = tp.json.decode(v)
  decoded.id = 43
  return 200, {
    type = type(v), meta = getmetatable(v),
    id = v.id, id_type = math.type(v.id), user = v.user, title = v.title, note = v.note,
    ratio = v.ratio, ratio_type = math.type(v.ratio), big = v.big, big_exact = v.big == copy.big,
    neg = v.neg, paid = v.paid, held = v.held, nothing_is_null = v.nothing == tp.json.null,
    missing_is_nil = v.missing == nil, float_key_is_nil = v[1.5] == nil,
    lines_type = type(v.lines), lines_len = #v.lines, first_sku = v.lines[1].sku,
    second_qty = v.lines[2].qty, third_is_nil = v.lines[3] == nil, zeroth_is_nil = v.lines[0] == nil,
    name_on_array_is_nil = v.lines.sku == nil, tags_len = #v.lines[2].tags,
    digit_string_on_array_is_nil = v.lines["1"] == nil, float_index = v.lines[2.0].sku,
    float_key = v.sparse[5.0],
    empty_len = #v.empty, obj_len = #v.obj, object_len = #v,
    sparse_5 = v.sparse[5], sparse_7 = v.sparse["7"],
    quoted = v['key with "quote"'], cjk = v["键"],
    keys = sorted_keys(v), copy_keys = sorted_keys(copy),
    set_refused = not set_ok, set_error = tostring(set_err), bind_refused = not bind_ok,
    decoded_id = decoded.id, still = v.id, decoded_big_exact = decoded.big == copy.big,
    decoded_empty = tp.json.encode(decoded.empty), decoded_sparse_key = type(next(decoded.sparse)),
    text = tostring(v), encoded = tp.json.encode({ inner = v }),
    view = v, copy = copy, nested = v.lines,
  }
end

-- tp.json.view: a view of the plugin's own table, encoded once
local function own()
  local t = { id = 7, tags = tp.json.array({ "a", "b" }), empty = tp.json.array() }
  local v = tp.json.view(t)
  t.id = 8  -- the view was encoded before: it keeps 7
  local bad_ok, bad = pcall(tp.json.view, "text")
  local fn_ok, fn = pcall(tp.json.view, { f = print })
  return 200, { type = type(v), same = tp.json.view(v) == v, id = v.id, tags = #v.tags, v = v,
                bad = not bad_ok and tostring(bad), fn = not fn_ok and tostring(fn) }
end

local function several()
  local a, b, c = tp.call_view("viewed", "several")
  return 200, { a = a, a_type = math.type(a), b_type = type(b), b = b, c = c }
end

local function errors()
  local _, nonplain = pcall(tp.call_view, "viewed", "nonplain")
  local _, failed = pcall(tp.call_view, "viewed", "fail")
  local _, nobody = pcall(tp.call_view, "nobody", "x")
  return 200, { nonplain = tostring(nonplain), nobody = tostring(nobody),
                fail = { status = failed.status, code = failed.code, details = failed.details } }
end

local function pass()
  local v = tp.call_view("viewed", "order")
  local again = tp.call_view("viewed", "echo", v)
  local plain = tp.call("viewed", "echo", v)
  local relayed, relayed_view = tp.call("viewed", "relay"), tp.call_view("viewed", "relay")
  return 200, {
    seen = tp.call("viewed", "describe", v),
    again_type = type(again), again = again, plain_type = type(plain), plain = plain,
    relayed_type = type(relayed), relayed = relayed,
    relayed_view_type = type(relayed_view), relayed_view = relayed_view,
  }
end

-- a view in a job's payload and in an event's data: written as its text
local function later()
  local v = tp.call_view("viewed", "order")
  tp.jobs.schedule("got", { order = v }, 0)
  tp.events.emit("viewer.seen", { order = v })
  return 200, {}
end

local function got(job)
  tp.db.exec("INSERT INTO viewer_got (kind, body) VALUES ('job', ?)", tp.json.encode(job.payload))
end

local function seen(ev)
  tp.db.exec("INSERT INTO viewer_got (kind, body) VALUES ('event', ?)", tp.json.encode(ev.data))
end

local function list()
  return 200, { items = tp.json.array(tp.db.query("SELECT kind, body FROM viewer_got ORDER BY id")) }
end

return {
  name = "viewer",
  version = "1.0.0",
  migrations = { "CREATE TABLE viewer_got (id INTEGER PRIMARY KEY, kind TEXT, body TEXT)" },
  jobs = { got = got },
  subscribe = { ["viewer.seen"] = seen },
  routes = {
    { method = "GET", path = "/viewer/read", auth = "none", handler = read },
    { method = "GET", path = "/viewer/several", auth = "none", handler = several },
    { method = "GET", path = "/viewer/own", auth = "none", handler = own },
    { method = "GET", path = "/viewer/errors", auth = "none", handler = errors },
    { method = "GET", path = "/viewer/pass", auth = "none", handler = pass },
    { method = "POST", path = "/viewer/later", auth = "none", handler = later },
    { method = "GET", path = "/viewer/got", auth = "none", handler = list },
    -- the answer is the view itself
    { method = "GET", path = "/viewer/answer", auth = "none",
      handler = function() return 201, tp.call_view("viewed", "order") end },
  },
}
