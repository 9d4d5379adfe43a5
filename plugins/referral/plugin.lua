---@diagnostic disable: undefined-global
-- referral (分销): distributors (promoters and stores' shopping guides) share
-- links carrying their referral code; a user who opens one is bound to the
-- distributor; orders ask attribution(user) at creation and store the
-- referrer, the referrer's referrer, the store and the guide on the order;
-- commission on those two levels is a ledger fed by order events: frozen on
-- payment, reversed on refund, settled after the refund window, withdrawn on
-- the operator's approval.
--
-- Two invariants no config can break: at most two levels earn, and nobody
-- pays to gain earning rights (lib/settings.lua refuses such config at load).
-- Rules: lib/binding.lua (who is bound to whom), lib/commission.lua (the
-- ledger), lib/ledger.lua (balances, withdrawals), lib/reports.lua.

local check = require("tp.check")
local settings = require("lib.settings")
local distributors = require("lib.distributors")
local binding = require("lib.binding")
local commission = require("lib.commission")
local ledger = require("lib.ledger")
local reports = require("lib.reports")
local merge = require("lib.merge")
local schema = require("tp.schema")

-- Read once per loaded generation: a config change arrives with a reload,
-- which loads the plugin (and checks its config) again.
local S = settings.read(tp.config())

local function body_of(req)
  return req.body == nil and {} or check.body(req.body, true)
end

local function user_param(req)
  local user = req.params.user
  if not check.is_user_id(user) then tp.fail(400, "invalid_user", "not a user id") end
  return user
end

local function binding_view(b)
  if not b then return tp.json.null end
  return { referrer = b.referrer, code = b.code, bound_at = b.bound_at, expires_at = b.expires_at }
end

local function distributor_view(d)
  if not d then return tp.json.null end
  return d
end

-- ---- users

---POST /referral/join
local function join(req)
  check.only(body_of(req), {})
  return distributors.join(req.user, S.join_mode)
end

---GET /referral/me
local function me(req)
  local team = reports.team(req.user, 1, 0)
  return 200, { user = req.user, distributor = distributor_view(distributors.get(req.user)),
    binding = binding_view(binding.current(req.user, tp.now())),
    earnings = ledger.balance(req.user),
    team = { level1 = team.level1, level2 = team.level2 } }
end

---POST /referral/bind {code}
local function bind(req)
  local body = body_of(req)
  check.only(body, { code = true })
  local code = check.ident(body.code, "code", 32)
  local b, changed = binding.bind(req.user, code, S)
  local view = binding_view(b)
  view.changed = changed
  return changed and 201 or 200, view
end

local function team(req)
  local level = req.query.level and math.tointeger(tonumber(req.query.level)) or 1
  if level ~= 1 and level ~= 2 then tp.fail(400, "invalid_query", "level must be 1 or 2") end
  local limit = check.page(req.query, 100, 500)
  return 200, reports.team(req.user, level, limit)
end

local function my_orders(req)
  local limit, after = check.page(req.query, 20, 100)
  return 200, reports.orders(req.user, limit, after)
end

local function earnings(req)
  local limit, after = check.page(req.query, 20, 100)
  local answer = ledger.balance(req.user)
  answer.entries = ledger.entries(req.user, limit, after)
  return 200, answer
end

local function request_withdrawal(req)
  return 201, ledger.request(req.user, body_of(req), S)
end

---GET /referral/withdrawals/{id}/transfer: wx.requestMerchantTransfer's
---parameters for my withdrawal while its transfer waits for me.
local function my_transfer(req)
  return 200, ledger.confirmation(req.params.id, req.user)
end

local function my_withdrawals(req)
  local limit, after = check.page(req.query, 20, 100)
  return 200, ledger.list(req.user, nil, limit, after)
end

-- ---- operators

local function admin_settings()
  local s = {}
  for k, v in pairs(S) do s[k] = v end
  s.max_levels = 2
  return 200, s
end

local function create_store(req) return 201, distributors.create_store(body_of(req)) end

local function update_store(req)
  return 200, distributors.update_store(check.ident(req.params.id, "id", 64), body_of(req))
end

local function list_stores() return 200, { items = distributors.stores() } end

local function designate(req) return distributors.designate(body_of(req)) end

local function list_distributors(req) return 200, { items = distributors.list(req.query) } end

local function get_distributor(req)
  local user = user_param(req)
  local d = distributors.get(user)
  if not d then tp.fail(404, "distributor_not_found", "no such distributor") end
  local t = reports.team(user, 1, 0)
  d.earnings = ledger.balance(user)
  d.team = { level1 = t.level1, level2 = t.level2 }
  d.binding = binding_view(binding.current(user, tp.now()))
  return 200, d
end

local function update_distributor(req) return 200, distributors.update(user_param(req), body_of(req)) end
local function approve(req) return 200, distributors.decide(user_param(req), "active") end
local function reject(req) return 200, distributors.decide(user_param(req), "rejected") end

local function list_withdrawals(req)
  local limit, after = check.page(req.query, 50, 500)
  local status = check.enum(req.query.status, "status",
    { pending = true, approved = true, paid = true, failed = true, rejected = true }, true)
  local user = req.query.user
  if user ~= nil and not check.is_user_id(user) then tp.fail(400, "invalid_query", "user is not a user id") end
  return 200, ledger.list(user, status, limit, after)
end

local function decide_withdrawal(to)
  return function(req)
    local body = body_of(req)
    check.only(body, { reason = true })
    return 200, ledger.decide(req.params.id, to, check.text(body.reason, "reason", 200, true), S)
  end
end

local function cancel_withdrawal(req)
  check.only(body_of(req), {})
  return ledger.cancel(req.params.id)
end

-- A SKU's own rates, declared once (tp.schema): the checks and the PUT body.
local SKU_RATE = schema.new {
  { "level1_rate_bp", "integer", min = 0, max = settings.MAX_RATE_BP, required = true,
    doc = "basis points of the line paid to the referrer" },
  { "level2_rate_bp", "integer", min = 0, max = settings.MAX_RATE_BP, required = true,
    doc = "basis points paid to the referrer's referrer; with level1_rate_bp at most 10000" },
}

local function put_sku_rate(req)
  local sku = check.ident(req.params.sku, "sku", 64)
  local body = body_of(req)
  check.only(body, SKU_RATE.names,
    "is not a rate this plugin pays (only level1_rate_bp and level2_rate_bp: two levels at most)")
  SKU_RATE:check(body)
  local l1, l2 = body.level1_rate_bp, body.level2_rate_bp
  if l1 + l2 > settings.MAX_RATE_BP then
    check.field_error("level2_rate_bp", "level1_rate_bp + level2_rate_bp cannot exceed 10000")
  end
  tp.db.exec([[INSERT INTO referral_sku_rates (sku, level1_rate_bp, level2_rate_bp, updated_at)
    VALUES (?1, ?2, ?3, ?4) ON CONFLICT (sku) DO UPDATE SET level1_rate_bp = ?2, level2_rate_bp = ?3,
    updated_at = ?4]], sku, l1, l2, tp.now())
  return 200, { sku = sku, level1_rate_bp = l1, level2_rate_bp = l2 }
end

local function delete_sku_rate(req)
  local sku = check.ident(req.params.sku, "sku", 64)
  if tp.db.exec("DELETE FROM referral_sku_rates WHERE sku = ?", sku) == 0 then
    tp.fail(404, "rate_not_found", "this SKU has no override")
  end
  return 200, { sku = sku, deleted = true }
end

local function list_sku_rates()
  return 200, { items = tp.db.query([[SELECT sku, level1_rate_bp, level2_rate_bp, updated_at
    FROM referral_sku_rates ORDER BY sku LIMIT 1000]]) }
end

local function store_performance(req)
  local id = check.ident(req.params.id, "id", 64)
  if not distributors.store(id) then tp.fail(404, "store_not_found", ("no store %s"):format(id)) end
  local from, to = reports.period(req.query)
  return 200, reports.store(id, from, to)
end

---GET /referral/stores/{id}/orders: the store's paid orders, newest first, as
---referral attributed them (the buyer's member id, the guide, what was paid and
---refunded): a store manager's own list, where the orders plugin's is the brand's.
local function store_orders(req)
  local id = check.ident(req.params.id, "id", 64)
  if not distributors.store(id) then tp.fail(404, "store_not_found", ("no store %s"):format(id)) end
  local limit, after = check.page(req.query, 50, 500)
  local rows = tp.db.query([[SELECT order_id, buyer, guide, paid_fen, refunded_fen, paid_at, completed_at
    FROM referral_orders WHERE store = ?1 AND (?2 IS NULL OR order_id < ?2)
    ORDER BY order_id DESC LIMIT ?3]], id, after, limit)
  return 200, { store = id, items = tp.json.array(rows),
                next_after = #rows == limit and rows[#rows].order_id or nil }
end

local function stores_performance(req)
  local from, to = reports.period(req.query)
  return 200, reports.stores(from, to)
end

local function leaderboard(req) return 200, reports.leaderboard(req.query) end

-- ---- events, jobs, exports

local subscribe = {
  ["order.paid"] = function(ev) commission.on_paid(ev.data.order, S) end,
  ["order.refunded"] = function(ev)
    commission.on_refunded(ev.data.order, ev.data.refund_no, ev.data.amount_fen)
  end,
  ["order.completed"] = function(ev) commission.on_completed(ev.data.order, S) end,
}

local exports = {}

---Who an order user places now is attributed to: {referrer, referrer2, store, guide}.
function exports.attribution(user)
  check.user(user, "user")
  return binding.attribution(user)
end

---Approves a pending withdrawal as the operator's route does (the balance
---checked again, its transfer asked for), for a plugin that approves by its
---own rules (say, every withdrawal under ¥50), inside that plugin's
---transaction: if the caller then fails, nothing was approved and no transfer
---is asked for.
---@param id integer
---@param reason string?
---@return table withdrawal
function exports.approve_withdrawal(id, reason)
  return ledger.decide(check.integer(id, "id", 1), "approved", check.text(reason, "reason", 200, true), S)
end

---payments hands back a change of a transfer this plugin asked for (a
---withdrawal's): recorded, and its end pays the withdrawal or gives the money
---back (lib/ledger.lua).
---@param bill table {out_bill_no, ref, state, fail_reason, final, ...}
---@return table withdrawal
function exports.transfer_updated(bill)
  if tp.caller() ~= "payments" then tp.fail(403, "not_allowed", "only payments reports transfers") end
  return ledger.transfer_updated(bill)
end

---The members plugin merges member `from` into `into` (one person): her
---distributor record, binding, team, ledger, withdrawals and daily counters
---become `into`'s; see lib/merge.lua for the collision rules.
---@param from string
---@param into string
---@param merge_id integer
---@return ReferralMoved moved
function exports.member_merge(from, into, merge_id)
  return merge.merge(from, into, merge_id)
end

---Undoes merge merge_id: exactly what it moved goes back to `from`.
---@param from string
---@param into string
---@param merge_id integer
---@return ReferralMoved moved back
function exports.member_unmerge(from, into, merge_id)
  return merge.unmerge(from, into, merge_id)
end

-- ---- docs

local PERIOD = { from = { type = "integer", description = "UTC epoch seconds (default: to - 30 days)" },
                 to = { type = "integer", description = "UTC epoch seconds, exclusive (default: now)" } }
local PAGE = { limit = { type = "integer" }, after = { type = "integer", description = "next_after" } }
local BALANCE = { type = "object", description = "money in integer fen", properties = {
  frozen_fen = { type = "integer" }, settled_fen = { type = "integer" }, withdrawn_fen = { type = "integer" },
  pending_withdrawal_fen = { type = "integer" },
  available_fen = { type = "integer", description = "settled - withdrawn - pending; may be negative" } } }
local DISTRIBUTOR = { type = "object", properties = {
  user = { type = "string" }, kind = { type = "string", enum = { "promoter", "guide" } },
  store = { type = "string" }, code = { type = "string", description = "the referral code share links carry" },
  status = { type = "string", enum = { "pending", "active", "rejected", "disabled" } } } }
local BINDING = { type = "object", properties = { referrer = { type = "string" }, code = { type = "string" },
  bound_at = { type = "integer" }, expires_at = { type = "integer", description = "absent: forever" },
  changed = { type = "boolean" } } }
local PERF = { type = "object", properties = { orders = { type = "integer" }, sales_fen = { type = "integer" },
  commission_fen = { type = "integer" }, guides = { type = "array" } } }
local REASON = { type = "object", properties = { reason = { type = "string" } } }
local I, S_, B = { type = "integer" }, { type = "string" }, { type = "boolean" }
local function page_of(item)
  return { type = "object", properties = { items = { type = "array", items = item },
                                           next_after = { type = "integer", description = "the next page's after" } } }
end
local function list_of(item) return { type = "object", properties = { items = { type = "array", items = item } } } end
local WITHDRAWAL = { type = "object", description = "money in integer fen", properties = {
  id = I, user = S_, amount_fen = I,
  status = { type = "string", enum = { "pending", "approved", "paid", "failed", "rejected" },
    description = "approved: held, its transfer on its way; paid: the transfer succeeded; failed: it ended "
      .. "without paying (fail_reason) and the money is available again" },
  reason = S_, requested_at = I, decided_at = I,
  out_bill_no = { type = "string", description = "the transfer's number (商家转账), once approved" },
  transfer_state = { type = "string", description = "the transfer's state at WeChat Pay (WAIT_USER_CONFIRM, "
    .. "SUCCESS, FAIL, CANCELLED, ...)" },
  fail_reason = S_, finished_at = I } }
local CONFIRM = { type = "object", required = { "withdrawal_id", "out_bill_no", "request_merchant_transfer" },
  properties = { withdrawal_id = I, amount_fen = I, out_bill_no = S_, transfer_state = S_,
    request_merchant_transfer = { type = "object", required = { "mchId", "appId", "package" },
      description = "the parameters of wx.requestMerchantTransfer, as they are",
      properties = { mchId = S_, appId = S_, package = { type = "string", description = "WeChat's package_info" } } } } }
local STORE_ROW = { type = "object", properties = {
  id = S_, name = S_, status = { type = "string", enum = { "open", "closed" } }, created_at = I,
  guides = { type = "integer", description = "active guides (one store's answer only)" } } }
local ME = { type = "object", properties = {
  user = S_, distributor = { type = "object", nullable = true, properties = DISTRIBUTOR.properties,
                             description = "null: not a distributor" },
  binding = { type = "object", nullable = true, properties = BINDING.properties,
              description = "null: bound to nobody" },
  earnings = BALANCE, team = { type = "object", properties = { level1 = I, level2 = I } } } }
local TEAM = { type = "object", properties = { level = I, level1 = I, level2 = I, items = { type = "array",
  items = { type = "object", properties = { user = S_, via = { type = "string", description = "level 2: who bound them" },
                                            bound_at = I, expires_at = I } } } } }
local EARNING_ORDER = { type = "object", properties = {
  order_id = I, buyer = S_, paid_fen = I, refunded_fen = I, paid_at = I, completed_at = I, settled_at = I,
  level = I, commission_fen = I, state = { type = "string", enum = { "frozen", "settled" } } } }
local STORE_PERF = { type = "object", properties = { store = S_, name = S_, orders = I, sales_fen = I,
  commission_fen = I } }
local BOARD = { type = "object", properties = { by = S_, from = I, to = I, items = { type = "array",
  items = { type = "object", properties = { user = S_, value = I, orders = I, kind = S_, store = S_ } } } } }
local SKU_RATE_ROW = { type = "object", properties = { sku = S_, level1_rate_bp = I, level2_rate_bp = I,
  updated_at = I, deleted = B } }
local SETTINGS = { type = "object", description = "the plugin's effective config (README)",
  properties = { max_levels = I, join_mode = S_, binding_mode = S_, level1_rate_bp = I, level2_rate_bp = I,
                 settle_after_seconds = I, min_withdrawal_fen = I, self_purchase_rebate = B,
                 transfer_remark = S_ } }

local ROUTES = {
  -- users
  { method = "POST", path = "/referral/join", errors = { [403] = { "join_by_designation_only" } }, handler = join, status = { 201, 200, 202 },
    summary = "Become a promoter (join_mode everyone: 201 active; application: 202 pending; designated: 403)",
    body = { type = "object", properties = {} }, response = DISTRIBUTOR },
  { method = "GET", path = "/referral/me", handler = me,
    summary = "My distributor record and code, my binding, my earnings and team size", response = ME },
  { method = "POST", path = "/referral/bind", errors = { [400] = { "invalid_field", "invalid_body" }, [404] = { "code_not_found" }, [409] = { "already_bound", "binding_cycle", "not_a_new_user" } }, handler = bind, status = { 201, 200 },
    summary = "Bind me to the distributor of a share link's referral code (201 bound, 200 unchanged)",
    body = { type = "object", required = { "code" }, properties = { code = { type = "string" } } },
    response = BINDING },
  { method = "GET", path = "/referral/team", handler = team,
    summary = "Users bound to me (level=1) or to them (level=2), with both counts",
    query = { level = { type = "integer", description = "1 (default) or 2" }, limit = { type = "integer" } },
    response = TEAM },
  { method = "GET", path = "/referral/orders", handler = my_orders, query = PAGE,
    summary = "Orders I earn on, newest first, with my net commission on each", response = page_of(EARNING_ORDER) },
  { method = "GET", path = "/referral/earnings", handler = earnings, query = PAGE,
    summary = "My balance (frozen, settled, withdrawn, pending, available) and ledger entries",
    response = BALANCE },
  { method = "POST", path = "/referral/withdrawals", errors = { [400] = { "below_minimum" }, [409] = { "insufficient_balance" } }, handler = request_withdrawal, status = 201,
    summary = "Ask to withdraw settled commission (at least min_withdrawal_fen, at most available_fen)",
    body = { type = "object", required = { "amount_fen" },
             properties = { amount_fen = { type = "integer", minimum = 1 } } }, response = WITHDRAWAL },
  { method = "GET", path = "/referral/withdrawals/{id:int}/transfer", handler = my_transfer,
    summary = "wx.requestMerchantTransfer's parameters for my withdrawal while its transfer waits for me",
    response = CONFIRM,
    errors = { [404] = { "withdrawal_not_found", "transfer_not_found" },
               [409] = { "no_transfer", "not_waiting_for_confirmation" } } },
  { method = "GET", path = "/referral/withdrawals", handler = my_withdrawals, query = PAGE,
    summary = "My withdrawals, newest first", response = page_of(WITHDRAWAL) },
  -- operators
  { method = "GET", path = "/referral/settings", auth = "admin", handler = admin_settings,
    summary = "The effective config (defaults filled in); max_levels is always 2", response = SETTINGS },
  { method = "POST", path = "/referral/stores", errors = { [409] = { "store_exists" } }, auth = "admin", handler = create_store, status = 201,
    summary = "Open a store", body = distributors.STORE_FIELDS:body(), response = STORE_ROW },
  { method = "GET", path = "/referral/stores", auth = "admin", handler = list_stores, summary = "Stores",
    response = list_of(STORE_ROW) },
  { method = "PATCH", path = "/referral/stores/{id:str}", auth = "admin", handler = update_store,
    summary = "Rename or close a store", body = distributors.STORE_FIELDS:body(true), response = STORE_ROW },
  { method = "GET", path = "/referral/stores/{id:str}/performance", errors = { [404] = { "store_not_found" } }, auth = "admin",
    handler = store_performance, query = PERIOD, response = PERF,
    summary = "A store's performance (业绩) over a period, and each of its guides'" },
  { method = "GET", path = "/referral/stores/{id:str}/orders", errors = { [404] = { "store_not_found" } }, auth = "admin",
    handler = store_orders, query = PAGE, summary = "A store's paid orders, newest first (its manager's list)",
    response = { type = "object", properties = { store = S_, next_after = I, items = { type = "array", items = {
      type = "object", properties = { order_id = I, buyer = S_, guide = S_, paid_fen = I, refunded_fen = I,
        paid_at = I, completed_at = I } } } } } },
  { method = "GET", path = "/referral/performance", auth = "admin", handler = stores_performance,
    query = PERIOD, summary = "Every store's performance over a period",
    response = { type = "object", properties = { from = I, to = I, items = { type = "array", items = STORE_PERF } } } },
  { method = "GET", path = "/referral/leaderboard", errors = { [400] = { "invalid_field" } }, auth = "admin", handler = leaderboard,
    summary = "The leaderboard (裂变PK榜) over a period; ties by user id",
    query = { by = { type = "string", description = "sales (default), new_members or commission" },
              from = PERIOD.from, to = PERIOD.to, limit = { type = "integer" } }, response = BOARD },
  { method = "POST", path = "/referral/distributors", errors = { [400] = { "invalid_field" }, [404] = { "store_not_found" } }, auth = "admin", handler = designate, status = 201,
    summary = "Make a user a distributor (a guide needs a store), or change an existing one's role",
    body = distributors.FIELDS:body(), response = DISTRIBUTOR },
  { method = "GET", path = "/referral/distributors", auth = "admin", handler = list_distributors,
    summary = "Distributors (e.g. status=pending: applications to review)",
    query = { status = { type = "string" }, kind = { type = "string" }, store = { type = "string" } },
    response = list_of(DISTRIBUTOR) },
  { method = "GET", path = "/referral/distributors/{user:str}", auth = "admin", handler = get_distributor,
    summary = "A distributor with her earnings, team size and binding", response = DISTRIBUTOR },
  { method = "PATCH", path = "/referral/distributors/{user:str}", errors = { [409] = { "store_closed" } }, auth = "admin", handler = update_distributor,
    summary = "Disable or re-enable a distributor, or change her kind or store",
    body = distributors.FIELDS:body(true), response = DISTRIBUTOR },
  { method = "POST", path = "/referral/distributors/{user:str}/approve", auth = "admin", handler = approve,
    summary = "Approve a pending application", response = DISTRIBUTOR },
  { method = "POST", path = "/referral/distributors/{user:str}/reject", errors = { [409] = { "not_pending" } }, auth = "admin", handler = reject,
    summary = "Reject a pending application", response = DISTRIBUTOR },
  { method = "GET", path = "/referral/withdrawals", auth = "admin", handler = list_withdrawals,
    summary = "Withdrawals (e.g. status=pending: to decide)",
    query = { status = { type = "string" }, user = { type = "string" }, limit = PAGE.limit, after = PAGE.after },
    response = page_of(WITHDRAWAL) },
  { method = "POST", path = "/referral/withdrawals/{id:int}/approve", auth = "admin",
    errors = { [404] = { "withdrawal_not_found" },
               [409] = { "not_pending", "insufficient_balance", "openid_unknown", "transfer_too_large",
                         "transfer_conflict" },
               [503] = { "transfers_not_configured", "payments_not_configured" } },
    handler = decide_withdrawal("approved"), body = REASON,
    summary = "Approve a pending withdrawal (if the settled balance still covers it)", response = WITHDRAWAL },
  { method = "POST", path = "/referral/withdrawals/{id:int}/cancel", auth = "admin", handler = cancel_withdrawal,
    summary = "Cancel an approved withdrawal's transfer still waiting for the member (200: cancelled, "
      .. "its money available again; 202: WeChat Pay is asked, its notify ends it)",
    body = { type = "object", properties = {} }, response = WITHDRAWAL, status = { 200, 202 },
    errors = { [404] = { "withdrawal_not_found", "transfer_not_found" },
               [409] = { "not_cancellable", "not_simulated" } } },
  { method = "POST", path = "/referral/withdrawals/{id:int}/reject", auth = "admin",
    handler = decide_withdrawal("rejected"), body = REASON, summary = "Reject a pending withdrawal",
    response = WITHDRAWAL },
  { method = "PUT", path = "/referral/sku-rates/{sku:str}", errors = { [400] = { "invalid_field" } }, auth = "admin", handler = put_sku_rate,
    summary = "Set a SKU's own commission rates (basis points, two levels)",
    body = SKU_RATE:body(), response = SKU_RATE_ROW },
  { method = "DELETE", path = "/referral/sku-rates/{sku:str}", auth = "admin", handler = delete_sku_rate,
    summary = "Drop a SKU's override (the config's rates apply again)", response = SKU_RATE_ROW },
  { method = "GET", path = "/referral/sku-rates", auth = "admin", handler = list_sku_rates,
    summary = "SKUs with their own rates", response = list_of(SKU_RATE_ROW) },
}

---The declared bodies of the routes, for a walk against the served OpenAPI.
function exports.schemas() return schema.document(ROUTES) end

return {
  name = "referral",
  version = "1.3.1",
  description = "referral and distribution (分销): two-level commission, stores and shopping guides",
  migrations = {
    [[
    CREATE TABLE referral_stores (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
      created_at INTEGER NOT NULL
    );
    CREATE TABLE referral_distributors (
      user TEXT PRIMARY KEY,
      kind TEXT NOT NULL CHECK (kind IN ('promoter', 'guide')),
      store TEXT CHECK ((kind = 'guide') = (store IS NOT NULL)),
      code TEXT NOT NULL UNIQUE,
      status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'rejected', 'disabled')),
      created_at INTEGER NOT NULL,
      decided_at INTEGER
    );
    CREATE INDEX referral_distributors_store ON referral_distributors(store);
    CREATE TABLE referral_bindings (
      user TEXT PRIMARY KEY,
      referrer TEXT NOT NULL CHECK (referrer != user),
      code TEXT NOT NULL,
      bound_at INTEGER NOT NULL,
      expires_at INTEGER
    );
    CREATE INDEX referral_bindings_referrer ON referral_bindings(referrer);
    CREATE TABLE referral_bind_log (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      referrer TEXT NOT NULL,
      at INTEGER NOT NULL
    );
    CREATE INDEX referral_bind_log_at ON referral_bind_log(at);
    CREATE TABLE referral_orders (
      order_id INTEGER PRIMARY KEY,
      buyer TEXT NOT NULL,
      referrer TEXT, referrer2 TEXT, store TEXT, guide TEXT,
      paid_fen INTEGER NOT NULL CHECK (paid_fen >= 0),
      refunded_fen INTEGER NOT NULL CHECK (refunded_fen >= 0 AND refunded_fen <= paid_fen),
      paid_at INTEGER NOT NULL,
      completed_at INTEGER,
      settle_at INTEGER,
      settled_at INTEGER
    );
    CREATE INDEX referral_orders_store ON referral_orders(store, paid_at);
    CREATE INDEX referral_orders_referrer ON referral_orders(referrer, paid_at);
    CREATE TABLE referral_refunds (
      order_id INTEGER NOT NULL,
      refund_no TEXT NOT NULL,
      amount_fen INTEGER NOT NULL,
      at INTEGER NOT NULL,
      PRIMARY KEY (order_id, refund_no)
    ) WITHOUT ROWID;
    CREATE TABLE referral_ledger (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      order_id INTEGER NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('commission', 'reversal')),
      level INTEGER NOT NULL CHECK (level IN (1, 2)),
      refund_no TEXT NOT NULL DEFAULT '',
      beneficiary TEXT NOT NULL,
      amount_fen INTEGER NOT NULL CHECK ((kind = 'commission') = (amount_fen >= 0)),
      capped_fen INTEGER NOT NULL DEFAULT 0 CHECK (capped_fen >= 0),
      state TEXT NOT NULL CHECK (state IN ('frozen', 'settled')),
      created_at INTEGER NOT NULL,
      settled_at INTEGER,
      UNIQUE (order_id, kind, level, refund_no)
    );
    CREATE INDEX referral_ledger_beneficiary ON referral_ledger(beneficiary, state);
    CREATE TABLE referral_daily (
      user TEXT NOT NULL,
      day TEXT NOT NULL,
      earned_fen INTEGER NOT NULL CHECK (earned_fen >= 0),
      PRIMARY KEY (user, day)
    ) WITHOUT ROWID;
    CREATE TABLE referral_withdrawals (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      amount_fen INTEGER NOT NULL CHECK (amount_fen >= 1),
      status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
      reason TEXT,
      requested_at INTEGER NOT NULL,
      decided_at INTEGER
    );
    CREATE INDEX referral_withdrawals_user ON referral_withdrawals(user, status);
    CREATE TABLE referral_sku_rates (
      sku TEXT PRIMARY KEY,
      level1_rate_bp INTEGER NOT NULL CHECK (level1_rate_bp BETWEEN 0 AND 10000),
      level2_rate_bp INTEGER NOT NULL CHECK (level2_rate_bp BETWEEN 0 AND 10000),
      updated_at INTEGER NOT NULL
    );
    ]],
    -- 1.1.0: merging members (lib/merge.lua)
    [[
    CREATE TABLE referral_merges (
      merge_id INTEGER PRIMARY KEY,
      from_user TEXT NOT NULL,
      into_user TEXT NOT NULL,
      merged_at INTEGER NOT NULL
    );
    CREATE INDEX referral_merges_from ON referral_merges(from_user);
    -- what each merge changed, so an undo changes back exactly that. row_key
    -- names the row (an id, a user, a code or a day: no type, kept as given);
    -- amount is a counter's part folded (or a time); data a row set aside, as JSON
    CREATE TABLE referral_merge_moves (
      merge_id INTEGER NOT NULL,
      kind TEXT NOT NULL,
      row_key NOT NULL,
      amount INTEGER,
      data TEXT,
      PRIMARY KEY (merge_id, kind, row_key)
    ) WITHOUT ROWID;
    -- codes of distributor records a merge set aside: share links already out
    -- still bind, to the merged person
    CREATE TABLE referral_merged_codes (
      code TEXT PRIMARY KEY,
      user TEXT NOT NULL,
      merge_id INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX referral_merged_codes_user ON referral_merged_codes(user);
    -- the columns a merge scans by member id
    CREATE INDEX referral_orders_buyer ON referral_orders(buyer);
    CREATE INDEX referral_orders_referrer2 ON referral_orders(referrer2);
    CREATE INDEX referral_orders_guide ON referral_orders(guide);
    CREATE INDEX referral_bind_log_user ON referral_bind_log(user);
    CREATE INDEX referral_bind_log_referrer ON referral_bind_log(referrer);
    ]],
    -- 1.2.0: withdrawals paid out by transfer (商家转账): paid and failed, the bill
    [[
    CREATE TABLE referral_withdrawals_v2 (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      user TEXT NOT NULL,
      amount_fen INTEGER NOT NULL CHECK (amount_fen >= 1),
      status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'paid', 'failed', 'rejected')),
      reason TEXT,
      requested_at INTEGER NOT NULL,
      decided_at INTEGER,
      out_bill_no TEXT UNIQUE,
      transfer_state TEXT,
      fail_reason TEXT,
      finished_at INTEGER
    );
    INSERT INTO referral_withdrawals_v2 (id, user, amount_fen, status, reason, requested_at, decided_at)
      SELECT id, user, amount_fen, status, reason, requested_at, decided_at FROM referral_withdrawals;
    DROP TABLE referral_withdrawals;
    ALTER TABLE referral_withdrawals_v2 RENAME TO referral_withdrawals;
    CREATE INDEX referral_withdrawals_user ON referral_withdrawals(user, status);
    ]],
  },
  routes = ROUTES,
  jobs = {
    settle = function(job) commission.settle(job.payload.order_id) end,
  },
  subscribe = subscribe,
  exports = exports,
}
