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

-- How each column of an import is read, worked out once per chunk.
local function plan_of(cols)
  local plan = {}
  for i, name in ipairs(cols) do
    local kind = column_kind(name)
    plan[i] = { name = name, kind = kind,
                field = kind == "builtin" and fields.BUILTIN[name] or settings.custom[name] }
  end
  return plan
end

-- one line's values, checked: nil, column, message when it is refused
local function read_line(plan, record)
  -- ids: channel and key, flat ({ch1, key1, ch2, key2, ...}); phone: the number, if any
  local ids, b, c, tags, joined, phone = {}, {}, {}, nil, nil, nil
  for i = 1, #plan do
    local v = record[i]
    if v ~= nil and v ~= "" then
      local col = plan[i]
      local kind, name = col.kind, col.name
      if kind == "identity" then
        if name == "phone" then
          if #v < 6 or #v > 20 or v:find("[^%d+]") or v:find("+", 2, true) then
            return nil, name, "is not a phone number (6-20 digits, optionally after +)"
          end
          ids[#ids + 1], ids[#ids + 2] = name, identity.phone_key(v)
          phone = v
        else
          if #v > 128 or v:find("[^%w_%-%.:@=+/]") then
            return nil, name, "must be 1-128 of letters, digits and _-.:@=+/"
          end
          ids[#ids + 1], ids[#ids + 2] = name, v
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
        local f, value = col.field, v
        if f.type == "integer" then value = math.tointeger(tonumber(v))
        elseif f.type == "boolean" then value = (v == "true" or v == "1") and true
          or ((v == "false" or v == "0") and false or v) end
        local problem = value == nil and "must be an integer" or fields.problem(f, value)
        if problem then return nil, name, name .. " " .. problem end
        if kind == "builtin" then b[name] = value else c[name] = value end
      end
    end
  end
  if #ids == 0 then return nil, "identities", "the line has no identity" end
  return { ids = ids, b = b, c = c, tags = tags, joined = joined, phone = phone }
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

-- A chunk is applied set-based: Lua parses and checks its lines and decides,
-- line by line in order, which member each belongs to (an existing one, one an
-- earlier line of the chunk made, or a new one); then a few statements per
-- BATCH rows write the whole chunk (multi-row VALUES). The per-line answer is
-- the one lines applied one after another would give; a million lines cost
-- SQLite's work, not millions of round trips through Lua.

local WRITABLE = {}   -- the builtin columns an import may set, in a fixed order
for name, f in pairs(fields.BUILTIN) do
  if f.writable then WRITABLE[#WRITABLE + 1] = name end
end
table.sort(WRITABLE)

local BATCH = 250   -- rows per statement: its SQL is the same for every full batch (cached)

---Runs sql_of(k) (a statement for k rows of width values each) over count
---rows laid out flat (row i's values at (i - 1) * width + 1 ...; nil allowed),
---BATCH rows a statement; returns the rows of the statements' answers. Flat
---rows cost no table each, which a million lines notice.
local function batched(flat, count, width, sql_of)
  local out = {}
  for first = 1, count, BATCH do
    local last = math.min(count, first + BATCH - 1)
    local got = tp.db.query(sql_of(last - first + 1), table.unpack(flat, (first - 1) * width + 1, last * width))
    for _, r in ipairs(got) do out[#out + 1] = r end
  end
  return out
end

local sql_cache = {}
---"(?, ?), (?, ?)" for k rows of width values, with a name for the cache.
local function values(k, width, name)
  local key = name .. k
  if not sql_cache[key] then
    local row = "(" .. ("?, "):rep(width - 1) .. "?)"
    sql_cache[key] = (row .. ", "):rep(k - 1) .. row
  end
  return sql_cache[key]
end

-- the profile UPDATE: each builtin column and phone_masked from the row's
-- value when it has one, the custom fields patched in
local PROFILE_WIDTH = #WRITABLE + 4   -- n, builtins..., phone_masked, custom JSON, now
local PROFILE_SETS
do
  local sets = {}
  for i, name in ipairs(WRITABLE) do   -- names from fields.BUILTIN, never the client's text
    sets[#sets + 1] = ("%s = coalesce(v.column%d, m.%s)"):format(name, i + 1, name)
  end
  sets[#sets + 1] = ("phone_masked = coalesce(v.column%d, m.phone_masked)"):format(#WRITABLE + 2)
  sets[#sets + 1] = ("custom = json_patch(m.custom, v.column%d)"):format(#WRITABLE + 3)
  sets[#sets + 1] = ("updated_at = v.column%d"):format(#WRITABLE + 4)
  PROFILE_SETS = table.concat(sets, ", ")
end

---Decides every checked line's member and applies the chunk. lines[i] is a
---checked line or nil (refused already). Returns outcome[i]: "created",
---"updated", or nil, and for refused lines col[i], msg[i].
local function apply_chunk(lines, now)
  -- the members the chunk's identities name already: known[channel][key] = n
  local known, key_flat, nkeys = {}, {}, 0
  for _, line in pairs(lines) do
    local ids = line.ids
    for j = 1, #ids, 2 do
      local ch, key = ids[j], ids[j + 1]
      local by = known[ch]
      if not by then by = {}; known[ch] = by end
      if by[key] == nil then
        by[key] = false
        key_flat[2 * nkeys + 1], key_flat[2 * nkeys + 2] = ch, key
        nkeys = nkeys + 1
      end
    end
  end
  local rows = batched(key_flat, nkeys, 2, function(k)
    return "WITH members_keys (ch, k) AS (VALUES " .. values(k, 2, "keys") .. [[)
      SELECT i.channel, i.external_id, i.n FROM members_keys
      JOIN members_identities AS i ON i.channel = members_keys.ch AND i.external_id = members_keys.k]]
  end)
  for _, r in ipairs(rows) do known[r.channel][r.external_id] = r.n end

  -- each line's member, in order: a number, or a placeholder -k for the k-th new one
  local outcome, cols, msgs, owner_of = {}, {}, {}, {}
  local new_count, joined = 0, {}
  local tag_ids, tag_owners = {}, {}
  local max_line = 0
  for i in pairs(lines) do if i > max_line then max_line = i end end
  for i = 1, max_line do
    local line = lines[i]
    if line then
      local owner, conflict
      local ids = line.ids
      for j = 1, #ids, 2 do
        local o = known[ids[j]][ids[j + 1]]
        if o then
          if owner and owner ~= o then conflict = ids[j] end
          owner = owner or o
        end
      end
      local tids = {}
      if not conflict then
        for t, name in ipairs(line.tags or {}) do
          tids[t] = tag_id(name, now)
          if not tids[t] then
            cols[i], msgs[i] = "tags", ("'%s' is a rule tag: the pool keeps it by its rule"):format(name)
            break
          end
        end
      end
      if conflict then
        cols[i], msgs[i] = conflict, "the line's identities belong to different members (merge them first)"
      elseif not msgs[i] then
        if owner then
          outcome[i] = "updated"
        else
          new_count = new_count + 1
          owner = -new_count
          joined[new_count] = line.joined or now
          outcome[i] = "created"
        end
        owner_of[i] = owner
        for j = 1, #ids, 2 do known[ids[j]][ids[j + 1]] = owner end
        for _, t in ipairs(tids) do
          tag_ids[#tag_ids + 1], tag_owners[#tag_ids + 1] = t, owner
        end
      end
    end
  end

  -- the new members: numbers after the highest, ids "m<n>" (a legacy id in the way: one at a time)
  local number = {}
  if new_count > 0 then
    local base = tp.db.one("SELECT coalesce(max(n), 0) AS n FROM members_members").n
    local flat = {}
    for k = 1, new_count do
      local at = 4 * (k - 1)
      flat[at + 1], flat[at + 2], flat[at + 3], flat[at + 4] = base + k, "m" .. (base + k), joined[k], now
    end
    local made = batched(flat, new_count, 4, function(k)
      return "INSERT INTO members_members (n, id, joined_at, updated_at) VALUES " .. values(k, 4, "new")
        .. " ON CONFLICT (id) DO NOTHING RETURNING n"
    end)
    local got = {}
    for _, r in ipairs(made) do got[r.n] = true end
    for k = 1, new_count do
      number[-k] = got[base + k] and base + k or store.create(joined[k]).n
    end
  end
  local function n_of(o) return o > 0 and o or number[o] end

  -- profiles: per member, later lines over earlier ones
  local profile, order = {}, {}
  local ident, nident = {}, 0
  for i = 1, max_line do
    local line, o = lines[i], owner_of[i]
    if o then
      local n = n_of(o)
      local p = profile[n]
      if not p then   -- the line's own tables: most members have one line
        p = { b = line.b, c = line.c }
        profile[n] = p
        order[#order + 1] = n
      else            -- a later line of the same member: over a copy, later values win
        if not p.own then
          local b, c = {}, {}
          for k, v in pairs(p.b) do b[k] = v end
          for k, v in pairs(p.c) do c[k] = v end
          p.b, p.c, p.own = b, c, true
        end
        for k, v in pairs(line.b) do p.b[k] = v end
        for k, v in pairs(line.c) do p.c[k] = v end
      end
      if line.phone then p.phone = store.mask_phone(line.phone) end
      local ids = line.ids
      for j = 1, #ids, 2 do
        local at = 5 * nident
        ident[at + 1], ident[at + 2], ident[at + 3], ident[at + 4], ident[at + 5] =
          ids[j], ids[j + 1], n, ids[j] == "phone" and 1 or 0, now
        nident = nident + 1
      end
    end
  end
  local prof, nprof = {}, 0
  for _, n in ipairs(order) do
    local p = profile[n]
    if next(p.b) or next(p.c) or p.phone then
      local at = PROFILE_WIDTH * nprof
      prof[at + 1] = n
      for i, name in ipairs(WRITABLE) do prof[at + 1 + i] = p.b[name] end
      prof[at + #WRITABLE + 2] = p.phone
      prof[at + #WRITABLE + 3] = next(p.c) and tp.json.encode(p.c) or "{}"
      prof[at + #WRITABLE + 4] = now
      nprof = nprof + 1
    end
  end
  batched(prof, nprof, PROFILE_WIDTH, function(k)
    return "UPDATE members_members AS m SET " .. PROFILE_SETS .. " FROM (VALUES "
      .. values(k, PROFILE_WIDTH, "profile") .. ") AS v WHERE m.n = v.column1"
  end)
  -- in key order (SQLite sorts the batch): consecutive inserts find their
  -- pages where the last one left off (digests and openids are random)
  batched(ident, nident, 5, function(k)
    return "INSERT INTO members_identities (channel, external_id, n, verified, created_at) SELECT * FROM (VALUES "
      .. values(k, 5, "ids") .. ") ORDER BY 1, 2 ON CONFLICT (channel, external_id) DO NOTHING"
  end)
  local tags = {}
  for i, t in ipairs(tag_ids) do
    tags[3 * i - 2], tags[3 * i - 1], tags[3 * i] = t, n_of(tag_owners[i]), now
  end
  batched(tags, #tag_ids, 3, function(k)
    local row = "(?, ?, 'import', ?)"
    return "INSERT INTO members_member_tags (tag_id, n, source, assigned_at) VALUES "
      .. (row .. ", "):rep(k - 1) .. row .. " ON CONFLICT (tag_id, n) DO NOTHING"
  end)
  return outcome, cols, msgs
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
  local lines, cols, msgs = {}, {}, {}
  local plan = plan_of(imp.columns)
  for i, record in ipairs(records) do
    lines[i], cols[i], msgs[i] = read_line(plan, record)
  end
  local outcome, acols, amsgs = apply_chunk(lines, now)
  for i = 1, #records do
    local line_no = first + i - 1
    if outcome[i] then
      counts[outcome[i]] = counts[outcome[i]] + 1
    else
      local col, msg = cols[i] or acols[i], msgs[i] or amsgs[i]
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
