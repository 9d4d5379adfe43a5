-- tp.http in `tidepool test`: kit.destinations gives the test brand a destination;
-- the kit runs no loop, so the call is written to the outbox, not made.
kit.destinations { erp = { url = "http://127.0.0.1:9/api", plugins = { "caller" }, secrets = { token = "t0ken" } } }

describe("caller", function()
  it("writes the call to the outbox, made after the test (the kit runs no loop)", function()
    local res = kit.anon():post("/caller/calls", { to = "erp", path = "/x", json = { a = 1 },
      headers = { Authorization = "Bearer {{secret:token}}" } })
    expect(res.status).to_be(201)
    local rows = kit.query("SELECT dest, path, key, headers FROM _tp_outbox")
    expect(#rows).to_be(1)
    expect(rows[1].path).to_be("/x")
    expect(rows[1].key).to_be("")  -- none given: sent as tp-<tenant>-<id> (store/outbox.h)
    expect(rows[1].headers:find("t0ken", 1, true)).to_be(nil)  -- the placeholder, not the secret
  end)
end)
