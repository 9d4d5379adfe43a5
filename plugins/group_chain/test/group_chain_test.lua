-- Tests of group_chain (群接龙): posts, numbered entries with their orders,
-- limits, edits and cancels before the cut-off, the close job and the summary.
-- One database for the whole file: each describe publishes its own post.

kit.plugins {
  catalog = {},
  orders = { max_unpaid_orders = 10 },
  payments = { secret = "group-chain-kit-secret-012345678" },
  group_chain = {},
}

local HOUR = 3600
local admin = kit.admin()
local leader = kit.user("leader")

-- the catalog: eggs at 30.00 yuan, milk at 15.00, a product off sale
local catalog_ready = false
local function catalog()
  if catalog_ready then return end
  catalog_ready = true
  expect(admin:post("/catalog/products", { name = "Farm box", skus = {
    { code = "EGG", title = "Eggs, 30", price_fen = 3000, stock = 1000 },
    { code = "MILK", title = "Milk, 1L", price_fen = 1500, stock = 1000 } } }).status).to_be(201)
  expect(admin:post("/catalog/products", { name = "Old", status = "off_sale", skus = {
    { code = "OLD", title = "Old stock", price_fen = 1000, stock = 5 } } }).status).to_be(201)
  expect(admin:post("/group_chain/organisers", { user = "leader" }).status).to_be(201)
end

local function post_body(fields)
  local body = { title = "Saturday farm box", pickup = "Gate 3, 18:00-20:00",
    cutoff_at = kit.now() + 2 * HOUR,
    items = { { sku = "EGG", chain_price_fen = 2500, per_member_limit = 3 },
              { sku = "MILK", chain_price_fen = 1200, per_member_limit = 5 } } }
  for k, v in pairs(fields or {}) do body[k] = v end
  return body
end

---Publishes a post as the leader; returns its id.
local function publish(fields)
  catalog()
  local res = leader:post("/group_chain/posts", post_body(fields))
  expect(res.status).to_be(201)
  return res.body.id
end

local function entries_path(id) return "/group_chain/posts/" .. id .. "/entries" end

local function append(user, id, lines, note)
  return kit.user(user):post(entries_path(id), { lines = lines, note = note })
end

local function pay(order_id)
  local res = admin:post("/payments/simulate", { order_id = order_id })
  expect(res.status).to_be(200)
  kit.drain()
end

local function summary(id)
  local res = leader:get("/group_chain/posts/" .. id .. "/summary")
  expect(res.status).to_be(200)
  return res.body
end

