-- payments without a usable secret (shorter than 16 bytes): every route that
-- signs or verifies answers 503 payments_not_configured and nothing is paid.

kit.plugins {
  catalog = {},
  orders = {},
  payments = { secret = "too-short" },
}

describe("a tenant without a payment secret", function()
  it("answers 503 to prepay, notify and simulate, and the order stays unpaid", function()
    local p = kit.admin():post("/catalog/products", { name = "Tea",
      skus = { { code = "ns-1", title = "box", price_fen = 100, stock = 5 } } })
    expect(p.status).to_be(201)
    local o = kit.user("ns"):post("/orders", { lines = { { sku = "ns-1", qty = 1 } } }).body
    local answers = {
      kit.user("ns"):post("/payments/prepay", { order_id = o.id }),
      kit.anon():post("/payments/notify", '{"event_type":"TRANSACTION.SUCCESS"}', {
        ["Wechatpay-Timestamp"] = tostring(kit.now()), ["Wechatpay-Nonce"] = "n",
        ["Wechatpay-Signature"] = "x" }),
      kit.admin():post("/payments/simulate", { order_id = o.id }),
    }
    for _, res in ipairs(answers) do
      expect(res.status).to_be(503)
      expect(res.body.error.code).to_be("payments_not_configured")
    end
    expect(kit.user("ns"):get("/orders/" .. o.id).body.status).to_be("pending_payment")
    expect(kit.query("SELECT count(*) AS n FROM payments_notifies")).to_equal({ { n = 0 } })
  end)
end)
