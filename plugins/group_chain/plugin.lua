---@diagnostic disable: undefined-global
-- group_chain (群接龙): a community group leader (团长) publishes a post of
-- catalog items at chain prices with a cut-off time; members append entries
-- to it, each numbered in order (1. alice 2 boxes, 2. bob 1 box, ...), each
-- with its own order through the orders plugin; at the cut-off a job closes
-- the post and announces the summary (group_chain.closed).
-- Posts: lib/posts.lua; entries, limits and the orders contract:
-- lib/entries.lua; the summary and the public page: lib/summary.lua; two
-- member ids found to be one person (member_merge, member_unmerge): lib/merge.lua.

---@class GroupChainConfig
---@field anyone_may_organise boolean? every user may publish posts (default false: only granted organisers)
---@field max_open_days integer? how far away a cut-off may be (default 30)
---@field unpaid_timeout_seconds integer? unpaid timeout of entries' orders, 60-86400 (default: the orders plugin's)

local check = require("tp.check")
local entries = require("lib.entries")
local merge = require("lib.merge")
local posts = require("lib.posts")
local summary = require("lib.summary")
local schema = require("tp.schema")

-- ---- operators: who may organise

---POST /group_chain/organisers {user} (admin): grants the organiser role.
local function grant_organiser(req)
  local body = check.body(req.body, true)
  check.only(body, { user = true })
  local user = check.user(body.user, "user")
  local changed = tp.db.exec([[INSERT INTO group_chain_organisers (user, granted_at) VALUES (?, ?)
    ON CONFLICT (user) DO NOTHING]], user, tp.now())
  return changed == 1 and 201 or 200, { user = user, organiser = true }
end

---DELETE /group_chain/organisers/{user} (admin): revokes it; open posts stay open.
local function revoke_organiser(req)
  local user = check.user(req.params.user, "user")
  local changed = tp.db.exec("DELETE FROM group_chain_organisers WHERE user = ?", user)
  if changed == 0 then tp.fail(404, "organiser_not_found", "this user is not an organiser") end
  return 200, { user = user, organiser = false }
end

local function list_organisers()
  return 200, { items = tp.json.array(tp.db.query(
    "SELECT user, granted_at FROM group_chain_organisers ORDER BY user")) }
end

-- ---- organisers: posts and summaries

---POST /group_chain/posts {title, items = [{sku, chain_price_fen, per_member_limit}], cutoff_at, pickup?}
local function create_post(req)
  if not posts.may_organise(req.user) then
    tp.fail(403, "not_organiser", "only an organiser may publish a group chain")
  end
  local id = posts.create(req.user, posts.check_new(req.body))
  return 201, summary.build(posts.get(id))
end

local function wants_csv(query)
  local v = query.csv
  return v == "1" or v == "true" or v == ""
end

---GET /group_chain/posts/{id}/summary: the post's organiser only.
local function organiser_summary(req)
  local post = posts.get(req.params.id)
  if post.organiser ~= req.user then
    tp.fail(403, "not_post_organiser", "only the organiser of this post may read its summary")
  end
  return 200, summary.build(post, wants_csv(req.query))
end

local function admin_summary(req)
  return 200, summary.build(posts.get(req.params.id), wants_csv(req.query))
end

-- ---- everyone: the post's page

local function public_post(req)
  return 200, summary.public(posts.get(req.params.id))
end

-- ---- members: entries

---POST /group_chain/posts/{id}/entries {lines = [{sku, qty}], note?}
local function append_entry(req)
  local post = posts.get(req.params.id)
  local lines, note = entries.check_body(req.body, post)
  return 201, entries.append(post, req.user, lines, note)
end

---PUT /group_chain/posts/{id}/entries/{seq} {lines, note?}: replaces an unpaid entry.
local function edit_entry(req)
  local post = posts.get(req.params.id)
  local entry = entries.own(post.id, req.params.seq, req.user)
  local lines, note = entries.check_body(req.body, post)
  return 200, entries.edit(post, entry, lines, note)
end

