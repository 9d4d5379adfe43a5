---@diagnostic disable: undefined-global
-- webhooks: the brand's own systems (an ERP, a CRM, a data warehouse) hear of
-- its events as they happen: an operator subscribes a destination of the
-- brand's config to an event (order.paid, order.refunded, group.formed, ...)
-- and every such event is POSTed there as JSON, signed by the host when the
-- destination says `sign` (X-Tidepool-Timestamp, X-Tidepool-Signature: v1=
-- hex HMAC-SHA-256 of "<timestamp>.<body>"), with the Idempotency-Key
-- "wh-<delivery id>" on every attempt. tp.http retries a timeout, a refused
-- connection, a 429 or a 5xx with back-off; a delivery still failing after its
-- attempts is dead, listed in the admin API and retryable there.

local check = require("tp.check")
local schema = require("tp.schema")

---The events a brand may subscribe to: every event the built-in plugins emit.
local EVENTS = {
  "order.created", "order.paid", "order.shipped", "order.delivered", "order.completed", "order.cancelled",
  "order.refunded", "order.deposit_paid", "presale.balance_due",
  "group.opened", "group.formed", "group.failed", "bargain.floor_reached",
  "friend_assist.completed", "friend_assist.expired", "group_chain.closed",
  "referral.withdrawal_approved", "member.merged", "member.unmerged", "member.erased",
}

-- A subscription's fields, declared once (tp.schema).
local SUB_FIELDS = schema.new {
  { "event", "enum", values = EVENTS, required = true, fixed = true, doc = "the event to send" },
  { "destination", "ident", max = 32, required = true,
    doc = "a destination of the brand's config (tenants[i].http) that lists the webhooks plugin" },
  { "path", "text", max = 512, default = "/", doc = "after the destination's url; starts with /" },
  { "status", "enum", values = { "active", "paused" }, default = "active" },
}

local SUB_COLUMNS = SUB_FIELDS:columns("id", { "created_at", "updated_at" })
local save_sub = SUB_FIELDS:writer("webhooks_subscriptions", { created_at = ":now", updated_at = ":now" },
  { updated_at = ":now" })

local SUB = { type = "object", properties = {
  id = { type = "integer" }, event = { type = "string" }, destination = { type = "string" }, path = { type = "string" },
  status = { type = "string", enum = { "active", "paused" } },
  created_at = { type = "integer" }, updated_at = { type = "integer" } } }

local DELIVERY = { type = "object", properties = {
  id = { type = "integer" }, subscription_id = { type = "integer" }, event = { type = "string" },
  event_id = { type = "integer" }, state = { type = "string", enum = { "pending", "delivered", "dead" } },
  attempts = { type = "integer" }, status = { type = "integer", description = "the last answer's HTTP status" },
  last_error = { type = "string" }, created_at = { type = "integer" }, updated_at = { type = "integer" } } }

local LOAD_SUB_SQL = "SELECT " .. SUB_COLUMNS
  .. ", created_at, updated_at FROM webhooks_subscriptions WHERE id = ?"

local function load_sub(id)
  return tp.db.one(LOAD_SUB_SQL, id)
end

---A subscription's destination must be one this plugin may call, and a path.
local function check_sub(s)
  SUB_FIELDS:check(s)
  if not tp.http.allowed(s.destination) then
    check.field_error("destination", "must be a destination of the brand's config (tenants[].http) that lists webhooks")
  end
  if s.path:sub(1, 1) ~= "/" or s.path:find("[%s#]") then
    check.field_error("path", "must start with / and hold no spaces or #")
  end
end

---Sends delivery d (its stored body) to its subscription's destination.
local function send(d, sub)
  local call_id = tp.http.request {
    to = sub.destination, path = sub.path, method = "POST",
    body = d.body, headers = { ["Content-Type"] = "application/json", ["X-Tidepool-Event"] = d.event,
                               ["X-Tidepool-Delivery"] = tostring(d.id) },
    key = "wh-" .. d.id, on_reply = "delivered", context = { delivery = d.id },
  }
  tp.db.exec("UPDATE webhooks_deliveries SET state = 'pending', call_id = ?, updated_at = ? WHERE id = ?",
    call_id, tp.now(), d.id)
