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
--   PATCH /coupons/templates/{id}               name, status, claim_ends_at, total_quantity, audience
--   POST  /coupons/templates/{id}/issue {users} targeted issue  -> {issued, skipped, coupons}
--   GET   /coupons/templates/{id}/coupons?state=&limit=&after=    -> {items, next_after}
-- User routes (/v1/{tenant}, bearer token):
--   GET   /coupons/claimable?limit=&after=      (auth optional) -> {items, next_after}
--   POST  /coupons/templates/{id}/claim                         -> 201 Coupon
--   GET   /coupons/mine?state=&limit=&after=                    -> {items, next_after}
-- Exports (tp.call("coupons", name, ...)): quote, lock, unlock, consume, relock
-- (see lib/redeem.lua); issue (lib/issue.lua: the targeted issue for other
-- plugins); campaign_apply, campaign_withdraw (lib/campaign.lua; README).

local templates = require("lib.templates")
local coupons = require("lib.coupons")
local issue = require("lib.issue")
local redeem = require("lib.redeem")
local campaign = require("lib.campaign")

-- ---- route docs (OpenAPI)

local TEMPLATE = { type = "object", description = "a coupon template (CouponTemplate)",
  properties = {
    id = { type = "integer" }, name = { type = "string" },
    kind = { type = "string", enum = { "fixed", "percent", "threshold" } },
    amount_off_fen = { type = "integer" }, percent_off = { type = "integer" },
    max_discount_fen = { type = "integer" }, min_spend_fen = { type = "integer" },
    claim_starts_at = { type = "integer" }, claim_ends_at = { type = "integer" },
    valid_from = { type = "integer" }, valid_until = { type = "integer" },
    valid_days = { type = "integer" }, total_quantity = { type = "integer" },
    issued = { type = "integer" }, remaining = { type = "integer" },
    per_user_limit = { type = "integer" }, per_user_daily_limit = { type = "integer" },
    scope = { type = "string", enum = { "all", "products", "exclude" } },
    product_ids = { type = "array", items = { type = "integer" } },
    status = { type = "string", enum = { "active", "paused" } },
    audience = { type = "string", enum = { "public", "issue_only" } },
  } }

