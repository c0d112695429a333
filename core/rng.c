// core/rng.c: counter-based generator; see rng.h.
#include "rng.h"

#include <math.h>

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t hs_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint64_t k = mix(seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL);
    k = mix(k ^ (stream * 0xd1b54a32d192ed03ULL + 0x8cb92ba72f3d8dd7ULL));
    return mix(k ^ (counter * 0x9e3779b97f4a7c15ULL));
}

float hs_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    return (float)(hs_rng_u64(seed, stream, counter) >> 40) * (1.0f / 16777216.0f);
}

float hs_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter) {
    double u1 = ((double)(hs_rng_u64(seed, stream, 2 * counter) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(hs_rng_u64(seed, stream, 2 * counter + 1) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
