// core/loss.c: cross-entropy, MSE, BCE-with-logits and soft Dice (see loss.h). Reductions are
// split into at most MAX_CHUNKS chunks whose boundaries depend only on the sizes; each chunk sums
// in double in index order into its own slot, and the slots are added in chunk order. That makes
// every loss bit-identical for any thread count without allocating.
#include "loss.h"

#include <math.h>
#include <stddef.h>

#include "parallel.h"

#define MAX_CHUNKS 256
#define MIN_GRAIN 4096     // elements per chunk below which threading does not pay
#define CE_BLOCK 64        // spatial positions handled together (contiguous loads along S)

// Items per chunk: at least min_items, and few enough chunks to fit the partial-sum slots.
static int64_t chunk_grain(int64_t items, int64_t min_items) {
    int64_t g = (items + MAX_CHUNKS - 1) / MAX_CHUNKS;
    if (min_items < 1)
        min_items = 1;
    return g < min_items ? min_items : g;
}

static double sum_slots(const double *slot, int64_t nchunks) {
    double s = 0.0;
    for (int64_t i = 0; i < nchunks; i++)
        s += slot[i];
    return s;
}

static inline double sigmoid_d(double x) {
    return 1.0 / (1.0 + exp(-x));
}

// softplus(-x) = log(1 + exp(-x)), stable for any x.
static inline double softplus_neg(double x) {
    return (x < 0.0 ? -x : 0.0) + log1p(exp(-fabs(x)));
}

// ---- cross-entropy ----

static hs_status check_ce(const char *op, const void *dst, const void *src, const int64_t *target, const float *weight,
                          int64_t N, int64_t C, int64_t S, float eps, double *denom) {
    if (N < 1 || C < 1 || S < 1)
        return HS_FAIL(HS_ERR_ARG, "%s: logits (N,C,S) = (%lld,%lld,%lld): all sizes must be >= 1", op, (long long)N,
                       (long long)C, (long long)S);
    if (N > INT64_MAX / C / S)
        return HS_FAIL(HS_ERR_ARG, "%s: logits (%lld,%lld,%lld) overflow", op, (long long)N, (long long)C,
                       (long long)S);
    if (!dst || !src || !target)
        return HS_FAIL(HS_ERR_ARG, "%s: NULL buffer (logits/prob/target must be given)", op);
    if (!(eps >= 0.0f && eps <= 1.0f))
        return HS_FAIL(HS_ERR_ARG, "%s: label_smoothing %g is outside [0, 1]", op, (double)eps);
    // One serial pass: find the first bad target (deterministic message) and sum the target
    // weights in index order (the mean's denominator, identical in forward and backward).
    double d = 0.0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) {
            int64_t y = target[n * S + s];
            if (y < 0 || y >= C) {
                if (S == 1)
                    return HS_FAIL(HS_ERR_ARG, "%s: target[%lld] = %lld is out of range [0, %lld) (logits (%lld,%lld))",
                                   op, (long long)n, (long long)y, (long long)C, (long long)N, (long long)C);
                return HS_FAIL(HS_ERR_ARG,
                               "%s: target[%lld] (sample %lld, position %lld) = %lld is out of range [0, %lld) "
                               "(logits (%lld,%lld,%lld))",
                               op, (long long)(n * S + s), (long long)n, (long long)s, (long long)y, (long long)C,
                               (long long)N, (long long)C, (long long)S);
            }
            d += weight ? (double)weight[y] : 1.0;
        }
    if (d == 0.0 || !isfinite(d))
        return HS_FAIL(HS_ERR_ARG, "%s: class weights of the targets sum to %g; the weighted mean is undefined", op, d);
    *denom = d;
    return HS_OK;
}

typedef struct {
    float *dst;                 // forward: prob; backward: dlogits
    const float *src;           // forward: logits; backward: prob
    const int64_t *target;
    const float *weight;
    int64_t C, S, nblocks, grain;
    double eps, scale, wsum;    // backward: scale = dloss / D, wsum = sum_c weight[c]
    double nll[MAX_CHUNKS], smooth[MAX_CHUNKS];
} ce_ctx;

