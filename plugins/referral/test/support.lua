-- Helpers shared by the referral kit tests (loaded with dofile by each
-- *_test.lua: the kit has no require path for a plugin's test folder). They
-- use the kit's globals (kit, expect), so they work in any test file.

local shop = require("tp.testshop")

local function new_sku(price_fen)
  return (shop.sku{ price_fen = price_fen, stock = 1000 })
end

---user becomes a promoter; returns her code.
local function join(user)
  local res = kit.user(user):post("/referral/join", {})
  assert(res.status == 201, user .. " could not join: " .. tostring(res.status))
  return res.body.code
end

local function code_of(user)
  return kit.admin():get("/referral/distributors/" .. user).body.code
end

local function bind_to(user, code)
  return kit.user(user):post("/referral/bind", { code = code })
end

---Binds user to referrer's code, which must succeed.
local function bind(user, referrer)
  local res = bind_to(user, code_of(referrer))
  assert(res.status == 201, user .. " -> " .. referrer .. ": " .. tostring(res.status))
  return res.body
end

local function create(user, lines)
  local res = kit.user(user):post("/orders", { lines = lines })
  assert(res.status == 201, "order refused: " .. tostring(res.status))
  return res.body
end

local function pay(order)
  local res = kit.admin():post("/payments/simulate", { order_id = order.id })
  assert(res.status == 200 and res.body.result.outcome == "paid", "payment failed")
  kit.drain()
end

local function buy(user, lines)
  local o = create(user, lines)
  pay(o)
  return o
end

---A refund through orders (the refund job is due at once; order.refunded follows).
local function refund(order_id, amount_fen)
  local res = kit.admin():post("/orders/" .. order_id .. "/refund", { amount_fen = amount_fen })
  assert(res.status == 202, "refund refused: " .. tostring(res.status))
  kit.drain()
end

local function confirm(user, order_id)
  assert(kit.user(user):post("/orders/" .. order_id .. "/confirm").status == 200)
  kit.drain()
end

local function balance(user)
  local e = kit.user(user):get("/referral/earnings").body
  return { e.frozen_fen, e.settled_fen, e.withdrawn_fen, e.pending_withdrawal_fen, e.available_fen }
end

---{frozen, settled, withdrawn, pending, available} as balance() shows it.
local function money(frozen, settled, withdrawn, pending)
  settled, withdrawn, pending = settled or 0, withdrawn or 0, pending or 0
  return { frozen or 0, settled, withdrawn, pending, settled - withdrawn - pending }
end

---user's ledger entries of an order as {kind, level, amount_fen, state}, oldest first.
local function entries(user, order_id)
  local out = {}
  local items = kit.user(user):get("/referral/earnings").body.entries.items
  for i = #items, 1, -1 do
    local e = items[i]
    if e.order_id == order_id then out[#out + 1] = { e.kind, e.level, e.amount_fen, e.state } end
  end
  return out
end

local function withdraw(user, amount_fen)
  return kit.user(user):post("/referral/withdrawals", { amount_fen = amount_fen })
end

local function decide(w, verb)
  return kit.admin():post("/referral/withdrawals/" .. w.id .. "/" .. verb, {})
end

return {
  new_sku = new_sku,
  join = join,
  code_of = code_of,
  bind_to = bind_to,
  bind = bind,
  create = create,
  pay = pay,
  buy = buy,
  refund = refund,
  confirm = confirm,
  balance = balance,
  money = money,
  entries = entries,
  withdraw = withdraw,
  decide = decide,
}
