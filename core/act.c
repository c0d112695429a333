// core/act.c: elementwise activations and softmax (see act.h). Elementwise loops run in fixed
// chunks through hs_parallel_for; each output depends only on its own inputs, so any thread count
// gives the same bits. Transcendentals are float (as PyTorch's CPU kernels); softmax rows are
// normalised with sums in double, always in index order.
#include "act.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "parallel.h"

#define ELEM_GRAIN 16384   // elements per parallel chunk: big enough to amortise the wake-up
#define SOFTMAX_BLOCK 64   // inner positions handled together (contiguous loads when inner > 1)

static const float INV_SQRT2 = 0.70710678118654752440f;
static const float INV_SQRT_2PI = 0.39894228040143267794f;

static const char *const act_names[] = {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu"};

const char *hs_act_name(hs_act a) {
    return (unsigned)a <= (unsigned)HS_ACT_SILU ? act_names[a] : NULL;
}

hs_status hs_act_from_name(hs_act *a, const char *name) {
    if (!a || !name)
        return HS_FAIL(HS_ERR_ARG, "act_from_name: NULL argument");
    for (int i = 0; i <= (int)HS_ACT_SILU; i++)
        if (strcmp(name, act_names[i]) == 0) {
            *a = (hs_act)i;
            return HS_OK;
        }
    return HS_FAIL(HS_ERR_ARG, "act: unknown activation '%s' (relu, leaky_relu, sigmoid, tanh, gelu, silu)", name);
}

// One check for forward and backward; backward also checks the saved buffer (x or out) the op reads.
static hs_status check_act(const char *op, int64_t n, hs_act a, float alpha, const void *dst, const void *src,
                           const float *x, const float *out, int backward) {
    if (!hs_act_name(a))
        return HS_FAIL(HS_ERR_ARG, "%s: unknown activation %d", op, (int)a);
    if (n < 0)
        return HS_FAIL(HS_ERR_ARG, "%s(%s): n = %lld is negative", op, act_names[a], (long long)n);
    if (a == HS_ACT_LEAKY_RELU && !isfinite(alpha))
        return HS_FAIL(HS_ERR_ARG, "%s(leaky_relu): negative slope alpha must be finite", op);
    if (n == 0)
        return HS_OK;
    if (!dst || !src)
        return HS_FAIL(HS_ERR_ARG, "%s(%s): NULL buffer for n = %lld", op, act_names[a], (long long)n);
    if (backward) {
        int uses_out = a == HS_ACT_SIGMOID || a == HS_ACT_TANH;
        if (uses_out && !out)
            return HS_FAIL(HS_ERR_ARG, "%s(%s): needs the forward output 'out' (got NULL)", op, act_names[a]);
        if (!uses_out && !x)
            return HS_FAIL(HS_ERR_ARG, "%s(%s): needs the forward input 'x' (got NULL)", op, act_names[a]);
    }
    return HS_OK;
}

static inline float sigmoidf_(float x) {
    return 1.0f / (1.0f + expf(-x));   // expf(-x) = inf for x << 0 gives exactly 0
}

typedef struct {
    float *dst;
    const float *dout, *x, *out;
    hs_act a;
    float alpha;
} act_ctx;

static void act_forward_range(void *vctx, int64_t b, int64_t e) {
    const act_ctx *c = vctx;
    float *o = c->dst;
    const float *x = c->x;
    switch (c->a) {
    case HS_ACT_RELU:
        for (int64_t i = b; i < e; i++)
            o[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case HS_ACT_LEAKY_RELU:
        for (int64_t i = b; i < e; i++)
            o[i] = x[i] > 0.0f ? x[i] : c->alpha * x[i];
        break;
    case HS_ACT_SIGMOID:
        for (int64_t i = b; i < e; i++)
            o[i] = sigmoidf_(x[i]);
        break;
    case HS_ACT_TANH:
        for (int64_t i = b; i < e; i++)
            o[i] = tanhf(x[i]);
        break;
    case HS_ACT_GELU:
        for (int64_t i = b; i < e; i++)
            o[i] = 0.5f * x[i] * (1.0f + erff(x[i] * INV_SQRT2));
        break;
    case HS_ACT_SILU:
        for (int64_t i = b; i < e; i++)
            o[i] = x[i] * sigmoidf_(x[i]);
        break;
    }
}

static void act_backward_range(void *vctx, int64_t b, int64_t e) {
    const act_ctx *c = vctx;
    float *dx = c->dst;
    const float *g = c->dout, *x = c->x, *y = c->out;
    switch (c->a) {
    case HS_ACT_RELU:
        for (int64_t i = b; i < e; i++)
            dx[i] += x[i] > 0.0f ? g[i] : 0.0f;
        break;
    case HS_ACT_LEAKY_RELU:
        for (int64_t i = b; i < e; i++)
            dx[i] += x[i] > 0.0f ? g[i] : c->alpha * g[i];
        break;
    case HS_ACT_SIGMOID:
        for (int64_t i = b; i < e; i++)
            dx[i] += g[i] * y[i] * (1.0f - y[i]);
        break;
    case HS_ACT_TANH:
        for (int64_t i = b; i < e; i++)
            dx[i] += g[i] * (1.0f - y[i] * y[i]);
        break;
    case HS_ACT_GELU:
        for (int64_t i = b; i < e; i++) {
            float v = x[i], cdf = 0.5f * (1.0f + erff(v * INV_SQRT2)), pdf = expf(-0.5f * v * v) * INV_SQRT_2PI;
            dx[i] += g[i] * (cdf + v * pdf);
        }
        break;
    case HS_ACT_SILU:
        for (int64_t i = b; i < e; i++) {
            float s = sigmoidf_(x[i]);
            dx[i] += g[i] * s * (1.0f + x[i] * (1.0f - s));
        }
        break;
    }
}

hs_status hs_act_forward(float *out, const float *x, int64_t n, hs_act a, float alpha) {
    HS_TRY(check_act("act_forward", n, a, alpha, out, x, x, out, 0));
    act_ctx c = {out, NULL, x, NULL, a, alpha};
    hs_parallel_for(n, ELEM_GRAIN, act_forward_range, &c);
    return HS_OK;
}

hs_status hs_act_backward(float *dx, const float *dout, const float *x, const float *out, int64_t n, hs_act a,
                          float alpha) {
    HS_TRY(check_act("act_backward", n, a, alpha, dx, dout, x, out, 1));
    act_ctx c = {dx, dout, x, out, a, alpha};
    hs_parallel_for(n, ELEM_GRAIN, act_backward_range, &c);
    return HS_OK;
}

// ---- softmax over the middle dim of (outer, dim, inner) ----

static hs_status check_softmax(const char *op, int64_t outer, int64_t dim, int64_t inner, const void *a,
                               const void *b, const void *c) {
    if (outer < 0 || inner < 0 || dim < 1)
        return HS_FAIL(HS_ERR_ARG, "%s: bad view (outer %lld, dim %lld, inner %lld): sizes must be >= 0 and dim >= 1",
                       op, (long long)outer, (long long)dim, (long long)inner);
    if (outer > INT64_MAX / dim || (inner > 0 && outer * dim > INT64_MAX / inner))
        return HS_FAIL(HS_ERR_ARG, "%s: view (%lld, %lld, %lld) overflows", op, (long long)outer, (long long)dim,
                       (long long)inner);
    if (outer * inner > 0 && (!a || !b || !c))
        return HS_FAIL(HS_ERR_ARG, "%s: NULL buffer", op);
    return HS_OK;
}

typedef struct {
    float *dst;
    const float *src, *dout;
    int64_t dim, inner, nblocks;
    int log;
} softmax_ctx;

// Work item = (o, block of up to SOFTMAX_BLOCK inner positions). Every row is reduced over d in
// increasing order, independent of how items are grouped into chunks.
static void softmax_forward_range(void *vctx, int64_t b, int64_t e) {
    const softmax_ctx *c = vctx;
    const int64_t dim = c->dim, inner = c->inner;
    float mx[SOFTMAX_BLOCK];
    double sum[SOFTMAX_BLOCK];
    for (int64_t it = b; it < e; it++) {
        int64_t o = it / c->nblocks, i0 = (it % c->nblocks) * SOFTMAX_BLOCK;
        int64_t w = inner - i0 < SOFTMAX_BLOCK ? inner - i0 : SOFTMAX_BLOCK;
        const float *x = c->src + o * dim * inner + i0;
        float *y = c->dst + o * dim * inner + i0;
        for (int64_t j = 0; j < w; j++) {
            mx[j] = -INFINITY;
            sum[j] = 0.0;
        }
        for (int64_t d = 0; d < dim; d++)
            for (int64_t j = 0; j < w; j++)
                if (x[d * inner + j] > mx[j])
                    mx[j] = x[d * inner + j];
        for (int64_t j = 0; j < w; j++)   // a row of -inf: keep exp(x - max) defined (NaN as torch)
            if (mx[j] == -INFINITY)
                mx[j] = 0.0f;
        if (c->log) {
            for (int64_t d = 0; d < dim; d++)
                for (int64_t j = 0; j < w; j++)
                    sum[j] += (double)expf(x[d * inner + j] - mx[j]);
            for (int64_t j = 0; j < w; j++)
                sum[j] = (double)mx[j] + log(sum[j]);   // log-sum-exp
            for (int64_t d = 0; d < dim; d++)
                for (int64_t j = 0; j < w; j++)
                    y[d * inner + j] = (float)((double)x[d * inner + j] - sum[j]);
        } else {
            // y may alias x: each element is read before it is overwritten with its exp
            for (int64_t d = 0; d < dim; d++)
                for (int64_t j = 0; j < w; j++) {
                    float ev = expf(x[d * inner + j] - mx[j]);
                    y[d * inner + j] = ev;
                    sum[j] += (double)ev;
                }
            for (int64_t j = 0; j < w; j++)
                sum[j] = 1.0 / sum[j];
            for (int64_t d = 0; d < dim; d++)
                for (int64_t j = 0; j < w; j++)
                    y[d * inner + j] = (float)((double)y[d * inner + j] * sum[j]);
        }
    }
}

static void softmax_backward_range(void *vctx, int64_t b, int64_t e) {
    const softmax_ctx *c = vctx;
    const int64_t dim = c->dim, inner = c->inner;
    double s[SOFTMAX_BLOCK];
    for (int64_t it = b; it < e; it++) {
        int64_t o = it / c->nblocks, i0 = (it % c->nblocks) * SOFTMAX_BLOCK;
        int64_t w = inner - i0 < SOFTMAX_BLOCK ? inner - i0 : SOFTMAX_BLOCK;
        const float *y = c->src + o * dim * inner + i0, *g = c->dout + o * dim * inner + i0;
        float *dx = c->dst + o * dim * inner + i0;
        for (int64_t j = 0; j < w; j++)
            s[j] = 0.0;
        if (c->log) {
            for (int64_t d = 0; d < dim; d++)
                for (int64_t j = 0; j < w; j++)
                    s[j] += (double)g[d * inner + j];
            for (int64_t d = 0; d < dim; d++)
                for (int64_t j = 0; j < w; j++) {
                    int64_t k = d * inner + j;
                    dx[k] += (float)((double)g[k] - (double)expf(y[k]) * s[j]);
                }
        } else {
            for (int64_t d = 0; d < dim; d++)
                for (int64_t j = 0; j < w; j++)
                    s[j] += (double)g[d * inner + j] * (double)y[d * inner + j];
            for (int64_t d = 0; d < dim; d++)
                for (int64_t j = 0; j < w; j++) {
                    int64_t k = d * inner + j;
                    dx[k] += (float)((double)y[k] * ((double)g[k] - s[j]));
                }
        }
    }
}

static void softmax_run(softmax_ctx *c, int64_t outer, hs_range_fn fn) {
    c->nblocks = (c->inner + SOFTMAX_BLOCK - 1) / SOFTMAX_BLOCK;
    int64_t items = outer * c->nblocks;
    int64_t per_item = c->dim * (c->inner < SOFTMAX_BLOCK ? c->inner : SOFTMAX_BLOCK);
    int64_t grain = ELEM_GRAIN / (per_item > 0 ? per_item : 1);
    hs_parallel_for(items, grain > 0 ? grain : 1, fn, c);
}

hs_status hs_softmax_forward(float *out, const float *x, int64_t outer, int64_t dim, int64_t inner, int log) {
    HS_TRY(check_softmax(log ? "log_softmax_forward" : "softmax_forward", outer, dim, inner, out, x, x));
    if (outer * inner == 0)
        return HS_OK;
    softmax_ctx c = {out, x, NULL, dim, inner, 0, log};
    softmax_run(&c, outer, softmax_forward_range);
    return HS_OK;
}

hs_status hs_softmax_backward(float *dx, const float *dout, const float *out, int64_t outer, int64_t dim,
                              int64_t inner, int log) {
    HS_TRY(check_softmax(log ? "log_softmax_backward" : "softmax_backward", outer, dim, inner, dx, dout, out));
    if (outer * inner == 0)
        return HS_OK;
    softmax_ctx c = {dx, out, dout, dim, inner, 0, log};
    softmax_run(&c, outer, softmax_backward_range);
    return HS_OK;
}
