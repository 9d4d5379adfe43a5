---@diagnostic disable: undefined-global
-- wechat_auth: WeChat mini-program login. The mini-program calls wx.login and
-- posts the code; the host asks WeChat's code2session for the user's openid
-- (and unionid) through tp.http, with the app secret put into the query by the
-- host; the members plugin finds or makes the member those identities name and
-- mints its token. A call out is answered to a job, not to the request, so a
-- login is two requests: POST /wechat/login answers 202 with a login id, and
-- GET /wechat/login/{id} answers 200 with the token once it is there (202 until
-- then). The session_key WeChat returns is never stored nor answered.
--
-- A logged-in member adds their phone the same way: the code of WeChat's phone
-- button goes to getuserphonenumber (with the access token the host adds), and
-- members.identify adds the verified phone to the member, merging the member
-- that phone already named into the older of the two (a verified phone proves
-- one person). The number itself is kept only as members keeps it: a digest
-- and a masked form; the reply job is a personal job, so no run records it.
--
-- Config: appid (the mini-program's), destination (default "wechat": a
-- destination of the brand's config listing wechat_auth, whose secrets hold
-- app_secret), api_destination (default "wechat_api": one with the `token`
-- option, for the phone), token_seconds (default 7 days).

local check = require("tp.check")

local CONF = tp.config()
local APPID = check.text(CONF.appid, "config.appid", 32)
local DEST = check.text(CONF.destination, "config.destination", 32, true) or "wechat"
local API_DEST = check.text(CONF.api_destination, "config.api_destination", 32, true) or "wechat_api"
local TOKEN_SECONDS = check.integer(CONF.token_seconds, "config.token_seconds", 60, 90 * 86400, true)
  or 7 * 86400
local LOGIN_SECONDS = 300  -- a login's answer waits this long to be picked up

local I, S = { type = "integer" }, { type = "string" }

---An unguessable login id: 128 bits of the invocation's generator, which the
---host seeds with a secret of its own.
local function new_id()
  local parts = {}
  for i = 1, 4 do parts[i] = ("%08x"):format(tp.random(0, 0xffffffff)) end
  return table.concat(parts)
end

---POST /wechat/login {code}
local function login(req)
  local body = check.body(req.body, true)
  check.only(body, { code = true })
  local code = check.text(body.code, "code", 128)
  if not code:match("^[%w_%-]+$") then check.field_error("code", "must be the code wx.login gave") end
  local id, now = new_id(), tp.now()
  tp.db.exec("DELETE FROM wechat_auth_logins WHERE created_at < ?", now - LOGIN_SECONDS)
  tp.db.exec("INSERT INTO wechat_auth_logins (id, state, created_at) VALUES (?, 'pending', ?)", id, now)
  tp.http.request {
    to = DEST, method = "GET",
    path = "/sns/jscode2session?appid=" .. APPID .. "&secret={{secret:app_secret}}&js_code=" .. code
      .. "&grant_type=authorization_code",
    on_reply = "session", context = { login = id }, attempts = 3,
  }
  return 202, { login_id = id, poll_after_ms = 300 }
end

---GET /wechat/login/{id}: 202 while WeChat is asked; 200 with the token once
---(the answer is then gone); 401 for a code WeChat refused.
local function poll(req)
  local row = tp.db.one([[SELECT id, state, token, member, created, error FROM wechat_auth_logins
    WHERE id = ? AND created_at >= ?]], req.params.id, tp.now() - LOGIN_SECONDS)
  if not row then tp.fail(404, "login_not_found", "no such login, or it expired") end
  if row.state == "pending" then return 202, { state = "pending" } end
  tp.db.exec("DELETE FROM wechat_auth_logins WHERE id = ?", row.id)
  if row.state == "failed" then tp.fail(401, row.error, "the login did not go through: " .. row.error) end
  return 200, { state = "done", token = row.token, member = row.member, created = row.created == 1 }
end

