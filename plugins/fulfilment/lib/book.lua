-- The address book (personal data: names, phones, addresses) and the pickup
-- stores with their staff. No function here logs what it stores.

local check = require("tp.check")
local schema = require("tp.schema")

local book = {}

local MAX_ADDRESSES = 20

book.ADDRESS = schema.new {
  { "name", "text", max = 30, required = true, doc = "the recipient (收货人)" },
  { "phone", "text", max = 20, required = true, doc = "digits, optionally a leading + and - or spaces; 5-20 characters" },
  { "province", "text", max = 20, required = true },
  { "city", "text", max = 20, required = true },
  { "district", "text", max = 20 },
  { "detail", "text", max = 120, required = true, doc = "street, building, room" },
  { "is_default", "boolean", default = false, doc = "the address a delivery choice without address_id takes" },
}

book.STORE = schema.new {
  { "id", "ident", max = 32, required = true, fixed = true, doc = "the store's code (as referral's stores)" },
  { "name", "text", max = 50, required = true },
  { "address", "text", max = 200, required = true, doc = "where buyers pick up (a business address)" },
  { "hours", "text", max = 50, doc = "opening hours as people read them" },
  { "status", "enum", values = { "open", "closed" }, default = "open", doc = "a closed store takes no new pickups" },
}

local ADDRESS_COLUMNS = "id, name, phone, province, city, district, detail, is_default, created_at, updated_at"
local STORE_COLUMNS = "id, name, address, hours, status, created_at"

---@param row table
local function address_shape(row)
  row.is_default = row.is_default == 1
  return row
end

local function phone_ok(v)
  local digits = v:gsub("[%s%-]", "")
  return digits:match("^%+?%d+$") ~= nil and #digits >= 5
end

---Checks a whole address (a create, or a merged PATCH).
local function check_address(a)
  book.ADDRESS:check(a)
  if not phone_ok(a.phone) then check.field_error("phone", "must be a phone number: digits, + - and spaces") end
end

local ADDRESSES_SQL = "SELECT " .. ADDRESS_COLUMNS ..
    " FROM fulfilment_addresses WHERE user = ? ORDER BY is_default DESC, id DESC"

---@param user string
---@return table[]
function book.addresses(user)
  local rows = tp.db.query(ADDRESSES_SQL, user)
  for _, r in ipairs(rows) do address_shape(r) end
  return rows
end

local ADDRESS_SQL = "SELECT " .. ADDRESS_COLUMNS .. " FROM fulfilment_addresses WHERE id = ? AND user = ?"

---@param user string
---@param id integer
---@return table|nil
function book.address(user, id)
  local row = tp.db.one(ADDRESS_SQL, id, user)
  return row and address_shape(row)
end

local function make_default(user, id)
  tp.db.exec("UPDATE fulfilment_addresses SET is_default = (id = ?) WHERE user = ?", id, user)
end

---@param user string
---@param body table
---@return table address
function book.add_address(user, body)
  check.only(body, book.ADDRESS.names)
  local a = book.ADDRESS:defaults(body)
  check_address(a)
  local n = tp.db.one("SELECT count(*) AS n FROM fulfilment_addresses WHERE user = ?", user).n
  if n >= MAX_ADDRESSES then
    tp.fail(409, "address_book_full", ("an address book holds at most %d addresses"):format(MAX_ADDRESSES),
      { max = MAX_ADDRESSES })
  end
  local _, id = tp.db.exec([[INSERT INTO fulfilment_addresses (user, name, phone, province, city, district,
    detail, is_default, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)]],
    user, a.name, a.phone, a.province, a.city, a.district, a.detail, tp.now(), tp.now())
  if a.is_default or n == 0 then make_default(user, id) end
  return book.address(user, id)
end

---@param user string
---@param id integer
---@param body table
---@return table address
function book.update_address(user, id, body)
  check.only(body, book.ADDRESS.names)
  local a = book.address(user, id)
  if not a then tp.fail(404, "address_not_found", "no such address") end
  book.ADDRESS:check(body, true)
  for k, v in pairs(body) do a[k] = v ~= tp.json.null and v or nil end
  check_address(a)
  tp.db.exec([[UPDATE fulfilment_addresses SET name = ?, phone = ?, province = ?, city = ?, district = ?,
    detail = ?, updated_at = ? WHERE id = ? AND user = ?]],
    a.name, a.phone, a.province, a.city, a.district, a.detail, tp.now(), id, user)
  if body.is_default == true then make_default(user, id) end
  return book.address(user, id)
