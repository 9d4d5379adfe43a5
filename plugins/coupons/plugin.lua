---@diagnostic disable: undefined-global
-- coupons (优惠券): operators set up coupon templates; users claim coupons or
-- operators issue them to chosen users; the orders plugin prices an order with
-- one coupon and moves it unused -> locked -> used (or back to unused).
--
-- Kinds: "fixed" (amount off), "percent" (percentage off, capped), "threshold"
-- (满减: amount off from a minimum spend). Money is integer fen; instants are
-- UTC epoch seconds; "a day" is a calendar day in the tenant's time zone.
--
-- Admin routes (/admin/{tenant}, X-Api-Key):
--   POST  /coupons/templates                    create          -> 201 CouponTemplate
--   GET   /coupons/templates?status=&limit=&after=                -> {items, next_after}
--   GET   /coupons/templates/{id}                                 -> CouponTemplate (with counts)
--   PATCH /coupons/templates/{id}               name, status, claim_ends_at, total_quantity,
--                                               audience (with segment or tag)
--   POST  /coupons/templates/{id}/issue {users} targeted issue  -> {issued, skipped, coupons}
--   GET   /coupons/templates/{id}/coupons?state=&limit=&after=    -> {items, next_after}
--   GET   /coupons/drops?template_id=&limit=&after=               -> {items, next_after}
--   GET   /coupons/drops/{id}                   a segment drop's progress -> CouponDrop
--   POST  /coupons/drops/{id}/resume            a stopped drop goes on     -> CouponDrop
-- User routes (/v1/{tenant}, bearer token):
--   GET   /coupons/claimable?limit=&after=      (auth optional) -> {items, next_after}
--   POST  /coupons/templates/{id}/claim                         -> 201 Coupon
--   GET   /coupons/mine?state=&limit=&after=                    -> {items, next_after}
-- Exports (tp.call("coupons", name, ...)): quote, lock, unlock, consume, relock, restore
-- (see lib/redeem.lua); issue (lib/issue.lua: the targeted issue for other
-- plugins); drop (lib/drops.lua: one coupon to every member of a segment, a
-- slice per job run); campaign_apply, campaign_withdraw (lib/campaign.lua);
-- member_merge, member_unmerge (lib/merge.lua). README has them all.

local check = require("tp.check")
local templates = require("lib.templates")
local coupons = require("lib.coupons")
local issue = require("lib.issue")
local redeem = require("lib.redeem")
local campaign = require("lib.campaign")
local audience = require("lib.audience")
local drops = require("lib.drops")
local merge = require("lib.merge")
local schema = require("tp.schema")

-- ---- route docs (OpenAPI)

local TEMPLATE_BODY = templates.FIELDS:body()
TEMPLATE_BODY.description = "Which discount fields apply depends on kind; validity is valid_from and "
  .. "valid_until, or valid_days."

---A template as the reads show it: the body's fields (those that apply) and
---what it has come to.
local TEMPLATE = { type = "object", description = "a coupon template (CouponTemplate)",
  properties = {
    id = { type = "integer" }, issued = { type = "integer" }, remaining = { type = "integer" },
    counts = { type = "object", description = "admin reads: coupons by state" },
    created_at = { type = "integer" }, updated_at = { type = "integer" },
  } }
for field, prop in pairs(TEMPLATE_BODY.properties) do
  local answered = {}  -- as answered: a template of scope all has no product_ids ([])
  for k, v in pairs(prop) do if k ~= "minItems" then answered[k] = v end end
  TEMPLATE.properties[field] = answered
end

local DROP = { type = "object", description = "a segment drop (CouponDrop)", properties = {
  id = { type = "integer" }, ref = { type = "string" }, template_id = { type = "integer" },
  segment = { type = "string" }, state = { type = "string", enum = { "running", "done", "stopped" } },
  members_at_start = { type = "integer" }, issued = { type = "integer" },
  skipped = { type = "integer", description = "members already at per_user_limit" },
  reached = { type = "integer", description = "issued + skipped" }, runs = { type = "integer" },
  stop = { type = "object", description = "why a stopped drop stopped", properties = {
    reason = { type = "string", enum = { "sold_out", "paused", "expired", "segment_not_found",
                                         "template_not_found" } },
    message = { type = "string" } } },
  started_at = { type = "integer" }, updated_at = { type = "integer" }, finished_at = { type = "integer" },
} }

