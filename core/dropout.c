// core/dropout.c: inverted dropout (see dropout.h). Elements are split into fixed chunks under
// hs_parallel_for; each element's keep decision comes from the counter RNG at its own index.
#include "dropout.h"

#include <stddef.h>

#include "parallel.h"
#include "rng.h"

#define GRAIN 16384

typedef struct {
    float *out, *dx;
    uint8_t *mask;
    const uint8_t *cmask;
    const float *x, *dout;
    float p, scale;
    uint64_t seed, stream;
} drop_job;

// 1/(1-p), or 0 when everything is dropped (PyTorch returns zeros for p = 1).
static float keep_scale(float p) { return p >= 1.0f ? 0.0f : 1.0f / (1.0f - p); }

static hs_status check(const char *op, const void *a, const void *b, int64_t n, float p) {
    if (n < 0)
        return HS_FAIL(HS_ERR_ARG, "%s: negative size %lld", op, (long long)n);
    if (!(p >= 0.0f && p <= 1.0f))
        return HS_FAIL(HS_ERR_ARG, "%s: p = %g must be in [0, 1]", op, (double)p);
    if (n > 0 && (!a || !b))
        return HS_FAIL(HS_ERR_ARG, "%s: NULL buffer", op);
    return HS_OK;
}

static void fwd_task(void *ctx, int64_t b, int64_t e) {
    const drop_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        uint8_t keep = hs_rng_uniform(j->seed, j->stream, (uint64_t)i) >= j->p;
        if (j->mask)
            j->mask[i] = keep;
        j->out[i] = j->x[i] * (float)keep * j->scale;   // as PyTorch: a dropped NaN stays NaN
    }
}

hs_status hs_dropout_forward(float *out, uint8_t *mask, const float *x, int64_t n, float p, uint64_t seed,
                             uint64_t stream) {
    HS_TRY(check("dropout", out, x, n, p));
    drop_job j = {out, NULL, mask, NULL, x, NULL, p, keep_scale(p), seed, stream};
    hs_parallel_for(n, GRAIN, fwd_task, &j);
    return HS_OK;
}

static void bwd_task(void *ctx, int64_t b, int64_t e) {
    const drop_job *j = ctx;
    for (int64_t i = b; i < e; i++)
        j->dx[i] += j->dout[i] * (float)j->cmask[i] * j->scale;
}

hs_status hs_dropout_backward(float *dx, const float *dout, const uint8_t *mask, int64_t n, float p) {
    HS_TRY(check("dropout_backward", dx, dout, n, p));
    if (n > 0 && !mask)
        return HS_FAIL(HS_ERR_ARG, "dropout_backward: NULL mask");
    drop_job j = {NULL, dx, NULL, mask, NULL, dout, p, keep_scale(p), 0, 0};
    hs_parallel_for(n, GRAIN, bwd_task, &j);
    return HS_OK;
}
