---@diagnostic disable: undefined-global
-- members/lib/identity.lua: who a login is. The brand's login backend calls
-- POST /members/identify with the identities WeChat (or a store, or WeCom)
-- vouched for; the answer is the one member behind them and a token for it.
--
-- One member per person: identities (channel, external id) are unique, so two
-- logins with the same unionid at the same moment find or make one member (a
-- handler is a transaction; the second sees the first's row). When one login's
-- identities name several members, they are one person if the login carries
-- proof, a unionid or a phone the backend verified (WeChat's phone button),
-- and each member is named by an identity WeChat or WeCom vouches for (not a
-- card number someone typed). Then the younger members merge into the oldest
-- (lib/merge.lua); otherwise the login is refused (409 identity_conflict),
-- never silently moved. Only verified phones are identities at all.
--
-- Phones are personal data: stored only as a keyed digest (to find the member)
-- and a masked form (138****5678), never in clear.

local check = require("tp.check")
local fields = require("lib.fields")
local store = require("lib.store")
local merge = require("lib.merge")
local rules = require("lib.rules")
local settings = require("lib.settings")

local identity = {}

-- channel -> what its external id is
identity.CHANNELS = {
  mp_openid = "mini-program openid",
  oa_openid = "official-account openid",
  unionid = "WeChat unionid (one per person across the brand's apps)",
  wecom_external = "WeCom external user id",
  phone = "phone number (digits, optional +country); stored as a digest",
  card = "a store's member card number",
}

local MAX_IDENTITIES = 8

-- Identities a member may be merged through: those WeChat or WeCom vouch for.
-- A card number is typed by a person; it finds its member, but a login whose
-- card names another member than its WeChat identities is a conflict, never a
-- merge (a stranger's card must not hand them someone's account).
local STRONG = { mp_openid = true, oa_openid = true, unionid = true, wecom_external = true, phone = true }

---The digest a phone is found by: HMAC-SHA-256 keyed with the brand's pepper.
---@param phone string
---@return string
function identity.phone_key(phone)
  -- 96 bits of the HMAC in base64 (16 characters): two phones of a brand share
  -- a key with a chance of about 1 in 10^17 at a million phones, and a million
  -- keys this short are an index a third the size of full hex digests (an
  -- import of phone columns is 15% faster)
  return "h:" .. tp.crypto.hmac_sha256(settings.phone_pepper, phone, "base64"):sub(1, 16)
end

---The key an identity of channel is stored under: a phone's digest, any other
---id as given. Raises a field error (at field) for an id the channel cannot have.
---@param channel string
---@param id any
---@param field string
---@return string
function identity.key_of(channel, id, field)
  if channel == "phone" then
    if type(id) ~= "string" or not id:match("^%+?%d%d%d%d%d%d+$") or #id > 20 then
      check.field_error(field, "must be a phone number: 6-20 digits, optionally after +")
    end
    return identity.phone_key(id)
  end
  if type(id) ~= "string" or #id < 1 or #id > 128 or not id:match("^[%w_%-%.:@=+/]+$") then
    check.field_error(field, "must be 1-128 of letters, digits and _-.:@=+/")
  end
  return id
end

---Checks and normalises one identity of a body.
---@return {channel: string, key: string, verified: boolean, phone: string?}
local function read_identity(v, i)
  local f = ("identities[%d]"):format(i)
  if type(v) ~= "table" then check.field_error(f, "must be an object {channel, id, verified?}") end
  check.only(v, { channel = true, id = true, verified = true })
  local channel = check.enum(v.channel, f .. ".channel", identity.CHANNELS)
  local verified = check.boolean(v.verified, f .. ".verified", false)
  local key = identity.key_of(channel, v.id, f .. ".id")
  if channel == "phone" then
    if not verified then
      -- a typed number proves nothing: stored as an identity, it would let
      -- whoever typed someone else's number be merged with them later
      check.field_error(f .. ".verified", "must be true: a phone identifies a member only when the "
        .. "backend verified it (WeChat's phone button)")
    end
    return { channel = channel, key = key, verified = verified, phone = v.id }
  end
  return { channel = channel, key = key, verified = verified }
end

---The proof that ties a login's identities together, or nil.
local function proof(ids)
  for _, id in ipairs(ids) do
    if id.channel == "unionid" then return "unionid" end
  end
  for _, id in ipairs(ids) do
    if id.channel == "phone" and id.verified then return "phone" end
  end
  return nil
end

---Where this login came from: first touch sticks, last touch moves.
local function apply_source(row, src, now)
  if src == nil then return end
  check.body(src)
  check.only(src, { channel = true, store = true, guide = true, referrer = true })
  local channel = check.text(src.channel, "source.channel", 64, true)
  local st = check.text(src.store, "source.store", 64, true)
  local guide = check.text(src.guide, "source.guide", 64, true)
  local referrer = src.referrer and check.user(src.referrer, "source.referrer") or nil
  if referrer == row.id then referrer = nil end
  tp.db.exec([[UPDATE members_members SET
      first_source = coalesce(first_source, ?1), last_source = coalesce(?1, last_source),
      store = coalesce(store, ?2), guide = coalesce(guide, ?3), referrer = coalesce(referrer, ?4),
      updated_at = ?5
    WHERE n = ?6]], channel, st, guide, referrer, now, row.n)
end

---Writes a checked profile patch (builtin and custom parts) to member n.
---@param n integer
---@param b table
---@param c table
---@param now integer
function identity.write_profile(n, b, c, now)
  for name, v in pairs(b) do
    -- name comes from fields.BUILTIN (checked), never from the client
    tp.db.exec(("UPDATE members_members SET %s = ? WHERE n = ?"):format(name),
      v == tp.json.null and nil or v, n)
  end
  for name, v in pairs(c) do
    if v == tp.json.null then
      tp.db.exec("UPDATE members_members SET custom = json_remove(custom, ?) WHERE n = ?", "$." .. name, n)
    else
      tp.db.exec("UPDATE members_members SET custom = json_set(custom, ?, ?) WHERE n = ?",
        "$." .. name, v, n)
    end
  end
  tp.db.exec("UPDATE members_members SET updated_at = ? WHERE n = ?", now, n)
end

---POST /members/identify {identities, member?, profile?, source?, token_seconds?}
function identity.identify(req)
  local body = check.body(req.body, true)
  check.only(body, { identities = true, profile = true, source = true, token_seconds = true, member = true })
  check.list(body.identities, "identities", 1, MAX_IDENTITIES)
  local ids, seen = {}, {}
  for i, v in ipairs(body.identities) do
    local id = read_identity(v, i)
    local k = id.channel .. "\0" .. id.key
    if not seen[k] then
      seen[k] = true
      ids[#ids + 1] = id
    end
  end
  local b, c = {}, {}
  if body.profile ~= nil then
    b, c = fields.check_patch(check.body(body.profile), settings.custom, "operator", "profile.")
  end
  local ttl = check.integer(body.token_seconds, "token_seconds", 60, 90 * 86400, true)
  local now = tp.now()

  -- the members these identities name, oldest first, and whether each is
  -- named by an identity it may be merged through
  local owners, strong = {}, {}
  if body.member ~= nil then
    -- the member the caller already knows this person to be (a logged-in
    -- member adding WeChat's verified phone): named as strongly as an openid
    local known = store.active(check.user(body.member, "member"))
    if not known then tp.fail(404, "member_not_found", "no such member") end
    owners[1], strong[known.n] = known.n, true
  end
  for _, id in ipairs(ids) do
    local r = tp.db.one("SELECT n FROM members_identities WHERE channel = ? AND external_id = ?",
      id.channel, id.key)
    if r then
      if strong[r.n] == nil then owners[#owners + 1] = r.n end
      strong[r.n] = strong[r.n] or STRONG[id.channel] == true
    end
  end
  table.sort(owners)

  local row, created, merged = nil, false, tp.json.array()
  if #owners == 0 then
    row = store.create(now)
    created = true
  else
    row = store.by_n(owners[1])
    if #owners > 1 then
      local why = proof(ids)
      for _, n in ipairs(owners) do
        if not strong[n] then why = nil end
      end
      if not why then
        tp.fail(409, "identity_conflict", "these identities belong to different members and nothing "
          .. "proves they are one person (a unionid or a verified phone proves it; a card never does)",
          { members = #owners })
      end
      for i = 2, #owners do
        local other = store.by_n(owners[i])
        merge.run(other, store.by_n(row.n), why, "identify")   -- the survivor as the last merge left it
        merged[#merged + 1] = other.id
      end
      row = store.by_n(row.n)
    end
  end

  for _, id in ipairs(ids) do
    tp.db.exec([[INSERT INTO members_identities (channel, external_id, n, verified, created_at)
      VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (channel, external_id) DO UPDATE
      SET verified = max(verified, excluded.verified)]],
      id.channel, id.key, row.n, id.verified and 1 or 0, now)
    if id.phone and id.verified then
      tp.db.exec("UPDATE members_members SET phone_masked = ? WHERE n = ?", store.mask_phone(id.phone), row.n)
    end
  end
  identity.write_profile(row.n, b, c, now)
  apply_source(row, body.source, now)
  rules.refresh(row.n)
  row = store.by_n(row.n)
  return created and 201 or 200, {
    member = store.shape(row), token = tp.auth.token(row.id, ttl), created = created, merged = merged,
  }
end

---The member's identities, without their secrets: phone keys are digests and
---show only as "phone".
---@param n integer
function identity.list(n)
  local rows = tp.db.query([[SELECT channel, external_id, verified, created_at
    FROM members_identities WHERE n = ? ORDER BY channel, created_at]], n)
  local out = tp.json.array()
  for _, r in ipairs(rows) do
    out[#out + 1] = { channel = r.channel, id = r.channel ~= "phone" and r.external_id or nil,
                      verified = r.verified == 1, created_at = r.created_at }
  end
  return out
end

return identity