local COUPON = { type = "object", description = "a coupon (Coupon), with its template's terms",
  properties = {
    id = { type = "integer" }, template_id = { type = "integer" }, user = { type = "string" },
    seq = { type = "integer" }, source = { type = "string", enum = { "claim", "issue" } },
    claimed_at = { type = "integer" }, valid_from = { type = "integer" },
    valid_until = { type = "integer" },
    state = { type = "string", enum = { "unused", "locked", "used", "expired" } },
    usable = { type = "boolean" }, name = { type = "string" }, kind = { type = "string" },
    min_spend_fen = { type = "integer" },
  } }

local function page_of(item)
  return { type = "object", properties = {
    items = { type = "array", items = item },
    next_after = { type = "integer", description = "absent on the last page" } } }
end

local function state_query(max)
  return {
    state = { type = "string", description = "unused, locked, used or expired (default: all)" },
    limit = { type = "integer", description = ("1-%d (default 100)"):format(max) },
    after = { type = "integer", description = "next_after of the previous page" },
  }
end

local CLAIMABLE = "SELECT " .. templates.COLUMNS .. [[ FROM coupons_templates
  WHERE status = 'active' AND audience IN (:public, :segment, :tag) AND issued < total_quantity
    AND (claim_starts_at IS NULL OR claim_starts_at <= :now)
    AND (claim_ends_at IS NULL OR claim_ends_at > :now)
    AND (valid_until IS NULL OR valid_until > :now)
    AND id > :after
  ORDER BY id LIMIT :limit]]

