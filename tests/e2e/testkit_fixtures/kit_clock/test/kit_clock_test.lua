kit.plugins { kit_clock = { delay_seconds = 3600 }, catalog = {} }

local function log() return kit.anon():get("/log").body.items end

describe("the test clock", function()
  it("fires a job when kit.advance reaches it, then delivers its event", function()
    local start = kit.now()
    local res = kit.user("ann"):post("/reminders", {})
    expect(res.status).to_be(202)
    expect(res.body.due_at).to_be(start + 3600)
    kit.advance(3599)
    expect(log()).to_equal({})
    local ran, failed = kit.advance(1)
    expect(ran).to_be(2)
    expect(failed).to_be(0)
    expect(log()).to_equal({ { what = "reminded ann", at = start + 3600 },
                             { what = "heard ann", at = start + 3600 } })
  end)
end)

describe("events", function()
  it("wait for kit.drain", function()
    expect(kit.user("bob"):post("/pings", {}).status).to_be(202)
    expect(kit.query("SELECT count(*) AS n FROM kit_clock_log WHERE what = 'pinged bob'"))
      .to_equal({ { n = 0 } })
    expect(kit.drain()).to_be(1)
    expect(kit.query("SELECT what, at FROM kit_clock_log WHERE what = 'pinged bob'"))
      .to_equal({ { what = "pinged bob", at = kit.now() } })
    expect(kit.drain()).to_be(0)
  end)
end)

describe("dependencies", function()
  it("come from the built-in plugins", function()
    local created = kit.admin():post("/catalog/products", { name = "Tea",
      skus = { { code = "tea-1", title = "50 g", price_fen = 990, stock = 5 } } })
    expect(created.status).to_be(201)
    expect(kit.anon():get("/prices/tea-1").body).to_equal({ code = "tea-1", price_fen = 990 })
    expect(kit.anon():get("/prices/none").status).to_be(404)
  end)
end)
