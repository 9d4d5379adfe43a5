-- members: streamed CSV import (idempotent, errors per line) and CSV export.

kit.plugins { members = { fields = { shoe_size = { type = "integer", min = 30, max = 50 } } } }

local COLUMNS = { "mp_openid", "phone", "nickname", "gender", "city", "shoe_size", "tags", "joined_at" }
local LINES = table.concat({
  'o1,13800000001,"Li, Lei",male,上海,42,vip|茶友,1700000000',
  'o2,,"say ""hi""",female,杭州,,茶友,',
  'o3,1380000abc,x,male,,,,',            -- bad phone
  'o4,,y,robot,,,,',                     -- bad gender
  'o5,,z,,,29,,',                        -- shoe_size below min
  'o6,13800000006,"two',                 -- a quoted field across lines
  'lines",,,,,,',
}, "\n") .. "\n"

local function import(columns)
  local r = kit.admin():post("/members/imports", { columns = columns or COLUMNS })
  expect(r.status).to_be(201)
  return r.body.id
end

local function chunk(id, seq, first, text)
  return kit.admin():post("/members/imports/" .. id .. "/chunks", { seq = seq, first_line = first, csv = text })
end

describe("import", function()
  it("checks the columns with a guess", function()
    local r = kit.admin():post("/members/imports", { columns = { "mp_openid", "nick" } })
    local e = expect(r).to_be_error(400, "invalid_field")
    expect(e.details.field).to_be("columns[2]")
    expect(e.message).to_match("did you mean 'nickname'")
    r = kit.admin():post("/members/imports", { columns = { "nickname" } })
    expect(r).to_be_error(400, "invalid_field")
  end)

  it("applies good lines, reports bad ones by line and column", function()
    local id = import()
    local r = chunk(id, 1, 2, LINES)   -- line 1 of the file is its header
    expect(r.status).to_be(200)
    expect({ r.body.lines, r.body.created, r.body.failed }).to_equal({ 6, 3, 3 })
    expect(r.body.errors).to_equal({
      { line = 4, column = "phone", message = "is not a phone number (6-20 digits, optionally after +)" },
      { line = 5, column = "gender", message = "gender must be one of female, male, unknown" },
      { line = 6, column = "shoe_size", message = "shoe_size must be an integer from 30 to 50" },
    })
    local m = kit.admin():get("/members?limit=10").body.items
    expect(#m).to_be(3)
    expect(m[1].nickname).to_be("Li, Lei")
    expect(m[1].phone).to_be("138****0001")
    expect(m[1].joined_at).to_be(1700000000)
    expect(m[1].fields.shoe_size).to_be(42)
    expect(m[2].nickname).to_be('say "hi"')
    expect(m[3].nickname).to_be("two\nlines")
    local one = kit.admin():get("/members/" .. m[1].id).body
    expect(#one.tags).to_be(2)
    -- the same chunk again is answered from its record
    local again = chunk(id, 1, 2, LINES)
    expect(again.body.replayed).to_be(true)
    expect(kit.query("SELECT count(*) AS n FROM members_members")[1].n).to_be(3)
    local totals = kit.admin():get("/members/imports/" .. id).body
    expect({ totals.lines, totals.created, totals.failed, #totals.errors }).to_equal({ 6, 3, 3, 3 })
  end)

  it("re-importing the file changes no one twice", function()
    local id = import()
    local r = chunk(id, 1, 2, LINES)
    expect({ r.body.created, r.body.updated, r.body.failed }).to_equal({ 0, 3, 3 })
    expect(kit.query("SELECT count(*) AS n FROM members_members")[1].n).to_be(3)
    expect(kit.query("SELECT count(*) AS n FROM members_member_tags")[1].n).to_be(3)
  end)

  it("refuses a broken chunk whole, with the line", function()
    local id = import()
    local r = chunk(id, 1, 10, 'a,b\n"open')
    local e = expect(r).to_be_error(400, "invalid_csv")
    expect(e.details.line).to_be(11)
    local big = {}
    for i = 1, 5001 do big[i] = "x" .. i end
    expect(chunk(id, 2, 1, table.concat(big, "\n"))).to_be_error(400, "invalid_field")
  end)

  it("reads a chunk as its lines one after another", function()
    local id = import({ "unionid", "card", "nickname", "tags" })
    local r = chunk(id, 1, 1, table.concat({
      "u-same,,first,x1",        -- a new member
      "u-same,K-1,second,x2",    -- the same member: a card added, its nickname replaced, a second tag
      ",K-1,third,",             -- found by the card the line before gave it
      "u-other,,,",              -- another new member
      "u-other,K-1,,",           -- its unionid and the card name two members: refused
    }, "\n"))
    expect({ r.body.created, r.body.updated, r.body.failed }).to_equal({ 2, 2, 1 })
    expect(r.body.errors[1].line).to_be(5)
    local n = kit.query("SELECT n FROM members_identities WHERE channel = 'unionid' AND external_id = 'u-same'")[1].n
    expect(kit.query("SELECT n FROM members_identities WHERE channel = 'card' AND external_id = 'K-1'")[1].n).to_be(n)
    expect(kit.query("SELECT nickname FROM members_members WHERE n = ?", n)[1].nickname).to_be("third")
    expect(kit.query("SELECT count(*) AS c FROM members_member_tags WHERE n = ?", n)[1].c).to_be(2)
  end)

  it("refuses a line whose identities are two members", function()
    local id = import({ "mp_openid", "card" })
    chunk(id, 1, 1, "o1,\n,C9\n")
    local r = chunk(id, 2, 3, "o1,C9\n")
    expect(r.body.failed).to_be(1)
    expect(r.body.errors[1].message).to_match("different members")
  end)
end)

describe("export", function()
  it("pages CSV with a header, phones masked, by segment", function()
    local first = kit.admin():get("/members/export?limit=2").body
    expect(first.csv:sub(1, 40)).to_be("id,nickname,gender,birthday,city,phone,s")
    expect(first.rows).to_be(2)
    expect(first.csv:find("13800000001", 1, true)).to_be_nil()
    expect(first.csv:find("138****0001", 1, true)).to_be_truthy()
    expect(first.csv:find('"Li, Lei"', 1, true)).to_be_truthy()
    local total = #kit.admin():get("/members").body.items
    local second = kit.admin():get("/members/export?limit=1000&after=" .. first.next_after).body
    expect(second.rows).to_be(total - 2)
    expect(second.csv:find("id,nickname", 1, true)).to_be_nil()
    kit.admin():post("/members/segments", { name = "vips", rule = { tag = "vip" } })
    local seg = kit.admin():get("/members/export?segment=vips").body
    expect(seg.rows).to_be(1)
    expect(seg.csv).to_match("vip|茶友")
  end)
end)