---GET /coupons/claimable?limit=&after= : active templates the caller is in the audience of
---(public ones; with a user, also those of a segment or tag the user is in) whose claim window
---is open now, that still have quantity and whose coupons are not already expired. With a
---user, each item also says how many that user holds (claimed) and whether they may claim
---one now.
local function claimable(req)
  local limit, after = check.page(req.query, 50, 200)
  after = after or 0
  local now = tp.now()
  -- a segment or tag template the user is not in is passed over: read on until the page is full
  local q_args = { now = now, after = after, limit = limit, public = "public",
                   segment = req.user and "segment" or "public", tag = req.user and "tag" or "public" }
  local rows, last = {}, true
  repeat
    local batch = tp.db.query(CLAIMABLE, q_args)
    last = #batch < limit
    for _, r in ipairs(batch) do
      q_args.after = r.id
      if audience.admits(r, req.user) then
        rows[#rows + 1] = r
        if #rows == limit then
          last = last and r.id == batch[#batch].id
          break
        end
      end
    end
  until #rows == limit or last
  local items = templates.shape_all(rows, false)
  for _, t in ipairs(items) do
    t.segment, t.tag = nil, nil  -- the brand's own names for its customers stay with the brand
  end
  if req.user then
    local day = issue.local_day(now)
    for _, t in ipairs(items) do
      local h = tp.db.one([[SELECT count(*) AS n, coalesce(sum(claim_day = ?), 0) AS today
        FROM coupons_coupons WHERE template_id = ? AND user = ?]], day, t.id, req.user)
      t.claimed = h.n
      t.can_claim = h.n < t.per_user_limit and
        (t.per_user_daily_limit == nil or h.today < t.per_user_daily_limit)
    end
  end
  return 200, { items = items, next_after = not last and q_args.after or nil }
end

local ROUTES = {
  { method = "POST", path = "/coupons/templates", errors = { [400] = { "invalid_field", "invalid_body" } }, auth = "admin", handler = templates.create,
    summary = "Create a coupon template (fixed, percent or threshold)", status = 201,
    description = "Every rule is checked before anything is written; a broken one is a 400 "
      .. "invalid_field naming the field. Validity is either valid_from/valid_until or "
      .. "valid_days, never both. product_ids only with scope products or exclude.",
    body = TEMPLATE_BODY, response = TEMPLATE },
  { method = "GET", path = "/coupons/templates", auth = "admin", handler = templates.list,
    summary = "Coupon templates with issued counts and coupon counts by state",
    query = {
      status = { type = "string", description = "active or paused" },
      limit = { type = "integer", description = "1-200 (default 50)" },
      after = { type = "integer", description = "next_after of the previous page" },
    },
    response = page_of(TEMPLATE) },
  { method = "GET", path = "/coupons/templates/{id:int}", errors = { [404] = { "template_not_found" } }, auth = "admin", handler = templates.get,
    summary = "One coupon template", response = TEMPLATE },
  { method = "PATCH", path = "/coupons/templates/{id:int}", errors = { [400] = { "invalid_field", "invalid_body" }, [404] = { "template_not_found" }, [409] = { "quantity_below_issued" } }, auth = "admin",
    handler = templates.update,
    summary = "Change a template's name, status, claim_ends_at (null: no end), total_quantity "
      .. "or audience (with its segment or tag)",
    description = "total_quantity may go up, or down to the number issued but never below it "
      .. "(409 quantity_below_issued). A segment or tag is checked with the members plugin "
      .. "(400 invalid_field naming it). Other fields cannot change.",
    body = templates.FIELDS:body(true),
    response = TEMPLATE },
  { method = "POST", path = "/coupons/templates/{id:int}/issue", errors = { [400] = { "invalid_field" }, [404] = { "template_not_found" }, [409] = { "insufficient_quantity", "not_issuable" } }, auth = "admin",
    handler = issue.targeted,
    summary = "Issue one coupon to each listed user (定向发券), all or nothing on quantity",
    description = "Each id is the member it names now: a merged id gets its survivor, once per "
      .. "person; an erased member is skipped (erased). "
      .. "Duplicates count once; users at per_user_limit are skipped and listed. If "
      .. "the remaining quantity cannot cover every other user, nothing is issued (409 "
      .. "insufficient_quantity). The claim window and the daily limit do not apply; a paused "
      .. "or expired template issues nothing (409 not_issuable).",
    body = { type = "object", required = { "users" }, properties = {
      users = { type = "array", minItems = 1, maxItems = 1000,
                items = { type = "string", pattern = "^[A-Za-z0-9_:@-]{1,64}$" } } } },
    response = { type = "object", properties = {
      template_id = { type = "integer" }, issued = { type = "integer" },
      skipped = { type = "array", items = { type = "object", properties = {
        user = { type = "string" }, reason = { type = "string", enum = { "limit_reached", "erased" } } } } },
      coupons = { type = "array", items = { type = "object", properties = {
        user = { type = "string" }, coupon_id = { type = "integer" } } } } } } },
  { method = "GET", path = "/coupons/templates/{id:int}/coupons", errors = { [404] = { "template_not_found" } }, auth = "admin",
    handler = coupons.of_template,
    summary = "Every coupon of a template, a page at a time",
    query = state_query(1000), response = page_of(COUPON) },
  { method = "POST", path = "/coupons/templates/{id:int}/drops", auth = "admin",
    handler = drops.start_route, status = 202,
    summary = "Give one coupon to every member of a segment (定向发券), in the background",
    description = "The drop runs 200 members per job run, each member at most once across retries "
      .. "and crashes; follow it with GET /coupons/drops/{id}. ref (default admin/<template>/<segment>) "
      .. "names it: the same ref answers the same drop (200). 404 segment_not_found, "
      .. "template_not_found; 409 drop_ref_taken for a ref used with another template or segment.",
    body = { type = "object", required = { "segment" }, properties = {
      segment = { type = "string", maxLength = 64 },
      ref = { type = "string", maxLength = 128, pattern = "^[a-z0-9_/.-]+$" } } },
    response = DROP },
  { method = "GET", path = "/coupons/drops", auth = "admin", handler = drops.list,
    summary = "Segment drops (a campaign's coupon_drop { segment = ... }), oldest first",
    query = {
      template_id = { type = "integer", description = "only this template's" },
      limit = { type = "integer", description = "1-200 (default 50)" },
      after = { type = "integer", description = "next_after of the previous page" },
    },
    response = page_of(DROP) },
  { method = "GET", path = "/coupons/drops/{id:int}", auth = "admin", handler = drops.get,
    summary = "A segment drop: running, done or stopped (with why), and how many it reached",
    response = DROP },
  { method = "POST", path = "/coupons/drops/{id:int}/resume", auth = "admin", handler = drops.resume,
    summary = "Resume a stopped segment drop from where it stopped",
    description = "After raising the template's total_quantity, say. Members already reached "
      .. "get no second coupon. 409 drop_not_stopped for a drop that runs or is done.",
    response = DROP },
  { method = "GET", path = "/coupons/claimable", auth = "optional", handler = claimable,
    summary = "Templates a user can claim now: active, window open, quantity left",
    description = "Anonymous callers see public templates; with a token, also the templates of "
      .. "a segment or tag the user is in, and each item has claimed (how many the user holds) "
      .. "and can_claim.",
    query = {
      limit = { type = "integer", description = "1-200 (default 50)" },
      after = { type = "integer", description = "next_after of the previous page" },
    },
    response = page_of(TEMPLATE) },
  { method = "POST", path = "/coupons/templates/{id:int}/claim", errors = { [403] = { "members_only", "risk_*" }, [404] = { "template_not_found" }, [409] = { "sold_out", "not_claimable", "limit_reached", "daily_limit_reached" } }, rate_class = "claim", auth = "user",
    handler = issue.claim, status = 201,
    summary = "Claim one coupon of a template (领券)",
    description = "409 not_claimable (details.reason paused, not_started, ended or expired), "
      .. "sold_out, limit_reached or daily_limit_reached (a day in the tenant's time zone); "
      .. "403 issue_only for a template the brand only gives out (an issue or a drop); 403 "
      .. "members_only for a segment or tag template the user is not in.",
    response = COUPON },
  { method = "GET", path = "/coupons/mine", auth = "user", handler = coupons.mine,
    summary = "The caller's own coupons", query = state_query(200), response = page_of(COUPON) },
}

return {
  name = "coupons",
  version = "1.8.1",
  description = "Coupon templates, claims and targeted issue; quote/lock/unlock/consume/relock "
    .. "for the orders plugin",
  migrations = {
    [[
    CREATE TABLE coupons_templates (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('fixed', 'percent', 'threshold')),
      amount_off_fen INTEGER CHECK (amount_off_fen >= 1),
      percent_off INTEGER CHECK (percent_off BETWEEN 1 AND 99),
      max_discount_fen INTEGER CHECK (max_discount_fen >= 1),
      min_spend_fen INTEGER NOT NULL DEFAULT 0 CHECK (min_spend_fen >= 0),
      claim_starts_at INTEGER,
      claim_ends_at INTEGER,
      valid_from INTEGER,
      valid_until INTEGER,
      valid_days INTEGER CHECK (valid_days BETWEEN 1 AND 3650),
      total_quantity INTEGER NOT NULL CHECK (total_quantity >= 1),
      issued INTEGER NOT NULL DEFAULT 0 CHECK (issued >= 0 AND issued <= total_quantity),
      per_user_limit INTEGER NOT NULL DEFAULT 1 CHECK (per_user_limit >= 1),
      per_user_daily_limit INTEGER CHECK (per_user_daily_limit >= 1),
      scope TEXT NOT NULL DEFAULT 'all' CHECK (scope IN ('all', 'products', 'exclude')),
      status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      CHECK ((valid_days IS NULL) <> (valid_from IS NULL AND valid_until IS NULL)),
      CHECK (valid_until IS NULL OR valid_from < valid_until),
      CHECK (claim_ends_at IS NULL OR claim_starts_at IS NULL OR claim_starts_at < claim_ends_at)
    );
    CREATE TABLE coupons_template_products (
      template_id INTEGER NOT NULL REFERENCES coupons_templates(id),
      product_id INTEGER NOT NULL,
      PRIMARY KEY (template_id, product_id)
    ) WITHOUT ROWID;
    -- one row per coupon given out. seq: the user's n-th coupon of the template;
    -- claim_day/day_seq: the local calendar day of issue and the user's n-th of that day.
    -- order_id (typeless: stored as the orders plugin names it) is set while locked or used.
    CREATE TABLE coupons_coupons (
      id INTEGER PRIMARY KEY,
      template_id INTEGER NOT NULL REFERENCES coupons_templates(id),
      user TEXT NOT NULL,
      seq INTEGER NOT NULL CHECK (seq >= 1),
      claim_day TEXT NOT NULL,
      day_seq INTEGER NOT NULL CHECK (day_seq >= 1),
      source TEXT NOT NULL CHECK (source IN ('claim', 'issue')),
      claimed_at INTEGER NOT NULL,
      valid_from INTEGER NOT NULL,
      valid_until INTEGER NOT NULL,
      state TEXT NOT NULL DEFAULT 'unused' CHECK (state IN ('unused', 'locked', 'used')),
      order_id,
      locked_at INTEGER,
      used_at INTEGER,
      UNIQUE (template_id, user, seq),
      UNIQUE (template_id, user, claim_day, day_seq),
      CHECK ((state = 'unused') = (order_id IS NULL))
    );
    CREATE INDEX coupons_coupons_user ON coupons_coupons(user, id);
    CREATE UNIQUE INDEX coupons_coupons_order ON coupons_coupons(order_id) WHERE order_id IS NOT NULL;
    -- which coupon each order locked: one per order, ever (relock finds it here)
    CREATE TABLE coupons_orders (
      order_id PRIMARY KEY,
      coupon_id INTEGER NOT NULL REFERENCES coupons_coupons(id),
      user TEXT NOT NULL,
      discount_fen INTEGER NOT NULL CHECK (discount_fen >= 0),
      locked_at INTEGER NOT NULL,
      released_at INTEGER,
      used_at INTEGER
    );
    ]],
    -- which template each campaign item (ref) made; what an export's issue was for
    [[
    CREATE TABLE coupons_campaign_items (
      ref TEXT PRIMARY KEY,
      template_id INTEGER NOT NULL,
      campaign TEXT NOT NULL,
      updated_at INTEGER NOT NULL,
      withdrawn_at INTEGER
    ) WITHOUT ROWID;
    ALTER TABLE coupons_coupons ADD COLUMN issued_for TEXT;
    ]],
    -- who may take a template's coupons: public (claim) or issue_only (issue, drops);
    -- checked in lib/templates.lua (a CHECK here would need PRAGMA quick_check)
    [[ALTER TABLE coupons_templates ADD COLUMN audience TEXT NOT NULL DEFAULT 'public']],
    -- 1.3.0: audience segment / tag (the members plugin's names); segment drops
    -- (lib/drops.lua): a coupon of a drop names it, once per user; merging
    -- members (lib/merge.lua): coupons and locks are found by user, and each
    -- merge is recorded with what it moved, for the undo
    [[
    ALTER TABLE coupons_templates ADD COLUMN segment TEXT;
    ALTER TABLE coupons_templates ADD COLUMN tag TEXT;
    -- cursor: the member number the walk has passed (the members plugin's page)
    CREATE TABLE coupons_drops (
      id INTEGER PRIMARY KEY,
      ref TEXT NOT NULL UNIQUE,
      template_id INTEGER NOT NULL REFERENCES coupons_templates(id),
      segment TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('running', 'done', 'stopped')),
      cursor INTEGER NOT NULL DEFAULT 0,
      issued INTEGER NOT NULL DEFAULT 0,
      skipped INTEGER NOT NULL DEFAULT 0,
      runs INTEGER NOT NULL DEFAULT 0,
      members_at_start INTEGER,
      stop_reason TEXT,
      stop_message TEXT,
      started_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      finished_at INTEGER
    );
    -- members a drop reached at per_user_limit: counted once however often walked
    CREATE TABLE coupons_drop_skips (
      drop_id INTEGER NOT NULL,
      user TEXT NOT NULL,
      PRIMARY KEY (drop_id, user)
    ) WITHOUT ROWID;
    ALTER TABLE coupons_coupons ADD COLUMN drop_id INTEGER;
    CREATE UNIQUE INDEX coupons_coupons_drop ON coupons_coupons(drop_id, user) WHERE drop_id IS NOT NULL;
    CREATE INDEX coupons_orders_user ON coupons_orders(user);
    CREATE TABLE coupons_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    -- kind coupon: row_id a coupon; seq, day_seq, drop_id its values under from,
    -- new_*: under into. kind order: row_id an order of coupons_orders. kind
    -- skip: row_id a drop that skipped from; into_had: it had skipped into too
    CREATE TABLE coupons_merge_moves (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('coupon', 'order', 'skip')),
      row_id NOT NULL,
      seq INTEGER,
      day_seq INTEGER,
      drop_id INTEGER,
      new_seq INTEGER,
      new_day_seq INTEGER,
      new_drop_id INTEGER,
      into_had INTEGER,
      PRIMARY KEY (merge_id, kind, row_id)
    );
    ]],
    -- 1.4.0: a drop walks the members plugin's snapshot of its segment, taken
    -- when it starts, so that who gets a coupon never depends on when a slice ran
    [[ALTER TABLE coupons_drops ADD COLUMN snapshot_id INTEGER]],
    -- 1.7.0: every CHECK's IN list of three or more values written as ORs. SQLite
    -- builds such a list into a temporary b-tree on every row written and every
    -- update of its column, about 30k instructions (tests/bench/README.md, "What a
    -- CHECK's IN list and a UNIQUE column cost"): each coupon claimed, locked,
    -- released and used paid it. A CHECK cannot change in place, so the tables are
    -- rebuilt (new, copy, drop, rename, indexes again); foreign keys reference
    -- them, which the host allows since it runs migrations with foreign keys off
    -- and checks them before COMMIT. Rules, ids and rows are the same.
    [[
    CREATE TABLE coupons_templates_v2 (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      kind TEXT NOT NULL CHECK (kind = 'fixed' OR kind = 'percent' OR kind = 'threshold'),
      amount_off_fen INTEGER CHECK (amount_off_fen >= 1),
      percent_off INTEGER CHECK (percent_off BETWEEN 1 AND 99),
      max_discount_fen INTEGER CHECK (max_discount_fen >= 1),
      min_spend_fen INTEGER NOT NULL DEFAULT 0 CHECK (min_spend_fen >= 0),
      claim_starts_at INTEGER,
      claim_ends_at INTEGER,
      valid_from INTEGER,
      valid_until INTEGER,
      valid_days INTEGER CHECK (valid_days BETWEEN 1 AND 3650),
      total_quantity INTEGER NOT NULL CHECK (total_quantity >= 1),
      issued INTEGER NOT NULL DEFAULT 0 CHECK (issued >= 0 AND issued <= total_quantity),
      per_user_limit INTEGER NOT NULL DEFAULT 1 CHECK (per_user_limit >= 1),
      per_user_daily_limit INTEGER CHECK (per_user_daily_limit >= 1),
      scope TEXT NOT NULL DEFAULT 'all' CHECK (scope = 'all' OR scope = 'products'
        OR scope = 'exclude'),
      status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      audience TEXT NOT NULL DEFAULT 'public',
      segment TEXT,
      tag TEXT,
      CHECK ((valid_days IS NULL) <> (valid_from IS NULL AND valid_until IS NULL)),
      CHECK (valid_until IS NULL OR valid_from < valid_until),
      CHECK (claim_ends_at IS NULL OR claim_starts_at IS NULL OR claim_starts_at < claim_ends_at)
    );
    INSERT INTO coupons_templates_v2 (id, name, kind, amount_off_fen, percent_off, max_discount_fen,
      min_spend_fen, claim_starts_at, claim_ends_at, valid_from, valid_until, valid_days,
      total_quantity, issued, per_user_limit, per_user_daily_limit, scope, status, created_at,
      updated_at, audience, segment, tag)
      SELECT id, name, kind, amount_off_fen, percent_off, max_discount_fen, min_spend_fen,
        claim_starts_at, claim_ends_at, valid_from, valid_until, valid_days, total_quantity, issued,
        per_user_limit, per_user_daily_limit, scope, status, created_at, updated_at, audience,
        segment, tag FROM coupons_templates;
    DROP TABLE coupons_templates;
    ALTER TABLE coupons_templates_v2 RENAME TO coupons_templates;
    CREATE TABLE coupons_coupons_v2 (
      id INTEGER PRIMARY KEY,
      template_id INTEGER NOT NULL REFERENCES coupons_templates(id),
      user TEXT NOT NULL,
      seq INTEGER NOT NULL CHECK (seq >= 1),
      claim_day TEXT NOT NULL,
      day_seq INTEGER NOT NULL CHECK (day_seq >= 1),
      source TEXT NOT NULL CHECK (source IN ('claim', 'issue')),
      claimed_at INTEGER NOT NULL,
      valid_from INTEGER NOT NULL,
      valid_until INTEGER NOT NULL,
      state TEXT NOT NULL DEFAULT 'unused' CHECK (state = 'unused' OR state = 'locked'
        OR state = 'used'),
      order_id,
      locked_at INTEGER,
      used_at INTEGER,
      issued_for TEXT,
      drop_id INTEGER,
      UNIQUE (template_id, user, seq),
      UNIQUE (template_id, user, claim_day, day_seq),
      CHECK ((state = 'unused') = (order_id IS NULL))
    );
    INSERT INTO coupons_coupons_v2 (id, template_id, user, seq, claim_day, day_seq, source,
      claimed_at, valid_from, valid_until, state, order_id, locked_at, used_at, issued_for, drop_id)
      SELECT id, template_id, user, seq, claim_day, day_seq, source, claimed_at, valid_from,
        valid_until, state, order_id, locked_at, used_at, issued_for, drop_id FROM coupons_coupons;
    DROP TABLE coupons_coupons;
    ALTER TABLE coupons_coupons_v2 RENAME TO coupons_coupons;
    CREATE UNIQUE INDEX coupons_coupons_drop ON coupons_coupons(drop_id, user) WHERE drop_id IS NOT NULL;
    CREATE UNIQUE INDEX coupons_coupons_order ON coupons_coupons(order_id) WHERE order_id IS NOT NULL;
    CREATE INDEX coupons_coupons_user ON coupons_coupons(user, id);
    CREATE TABLE coupons_drops_v2 (
      id INTEGER PRIMARY KEY,
      ref TEXT NOT NULL UNIQUE,
      template_id INTEGER NOT NULL REFERENCES coupons_templates(id),
      segment TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state = 'running' OR state = 'done' OR state = 'stopped'),
      cursor INTEGER NOT NULL DEFAULT 0,
      issued INTEGER NOT NULL DEFAULT 0,
      skipped INTEGER NOT NULL DEFAULT 0,
      runs INTEGER NOT NULL DEFAULT 0,
      members_at_start INTEGER,
      stop_reason TEXT,
      stop_message TEXT,
      started_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL,
      finished_at INTEGER,
      snapshot_id INTEGER
    );
    INSERT INTO coupons_drops_v2 (id, ref, template_id, segment, state, cursor, issued, skipped,
      runs, members_at_start, stop_reason, stop_message, started_at, updated_at, finished_at,
      snapshot_id)
      SELECT id, ref, template_id, segment, state, cursor, issued, skipped, runs, members_at_start,
        stop_reason, stop_message, started_at, updated_at, finished_at, snapshot_id FROM
        coupons_drops;
    DROP TABLE coupons_drops;
    ALTER TABLE coupons_drops_v2 RENAME TO coupons_drops;
    CREATE TABLE coupons_merge_moves_v2 (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind = 'coupon' OR kind = 'order' OR kind = 'skip'),
      row_id NOT NULL,
      seq INTEGER,
      day_seq INTEGER,
      drop_id INTEGER,
      new_seq INTEGER,
      new_day_seq INTEGER,
      new_drop_id INTEGER,
      into_had INTEGER,
      PRIMARY KEY (merge_id, kind, row_id)
    );
    INSERT INTO coupons_merge_moves_v2 (merge_id, kind, row_id, seq, day_seq, drop_id, new_seq,
      new_day_seq, new_drop_id, into_had)
      SELECT merge_id, kind, row_id, seq, day_seq, drop_id, new_seq, new_day_seq, new_drop_id,
        into_had FROM coupons_merge_moves;
    DROP TABLE coupons_merge_moves;
    ALTER TABLE coupons_merge_moves_v2 RENAME TO coupons_merge_moves;


    ]],
  },
  routes = ROUTES,
  exports = {
    quote = redeem.quote,
    lock = redeem.lock,
    unlock = redeem.unlock,
    consume = redeem.consume,
    restore = redeem.restore,
    relock = redeem.relock,
    issue = issue.export,
    drop = drops.start,
    campaign_apply = campaign.apply,
    campaign_withdraw = campaign.withdraw,
    member_merge = merge.member_merge,
    member_unmerge = merge.member_unmerge,
    schemas = function() return schema.document(ROUTES) end,
    ---The template coupon_id was issued from, or nil (no such coupon): for
    ---reports that credit an order's coupon to the campaign that made the
    ---template (analytics' campaigns per script).
    template_of = function(coupon_id)
      if math.type(coupon_id) ~= "integer" then return nil end
      local row = tp.db.one("SELECT template_id FROM coupons_coupons WHERE id = ?", coupon_id)
      return row and row.template_id
    end,
    ---Unused coupons whose validity ends in (from, to], by id after after_id:
    ---{id, user, template_id, name, valid_until}, at most limit (≤ 500). For
    ---reminders (the notify plugin's "about to expire").
    expiring = function(from, to, after_id, limit)
      return tp.json.array(tp.db.query([[SELECT c.id, c.user, c.template_id, t.name, c.valid_until
        FROM coupons_coupons c JOIN coupons_templates t ON t.id = c.template_id
        WHERE c.state = 'unused' AND c.valid_until > ?1 AND c.valid_until <= ?2 AND c.id > ?3
        ORDER BY c.id LIMIT ?4]], from, to, after_id or 0, math.min(limit or 100, 500)))
    end,
  },
  jobs = {
    [drops.JOB] = drops.slice,
  },
}