describe("publishing a post", function()
  it("is refused to a user without the organiser role", function()
    catalog()
    local res = kit.user("mallory"):post("/group_chain/posts", post_body())
    expect(res.status).to_be(403)
    expect(res.body.error.code).to_be("not_organiser")
  end)

  it("grants the role once: a second grant answers 200", function()
    catalog()
    local res = admin:post("/group_chain/organisers", { user = "leader" })
    expect(res.status).to_be(200)
    expect(res.body).to_equal({ user = "leader", organiser = true })
  end)

  it("freezes each item's title, list and chain price and schedules the close at the cut-off", function()
    local cutoff = kit.now() + 2 * HOUR
    catalog()
    local res = leader:post("/group_chain/posts", post_body({ cutoff_at = cutoff }))
    expect(res.status).to_be(201)
    expect(res.body.status).to_be("open")
    expect(res.body.seconds_to_cutoff).to_be(2 * HOUR)
    expect(res.body.items[1]).to_equal({ sku = "EGG", title = "Eggs, 30", chain_price_fen = 2500,
      entries = 0, units = 0, paid_units = 0, unpaid_units = 0, amount_fen = 0, paid_amount_fen = 0 })
    local jobs = kit.query([[SELECT due_ms FROM _tp_jobs WHERE plugin = 'group_chain' AND name = 'close'
      AND key = ?]], "close:" .. res.body.id)
    expect(jobs).to_equal({ { due_ms = cutoff * 1000 } })
  end)

  it("refuses a chain price above the list price, naming the field", function()
    catalog()
    local res = leader:post("/group_chain/posts", post_body({ items = {
      { sku = "EGG", chain_price_fen = 3001, per_member_limit = 3 } } }))
    expect(res.status).to_be(400)
    expect(res.body.error.code).to_be("invalid_field")
    expect(res.body.error.details).to_equal({ field = "items[1].chain_price_fen" })
    expect(res.body.error.message).to_contain("3000 fen")
  end)

  it("refuses unknown, off-sale and repeated SKUs", function()
    catalog()
    local res = leader:post("/group_chain/posts", post_body({ items = {
      { sku = "NOPE", chain_price_fen = 100, per_member_limit = 1 } } }))
    expect(res.status).to_be(400)
    expect(res.body.error.code).to_be("sku_not_found")
    res = leader:post("/group_chain/posts", post_body({ items = {
      { sku = "OLD", chain_price_fen = 100, per_member_limit = 1 } } }))
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("not_on_sale")
    res = leader:post("/group_chain/posts", post_body({ items = {
      { sku = "EGG", chain_price_fen = 100, per_member_limit = 1 },
      { sku = "EGG", chain_price_fen = 200, per_member_limit = 1 } } }))
    expect(res.body.error.details).to_equal({ field = "items[2].sku" })
  end)

  it("refuses a cut-off in the past, no items, a zero limit and unknown fields", function()
    catalog()
    local cases = {
      { post_body({ cutoff_at = kit.now() }), "cutoff_at" },
      { post_body({ cutoff_at = kit.now() + 31 * 86400 }), "cutoff_at" },
      { post_body({ items = {} }), "items" },
      { post_body({ items = { { sku = "EGG", chain_price_fen = 100, per_member_limit = 0 } } }),
        "items[1].per_member_limit" },
      { post_body({ title = "" }), "title" },
      { post_body({ colour = "red" }), "colour" },
    }
    for _, case in ipairs(cases) do
      local res = leader:post("/group_chain/posts", case[1])
      expect(res.status).to_be(400)
      expect(res.body.error.details).to_equal({ field = case[2] })
    end
    expect(#kit.query("SELECT id FROM group_chain_posts WHERE title = ''")).to_be(0)
  end)
end)

describe("appending to the chain", function()
  local id
  it("numbers entries 1, 2, 3 in order, each with an order at the chain prices", function()
    id = publish()
    local a = append("alice", id, { { sku = "EGG", qty = 2 }, { sku = "MILK", qty = 1 } }, "Bldg 5, 302")
    expect(a.status).to_be(201)
    expect(a.body.seq).to_be(1)
    expect(a.body.status).to_be("unpaid")
    expect(a.body.total_fen).to_be(2 * 2500 + 1200)
    expect(a.body.lines).to_equal({
      { sku = "EGG", qty = 2, unit_price_fen = 2500, amount_fen = 5000 },
      { sku = "MILK", qty = 1, unit_price_fen = 1200, amount_fen = 1200 } })
    local order = kit.user("alice"):get("/orders/" .. a.body.order_id).body
    expect(order.total_fen).to_be(6200)
    expect(order.campaign).to_equal({ plugin = "group_chain", id = tostring(id), stacks_with_coupon = false })
    expect(order.lines[1].list_price_fen).to_be(3000)
    expect(append("bob", id, { { sku = "MILK", qty = 1 } }).body.seq).to_be(2)
    expect(append("alice", id, { { sku = "MILK", qty = 1 } }).body.seq).to_be(3)
  end)

  it("refuses a line past the per-member limit and keeps the numbering without a gap", function()
    local res = append("alice", id, { { sku = "EGG", qty = 2 } })  -- she holds 2 of 3
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("limit_reached")
    expect(res.body.error.details).to_equal({ sku = "EGG", per_member_limit = 3, held = 2 })
    expect(append("alice", id, { { sku = "EGG", qty = 1 } }).body.seq).to_be(4)
    expect(kit.query("SELECT units FROM group_chain_units WHERE post_id = ? AND user = 'alice' AND sku = 'EGG'",
      id)).to_equal({ { units = 3 } })
  end)

  it("refuses a limit broken by a second item without counting the first", function()
    local res = append("bob", id, { { sku = "EGG", qty = 3 }, { sku = "MILK", qty = 5 } })  -- bob holds 1 milk
    expect(res.status).to_be(409)
    expect(res.body.error.details).to_equal({ sku = "MILK", per_member_limit = 5, held = 1 })
    expect(kit.query("SELECT sku, units FROM group_chain_units WHERE post_id = ? AND user = 'bob' ORDER BY sku",
      id)).to_equal({ { sku = "MILK", units = 1 } })
  end)

  it("refuses malformed entries, naming the field, and writes nothing", function()
    local cases = {
      { { lines = { { sku = "EGG", qty = 4 } } }, "lines[1].qty" },
      { { lines = { { sku = "EGG", qty = 0 } } }, "lines[1].qty" },
      { { lines = { { sku = "BREAD", qty = 1 } } }, "lines[1].sku" },
      { { lines = { { sku = "EGG", qty = 1 }, { sku = "EGG", qty = 1 } } }, "lines[2].sku" },
      { { lines = {} }, "lines" },
      { { lines = { { sku = "MILK", qty = 1 } }, note = string.rep("x", 101) }, "note" },
      { { lines = { { sku = "MILK", qty = 1 } }, pickup = "mine" }, "pickup" },
    }
    for _, case in ipairs(cases) do
      local res = kit.user("dave"):post(entries_path(id), case[1])
      expect(res.status).to_be(400)
      expect(res.body.error.code).to_be("invalid_field")
      expect(res.body.error.details).to_equal({ field = case[2] })
    end
    expect(kit.user("dave"):post(entries_path(id), "[1]").body.error.code).to_be("invalid_body")
    expect(#kit.query("SELECT id FROM group_chain_entries WHERE user = 'dave'")).to_be(0)
    expect(append("dave", id, { { sku = "MILK", qty = 1 } }, string.rep("楼", 100)).body.seq).to_be(5)
  end)

  it("answers 404 for a post that does not exist", function()
    local res = append("alice", 9999, { { sku = "EGG", qty = 1 } })
    expect(res.status).to_be(404)
    expect(res.body.error.code).to_be("post_not_found")
  end)

  it("shows the live chain publicly with masked members and no notes", function()
    local res = kit.anon():get("/group_chain/posts/" .. id)
    expect(res.status).to_be(200)
    expect(res.body.organiser).to_be("l****r")
    expect(res.body.seconds_to_cutoff).to_be(2 * HOUR)
    expect(res.body.chain[1]).to_equal({ seq = 1, member = "a***e",
      lines = { { sku = "EGG", qty = 2 }, { sku = "MILK", qty = 1 } } })
    expect(res.body.chain[2].member).to_be("b*b")
    expect(#res.body.chain).to_be(5)
    expect(res.body.items[1].units).to_be(3)
    expect(res.body.items[2].units).to_be(4)
  end)
end)

describe("editing and cancelling before the cut-off", function()
  local id, first
  it("replaces an unpaid entry: same number, a new order, the old one cancelled", function()
    id = publish()
    first = append("erin", id, { { sku = "EGG", qty = 3 } }).body
    append("frank", id, { { sku = "MILK", qty = 2 } })
    local res = kit.user("erin"):put(entries_path(id) .. "/1",
      { lines = { { sku = "EGG", qty = 1 }, { sku = "MILK", qty = 2 } }, note = "after 7pm" })
    expect(res.status).to_be(200)
    expect(res.body.seq).to_be(1)
    expect(res.body.note).to_be("after 7pm")
    expect(res.body.total_fen).to_be(2500 + 2 * 1200)
    expect(res.body.order_id ~= first.order_id).to_be(true)
    expect(kit.user("erin"):get("/orders/" .. first.order_id).body.status).to_be("cancelled")
    expect(kit.user("erin"):get("/orders/" .. res.body.order_id).body.total_fen).to_be(4900)
    -- the limit counts the entry as it is now: 1 egg held, 2 more fit
    expect(append("erin", id, { { sku = "EGG", qty = 2 } }).body.seq).to_be(3)
  end)

  it("refuses another member's entry as if it did not exist", function()
    local res = kit.user("frank"):put(entries_path(id) .. "/1", { lines = { { sku = "EGG", qty = 1 } } })
    expect(res.status).to_be(404)
    expect(res.body.error.code).to_be("entry_not_found")
    expect(kit.user("frank"):post(entries_path(id) .. "/1/cancel").status).to_be(404)
  end)

  it("cancels an unpaid entry and its order; the number stays taken", function()
    local res = kit.user("frank"):post(entries_path(id) .. "/2/cancel")
    expect(res.status).to_be(200)
    expect(res.body.status).to_be("cancelled")
    expect(kit.user("frank"):get("/orders/" .. res.body.order_id).body.status).to_be("cancelled")
    local again = kit.user("frank"):post(entries_path(id) .. "/2/cancel")
    expect(again.status).to_be(409)
    expect(again.body.error.code).to_be("entry_cancelled")
    expect(append("frank", id, { { sku = "MILK", qty = 5 } }).body.seq).to_be(4)  -- units given back
    local chain = kit.anon():get("/group_chain/posts/" .. id).body.chain
    expect(#chain).to_be(3)
    expect(chain[2].seq).to_be(3)
  end)

  it("refuses to edit or cancel a paid entry, clearly", function()
    local mine = kit.user("erin"):get(entries_path(id) .. "/mine").body.items
    pay(mine[2].order_id)
    expect(kit.user("erin"):get(entries_path(id) .. "/mine").body.items[2].status).to_be("paid")
    local res = kit.user("erin"):put(entries_path(id) .. "/3", { lines = { { sku = "EGG", qty = 1 } } })
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("entry_paid")
    expect(res.body.error.message).to_contain("paid")
    res = kit.user("erin"):post(entries_path(id) .. "/3/cancel")
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("entry_paid")
  end)

  it("refuses to edit an entry paid before its order.paid event arrived", function()
    local order_id = kit.user("erin"):get(entries_path(id) .. "/mine").body.items[1].order_id
    expect(admin:post("/payments/simulate", { order_id = order_id }).status).to_be(200)
    -- no drain: the entry still reads unpaid, but orders refuses the cancel
    local res = kit.user("erin"):put(entries_path(id) .. "/1", { lines = { { sku = "EGG", qty = 1 } } })
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("entry_paid")
    expect(res.body.error.details.order_status).to_be("paid")
    kit.drain()
    expect(summary(id).entries[1].status).to_be("paid")
  end)

  it("cancels the entry when orders times its unpaid order out", function()
    local e = append("gina", id, { { sku = "EGG", qty = 3 } }).body
    kit.advance(900)  -- the orders plugin's default unpaid timeout
    local mine = kit.user("gina"):get(entries_path(id) .. "/mine").body.items
    expect(mine[1].status).to_be("cancelled")
    expect(mine[1].cancel_reason).to_be("timeout")
    expect(kit.user("gina"):get("/orders/" .. e.order_id).body.status).to_be("cancelled")
    expect(append("gina", id, { { sku = "EGG", qty = 3 } }).status).to_be(201)  -- her units came back
  end)
end)

describe("what the orders plugin reports back", function()
  local id
  it("brings a timed-out entry back when its payment arrives before the cut-off", function()
    id = publish()
    local e = append("nora", id, { { sku = "EGG", qty = 2 } }).body
    kit.advance(900)
    expect(summary(id).entries[1].status).to_be("cancelled")
    pay(e.order_id)
    local s = summary(id)
    expect(s.entries[1].status).to_be("paid")
    expect(s.entries[1].seq).to_be(1)
    expect(s.items[1].paid_units).to_be(2)
    expect(kit.user("nora"):get("/orders/" .. e.order_id).body.status).to_be("paid")
    -- her 2 eggs count against the limit again
    expect(append("nora", id, { { sku = "EGG", qty = 2 } }).body.error.code).to_be("limit_reached")
  end)

  it("refunds a late payment when the member's limit is taken meanwhile", function()
    local e = append("omar", id, { { sku = "EGG", qty = 3 } }).body
    kit.advance(900)
    expect(append("omar", id, { { sku = "EGG", qty = 1 } }).status).to_be(201)
    pay(e.order_id)
    expect(admin:get("/orders/" .. e.order_id).body.status).to_be("refunded")
    local mine = kit.user("omar"):get(entries_path(id) .. "/mine").body.items
    expect(mine[1].status).to_be("cancelled")
    expect(mine[2].status).to_be("unpaid")
  end)

  it("cancels a paid entry the operator refunds in full, and frees its units", function()
    local e = append("pia", id, { { sku = "MILK", qty = 5 } }).body
    pay(e.order_id)
    expect(admin:post("/orders/" .. e.order_id .. "/refund", {}).status).to_be(202)
    kit.drain()
    local mine = kit.user("pia"):get(entries_path(id) .. "/mine").body.items
    expect(mine[1].status).to_be("cancelled")
    expect(mine[1].cancel_reason).to_be("refunded")
    expect(append("pia", id, { { sku = "MILK", qty = 5 } }).status).to_be(201)
  end)
end)

describe("the cut-off", function()
  local id, hana, ivan
  it("closes the post with the job and refuses appends, edits and cancels after it", function()
    id = publish({ cutoff_at = kit.now() + HOUR })
    hana = append("hana", id, { { sku = "EGG", qty = 1 } }).body
    ivan = append("ivan", id, { { sku = "MILK", qty = 2 } }).body
    pay(ivan.order_id)
    kit.advance(HOUR - 1)
    expect(kit.anon():get("/group_chain/posts/" .. id).body.seconds_to_cutoff).to_be(1)
    expect(summary(id).status).to_be("open")
    kit.advance(1)
    local s = summary(id)
    expect(s.status).to_be("closed")
    expect(s.closed_at).to_be(kit.now())
    expect(s.seconds_to_cutoff).to_be(0)
    local res = append("judy", id, { { sku = "EGG", qty = 1 } })
    expect(res.status).to_be(409)
    expect(res.body.error.code).to_be("post_closed")
    expect(res.body.error.details).to_equal({ cutoff_at = kit.now() })
    res = kit.user("ivan"):put(entries_path(id) .. "/2", { lines = { { sku = "MILK", qty = 1 } } })
    expect(res.body.error.code).to_be("post_closed")
    res = kit.user("ivan"):post(entries_path(id) .. "/2/cancel")
    expect(res.body.error.code).to_be("post_closed")
    expect(#kit.query("SELECT id FROM group_chain_entries WHERE post_id = ?", id)).to_be(2)
  end)

  it("refunds a payment for an entry that timed out, once the post is closed", function()
    -- hana's order timed out 900 s after she joined; her entry was cancelled then
    expect(summary(id).entries[1].status).to_be("cancelled")
    pay(hana.order_id)
    kit.drain()
    local order = admin:get("/orders/" .. hana.order_id).body
    expect(order.status).to_be("refunded")
    local s = summary(id)
    expect(s.entries[1].status).to_be("cancelled")
    expect(s.items[1].units).to_be(0)
    expect(s.items[2].paid_units).to_be(2)
  end)
end)

describe("the organiser's summary", function()
  local id
  it("totals each item exactly in fen, paid and unpaid apart", function()
    id = publish({ cutoff_at = kit.now() + 600 })
    local a = append("jack", id, { { sku = "EGG", qty = 2 }, { sku = "MILK", qty = 1 } }, "Room 101").body
    local b = append("kate", id, { { sku = "EGG", qty = 1 } }).body
    append("liam", id, { { sku = "MILK", qty = 3 } })
    kit.user("liam"):post(entries_path(id) .. "/3/cancel")
    local m = append("mia", id, { { sku = "MILK", qty = 4 } }).body
    pay(a.order_id)
    pay(m.order_id)
    local s = summary(id)
    expect(s.items).to_equal({
      { sku = "EGG", title = "Eggs, 30", chain_price_fen = 2500, entries = 2, units = 3, paid_units = 2,
        unpaid_units = 1, amount_fen = 7500, paid_amount_fen = 5000 },
      { sku = "MILK", title = "Milk, 1L", chain_price_fen = 1200, entries = 2, units = 5, paid_units = 5,
        unpaid_units = 0, amount_fen = 6000, paid_amount_fen = 6000 } })
    expect(s.totals).to_equal({ entries = 3, paid_entries = 2, unpaid_entries = 1, cancelled_entries = 1,
      amount_fen = 13500, paid_amount_fen = 11000 })
    local statuses = {}
    for i, e in ipairs(s.entries) do statuses[i] = e.seq .. ":" .. e.user .. ":" .. e.status end
    expect(statuses).to_equal({ "1:jack:paid", "2:kate:unpaid", "3:liam:cancelled", "4:mia:paid" })
    expect(s.pickup).to_be("Gate 3, 18:00-20:00")
    expect(s.entries[2].order_id).to_be(b.order_id)
  end)

  it("renders CSV with one line per entry line", function()
    local res = leader:get("/group_chain/posts/" .. id .. "/summary?csv=1")
    expect(res.body.csv).to_be(table.concat({
      "seq,member,status,sku,title,qty,unit_price_fen,amount_fen,note,pickup",
      '1,jack,paid,EGG,"Eggs, 30",2,2500,5000,Room 101,"Gate 3, 18:00-20:00"',
      '1,jack,paid,MILK,"Milk, 1L",1,1200,1200,Room 101,"Gate 3, 18:00-20:00"',
      '2,kate,unpaid,EGG,"Eggs, 30",1,2500,2500,,"Gate 3, 18:00-20:00"',
      '3,liam,cancelled,MILK,"Milk, 1L",3,1200,3600,,"Gate 3, 18:00-20:00"',
      '4,mia,paid,MILK,"Milk, 1L",4,1200,4800,,"Gate 3, 18:00-20:00"', "" }, "\n"))
    expect(summary(id).csv).to_be_nil()
  end)

  it("is the organiser's alone (and the operator's)", function()
    local res = kit.user("jack"):get("/group_chain/posts/" .. id .. "/summary")
    expect(res.status).to_be(403)
    expect(res.body.error.code).to_be("not_post_organiser")
    expect(admin:get("/group_chain/posts/" .. id .. "/summary").body.totals.amount_fen).to_be(13500)
  end)

  it("keeps the totals at the close job, and counts a later timeout", function()
    kit.advance(600)  -- the cut-off: 10 minutes after publishing
    local s = summary(id)
    expect(s.status).to_be("closed")
    expect(s.totals.amount_fen).to_be(13500)
    kit.drain()
    expect(summary(id).totals).to_equal(s.totals)  -- a repeated run changes nothing
    kit.advance(300)  -- kate's order reaches the orders plugin's 900 s unpaid timeout
    s = summary(id)
    expect(s.entries[2].status).to_be("cancelled")
    expect(s.totals).to_equal({ entries = 2, paid_entries = 2, unpaid_entries = 0, cancelled_entries = 2,
      amount_fen = 11000, paid_amount_fen = 11000 })
    expect(s.items[1].units).to_be(2)
  end)
end)
