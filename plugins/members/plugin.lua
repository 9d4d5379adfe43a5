---@diagnostic disable: undefined-global
-- members (私域用户池): one member per person per brand, their identities,
-- profile, tags and segments; the brand's login backend identifies people
-- here and gets their token. The host trusts this plugin (by name) with
-- identity: it alone mints tokens and merges or erases members (tp.auth).
--
-- Admin routes (/admin/{tenant}, X-Api-Key):
--   POST   /members/identify                 {identities, profile?, source?} -> member + token
--   GET    /members?limit=&after=            every active member
--   GET    /members/{id}                      profile, tags, identities (a merged id shows its survivor)
--   PATCH  /members/{id}                      profile fields
--   POST   /members/{id}/tags                 {tag, expires_at?}
--   DELETE /members/{id}/tags/{tag}
--   POST   /members/{id}/erase                deletion request (PIPL)
--   POST   /members/merges {from, into}       a merge by hand;  GET /members/merges?member=
--   POST   /members/merges/{id}/undo
--   POST   /members/tag-groups, GET /members/tag-groups
--   POST   /members/tags, GET /members/tags, GET|PATCH|DELETE /members/tags/{name}
--   POST   /members/tags/{name}/assign        {members: [...], expires_at?, remove?}
--   POST   /members/segments, GET /members/segments, GET|PUT|DELETE /members/segments/{name}
--   POST   /members/segments/preview {rule}   count and sample before saving
--   GET    /members/segments/{name}/members?limit=&after=
-- User routes (/v1/{tenant}, bearer token): GET /members/me, PATCH /members/me
-- Exports: tag, untag, matches, page, exists, save_segment, count, snapshot, snapshot_page,
-- set_dimension, facts_page (README)
-- Events: member.merged {merge_id, from, into, reason}, member.unmerged, member.erased {member}

local identity = require("lib.identity")