local function cancel_entry(req)
  local post = posts.get(req.params.id)
  return 200, entries.cancel(post, entries.own(post.id, req.params.seq, req.user))
end

local function my_entries(req)
  local post = posts.get(req.params.id)
  local mine = tp.json.array()
  for _, e in ipairs(entries.of_post(post.id)) do
    if e.user == req.user then mine[#mine + 1] = e end
  end
  return 200, { items = mine }
end

-- ---- the close job

---At the cut-off: closes the post once and announces its summary. A retried
---or repeated run finds it closed and does nothing.
local function close(job)
  local id = job.payload.post_id
  if not posts.close(id) then return end
  local post = posts.get(id)
  tp.events.emit("group_chain.closed", { post_id = id, organiser = post.organiser,
                                         summary = summary.build(post) })
end

-- ---- schemas

local LINES_BODY = { type = "object", required = { "lines" }, properties = {
  lines = { type = "array", minItems = 1, items = { type = "object", required = { "sku", "qty" },
    properties = { sku = { type = "string" }, qty = { type = "integer", minimum = 1 } } } },
  note = { type = "string", maxLength = 100, description = "for the organiser, e.g. building and room" } } }

local ENTRY = { type = "object", description = "an entry; money in integer fen", properties = {
  seq = { type = "integer", description = "its number in the chain, from 1, never reused" },
  user = { type = "string" }, status = { type = "string", enum = { "unpaid", "paid", "cancelled" } },
  note = { type = "string" }, order_id = { type = "integer" }, total_fen = { type = "integer" },
  lines = { type = "array", items = { type = "object", properties = {
    sku = { type = "string" }, qty = { type = "integer" }, unit_price_fen = { type = "integer" },
    amount_fen = { type = "integer" } } } } } }

local SUMMARY = { type = "object", description = "the organiser's summary; money in integer fen",
  properties = {
    id = { type = "integer" }, title = { type = "string" }, pickup = { type = "string" },
    status = { type = "string", enum = { "open", "closed" } }, cutoff_at = { type = "integer" },
    seconds_to_cutoff = { type = "integer" },
    items = { type = "array", items = { type = "object", properties = {
      sku = { type = "string" }, entries = { type = "integer" }, units = { type = "integer" },
      paid_units = { type = "integer" }, unpaid_units = { type = "integer" },
      amount_fen = { type = "integer" }, paid_amount_fen = { type = "integer" } } } },
    totals = { type = "object" }, entries = { type = "array", items = ENTRY },
    csv = { type = "string", description = "with ?csv=1: one line per entry line" } } }

local ORGANISER = { type = "object", properties = { user = { type = "string" }, organiser = { type = "boolean" } } }
local PUBLIC_POST = { type = "object", description = "a post's public page; money in integer fen; members masked",
  properties = {
    id = { type = "integer" }, title = { type = "string" }, pickup = { type = "string" },
    status = { type = "string", enum = { "open", "closed" } }, cutoff_at = { type = "integer" },
    closed_at = { type = "integer" }, seconds_to_cutoff = { type = "integer" },
    organiser = { type = "string", description = "masked" },
    items = { type = "array", items = { type = "object", properties = {
      sku = { type = "string" }, title = { type = "string" }, list_price_fen = { type = "integer" },
      chain_price_fen = { type = "integer" }, per_member_limit = { type = "integer" },
      units = { type = "integer" } } } },
    chain = { type = "array", items = { type = "object", properties = {
      seq = { type = "integer" }, member = { type = "string", description = "masked" },
      lines = { type = "array", items = { type = "object", properties = {
        sku = { type = "string" }, qty = { type = "integer" } } } } } } } } }

local POST_PATH = "/group_chain/posts/{id:int}"
local ENTRY_PATH = POST_PATH .. "/entries/{seq:int}"
local CSV_QUERY = { csv = { type = "boolean", description = "add the CSV rendering (field csv)" } }

---@type TpManifest
local ROUTES = {
  { method = "POST", path = "/group_chain/organisers", auth = "admin", handler = grant_organiser,
    summary = "Grant a user the organiser (团长) role", status = 201,
    description = "201 when granted now, 200 when the user already had it.",
    body = { type = "object", required = { "user" }, properties = { user = { type = "string" } } },
    response = ORGANISER },
  { method = "DELETE", path = "/group_chain/organisers/{user}", auth = "admin", handler = revoke_organiser,
    summary = "Revoke a user's organiser role (their open posts stay open)", response = ORGANISER },
  { method = "GET", path = "/group_chain/organisers", auth = "admin", handler = list_organisers,
    summary = "Users with the organiser role",
    response = { type = "object", properties = { items = { type = "array", items = { type = "object",
      properties = { user = { type = "string" }, granted_at = { type = "integer" } } } } } } },
  { method = "POST", path = "/group_chain/posts", handler = create_post, status = 201,
    summary = "Publish a group chain post (organisers only)",
    body = posts.FIELDS:body(),
    response = SUMMARY },
  { method = "GET", path = POST_PATH, auth = "none", handler = public_post,
    summary = "A post's public page: items, the chain so far (masked members), seconds to cut-off",
    response = PUBLIC_POST },
  { method = "GET", path = POST_PATH .. "/summary", handler = organiser_summary, query = CSV_QUERY,
    summary = "The organiser's summary: totals per item, every entry with its status", response = SUMMARY },
  { method = "GET", path = POST_PATH .. "/summary", auth = "admin", handler = admin_summary,
    query = CSV_QUERY, summary = "Any post's summary", response = SUMMARY },
  { method = "POST", path = POST_PATH .. "/entries", handler = append_entry, status = 201,
    summary = "Append my entry to the chain: the next number and an order at the chain prices",
    body = LINES_BODY, response = ENTRY },
  { method = "GET", path = POST_PATH .. "/entries/mine", handler = my_entries,
    summary = "My entries of this post, cancelled ones included",
    response = { type = "object", properties = { items = { type = "array", items = ENTRY } } } },
  { method = "PUT", path = ENTRY_PATH, handler = edit_entry,
    summary = "Replace my unpaid entry before the cut-off (same number, new order)",
    body = LINES_BODY, response = ENTRY },
  { method = "POST", path = ENTRY_PATH .. "/cancel", handler = cancel_entry,
    summary = "Cancel my unpaid entry before the cut-off (its order is cancelled)", response = ENTRY },
}

return {
  name = "group_chain",
  version = "0.3.0",
  description = "group chain ordering (群接龙): numbered member entries on an organiser's post until a cut-off",

  -- applied once each, in order; append new ones, never edit a released one
  migrations = {
    [[
    CREATE TABLE group_chain_organisers (
      user TEXT PRIMARY KEY,
      granted_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE group_chain_posts (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      organiser TEXT NOT NULL,
      title TEXT NOT NULL,
      pickup TEXT,
      cutoff_at INTEGER NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
      last_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
      created_at INTEGER NOT NULL,
      closed_at INTEGER
    );
    CREATE TABLE group_chain_items (
      post_id INTEGER NOT NULL,
      item_no INTEGER NOT NULL,
      sku TEXT NOT NULL,
      title TEXT NOT NULL,
      list_price_fen INTEGER NOT NULL,
      chain_price_fen INTEGER NOT NULL CHECK (chain_price_fen >= 1 AND chain_price_fen <= list_price_fen),
      per_member_limit INTEGER NOT NULL CHECK (per_member_limit >= 1),
      PRIMARY KEY (post_id, sku),
      UNIQUE (post_id, item_no)
    ) WITHOUT ROWID;
    CREATE TABLE group_chain_entries (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      post_id INTEGER NOT NULL,
      seq INTEGER NOT NULL CHECK (seq >= 1),
      user TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('unpaid', 'paid', 'cancelled')),
      note TEXT,
      order_id INTEGER NOT NULL UNIQUE,
      total_fen INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      paid_at INTEGER,
      cancelled_at INTEGER,
      cancel_reason TEXT,
      UNIQUE (post_id, seq)
    );
    CREATE INDEX group_chain_entries_user ON group_chain_entries(post_id, user);
    CREATE TABLE group_chain_entry_lines (
      entry_id INTEGER NOT NULL,
      post_id INTEGER NOT NULL,
      sku TEXT NOT NULL,
      qty INTEGER NOT NULL CHECK (qty >= 1),
      unit_price_fen INTEGER NOT NULL CHECK (unit_price_fen >= 1),
      PRIMARY KEY (entry_id, sku)
    ) WITHOUT ROWID;
    CREATE INDEX group_chain_entry_lines_post ON group_chain_entry_lines(post_id, sku);
    CREATE TABLE group_chain_units (
      post_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      sku TEXT NOT NULL,
      units INTEGER NOT NULL CHECK (units >= 0),
      PRIMARY KEY (post_id, user, sku)
    ) WITHOUT ROWID;
    ]],
    -- merging members (lib/merge.lua): rows are found by user, and each merge
    -- is recorded with what it moved, for the undo
    [[
    CREATE INDEX group_chain_posts_organiser ON group_chain_posts(organiser);
    CREATE INDEX group_chain_entries_member ON group_chain_entries(user);
    CREATE INDEX group_chain_units_user ON group_chain_units(user);
    CREATE TABLE group_chain_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE TABLE group_chain_merge_moves (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('organiser', 'post', 'entry', 'units')),
      row_id INTEGER NOT NULL,           -- post: its id; entry: its id; units: post_id; organiser: 0
      sku TEXT NOT NULL DEFAULT '',      -- units: the item
      amount INTEGER NOT NULL DEFAULT 0, -- units: from's units summed into into's; organiser: from's granted_at
      created INTEGER NOT NULL DEFAULT 0 CHECK (created IN (0, 1)),  -- into had no such row before
      PRIMARY KEY (merge_id, kind, row_id, sku)
    ) WITHOUT ROWID;
    ]],
    -- 0.3.0: group_chain_entries's value lists checked with ORs, not IN (...): SQLite
    -- evaluates a CHECK's IN list of three or more values by building a temporary b-tree
    -- of it on every row written, about 30k instructions, and every entry in a chain
    -- writes a row and its payment changes its status (`tidepool check` warns of it). A
    -- CHECK cannot change in place, so the table is rebuilt: new, copy, drop, rename,
    -- indexes again.
    [[
    CREATE TABLE group_chain_entries_v2 (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      post_id INTEGER NOT NULL,
      seq INTEGER NOT NULL CHECK (seq >= 1),
      user TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status = 'unpaid' OR status = 'paid' OR status = 'cancelled'),
      note TEXT,
      order_id INTEGER NOT NULL UNIQUE,
      total_fen INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      paid_at INTEGER,
      cancelled_at INTEGER,
      cancel_reason TEXT,
      UNIQUE (post_id, seq)
    );
    INSERT INTO group_chain_entries_v2 (
        id, post_id, seq, user, status, note, order_id, total_fen, created_at, updated_at, paid_at,
        cancelled_at, cancel_reason)
      SELECT
        id, post_id, seq, user, status, note, order_id, total_fen, created_at, updated_at, paid_at,
        cancelled_at, cancel_reason
      FROM group_chain_entries;
    UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'group_chain_entries'), 0))
      WHERE name = 'group_chain_entries_v2';
    DROP TABLE group_chain_entries;
    ALTER TABLE group_chain_entries_v2 RENAME TO group_chain_entries;
    CREATE INDEX group_chain_entries_user ON group_chain_entries(post_id, user);
    CREATE INDEX group_chain_entries_member ON group_chain_entries(user);
    ]],
  },

  routes = ROUTES,

  jobs = { close = close },
  subscribe = { ["order.paid"] = entries.on_paid },
  exports = {
    release_order = entries.release_order,
    reclaim_order = entries.reclaim_order,
    member_merge = merge.member_merge,
    member_unmerge = merge.member_unmerge,
    schemas = function() return schema.document(ROUTES) end,
  },
}
