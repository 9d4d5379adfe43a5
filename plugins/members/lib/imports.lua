---@diagnostic disable: undefined-global
-- members/lib/imports.lua: a brand moving its members in (from Youzan, Weimob
-- or a spreadsheet) and a segment going out, as CSV.
--
-- Import is streamed: POST /members/imports {columns} opens an import that
-- names the file's columns; the client then sends the lines in chunks of at
-- most MAX_LINES (POST .../chunks {seq, first_line, csv}), each applied in its
-- own transaction, so a million lines never hold the loop for long and a crash
-- loses at most the chunk in flight. A chunk sent again (same seq) is answered
-- from its record and applied once. Re-importing a file is idempotent: each
-- line's identities find the member it made the first time. A bad line is
-- reported with its line number and column and skipped; the others go in.
-- tools/members_csv.py does the chunking for a file.
--
-- Columns: identity channels (mp_openid, oa_openid, unionid, wecom_external,
-- phone, card; at least one), writable profile fields (nickname, gender,
-- birthday, city, store, guide, referrer), the brand's custom fields,
-- joined_at (epoch seconds) and tags (names separated by |; missing manual tags
-- are created). An empty cell leaves the field as it is.

local check = require("tp.check")
local csv = require("lib.csv")
local fields = require("lib.fields")
local store = require("lib.store")
local identity = require("lib.identity")
local settings = require("lib.settings")
local rules = require("lib.rules")
local segment = require("lib.segment")

local imports = {}

local MAX_LINES = 5000  -- 500 fit the default budget (tools/members_csv.py sends 500)
local MAX_ERRORS = 10000      -- stored per import; the counts stay exact beyond it
local CHUNK_ERRORS = 100      -- returned per chunk

local function column_kind(name)
  if identity.CHANNELS[name] then return "identity" end
  if name == "tags" or name == "joined_at" then return name end
  local f = fields.BUILTIN[name]
  if f and f.writable then return "builtin" end
  if settings.custom[name] then return "custom" end
  return nil
end

local function known_columns()
  local set = { tags = true, joined_at = true }
  for k in pairs(identity.CHANNELS) do set[k] = true end
  for k, f in pairs(fields.BUILTIN) do if f.writable then set[k] = true end end
  for k in pairs(settings.custom) do set[k] = true end
  return set
end

---POST /members/imports {columns, note?}
function imports.create(req)
  local body = check.body(req.body, true)
  check.only(body, { columns = true, note = true })
  check.list(body.columns, "columns", 1, 100)
  local seen, has_identity = {}, false
  for i, c in ipairs(body.columns) do
    local f = ("columns[%d]"):format(i)
    if type(c) ~= "string" then check.field_error(f, "must be a column name") end
    local kind = column_kind(c)
    if not kind then
      local guess = check.suggest(c, known_columns())
      check.field_error(f, ("'%s' is not a column members can import%s"):format(c,
        guess and ("; did you mean '%s'?"):format(guess) or ""))
    end
    if seen[c] then check.field_error(f, ("'%s' appears twice"):format(c)) end
    seen[c] = true
    has_identity = has_identity or kind == "identity"
  end
  if not has_identity then
    check.field_error("columns", "must include an identity column (mp_openid, oa_openid, unionid, "
      .. "wecom_external, phone or card)")
  end
  local note = check.text(body.note, "note", 200, true)
  local now = tp.now()
  local _, id = tp.db.exec([[INSERT INTO members_imports (columns, note, created_at, updated_at)
    VALUES (?, ?, ?, ?)]], tp.json.encode(body.columns), note, now, now)
  return 201, imports.shape(id)
end

---@param id integer
function imports.shape(id)
  local r = tp.db.one("SELECT * FROM members_imports WHERE id = ?", id)
  if not r then tp.fail(404, "import_not_found", "no such import") end
  return { id = r.id, columns = tp.json.decode(r.columns), note = r.note, chunks = r.chunks,
           lines = r.lines, created = r.created, updated = r.updated, failed = r.failed,
           created_at = r.created_at, updated_at = r.updated_at }
