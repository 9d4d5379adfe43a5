---@diagnostic disable: undefined-global
-- notify (订阅消息): WeChat subscription messages when something happens to a
-- customer: her group formed or failed, her bargain reached its floor, her
-- coupon is about to expire, and any other event a brand maps to a template.
--
-- The rules, as a marketer states them:
--   - a brand declares its templates in config: WeChat's template id, the page
--     the card opens, which event sends it, to whom, and where each of the
--     template's fields (thing1, amount2, ...) comes from in the event;
--   - a customer receives a message only if she accepted that template in the
--     mini-program (one-time subscription): each acceptance lets one message
--     through; with none left the message is skipped, not sent;
--   - every message is recorded with its outcome and WeChat's errcode/errmsg,
--     listed for operators.
--
-- Sending is POST /cgi-bin/message/subscribe/send to the destination the
-- brand names (default "wechat"); its token = {...} option makes the host add
-- the access_token, so neither it nor the app secret is ever seen here.

local check = require("tp.check")
local fields = require("lib.fields")

local SEND_PATH = "/cgi-bin/message/subscribe/send"

---The events a template may be sent on (order.shipped and order.delivered
---come from the fulfilment plugin). Adding an
---event is one line here; coupon.expiring is this plugin's own (the
---coupon_reminder job).
local EVENTS = {
  "group.formed", "group.failed", "group.opened", "bargain.floor_reached", "bargain.expired",
  "order.paid", "order.shipped", "order.delivered", "order.completed", "order.cancelled", "order.refunded",
  "friend_assist.completed", "referral.withdrawal_approved",
  "order.deposit_paid", "presale.balance_due",
}
local COUPON_EVENT = "coupon.expiring"
local KNOWN_EVENTS = { [COUPON_EVENT] = true }
for _, e in ipairs(EVENTS) do KNOWN_EVENTS[e] = true end

local DELIVERY = { type = "object", properties = {
  id = { type = "integer" }, template = { type = "string", description = "the template's name in config" },
  template_id = { type = "string", description = "WeChat's template id" },
  event = { type = "string" }, source = { type = "string", description = "event:<id> or coupon:<id>" },
  user = { type = "string" }, openid = { type = "string" },
  state = { type = "string", enum = { "sending", "sent", "failed", "skipped" } },
  reason = { type = "string", description = "skipped or failed: no_subscription, field_missing:<key>, "
    .. "destination_unknown, wechat (see errcode), or tp.http's error" },
  errcode = { type = "integer" }, errmsg = { type = "string" }, attempts = { type = "integer" },
  created_at = { type = "integer" }, updated_at = { type = "integer" } } }
local DELIVERY_COLUMNS = [[id, template, template_id, event, source, user, openid, state, reason, errcode,
  errmsg, attempts, created_at, updated_at]]

local SUBSCRIPTION = { type = "object", properties = {
  template_id = { type = "string" }, remaining = { type = "integer", description = "messages it may still get" } } }

-- ---- config

local function conf() return tp.config() end

local function templates() return conf().templates or {} end

local function destination() return conf().destination or "wechat" end

