-- Distributors (分销员) and stores. A distributor is a promoter (推广员) or a
-- shopping guide (导购); a guide always belongs to a store the operator
-- manages. Each distributor has a referral code that share links carry.
--
-- Who may become one is the config's join_mode:
--   everyone     a user joins as a promoter at once;
--   application  a user applies, the operator approves or rejects;
--   designated   only the operator makes distributors.
-- Guides are always designated by the operator (they are store staff).
-- Joining never costs anything (an invariant: see lib/settings.lua).

local check = require("tp.check")
local schema = require("tp.schema")

local distributors = {}

-- A distributor's and a store's fields as operators write them, declared once:
-- their bounds, the known fields of a create and of a PATCH, the columns and
-- the OpenAPI bodies come from here (tp.schema). A role's rules (a guide needs
-- an open store, a promoter has none) are check_role's.
distributors.FIELDS = schema.new {
  { "user", "custom", required = true, patch = false,
    schema = { type = "string", pattern = "^[A-Za-z0-9_:@-]{1,64}$", description = "a user id" } },
  { "kind", "enum", values = { "promoter", "guide" }, default = "promoter" },
  { "store", "ident", max = 64, doc = "a guide's store (required for a guide); a promoter has none" },
  { "status", "enum", values = { "active", "disabled" }, create = false,
    doc = "disable a distributor or re-enable one" },
}
local D = distributors.FIELDS

distributors.STORE_FIELDS = schema.new {
  { "id", "ident", max = 64, required = true, patch = false },
  { "name", "text", max = 100, required = true },
  { "status", "enum", values = { "open", "closed" }, create = false, doc = "a new store is open" },
}
local STORE = distributors.STORE_FIELDS

local COLUMNS = D:columns(nil, { "code", "created_at", "decided_at" })
local CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  -- no 0/O, 1/I/L: read aloud, typed by hand
local CODE_LENGTH = 8

---@class Distributor
---@field user string
---@field kind "promoter"|"guide"
---@field store string|nil   a guide's store
---@field code string        the referral code share links carry
---@field status "pending"|"active"|"rejected"|"disabled"

local GET_SQL = "SELECT " .. COLUMNS .. " FROM referral_distributors WHERE user = ?"

---@param user string
---@return Distributor|nil
function distributors.get(user)
  return tp.db.one(GET_SQL, user)
end

local ACTIVE_SQL = "SELECT " .. COLUMNS .. " FROM referral_distributors WHERE user = ? AND status = 'active'"

---The distributor if she may earn now (status active), else nil.
---@param user string|nil
---@return Distributor|nil
function distributors.active(user)
  if user == nil then return nil end
  return tp.db.one(ACTIVE_SQL, user)
end

local BY_CODE_SQL = "SELECT " .. COLUMNS .. " FROM referral_distributors WHERE code = ?"

---The distributor a referral code names: her own code, or the code of a
---record a member merge set aside (it names the merged person now).
---@param code string
---@return Distributor|nil
function distributors.by_code(code)
  local d = tp.db.one(BY_CODE_SQL, code)
  if d then return d end
  local merged = tp.db.one("SELECT user FROM referral_merged_codes WHERE code = ?", code)
  return merged and distributors.get(merged.user) or nil
end