static void ce_forward_range(void *vctx, int64_t b, int64_t e) {
    ce_ctx *c = vctx;
    const int64_t C = c->C, S = c->S;
    float mx[CE_BLOCK];
    double lse[CE_BLOCK], inv[CE_BLOCK], nll = 0.0, smooth = 0.0;
    for (int64_t it = b; it < e; it++) {
        int64_t n = it / c->nblocks, s0 = (it % c->nblocks) * CE_BLOCK;
        int64_t w = S - s0 < CE_BLOCK ? S - s0 : CE_BLOCK;
        const float *z = c->src + n * C * S + s0;
        float *p = c->dst + n * C * S + s0;
        const int64_t *y = c->target + n * S + s0;
        for (int64_t j = 0; j < w; j++) {
            mx[j] = -INFINITY;
            lse[j] = 0.0;
        }
        for (int64_t k = 0; k < C; k++)
            for (int64_t j = 0; j < w; j++)
                if (z[k * S + j] > mx[j])
                    mx[j] = z[k * S + j];
        for (int64_t j = 0; j < w; j++)
            if (mx[j] == -INFINITY)
                mx[j] = 0.0f;
        for (int64_t k = 0; k < C; k++)   // p holds exp(z - max) until normalised below
            for (int64_t j = 0; j < w; j++) {
                float ev = expf(z[k * S + j] - mx[j]);
                p[k * S + j] = ev;
                lse[j] += (double)ev;
            }
        for (int64_t j = 0; j < w; j++) {
            inv[j] = 1.0 / lse[j];
            lse[j] = (double)mx[j] + log(lse[j]);
        }
        for (int64_t k = 0; k < C; k++)
            for (int64_t j = 0; j < w; j++)
                p[k * S + j] = (float)((double)p[k * S + j] * inv[j]);
        for (int64_t j = 0; j < w; j++) {
            double wy = c->weight ? (double)c->weight[y[j]] : 1.0;
            nll += wy * (lse[j] - (double)z[y[j] * S + j]);
        }
        if (c->eps > 0.0)
            for (int64_t j = 0; j < w; j++)
                for (int64_t k = 0; k < C; k++)
                    smooth += (c->weight ? (double)c->weight[k] : 1.0) * (lse[j] - (double)z[k * S + j]);
    }
    c->nll[b / c->grain] = nll;
    c->smooth[b / c->grain] = smooth;
}

// d loss / d z_ic = [ (1-eps) w_y (p_ic - [c == y]) + (eps/C) (p_ic sum_k w_k - w_c) ] / D
static void ce_backward_range(void *vctx, int64_t b, int64_t e) {
    ce_ctx *c = vctx;
    const int64_t C = c->C, S = c->S;
    const double a = (1.0 - c->eps) * c->scale, sm = c->eps / (double)C * c->scale;
    for (int64_t it = b; it < e; it++) {
        int64_t n = it / c->nblocks, s0 = (it % c->nblocks) * CE_BLOCK;
        int64_t w = S - s0 < CE_BLOCK ? S - s0 : CE_BLOCK;
        const float *p = c->src + n * C * S + s0;
        float *dz = c->dst + n * C * S + s0;
        const int64_t *y = c->target + n * S + s0;
        for (int64_t k = 0; k < C; k++) {
            double wk = c->weight ? (double)c->weight[k] : 1.0;
            for (int64_t j = 0; j < w; j++) {
                double wy = c->weight ? (double)c->weight[y[j]] : 1.0, pk = p[k * S + j];
                double g = a * wy * (pk - (y[j] == k ? 1.0 : 0.0)) + sm * (pk * c->wsum - wk);
                dz[k * S + j] += (float)g;
            }
        }
    }
}

static void ce_setup(ce_ctx *c, int64_t N, int64_t C, int64_t S) {
    c->C = C;
    c->S = S;
    c->nblocks = (S + CE_BLOCK - 1) / CE_BLOCK;
    int64_t per_item = C * (S < CE_BLOCK ? S : CE_BLOCK);
    c->grain = chunk_grain(N * c->nblocks, MIN_GRAIN / per_item);
}

hs_status hs_cross_entropy_forward(float *loss, float *prob, const float *logits, const int64_t *target,
                                   const float *weight, int64_t N, int64_t C, int64_t S, float label_smoothing) {
    double D;
    if (!loss)
        return HS_FAIL(HS_ERR_ARG, "cross_entropy_forward: NULL loss");
    HS_TRY(check_ce("cross_entropy_forward", prob, logits, target, weight, N, C, S, label_smoothing, &D));
    ce_ctx c = {.dst = prob, .src = logits, .target = target, .weight = weight, .eps = label_smoothing};
    ce_setup(&c, N, C, S);
    int64_t items = N * c.nblocks;
    hs_parallel_for(items, c.grain, ce_forward_range, &c);
    int64_t nchunks = (items + c.grain - 1) / c.grain;
    double nll = sum_slots(c.nll, nchunks), smooth = sum_slots(c.smooth, nchunks);
    double eps = label_smoothing;
    double l = (1.0 - eps) * nll / D;
    if (eps > 0.0)
        l += eps / (double)C * smooth / D;
    *loss = (float)l;
    return HS_OK;
}

