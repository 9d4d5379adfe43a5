-- referral: approved withdrawals paid out by transfer (商家转账) through the
-- payments plugin's simulator, which makes each bill wait for the member at
-- once; POST /payments/transfers/{no}/simulate plays WeChat's side. The
-- WeChat Pay side itself (the signed create, the notify, the query) is
-- tests/e2e/test_wechat_transfer.py.

local DAY = 86400

kit.plugins {
  catalog = {},
  orders = { attribution_plugin = "referral", max_unpaid_orders = 5 },
  payments = { secret = "referral-kit-secret-0123456789", appid = "wx-kit-app", mchid = "1900000777" },
  referral = { level1_rate_bp = 1000, level2_rate_bp = 0, settle_after_seconds = DAY,
               min_withdrawal_fen = 100, transfer_remark = "茶友佣金" },
}

local support = dofile(debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") .. "/support.lua")
local new_sku, join, bind, buy, confirm = support.new_sku, support.join, support.bind, support.buy, support.confirm
local balance, money, withdraw, decide = support.balance, support.money, support.withdraw, support.decide

local function simulate(w, state, reason)
  return kit.admin():post("/payments/transfers/" .. w.out_bill_no .. "/simulate",
    { state = state, fail_reason = reason })
end

local function withdrawal(id)
  for _, w in ipairs(kit.admin():get("/referral/withdrawals?limit=500").body.items) do
    if w.id == id then return w end
  end
end

local function bills()
  return kit.query("SELECT out_bill_no, owner, ref, amount_fen, remark, state FROM payments_transfers ORDER BY rowid")
end

describe("paying a withdrawal out by transfer", function()
  it("earns 1000 fen settled for ann first", function()
    join("ann")
    bind("bo", "ann")
    local o = buy("bo", { { sku = new_sku(10000), qty = 1 } })
    confirm("bo", o.id)
    kit.advance(DAY)
    expect(balance("ann")).to_equal(money(0, 1000))
  end)

  it("asks for one transfer on approval, numbered after the withdrawal, and holds the money", function()
    local w = withdraw("ann", 300).body
    expect(#bills()).to_be(0)                                   -- a request moves nothing yet
    local res = decide(w, "approve")
    expect(res.status).to_be(200)
    expect({ res.body.status, res.body.out_bill_no, res.body.transfer_state })
      .to_equal({ "approved", ("rw%010d"):format(w.id), "WAIT_USER_CONFIRM" })
    expect(bills()).to_equal({ { out_bill_no = res.body.out_bill_no, owner = "referral", ref = tostring(w.id),
      amount_fen = 300, remark = "茶友佣金", state = "WAIT_USER_CONFIRM" } })
    expect(balance("ann")).to_equal(money(0, 1000, 300, 0))     -- held as withdrawn, as before
    expect(decide(w, "approve")).to_be_error(409, "not_pending")
    expect(#bills()).to_be(1)
  end)

  it("gives the member what wx.requestMerchantTransfer needs, and nobody else", function()
    local w = withdrawal(1)
    local res = kit.user("ann"):get("/referral/withdrawals/1/transfer")
    expect(res.status).to_be(200)
    expect(res.body).to_equal({ withdrawal_id = 1, amount_fen = 300, out_bill_no = w.out_bill_no,
      transfer_state = "WAIT_USER_CONFIRM", request_merchant_transfer = { mchId = "1900000777",
        appId = "wx-kit-app", package = "sim-package-" .. w.out_bill_no } })
    expect(kit.user("bo"):get("/referral/withdrawals/1/transfer")).to_be_error(404, "withdrawal_not_found")
    expect(kit.user("ann"):get("/referral/withdrawals/99/transfer")).to_be_error(404, "withdrawal_not_found")
  end)

  it("records the states in between, and SUCCESS pays the withdrawal once", function()
    local w = withdrawal(1)
    expect(simulate(w, "TRANSFERING").status).to_be(200)
    expect(withdrawal(1).transfer_state).to_be("TRANSFERING")
    expect(withdrawal(1).status).to_be("approved")
    local res = simulate(w, "SUCCESS")
    expect({ res.status, res.body.outcome, res.body.final }).to_equal({ 200, "success", true })
    local paid = withdrawal(1)
    expect({ paid.status, paid.transfer_state }).to_equal({ "paid", "SUCCESS" })
    expect(balance("ann")).to_equal(money(0, 1000, 300, 0))
    -- the same end again, or another end after it, changes nothing
    expect(simulate(w, "SUCCESS").body.outcome).to_be("duplicate")
    expect(simulate(w, "FAIL", "LATE").body.outcome).to_be("duplicate")
    expect(withdrawal(1)).to_equal(paid)
    expect(balance("ann")).to_equal(money(0, 1000, 300, 0))
    expect(kit.user("ann"):get("/referral/withdrawals/1/transfer"))
      .to_be_error(409, "not_waiting_for_confirmation")
  end)

  it("gives the money back with the reason when the transfer fails", function()
    local w = withdraw("ann", 200).body
    w = decide(w, "approve").body
    expect(balance("ann")).to_equal(money(0, 1000, 500, 0))
    local res = simulate(w, "FAIL", "PAYEE_ACCOUNT_ABNORMAL")
    expect(res.body.outcome).to_be("fail")
    local failed = withdrawal(w.id)
    expect({ failed.status, failed.transfer_state, failed.fail_reason })
      .to_equal({ "failed", "FAIL", "PAYEE_ACCOUNT_ABNORMAL" })
    expect(balance("ann")).to_equal(money(0, 1000, 300, 0))     -- available 700 again
    expect(simulate(w, "SUCCESS").body.outcome).to_be("duplicate")
    expect(withdrawal(w.id).status).to_be("failed")
    expect(withdraw("ann", 701)).to_be_error(409, "insufficient_balance")  -- the paid 300 stays out
    expect(withdraw("ann", 700).status).to_be(201)              -- the money is there to ask for again
  end)

  it("lets an operator cancel a transfer still waiting: the money goes back", function()
    local pending = kit.admin():get("/referral/withdrawals?status=pending").body.items[1]
    local w = decide(pending, "approve").body
    expect(balance("ann")).to_equal(money(0, 1000, 1000, 0))
    local res = kit.admin():post("/referral/withdrawals/" .. w.id .. "/cancel", {})
    expect(res.status).to_be(200)
    expect({ res.body.status, res.body.transfer_state, res.body.fail_reason })
      .to_equal({ "failed", "CANCELLED", "CANCELLED_BY_MERCHANT" })
    expect(balance("ann")).to_equal(money(0, 1000, 300, 0))
    expect(kit.admin():post("/referral/withdrawals/" .. w.id .. "/cancel", {})).to_be_error(409, "not_cancellable")
    expect(kit.admin():post("/referral/withdrawals/1/cancel", {})).to_be_error(409, "not_cancellable")
    expect(kit.admin():post("/referral/withdrawals/999/cancel", {})).to_be_error(404, "withdrawal_not_found")
  end)

  it("lists paid and failed withdrawals by status", function()
    local function ids(status)
      local out = {}
      for _, w in ipairs(kit.admin():get("/referral/withdrawals?status=" .. status).body.items) do
        out[#out + 1] = w.id
      end
      return out
    end
    expect(ids("paid")).to_equal({ 1 })
    expect(ids("failed")).to_equal({ 3, 2 })
    expect(kit.admin():get("/referral/withdrawals?status=lost")).to_be_error(400, "invalid_field")
  end)

  it("refuses a simulated state WeChat does not have, and an unknown bill", function()
    expect(kit.admin():post("/payments/transfers/rw0000000001/simulate", { state = "PAID" }))
      .to_be_error(400, "invalid_field")
    expect(kit.admin():post("/payments/transfers/nope/simulate", { state = "SUCCESS" }))
      .to_be_error(404, "transfer_not_found")
    expect(kit.admin():post("/payments/transfers/rw0000000001/simulate", { state = "SUCCESS", x = 1 }))
      .to_be_error(400, "invalid_field")
  end)
end)