local function new_code()
  local chars = {}
  for i = 1, CODE_LENGTH do
    local k = tp.random(#CODE_ALPHABET)
    chars[i] = CODE_ALPHABET:sub(k, k)
  end
  return table.concat(chars)
end

---Writes a new distributor row with a fresh unique code.
local function insert(user, kind, store, status)
  local now = tp.now()
  for _ = 1, 10 do
    -- a code is never drawn twice, nor one that a merged record still answers to
    local row = tp.db.one([[INSERT INTO referral_distributors (user, kind, store, code, status,
        created_at, decided_at)
      SELECT ?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?5 = 'pending' THEN NULL ELSE ?6 END
      WHERE NOT EXISTS (SELECT 1 FROM referral_merged_codes WHERE code = ?4)
      ON CONFLICT (code) DO NOTHING RETURNING user]], user, kind, store, new_code(), status, now)
    if row then return distributors.get(user) end
  end
  error("could not draw an unused referral code in 10 tries")
end

---POST /referral/join: the caller becomes a promoter (everyone), applies
---(application), or is told only the operator can make her one (designated).
---@param user string
---@param join_mode string
---@return integer status, Distributor
function distributors.join(user, join_mode)
  local d = distributors.get(user)
  if d and (d.status == "active" or d.status == "pending") then return 200, d end
  if d and d.status == "disabled" then
    tp.fail(409, "distributor_disabled", "the operator has disabled this distributor")
  end
  if join_mode == "designated" then
    tp.fail(403, "join_by_designation_only", "only the operator can make distributors for this brand")
  end
  local status = join_mode == "application" and "pending" or "active"
  if d then  -- a rejected applicant applies again
    tp.db.exec([[UPDATE referral_distributors SET status = ?, decided_at = NULL
      WHERE user = ? AND status = 'rejected']], status, user)
    return status == "pending" and 202 or 201, distributors.get(user)
  end
  return status == "pending" and 202 or 201, insert(user, "promoter", nil, status)
end

local function require_store(id)
  local s = tp.db.one("SELECT id, status FROM referral_stores WHERE id = ?", id)
  if not s then tp.fail(404, "store_not_found", ("no store %s"):format(id), { store = id }) end
  if s.status ~= "open" then tp.fail(409, "store_closed", ("store %s is closed"):format(id)) end
end

---Checks kind and store together: a guide needs a store (an open one when she
---is placed there now: placing), a promoter has none.
local function check_role(kind, store, placing)
  D:field("kind", kind)
  if kind == "guide" then
    if store == nil then check.field_error("store", "is required for a guide") end
    D:field("store", store)
    if placing then require_store(store) end
  elseif store ~= nil then
    check.field_error("store", "only a guide belongs to a store")
  end
end

---POST /admin/referral/distributors {user, kind, store?}: the operator makes
---a distributor (any join_mode), or changes one's role; approves a pending one.
---@return integer status, Distributor
function distributors.designate(body)
  check.only(body, D.create_names)
  if not check.is_user_id(body.user) then check.field_error("user", "must be a user id") end
  local kind = body.kind or D.by_name.kind.default
  check_role(kind, body.store, true)
  local d = distributors.get(body.user)
  if not d then return 201, insert(body.user, kind, body.store, "active") end
  tp.db.exec([[UPDATE referral_distributors SET kind = ?, store = ?, status = 'active',
    decided_at = ? WHERE user = ?]], kind, body.store, tp.now(), body.user)
  return 200, distributors.get(body.user)
end

---Approves or rejects a pending application.
---@param user string
---@param to "active"|"rejected"
---@return Distributor
function distributors.decide(user, to)
  local changed = tp.db.exec([[UPDATE referral_distributors SET status = ?, decided_at = ?
    WHERE user = ? AND status = 'pending']], to, tp.now(), user)
  if changed == 0 then
    local d = distributors.get(user)
    if not d then tp.fail(404, "distributor_not_found", "no such distributor") end
    tp.fail(409, "not_pending", ("this distributor is %s, not pending"):format(d.status), { status = d.status })
  end
  return distributors.get(user)
end

---PATCH /admin/referral/distributors/{user} {status?, kind?, store?}
---@return Distributor
function distributors.update(user, body)
  check.only(body, D.patch_names)
  local d = distributors.get(user)
  if not d then tp.fail(404, "distributor_not_found", "no such distributor") end
  local status = D:field("status", body.status, true) or d.status
  local kind = body.kind or d.kind
  local store = body.store  -- a guide keeps her store unless told another; a promoter has none
  if store == nil and kind == "guide" then store = d.store end
  check_role(kind, store, body.store ~= nil or body.kind ~= nil)
  tp.db.exec([[UPDATE referral_distributors SET status = ?, kind = ?, store = ?, decided_at = ?
    WHERE user = ?]], status, kind, store, tp.now(), user)
  return distributors.get(user)
end

local LIST_SQL = "SELECT " .. COLUMNS .. [[ FROM referral_distributors
    WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR store = ?3)
    ORDER BY created_at, user LIMIT 500]]

---@return Distributor[]
function distributors.list(query)
  local status = check.enum(query.status, "status",
    { pending = true, active = true, rejected = true, disabled = true }, true)
  local kind = check.enum(query.kind, "kind", { promoter = true, guide = true }, true)
  local store = check.ident(query.store, "store", 64, true)
  return tp.db.query(LIST_SQL, status, kind, store)
end

-- ---- stores

local STORE_COLUMNS = STORE:columns(nil, "created_at")

---POST /admin/referral/stores {id, name}
function distributors.create_store(body)
  check.only(body, STORE.create_names)
  local id = STORE:field("id", body.id)
  local name = STORE:field("name", body.name)
  local row = tp.db.one([[INSERT INTO referral_stores (id, name, status, created_at)
    VALUES (?, ?, 'open', ?) ON CONFLICT (id) DO NOTHING RETURNING id]], id, name, tp.now())
  if not row then tp.fail(409, "store_exists", ("store %s already exists"):format(id)) end
  return distributors.store(id)
end

---PATCH /admin/referral/stores/{id} {name?, status?}
function distributors.update_store(id, body)
  check.only(body, STORE.patch_names)
  local s = distributors.store(id)
  if not s then tp.fail(404, "store_not_found", ("no store %s"):format(id)) end
  local name = STORE:field("name", body.name, true) or s.name
  local status = STORE:field("status", body.status, true) or s.status
  tp.db.exec("UPDATE referral_stores SET name = ?, status = ? WHERE id = ?", name, status, id)
  return distributors.store(id)
end

local STORE_SQL = "SELECT " .. STORE_COLUMNS .. " FROM referral_stores WHERE id = ?"

function distributors.store(id)
  local s = tp.db.one(STORE_SQL, id)
  if s then
    s.guides = tp.db.one([[SELECT count(*) AS n FROM referral_distributors
      WHERE store = ? AND kind = 'guide' AND status = 'active']], id).n
  end
  return s
end

local STORES_SQL = "SELECT " .. STORE_COLUMNS .. " FROM referral_stores ORDER BY id LIMIT 1000"

function distributors.stores()
  return tp.db.query(STORES_SQL)
end

return distributors