end

---@param user string
---@param id integer
function book.delete_address(user, id)
  if tp.db.exec("DELETE FROM fulfilment_addresses WHERE id = ? AND user = ?", id, user) == 0 then
    tp.fail(404, "address_not_found", "no such address")
  end
end

---The user's chosen address, or her default; a copy to keep on the order.
---@param user string
---@param id integer|nil
---@return table
function book.pick_address(user, id)
  local a
  if id then
    a = book.address(user, id)
  else
    local row = tp.db.one("SELECT id FROM fulfilment_addresses WHERE user = ? AND is_default = 1", user)
    a = row and book.address(user, row.id)
  end
  if not a then tp.fail(404, "address_not_found", "no such address in your address book") end
  return { name = a.name, phone = a.phone, province = a.province, city = a.city, district = a.district,
           detail = a.detail }
end

-- ---- stores and their staff

local STORE_SQL = "SELECT " .. STORE_COLUMNS .. " FROM fulfilment_stores WHERE id = ?"

---@param id string
---@return table|nil
function book.store(id)
  return tp.db.one(STORE_SQL, id)
end

local STORES_SQL = "SELECT " .. STORE_COLUMNS
  .. " FROM fulfilment_stores WHERE (?1 = 0 OR status = 'open') ORDER BY id"

---@param open_only boolean
---@return table[]
function book.stores(open_only)
  return tp.db.query(STORES_SQL, open_only and 1 or 0)
end

---@param body table
---@return table store
function book.create_store(body)
  check.only(body, book.STORE.names)
  local s = book.STORE:defaults(body)
  book.STORE:check(s)
  if book.store(s.id) then tp.fail(409, "store_exists", ("store %s exists"):format(s.id)) end
  tp.db.exec([[INSERT INTO fulfilment_stores (id, name, address, hours, status, created_at)
    VALUES (?, ?, ?, ?, ?, ?)]], s.id, s.name, s.address, s.hours, s.status, tp.now())
  return book.store(s.id)
end

---@param id string
---@param body table
---@return table store
function book.update_store(id, body)
  check.only(body, book.STORE.names)
  if body.id ~= nil then check.field_error("id", "a store's id never changes") end
  local s = book.store(id)
  if not s then tp.fail(404, "store_not_found", ("no store %s"):format(id)) end
  book.STORE:check(body, true)
  for k, v in pairs(body) do s[k] = v ~= tp.json.null and v or nil end
  book.STORE:check(s)
  tp.db.exec("UPDATE fulfilment_stores SET name = ?, address = ?, hours = ?, status = ? WHERE id = ?",
    s.name, s.address, s.hours, s.status, id)
  return book.store(id)
end

---@param store string
---@return string[]
function book.staff(store)
  local out = tp.json.array()
  for i, r in ipairs(tp.db.query("SELECT user FROM fulfilment_staff WHERE store = ? ORDER BY user", store)) do
    out[i] = r.user
  end
  return out
end

---@param store string
---@param user string
function book.add_staff(store, user)
  if not book.store(store) then tp.fail(404, "store_not_found", ("no store %s"):format(store)) end
  tp.db.exec([[INSERT INTO fulfilment_staff (store, user, created_at) VALUES (?, ?, ?)
    ON CONFLICT DO NOTHING]], store, user, tp.now())
end

---@param store string
---@param user string
function book.remove_staff(store, user)
  if tp.db.exec("DELETE FROM fulfilment_staff WHERE store = ? AND user = ?", store, user) == 0 then
    tp.fail(404, "staff_not_found", "no such staff member at this store")
  end
end

---@param store string
---@param user string
---@return boolean
function book.is_staff(store, user)
  return tp.db.one("SELECT 1 AS yes FROM fulfilment_staff WHERE store = ? AND user = ?", store, user) ~= nil
end

return book
