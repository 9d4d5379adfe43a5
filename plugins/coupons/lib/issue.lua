---@diagnostic disable: undefined-global
-- coupons/lib/issue.lua: giving coupons out, by a user's claim (领券) or an
-- operator's targeted issue (定向发券).
--
-- Two guards keep the counts right on any store, not only on tidepool's
-- single writer: the template's counter moves with a conditional update
-- (issued < total_quantity), and every coupon row carries its user's
-- sequence number for the template and for the local day (the next after the
-- highest the user holds), both UNIQUE, so two racing claims of one user
-- cannot both land. The limits count coupons, never sequence numbers: a merge
-- undone (lib/merge.lua) may leave gaps in a user's numbers.

local check = require("tp.check")
local coupons = require("lib.coupons")
local audience = require("lib.audience")
local risk = require("tp.risk")

local issue = {}

---The longest source an export's issue takes: room for a prefix and any user
---id (64 bytes), so "campaign:hook:<user>" always fits.
issue.MAX_SOURCE = 200

---The calendar day of epoch in the tenant's time zone, as "YYYY-MM-DD".
---@param epoch integer
---@return string
function issue.local_day(epoch)
  local t = tp.localtime(epoch)
  return ("%04d-%02d-%02d"):format(t.year, t.month, t.day)
end

---Why template t cannot give out coupons now, or nil if it can.
---A claim also needs the claim window open; a targeted issue ignores it.
---@param t table a template row
---@param now integer
---@param window boolean check the claim window
---@return string|nil reason "paused"|"not_started"|"ended"|"expired"
---@return string|nil message
function issue.closed_reason(t, now, window)
  if t.status == "paused" then return "paused", "this coupon is paused" end
  if window and t.claim_starts_at and now < t.claim_starts_at then
    return "not_started", "claiming has not started yet"
  end
  if window and t.claim_ends_at and now >= t.claim_ends_at then
    return "ended", "claiming has ended"
  end
  if t.valid_until and now >= t.valid_until then
    return "expired", "coupons of this template are no longer valid"
  end
  return nil
end

---@class CouponHolding what one user holds of one template
---@field n integer coupons in all (what per_user_limit counts)
---@field today integer coupons of the local day (what per_user_daily_limit counts)
---@field seq integer the sequence number the next coupon takes
---@field day_seq integer the day's sequence number the next coupon takes
---@field in_drop integer 1 if one of them came from segment drop drop_id

---What user holds of template template_id, on day and from drop drop_id (nil: none).
---@param template_id integer
---@param user string
---@param day string
---@param drop_id integer|nil
---@return CouponHolding
function issue.holding(template_id, user, day, drop_id)
  return tp.db.one([[SELECT count(*) AS n, coalesce(sum(claim_day = ?1), 0) AS today,
      coalesce(max(seq), 0) + 1 AS seq,
      coalesce(max(CASE WHEN claim_day = ?1 THEN day_seq END), 0) + 1 AS day_seq,
      coalesce(max(drop_id = ?4), 0) AS in_drop
    FROM coupons_coupons WHERE template_id = ?2 AND user = ?3]], day, template_id, user, drop_id)
end

---Writes one coupon of template t for user h (its holding) says it takes (the
---counter has been moved already); issued_for is what an export's caller said
---the issue was for (else nil), drop_id the segment drop that gives it.
---Returns its id, or nil if a coupon with the same numbers (or of the same
---drop for the same user) exists.
---@param t table the template's row
---@param user string
---@param source "claim"|"issue"
---@param now integer
---@param day string
---@param h CouponHolding
---@param issued_for string|nil
---@param drop_id integer|nil
---@return integer|nil
function issue.insert_coupon(t, user, source, now, day, h, issued_for, drop_id)
  local from, till = t.valid_from, t.valid_until
  if t.valid_days then from, till = now, now + t.valid_days * 86400 end
  -- the id from the insert's count and rowid: RETURNING would cost an ephemeral table
  local inserted, id = tp.db.exec([[
    INSERT INTO coupons_coupons (template_id, user, seq, claim_day, day_seq, source, claimed_at,
      valid_from, valid_until, state, issued_for, drop_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'unused', ?, ?)
    ON CONFLICT DO NOTHING]],
    t.id, user, h.seq, day, h.day_seq, source, now, from, till, issued_for, drop_id)
  return inserted == 1 and id or nil
