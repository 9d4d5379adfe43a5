---@diagnostic disable: undefined-global
-- tiers (会员等级): growth (成长值), tiers with their benefits, member price,
-- paid membership (付费会员). The programme is the brand's config
-- (lib/program.lua); the rules are lib/standing.lua's head; member price is
-- lib/prices.lua, asked by the orders plugin while it prices an order.
--
-- User routes (/v1/{tenant}): GET /tiers (the programme), GET /tiers/me
-- Admin routes (/admin/{tenant}, X-Api-Key):
--   GET  /tiers/members/{user}            tier, growth, history, ledger
--   POST /tiers/members/{user}/growth     {amount, ref, note?}: a task's growth or an adjustment
--   GET  /tiers/report                    tier distribution, paid members
-- Subscribes: order.paid, order.refunded, signin.checked_in
-- Emits: tier.changed {user, from, to, reason}
-- Jobs: review (local midnight of each period), paid_end, gift, birthday (daily), birthday_slice
-- Exports: member_prices, benefits, add_growth, member_merge, member_unmerge (README)

local check = require("tp.check")
local program = require("lib.program")
local standing = require("lib.standing")
local prices = require("lib.prices")
local birthday = require("lib.birthday")
local merge = require("lib.merge")

-- the programme is checked as the plugin loads: a wrong config fails the load, naming the key
program.get()

local I, S, B = { type = "integer" }, { type = "string" }, { type = "boolean" }
local NS = { type = "string", nullable = true }

local BENEFITS = { type = "object", properties = {
  discount_percent = { type = "integer", nullable = true, description = "member price: list * percent / 100" },
  member_prices = { type = "object", description = "sku -> member price in fen" },
  free_shipping = B,
  birthday_coupon = { type = "integer", nullable = true, description = "a coupons template id" },
  upgrade_coupon = { type = "integer", nullable = true, description = "a coupons template id, given on reaching the tier" } } }

local LEVEL = { type = "object", properties = { id = S, name = S, growth = I, benefits = BENEFITS } }

local STANDING = { type = "object", properties = {
  user = S, tier = NS, name = NS,
  growth = { type = "integer", description = "growth that counts (the window's)" },
  growth_total = { type = "integer", description = "all growth ever, net of refunds" },
  held = { type = "string", nullable = true, description = "the tier held by growth" },
  tier_since = { type = "integer", nullable = true },
  paid_tier = NS, paid_until = { type = "integer", nullable = true, description = "a paid membership's end (local midnight)" },
  next = { type = "object", nullable = true, properties = { tier = S, growth_needed = I } },
  next_review_at = { type = "integer", nullable = true },
  benefits = BENEFITS,
  history = { type = "array", description = "admin only, newest first", items = { type = "object", properties = {
    from = NS, to = NS, reason = S, at = I } } },
  ledger = { type = "array", description = "admin only, newest first (50)", items = { type = "object", properties = {
    amount = I, kind = S, ref = S, at = I } } } } }

local function benefits_of(level)
  if not level then return { free_shipping = false, member_prices = tp.json.object({}) } end
  return { discount_percent = level.discount_percent, member_prices = tp.json.object(level.prices or {}),
           free_shipping = level.free_shipping, birthday_coupon = level.birthday_coupon,
           upgrade_coupon = level.upgrade_coupon }
end

---A member's standing as the API shows it.
local function shape(user, admin)
  local now = tp.now()
  local r = standing.row(user)
  local counted, total = standing.growth(user, now)
  local p = program.get()
  local level = prices.level_of(user)
  local out = { user = user, tier = level and level.id, name = level and level.name, growth = counted,
                growth_total = total, held = r.held, tier_since = r.tier_since, paid_tier = r.paid_tier,
                paid_until = r.paid_until, benefits = benefits_of(level) }
  local held_rank = r.held and p.by_id[r.held] and p.by_id[r.held].rank or 0
  local nxt = p.levels[held_rank + 1]
  if nxt then out.next = { tier = nxt.id, growth_needed = math.max(nxt.growth - counted, 0) } end
  out.next_review_at = require("lib.calendar").next_period(now, p.every)
  if admin then
    out.history = tp.json.array(tp.db.query([[SELECT from_tier AS "from", to_tier AS "to", reason, at
      FROM tiers_history WHERE user = ? ORDER BY id DESC LIMIT 50]], user))
    out.ledger = tp.json.array(tp.db.query([[SELECT amount, kind, ref, at FROM tiers_ledger
      WHERE user = ? ORDER BY id DESC LIMIT 50]], user))
  end
  return out
end