local TEMPLATE_BODY = { type = "object", required = { "name", "kind", "total_quantity" },
  properties = {
    name = { type = "string", minLength = 1, maxLength = 100 },
    kind = { type = "string", enum = { "fixed", "percent", "threshold" } },
    amount_off_fen = { type = "integer", minimum = 1, description = "fixed, threshold" },
    percent_off = { type = "integer", minimum = 1, maximum = 99, description = "percent" },
    max_discount_fen = { type = "integer", minimum = 1, description = "percent: the cap" },
    min_spend_fen = { type = "integer", minimum = 0,
                      description = "threshold: required, above amount_off_fen" },
    claim_starts_at = { type = "integer" }, claim_ends_at = { type = "integer" },
    valid_from = { type = "integer" }, valid_until = { type = "integer" },
    valid_days = { type = "integer", minimum = 1, maximum = 3650 },
    total_quantity = { type = "integer", minimum = 1 },
    per_user_limit = { type = "integer", minimum = 1, description = "default 1" },
    per_user_daily_limit = { type = "integer", minimum = 1 },
    scope = { type = "string", enum = { "all", "products", "exclude" } },
    product_ids = { type = "array", items = { type = "integer", minimum = 1 } },
    status = { type = "string", enum = { "active", "paused" } },
    audience = { type = "string", enum = { "public", "issue_only" },
                 description = "public (default): listed as claimable and claimed by anyone; "
                   .. "issue_only: given only by an issue or a campaign's drop" },
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

---GET /coupons/claimable?limit=&after= : active public templates whose claim window is open now,
---that still have quantity and whose coupons are not already expired. With a user, each
---item also says how many that user holds (claimed) and whether they may claim one now.
local function claimable(req)
  local q = req.query
  local limit = math.tointeger(tonumber(q.limit or "50"))
  local after = math.tointeger(tonumber(q.after or "0"))
  if not limit or limit < 1 or limit > 200 then
    tp.fail(400, "invalid_query", "limit must be an integer from 1 to 200")
  end
  if not after or after < 0 then tp.fail(400, "invalid_query", "after must be a template id") end
  local now = tp.now()
  local rows = tp.db.query("SELECT " .. templates.COLUMNS .. [[ FROM coupons_templates
    WHERE status = 'active' AND audience = 'public' AND issued < total_quantity
      AND (claim_starts_at IS NULL OR claim_starts_at <= :now)
      AND (claim_ends_at IS NULL OR claim_ends_at > :now)
      AND (valid_until IS NULL OR valid_until > :now)
      AND id > :after
    ORDER BY id LIMIT :limit]], { now = now, after = after, limit = limit })
  local items = templates.shape_all(rows, false)
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
  return 200, { items = items, next_after = #items == limit and items[#items].id or nil }
end

return {
  name = "coupons",
  version = "1.2.0",
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
  },
  routes = {
    { method = "POST", path = "/coupons/templates", auth = "admin", handler = templates.create,
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
    { method = "GET", path = "/coupons/templates/{id:int}", auth = "admin", handler = templates.get,
      summary = "One coupon template", response = TEMPLATE },
    { method = "PATCH", path = "/coupons/templates/{id:int}", auth = "admin",
      handler = templates.update,
      summary = "Change a template's name, status, claim_ends_at (null: no end), total_quantity "
        .. "or audience",
      description = "total_quantity may go up, or down to the number issued but never below it "
        .. "(409 quantity_below_issued). Other fields cannot change.",
      body = { type = "object", properties = {
        name = { type = "string", minLength = 1, maxLength = 100 },
        status = { type = "string", enum = { "active", "paused" } },
        claim_ends_at = { type = "integer", nullable = true },
        total_quantity = { type = "integer", minimum = 1 },
        audience = { type = "string", enum = { "public", "issue_only" } } } },
      response = TEMPLATE },
    { method = "POST", path = "/coupons/templates/{id:int}/issue", auth = "admin",
      handler = issue.targeted,
      summary = "Issue one coupon to each listed user (定向发券), all or nothing on quantity",
      description = "Duplicates count once; users at per_user_limit are skipped and listed. If "
        .. "the remaining quantity cannot cover every other user, nothing is issued (409 "
        .. "insufficient_quantity). The claim window and the daily limit do not apply; a paused "
        .. "or expired template issues nothing (409 not_issuable).",
      body = { type = "object", required = { "users" }, properties = {
        users = { type = "array", minItems = 1, maxItems = 1000,
                  items = { type = "string", pattern = "^[A-Za-z0-9_:@-]{1,64}$" } } } },
      response = { type = "object", properties = {
        template_id = { type = "integer" }, issued = { type = "integer" },
        skipped = { type = "array", items = { type = "object", properties = {
          user = { type = "string" }, reason = { type = "string", enum = { "limit_reached" } } } } },
        coupons = { type = "array", items = { type = "object", properties = {
          user = { type = "string" }, coupon_id = { type = "integer" } } } } } } },
    { method = "GET", path = "/coupons/templates/{id:int}/coupons", auth = "admin",
      handler = coupons.of_template,
      summary = "Every coupon of a template, a page at a time",
      query = state_query(1000), response = page_of(COUPON) },
    { method = "GET", path = "/coupons/claimable", auth = "optional", handler = claimable,
      summary = "Templates a user can claim now: active, window open, quantity left",
      description = "With a token, each item also has claimed (how many the user holds) and "
        .. "can_claim.",
      query = {
        limit = { type = "integer", description = "1-200 (default 50)" },
        after = { type = "integer", description = "next_after of the previous page" },
      },
      response = page_of(TEMPLATE) },
    { method = "POST", path = "/coupons/templates/{id:int}/claim", auth = "user",
      handler = issue.claim, status = 201,
      summary = "Claim one coupon of a template (领券)",
      description = "409 not_claimable (details.reason paused, not_started, ended or expired), "
        .. "sold_out, limit_reached or daily_limit_reached (a day in the tenant's time zone); "
        .. "403 issue_only for a template the brand only gives out (an issue or a drop).",
      response = COUPON },
    { method = "GET", path = "/coupons/mine", auth = "user", handler = coupons.mine,
      summary = "The caller's own coupons", query = state_query(200), response = page_of(COUPON) },
  },
  exports = {
    quote = redeem.quote,
    lock = redeem.lock,
    unlock = redeem.unlock,
    consume = redeem.consume,
    relock = redeem.relock,
    issue = issue.export,
    campaign_apply = campaign.apply,
    campaign_withdraw = campaign.withdraw,
  },
}