---POST /wechat/phone {code}: the member adds the phone WeChat's phone button
---verified; answers an id to poll.
local function add_phone(req)
  local body = check.body(req.body, true)
  check.only(body, { code = true })
  local code = check.text(body.code, "code", 128)
  if not code:match("^[%w_%-]+$") then check.field_error("code", "must be the code WeChat's phone button gave") end
  if not tp.http.allowed(API_DEST) then
    tp.fail(409, "phone_not_configured", "this brand has not set up WeChat's server API for phone numbers")
  end
  local id, now = new_id(), tp.now()
  tp.db.exec("DELETE FROM wechat_auth_phones WHERE created_at < ?", now - LOGIN_SECONDS)
  tp.db.exec("INSERT INTO wechat_auth_phones (id, member, state, created_at) VALUES (?, ?, 'pending', ?)",
    id, req.user, now)
  tp.http.request {
    to = API_DEST, method = "POST", path = "/wxa/business/getuserphonenumber",
    json = { code = code }, on_reply = "phone", context = { phone = id }, attempts = 3,
  }
  return 202, { phone_id = id, poll_after_ms = 300 }
end

---GET /wechat/phone/{id}: 202 while WeChat is asked; 200 with the member (the
---survivor, if the phone named an older member) once.
local function poll_phone(req)
  local row = tp.db.one([[SELECT id, state, survivor, phone_masked, token, merged, error
    FROM wechat_auth_phones WHERE id = ?1 AND (member = ?2 OR survivor = ?2) AND created_at >= ?3]],
    req.params.id, req.user, tp.now() - LOGIN_SECONDS)
  if not row then tp.fail(404, "phone_not_found", "no such phone request of yours, or it expired") end
  if row.state == "pending" then return 202, { state = "pending" } end
  tp.db.exec("DELETE FROM wechat_auth_phones WHERE id = ?", row.id)
  if row.state == "failed" then tp.fail(401, row.error, "the phone was not added: " .. row.error) end
  return 200, { state = "done", member = row.survivor, phone = row.phone_masked, token = row.token,
                merged = tp.json.array(tp.json.decode(row.merged)) }
end

local jobs = {}

local function fail_login(id, code)
  tp.db.exec("UPDATE wechat_auth_logins SET state = 'failed', error = ? WHERE id = ?", code, id)
end

---code2session's answer: the member for its identities, and the token.
function jobs.session(job)
  local r = job.payload
  local id = r.context.login
  if not r.ok then return fail_login(id, "wechat_unavailable") end
  local ok, answer = pcall(tp.json.decode, r.body or "")
  if not ok or type(answer) ~= "table" then return fail_login(id, "wechat_unavailable") end
  if (answer.errcode or 0) ~= 0 or type(answer.openid) ~= "string" then
    return fail_login(id, "invalid_code")  -- 40029, 40163 (used), 45011 (too often) ...
  end
  local identities = { { channel = "mp_openid", id = answer.openid } }
  if type(answer.unionid) == "string" then
    identities[2] = { channel = "unionid", id = answer.unionid }
  end
  local called, m = pcall(tp.call, "members", "identify",
    { identities = identities, token_seconds = TOKEN_SECONDS, source = { channel = "mini_program" } })
  if not called then return fail_login(id, type(m) == "table" and m.code or "identify_failed") end
  tp.db.exec([[UPDATE wechat_auth_logins SET state = 'done', token = ?, member = ?, created = ?
    WHERE id = ?]], m.token, m.member.id, m.created and 1 or 0, id)
end

local function fail_phone(id, code)
  tp.db.exec("UPDATE wechat_auth_phones SET state = 'failed', error = ? WHERE id = ?", code, id)
end

---The number as members keeps it: the national number in China, else +country.
local function phone_of(info)
  local pure, cc = info.purePhoneNumber, tostring(info.countryCode or "")
  if type(pure) ~= "string" or not pure:match("^%d+$") or not cc:match("^%d*$") then return nil end
  if cc == "" or cc == "86" then return pure end
  return "+" .. cc .. pure
end

