"""
hostrng.py - the host's random generator (core/base/rng.c) in Python, written
independently of the C and of plugins' Lua copies, so that tests can replay a
logged seed: splitmix64 expands the seed into the state, xoshiro256** draws,
and a range draw rejects the biased tail, exactly as tp.random does.
"""
M = (1 << 64) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


class HostRandom:
    def __init__(self, seed):
        seed &= M
        self.s = []
        for _ in range(4):
            seed = (seed + 0x9e3779b97f4a7c15) & M
            z = seed
            z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
            z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s
        result = (_rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result

    def ranged(self, lo, hi):
        """tp.random(lo, hi)"""
        span = hi - lo + 1
        limit = M - (M % span)  # UINT64_MAX - UINT64_MAX % span
        r = self.next()
        while r >= limit:
            r = self.next()
        return lo + r % span

    def float(self):
        """tp.random()"""
        return (self.next() >> 11) * 2.0 ** -53
