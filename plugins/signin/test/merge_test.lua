-- Merging members: from's sign-in days move to into, except days into has.

kit.plugins { signin = {}, merger = {} }

local function state()
  return { days = kit.query("SELECT user, day, streak FROM signin_days ORDER BY user, day"),
           merges = kit.query("SELECT merge_id, from_user, into_user FROM signin_merges ORDER BY merge_id"),
           moves = kit.query("SELECT merge_id, day FROM signin_merge_moves ORDER BY 1, 2") }
end

local mt = require("tp.mergetest").new { plugin = "signin", state = state }
local NONE = { days = 0 }

describe("a merge", function()
  it("moves the days into lacks, once, and an unmerge moves them back", function()
    kit.set_local("2026-11-10 09:00:00")
    kit.user("a-from"):post("/signin")
    kit.user("a-into"):post("/signin")
    kit.set_local("2026-11-11 09:00:00")
    kit.user("a-from"):post("/signin")
    expect(mt.merged("a-from", "a-into", 1)).to_equal({ days = 1 })
    -- into signed in on 11-10 itself; 11-11 came from from, as day 2 of its streak
    expect(kit.user("a-into"):get("/signin/me").body.streak).to_be(2)
    mt.again("a-from", "a-into", 1, NONE)
    expect(mt.undone_again("a-from", "a-into", 1, NONE)).to_equal({ days = 1 })
  end)

  it("keeps the contract", function()
    mt.failing("a-from", "a-into", 2)
    mt.refuses_malformed()
    expect(mt.merged("a-from", "a-into", 3)).to_equal({ days = 1 })
    mt.refuses_reused("a-from", "a-into", 3)
  end)
end)