-- the identity channels' names, for the schemas (identity.CHANNELS says what each is)
local CHANNEL_NAMES = {}
for name in pairs(identity.CHANNELS) do CHANNEL_NAMES[#CHANNEL_NAMES + 1] = name end
table.sort(CHANNEL_NAMES)
local profile = require("lib.profile")
local tags = require("lib.tags")
local segments = require("lib.segments")
local facts = require("lib.facts")
local rules = require("lib.rules")
local settings = require("lib.settings")
local imports = require("lib.imports")
local snapshots = require("lib.snapshots")
local segment = require("lib.segment")
local dimensions = require("lib.dimensions")
local schema = require("tp.schema")
local store = require("lib.store")

-- ---- route docs (OpenAPI)

local MEMBER = { type = "object", description = "a member (Member); phone is masked",
  properties = {
    id = { type = "string" }, state = { type = "string", enum = { "active", "merged", "erased" } },
    nickname = { type = "string" }, gender = { type = "string" }, birthday = { type = "string" },
    city = { type = "string" }, phone = { type = "string", description = "masked: 138****5678" },
    store = { type = "string" }, guide = { type = "string" }, referrer = { type = "string" },
    first_source = { type = "string" }, last_source = { type = "string" },
    fields = { type = "object", description = "the brand's custom fields" },
    joined_at = { type = "integer" }, updated_at = { type = "integer" },
    facts = { type = "object", properties = {
      paid_orders = { type = "integer" }, paid_fen = { type = "integer" }, refunded_fen = { type = "integer" },
      first_paid_at = { type = "integer" }, last_paid_at = { type = "integer" } } },
    tags = { type = "array", items = { type = "object" }, description = "admin reads only" },
    identities = { type = "array", items = { type = "object" }, description = "admin reads only" },
  } }

local PROFILE_BODY = { type = "object", description = "built-in fields (nickname, gender, birthday "
  .. "YYYY-MM-DD, city, store, guide, referrer) and the brand's custom fields; null clears" }

local IDENTITY = { type = "object", required = { "channel", "id" }, properties = {
  channel = { type = "string", enum = CHANNEL_NAMES },
  id = { type = "string", maxLength = 128 },
  verified = { type = "boolean", description = "phone: the backend verified it (WeChat's phone button)" } } }

local RULE = segment.RULE_SCHEMA

local TAG = { type = "object", properties = {
  name = { type = "string" }, group = { type = "string" },
  kind = { type = "string", enum = { "manual", "rule" } }, description = { type = "string" },
  rule = RULE, members = { type = "integer", description = "GET of one tag: members carrying it now" } } }

local SEGMENT = { type = "object", properties = {
  name = { type = "string" }, description = { type = "string" }, rule = RULE,
  count = { type = "integer" }, created_at = { type = "integer" }, updated_at = { type = "integer" } } }

local MERGE = { type = "object", properties = {
  id = { type = "integer" }, from = { type = "string" }, into = { type = "string" },
  reason = { type = "string", enum = { "unionid", "phone", "manual" } }, by = { type = "string" },
  moved = { type = "object", description = "per plugin, what moved" },
  created_at = { type = "integer" }, undone_at = { type = "integer" } } }

local PAGE = { limit = { type = "integer", description = "1-1000" },
               after = { type = "integer", description = "next_after of the previous page" } }

local function page_of(item)
  return { type = "object", properties = { items = { type = "array", items = item },
    next_after = { type = "integer", description = "absent on the last page" } } }
end

---Nightly, at rules_hour in the brand's zone: expired tags go, rule tags are re-judged.
local function nightly()
  tags.purge_expired()
  snapshots.purge()
  rules.start_sweep(nil)
end

---The next rules_hour o'clock, local time.
local function next_nightly()
  local now = tp.now()
  local lt = tp.localtime(now)
  local at = now - (lt.hour * 3600 + lt.min * 60 + lt.sec) + settings.rules_hour * 3600
  if at <= now then at = at + 86400 end
  return at
end

local I, S = { type = "integer" }, { type = "string" }
local MEMBER_TAG = { type = "object", properties = { name = S, group = S,
  source = { type = "string", description = "manual, rule or import" }, assigned_at = I, expires_at = I } }
local IMPORT = { type = "object", properties = {
  id = I, columns = { type = "array", items = S }, note = S, chunks = I, lines = I, created = I, updated = I,
  failed = I, created_at = I, updated_at = I,
  errors = { type = "array", description = "GET only: up to 1000 line errors after after_line",
             items = { type = "object", properties = { line = I, column = S, message = S } } } } }
local CHUNK = { type = "object", properties = { seq = I, lines = I, created = I, updated = I, failed = I,
  replayed = { type = "boolean", description = "true: this chunk was applied before; nothing was applied now" },
  errors = { type = "array", items = { type = "object", properties = { line = I, column = S, message = S } } } } }
local DELETED = { type = "object", properties = { deleted = S } }
local UNTAGGED = { type = "object", properties = { member = S, removed = { type = "boolean" } } }

local ROUTES = {
  { method = "POST", path = "/members/identify", errors = { [400] = { "invalid_field" }, [404] = { "member_not_found" }, [409] = { "identity_conflict" } }, auth = "admin", handler = identity.identify, status = { 200, 201 },
    personal = true,
    summary = "Find or make the member behind a login's identities, and mint its token",
    description = "For the brand's login backend, after code2Session or the phone button. "
      .. "Identities naming several members merge them into the oldest when the login carries a "
      .. "unionid or a verified phone; otherwise 409 identity_conflict. 201 when the member is new.",
    body = { type = "object", required = { "identities" }, properties = {
      identities = { type = "array", minItems = 1, maxItems = 8, items = IDENTITY },
      member = { type = "string", description = "a member this login is already known to be (a logged-in "
        .. "member adding WeChat's verified phone): the identities are added to it, merging on proof" },
      profile = PROFILE_BODY,
      source = { type = "object", properties = { channel = { type = "string" }, store = { type = "string" },
        guide = { type = "string" }, referrer = { type = "string" } },
        description = "first touch is kept (first_source, store, guide, referrer); last_source moves" },
      token_seconds = { type = "integer", minimum = 60, maximum = 7776000 } } },
    response = { type = "object", properties = { member = MEMBER, token = { type = "string" },
      created = { type = "boolean" }, merged = { type = "array", items = { type = "string" } } } } },
  { method = "GET", path = "/members", auth = "admin", handler = profile.list, personal = true,
    summary = "Every active member, in number order",
    query = { limit = PAGE.limit, after = PAGE.after,
              store = { type = "string", description = "only the members that store first brought" } },
    response = page_of(MEMBER) },
  { method = "GET", path = "/members/me", auth = "user", handler = profile.me, personal = true,
    summary = "The caller's own profile", response = MEMBER },
  { method = "PATCH", path = "/members/me", auth = "user", handler = profile.update_me, personal = true,
    summary = "Edit the caller's own profile (nickname, gender, birthday, city and editable custom fields)",
    body = PROFILE_BODY, response = MEMBER },
  { method = "POST", path = "/members/merges", auth = "admin", handler = profile.merge, status = 201,
    summary = "Merge member from into member into, by hand (undoable)",
    body = { type = "object", required = { "from", "into" }, properties = {
      from = { type = "string" }, into = { type = "string" }, note = { type = "string", maxLength = 200 } } },
    response = MERGE },
  { method = "GET", path = "/members/merges", auth = "admin", handler = profile.merges,
    summary = "Merges, newest first", query = { member = { type = "string" }, limit = PAGE.limit },
    response = { type = "object", properties = { items = { type = "array", items = MERGE } } } },
  { method = "POST", path = "/members/merges/{id:int}/undo", auth = "admin", handler = profile.undo,
    summary = "Undo a merge made by hand", description = "409 merge_not_manual for a proven merge, "
      .. "merge_undone, merge_not_undoable (the survivor was merged since)", response = MERGE },
  { method = "POST", path = "/members/tag-groups", auth = "admin", handler = tags.create_group, status = 201,
    summary = "Create a tag group", body = tags.GROUP_FIELDS:body(),
    response = { type = "object", properties = { name = S } } },
  { method = "GET", path = "/members/tag-groups", auth = "admin", handler = tags.list_groups,
    summary = "Tag groups with their tag counts",
    response = { type = "object", properties = { items = { type = "array", items = { type = "object",
      properties = { name = S, tags = I } } } } } },
  { method = "POST", path = "/members/tags", auth = "admin", handler = tags.create, status = 201,
    summary = "Create a tag: manual, or a rule tag the pool keeps true",
    body = tags.FIELDS:body(), response = TAG },
  { method = "GET", path = "/members/tags", auth = "admin", handler = tags.list,
    summary = "Tags", query = { group = { type = "string" }, limit = PAGE.limit, after = PAGE.after },
    response = page_of(TAG) },
  { method = "GET", path = "/members/tags/{name}", auth = "admin", handler = tags.get,
    summary = "One tag, with how many members carry it", response = TAG },
  { method = "PATCH", path = "/members/tags/{name}", auth = "admin", handler = tags.update,
    summary = "Change a tag's group, description or rule (a rule tag's only)", body = tags.FIELDS:body(true),
    response = TAG },
  { method = "DELETE", path = "/members/tags/{name}", auth = "admin", handler = tags.delete,
    summary = "Delete a tag and its assignments (409 tag_in_use while a segment names it)",
    response = DELETED },
  { method = "POST", path = "/members/tags/{name}/assign", auth = "admin", handler = tags.assign_bulk,
    summary = "Put a manual tag on (or, with remove, take it off) up to 10,000 members",
    body = { type = "object", required = { "members" }, properties = {
      members = { type = "array", minItems = 1, maxItems = 10000, items = { type = "string" } },
      expires_at = { type = "integer" }, remove = { type = "boolean" } } },
    response = { type = "object", properties = { tag = S,
      added = { type = "integer", description = "members tagged now (without remove)" },
      removed = { type = "integer", description = "members untagged (with remove)" },
      unknown = { type = "array", items = S, description = "ids that name no active member" } } } },
  { method = "POST", path = "/members/imports", auth = "admin", handler = imports.create, status = 201,
    summary = "Open a streamed CSV import: name the file's columns",
    description = "Identity columns (at least one), writable profile fields, custom fields, "
      .. "joined_at, tags (| separated). Then send the lines in chunks; tools/members_csv.py does.",
    body = { type = "object", required = { "columns" }, properties = {
      columns = { type = "array", minItems = 1, maxItems = 100, items = { type = "string" } },
      note = { type = "string", maxLength = 200 } } }, response = IMPORT },
  { method = "POST", path = "/members/imports/{id:int}/chunks", auth = "admin", handler = imports.chunk,
    personal = true,
    summary = "Apply up to 5,000 lines of an import (a chunk sent again is answered, not applied)",
    description = "500 lines fit the default instruction budget; bigger chunks need plugin_limits.members.",
    body = { type = "object", required = { "seq", "first_line", "csv" }, properties = {
      seq = { type = "integer", minimum = 1 }, first_line = { type = "integer", minimum = 1 },
      csv = { type = "string" } } }, response = CHUNK },
  { method = "GET", path = "/members/imports/{id:int}", auth = "admin", handler = imports.get,
    summary = "An import's totals and its line errors", query = {
      after_line = { type = "integer", description = "errors after this line" } }, response = IMPORT },
  { method = "GET", path = "/members/export", auth = "admin", handler = imports.export, personal = true,
    summary = "A page of members as CSV (phones masked); the first page starts with the header",
    query = { segment = { type = "string", description = "only this segment's members" },
              limit = { type = "integer", description = "1-5000 (default 1000)" },
              after = PAGE.after },
    response = { type = "object", properties = { columns = { type = "array", items = S },
      csv = { type = "string", description = "the page's lines (the header first on the first page)" },
      rows = I, next_after = I } } },
  { method = "GET", path = "/members/lookup", auth = "admin", handler = profile.lookup, personal = true,
    summary = "The member a phone, an openid or another identity names",
    query = { channel = { type = "string", required = true, description = table.concat(CHANNEL_NAMES, ", ") },
              id = { type = "string", required = true, description = "the phone number (found by its digest) or the id" },
              store = { type = "string", description = "404 unless that store first brought the member" } },
    errors = { [400] = { "invalid_field" }, [404] = { "member_not_found" } }, response = MEMBER },
  { method = "GET", path = "/members/{id}", auth = "admin", handler = profile.get, personal = true,
    summary = "One member with tags and identities",
    query = { store = { type = "string", description = "404 unless that store first brought the member" } },
    response = MEMBER },
  { method = "PATCH", path = "/members/{id}", auth = "admin", handler = profile.update, personal = true,
    summary = "Change a member's profile fields", body = PROFILE_BODY, response = MEMBER },
  { method = "POST", path = "/members/{id}/tags", auth = "admin", handler = tags.assign_one,
    summary = "Tag one member", body = { type = "object", required = { "tag" }, properties = {
      tag = { type = "string" }, expires_at = { type = "integer" } } },
    response = { type = "object", properties = { member = S, tags = { type = "array", items = MEMBER_TAG } } } },
  { method = "DELETE", path = "/members/{id}/tags/{tag}", auth = "admin", handler = tags.remove_one,
    summary = "Untag one member", response = UNTAGGED },
  { method = "POST", path = "/members/{id}/erase", auth = "admin", handler = profile.erase,
    summary = "Erase a member's personal data and identities on request (PIPL)",
    description = "Orders and other money records stay under the member id, which then names "
      .. "nobody; its tokens are refused with 401 member_erased.",
    response = { type = "object", properties = { erased = { type = "string", description = "the member id" } } } },
  { method = "POST", path = "/members/segments", auth = "admin", handler = segments.create, status = 201,
    summary = "Save a segment", body = segments.FIELDS:body(),
    response = SEGMENT },
  { method = "GET", path = "/members/segments", auth = "admin", handler = segments.list,
    summary = "Saved segments", response = { type = "object", properties = {
      items = { type = "array", items = SEGMENT } } } },
  { method = "POST", path = "/members/segments/preview", auth = "admin", handler = segments.preview,
    summary = "Count a rule (and show ten members) before saving it",
    body = { type = "object", required = { "rule" }, properties = { rule = RULE } },
    response = { type = "object", properties = { count = I,
      sample = { type = "array", items = S, description = "up to ten member ids" } } } },
  { method = "GET", path = "/members/segments/{name}", auth = "admin", handler = segments.get,
    summary = "A segment with its count now", response = SEGMENT },
  { method = "PUT", path = "/members/segments/{name}", auth = "admin", handler = segments.replace,
    summary = "Create or replace a segment", response = SEGMENT },
  { method = "DELETE", path = "/members/segments/{name}", auth = "admin", handler = segments.delete,
    summary = "Delete a segment (409 segment_in_use while another rule names it)", response = DELETED },
  { method = "GET", path = "/members/segments/{name}/members", auth = "admin", handler = segments.members, personal = true,
    summary = "The segment's members now, in number order", query = PAGE, response = page_of(MEMBER) },
}

return {
  name = "members",
  version = "1.3.0",
  description = "The customer pool: identities, profiles, tags, segments, merges and erasure",
  migrations = {
    [[
    -- n: the member's number (tags and facts are keyed by it); id: what tokens
    -- carry. state merged: merged_into is the survivor's n. The paid_* columns
    -- are a cache of members_orders (lib/facts.lua).
    CREATE TABLE members_members (
      n INTEGER PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'merged', 'erased')),
      merged_into INTEGER,
      nickname TEXT, gender TEXT, birthday TEXT, city TEXT, phone_masked TEXT,
      store TEXT, guide TEXT, referrer TEXT, first_source TEXT, last_source TEXT,
      custom TEXT NOT NULL DEFAULT '{}',
      joined_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      paid_orders INTEGER NOT NULL DEFAULT 0,
      paid_fen INTEGER NOT NULL DEFAULT 0,
      refunded_fen INTEGER NOT NULL DEFAULT 0,
      first_paid_at INTEGER,
      last_paid_at INTEGER
    );
    CREATE INDEX members_members_merged ON members_members(merged_into) WHERE merged_into IS NOT NULL;
    -- phone identities hold a keyed digest, never the number
    CREATE TABLE members_identities (
      channel TEXT NOT NULL,
      external_id TEXT NOT NULL,
      n INTEGER NOT NULL,
      verified INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (channel, external_id)
    ) WITHOUT ROWID;
    CREATE INDEX members_identities_n ON members_identities(n);
    CREATE TABLE members_tag_groups (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      created_at INTEGER NOT NULL
    );
    CREATE TABLE members_tags (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      group_id INTEGER,
      kind TEXT NOT NULL CHECK (kind IN ('manual', 'rule')),
      rule TEXT,
      description TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    -- source: manual, rule, or the plugin that set it
    CREATE TABLE members_member_tags (
      tag_id INTEGER NOT NULL,
      n INTEGER NOT NULL,
      source TEXT NOT NULL,
      assigned_at INTEGER NOT NULL,
      expires_at INTEGER,
      PRIMARY KEY (tag_id, n)
    ) WITHOUT ROWID;
    CREATE INDEX members_member_tags_n ON members_member_tags(n, tag_id);
    CREATE TABLE members_segments (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      description TEXT,
      rule TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    -- one row per paid order: the facts segments and rule tags read
    CREATE TABLE members_orders (
      order_id INTEGER PRIMARY KEY,
      n INTEGER NOT NULL,
      paid_fen INTEGER NOT NULL,
      refunded_fen INTEGER NOT NULL DEFAULT 0,
      paid_at INTEGER NOT NULL,
      coupon_id INTEGER,
      campaign TEXT
    );
    CREATE INDEX members_orders_n ON members_orders(n, paid_at);
    CREATE TABLE members_order_skus (
      order_id INTEGER NOT NULL,
      sku TEXT NOT NULL,
      qty INTEGER NOT NULL,
      PRIMARY KEY (order_id, sku)
    ) WITHOUT ROWID;
    CREATE TABLE members_merges (
      id INTEGER PRIMARY KEY,
      from_n INTEGER NOT NULL,
      into_n INTEGER NOT NULL,
      from_id TEXT NOT NULL,
      into_id TEXT NOT NULL,
      reason TEXT NOT NULL CHECK (reason IN ('unionid', 'phone', 'manual')),
      by TEXT,
      moved TEXT,
      created_at INTEGER NOT NULL,
      undone_at INTEGER,
      undone_by TEXT
    );
    CREATE INDEX members_merges_into ON members_merges(into_n);
    -- what a merge moved inside the pool, so that it can be undone
    CREATE TABLE members_merge_rows (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL,
      key TEXT NOT NULL,
      extra TEXT
    );
    CREATE INDEX members_merge_rows_merge ON members_merge_rows(merge_id);
    ]],
    -- streamed CSV imports (lib/imports.lua)
    [[
    CREATE TABLE members_imports (
      id INTEGER PRIMARY KEY,
      columns TEXT NOT NULL,
      note TEXT,
      chunks INTEGER NOT NULL DEFAULT 0,
      lines INTEGER NOT NULL DEFAULT 0,
      created INTEGER NOT NULL DEFAULT 0,
      updated INTEGER NOT NULL DEFAULT 0,
      failed INTEGER NOT NULL DEFAULT 0,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE TABLE members_import_chunks (
      import_id INTEGER NOT NULL,
      seq INTEGER NOT NULL,
      first_line INTEGER NOT NULL,
      lines INTEGER NOT NULL,
      created INTEGER NOT NULL,
      updated INTEGER NOT NULL,
      failed INTEGER NOT NULL,
      PRIMARY KEY (import_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE members_import_errors (
      import_id INTEGER NOT NULL,
      line INTEGER NOT NULL,
      "column" TEXT NOT NULL,
      message TEXT NOT NULL,
      PRIMARY KEY (import_id, line, "column")
    ) WITHOUT ROWID;
    ]],
    -- segments frozen for scheduled actions (lib/snapshots.lua)
    [[
    CREATE TABLE members_snapshots (
      id INTEGER PRIMARY KEY,
      key TEXT NOT NULL UNIQUE,
      segment TEXT NOT NULL,
      rule TEXT NOT NULL,
      upto INTEGER NOT NULL,
      cursor INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('building', 'ready')),
      count INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      ready_at INTEGER
    );
    CREATE TABLE members_snapshot_members (
      snapshot_id INTEGER NOT NULL,
      n INTEGER NOT NULL,
      PRIMARY KEY (snapshot_id, n)
    ) WITHOUT ROWID;
    ]],
    -- 1.3.0: members_members's value lists checked with ORs, not IN (...): SQLite
    -- evaluates a CHECK's IN list of three or more values by building a temporary b-tree
    -- of it on every row written, about 30k instructions, and every member who signs up
    -- for the first time writes a row here (`tidepool check` warns of it). A CHECK
    -- cannot change in place, so the table is rebuilt: new, copy, drop, rename, indexes
    -- again.
    [[
    CREATE TABLE members_members_v2 (
      n INTEGER PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      state TEXT NOT NULL DEFAULT 'active' CHECK (state = 'active' OR state = 'merged' OR state = 'erased'),
      merged_into INTEGER,
      nickname TEXT, gender TEXT, birthday TEXT, city TEXT, phone_masked TEXT,
      store TEXT, guide TEXT, referrer TEXT, first_source TEXT, last_source TEXT,
      custom TEXT NOT NULL DEFAULT '{}',
      joined_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      paid_orders INTEGER NOT NULL DEFAULT 0,
      paid_fen INTEGER NOT NULL DEFAULT 0,
      refunded_fen INTEGER NOT NULL DEFAULT 0,
      first_paid_at INTEGER,
      last_paid_at INTEGER
    );
    INSERT INTO members_members_v2 (
        n, id, state, merged_into, nickname, gender, birthday, city, phone_masked, store, guide,
        referrer, first_source, last_source, custom, joined_at, updated_at, paid_orders, paid_fen,
        refunded_fen, first_paid_at, last_paid_at)
      SELECT
        n, id, state, merged_into, nickname, gender, birthday, city, phone_masked, store, guide,
        referrer, first_source, last_source, custom, joined_at, updated_at, paid_orders, paid_fen,
        refunded_fen, first_paid_at, last_paid_at
      FROM members_members;
    DROP TABLE members_members;
    ALTER TABLE members_members_v2 RENAME TO members_members;
    CREATE INDEX members_members_merged ON members_members(merged_into) WHERE merged_into IS NOT NULL;
    ]],
  },
  routes = ROUTES,
  subscribe = {
    ["order.paid"] = function(ev)
      local n = facts.on_paid(ev)
      if n then rules.refresh(n) end
    end,
    ["order.refunded"] = function(ev)
      local n = facts.on_refunded(ev)
      if n then rules.refresh(n) end
    end,
  },
  jobs = {
    sweep = rules.sweep_job,
    snapshot_slice = snapshots.slice,
    nightly = nightly,
  },
  setup = function()
    tp.jobs.schedule("nightly", nil, { at = next_nightly(), every = 86400, key = "nightly" })
  end,
  exports = {
    -- for a login plugin (wechat_auth): POST /members/identify's body, its answer
    identify = function(body)
      local _, answer = identity.identify({ body = body })
      return answer
    end,
    -- the member's mini-program openid (her newest), or nil: where a plugin
    -- pays her (payments' transfers, for referral's withdrawals)
    openid = function(user)
      local row = type(user) == "string" and store.active(user)
      if not row then return nil end
      local id = tp.db.one([[SELECT external_id FROM members_identities WHERE n = ? AND channel = 'mp_openid'
        ORDER BY created_at DESC, external_id LIMIT 1]], row.n)
      return id and id.external_id or nil
    end,
    tag = tags.export_tag,
    untag = tags.export_untag,
    matches = segments.export_matches,
    page = segments.export_page,
    exists = segments.export_exists,
    save_segment = segments.export_save,
    count = segments.export_count,
    snapshot = snapshots.export_start,
    snapshot_page = snapshots.export_page,
    set_dimension = dimensions.export_set,
    facts_page = facts.export_page,
    schemas = function() return schema.document(ROUTES) end,
  },
}
