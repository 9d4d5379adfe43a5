-- The balance reminder as a subscription message (订阅消息): the notify
-- plugin maps presale.balance_due to a template, and a buyer who accepted it
-- gets one message when the balance (尾款) opens, with the amount in yuan and
-- the window's close as the brand's wall clock. The kit makes no calls: the
-- message is read from the outbox.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "presale-kit-payment-secret-0123" },
  presale = { balance_reminder_before_close_seconds = 0 },
  notify = {
    templates = {
      balance_due = {
        event = "presale.balance_due", template_id = "TPL_BALANCE", page = "pages/order/detail?id={order_id}",
        to = { user = "user" }, data = { thing1 = "title", amount2 = "balance_yuan", time3 = "balance_ends_local" },
      },
    },
  },
}
kit.destinations { wechat = { url = "http://127.0.0.1:9", plugins = { "notify" } } }

local shop = require("tp.testshop")

describe("the balance reminder", function()
  it("reaches a buyer who accepted the template when the balance opens", function()
    local sku = shop.sku { price_fen = 29900, stock = 10, title = "Longjing 2027" }
    local now = kit.now()
    local p = kit.admin():post("/presales", { sku = sku, kind = "deposit", price_fen = 25900, deposit_fen = 5000,
      deposit_worth_fen = 10000, quantity = 5, starts_at = now - 60, ends_at = now + 3600,
      balance_starts_at = now + 3600, balance_ends_local = kit.local_time(now + 7200):sub(1, 16) }).body
    local o = kit.user("ann"):post("/presales/" .. p.id .. "/buy", {}).body
    kit.admin():post("/payments/simulate", { order_id = o.id })
    expect(kit.user("ann"):post("/notify/subscriptions", { template_ids = { "TPL_BALANCE" },
      accepted = { "TPL_BALANCE" }, openid = "o-ann" }).status).to_be(200)
    kit.set_now(p.balance_starts_at)
    kit.drain()
    local sent = kit.query([[SELECT json_extract(body, '$.touser') AS touser, json_extract(body, '$.page') AS page,
      json_extract(body, '$.data.amount2.value') AS amount, json_extract(body, '$.data.time3.value') AS ends
      FROM _tp_outbox]])
    expect(#sent).to_be(1)
    expect(sent[1].touser).to_be("o-ann")
    expect(sent[1].page).to_be("pages/order/detail?id=" .. o.id)
    expect(sent[1].amount).to_match("159")
    expect(sent[1].ends:sub(1, 16)).to_be(kit.local_time(p.balance_ends_at):sub(1, 16))
  end)
end)