hs_status hs_cross_entropy_backward(float *dlogits, float dloss, const float *prob, const int64_t *target,
                                    const float *weight, int64_t N, int64_t C, int64_t S, float label_smoothing) {
    double D;
    HS_TRY(check_ce("cross_entropy_backward", dlogits, prob, target, weight, N, C, S, label_smoothing, &D));
    ce_ctx c = {.dst = dlogits, .src = prob, .target = target, .weight = weight, .eps = label_smoothing};
    ce_setup(&c, N, C, S);
    c.scale = (double)dloss / D;
    c.wsum = 0.0;
    for (int64_t k = 0; k < C; k++)
        c.wsum += weight ? (double)weight[k] : 1.0;
    hs_parallel_for(N * c.nblocks, c.grain, ce_backward_range, &c);
    return HS_OK;
}

// ---- elementwise losses on (n) buffers: MSE, BCE with logits, soft Dice ----

typedef enum { EW_MSE, EW_BCE, EW_DICE } ew_kind;

typedef struct {
    ew_kind kind;
    float *dx;
    const float *x, *t;
    double pos_weight, scale;     // backward: scale = dloss / n (MSE, BCE)
    double dice_num, dice_den;    // backward: 2I + smooth, sum p + sum t + smooth
    int64_t grain;
    double s0[MAX_CHUNKS], s1[MAX_CHUNKS], s2[MAX_CHUNKS];
} ew_ctx;

static hs_status check_ew(const char *op, const void *dst, const float *x, const float *t, int64_t n) {
    if (n < 1)
        return HS_FAIL(HS_ERR_ARG, "%s: n = %lld, need at least one element for a mean", op, (long long)n);
    if (!dst || !x || !t)
        return HS_FAIL(HS_ERR_ARG, "%s: NULL buffer", op);
    return HS_OK;
}

static void ew_forward_range(void *vctx, int64_t b, int64_t e) {
    ew_ctx *c = vctx;
    const float *x = c->x, *t = c->t;
    double a0 = 0.0, a1 = 0.0, a2 = 0.0;
    switch (c->kind) {
    case EW_MSE:
        for (int64_t i = b; i < e; i++) {
            double d = (double)x[i] - (double)t[i];
            a0 += d * d;
        }
        break;
    case EW_BCE:
        for (int64_t i = b; i < e; i++) {
            double xi = x[i], ti = t[i], lw = 1.0 + (c->pos_weight - 1.0) * ti;
            a0 += (1.0 - ti) * xi + lw * softplus_neg(xi);
        }
        break;
    case EW_DICE:
        for (int64_t i = b; i < e; i++) {
            double p = sigmoid_d(x[i]), ti = t[i];
            a0 += p * ti;
            a1 += p;
            a2 += ti;
        }
        break;
    }
    c->s0[b / c->grain] = a0;
    c->s1[b / c->grain] = a1;
    c->s2[b / c->grain] = a2;
}

static void ew_backward_range(void *vctx, int64_t b, int64_t e) {
    ew_ctx *c = vctx;
    const float *x = c->x, *t = c->t;
    float *dx = c->dx;
    switch (c->kind) {
    case EW_MSE:
        for (int64_t i = b; i < e; i++)
            dx[i] += (float)(c->scale * 2.0 * ((double)x[i] - (double)t[i]));
        break;
    case EW_BCE:
        for (int64_t i = b; i < e; i++) {
            double ti = t[i], lw = 1.0 + (c->pos_weight - 1.0) * ti;
            dx[i] += (float)(c->scale * (lw * sigmoid_d(x[i]) - c->pos_weight * ti));
        }
        break;
    case EW_DICE: {
        // loss = 1 - num/den: dloss/dp_i = -(2 t_i den - num) / den^2, dp/dx = p (1-p)
        double inv = c->scale / (c->dice_den * c->dice_den);
        for (int64_t i = b; i < e; i++) {
            double p = sigmoid_d(x[i]);
            dx[i] += (float)(-(2.0 * (double)t[i] * c->dice_den - c->dice_num) * inv * p * (1.0 - p));
        }
        break;
    }
    }
}

