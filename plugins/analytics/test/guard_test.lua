-- analytics: a report that must read every hit of its period (a store, guide,
-- product or campaign filter, hourly buckets) answers 422 period_too_long when
-- the period holds more visitor-days than max_scan_visitor_days, before it
-- reads any; the reports from the per-day rows answer whatever the period.

kit.plugins {
  catalog = {},
  orders = {},
  analytics = { max_scan_visitor_days = 3 },
}

local DAY = 86400

local n = 0
local function visit(device, at)
  n = n + 1
  local res = kit.anon():post("/track", { device = device, events = {
    { id = "g" .. n, kind = "enter", at = at * 1000, session = "sg" .. n, scene = 1008 },
    { id = "g" .. n .. "v", kind = "product_view", at = at * 1000 + 1000, session = "sg" .. n,
      product = "tea-1" } } })
  expect(res.status).to_be(200)
end

describe("a report that reads every hit of its period", function()
  it("is refused above the brand's visitor-days, and the per-day reports are not", function()
    local d1 = kit.local_time(kit.now() + DAY):sub(1, 10)
    local d2 = kit.local_time(kit.now() + 2 * DAY):sub(1, 10)
    kit.set_local(d1 .. " 10:00:00")
    visit("dev-a", kit.now())
    visit("dev-b", kit.now())
    kit.set_local(d2 .. " 10:00:00")
    visit("dev-a", kit.now())
    visit("dev-c", kit.now())
    expect(kit.admin():post("/analytics/rollup").status).to_be(200)
    local both, one = "?from=" .. d1 .. "&to=" .. d2, "?from=" .. d1 .. "&to=" .. d1
    local function status(path)
      local res = kit.admin():get(path)
      if res.status ~= 200 then
        return res.status .. " " .. res.body.error.code .. " " .. res.body.error.details.visitor_days
      end
      return tostring(res.status)
    end
    -- two days hold 4 visitor-days, more than 3: every scan is refused
    for _, path in ipairs({ "/analytics/overview" .. both .. "&product=tea-1",
                            "/analytics/overview" .. both .. "&source=group_chat&store=hz",
                            "/analytics/overview" .. both .. "&granularity=hour",
                            "/analytics/funnel" .. both .. "&store=hz",
                            "/analytics/funnel" .. both .. "&campaign=flash_sale:1",
                            "/analytics/sources" .. both .. "&guide=g1",
                            "/analytics/products" .. both .. "&source=group_chat" }) do
      expect(path .. " " .. status(path)).to_be(path .. " 422 period_too_long 4")
    end
    -- one day (2 visitor-days), or the per-day rows whatever the period, answer
    for _, path in ipairs({ "/analytics/overview" .. one .. "&product=tea-1",
                            "/analytics/overview" .. one .. "&granularity=hour",
                            "/analytics/funnel" .. one .. "&store=hz",
                            "/analytics/products" .. one .. "&source=group_chat",
                            "/analytics/overview" .. both, "/analytics/overview" .. both .. "&store=hz",
                            "/analytics/funnel" .. both, "/analytics/funnel" .. both .. "&source=group_chat",
                            "/analytics/sources" .. both .. "&by=scene", "/analytics/products" .. both }) do
      expect(path .. " " .. status(path)).to_be(path .. " 200")
    end
    local refused = kit.admin():get("/analytics/funnel" .. both .. "&store=hz").body.error
    expect(refused.details.max_scan_visitor_days).to_be(3)
    expect(refused.message:find("holds 4 visitor-days; the brand allows 3", 1, true) ~= nil).to_be(true)
  end)
end)
