---@diagnostic disable: undefined-global
-- members/lib/store.lua: member rows and their shape for the outside.
--
-- A member has an internal number n (what tags and facts are keyed by: small
-- and dense) and an id, the string tokens carry and every other plugin stores
-- as its user (req.user). identify makes ids "m<n>"; a user who only ever
-- arrived with a token minted elsewhere (a legacy or test user) gets a row
-- under that id the first time a fact or a tag is recorded for it.

local store = {}

store.COLUMNS = [[n, id, state, merged_into, nickname, gender, birthday, city, phone_masked,
  store, guide, referrer, first_source, last_source, custom, joined_at, updated_at,
  paid_orders, paid_fen, refunded_fen, first_paid_at, last_paid_at]]

---@class Member
---@field id string
---@field state "active"|"merged"|"erased"
---@field nickname string?
---@field gender string?
---@field birthday string?
---@field city string?
---@field phone string? masked: 138****5678
---@field store string?
---@field guide string?
---@field referrer string?
---@field first_source string?
---@field last_source string?
---@field fields table custom fields
---@field joined_at integer
---@field facts {paid_orders: integer, paid_fen: integer, refunded_fen: integer, first_paid_at: integer?, last_paid_at: integer?}

---@param row table
---@return Member
function store.shape(row)
  return {
    id = row.id, state = row.state, nickname = row.nickname, gender = row.gender,
    birthday = row.birthday, city = row.city, phone = row.phone_masked, store = row.store,
    guide = row.guide, referrer = row.referrer, first_source = row.first_source,
    last_source = row.last_source, fields = tp.json.object(tp.json.decode(row.custom) or {}),
    joined_at = row.joined_at, updated_at = row.updated_at,
    facts = { paid_orders = row.paid_orders, paid_fen = row.paid_fen, refunded_fen = row.refunded_fen,
              first_paid_at = row.first_paid_at, last_paid_at = row.last_paid_at },
  }
end

local BY_ID_SQL = "SELECT " .. store.COLUMNS .. " FROM members_members WHERE id = ?"

---@param id string
---@return table|nil row
function store.by_id(id)
  return tp.db.one(BY_ID_SQL, id)
end

local BY_N_SQL = "SELECT " .. store.COLUMNS .. " FROM members_members WHERE n = ?"

---@param n integer
---@return table|nil row
function store.by_n(n)
  return tp.db.one(BY_N_SQL, n)
end

---The active member id names now (a merged id leads to its survivor), or nil.
---@param id string
---@return table|nil row
function store.active(id)
  local resolved = tp.auth.resolve(id)
  if not resolved then return nil end
  local row = store.by_id(resolved)
  if row and row.state == "active" then return row end
  return nil
end

---The member row of a user id, created (state active, no identities) if this
---is the first time the pool hears of it. Erased ids get nothing (nil).
---@param id string
---@return table|nil row
function store.ensure(id)
  local resolved = tp.auth.resolve(id)
  if not resolved then return nil end
  local row = store.by_id(resolved)
  if row then return row.state == "active" and row or nil end
  local now = tp.now()
  tp.db.exec([[INSERT INTO members_members (id, joined_at, updated_at) VALUES (?, ?, ?)]],
    resolved, now, now)
  return store.by_id(resolved)
end

---A new member with id "m<n>" (n its number); collisions with a user id that
---arrived by token are skipped over.
---@param now integer
---@return table row
function store.create(now)
  -- one statement in the common case (an import makes a million of them)
  local r = tp.db.one([[INSERT INTO members_members (n, id, joined_at, updated_at)
    SELECT k, 'm' || k, ?1, ?1 FROM (SELECT coalesce((SELECT max(n) FROM members_members), 0) + 1 AS k)
    WHERE true ON CONFLICT (id) DO NOTHING RETURNING n]], now)
  if r then return store.by_n(r.n) end
  -- "m<n>" is a user id that arrived by token: skip over it
  local _, n = tp.db.exec([[INSERT INTO members_members (id, joined_at, updated_at)
    VALUES ('new:' || hex(randomblob(8)), ?, ?)]], now, now)
  local id = "m" .. n
  while tp.db.one("SELECT 1 AS x FROM members_members WHERE id = ?", id) do id = id .. "x" end
  tp.db.exec("UPDATE members_members SET id = ? WHERE n = ?", id, n)
  return store.by_n(n)
end

---404 member_not_found unless id names an active member (after merges).
---@param id string
---@return table row
function store.need(id)
  local row = store.active(id)
  if not row then tp.fail(404, "member_not_found", "no such member") end
  return row
end

---The member's unexpired tags, by name.
---@param n integer
---@return table[] {name, group, source, assigned_at, expires_at}
function store.tags(n)
  return tp.db.query([[SELECT t.name, g.name AS "group", mt.source, mt.assigned_at, mt.expires_at
    FROM members_member_tags mt JOIN members_tags t ON t.id = mt.tag_id
    LEFT JOIN members_tag_groups g ON g.id = t.group_id
    WHERE mt.n = ? AND (mt.expires_at IS NULL OR mt.expires_at > ?) ORDER BY t.name]], n, tp.now())
end

---The masked form of a phone number: 138****5678 (the first 3 and last 4 digits).
---@param phone string
---@return string
local STARS = ("*"):rep(20)   -- phones are at most 20 characters

function store.mask_phone(phone)
  local n = #phone
  if n <= 7 then return STARS:sub(1, n) end
  return phone:sub(1, 3) .. STARS:sub(1, n - 7) .. phone:sub(-4)
end

return store