---getuserphonenumber's answer: the verified phone added to the member.
function jobs.phone(job)
  local r = job.payload
  local id = r.context.phone
  local row = tp.db.one("SELECT member FROM wechat_auth_phones WHERE id = ? AND state = 'pending'", id)
  if not row then return end  -- expired meanwhile
  local ok, answer = pcall(tp.json.decode, r.body or "")
  if not ok or type(answer) ~= "table" then answer = {} end
  local errcode = r.errcode or answer.errcode or 0
  if errcode == 40029 or errcode == 40163 then return fail_phone(id, "invalid_code") end
  local info = answer.phone_info
  if not r.ok or errcode ~= 0 or type(info) ~= "table" then return fail_phone(id, "wechat_unavailable") end
  if type(info.watermark) ~= "table" or info.watermark.appid ~= APPID then
    return fail_phone(id, "wrong_app")  -- a code of another mini-program
  end
  local phone = phone_of(info)
  if not phone then return fail_phone(id, "wechat_unavailable") end
  local called, m = pcall(tp.call, "members", "identify", { member = row.member,
    identities = { { channel = "phone", id = phone, verified = true } }, token_seconds = TOKEN_SECONDS })
  if not called then return fail_phone(id, type(m) == "table" and m.code or "identify_failed") end
  tp.db.exec([[UPDATE wechat_auth_phones SET state = 'done', survivor = ?, phone_masked = ?, token = ?,
    merged = ? WHERE id = ?]], m.member.id, m.member.phone, m.token, tp.json.encode(m.merged), id)
end

local ROUTES = {
  { method = "POST", path = "/wechat/login", auth = "none", rate_class = "write", handler = login, status = 202,
    summary = "Log in with wx.login's code: answers a login id to poll",
    errors = { [400] = { "invalid_field", "invalid_body" } },
    body = { type = "object", required = { "code" }, properties = { code = { type = "string", maxLength = 128 } } },
    response = { type = "object", properties = { login_id = S, poll_after_ms = I } } },
  { method = "GET", path = "/wechat/login/{id}", auth = "none", handler = poll, status = { 200, 202 },
    summary = "The login's token once WeChat answered (202 until then; the token is handed out once)",
    errors = { [401] = { "invalid_code", "wechat_unavailable", "identity_conflict", "identify_failed" },
               [404] = { "login_not_found" } },
    response = { type = "object", properties = { state = { type = "string", enum = { "pending", "done" } },
      token = S, member = S, created = { type = "boolean" } } } },
  { method = "POST", path = "/wechat/phone", auth = "user", rate_class = "write", handler = add_phone, status = 202,
    summary = "Add the phone WeChat's phone button verified (getPhoneNumber's code): answers an id to poll",
    errors = { [400] = { "invalid_field", "invalid_body" }, [409] = { "phone_not_configured" } },
    body = { type = "object", required = { "code" }, properties = { code = { type = "string", maxLength = 128 } } },
    response = { type = "object", properties = { phone_id = S, poll_after_ms = I } } },
  { method = "GET", path = "/wechat/phone/{id}", auth = "user", handler = poll_phone, status = { 200, 202 },
    personal = true,
    summary = "The member with the phone added, once (202 until WeChat answered); member is the older "
      .. "member when the phone named one already, and token is its token",
    errors = { [401] = { "invalid_code", "wechat_unavailable", "wrong_app", "member_not_found", "identify_failed" },
               [404] = { "phone_not_found" } },
    response = { type = "object", properties = { state = { type = "string", enum = { "pending", "done" } },
      member = S, token = S, phone = { type = "string", description = "masked: 138****5678" },
      merged = { type = "array", items = S, description = "members merged into member by the phone" } } } },
}

return {
  name = "wechat_auth",
  version = "1.1.0",
  description = "WeChat mini-program login: wx.login's code to a member's token through code2session",
  migrations = {
    [[
    CREATE TABLE wechat_auth_logins (
      id TEXT PRIMARY KEY,
      state TEXT NOT NULL,
      token TEXT,
      member TEXT,
      created INTEGER,
      error TEXT,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    ]],
    -- 1.1.0: phones added by logged-in members; the number is never stored here
    [[
    CREATE TABLE wechat_auth_phones (
      id TEXT PRIMARY KEY,
      member TEXT NOT NULL,
      state TEXT NOT NULL,
      survivor TEXT,
      phone_masked TEXT,
      token TEXT,
      merged TEXT,
      error TEXT,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    ]],
  },
  jobs = jobs,
  personal_jobs = { "phone" },
  routes = ROUTES,
}
