-- friend_assist's campaign schema (tp.schema, lib/campaigns.lua) against what
-- the host serves: every bound the OpenAPI body of POST
-- /friend_assist/campaigns documents is one the route enforces, field by
-- field (tp.schematest).

kit.plugins { friend_assist = {} }

local st = require("tp.schematest")
local PATH = "/admin/test/friend_assist/campaigns"

local function valid()
  local now = kit.now()
  return { name = "拉新助力", reward = { kind = "points", points = 100 }, friends_needed = 3,
           drive_seconds = 3600, ends_at = now + 86400 }
end

describe("the campaign schema", function()
  it("documents exactly what the create route refuses", function()
    local n = st.walk {
      path = PATH, method = "post", valid = valid,
      count = function() return kit.query("SELECT count(*) AS n FROM friend_assist_campaigns")[1].n end,
    }
    expect(n).to_be(29)
  end)

  it("requires what the validation requires, and nothing of a PATCH", function()
    expect(st.required(PATH, "post")).to_equal({ "drive_seconds", "ends_at", "friends_needed", "name", "reward" })
    expect(st.body(PATH, "post").properties.starts_at.maximum).to_be(253402300799)
    expect(st.required(PATH .. "/{id}", "patch")).to_equal({})
  end)
end)
