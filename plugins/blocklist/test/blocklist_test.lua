-- blocklist: a listed member or device is refused a flash sale's buy with 403
-- risk_blocked (the risk rule, sdk/tp/risk.lua) and the refusal leaves nothing
-- behind; others buy; a lifted block lets them in again; a listed member's
-- merge lists the survivor, and the unmerge lifts only that.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 5 },
  payments = { secret = "blocklist-kit-secret-0123" },
  flash_sale = {},
  blocklist = {},
  merger = {},
}

local shop = require("tp.testshop")

local function new_sale()
  local code = shop.sku{ price_fen = 9900, stock = 100 }
  local now = kit.now()
  local res = kit.admin():post("/flash-sales", { sku = code, price_fen = 1990, quantity = 10,
    per_user_limit = 1, per_order_limit = 1, starts_at = now - 60, ends_at = now + 86400 })
  assert(res.status == 201, "the sale was refused: " .. res.status)
  return res.body.id
end

local function buy(id, user, device)
  return kit.user(user):post("/flash-sales/" .. id .. "/buy", {}, device and { ["x-device-id"] = device })
end

local function block(kind, id, reason)
  return kit.admin():put("/blocklist/" .. kind .. "/" .. id, { reason = reason })
end

describe("a blocked member", function()
  it("is refused the buy with 403 risk_blocked, and the refusal leaves nothing behind", function()
    local id = new_sale()
    expect(block("members", "scalper-1", "500 orders from one address").status).to_be(200)
    local res = buy(id, "scalper-1")
    expect(res).to_be_error(403, "risk_blocked")
    expect(res.body.error.details).to_equal({ action = "buy", by = "blocklist" })
    expect(kit.query("SELECT remaining FROM flash_sale_sales WHERE id = ?", id)[1].remaining).to_be(10)
    expect(#kit.query("SELECT * FROM flash_sale_buyers WHERE user = 'scalper-1'")).to_be(0)
    expect(buy(id, "honest-1").status).to_be(201)
  end)

  it("buys again once the block is lifted", function()
    local id = new_sale()
    block("members", "scalper-2")
    expect(buy(id, "scalper-2")).to_be_error(403, "risk_blocked")
    expect(kit.admin():delete("/blocklist/members/scalper-2").body).to_equal({ removed = true })
    expect(buy(id, "scalper-2").status).to_be(201)
    expect(kit.admin():delete("/blocklist/members/scalper-2").body).to_equal({ removed = false })
  end)
end)

describe("a blocked device", function()
  it("refuses every member who sends it, and only them", function()
    local id = new_sale()
    block("devices", "dev-farm-07")
    expect(buy(id, "fresh-account-1", "dev-farm-07")).to_be_error(403, "risk_blocked")
    expect(buy(id, "fresh-account-2", "dev-farm-07")).to_be_error(403, "risk_blocked")
    expect(buy(id, "fresh-account-1", "own-phone").status).to_be(201)
  end)
end)

describe("merged members", function()
  local function call(fn, from, into, merge_id)
    local res = kit.admin():post("/merger/" .. fn, { plugin = "blocklist", from = from, into = into,
                                                    merge_id = merge_id })
    assert(res.status == 200, fn .. " answered " .. res.status)
    return res.body.moved
  end

  it("lists the survivor of a listed member, and the unmerge lifts only that", function()
    local id = new_sale()
    block("members", "alt-account")
    expect(call("merge", "alt-account", "main-account", 901)).to_equal({ entries = 1 })
    expect(call("merge", "alt-account", "main-account", 901)).to_equal({ entries = 0 })  -- delivered twice
    expect(buy(id, "main-account")).to_be_error(403, "risk_blocked")
    expect(call("unmerge", "alt-account", "main-account", 901)).to_equal({ entries = 1 })
    expect(buy(id, "main-account").status).to_be(201)
    expect(buy(id, "alt-account")).to_be_error(403, "risk_blocked")
  end)

  it("keeps a survivor an operator listed when the merge is undone", function()
    block("members", "alt-b")
    block("members", "main-b")
    expect(call("merge", "alt-b", "main-b", 902)).to_equal({ entries = 0 })
    call("unmerge", "alt-b", "main-b", 902)
    expect(#kit.query("SELECT * FROM blocklist_entries WHERE id = 'main-b'")).to_be(1)
  end)
end)

describe("the operator's routes", function()
  it("lists entries newest first, by kind", function()
    block("members", "list-m")
    block("devices", "list-d")
    local res = kit.admin():get("/blocklist?kind=device&limit=500")
    expect(res.status).to_be(200)
    for _, e in ipairs(res.body.items) do expect(e.kind).to_be("device") end
    expect(res.body.items[1].id).to_be("list-d")
  end)

  it("refuses a bad kind or id", function()
    expect(kit.admin():put("/blocklist/people/x", {})).to_be_error(404, "route_not_found")
    expect(kit.admin():put("/blocklist/members/bad%20id", {}).status).to_be(400)
    expect(kit.admin():put("/blocklist/members/ok", { why = "x" }).status).to_be(400)
  end)
end)