end

---POST /coupons/templates/{id}/claim (user) -> 201 Coupon
function issue.claim(req)
  local user, now = req.user, tp.now()
  local t = tp.db.one([[SELECT id, status, claim_starts_at, claim_ends_at, valid_from, valid_until,
    valid_days, per_user_limit, per_user_daily_limit, audience, segment, tag FROM coupons_templates
    WHERE id = ?]], req.params.id)
  if not t then tp.fail(404, "template_not_found", "no such coupon template") end
  if t.audience == "issue_only" then
    tp.fail(403, "issue_only", "this coupon is not claimed: the brand gives it to the customers it chooses")
  end
  if not audience.admits(t, user) then
    tp.fail(403, "members_only", "this coupon is for selected customers only")
  end
  risk.check(req, "claim", { plugin = "coupons", id = t.id })
  local reason, message = issue.closed_reason(t, now, true)
  if reason then tp.fail(409, "not_claimable", message, { reason = reason }) end

  -- limits first, then the reservation (a refused claim never touches the counter)
  local day = issue.local_day(now)
  local h = issue.holding(t.id, user, day)
  if h.n >= t.per_user_limit then
    tp.fail(409, "limit_reached", ("at most %d of this coupon per user"):format(t.per_user_limit),
      { per_user_limit = t.per_user_limit, held = h.n })
  end
  if t.per_user_daily_limit and h.today >= t.per_user_daily_limit then
    tp.fail(409, "daily_limit_reached",
      ("at most %d of this coupon per user per day"):format(t.per_user_daily_limit),
      { per_user_daily_limit = t.per_user_daily_limit, day = day })
  end
  local changed = tp.db.exec([[UPDATE coupons_templates SET issued = issued + 1
    WHERE id = ? AND issued < total_quantity]], t.id)
  if changed ~= 1 then tp.fail(409, "sold_out", "all of this coupon have been claimed") end
  local id = issue.insert_coupon(t, user, "claim", now, day, h)
  if not id then  -- another writer took the same sequence number: undo, as a limit
    tp.fail(409, "limit_reached", "this user's claim raced another one", { per_user_limit = t.per_user_limit })
  end
  return 201, coupons.load(id, user, now)
end

