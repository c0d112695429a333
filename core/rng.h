// core/rng.h: counter-based random numbers (a keyed 64-bit mix, SplitMix64 finaliser over
// (seed, stream, counter)). Value i of a stream depends only on (seed, stream, i), so a random
// tensor is the same whatever the thread count or the order in which elements are produced.
#ifndef HS_RNG_H
#define HS_RNG_H

#include <stdint.h>

uint64_t hs_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);
// Uniform in [0, 1) with 24 random bits (exactly representable as float).
float hs_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);
// Standard normal (Box-Muller on counters 2i, 2i+1).
float hs_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);

#endif
