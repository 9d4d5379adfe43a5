-- coupons on a tenant without the members plugin: a segment or tag audience
-- and a segment drop are refused naming the field, and everything else works
-- as before.

kit.plugins { coupons = {}, couponkit = {} }

local function template(fields)
  local body = { name = "¥5 off", kind = "fixed", amount_off_fen = 500, valid_days = 7, total_quantity = 10 }
  for k, v in pairs(fields or {}) do body[k] = v end
  return kit.admin():post("/coupons/templates", body)
end

describe("without the members plugin", function()
  it("refuses a segment or tag audience, naming the field", function()
    for _, case in ipairs({ { { audience = "segment", segment = "vips" }, "segment" },
                            { { audience = "tag", tag = "vip" }, "tag" } }) do
      local err = expect(template(case[1])).to_be_error(400, "invalid_field")
      expect(err.details).to_equal({ field = case[2] })
      expect(err.message).to_contain("needs the members plugin, which is not enabled for this tenant")
    end
    local id = template().body.id
    local err = expect(kit.admin():patch("/coupons/templates/" .. id, { audience = "segment", segment = "vips" }))
      .to_be_error(400, "invalid_field")
    expect(err.details).to_equal({ field = "segment" })
  end)

  it("refuses a segment drop, naming the segment", function()
    local id = template({ audience = "issue_only" }).body.id
    local err = expect(kit.admin():post("/couponkit/drop", { template_id = id, segment = "vips", ref = "c/drop" }))
      .to_be_error(400, "invalid_field")
    expect(err.details).to_equal({ field = "segment" })
    expect(kit.query("SELECT count(*) AS n FROM coupons_drops")[1].n).to_be(0)
  end)

  it("lists and claims public templates as before", function()
    local id = template().body.id
    local items = kit.anon():get("/coupons/claimable").body.items
    expect(items[#items].id).to_be(id)
    expect(kit.user("u1"):post("/coupons/templates/" .. id .. "/claim").status).to_be(201)
  end)
end)