end

---GET /members/imports/{id}?after_line=: totals and up to 1000 errors
function imports.get(req)
  local out = imports.shape(req.params.id)
  local after = math.tointeger(tonumber(req.query.after_line or "0"))
  if not after then tp.fail(400, "invalid_query", "after_line must be a line number") end
  out.errors = tp.db.query([[SELECT line, "column", message FROM members_import_errors
    WHERE import_id = ? AND line > ? ORDER BY line, "column" LIMIT 1000]], out.id, after)
  return 200, out
end

-- one line's values, checked: nil, column, message when it is refused
local function read_line(cols, record)
  local ids, b, c, tags, joined = {}, {}, {}, nil, nil
  for i, name in ipairs(cols) do
    local v = record[i]
    if v ~= nil and v ~= "" then
      local kind = column_kind(name)
      if kind == "identity" then
        if name == "phone" then
          if not v:match("^%+?%d%d%d%d%d%d+$") or #v > 20 then
            return nil, name, "is not a phone number (6-20 digits, optionally after +)"
          end
          ids[#ids + 1] = { channel = name, key = identity.phone_key(v), phone = v }
        else
          if #v > 128 or not v:match("^[%w_%-%.:@=+/]+$") then
            return nil, name, "must be 1-128 of letters, digits and _-.:@=+/"
          end
          ids[#ids + 1] = { channel = name, key = v }
        end
      elseif kind == "tags" then
        tags = {}
        for t in v:gmatch("[^|]+") do
          if #t > 96 then return nil, name, "a tag name is at most 32 characters" end
          tags[#tags + 1] = t
        end
      elseif kind == "joined_at" then
        local at = math.tointeger(tonumber(v))
        if not at or at < 0 or at > check.MAX_EPOCH then return nil, name, "must be epoch seconds" end
        joined = at
      else
        local f = kind == "builtin" and fields.BUILTIN[name] or settings.custom[name]
        local value = v
        if f.type == "integer" then value = math.tointeger(tonumber(v))
        elseif f.type == "boolean" then value = (v == "true" or v == "1") and true
          or ((v == "false" or v == "0") and false or v) end
        local ok, err = pcall(fields.check_value, f, value, name)
        if not ok then return nil, name, type(err) == "table" and err.message or tostring(err) end
        if kind == "builtin" then b[name] = err else c[name] = err end
      end
    end
  end
  if #ids == 0 then return nil, "identities", "the line has no identity" end
  return { ids = ids, b = b, c = c, tags = tags, joined = joined }
end

local tag_cache = {}

local function tag_id(name, now)
  local id = tag_cache[name]
  if id then return id end
  local t = tp.db.one("SELECT id, kind FROM members_tags WHERE name = ?", name)
  if t and t.kind == "rule" then return nil end
  if not t then
    local _, new = tp.db.exec([[INSERT INTO members_tags (name, kind, created_at, updated_at)
      VALUES (?, 'manual', ?, ?)]], name, now, now)
    t = { id = new }
  end
  tag_cache[name] = t.id
  return t.id
end

-- The profile columns of a line as SQL: "a = :a, b = :b" (builtin fields are
-- column names from fields.BUILTIN, never the client's text) and the custom
-- fields as one json_set.
local function profile_sql(line, params)
  local names = {}
  for name, v in pairs(line.b) do
    names[#names + 1] = name
    params[name] = v
  end
  table.sort(names)
  local sets = {}
  for i, name in ipairs(names) do sets[i] = ("%s = :%s"):format(name, name) end
  local keys = {}
  for k in pairs(line.c) do keys[#keys + 1] = k end
  table.sort(keys)
  if #keys > 0 then
    local args = {}
    for i, k in ipairs(keys) do
      params["c" .. i] = line.c[k]
      args[#args + 1] = ("'$.%s', :c%d"):format(k, i)   -- k is a declared custom field's name
    end
    sets[#sets + 1] = "custom = json_set(custom, " .. table.concat(args, ", ") .. ")"
  end
  return sets
end

-- applies one checked line in as few statements as it can (a million lines
-- is a million of these), refusing it before the first write if it must:
-- "created", "updated", or nil, column, message
local function apply(line, now)
  local params = { now = now, joined = line.joined or now }
  local pairs_sql = {}
  for i, id in ipairs(line.ids) do
    params["ch" .. i], params["ex" .. i] = id.channel, id.key
    pairs_sql[i] = ("(channel = :ch%d AND external_id = :ex%d)"):format(i, i)
  end
  -- OR of key lookups: each term uses the primary key (a row-value IN over
  -- VALUES would scan the table)
  local owners = tp.db.query("SELECT DISTINCT n FROM members_identities WHERE "
    .. table.concat(pairs_sql, " OR "), params)
  if #owners > 1 then
    return nil, line.ids[1].channel, "the line's identities belong to different members (merge them first)"
  end
  local tv = {}
  for i, name in ipairs(line.tags or {}) do
    local tid = tag_id(name, now)
    if not tid then return nil, "tags", ("'%s' is a rule tag: the pool keeps it by its rule"):format(name) end
    params["t" .. i] = tid
    tv[i] = (":t%d, :owner, 'import', :now"):format(i)
  end
  for _, id in ipairs(line.ids) do
    if id.phone then params.phone_masked = store.mask_phone(id.phone) end
  end
  local sets = profile_sql(line, params)
  if params.phone_masked then sets[#sets + 1] = "phone_masked = :phone_masked" end
  local owner, outcome = owners[1] and owners[1].n, "updated"
  if not owner then
    outcome = "created"
    local r = tp.db.one([[INSERT INTO members_members (n, id, joined_at, updated_at)
      SELECT k, 'm' || k, :joined, :now FROM (SELECT coalesce((SELECT max(n) FROM members_members), 0) + 1 AS k)
      WHERE true ON CONFLICT (id) DO NOTHING RETURNING n]], params)
    owner = r and r.n or store.create(line.joined or now).n
  end
  params.owner = owner
  if #sets > 0 then
    tp.db.exec("UPDATE members_members SET " .. table.concat(sets, ", ") .. ", updated_at = :now WHERE n = :owner",
      params)
  end
  local values = {}
  for i, id in ipairs(line.ids) do
    params["v" .. i] = id.phone and 1 or 0
    values[i] = (":ch%d, :ex%d, :owner, :v%d, :now"):format(i, i, i)
  end
  tp.db.exec("INSERT INTO members_identities (channel, external_id, n, verified, created_at) VALUES ("
    .. table.concat(values, "), (") .. ") ON CONFLICT (channel, external_id) DO NOTHING", params)
  if #tv > 0 then
    tp.db.exec("INSERT INTO members_member_tags (tag_id, n, source, assigned_at) VALUES ("
      .. table.concat(tv, "), (") .. ") ON CONFLICT (tag_id, n) DO NOTHING", params)
  end
  return outcome
end

---POST /members/imports/{id}/chunks {seq, first_line, csv}
function imports.chunk(req)
  local imp = imports.shape(req.params.id)
  local body = check.body(req.body, true)
  check.only(body, { seq = true, first_line = true, csv = true })
  local seq = check.integer(body.seq, "seq", 1, 1000000)
  local first = check.integer(body.first_line, "first_line", 1, 1000000000)
  if type(body.csv) ~= "string" then check.field_error("csv", "must be the chunk's lines as CSV text") end
  local done = tp.db.one([[SELECT lines, created, updated, failed FROM members_import_chunks
    WHERE import_id = ? AND seq = ?]], imp.id, seq)
  if done then
    done.seq, done.replayed = seq, true
    return 200, done
  end
  local records, err, at = csv.parse(body.csv)
  if not records then
    tp.fail(400, "invalid_csv", ("line %d: %s"):format(first + at - 1, err), { line = first + at - 1 })
  end
  if #records > MAX_LINES then
    check.field_error("csv", ("holds %d lines; send at most %d per chunk"):format(#records, MAX_LINES))
  end
  local now = tp.now()
  local stored = tp.db.one("SELECT count(*) AS n FROM members_import_errors WHERE import_id = ?", imp.id).n
  local counts = { created = 0, updated = 0, failed = 0 }
  local errors = tp.json.array()
  tag_cache = {}
  for i, record in ipairs(records) do
    local line_no = first + i - 1
    local line, col, msg = read_line(imp.columns, record)
    local outcome
    if line then outcome, col, msg = apply(line, now) end
    if outcome then
      counts[outcome] = counts[outcome] + 1
    else
      counts.failed = counts.failed + 1
      if #errors < CHUNK_ERRORS then errors[#errors + 1] = { line = line_no, column = col, message = msg } end
      if stored < MAX_ERRORS then
        stored = stored + 1
        tp.db.exec([[INSERT INTO members_import_errors (import_id, line, "column", message)
          VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING]], imp.id, line_no, col, msg)
      end
    end
  end
  tp.db.exec([[INSERT INTO members_import_chunks (import_id, seq, first_line, lines, created, updated, failed)
    VALUES (?, ?, ?, ?, ?, ?, ?)]], imp.id, seq, first, #records, counts.created, counts.updated, counts.failed)
  tp.db.exec([[UPDATE members_imports SET chunks = chunks + 1, lines = lines + ?, created = created + ?,
    updated = updated + ?, failed = failed + ?, updated_at = ? WHERE id = ?]],
    #records, counts.created, counts.updated, counts.failed, now, imp.id)
  if tp.db.one("SELECT 1 AS x FROM members_tags WHERE kind = 'rule' LIMIT 1") then rules.start_sweep(nil) end
  return 200, { seq = seq, lines = #records, created = counts.created, updated = counts.updated,
                failed = counts.failed, errors = errors }
end

-- ---- export

local EXPORT_COLUMNS = { "id", "nickname", "gender", "birthday", "city", "phone", "store", "guide",
  "referrer", "first_source", "last_source", "joined_at", "paid_orders", "paid_fen", "refunded_fen",
  "last_paid_at", "tags" }

---GET /members/export?segment=&after=&limit=: a page of CSV (phones masked).
---The first page (no after) starts with the header line.
function imports.export(req)
  local limit, after = check.page(req.query, 1000, 5000)
  local custom = {}
  for name in pairs(settings.custom) do custom[#custom + 1] = name end
  table.sort(custom)
  local cols = {}
  for i, c in ipairs(EXPORT_COLUMNS) do cols[i] = c end
  for _, c in ipairs(custom) do cols[#cols + 1] = c end
  local rows
  if req.query.segment then
    rows = segment.page((segment.load(req.query.segment)), after or 0, limit)
  else
    rows = tp.db.query([[SELECT n, id FROM members_members WHERE state = 'active' AND n > ?
      ORDER BY n LIMIT ?]], after or 0, limit)
  end
  local out = {}
  if not after then out[1] = csv.line(cols, #cols) end
  for _, r in ipairs(rows) do
    local m = store.by_n(r.n)
    local tagnames = {}
    for i, t in ipairs(store.tags(r.n)) do tagnames[i] = t.name end
    local custom_values = tp.json.decode(m.custom) or {}
    local values = { m.id, m.nickname, m.gender, m.birthday, m.city, m.phone_masked, m.store, m.guide,
      m.referrer, m.first_source, m.last_source, m.joined_at, m.paid_orders, m.paid_fen, m.refunded_fen,
      m.last_paid_at, table.concat(tagnames, "|") }
    for _, name in ipairs(custom) do values[#values + 1] = custom_values[name] end
    out[#out + 1] = csv.line(values, #cols)
  end
  return 200, { columns = cols, csv = table.concat(out), rows = #rows,
                next_after = #rows == limit and rows[#rows].n or nil }
end

return imports