end

---An event: a delivery for each active subscription to it (once per event,
---however often the event is delivered to this plugin).
local function on_event(ev)
  local subs = tp.db.query([[SELECT id, event, destination, path FROM webhooks_subscriptions
    WHERE event = ? AND status = 'active' ORDER BY id]], ev.name)
  if #subs == 0 then return end
  local body = tp.json.encode { id = ev.id, event = ev.name, source = ev.source, emitted_at = ev.emitted_at,
                                data = ev.data }
  for _, sub in ipairs(subs) do
    local changes, id = tp.db.exec([[INSERT INTO webhooks_deliveries (subscription_id, event, event_id, body,
      state, attempts, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)
      ON CONFLICT (subscription_id, event_id) DO NOTHING]], sub.id, ev.name, ev.id, body, tp.now(), tp.now())
    if changes > 0 then send({ id = id, event = ev.name, body = body }, sub) end
  end
end

local subscribe = {}
for _, name in ipairs(EVENTS) do subscribe[name] = on_event end

local jobs = {}

---tp.http's reply for a delivery.
function jobs.delivered(job)
  local r = job.payload
  tp.db.exec([[UPDATE webhooks_deliveries SET state = ?, attempts = attempts + ?, status = ?, last_error = ?,
    updated_at = ? WHERE id = ?]], r.ok and "delivered" or "dead", r.attempts, r.status,
    not r.ok and (r.error or ("status " .. r.status)) or nil, tp.now(), r.context.delivery)
end

-- ---- admin routes

local function create_sub(req)
  local body = check.body(req.body)
  check.only(body, SUB_FIELDS.names)
  local s = SUB_FIELDS:defaults(body)
  check_sub(s)
  return 201, load_sub(save_sub(s))
end

local function update_sub(req)
  local s = load_sub(req.params.id)
  if not s then tp.fail(404, "subscription_not_found", "no webhook subscription " .. req.params.id) end
  local body = check.body(req.body)
  check.only(body, SUB_FIELDS.names)
  if body.event ~= nil and body.event ~= s.event then check.field_error("event", "cannot change; subscribe anew") end
  for _, field in ipairs(SUB_FIELDS.patchable) do
    if body[field] ~= nil then s[field] = body[field] end
  end
  check_sub(s)
  save_sub(s)
  return 200, load_sub(s.id)
end

local function delete_sub(req)
  local n = tp.db.exec("DELETE FROM webhooks_subscriptions WHERE id = ?", req.params.id)
  return 200, { removed = n > 0 }
end

local LIST_SUBS_SQL = "SELECT " .. SUB_COLUMNS .. [[, created_at, updated_at FROM webhooks_subscriptions
    WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2]]

local function list_subs(req)
  local limit, after = check.page(req.query, 50, 200)
  local rows = tp.db.query(LIST_SUBS_SQL, after, limit)
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

