---@diagnostic disable: undefined-global
-- members/lib/profile.lua: reading and writing members (admin and the member
-- itself), manual merges, and erasure on request (PIPL).

local check = require("tp.check")
local fields = require("lib.fields")
local store = require("lib.store")
local identity = require("lib.identity")
local merge = require("lib.merge")
local rules = require("lib.rules")
local settings = require("lib.settings")

local profile = {}

local function full(row)
  local m = store.shape(row)
  m.tags = store.tags(row.n)
  m.identities = identity.list(row.n)
  return m
end

---GET /members/{id}: the member (a merged id shows its survivor)
---The ?store= a request is scoped to (a store manager's key or session always
---names its own: the host admits it only so), or nil.
local function store_scope(req)
  return check.text(req.query and req.query.store, "store", 64, true)
end

---A member of the scope: another store's is a 404, as if there were none.
local function in_scope(req, row)
  local scope = store_scope(req)
  if scope and row.store ~= scope then tp.fail(404, "member_not_found", "no such member") end
  return row
end

function profile.get(req)
  return 200, full(in_scope(req, store.need(req.params.id)))
end

---PATCH /members/{id}: profile fields (built-in writable ones and custom ones)
function profile.update(req)
  local row = store.need(req.params.id)
  local b, c = fields.check_patch(check.body(req.body, true), settings.custom, "operator")
  identity.write_profile(row.n, b, c, tp.now())
  rules.refresh(row.n)
  return 200, full(store.by_n(row.n))
end

---GET /members/lookup?channel=&id=: the member an identity names (a phone by
---its digest: the number itself is not kept), for an operator with a phone or
---an openid in hand
function profile.lookup(req)
  local q = req.query or {}
  local channel = check.enum(q.channel, "channel", identity.CHANNELS)
  local key = identity.key_of(channel, q.id, "id")
  local r = tp.db.one("SELECT n FROM members_identities WHERE channel = ? AND external_id = ?", channel, key)
  local row = r and store.by_n(r.n)
  if not row or row.state ~= "active" then tp.fail(404, "member_not_found", "no member has this " .. channel) end
  return 200, full(in_scope(req, row))
end

local LIST_SQL = "SELECT " .. store.COLUMNS .. [[ FROM members_members
    WHERE state = 'active' AND n > ?1 AND (?3 IS NULL OR store = ?3) ORDER BY n LIMIT ?2]]

---GET /members?limit=&after=&store=: every active member (of the store that first
---brought them, with store), in number order
function profile.list(req)
  local limit, after = check.page(req.query, 100, 1000)
  local rows = tp.db.query(LIST_SQL, after or 0, limit, store_scope(req))
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = store.shape(r) end
  return 200, { items = items, next_after = #rows == limit and rows[#rows].n or nil }
end

---GET /v1/.../members/me: the caller's own profile (no tags: those are the brand's)
function profile.me(req)
  local row = store.ensure(req.user)
  if not row then tp.fail(404, "member_not_found", "no such member") end
  return 200, store.shape(row)
end

---PATCH /v1/.../members/me: the fields the member may edit
function profile.update_me(req)
  local row = store.ensure(req.user)
  if not row then tp.fail(404, "member_not_found", "no such member") end
  local b, c = fields.check_patch(check.body(req.body, true), settings.custom, "member")
  identity.write_profile(row.n, b, c, tp.now())
  rules.refresh(row.n)
  return 200, store.shape(store.by_n(row.n))
end

---POST /members/merges {from, into, note?}: an operator's merge (undoable)
function profile.merge(req)
  local body = check.body(req.body, true)
  check.only(body, { from = true, into = true, note = true })
  local from = store.need(check.user(body.from, "from"))
  local into = store.need(check.user(body.into, "into"))
  local note = check.text(body.note, "note", 200, true)
  if from.n == into.n then tp.fail(400, "invalid_merge", "from and into are the same member") end
  return 201, merge.run(from, into, "manual", note or "operator")
end

---GET /members/merges?member=: merges that involved a member (or all), newest first
function profile.merges(req)
  local limit = check.page(req.query, 100, 1000)
  local rows
  if req.query.member then
    rows = tp.db.query([[SELECT id FROM members_merges WHERE from_id = ?1 OR into_id = ?1
      ORDER BY id DESC LIMIT ?2]], req.query.member, limit)
  else
    rows = tp.db.query("SELECT id FROM members_merges ORDER BY id DESC LIMIT ?", limit)
  end
  local items = tp.json.array()
  for i, r in ipairs(rows) do items[i] = merge.load(r.id) end
  return 200, { items = items }
end

---POST /members/merges/{id}/undo {note?}
function profile.undo(req)
  local body = req.body == nil and {} or check.body(req.body, true)
  check.only(body, { note = true })
  return 200, merge.undo(req.params.id, check.text(body.note, "note", 200, true) or "operator")
end

---POST /members/{id}/erase: a deletion request. Personal data (profile,
---phone, custom fields) and identities go; tags go; the member's order facts
---stay, under its id, which now names nobody (tokens are refused). Other
---plugins keep their money records under that id, which is pseudonymous.
function profile.erase(req)
  local row = store.need(req.params.id)
  local now = tp.now()
  tp.db.exec("DELETE FROM members_identities WHERE n = ?", row.n)
  tp.db.exec("DELETE FROM members_member_tags WHERE n = ?", row.n)
  tp.db.exec([[UPDATE members_members SET state = 'erased', nickname = NULL, gender = NULL,
    birthday = NULL, city = NULL, phone_masked = NULL, referrer = NULL, custom = '{}',
    updated_at = ? WHERE n = ?]], now, row.n)
  -- merged members' profiles were folded into the survivor; their rows hold
  -- the values they had, so they are cleared too
  tp.db.exec([[UPDATE members_members SET state = 'erased', nickname = NULL, gender = NULL,
    birthday = NULL, city = NULL, phone_masked = NULL, referrer = NULL, custom = '{}',
    updated_at = ?1 WHERE merged_into = ?2]], now, row.n)
  tp.db.exec("DELETE FROM members_merge_rows WHERE merge_id IN (SELECT id FROM members_merges WHERE into_n = ?)", row.n)
  tp.auth.erase(row.id)
  tp.events.emit("member.erased", { member = row.id })
  return 200, { erased = row.id }
end

return profile
