-- segment drops: exports.drop(template_id, segment, ref) gives one coupon of
-- the template to every member of a segment of the members plugin, 500
-- members per job run, each run its own transaction; every member gets
-- exactly one, a run repeated or a drop started again gives nothing more, and
-- a drop whose quantity runs out stops saying how far it got and why.
-- couponkit (test/plugins) makes the tp.calls a campaign makes.

kit.plugins { coupons = {}, members = {}, couponkit = {} }

local MEMBERS = 2000

local function template(fields)
  local body = { name = "sleeping VIPs: ¥30 off", kind = "fixed", amount_off_fen = 3000, valid_days = 7,
                 total_quantity = 5000, audience = "issue_only" }
  for k, v in pairs(fields or {}) do body[k] = v end
  local res = kit.admin():post("/coupons/templates", body)
  assert(res.status == 201, "the template was refused: " .. res.status)
  return res.body.id
end

local function start(template_id, segment, ref)
  return kit.admin():post("/couponkit/drop", { template_id = template_id, segment = segment, ref = ref })
end

local function drop(id)
  return kit.admin():get("/coupons/drops/" .. id).body
end

---Coupons of the drop in all, and the members holding them (each once if equal).
local function given(drop_id)
  return kit.query([[SELECT count(*) AS coupons, count(DISTINCT user) AS members
    FROM coupons_coupons WHERE drop_id = ?]], drop_id)[1]
end

---Takes the members plugin's snapshot of the drop's segment, by hand: its
---snapshot_slice job (one run covers the 2,000 members), as the host runs it.
local function snapshot(drop_id)
  local sid = kit.query("SELECT snapshot_id FROM coupons_drops WHERE id = ?", drop_id)[1].snapshot_id
  local now_ms = kit.now() * 1000
  return kit.replay({ format = "tidepool-run/1", kind = "job", plugin = "members", name = "snapshot_slice",
    input = { id = 1, name = "snapshot_slice", key = "snapshot:" .. sid, attempt = 1, due = kit.now(),
              due_ms = now_ms, payload = { id = sid } },
    host = { now_ms = now_ms, seed = "1" }, outcome = {} })
end

---Runs one drop_slice job of drop_id by hand, as the host runs it (a duplicate run).
local function run_slice(drop_id)
  local now_ms = kit.now() * 1000
  return kit.replay({ format = "tidepool-run/1", kind = "job", plugin = "coupons", name = "drop_slice",
    input = { id = 1, name = "drop_slice", key = "drop:" .. drop_id, attempt = 1, due = kit.now(),
              due_ms = now_ms, payload = { drop_id = drop_id } },
    host = { now_ms = now_ms, seed = "1" }, outcome = {} })
end