local function list_deliveries(req)
  local limit, after = check.page(req.query, 50, 200)
  local state = check.enum(req.query.state, "state", { pending = true, delivered = true, dead = true }, true)
  local rows = tp.db.query([[SELECT id, subscription_id, event, event_id, state, attempts, status, last_error,
    created_at, updated_at FROM webhooks_deliveries WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR id < ?2)
    ORDER BY id DESC LIMIT ?3]], state, after, limit)
  return 200, { items = tp.json.array(rows), next_after = #rows == limit and rows[#rows].id or nil }
end

local function retry_delivery(req)
  local d = tp.db.one("SELECT id, subscription_id, event, body, state FROM webhooks_deliveries WHERE id = ?",
    req.params.id)
  if not d then tp.fail(404, "delivery_not_found", "no webhook delivery " .. req.params.id) end
  if d.state ~= "dead" then tp.fail(409, "delivery_not_dead", "only a dead delivery is retried (it is " .. d.state .. ")") end
  local sub = tp.db.one([[SELECT id, destination, path FROM webhooks_subscriptions WHERE id = ?]], d.subscription_id)
  if not sub then tp.fail(409, "subscription_gone", "the delivery's subscription was removed") end
  send(d, sub)
  return 202, tp.db.one([[SELECT id, subscription_id, event, event_id, state, attempts, status, last_error,
    created_at, updated_at FROM webhooks_deliveries WHERE id = ?]], d.id)
end

local ROUTES = {
  { method = "POST", path = "/webhooks/subscriptions", auth = "admin", handler = create_sub, status = 201,
    summary = "Subscribe a destination to an event",
    errors = { [400] = { "invalid_field", "invalid_body", "unknown_field" } },
    body = SUB_FIELDS:body(), response = SUB },
  { method = "GET", path = "/webhooks/subscriptions", auth = "admin", handler = list_subs,
    summary = "Webhook subscriptions, oldest first",
    query = { limit = { type = "integer" }, after = { type = "integer" } },
    response = { type = "object", properties = { items = { type = "array", items = SUB },
                                                 next_after = { type = "integer" } } } },
  { method = "PATCH", path = "/webhooks/subscriptions/{id:int}", auth = "admin", handler = update_sub,
    summary = "Pause, resume or move a subscription (its event never changes)",
    errors = { [404] = { "subscription_not_found" } },
    body = SUB_FIELDS:body(true), response = SUB },
  { method = "DELETE", path = "/webhooks/subscriptions/{id:int}", auth = "admin", handler = delete_sub,
    summary = "Remove a subscription",
    response = { type = "object", properties = { removed = { type = "boolean" } } } },
  { method = "GET", path = "/webhooks/deliveries", auth = "admin", handler = list_deliveries,
    summary = "Deliveries, newest first; state=dead lists those given up",
    query = { state = { type = "string", description = "pending, delivered or dead" },
              limit = { type = "integer" }, after = { type = "integer" } },
    response = { type = "object", properties = { items = { type = "array", items = DELIVERY },
                                                 next_after = { type = "integer" } } } },
  { method = "POST", path = "/webhooks/deliveries/{id:int}/retry", auth = "admin", handler = retry_delivery,
    status = 202, summary = "Send a dead delivery again (same body, same Idempotency-Key)",
    errors = { [404] = { "delivery_not_found" }, [409] = { "delivery_not_dead", "subscription_gone" } },
    response = DELIVERY },
}

local exports = {}

---The declared bodies of the routes, for a walk against the served OpenAPI.
function exports.schemas() return schema.document(ROUTES) end

return {
  name = "webhooks",
  version = "1.0.0",
  description = "the brand's events POSTed to its own systems, signed, retried, dead letters retryable",
  migrations = {
    [[
    CREATE TABLE webhooks_subscriptions (
      id INTEGER PRIMARY KEY,
      event TEXT NOT NULL,
      destination TEXT NOT NULL,
      path TEXT NOT NULL,
      status TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE INDEX webhooks_subscriptions_event ON webhooks_subscriptions(event, status);
    CREATE TABLE webhooks_deliveries (
      id INTEGER PRIMARY KEY,
      subscription_id INTEGER NOT NULL,
      event TEXT NOT NULL,
      event_id INTEGER NOT NULL,
      body TEXT NOT NULL,
      state TEXT NOT NULL,
      attempts INTEGER NOT NULL,
      status INTEGER,
      last_error TEXT,
      call_id INTEGER,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      UNIQUE (subscription_id, event_id)
    );
    CREATE INDEX webhooks_deliveries_state ON webhooks_deliveries(state, id);
    ]],
  },
  subscribe = subscribe,
  jobs = jobs,
  routes = ROUTES,
  exports = exports,
}
