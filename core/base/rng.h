/*
** rng.h - xoshiro256**, the generator behind tp.random.
**
** Seeded per invocation from a seed the host logs (splitmix64 expands it to
** the four words of state), so that every draw of a recorded run can be
** replayed; tests/e2e/hostrng.py and plugins/bargain/lib/rng.lua rebuild it
** bit for bit, and the unit test pins its first outputs.
*/
#ifndef TP_RNG_H
#define TP_RNG_H

#include <stdint.h>

void tp_rng_seed(uint64_t s[4], uint64_t seed);
uint64_t tp_rng_next(uint64_t s[4]);

#endif
