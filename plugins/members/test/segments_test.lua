-- members: segment rules, table-driven. A population of 60 members with known
-- profiles, tags and orders; each rule's members must be exactly those a Lua
-- predicate over the same data picks, in count, in the paged list and in
-- matches().

kit.plugins { members = { fields = { level = { type = "enum", values = { "silver", "gold" } } } },
              orderfeed = {}, segprobe = {} }

local DAY = 86400
local N = 60
local people = {}   -- i -> {id, gender, city, tags, orders = {{fen, days_ago, sku, refunded}}}

local function setup()
  if #people > 0 then return end
  local admin = kit.admin()
  admin:post("/members/tags", { name = "a" })
  admin:post("/members/tags", { name = "b" })
  local cities = { "上海", "杭州", "成都" }
  local order_id = 1000
  for i = 1, N do
    local p = { gender = i % 2 == 0 and "female" or "male", city = cities[i % 3 + 1],
                level = i % 4 == 0 and "gold" or (i % 4 == 1 and "silver" or nil),
                a = i % 2 == 0, b = i % 3 == 0, orders = {} }
    local profile = { gender = p.gender, city = p.city, level = p.level }
    if i % 7 == 0 then profile.city = nil; p.city = nil end
    local r = admin:post("/members/identify", { identities = { { channel = "card", id = "P" .. i } },
                                               profile = profile })
    p.id = r.body.member.id
    if p.a then admin:post("/members/" .. p.id .. "/tags", { tag = "a" }) end
    if p.b then admin:post("/members/" .. p.id .. "/tags", { tag = "b" }) end
    for k = 1, i % 4 do
      order_id = order_id + 1
      local o = { fen = 1000 * k + i * 10, days_ago = (i * 3 + k * 11) % 200,
                  sku = (i + k) % 5 == 0 and "s1" or "s2", refunded = (i % 11 == 0) }
      p.orders[#p.orders + 1] = o
      o.coupon = (i + k) % 3 == 0
      admin:post("/orderfeed/paid", { id = order_id, user = p.id, paid_fen = o.fen,
        coupon_id = o.coupon and order_id or nil,
        paid_at = kit.now() - o.days_ago * DAY - 60, lines = { { sku = o.sku, qty = 1 } } })
      if o.refunded then
        admin:post("/orderfeed/refunded", { id = order_id, user = p.id, paid_fen = o.fen, refunded_fen = o.fen })
      end
    end
    people[i] = p
  end
  kit.drain()
end

local function paid(p, days)
  local n, fen = 0, 0
  for _, o in ipairs(p.orders) do
    if not days or o.days_ago < days then n, fen = n + 1, fen + o.fen end
  end
  return n, fen
end

local function net(p)
  local fen = 0
  for _, o in ipairs(p.orders) do if not o.refunded then fen = fen + o.fen end end
  return fen
end

local function last_days(p)
  local best
  for _, o in ipairs(p.orders) do
    if not best or o.days_ago < best then best = o.days_ago end
  end
  return best
end

local function bought(p, sku, days)
  for _, o in ipairs(p.orders) do
    if o.sku == sku and not o.refunded and (not days or o.days_ago < days) then return true end
  end
  return false
end

local CASES = {
  { "a tag", { tag = "a" }, function(p) return p.a end },
  { "two tags", { all = { { tag = "a" }, { tag = "b" } } }, function(p) return p.a and p.b end },
  { "either tag", { any = { { tag = "a" }, { tag = "b" } } }, function(p) return p.a or p.b end },
  { "not a tag", { ["not"] = { tag = "a" } }, function(p) return not p.a end },
  { "gender eq", { field = "gender", op = "eq", value = "female" }, function(p) return p.gender == "female" end },
  { "city ne (empty counts as not equal)", { field = "city", op = "ne", value = "上海" },
    function(p) return p.city ~= "上海" end },
  { "city in", { field = "city", op = "in", value = { "上海", "成都" } },
    function(p) return p.city == "上海" or p.city == "成都" end },
  { "city not_in", { field = "city", op = "not_in", value = { "上海" } }, function(p) return p.city ~= "上海" end },
  { "city is_empty", { field = "city", op = "is_empty" }, function(p) return p.city == nil end },
  { "custom enum", { field = "level", op = "eq", value = "gold" }, function(p) return p.level == "gold" end },
  { "custom not_empty", { field = "level", op = "not_empty" }, function(p) return p.level ~= nil end },
  { "paid_orders gte", { field = "paid_orders", op = "gte", value = 2 },
    function(p) return #p.orders >= 2 end },
  { "paid_fen between", { field = "paid_fen", op = "between", value = { 2000, 5000 } },
    function(p) local _, f = paid(p); return f >= 2000 and f <= 5000 end },
  { "net_fen gt", { field = "net_fen", op = "gt", value = 3000 }, function(p) return net(p) > 3000 end },
  { "paid in 90 days", { field = "paid_fen", within_days = 90, op = "gte", value = 1500 },
    function(p) local _, f = paid(p, 90); return f >= 1500 end },
  { "sleeping: no order for 60 days", { field = "days_since_last_paid", op = "gte", value = 60 },
    function(p) local d = last_days(p); return d ~= nil and d >= 60 end },
  { "never paid", { field = "paid_orders", op = "eq", value = 0 }, function(p) return #p.orders == 0 end },
  { "bought s1", { bought = { "s1" } }, function(p) return bought(p, "s1") end },
  { "bought s1 in 30 days", { bought = { "s1" }, within_days = 30 }, function(p) return bought(p, "s1", 30) end },
  { "used a coupon twice", { field = "coupon_orders", op = "gte", value = 2 },
    function(p) local c = 0; for _, o in ipairs(p.orders) do if o.coupon then c = c + 1 end end; return c >= 2 end },
  { "used a coupon in 60 days", { field = "coupon_orders", within_days = 60, op = "gte", value = 1 },
    function(p)
      for _, o in ipairs(p.orders) do if o.coupon and o.days_ago < 60 then return true end end
      return false
    end },
  { "three conditions", { all = { { tag = "a" }, { field = "paid_orders", op = "gte", value = 1 },
      { ["not"] = { field = "city", op = "eq", value = "杭州" } } } },
    function(p) return p.a and #p.orders >= 1 and p.city ~= "杭州" end },
  { "nested any in all", { all = { { any = { { tag = "b" }, { field = "gender", op = "eq", value = "male" } } },
      { field = "paid_fen", op = "lt", value = 3000 } } },
    function(p) local _, f = paid(p); return (p.b or p.gender == "male") and f < 3000 end },
}

local function expected(pred)
  local ids = {}
  for i = 1, N do if pred(people[i]) then ids[#ids + 1] = people[i].id end end
  return ids
end

local function listed(name)
  local ids, after = {}, nil
  repeat
    local r = kit.admin():get("/members/segments/" .. name .. "/members?limit=7" .. (after and ("&after=" .. after) or ""))
    expect(r.status).to_be(200)
    for _, m in ipairs(r.body.items) do ids[#ids + 1] = m.id end
    after = r.body.next_after
  until not after
  return ids
end

describe("segment rules", function()
  for k, case in ipairs(CASES) do
    it(case[1], function()
      setup()
      local want = expected(case[3])
      local name = "case" .. k
      local created = kit.admin():post("/members/segments", { name = name, rule = case[2] })
      expect(created.status).to_be(201)
      expect(created.body.count).to_be(#want)
      expect(listed(name)).to_equal(want)
      local preview = kit.admin():post("/members/segments/preview", { rule = case[2] })
      expect(preview.body.count).to_be(#want)
      -- matches() from another plugin, for one member in and one out
      local inside, outside
      for i = 1, N do
        if case[3](people[i]) then inside = inside or people[i].id else outside = outside or people[i].id end
      end
      if inside then
        expect(kit.admin():post("/segprobe/match", { user = inside, segment = name }).body.matches).to_be(true)
      end
      if outside then
        expect(kit.admin():post("/segprobe/match", { user = outside, segment = name }).body.matches).to_be(false)
      end
    end)
  end
end)

describe("segment validation", function()
  local function bad(rule, field, pattern)
    local r = kit.admin():post("/members/segments/preview", { rule = rule })
    local e = expect(r).to_be_error(400, "invalid_field")
    expect(e.details.field).to_be(field)
    if pattern then expect(e.message).to_match(pattern) end
  end
  it("names the broken part with a guess", function()
    setup()
    bad({ field = "paid_fenn", op = "gt", value = 1 }, "rule.field", "did you mean 'paid_fen'")
    bad({ all = { { tag = "a" }, { field = "city", op = "equals", value = "x" } } }, "rule.all[2].op")
    bad({ field = "city", op = "between", value = { "a" } }, "rule.value")
    bad({ field = "paid_fen", op = "gt", value = "10" }, "rule.value")
    bad({ field = "gender", op = "eq", value = "other" }, "rule.value")
    bad({ field = "gender", op = "gt", value = "male" }, "rule.op")
    bad({ tag = "zz" }, "rule.tag", "no tag 'zz'")
    bad({ alll = {} }, "rule", "did you mean 'all'")
    bad({ all = {} }, "rule.all")
    bad({ tag = "a", field = "city" }, "rule")
    bad({ field = "city", op = "eq", value = "x", within_days = 3 }, "rule.within_days")
    bad({ segment = "nope" }, "rule.segment")
  end)
  it("refuses a segment that refers to itself", function()
    kit.admin():post("/members/segments", { name = "loop1", rule = { tag = "a" } })
    local r = kit.admin():put("/members/segments/loop1", { rule = { ["not"] = { segment = "loop1" } } })
    expect(r).to_be_error(400, "invalid_field")
  end)
end)
