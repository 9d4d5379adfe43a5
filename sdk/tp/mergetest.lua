-- tp.mergetest: the merge contract's tests, for `tidepool test` files of a
-- plugin that keeps something per member and so exports member_merge and
-- member_unmerge (tp.merge; sdk/GUIDE.md "Merging members"). It uses the
-- kit's globals: the file enables the plugin and merger (sdk/testplugins),
-- which calls the exports as the members plugin does, inside the request's
-- transaction. What moves is the plugin's own; the contract every plugin
-- keeps is here:
--
--   local mt = require("tp.mergetest").new {
--     plugin = "flash_sale",
--     state = function() return { buyers = kit.query(...), ... } end,  -- all it keeps per person
--   }
--   mt.call(fn, from, into, merge_id)     the merger's answer (fn: merge, unmerge, merge_then_fail)
--   mt.merged(from, into, merge_id)       member_merge's counts (it must answer 200)
--   mt.unmerged(from, into, merge_id)     member_unmerge's counts
--   mt.again(from, into, merge_id, none)  a repeat moves `none` and changes nothing
--   mt.undone_again(from, into, merge_id, none)  an unknown merge_id's undo and a second undo do
--                                         nothing; returns what the one real undo moved
--   mt.failing(from, into, merge_id)      a failure later in the members' transaction leaves nothing
--   mt.refuses_malformed()                what cannot be a merge: 400 invalid_merge both ways, nothing changed
--   mt.refuses_reused(from, into, merge_id)  a merge_id recorded for other ids: 400 both ways, nothing changed

local mergetest = {}

---What cannot be a merge: one id twice, ids that are not user ids, a missing
---one, and merge_ids that are not positive integers.
mergetest.MALFORMED = {
  { "same", "same", 30 }, { "bad from", "bad-into", 30 }, { "bad-from", "", 30 },
  { "bad-from", string.rep("x", 65), 30 }, { string.rep("u", 65), "bad-into", 30 },
  { nil, "bad-into", 30 }, { 7, "bad-into", 30 },
  { "bad-from", "bad-into", 0 }, { "bad-from", "bad-into", -1 }, { "bad-from", "bad-into", 1.5 },
  { "bad-from", "bad-into", "30" },
}

---@class MergeTestSpec
---@field plugin string the plugin under test
---@field state fun(): table everything the plugin keeps per person (whole rows)

---@param spec MergeTestSpec
function mergetest.new(spec)
  local mt = {}

  function mt.call(fn, from, into, merge_id)
    return kit.admin():post("/merger/" .. fn, { plugin = spec.plugin, from = from, into = into,
                                                merge_id = merge_id })
  end

  local function moved(fn, from, into, merge_id)
    local res = mt.call(fn, from, into, merge_id)
    local err = type(res.body) == "table" and res.body.error
    expect({ fn, res.status, err and err.code }).to_equal({ fn, 200, nil })
    return res.body.moved
  end

  function mt.merged(from, into, merge_id) return moved("merge", from, into, merge_id) end

  function mt.unmerged(from, into, merge_id) return moved("unmerge", from, into, merge_id) end

  ---A second merge with a merge_id already done moves nothing (`none`: the
  ---counts of nothing moved) and leaves everything as it was.
  function mt.again(from, into, merge_id, none)
    local before = spec.state()
    expect(mt.merged(from, into, merge_id)).to_equal(none)
    expect(spec.state()).to_equal(before)
  end

  ---The undo of a merge_id never merged, and a second undo of one undone,
  ---move nothing and leave everything as it was. merge_id must be merged
  ---(and not undone) when it is called; it is undone in between, and what
  ---that undo moved is returned.
  function mt.undone_again(from, into, merge_id, none)
    local after = spec.state()
    expect(mt.unmerged(from, into, 999999)).to_equal(none)
    expect(spec.state()).to_equal(after)
    local undid = mt.unmerged(from, into, merge_id)
    local undone = spec.state()
    expect(mt.unmerged(from, into, merge_id)).to_equal(none)
    expect(spec.state()).to_equal(undone)
    return undid
  end

  ---The members plugin fails after this plugin merged, in the same
  ---transaction: nothing of the merge may stay.
  function mt.failing(from, into, merge_id)
    local before = spec.state()
    expect(mt.call("merge_then_fail", from, into, merge_id)).to_be_error(409, "later_step_failed")
    expect(spec.state()).to_equal(before)
  end

  ---fn(from, into, merge_id) must be refused with 400 invalid_merge; a
  ---failure names the call.
  local function refused(fn, from, into, merge_id)
    local res = mt.call(fn, from, into, merge_id)
    local err = type(res.body) == "table" and res.body.error
    local call = ("%s(%s, %s, %s)"):format(fn, tostring(from), tostring(into), tostring(merge_id))
    local got = { [call] = { res.status, err and err.code or "-" } }
    expect(got).to_equal({ [call] = { 400, "invalid_merge" } })
  end

  ---Every MALFORMED case, merge and unmerge: 400 invalid_merge, nothing changed.
  function mt.refuses_malformed()
    local before = spec.state()
    for _, fn in ipairs({ "merge", "unmerge" }) do
      for _, case in ipairs(mergetest.MALFORMED) do refused(fn, case[1], case[2], case[3]) end
    end
    expect(spec.state()).to_equal(before)
  end

  ---merge_id, recorded as from into into, is refused for any other pair, both
  ---ways: 400 invalid_merge, nothing changed.
  function mt.refuses_reused(from, into, merge_id)
    local before = spec.state()
    refused("merge", "reused-other", into, merge_id)
    refused("merge", from, "reused-other", merge_id)
    refused("unmerge", from, "reused-other", merge_id)
    refused("unmerge", into, from, merge_id)
    expect(spec.state()).to_equal(before)
  end

  return mt
end

return mergetest
