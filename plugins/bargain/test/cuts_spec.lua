-- Property checks of lib/cuts.lua and lib/rng.lua outside the host (plain
-- Lua 5.4; both modules are pure). tests/e2e/test_bargain.py runs it with
-- lua5.4 when the interpreter is installed:
--   lua5.4 plugins/bargain/test/cuts_spec.lua
-- Prints "ok <n> checks" and exits 0, or raises on the first broken property.

local here = arg and arg[0] and arg[0]:match("^(.*)/test/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local cuts = require("lib.cuts")
local rng = require("lib.rng")

local checks = 0
local function expect(cond, ...)
  checks = checks + 1
  if not cond then error(string.format(...), 2) end
end

-- 1. every path of draws, for small sizes: each cut >= 1 fen, each leaves
--    >= 1 fen per cut to come, and every path ends exactly at the floor
local function walk(remaining, left, total, path)
  if left == 0 then
    expect(remaining == 0, "path %s ends %d fen above the floor", table.concat(path, ","), remaining)
    return 1
  end
  local lo, hi = 1, 1
  if left > 1 then lo, hi = cuts.range(remaining, left) end
  local leaves = 0
  for d = lo, hi do
    local cut, draw = cuts.next(remaining, left, function(a, b)
      expect(a == lo and b == hi, "range asked (%d,%d) differs from cuts.range", a, b)
      return d
    end)
    expect(cut >= 1, "a cut of %d fen", cut)
    expect(remaining - cut >= left - 1, "cut %d of %d leaves less than a fen for %d cuts",
      cut, remaining, left - 1)
    expect(left > 1 or (cut == remaining and draw == nil), "the last cut must take the remainder")
    path[#path + 1] = cut
    leaves = leaves + walk(remaining - cut, left - 1, total, path)
    path[#path] = nil
    if left == 1 then break end
  end
  return leaves
end

for total = 1, 18 do
  for n = 1, math.min(total, 6) do walk(total, n, total, {}) end
end

-- 2. larger sizes with the host's generator and with extreme draws
local function run(total, n, random)
  local remaining, sum = total, 0
  for left = n, 1, -1 do
    local cut = cuts.next(remaining, left, random)
    expect(cut >= 1 and remaining - cut >= left - 1, "cut %d of %d with %d left", cut, remaining, left)
    remaining, sum = remaining - cut, sum + cut
  end
  expect(remaining == 0 and sum == total, "cuts sum to %d, want %d", sum, total)
end

local always_lo = function(lo) return lo end
local always_hi = function(_, hi) return hi end
for _, n in ipairs({ 1, 2, 3, 7, 25, 100, 1000 }) do
  for _, total in ipairs({ n, n + 1, 2 * n, 9800, 99999, 1000000 }) do
    if total >= n then
      run(total, n, always_lo)
      run(total, n, always_hi)
      for seed = 1, 20 do run(total, n, rng.new(seed * 7919 + n)) end
    end
  end
end

-- 3. the Lua generator draws what the host's does (values computed by the
--    host's algorithm in Python, tests/e2e/test_api.py xoshiro_draws)
local g = rng.new(12345)
local got = {}
for i = 1, 5 do got[i] = g(1, 100) end
expect(table.concat(got, " ") == "84 99 57 96 45", "rng(12345) draws %s", table.concat(got, " "))
g = rng.new(0x7fffffffffffffff)
got = {}
for i = 1, 5 do got[i] = g(1, 1000000007) end
expect(table.concat(got, " ") == "80576338 503533106 144017537 954292390 721799283",
  "rng(2^63-1) draws %s", table.concat(got, " "))

print(("ok %d checks"):format(checks))
