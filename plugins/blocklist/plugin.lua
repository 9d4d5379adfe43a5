---@diagnostic disable: undefined-global
-- blocklist (黑名单): members and devices a brand has caught scalping (黄牛)
-- may not buy, join, help or claim. It is a risk rule (sdk/tp/risk.lua): every
-- mechanic asks it before one of those, and a listed member or device gets 403
-- risk_blocked, counted in tidepool_refusals_total{code="risk_blocked"}.
-- Reading a catalog, a sale or one's own orders stays open to them.
--
-- Operators list and lift entries through the admin routes; an entry lives in
-- the brand's database (it moves, backs up and is erased with the brand) and
-- takes effect with the next request. When a listed member is merged into
-- another (one person, several accounts), the survivor is listed too, by that
-- merge: the person stays blocked under any of their tokens, which the host
-- resolves to the survivor; an unmerge lifts only what the merge added.

local check = require("tp.check")
local tpmerge = require("tp.merge")
local risk = require("tp.risk")
local schema = require("tp.schema")

-- What an operator says when listing one (PUT's body), declared once (tp.schema).
local ENTRY_FIELDS = schema.new {
  { "reason", "text", max = 200, doc = "why it is listed, for the operators" },
}

local KINDS = { members = "member", devices = "device" }

local ENTRY = { type = "object", properties = {
  kind = { type = "string", enum = { "member", "device" } },
  id = { type = "string" },
  reason = { type = "string" },
  created_at = { type = "integer", description = "UTC epoch seconds" },
  merge_id = { type = "integer", description = "listed because a listed member was merged into it" } } }

---The entry's kind and id from the path; 400 for a bad one.
local function target(req)
  local kind = KINDS[req.params.kind]
  if not kind then
    tp.fail(404, "route_not_found", "entries are under /blocklist/members/{id} or /blocklist/devices/{id}")
  end
  local id = req.params.id
  if kind == "member" and not check.is_user_id(id) then check.field_error("id", "must be a member id") end
  if kind == "device" and risk.device({ headers = { ["x-device-id"] = id } }) ~= id then
    check.field_error("id", "must be a device id: 1-64 printable ASCII without spaces")
  end
  return kind, id
end

local function load(kind, id)
  return tp.db.one([[SELECT kind, id, reason, created_at, merge_id FROM blocklist_entries
    WHERE kind = ? AND id = ?]], kind, id)
end

---PUT /blocklist/{kind}/{id} {reason?}: lists it (again: the reason changes).
local function put(req)
  local kind, id = target(req)
  local body = req.body == nil and {} or check.body(req.body)
  check.only(body, ENTRY_FIELDS.names)
  local entry = ENTRY_FIELDS:defaults(body)
  ENTRY_FIELDS:check(entry)
  local reason = entry.reason or ""
  tp.db.exec([[INSERT INTO blocklist_entries (kind, id, reason, created_at) VALUES (?, ?, ?, ?)
    ON CONFLICT (kind, id) DO UPDATE SET reason = excluded.reason, merge_id = NULL]],
    kind, id, reason, tp.now())
  tp.log("info", "blocklist entry added", { kind = kind })
  return 200, load(kind, id)
end

---DELETE /blocklist/{kind}/{id}: lifts it.
local function delete(req)
  local kind, id = target(req)
  local removed = tp.db.exec("DELETE FROM blocklist_entries WHERE kind = ? AND id = ?", kind, id)
  return 200, { removed = removed > 0 }
end

---GET /blocklist?kind=member|device&limit=&after=: newest first.
local function list(req)
  local limit, after = check.page(req.query, 50, 500)
  local kind = check.enum(req.query.kind, "kind", { member = true, device = true }, true)
  local rows = tp.db.query([[SELECT rowid AS seq, kind, id, reason, created_at, merge_id FROM blocklist_entries
    WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR rowid < ?2) ORDER BY rowid DESC LIMIT ?3]],
    kind, after, limit)
  local next_after = #rows == limit and rows[#rows].seq or nil
  for _, r in ipairs(rows) do r.seq = nil end
  return 200, { items = tp.json.array(rows), next_after = next_after }
end

local exports = {}

---The risk rule (sdk/tp/risk.lua): refuses a listed member or device.
---@param ask {action: string, user: string?, device: string?}
function exports.risk_check(ask)
  local hit = tp.db.one([[SELECT kind FROM blocklist_entries WHERE (kind = 'member' AND id = ?1)
    OR (kind = 'device' AND id = ?2) LIMIT 1]], ask.user or "", ask.device or "")
  if hit then return { code = "blocked", message = "this account may not take part in campaigns" } end
  return nil
end

---A listed `from` merged into `into`: into is listed by this merge.
function exports.member_merge(from, into, merge_id)
  if not tpmerge.begin("blocklist_merges", from, into, merge_id) then return { entries = 0 } end
  local n = tp.db.exec([[INSERT INTO blocklist_entries (kind, id, reason, created_at, merge_id)
    SELECT 'member', ?2, reason, ?3, ?4 FROM blocklist_entries WHERE kind = 'member' AND id = ?1
    ON CONFLICT (kind, id) DO NOTHING]], from, into, tp.now(), merge_id)
  return { entries = n }
end

---The undo: what that merge listed is lifted (an entry an operator made stays).
function exports.member_unmerge(from, into, merge_id)
  if not tpmerge.begin_undo("blocklist_merges", from, into, merge_id) then return { entries = 0 } end
  return { entries = (tp.db.exec("DELETE FROM blocklist_entries WHERE kind = 'member' AND id = ? AND merge_id = ?",
    into, merge_id)) }
end

local ROUTES = {
  { method = "GET", path = "/blocklist", auth = "admin", handler = list,
    summary = "Blocked members and devices, newest first",
    query = { kind = { type = "string", description = "member or device" },
              limit = { type = "integer" }, after = { type = "integer" } },
    response = { type = "object", properties = { items = { type = "array", items = ENTRY },
                                                  next_after = { type = "integer" } } } },
  { method = "PUT", path = "/blocklist/{kind}/{id}", auth = "admin", handler = put,
    summary = "Block a member (kind members) or a device (kind devices, the X-Device-Id the mini-program sends)",
    body = ENTRY_FIELDS:body(),
    response = ENTRY },
  { method = "DELETE", path = "/blocklist/{kind}/{id}", auth = "admin", handler = delete,
    summary = "Lift a block",
    response = { type = "object", properties = { removed = { type = "boolean" } } } },
}

---The declared bodies of the routes, for a walk against the served OpenAPI.
function exports.schemas() return schema.document(ROUTES) end

return {
  name = "blocklist",
  version = "1.0.0",
  description = "members and devices refused before a buy, join, help or claim (黑名单), as a risk rule",
  migrations = {
    [[
    CREATE TABLE blocklist_entries (
      kind TEXT NOT NULL CHECK (kind IN ('member', 'device')),
      id TEXT NOT NULL,
      reason TEXT NOT NULL DEFAULT '',
      created_at INTEGER NOT NULL,
      merge_id INTEGER,             -- listed by this merge of a listed member (member_merge)
      PRIMARY KEY (kind, id)
    );
    CREATE TABLE blocklist_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    ]],
  },
  routes = ROUTES,
  exports = exports,
}
