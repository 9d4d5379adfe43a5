-- The host's random generator (core/base/rng.c) rebuilt in Lua, so a recorded seed
-- can be replayed here: splitmix64 expands the seed into xoshiro256** state,
-- and random(lo, hi) rejects the biased tail exactly as tp.random does.
-- Lua 5.4 integers are 64-bit two's complement: + and * wrap, >> is logical,
-- so the C arithmetic on uint64_t carries over; only unsigned comparison and
-- modulo need math.ult and umod below.

local rng = {}

local function rotl(x, k)
  return (x << k) | (x >> (64 - k))
end

---x mod m for x read as unsigned 64-bit and 0 < m < 2^62.
local function umod(x, m)
  if x >= 0 then return x % m end
  return (((x >> 1) % m) * 2 + (x & 1)) % m
end

---A generator seeded like a host invocation with seed.
---@param seed integer
---@return fun(lo: integer, hi: integer): integer
function rng.new(seed)
  local s = {}
  for i = 1, 4 do  -- splitmix64
    seed = seed + 0x9e3779b97f4a7c15
    local z = seed
    z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
    z = (z ~ (z >> 27)) * 0x94d049bb133111eb
    s[i] = z ~ (z >> 31)
  end
  local function next_u64()  -- xoshiro256**
    local result, t = rotl(s[2] * 5, 7) * 9, s[2] << 17
    s[3] = s[3] ~ s[1]
    s[4] = s[4] ~ s[2]
    s[2] = s[2] ~ s[3]
    s[1] = s[1] ~ s[4]
    s[3] = s[3] ~ t
    s[4] = rotl(s[4], 45)
    return result
  end
  return function(lo, hi)
    local span = hi - lo + 1
    assert(span >= 1 and span < (1 << 62), "rng: span out of the replayable range")
    local limit = -1 - umod(-1, span)  -- UINT64_MAX - UINT64_MAX % span
    local r = next_u64()
    while not math.ult(r, limit) do r = next_u64() end
    return lo + umod(r, span)
  end
end

return rng