---The distinct user ids of list, in order; refuses anything else naming field.
---@param list any
---@param field string
---@return string[]
local function user_list(list, field)
  check.list(list, field, 1, check.MAX_ISSUE_USERS, "entries")
  local users, seen = {}, {}
  for i, u in ipairs(list) do
    if not check.is_user_id(u) then
      check.field_error(field, ("entry %d must be a user id (1-64 letters, digits, '_', '-', ':' or '@')")
        :format(i))
    end
    if not seen[u] then
      seen[u] = true
      users[#users + 1] = u
    end
  end
  return users
end

---Issues one coupon of template id to each of users (distinct ids): all or
---nothing on quantity; users at their per_user_limit are skipped; the claim
---window and the daily limit do not apply; a paused or expired template issues
---nothing (409 not_issuable). issued_for (nil from the admin route) is stored
---on each coupon: what the issue was for, as the calling plugin says it.
---Each id is the member it names now (tp.auth.resolve): a merged id issues to
---its survivor, once per person however many of its ids are listed; an
---erased member is skipped (reason erased).
---@param id integer
---@param users string[]
---@param issued_for string|nil
---@return {template_id: integer, issued: integer, skipped: {user: string, reason: string}[], coupons: {user: string, coupon_id: integer}[]}
function issue.to_users(id, users, issued_for)
  local t = tp.db.one([[SELECT id, status, total_quantity, issued, valid_from, valid_until,
    valid_days, per_user_limit FROM coupons_templates WHERE id = ?]], id)
  if not t then tp.fail(404, "template_not_found", "no such coupon template") end
  local now = tp.now()
  local reason, message = issue.closed_reason(t, now, false)
  if reason then tp.fail(409, "not_issuable", message, { reason = reason }) end

  local day = issue.local_day(now)
  local to_issue, skipped = {}, tp.json.array()
  local people = {}
  for _, given in ipairs(users) do
    local u = tp.auth.resolve(given)
    if u == nil then
      skipped[#skipped + 1] = { user = given, reason = "erased" }
    elseif not people[u] then
      people[u] = true
      local h = issue.holding(t.id, u, day)
      if h.n >= t.per_user_limit then
        skipped[#skipped + 1] = { user = u, reason = "limit_reached" }
      else
        to_issue[#to_issue + 1] = { user = u, holding = h }
      end
    end
  end
  local remaining = t.total_quantity - t.issued
  if #to_issue > remaining then
    tp.fail(409, "insufficient_quantity",
      ("%d users would get a coupon but only %d remain; nothing was issued"):format(#to_issue, remaining),
      { remaining = remaining, needed = #to_issue, skipped = #skipped })
  end
  local out = tp.json.array()
  if #to_issue > 0 then
    local changed = tp.db.exec([[UPDATE coupons_templates SET issued = issued + ?1
      WHERE id = ?2 AND issued + ?1 <= total_quantity]], #to_issue, t.id)
    if changed ~= 1 then
      tp.fail(409, "insufficient_quantity", "not enough coupons remain; nothing was issued",
        { needed = #to_issue })
    end
    for _, d in ipairs(to_issue) do
      local cid = issue.insert_coupon(t, d.user, "issue", now, day, d.holding, issued_for)
      if not cid then  -- a racing writer: the whole batch is undone
        tp.fail(409, "issue_conflict", "a coupon of user " .. d.user .. " was issued meanwhile; retry",
          { user = d.user })
      end
      out[#out + 1] = { user = d.user, coupon_id = cid }
    end
  end
  return { template_id = t.id, issued = #to_issue, skipped = skipped, coupons = out }
end

---POST /coupons/templates/{id}/issue {users = [user ids]} (admin) ->
---{issued, skipped = [{user, reason}], coupons = [{user, coupon_id}]} (see issue.to_users)
function issue.targeted(req)
  local body = check.body(req.body, true)
  check.only(body, { users = true })
  return 200, issue.to_users(req.params.id, user_list(body.users, "users"))
end

---exports.issue(template_id, users, source): a plugin's coupon drop (a
---campaign's, friend_assist's reward), sharing the admin route's rules and
---answering as it does: who got which coupon, and who was skipped and why
---(limit_reached: the user holds the template's per_user_limit already, which
---is 1 unless the template says more; erased: the member was erased). source
---(1-200 of letters, digits, '_', '-', '.', ':', '/' or '@': any user id with a
---prefix fits) says what the coupons are for; each coupon keeps it
---(coupons_coupons.issued_for).
---@param template_id integer
---@param users string[]
---@param source string
---@return {template_id: integer, issued: integer, skipped: {user: string, reason: "limit_reached"|"erased"}[], coupons: {user: string, coupon_id: integer}[]}
function issue.export(template_id, users, source)
  check.integer(template_id, "template_id", 1)
  local list = user_list(users, "users")
  if type(source) ~= "string" or #source > issue.MAX_SOURCE or not source:match("^[%w_%-%.:/@]+$") then
    check.field_error("source", ("must be 1-%d letters, digits, '_', '-', '.', ':', '/' or '@'")
      :format(issue.MAX_SOURCE))
  end
  return issue.to_users(template_id, list, source)
end

return issue