---The config's templates, checked: a wrong one fails the plugin's setup with
---the path of what is wrong.
local function check_config()
  local c = conf()
  local function bad(path, msg) error(("notify: %s: %s"):format(path, msg), 0) end
  if c.templates ~= nil and type(c.templates) ~= "table" then bad("templates", "must be a table of name = {...}") end
  for name, t in pairs(templates()) do
    local at = "templates." .. tostring(name)
    if type(t) ~= "table" then bad(at, "must be a table") end
    if not KNOWN_EVENTS[t.event] then
      bad(at .. ".event", ("'%s' is not an event notify sends on (did you mean '%s'?)"):format(
        tostring(t.event), check.suggest(tostring(t.event), KNOWN_EVENTS) or "group.formed"))
    end
    if type(t.template_id) ~= "string" or not t.template_id:match("^[%w%-_]+$") or #t.template_id > 64 then
      bad(at .. ".template_id", "must be WeChat's template id")
    end
    if t.page ~= nil and (type(t.page) ~= "string" or #t.page > 512) then bad(at .. ".page", "must be a page path") end
    local to = t.to
    local n = 0
    if type(to) == "table" then for k in pairs(to) do n = n + 1; if k ~= "user" and k ~= "users" and k ~= "orders" then n = 99 end end end
    if n ~= 1 then bad(at .. ".to", "must be one of {user = path}, {users = path}, {orders = path}") end
    if type(t.data) ~= "table" or next(t.data) == nil then bad(at .. ".data", "must map the template's keys") end
    for key, how in pairs(t.data) do
      if not fields.kind(key) then bad(at .. ".data." .. tostring(key), "is not a WeChat data key (thing1, amount2, ...)") end
      if type(how) ~= "string" and (type(how) ~= "table" or (how.value == nil and how.from == nil)) then
        bad(at .. ".data." .. key, "must be a path in the event's data, or {value = ...} or {from = path, default = ...}")
      end
    end
  end
  local r = c.coupon_reminder
  if r ~= nil then
    if type(r) ~= "table" or math.type(r.within_hours) ~= "integer" or r.within_hours < 1 or r.within_hours > 720 then
      bad("coupon_reminder.within_hours", "must be 1-720")
    end
    if r.every_minutes ~= nil and (math.type(r.every_minutes) ~= "integer" or r.every_minutes < 5) then
      bad("coupon_reminder.every_minutes", "must be an integer of at least 5")
    end
  end
end

---The config's template with WeChat id template_id, or nil.
local function by_template_id(template_id)
  for name, t in pairs(templates()) do
    if t.template_id == template_id then return name, t end
  end
end

-- ---- quotas

---Takes one of user's acceptances of template_id; the openid it came with,
---or nil when none is left.
local function take_quota(user, template_id)
  local changed = tp.db.exec([[UPDATE notify_subscriptions SET remaining = remaining - 1, updated_at = ?
    WHERE user = ? AND template_id = ? AND remaining > 0]], tp.now(), user, template_id)
  if changed == 0 then return nil end
  return tp.db.one("SELECT openid FROM notify_subscriptions WHERE user = ? AND template_id = ?", user, template_id).openid
end

-- ---- sending

local function settle(id, state, reason)
  tp.db.exec("UPDATE notify_deliveries SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
    state, reason, tp.now(), id)
end

---One message of template name to user about source (once per template,
---source and user, however often the event arrives): recorded, then sent if
---she has an acceptance left, else skipped.
local function deliver(name, t, source, user, ctx)
  local now = tp.now()
  local changes, id = tp.db.exec([[INSERT INTO notify_deliveries (template, template_id, event, source, user,
      state, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'sending', 0, ?, ?)
    ON CONFLICT (template, source, user) DO NOTHING]], name, t.template_id, t.event, source, user, now, now)
  if changes == 0 then return end
  local data, missing = fields.build(t.data, ctx)
  if not data then return settle(id, "failed", "field_missing:" .. missing) end
  if not tp.http.allowed(destination()) then return settle(id, "failed", "destination_unknown") end
  local openid = take_quota(user, t.template_id)
  if not openid then return settle(id, "skipped", "no_subscription") end
  local c = conf()
  local call_id = tp.http.request {
    to = destination(), path = SEND_PATH,
    json = { touser = openid, template_id = t.template_id, page = fields.page(t.page, ctx), data = data,
             miniprogram_state = c.miniprogram_state, lang = c.lang },
    key = "notify-" .. id, on_reply = "delivered", context = { delivery = id },
  }
  tp.db.exec("UPDATE notify_deliveries SET openid = ?, call_id = ? WHERE id = ?", openid, call_id, id)
end

---Who a template goes to: {user = path} one user id, {users = path} a list of
---them, {orders = path} an order id or a list of them (each order's buyer,
---with the order as ctx.order).
local function recipients(t, data)
  local out = {}
  local kind, path = next(t.to)
  local v = fields.lookup(data, path)
  if v == nil then return out end
  local list = type(v) == "table" and v or { v }
  for _, x in ipairs(list) do
    if kind == "orders" then
      local order = tp.call("orders", "get", x)
      if order then out[#out + 1] = { user = order.user, order = order } end
    elseif type(x) == "string" then
      out[#out + 1] = { user = x }
    end
  end
  return out
end

---Every template on event name, to each of its recipients.
local function dispatch(name_of_event, source, data)
  for name, t in pairs(templates()) do
    if t.event == name_of_event then
      for _, r in ipairs(recipients(t, data)) do
        local ctx = setmetatable({ order = r.order }, { __index = data })
        deliver(name, t, source, r.user, ctx)
      end
    end
  end
end

local subscribe = {}
for _, e in ipairs(EVENTS) do
  subscribe[e] = function(ev) dispatch(ev.name, "event:" .. ev.id, ev.data) end
end

local jobs = {}

---tp.http's reply to a send. On anything but success the acceptance is given
---back (WeChat did not use it), except 43101, which says none is left there.
function jobs.delivered(job)
  local r = job.payload
  local d = tp.db.one("SELECT id, user, template_id FROM notify_deliveries WHERE id = ?", r.context.delivery)
  if not d then return end
  local errmsg
  if r.body then
    local ok, body = pcall(tp.json.decode, r.body)
    if ok and type(body) == "table" and type(body.errmsg) == "string" then errmsg = body.errmsg:sub(1, 200) end
  end
  local reason = not r.ok and (r.error or (r.errcode and r.errcode ~= 0 and "wechat") or ("status " .. r.status)) or nil
  tp.db.exec([[UPDATE notify_deliveries SET state = ?, reason = ?, errcode = ?, errmsg = ?, attempts = ?,
    updated_at = ? WHERE id = ?]], r.ok and "sent" or "failed", reason, r.errcode, errmsg, r.attempts, tp.now(), d.id)
  if r.ok then return end
  if r.errcode == 43101 then
    tp.db.exec("UPDATE notify_subscriptions SET remaining = 0 WHERE user = ? AND template_id = ?", d.user, d.template_id)
  else
    tp.db.exec("UPDATE notify_subscriptions SET remaining = remaining + 1 WHERE user = ? AND template_id = ?",
      d.user, d.template_id)
  end
end

---Every coupon_reminder.every_minutes: a coupon.expiring message for each
---unused coupon whose validity ends within within_hours (once per coupon).
function jobs.coupon_reminder()
  local r = conf().coupon_reminder
  if not r then return end
  local now = tp.now()
  local after = 0
  for _ = 1, 10 do  -- at most 2,000 coupons a run; the next run takes the rest
    local page = tp.call("coupons", "expiring", now, now + r.within_hours * 3600, after, 200)
    for _, c in ipairs(page) do
      dispatch(COUPON_EVENT, "coupon:" .. c.id, { coupon = c, user = c.user })
      after = c.id
    end
    if #page < 200 then break end
  end
end

-- ---- routes

---The mini-program reports what the user answered wx.requestSubscribeMessage:
---template_ids asked, accepted those she accepted (each adds one message).
---openid: hers (until the members plugin maps members to openids).
local function post_subscriptions(req)
  local body = check.body(req.body)
  check.only(body, { template_ids = true, accepted = true, openid = true })
  local openid = check.ident(body.openid, "openid", 64)
  check.list(body.template_ids, "template_ids", 1, 3, "template ids")
  check.list(body.accepted, "accepted", 0, 3, "template ids")
  local asked = {}
  for i, id in ipairs(body.template_ids) do
    check.ident(id, "template_ids[" .. i .. "]", 64)
    if not by_template_id(id) then check.field_error("template_ids[" .. i .. "]", "is not a template of this brand") end
    asked[id] = true
  end
  local now = tp.now()
  for i, id in ipairs(body.accepted) do
    if not asked[id] then check.field_error("accepted[" .. i .. "]", "must be one of template_ids") end
    tp.db.exec([[INSERT INTO notify_subscriptions (user, template_id, openid, remaining, accepted_total, updated_at)
      VALUES (?, ?, ?, 1, 1, ?) ON CONFLICT (user, template_id) DO UPDATE SET openid = excluded.openid,
      remaining = min(remaining + 1, 1000), accepted_total = accepted_total + 1, updated_at = excluded.updated_at]],
      req.user, id, openid, now)
  end
  local items = tp.json.array()
  for _, id in ipairs(body.template_ids) do
    local row = tp.db.one("SELECT remaining FROM notify_subscriptions WHERE user = ? AND template_id = ?", req.user, id)
    items[#items + 1] = { template_id = id, remaining = row and row.remaining or 0 }
  end
  return 200, { items = items }
end

local function get_subscriptions(req)
  local rows = tp.db.query([[SELECT template_id, remaining FROM notify_subscriptions WHERE user = ?
    ORDER BY template_id]], req.user)
  return 200, { items = tp.json.array(rows) }
end

local LIST_DELIVERIES_SQL = "SELECT " .. DELIVERY_COLUMNS .. [[ FROM notify_deliveries
    WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR user = ?2) AND (?3 IS NULL OR id < ?3)
    ORDER BY id DESC LIMIT ?4]]

local function list_deliveries(req)
  local limit, after = check.page(req.query, 50, 200)
  local state = check.enum(req.query.state, "state", { sending = true, sent = true, failed = true, skipped = true }, true)
  local user = check.user(req.query.user, "user", true)
  local rows = tp.db.query(LIST_DELIVERIES_SQL, state, user, after, limit)
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

local ROUTES = {
  { method = "POST", path = "/notify/subscriptions", handler = post_subscriptions,
    summary = "Record what the user accepted in wx.requestSubscribeMessage (one message per acceptance)",
    errors = { [400] = { "invalid_field", "invalid_body", "unknown_field" } },
    body = { type = "object", required = { "template_ids", "accepted", "openid" }, properties = {
      template_ids = { type = "array", items = { type = "string" }, minItems = 1, maxItems = 3,
                       description = "the templates the mini-program asked for" },
      accepted = { type = "array", items = { type = "string" }, maxItems = 3,
                   description = "those the user accepted" },
      openid = { type = "string", description = "the user's mini-program openid" } } },
    response = { type = "object", properties = { items = { type = "array", items = SUBSCRIPTION } } } },
  { method = "GET", path = "/notify/subscriptions", handler = get_subscriptions,
    summary = "The messages the user may still receive, per template",
    response = { type = "object", properties = { items = { type = "array", items = SUBSCRIPTION } } } },
  { method = "GET", path = "/notify/deliveries", auth = "admin", handler = list_deliveries,
    summary = "Messages, newest first, with their outcome and WeChat's errcode",
    errors = { [400] = { "invalid_field", "invalid_query" } },
    query = { state = { type = "string", description = "sending, sent, failed or skipped" },
              user = { type = "string" }, limit = { type = "integer" }, after = { type = "integer" } },
    response = { type = "object", properties = { items = { type = "array", items = DELIVERY },
                                                 next_after = { type = "integer" } } } },
}

return {
  name = "notify",
  version = "1.1.0",
  description = "WeChat subscription messages on a brand's events, within each user's one-time quotas",
  migrations = {
    [[
    -- one row per user and WeChat template: acceptances not yet used
    CREATE TABLE notify_subscriptions (
      user TEXT NOT NULL,
      template_id TEXT NOT NULL,
      openid TEXT NOT NULL,
      remaining INTEGER NOT NULL CHECK (remaining >= 0),
      accepted_total INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      PRIMARY KEY (user, template_id)
    ) WITHOUT ROWID;
    -- one row per message meant: once per template, source and user
    CREATE TABLE notify_deliveries (
      id INTEGER PRIMARY KEY,
      template TEXT NOT NULL,
      template_id TEXT NOT NULL,
      event TEXT NOT NULL,
      source TEXT NOT NULL,
      user TEXT NOT NULL,
      openid TEXT,
      state TEXT NOT NULL CHECK (state IN ('sending', 'sent', 'failed', 'skipped')),
      reason TEXT,
      errcode INTEGER,
      errmsg TEXT,
      attempts INTEGER NOT NULL,
      call_id INTEGER,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      UNIQUE (template, source, user)
    );
    CREATE INDEX notify_deliveries_state ON notify_deliveries(state, id);
    CREATE INDEX notify_deliveries_user ON notify_deliveries(user, id);
    ]],
    -- 1.1.0: notify_deliveries's value lists checked with ORs, not IN (...): SQLite
    -- evaluates a CHECK's IN list of three or more values by building a temporary b-tree
    -- of it on every row written, about 30k instructions, and every message sent writes
    -- a row and changes its state (`tidepool check` warns of it). A CHECK cannot change
    -- in place, so the table is rebuilt: new, copy, drop, rename, indexes again.
    [[
    CREATE TABLE notify_deliveries_v2 (
      id INTEGER PRIMARY KEY,
      template TEXT NOT NULL,
      template_id TEXT NOT NULL,
      event TEXT NOT NULL,
      source TEXT NOT NULL,
      user TEXT NOT NULL,
      openid TEXT,
      state TEXT NOT NULL CHECK (state = 'sending' OR state = 'sent' OR state = 'failed'
        OR state = 'skipped'),
      reason TEXT,
      errcode INTEGER,
      errmsg TEXT,
      attempts INTEGER NOT NULL,
      call_id INTEGER,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      UNIQUE (template, source, user)
    );
    INSERT INTO notify_deliveries_v2 (
        id, template, template_id, event, source, user, openid, state, reason, errcode, errmsg,
        attempts, call_id, created_at, updated_at)
      SELECT
        id, template, template_id, event, source, user, openid, state, reason, errcode, errmsg,
        attempts, call_id, created_at, updated_at
      FROM notify_deliveries;
    DROP TABLE notify_deliveries;
    ALTER TABLE notify_deliveries_v2 RENAME TO notify_deliveries;
    CREATE INDEX notify_deliveries_state ON notify_deliveries(state, id);
    CREATE INDEX notify_deliveries_user ON notify_deliveries(user, id);
    ]],
  },
  setup = function()
    check_config()
    local r = conf().coupon_reminder
    if r then
      tp.jobs.schedule("coupon_reminder", nil, { after = 60, every = (r.every_minutes or 60) * 60, key = "coupon_reminder" })
    else
      tp.jobs.cancel("coupon_reminder")
    end
  end,
  subscribe = subscribe,
  jobs = jobs,
  routes = ROUTES,
}
