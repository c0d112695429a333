// core/dropout.h: inverted dropout on a flat float32 buffer with a mask drawn from the counter
// RNG (core/rng.h): element i is kept iff hs_rng_uniform(seed, stream, i) >= p, so the mask
// depends only on (seed, stream, i), never on the thread count or the call order.
// Not a layer: the caller owns the mask (saved for backward) and chooses seed/stream per call.
//
// Forward assigns (=) out and mask; backward adds (+=) into dx (caller zeroes).
// Status codes: HS_ERR_ARG (NULL buffer, p outside [0, 1], n < 0).
#ifndef HS_DROPOUT_H
#define HS_DROPOUT_H

#include <stdint.h>

#include "status.h"

// out (n) = x * mask / (1 - p); mask (n) in {0, 1}, may be NULL when not needed. p = 1 zeroes all.
hs_status hs_dropout_forward(float *out, uint8_t *mask, const float *x, int64_t n, float p, uint64_t seed,
                             uint64_t stream);   // out = x*mask/(1-p)
// dx (n) += dout * mask / (1 - p).
hs_status hs_dropout_backward(float *dx, const float *dout, const uint8_t *mask, int64_t n, float p);   // +=

#endif
