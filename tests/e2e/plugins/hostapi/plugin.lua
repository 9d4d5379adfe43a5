---@diagnostic disable: undefined-global
-- hostapi: the host API for plugins, end to end (test_hostapi.py): tp.crypto,
-- tp.config() in every context, tp.caller() with hostmid and hostend,
-- tp.exports, and req.raw_body. Its routes also carry every doc field, for test_openapi.py.

-- at load: tp.config() already works, tp.caller() is nil
local AT_LOAD = { config = tp.config(), caller = tp.caller() }

local function body_of(req)
  return type(req.body) == "table" and req.body or {}
end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- POST /hostapi/crypto {fn, args = [...], hex = bool}: tp.crypto[fn](args...)
-- under pcall; hex turns a raw digest into text (JSON strings are UTF-8)
local function crypto(req)
  local b = body_of(req)
  local f = tp.crypto[b.fn]
  if not f then tp.fail(400, "no_such_function", "no tp.crypto." .. tostring(b.fn)) end
  local args = b.args or {}
  local ok, r = pcall(f, table.unpack(args, 1, #args))
  if not ok then return 200, { ok = false, err = tostring(r) } end
  if b.hex then r = hex(r) end
  return 200, { ok = true, result = r }
end

-- GET /hostapi/config: tp.config() is req.config, and the table seen at load
local function config(req)
  return 200, {
    config = tp.config(),
    same_as_req = rawequal(tp.config(), req.config),
    same_as_load = rawequal(tp.config(), AT_LOAD.config),
    caller_at_load = AT_LOAD.caller == nil and "nil" or AT_LOAD.caller,
  }
end

-- GET /hostapi/caller: nil here; hostmid sees us; nested calls see their
-- immediate caller; afterwards every value is back
local function caller()
  local direct = tp.caller()
  local via = tp.call("hostmid", "whoami")
  local nested = tp.call("hostmid", "relay")
  local failed = tp.call("hostmid", "relay_error")
  local straight = tp.call("hostend", "whoami")
  return 200, {
    direct = direct == nil and "nil" or direct,
    via = via,
    nested = nested,
    failed = failed,
    straight = straight,
    after = tp.caller() == nil and "nil" or tp.caller(),
  }
end

local function seen_row(kind, caller_name, via)
  tp.db.exec("INSERT INTO hostapi_seen (kind, greeting, caller, via) VALUES (?, ?, ?, ?)",
    kind, tostring(tp.config().greeting), caller_name == nil and "nil" or caller_name,
    via and tp.json.encode(via) or "")
end

-- the job: its config without a req, no caller, and an export it calls sees us
local function record()
  seen_row("job", tp.caller(), tp.call("hostmid", "whoami"))
end

-- POST /hostapi/schedule: the job runs when the test clock is advanced
local function schedule()
  return 201, { id = tp.jobs.schedule("record", {}, { after = 0 }) }
end

-- POST /hostapi/emit: hostmid's subscriber records what it sees
local function emit()
  return 200, { subscribers = tp.events.emit("hostapi.ping", { n = 1 }) }
end

local function seen()
  return 200, { seen = tp.db.query("SELECT kind, greeting, caller, via FROM hostapi_seen ORDER BY id") }
end

-- GET /hostapi/exports: tp.exports for a peer's export, its missing one, a
-- plugin the tenant does not serve, a job of our own (not an export), each of
-- tp.exporters("whoami"), and a missing argument
local function exports()
  local every = {}
  for _, name in ipairs(tp.exporters("whoami")) do every[name] = tp.exports(name, "whoami") end
  local ok, err = pcall(tp.exports, "hostmid")
  return 200, {
    peer = tp.exports("hostmid", "relay"),
    missing = tp.exports("hostmid", "nope"),
    absent = tp.exports("nobody", "whoami"),
    job = tp.exports("hostapi", "record"),
    every = every,
    bad = ok and "no error" or tostring(err),
  }
end

-- POST|GET /hostapi/raw: the body exactly as sent, and its signature checked
-- the way a payment callback is: HMAC over the raw bytes, compared in
-- constant time with the X-Signature header
local function raw(req)
  local rb = req.raw_body
  local sig = req.headers["x-signature"]
  local verified = false
  if rb and sig then
    verified = tp.crypto.equal(tp.crypto.hmac_sha256(tp.config().webhook_secret, rb, "base64"), sig)
  end
  return 200, {
    is_nil = rb == nil,
    raw = rb,
    length = rb and #rb or 0,
    sha256 = rb and tp.crypto.sha256(rb) or "",
    decoded = req.body,
    verified = verified,
    cached = rawequal(req.raw_body, rb),
  }
end

-- the routes below exist for the OpenAPI document: they echo what they got
local function echo(req)
  return 200, { params = req.params, query = req.query, user = req.user }
end

local function create_note(req)
  return 201, { id = 1, text = body_of(req).text, user = req.user }
end

local NOTE = {
  type = "object",
  required = { "id", "text" },
  properties = {
    id = { type = "integer", minimum = 1 },
    text = { type = "string", maxLength = 500 },
    tags = { type = "array", items = { type = "string" } },
    price = { type = "number", minimum = 0.5 },
  },
}

return {
  name = "hostapi",
  version = "2.3.4",
  migrations = {
    "CREATE TABLE hostapi_seen (id INTEGER PRIMARY KEY, kind TEXT, greeting TEXT, caller TEXT, via TEXT)",
  },
  jobs = { record = record },
  routes = {
    { method = "POST", path = "/hostapi/crypto", auth = "none", handler = crypto,
      summary = "Run one tp.crypto function",
      body = { type = "object", required = { "fn" }, properties = {
        fn = { type = "string", enum = { "sha256", "hmac_sha256", "equal" } },
        args = { type = "array", items = { type = "string" } },
        hex = { type = "boolean" } } },
      response = { type = "object", properties = { ok = { type = "boolean" }, result = {},
                                                   err = { type = "string" } } } },
    { method = "GET", path = "/hostapi/config", auth = "none", handler = config,
      summary = "tp.config() in a handler" },
    { method = "GET", path = "/hostapi/caller", auth = "none", handler = caller,
      summary = "tp.caller() direct, through tp.call and nested" },
    { method = "POST", path = "/hostapi/schedule", auth = "none", handler = schedule, status = 201,
      summary = "Schedule the record job" },
    { method = "POST", path = "/hostapi/emit", auth = "none", handler = emit },
    { method = "GET", path = "/hostapi/seen", auth = "none", handler = seen },
    { method = "GET", path = "/hostapi/exports", auth = "none", handler = exports },
    { method = "POST", path = "/hostapi/raw", auth = "none", handler = raw,
      summary = "Echo req.raw_body", headers = { ["X-Signature"] = {
        description = "base64 HMAC-SHA-256 of the body with config.webhook_secret" } } },
    { method = "GET", path = "/hostapi/raw", auth = "none", handler = raw },
    { method = "GET", path = "/hostapi/items/{id:int}/notes/{tag}", auth = "optional", handler = echo,
      summary = "Notes of an item \"quoted\", back\\slash, 茶",
      description = "Line one.\nLine two with <html> & a tab\there.",
      query = {
        limit = { type = "integer", description = "page size", required = false },
        verbose = { type = "boolean" },
        q = { type = "string", required = true, description = "search text" },
      },
      headers = { ["X-Trace-Id"] = { description = "a trace id", required = true } },
      response = { type = "object", properties = { params = { type = "object" } } },
      x_unknown_key = "ignored: unknown route keys stay accepted" },
    { method = "POST", path = "/hostapi/notes", auth = "user", handler = create_note, status = 201,
      summary = "Create a note", body = { type = "object", required = { "text" },
        properties = { text = { type = "string", minLength = 1 } } },
      response = NOTE, errors = { [409] = { "note_exists", "too_many_notes" }, [400] = { "invalid_field" },
                                   [403] = { "members_only", "risk_*" } } },
    { method = "DELETE", path = "/hostapi/notes/{id:int}", auth = "admin", handler = echo,
      summary = "Delete a note", body = { type = "object", properties = { reason = { type = "string" } } } },
  },
}