// Runs the forward reduction; returns the three sums.
static void ew_reduce(ew_ctx *c, int64_t n, double *s0, double *s1, double *s2) {
    c->grain = chunk_grain(n, MIN_GRAIN);
    hs_parallel_for(n, c->grain, ew_forward_range, c);
    int64_t nchunks = (n + c->grain - 1) / c->grain;
    *s0 = sum_slots(c->s0, nchunks);
    *s1 = sum_slots(c->s1, nchunks);
    *s2 = sum_slots(c->s2, nchunks);
}

static void ew_apply(ew_ctx *c, int64_t n) {
    hs_parallel_for(n, chunk_grain(n, MIN_GRAIN), ew_backward_range, c);
}

hs_status hs_mse_forward(float *loss, const float *x, const float *target, int64_t n) {
    HS_TRY(check_ew("mse_forward", loss, x, target, n));
    ew_ctx c = {.kind = EW_MSE, .x = x, .t = target};
    double s0, s1, s2;
    ew_reduce(&c, n, &s0, &s1, &s2);
    *loss = (float)(s0 / (double)n);
    return HS_OK;
}

hs_status hs_mse_backward(float *dx, float dloss, const float *x, const float *target, int64_t n) {
    HS_TRY(check_ew("mse_backward", dx, x, target, n));
    ew_ctx c = {.kind = EW_MSE, .dx = dx, .x = x, .t = target, .scale = (double)dloss / (double)n};
    ew_apply(&c, n);
    return HS_OK;
}

static hs_status check_pos_weight(const char *op, float pos_weight) {
    if (!(pos_weight >= 0.0f) || !isfinite(pos_weight))
        return HS_FAIL(HS_ERR_ARG, "%s: pos_weight %g must be finite and >= 0 (1 = none)", op, (double)pos_weight);
    return HS_OK;
}

hs_status hs_bce_logits_forward(float *loss, const float *logits, const float *target, int64_t n, float pos_weight) {
    HS_TRY(check_ew("bce_logits_forward", loss, logits, target, n));
    HS_TRY(check_pos_weight("bce_logits_forward", pos_weight));
    ew_ctx c = {.kind = EW_BCE, .x = logits, .t = target, .pos_weight = pos_weight};
    double s0, s1, s2;
    ew_reduce(&c, n, &s0, &s1, &s2);
    *loss = (float)(s0 / (double)n);
    return HS_OK;
}

hs_status hs_bce_logits_backward(float *dlogits, float dloss, const float *logits, const float *target, int64_t n,
                                 float pos_weight) {
    HS_TRY(check_ew("bce_logits_backward", dlogits, logits, target, n));
    HS_TRY(check_pos_weight("bce_logits_backward", pos_weight));
    ew_ctx c = {.kind = EW_BCE, .dx = dlogits, .x = logits, .t = target, .pos_weight = pos_weight,
                .scale = (double)dloss / (double)n};
    ew_apply(&c, n);
    return HS_OK;
}

static hs_status check_smooth(const char *op, float smooth) {
    if (!(smooth >= 0.0f) || !isfinite(smooth))
        return HS_FAIL(HS_ERR_ARG, "%s: smooth %g must be finite and >= 0", op, (double)smooth);
    return HS_OK;
}

hs_status hs_dice_logits_forward(float *loss, const float *logits, const float *target, int64_t n, float smooth) {
    HS_TRY(check_ew("dice_logits_forward", loss, logits, target, n));
    HS_TRY(check_smooth("dice_logits_forward", smooth));
    ew_ctx c = {.kind = EW_DICE, .x = logits, .t = target};
    double inter, sp, st;
    ew_reduce(&c, n, &inter, &sp, &st);
    *loss = (float)(1.0 - (2.0 * inter + (double)smooth) / (sp + st + (double)smooth));
    return HS_OK;
}

hs_status hs_dice_logits_backward(float *dlogits, float dloss, const float *logits, const float *target, int64_t n,
                                  float smooth) {
    HS_TRY(check_ew("dice_logits_backward", dlogits, logits, target, n));
    HS_TRY(check_smooth("dice_logits_backward", smooth));
    ew_ctx c = {.kind = EW_DICE, .x = logits, .t = target};
    double inter, sp, st;
    ew_reduce(&c, n, &inter, &sp, &st);   // the same sums, in the same order, as the forward
    c.dx = dlogits;
    c.scale = dloss;
    c.dice_num = 2.0 * inter + (double)smooth;
    c.dice_den = sp + st + (double)smooth;
    ew_apply(&c, n);
    return HS_OK;
}
