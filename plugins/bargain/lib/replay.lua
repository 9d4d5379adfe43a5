-- Replaying a bargain's cuts. Each cut was recorded with the seed of the
-- invocation that made it and the draw it used. The replay starts again from
-- the frozen rules (original - floor, the cut count) and, cut after cut,
-- 1. feeds the recorded draw to lib/cuts.lua and compares the cut it gives
--    with the recorded one, and
-- 2. rebuilds the host's generator from the recorded seed (lib/rng.lua) and
--    checks that its first draw in the cut's range is the recorded draw
--    (a cut is the first draw of its invocation).
-- Everything matches only if the cuts are exactly what the seeds produce and
-- they add up to the bargain's stored state.

local cuts = require("lib.cuts")
local rng = require("lib.rng")
local rules = require("lib.rules")

local replay = {}

---Replays one recorded cut from remaining/left; returns the replayed cut and
---draw, whether the seed gives the same draw, and why not (or nil).
local function replay_cut(h, remaining, left)
  if left < 1 or remaining < left then return nil, nil, false, "no cut was possible here" end
  local problem
  local cut, draw = cuts.next(remaining, left, function(lo, hi)
    if math.type(h.draw) ~= "integer" or h.draw < lo or h.draw > hi then
      problem = ("the recorded draw %s is outside [%d, %d]"):format(tostring(h.draw), lo, hi)
      return lo
    end
    return h.draw
  end)
  if problem then return cut, draw, false, problem end
  local seed_ok = true
  if draw then
    local lo, hi = cuts.range(remaining, left)
    seed_ok = rng.new(h.seed)(lo, hi) == draw
  elseif h.draw ~= nil then
    problem = "the last cut draws nothing, but a draw is recorded"
  end
  return cut, draw, seed_ok, problem
end

---The replay report of bargain b.
---@param b Bargain
---@param helps table[] its cuts with draws (store.helps(id, true))
---@return table
function replay.bargain(b, helps)
  local r = rules.decode(b.rules)
  local remaining = r.original_price_fen - r.floor_price_fen
  local left = rules.cuts_total(r)
  local out, all_match, total = tp.json.array(), true, 0
  for i, h in ipairs(helps) do
    local cut, draw, seed_ok, problem = replay_cut(h, remaining, left)
    local match = cut == h.cut_fen and draw == h.draw and seed_ok and not problem
      and h.seq == i and h.remaining_before_fen == remaining and h.cuts_left_before == left
    all_match = all_match and match
    out[i] = { seq = h.seq, helper = h.helper, seed = h.seed, draw = h.draw, cut_fen = h.cut_fen,
               replayed_cut_fen = cut, seed_gives_draw = seed_ok, match = match, problem = problem }
    total = total + h.cut_fen
    remaining, left = remaining - (cut or 0), left - 1
  end
  local state_match = remaining == b.remaining_fen and left == b.cuts_left
  return { bargain_id = b.id, match = all_match and state_match, state_match = state_match,
           cuts = out, cut_total_fen = total,
           price_fen = b.floor_price_fen + b.remaining_fen,
           replayed_price_fen = r.floor_price_fen + remaining }
end

return replay
