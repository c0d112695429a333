// core/optim.c: SGD / Adam / AdamW updates and gradient clipping (see optim.h). The per-element
// arithmetic follows torch.optim's single-tensor code in float32, operation by operation, so
// trajectories agree with PyTorch to rounding; bias corrections are computed in double as Python
// does. Updates are elementwise (any split is deterministic); the norm sums fixed chunks in order.
#include "optim.h"

#include <math.h>
#include <stddef.h>

#include "parallel.h"

#define ELEM_GRAIN 16384
#define MAX_CHUNKS 256

static hs_status check_bufs(const char *op, int64_t n, int64_t step, const void *a, const void *b, const void *c,
                            const void *d) {
    if (n < 0)
        return HS_FAIL(HS_ERR_ARG, "%s: n = %lld is negative", op, (long long)n);
    if (step < 1)
        return HS_FAIL(HS_ERR_ARG, "%s: step = %lld, steps are 1-based", op, (long long)step);
    if (n > 0 && (!a || !b || !c || !d))
        return HS_FAIL(HS_ERR_ARG, "%s: NULL buffer for n = %lld", op, (long long)n);
    return HS_OK;
}

// ---- SGD ----

typedef struct {
    float *w, *buf, *m, *v;
    const float *g;
    float lr, momentum, dampening, weight_decay, beta1, beta2, eps, step_size, bc2_sqrt, decay_mul;
    int nesterov, first, decoupled;
} opt_ctx;

static void sgd_range(void *vctx, int64_t b, int64_t e) {
    const opt_ctx *c = vctx;
    float *w = c->w, *buf = c->buf;
    const float *g = c->g;
    const float mom = c->momentum, keep = 1.0f - c->dampening, neg_lr = -c->lr, wd = c->weight_decay;
    for (int64_t i = b; i < e; i++) {
        float d = g[i];
        if (wd != 0.0f)
            d = d + wd * w[i];
        if (mom != 0.0f) {
            float bi = c->first ? d : buf[i] * mom + keep * d;
            buf[i] = bi;
            d = c->nesterov ? d + mom * bi : bi;
        }
        w[i] = w[i] + neg_lr * d;
    }
}

hs_status hs_sgd_step(float *w, const float *g, float *momentum_buf, int64_t n, const hs_sgd_params *p, int64_t step) {
    if (!p)
        return HS_FAIL(HS_ERR_ARG, "sgd_step: NULL params");
    const void *bufp = p->momentum != 0.0f ? (const void *)momentum_buf : (const void *)w;   // buf unused at 0
    HS_TRY(check_bufs("sgd_step", n, step, w, g, bufp, w));
    if (!(p->lr >= 0.0f) || !isfinite(p->lr))
        return HS_FAIL(HS_ERR_ARG, "sgd_step: invalid learning rate lr = %g", (double)p->lr);
    if (!(p->momentum >= 0.0f) || !isfinite(p->momentum))
        return HS_FAIL(HS_ERR_ARG, "sgd_step: invalid momentum value %g", (double)p->momentum);
    if (!(p->weight_decay >= 0.0f) || !isfinite(p->weight_decay))
        return HS_FAIL(HS_ERR_ARG, "sgd_step: invalid weight_decay value %g", (double)p->weight_decay);
    if (!isfinite(p->dampening))
        return HS_FAIL(HS_ERR_ARG, "sgd_step: invalid dampening value %g", (double)p->dampening);
    if (p->nesterov && (p->momentum <= 0.0f || p->dampening != 0.0f))
        return HS_FAIL(HS_ERR_ARG, "sgd_step: Nesterov momentum requires a momentum > 0 and zero dampening "
                                   "(momentum %g, dampening %g)",
                       (double)p->momentum, (double)p->dampening);
    opt_ctx c = {.w = w, .buf = momentum_buf, .g = g, .lr = p->lr, .momentum = p->momentum,
                 .dampening = p->dampening, .weight_decay = p->weight_decay, .nesterov = p->nesterov != 0,
                 .first = step == 1};
    hs_parallel_for(n, ELEM_GRAIN, sgd_range, &c);
    return HS_OK;
}

// ---- Adam / AdamW ----

static void adam_range(void *vctx, int64_t b, int64_t e) {
    const opt_ctx *c = vctx;
    float *w = c->w, *m = c->m, *v = c->v;
    const float *g = c->g;
    const float b1 = c->beta1, b2 = c->beta2, a1 = 1.0f - c->beta1, a2 = 1.0f - c->beta2;
    const float wd = c->decoupled ? 0.0f : c->weight_decay, neg_step = -c->step_size;
    for (int64_t i = b; i < e; i++) {
        float wi = w[i], d = g[i];
        if (c->decoupled)
            wi = wi * c->decay_mul;          // AdamW: param.mul_(1 - lr*weight_decay)
        else if (wd != 0.0f)
            d = d + wd * wi;                 // Adam: grad.add(param, alpha=weight_decay)
        float mi = m[i] * b1 + a1 * d;
        float vi = v[i] * b2 + a2 * (d * d);
        float denom = sqrtf(vi) / c->bc2_sqrt + c->eps;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi + neg_step * (mi / denom);
    }
}