local function get_programme()
  local p = program.get()
  local levels = tp.json.array()
  for i, l in ipairs(p.levels) do
    levels[i] = { id = l.id, name = l.name, growth = l.growth, benefits = benefits_of(l) }
  end
  local plans = tp.json.array()
  for _, plan in pairs(p.paid) do plans[#plans + 1] = { sku = plan.sku, tier = plan.tier, days = plan.days } end
  table.sort(plans, function(a, b) return a.sku < b.sku end)
  return 200, { levels = levels, paid = plans, review = { every = p.every, grace_days = p.grace_days },
                window_days = p.window_days, growth = { per_100_fen = p.per_100_fen, signin = p.signin },
                member_price = { with_coupon = p.with_coupon, with_campaign = p.with_campaign } }
end

local function me(req)
  return 200, shape(req.user, false)
end

local function admin_member(req)
  return 200, shape(check.user(req.params.user, "user"), true)
end

---POST /tiers/members/{user}/growth {amount, ref, note?}: a task's growth (or,
---negative, an operator's correction), once per ref.
local function admin_growth(req)
  local user = check.user(req.params.user, "user")
  local body = check.body(req.body, true)
  check.only(body, { amount = true, ref = true, note = true })
  local amount = check.integer(body.amount, "amount", -1000000, 1000000)
  if amount == 0 then check.field_error("amount", "must not be 0") end
  local ref = check.ident(body.ref, "ref", 64)
  check.text(body.note, "note", 200, true)
  local added = standing.post(user, amount, amount > 0 and "task" or "adjust", "admin:" .. ref)
  return added and 201 or 200, { added = added, standing = shape(user, true) }
end

local function report()
  local now = tp.now()
  local counts = {}
  for _, r in ipairs(tp.db.query("SELECT tier, count(*) AS n FROM tiers_members GROUP BY tier")) do
    counts[r.tier or ""] = r.n
  end
  local items = tp.json.array()
  local total = 0
  for _, l in ipairs(program.get().levels) do
    items[#items + 1] = { tier = l.id, name = l.name, members = counts[l.id] or 0 }
    total = total + (counts[l.id] or 0)
  end
  local paid = tp.db.one("SELECT count(*) AS n FROM tiers_members WHERE paid_until > ?", now).n
  return 200, { tiers = items, members = total, without_tier = counts[""] or 0, paid_members = paid }
end

local GROWTH_ERRORS = { [400] = { "invalid_field" } }

return {
  name = "tiers",
  version = "1.1.1",
  description = "Member tiers: growth, upgrades, reviews with grace, member price, paid membership",
  migrations = {
    [[
    -- one row per cause of growth; a refund's rows are negative
    CREATE TABLE tiers_ledger (
      id INTEGER PRIMARY KEY,
      user TEXT NOT NULL,
      amount INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('order', 'refund', 'signin', 'task', 'adjust')),
      ref TEXT NOT NULL,
      at INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      UNIQUE (user, kind, ref)
    );
    CREATE INDEX tiers_ledger_at ON tiers_ledger(user, at);
    -- tier: what counts now; held: by growth; paid_*: a paid membership
    CREATE TABLE tiers_members (
      user TEXT PRIMARY KEY,
      tier TEXT,
      held TEXT,
      tier_since INTEGER,
      paid_tier TEXT,
      paid_until INTEGER,
      updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX tiers_members_tier ON tiers_members(tier);
    CREATE TABLE tiers_history (
      id INTEGER PRIMARY KEY,
      user TEXT NOT NULL,
      from_tier TEXT,
      to_tier TEXT,
      reason TEXT NOT NULL,
      at INTEGER NOT NULL
    );
    CREATE INDEX tiers_history_user ON tiers_history(user, id);
    -- one row per membership order (its days come back on a full refund)
    CREATE TABLE tiers_paid (
      order_id INTEGER PRIMARY KEY,
      user TEXT NOT NULL,
      tier TEXT NOT NULL,
      days INTEGER NOT NULL,
      at INTEGER NOT NULL,
      revoked_at INTEGER
    );
    -- merging members (lib/merge.lua)
    CREATE TABLE tiers_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    -- kind ledger: a tiers_ledger id; paid: a tiers_paid order_id
    CREATE TABLE tiers_merge_moves (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL,
      row_id INTEGER NOT NULL,
      PRIMARY KEY (merge_id, kind, row_id)
    ) WITHOUT ROWID;
    CREATE TABLE tiers_merge_prior (
      merge_id INTEGER PRIMARY KEY,
      from_row TEXT,
      into_row TEXT
    );
    CREATE TABLE tiers_gifts (
      user TEXT NOT NULL,
      tier TEXT NOT NULL,
      kind TEXT NOT NULL,
      template_id INTEGER NOT NULL,
      coupon_id INTEGER,
      at INTEGER NOT NULL,
      PRIMARY KEY (user, tier, kind)
    ) WITHOUT ROWID;
    ]],
    -- 1.1.0: tiers_ledger's value lists checked with ORs, not IN (...): SQLite evaluates
    -- a CHECK's IN list of three or more values by building a temporary b-tree of it on
    -- every row written, about 30k instructions, and every order paid, refunded, sign-in
    -- and task writes a growth row (`tidepool check` warns of it). A CHECK cannot change
    -- in place, so the table is rebuilt: new, copy, drop, rename, indexes again.
    [[
    CREATE TABLE tiers_ledger_v2 (
      id INTEGER PRIMARY KEY,
      user TEXT NOT NULL,
      amount INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind = 'order' OR kind = 'refund' OR kind = 'signin' OR kind = 'task'
        OR kind = 'adjust'),
      ref TEXT NOT NULL,
      at INTEGER NOT NULL,
      created_at INTEGER NOT NULL,
      UNIQUE (user, kind, ref)
    );
    INSERT INTO tiers_ledger_v2 (
        id, user, amount, kind, ref, at, created_at)
      SELECT
        id, user, amount, kind, ref, at, created_at
      FROM tiers_ledger;
    DROP TABLE tiers_ledger;
    ALTER TABLE tiers_ledger_v2 RENAME TO tiers_ledger;
    CREATE INDEX tiers_ledger_at ON tiers_ledger(user, at);
    ]],
  },
  routes = {
    { method = "GET", path = "/tiers", auth = "none", handler = get_programme,
      summary = "The brand's tiers, their thresholds and benefits, and its paid memberships",
      response = { type = "object", properties = { levels = { type = "array", items = LEVEL },
        paid = { type = "array", items = { type = "object", properties = { sku = S, tier = S, days = I } } },
        review = { type = "object", properties = { every = S, grace_days = I } }, window_days = I,
        growth = { type = "object", properties = { per_100_fen = I, signin = I } },
        member_price = { type = "object", properties = { with_coupon = B, with_campaign = S } } } } },
    { method = "GET", path = "/tiers/me", handler = me,
      summary = "The caller's tier, growth, next tier and benefits", response = STANDING },
    { method = "GET", path = "/tiers/members/{user}", auth = "admin", handler = admin_member,
      errors = { [400] = { "invalid_field" } },
      summary = "A member's tier, growth, history and recent growth entries", response = STANDING },
    { method = "POST", path = "/tiers/members/{user}/growth", auth = "admin", handler = admin_growth,
      status = { 200, 201 }, errors = GROWTH_ERRORS,
      summary = "Give a task's growth (or correct it with a negative amount), once per ref",
      description = "201 when posted, 200 when that ref was posted before (nothing changes). "
        .. "The tier rises at once; a correction lowers it only at the next review.",
      body = { type = "object", required = { "amount", "ref" }, properties = {
        amount = { type = "integer", minimum = -1000000, maximum = 1000000 },
        ref = { type = "string", maxLength = 64 }, note = { type = "string", maxLength = 200 } } },
      response = { type = "object", properties = { added = B, standing = STANDING } } },
    { method = "GET", path = "/tiers/report", auth = "admin", handler = report,
      summary = "Tier distribution: members per tier, and paid members",
      response = { type = "object", properties = {
        tiers = { type = "array", items = { type = "object", properties = { tier = S, name = S, members = I } } },
        members = I, without_tier = I, paid_members = I } } },
  },
  subscribe = {
    ["order.paid"] = standing.on_paid,
    ["order.refunded"] = standing.on_refunded,
    ["signin.checked_in"] = standing.on_signin,
  },
  jobs = {
    review = standing.review,
    paid_end = standing.paid_end,
    gift = standing.gift_job,
    retag = standing.retag,
    birthday = birthday.daily,
    birthday_slice = birthday.slice,
  },
  setup = function()
    program.get()
    standing.declare()
    standing.schedule_review()
    tp.jobs.schedule("birthday", nil, { at = birthday.next_at(), every = 86400, key = "birthday" })
  end,
  exports = {
    member_prices = prices.export,
    member_merge = merge.member_merge,
    member_unmerge = merge.member_unmerge,
    ---benefits(user) -> {tier, free_shipping, discount_percent, ...}: what a
    ---shipping or checkout plugin needs to know of the buyer's tier.
    benefits = function(user)
      local level = prices.level_of(user)
      local b = benefits_of(level)
      b.tier = level and level.id
      return b
    end,
    ---add_growth(user, amount, ref) -> boolean: a task's growth (签到之外的任务),
    ---once per (calling plugin, ref).
    add_growth = function(user, amount, ref)
      check.user(user, "user")
      check.integer(amount, "amount", 1, 1000000)
      check.ident(ref, "ref", 64)
      return standing.post(user, amount, "task", (tp.caller() or "tiers") .. ":" .. ref)
    end,
  },
}
