kit.plugins { kit_pass = { prefix = "> " } }

local order = {}

describe("greetings", function()
  before_each(function() order[#order + 1] = "outer before" end)
  after_each(function() order[#order + 1] = "outer after" end)

  describe("posting", function()
    before_each(function() order[#order + 1] = "inner before" end)
    after_each(function() order[#order + 1] = "inner after" end)

    it("stores a greeting with the plugin's config", function()
      local res = kit.user("u1"):post("/greetings", { text = "hi" })
      expect(res.status).to_be(201)
      expect(res.body).to_equal({ id = 1, user = "u1", text = "> hi" })
      expect(res.headers["content-type"]).to_match("^application/json")
      expect(order).to_equal({ "outer before", "inner before" })
    end)

    it("needs a token, and a valid one", function()
      local err = expect(kit.anon():post("/greetings", { text = "hi" })).to_be_error(401, "auth_required")
      expect(err.message).to_match("token")
      local forged = kit.anon():post("/greetings", { text = "hi" },
        { Authorization = "Bearer v1.test.u1.9999999999.forged" })
      expect(forged.status).to_be(401)
      expect(forged.body.error.code).to_be("invalid_token")
    end)
  end)

  it("runs hooks outer first, inner last", function()
    expect(order).to_equal({ "outer before", "inner before", "inner after", "outer after",
      "outer before", "inner before", "inner after", "outer after", "outer before" })
  end)

  it("reads what an earlier test of the file wrote", function()
    local res = kit.anon():get("/greetings/1")
    expect(res.body.text).to_be("> hi")
    expect(kit.admin():get("/greetings").body).to_equal({ count = 1 })
    expect(kit.query("SELECT user FROM kit_pass_greetings WHERE id = ?", 1)).to_equal({ { user = "u1" } })
  end)
end)

describe("expect", function()
  it("has the matchers of the spec", function()
    expect(nil).to_be_nil()
    expect(0).to_be_truthy()
    expect(false).to_be_falsy()
    expect("tea and cups").to_contain("and")
    expect({ 1, { a = 2 } }).to_contain({ a = 2 })
    expect("SKU-42").to_match("^SKU%-%d+$")
    expect(0.1 + 0.2).to_be_near(0.3, 1e-9)
    expect(function() error("sold out") end).to_fail("sold out")
    expect(function() kit.query("DELETE FROM kit_pass_greetings") end).to_fail("read-only")
    expect(function() kit.user("bad id") end).to_fail("invalid user id")
    expect(function() expect(1).to_be(2) end).to_fail("expected 2, got 1")
    expect(function() kit.plugins { kit_pass = {} } end).to_fail("only once")
  end)

  it("knows the clock", function()
    local now = kit.now()
    expect(math.type(now)).to_be("integer")
    kit.advance(90)
    expect(kit.now()).to_be(now + 90)
  end)
end)