hs_status hs_adam_step(float *w, const float *g, float *m, float *v, int64_t n, const hs_adam_params *p,
                       int64_t step) {
    const char *op = p && p->decoupled ? "adamw_step" : "adam_step";
    if (!p)
        return HS_FAIL(HS_ERR_ARG, "adam_step: NULL params");
    HS_TRY(check_bufs(op, n, step, w, g, m, v));
    if (!(p->lr >= 0.0f) || !isfinite(p->lr))
        return HS_FAIL(HS_ERR_ARG, "%s: invalid learning rate lr = %g", op, (double)p->lr);
    if (!(p->eps >= 0.0f) || !isfinite(p->eps))
        return HS_FAIL(HS_ERR_ARG, "%s: invalid epsilon value %g", op, (double)p->eps);
    if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f))
        return HS_FAIL(HS_ERR_ARG, "%s: invalid beta parameter at index 0: %g (need 0 <= beta1 < 1)", op,
                       (double)p->beta1);
    if (!(p->beta2 >= 0.0f && p->beta2 < 1.0f))
        return HS_FAIL(HS_ERR_ARG, "%s: invalid beta parameter at index 1: %g (need 0 <= beta2 < 1)", op,
                       (double)p->beta2);
    if (!(p->weight_decay >= 0.0f) || !isfinite(p->weight_decay))
        return HS_FAIL(HS_ERR_ARG, "%s: invalid weight_decay value %g", op, (double)p->weight_decay);
    // Python computes these scalars in double; the kernels then see them as float32.
    double bc1 = 1.0 - pow((double)p->beta1, (double)step), bc2 = 1.0 - pow((double)p->beta2, (double)step);
    opt_ctx c = {.w = w, .m = m, .v = v, .g = g, .beta1 = p->beta1, .beta2 = p->beta2, .eps = p->eps,
                 .weight_decay = p->weight_decay, .decoupled = p->decoupled != 0,
                 .step_size = (float)((double)p->lr / bc1), .bc2_sqrt = (float)sqrt(bc2),
                 .decay_mul = (float)(1.0 - (double)p->lr * (double)p->weight_decay)};
    hs_parallel_for(n, ELEM_GRAIN, adam_range, &c);
    return HS_OK;
}

// ---- gradient norm and clipping ----

typedef struct {
    const float *g;
    float *gs;
    float scale;
    int64_t grain;
    double part[MAX_CHUNKS];
} norm_ctx;

static void sumsq_range(void *vctx, int64_t b, int64_t e) {
    norm_ctx *c = vctx;
    double s = 0.0;
    for (int64_t i = b; i < e; i++)
        s += (double)c->g[i] * (double)c->g[i];
    c->part[b / c->grain] = s;
}

static void scale_range(void *vctx, int64_t b, int64_t e) {
    const norm_ctx *c = vctx;
    for (int64_t i = b; i < e; i++)
        c->gs[i] *= c->scale;
}

hs_status hs_optim_grad_norm(double *norm, const float *g, int64_t n) {
    if (!norm)
        return HS_FAIL(HS_ERR_ARG, "optim_grad_norm: NULL result pointer");
    HS_TRY(check_bufs("optim_grad_norm", n, 1, g, g, g, g));
    norm_ctx c = {.g = g};
    c.grain = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    if (c.grain < ELEM_GRAIN)
        c.grain = ELEM_GRAIN;
    hs_parallel_for(n, c.grain, sumsq_range, &c);
    double s = 0.0;
    for (int64_t i = 0, nch = (n + c.grain - 1) / c.grain; i < nch; i++)
        s += c.part[i];
    *norm = sqrt(s);
    return HS_OK;
}

hs_status hs_optim_scale(float *g, int64_t n, float scale) {
    HS_TRY(check_bufs("optim_scale", n, 1, g, g, g, g));
    norm_ctx c = {.gs = g, .scale = scale};
    hs_parallel_for(n, ELEM_GRAIN, scale_range, &c);
    return HS_OK;
}

hs_status hs_clip_grad_norm(float *g, int64_t n, float max_norm, float *total_norm_out) {
    if (!(max_norm >= 0.0f))
        return HS_FAIL(HS_ERR_ARG, "clip_grad_norm: max_norm %g must be >= 0", (double)max_norm);
    double total;
    HS_TRY(check_bufs("clip_grad_norm", n, 1, g, g, g, g));
    HS_TRY(hs_optim_grad_norm(&total, g, n));
    // torch: clip_coef = max_norm / (total + 1e-6), a float32 tensor, applied when < 1
    float coef = (float)((double)max_norm / (total + 1e-6));
    if (coef < 1.0f)
        HS_TRY(hs_optim_scale(g, n, coef));
    if (total_norm_out)
        *total_norm_out = (float)total;
    return HS_OK;
}
