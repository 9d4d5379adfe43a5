-- members: a segment frozen for a scheduled action (lib/snapshots.lua): taken
-- once per key, in slices, then walked page by page; later changes to the
-- segment or its members do not change it; merged members answer as their
-- survivor, erased ones are left out.

kit.plugins { members = {}, snapprobe = {} }

local function member(card, tag)
  local id = kit.admin():post("/members/identify", { identities = { { channel = "card", id = card } } }).body.member.id
  if tag then kit.admin():post("/members/" .. id .. "/tags", { tag = tag }) end
  return id
end

local function walk(id, limit)
  local out, after = {}, 0
  repeat
    local p = kit.admin():post("/snapprobe/page", { id = id, after = after, limit = limit }).body
    expect(p.ready).to_be(true)
    for _, m in ipairs(p.members) do out[#out + 1] = m end
    after = p.next
  until not after
  return out
end

describe("snapshots", function()
  it("freeze who is in the segment when they are taken", function()
    kit.admin():post("/members/tags", { name = "in" })
    local ids = {}
    for i = 1, 12 do ids[i] = member("S" .. i, i % 2 == 0 and "in" or nil) end
    kit.admin():post("/members/segments", { name = "evens", rule = { tag = "in" } })
    local s = kit.admin():post("/snapprobe/start", { segment = "evens", key = "drop-1" }).body
    expect({ s.state, s.count }).to_equal({ "building", 0 })
    expect(kit.admin():post("/snapprobe/page", { id = s.id }).body).to_equal({ ready = false })
    -- before its slice runs, a member's change still counts (ids[1] gets the tag);
    -- a member who joins the pool after the snapshot began is never in it
    kit.admin():post("/members/" .. ids[1] .. "/tags", { tag = "in" })
    member("LATE", "in")
    kit.drain()
    local again = kit.admin():post("/snapprobe/start", { segment = "evens", key = "drop-1" }).body
    expect({ again.id, again.state, again.count }).to_equal({ s.id, "ready", 7 })
    local want = { ids[1], ids[2], ids[4], ids[6], ids[8], ids[10], ids[12] }
    expect(walk(s.id, 3)).to_equal(want)
    expect(kit.admin():get("/members/segments/evens").body.count).to_be(8)   -- late is in the segment now
    -- afterwards nothing changes it: the segment is deleted, a member leaves
    kit.admin():delete("/members/" .. ids[2] .. "/tags/in")
    kit.admin():delete("/members/segments/evens")
    expect(walk(s.id, 100)).to_equal(want)
  end)

  it("answer a merged member as its survivor and leave an erased one out", function()
    kit.admin():post("/members/tags", { name = "m" })
    local a, b, c = member("MA", "m"), member("MB", "m"), member("MC", "m")
    kit.admin():post("/members/segments", { name = "ms", rule = { tag = "m" } })
    local s = kit.admin():post("/snapprobe/start", { segment = "ms", key = "drop-2" }).body
    kit.drain()
    kit.admin():post("/members/merges", { from = b, into = a })
    kit.admin():post("/members/" .. c .. "/erase", {})
    expect(walk(s.id, 10)).to_equal({ a, a })
  end)

  it("refuse an unknown segment and an unknown snapshot", function()
    expect(kit.admin():post("/snapprobe/start", { segment = "nope", key = "k" })).to_be_error(404, "segment_not_found")
    expect(kit.admin():post("/snapprobe/page", { id = 999 })).to_be_error(404, "snapshot_not_found")
  end)
end)