describe("a segment of 2,000 members", function()
  it("is set up in the members plugin", function()
    expect(kit.admin():post("/members/tags", { name = "sleeping" }).status).to_be(201)
    for from = 1, MEMBERS, 500 do
      local res = kit.admin():post("/couponkit/members", { prefix = "s", from = from, to = from + 499, tag = "sleeping" })
      expect(res.body.tagged).to_be(500)
    end
    expect(kit.admin():post("/members/segments", { name = "sleepers", rule = { tag = "sleeping" } }).status)
      .to_be(201)
    expect(kit.admin():get("/members/segments/sleepers").body.count).to_be(MEMBERS)
  end)

  it("gets exactly one coupon each, 200 members a run", function()
    local tid = template()
    local res = start(tid, "sleepers", "double11/sleepers")
    expect(res.status).to_be(200)
    local id = res.body.id
    expect({ res.body.state, res.body.members_at_start, res.body.issued, res.body.ref })
      .to_equal({ "running", MEMBERS, 0, "double11/sleepers" })
    expect(given(id).coupons).to_be(0)            -- nothing until the job runs

    run_slice(id)                                 -- the snapshot is not taken yet: nothing
    expect({ drop(id).issued, drop(id).runs }).to_equal({ 0, 0 })
    snapshot(id)
    run_slice(id)                                 -- one run: one slice
    expect({ drop(id).issued, drop(id).runs, given(id).coupons }).to_equal({ 200, 1, 200 })

    kit.drain()
    local d = drop(id)
    -- ten full pages, then an empty one that ends the walk
    expect({ d.state, d.issued, d.skipped, d.reached, d.runs, d.stop })
      .to_equal({ "done", MEMBERS, 0, MEMBERS, 11, nil })
    expect(given(id)).to_equal({ coupons = MEMBERS, members = MEMBERS })
    expect(kit.query([[SELECT count(*) AS n FROM coupons_coupons WHERE template_id = ?
      AND issued_for = 'double11/sleepers' AND source = 'issue']], tid)[1].n).to_be(MEMBERS)
    expect(kit.query("SELECT issued FROM coupons_templates WHERE id = ?", tid)[1].issued).to_be(MEMBERS)
    -- a member sees it among their coupons
    local mine = kit.user("s00042"):get("/coupons/mine").body.items
    expect({ #mine, mine[1].template_id }).to_equal({ 1, tid })
  end)

  it("gives nothing more when its job runs again or the drop is started again", function()
    local id = kit.query("SELECT id FROM coupons_drops WHERE ref = 'double11/sleepers'")[1].id
    local tid = drop(id).template_id
    expect(run_slice(id).ok).to_be(true)
    local again = start(tid, "sleepers", "double11/sleepers")   -- the campaign's drop job, once more
    expect({ again.status, again.body.id, again.body.state }).to_equal({ 200, id, "done" })
    kit.drain()
    expect(given(id)).to_equal({ coupons = MEMBERS, members = MEMBERS })
    expect(kit.query("SELECT count(*) AS n FROM coupons_drops")[1].n).to_be(1)
    expect(drop(id).runs).to_be(11)
    -- the same ref for another template or segment is refused
    expect(start(template(), "sleepers", "double11/sleepers")).to_be_error(409, "drop_ref_taken")
  end)

  it("walks pages a second duplicate job cannot repeat: each run moves on from the cursor", function()
    local tid = template()
    local id = start(tid, "sleepers", "double11/dup").body.id
    snapshot(id)
    run_slice(id)
    run_slice(id)                                 -- as if the job had been scheduled twice
    expect(given(id)).to_equal({ coupons = 400, members = 400 })
    kit.drain()
    expect(given(id)).to_equal({ coupons = MEMBERS, members = MEMBERS })
  end)
end)

describe("a drop whose quantity runs out", function()
  it("stops when the template is exhausted, saying how many it reached and why", function()
    local tid = template({ total_quantity = 1200 })
    local id = start(tid, "sleepers", "double11/short").body.id
    kit.drain()
    local d = drop(id)
    expect({ d.state, d.issued, d.reached, d.stop.reason }).to_equal({ "stopped", 1200, 1200, "sold_out" })
    expect(d.stop.message).to_contain("1200 coupons ran out after 1200 members were reached")
    expect(d.finished_at).to_be(kit.now())
    expect(given(id)).to_equal({ coupons = 1200, members = 1200 })
    local t = kit.admin():get("/coupons/templates/" .. tid).body
    expect({ t.issued, t.remaining }).to_equal({ 1200, 0 })
  end)

  it("resumes after more quantity, reaching only those it had not reached", function()
    local id = kit.query("SELECT id FROM coupons_drops WHERE ref = 'double11/short'")[1].id
    local tid = drop(id).template_id
    -- resumed without more quantity, it walks the page it stopped in again and stops again
    expect(kit.admin():post("/coupons/drops/" .. id .. "/resume").body.state).to_be("running")
    kit.drain()
    local d = drop(id)
    expect({ d.state, d.issued, d.stop.reason }).to_equal({ "stopped", 1200, "sold_out" })
    expect(kit.admin():patch("/coupons/templates/" .. tid, { total_quantity = 2000 }).status).to_be(200)
    local res = kit.admin():post("/coupons/drops/" .. id .. "/resume")
    expect({ res.status, res.body.state, res.body.stop, res.body.finished_at }).to_equal({ 200, "running", nil, nil })
    expect(kit.admin():post("/coupons/drops/" .. id .. "/resume")).to_be_error(409, "drop_not_stopped")
    kit.drain()
    d = drop(id)
    expect({ d.state, d.issued, d.reached }).to_equal({ "done", MEMBERS, MEMBERS })
    expect(given(id)).to_equal({ coupons = MEMBERS, members = MEMBERS })
  end)
end)

describe("members already at per_user_limit", function()
  it("are skipped once each and counted, and hold one coupon still", function()
    -- 3 issued by hand, then 800 for the drop: it runs out in its second page
    local tid = template({ per_user_limit = 1, total_quantity = 803 })
    expect(kit.admin():post("/coupons/templates/" .. tid .. "/issue",
      { users = { "s00001", "s00777", "s02000" } }).body.issued).to_be(3)
    local id = start(tid, "sleepers", "double11/limit").body.id
    kit.drain()
    local d = drop(id)
    expect({ d.state, d.issued, d.skipped, d.stop.reason }).to_equal({ "stopped", 800, 2, "sold_out" })
    -- resumed, it walks that page again: s00777 is skipped, but counted once
    kit.admin():patch("/coupons/templates/" .. tid, { total_quantity = MEMBERS })
    kit.admin():post("/coupons/drops/" .. id .. "/resume")
    kit.drain()
    d = drop(id)
    expect({ d.state, d.issued, d.skipped, d.reached }).to_equal({ "done", MEMBERS - 3, 3, MEMBERS })
    expect(kit.query([[SELECT count(*) AS coupons, count(DISTINCT user) AS members FROM coupons_coupons
      WHERE template_id = ?]], tid)[1]).to_equal({ coupons = MEMBERS, members = MEMBERS })
    expect(kit.query("SELECT user FROM coupons_drop_skips WHERE drop_id = ? ORDER BY user", id))
      .to_equal({ { user = "s00001" }, { user = "s00777" }, { user = "s02000" } })
  end)
end)

describe("a drop that cannot go on", function()
  it("stops when its template is paused (the campaign item was withdrawn)", function()
    local tid = template()
    local id = start(tid, "sleepers", "double11/paused").body.id
    expect(kit.admin():patch("/coupons/templates/" .. tid, { status = "paused" }).status).to_be(200)
    kit.drain()
    local d = drop(id)
    expect({ d.state, d.issued, d.stop.reason }).to_equal({ "stopped", 0, "paused" })
    expect(given(id).coupons).to_be(0)
  end)

  it("gives to the members its segment had when it started, whatever happens to the segment", function()
    expect(kit.admin():post("/members/segments", { name = "short_lived", rule = { tag = "sleeping" } }).status)
      .to_be(201)
    local id = start(template(), "short_lived", "double11/gone").body.id
    snapshot(id)
    -- the segment changes and is deleted, and a member leaves it: none of it counts
    expect(kit.admin():delete("/members/segments/short_lived").status).to_be(200)
    kit.admin():delete("/members/s00007/tags/sleeping")
    kit.drain()
    local d = drop(id)
    expect({ d.state, d.issued, d.stop }).to_equal({ "done", MEMBERS, nil })
    expect(kit.query("SELECT count(*) AS n FROM coupons_coupons WHERE drop_id = ? AND user = 's00007'", id)[1].n)
      .to_be(1)
  end)
end)

describe("starting a drop", function()
  it("refuses an unknown segment or template and a malformed ref, starting nothing", function()
    local before = kit.query("SELECT count(*) AS n FROM coupons_drops")[1].n
    local tid = template()
    local err = expect(start(tid, "nobody", "double11/x")).to_be_error(404, "segment_not_found")
    expect(err.details).to_equal({ field = "segment", segment = "nobody" })
    expect(start(999999, "sleepers", "double11/x")).to_be_error(404, "template_not_found")
    expect(expect(start(tid, "sleepers", "Double 11")).to_be_error(400, "invalid_field").details)
      .to_equal({ field = "ref" })
    expect(expect(start(tid, "no spaces", "double11/x")).to_be_error(400, "invalid_field").details)
      .to_equal({ field = "segment" })
    expect(kit.query("SELECT count(*) AS n FROM coupons_drops")[1].n).to_be(before)
  end)

  it("lists the drops for operators, by template too", function()
    local all = kit.admin():get("/coupons/drops?limit=200").body.items
    expect(#all >= 6).to_be(true)
    local tid = kit.query("SELECT template_id FROM coupons_drops WHERE ref = 'double11/short'")[1].template_id
    local mine = kit.admin():get("/coupons/drops?template_id=" .. tid).body.items
    expect({ #mine, mine[1].ref, mine[1].state }).to_equal({ 1, "double11/short", "done" })
    expect(kit.admin():get("/coupons/drops/999999")).to_be_error(404, "drop_not_found")
  end)
end)

describe("an operator's drop to a segment (POST /coupons/templates/{id}/drops)", function()
  it("starts once per template and segment, and reaches every member", function()
    local tid = template()
    local want = kit.admin():get("/members/segments/sleepers").body.count
    local res = kit.admin():post("/coupons/templates/" .. tid .. "/drops", { segment = "sleepers" })
    expect(res.status).to_be(202)
    expect(res.body.ref).to_be("admin/" .. tid .. "/sleepers")
    local again = kit.admin():post("/coupons/templates/" .. tid .. "/drops", { segment = "sleepers" })
    expect(again.status).to_be(200)
    expect(again.body.id).to_be(res.body.id)
    kit.drain()
    expect(drop(res.body.id).state).to_be("done")
    expect(given(res.body.id)).to_equal({ coupons = want, members = want })
    local other = kit.admin():post("/coupons/templates/" .. tid .. "/drops", { segment = "sleepers", ref = "admin/second" })
    expect(other.status).to_be(202)
    expect(other.body.id ~= res.body.id).to_be(true)
    expect(kit.admin():post("/coupons/templates/" .. tid .. "/drops", { segment = "nobody" }))
      .to_be_error(404, "segment_not_found")
    expect(kit.admin():post("/coupons/templates/" .. tid .. "/drops", { segment = "sleepers", ref = "Bad Ref" }))
      .to_be_error(400, "invalid_field")
    expect(kit.admin():post("/coupons/templates/" .. tid .. "/drops", { segment = "sleepers", ref = "admin/second",
      extra = 1 })).to_be_error(400, "invalid_field")
  end)
end)
