// core/pool.c: max/avg/global-average pooling (see pool.h). Each (n, c) plane is independent, so
// the fast versions run planes under hs_parallel_for (deterministic: every task writes its own
// plane) and clip each window once instead of testing every tap; *_ref are the naive loops.
//
// Letters: N batch, C channels, H/W input size, Ho/Wo output size.
#include "pool.h"

#include <math.h>
#include <string.h>

#include "parallel.h"
#include "tensor.h"

#define TASK_FLOATS 32768   // rough work per hs_parallel_for chunk

typedef struct {
    int64_t N, C, H, W, Ho, Wo;
    int64_t kh, kw, sh, sw, ph, pw;
    int cip;   // count_include_pad
} geom;

static int64_t out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int ceil_mode) {
    int64_t num = in + 2 * pad - k + (ceil_mode ? stride - 1 : 0);
    int64_t o = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;   // floor division
    if (ceil_mode && (o - 1) * stride >= in + pad)
        o--;
    return o;
}

static hs_status check(geom *g, const char *op, const int64_t xs[4], hs_pool2d_params p) {
    char a[96];
    if (!xs)
        return HS_FAIL(HS_ERR_ARG, "%s: NULL shape", op);
    hs_shape_str(4, xs, a, sizeof a);
    for (int i = 0; i < 4; i++)
        if (xs[i] <= 0)
            return HS_FAIL(HS_ERR_SHAPE, "%s: x %s must have positive sizes", op, a);
    if (p.kh < 1 || p.kw < 1 || p.stride_h < 1 || p.stride_w < 1 || p.pad_h < 0 || p.pad_w < 0)
        return HS_FAIL(HS_ERR_ARG, "%s: bad params kernel %dx%d stride %dx%d pad %dx%d (x %s)", op, p.kh, p.kw,
                       p.stride_h, p.stride_w, p.pad_h, p.pad_w, a);
    if (p.pad_h > p.kh / 2 || p.pad_w > p.kw / 2)
        return HS_FAIL(HS_ERR_ARG, "%s: pad %dx%d must be at most half of kernel %dx%d (x %s)", op, p.pad_h, p.pad_w,
                       p.kh, p.kw, a);
    g->N = xs[0];
    g->C = xs[1];
    g->H = xs[2];
    g->W = xs[3];
    g->Ho = out_size(g->H, p.kh, p.pad_h, p.stride_h, p.ceil_mode);
    g->Wo = out_size(g->W, p.kw, p.pad_w, p.stride_w, p.ceil_mode);
    if (g->Ho < 1 || g->Wo < 1)
        return HS_FAIL(HS_ERR_SHAPE, "%s: kernel %dx%d larger than padded input %lldx%lld (x %s, output %lldx%lld)", op,
                       p.kh, p.kw, (long long)(g->H + 2 * p.pad_h), (long long)(g->W + 2 * p.pad_w), a,
                       (long long)g->Ho, (long long)g->Wo);
    if (g->H * g->W > INT32_MAX)
        return HS_FAIL(HS_ERR_SHAPE, "%s: x %s planes too large for int32 argmax", op, a);
    g->kh = p.kh;
    g->kw = p.kw;
    g->sh = p.stride_h;
    g->sw = p.stride_w;
    g->ph = p.pad_h;
    g->pw = p.pad_w;
    g->cip = p.count_include_pad;
    return HS_OK;
}

hs_status hs_pool2d_out_shape(int64_t out[4], const int64_t x[4], hs_pool2d_params p) {
    geom g = {0};
    if (!out)
        return HS_FAIL(HS_ERR_ARG, "pool2d: NULL output shape");
    HS_TRY(check(&g, "pool2d", x, p));
    out[0] = g.N;
    out[1] = g.C;
    out[2] = g.Ho;
    out[3] = g.Wo;
    return HS_OK;
}

static int64_t grain_for(int64_t floats_per_task) {
    int64_t gr = TASK_FLOATS / (floats_per_task > 0 ? floats_per_task : 1);
    return gr < 1 ? 1 : gr;
}

typedef struct {
    const geom *g;
    float *out;
    int32_t *argmax;
    const float *x;
    float *dx;
    const float *dout;
    const int32_t *am;
    int assign;   // max backward: dx planes = routed dout (zero elsewhere)
} pool_job;

// ---- max ----

static void max_task(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    const geom *g = j->g;
    for (int64_t i = b; i < e; i++) {
        const float *xp = j->x + i * g->H * g->W;
        float *o = j->out + i * g->Ho * g->Wo;
        int32_t *am = j->argmax + i * g->Ho * g->Wo;
        if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 && 2 * g->Ho <= g->H &&
            2 * g->Wo <= g->W) {
            // the common 2x2/2 case with every window inside the plane (not so in ceil mode)
            for (int64_t oh = 0; oh < g->Ho; oh++) {
                const float *r0 = xp + 2 * oh * g->W, *r1 = r0 + g->W;
                for (int64_t ow = 0; ow < g->Wo; ow++) {
                    int64_t c0 = 2 * ow;
                    float m = r0[c0];
                    int64_t idx = 2 * oh * g->W + c0;
                    if (r0[c0 + 1] > m || isnan(r0[c0 + 1]))
                        m = r0[c0 + 1], idx = 2 * oh * g->W + c0 + 1;
                    if (r1[c0] > m || isnan(r1[c0]))
                        m = r1[c0], idx = (2 * oh + 1) * g->W + c0;
                    if (r1[c0 + 1] > m || isnan(r1[c0 + 1]))
                        m = r1[c0 + 1], idx = (2 * oh + 1) * g->W + c0 + 1;
                    o[oh * g->Wo + ow] = m;
                    am[oh * g->Wo + ow] = (int32_t)idx;
                }
            }
            continue;
        }
        for (int64_t oh = 0; oh < g->Ho; oh++) {
            int64_t h0 = oh * g->sh - g->ph, h1 = h0 + g->kh;
            if (h1 > g->H)
                h1 = g->H;
            if (h0 < 0)
                h0 = 0;
            for (int64_t ow = 0; ow < g->Wo; ow++) {
                int64_t w0 = ow * g->sw - g->pw, w1 = w0 + g->kw;
                if (w1 > g->W)
                    w1 = g->W;
                if (w0 < 0)
                    w0 = 0;
                float m = -INFINITY;
                int64_t idx = h0 * g->W + w0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        float v = xp[ih * g->W + iw];
                        if (v > m || isnan(v)) {
                            m = v;
                            idx = ih * g->W + iw;
                        }
                    }
                o[oh * g->Wo + ow] = m;
                am[oh * g->Wo + ow] = (int32_t)idx;
            }
        }
    }
}

hs_status hs_maxpool2d_forward(float *out, int32_t *argmax, const float *x, const int64_t xs[4], hs_pool2d_params p) {
    geom g = {0};
    HS_TRY(check(&g, "maxpool2d", xs, p));
    if (!out || !argmax || !x)
        return HS_FAIL(HS_ERR_ARG, "maxpool2d: NULL out, argmax or x");
    pool_job j = {&g, out, argmax, x, NULL, NULL, NULL, 0};
    hs_parallel_for(g.N * g.C, grain_for(g.H * g.W), max_task, &j);
    return HS_OK;
}

static void max_back_task(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    const geom *g = j->g;
    int64_t P = g->Ho * g->Wo, HW = g->H * g->W;
    for (int64_t i = b; i < e; i++) {
        float *d = j->dx + i * HW;
        const float *go = j->dout + i * P;
        const int32_t *am = j->am + i * P;
        if (j->assign && g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
            2 * g->Ho == g->H && 2 * g->Wo == g->W) {
            // windows tile the plane: write each window once (its max gets dout, the rest 0), no fill
            for (int64_t oh = 0; oh < g->Ho; oh++) {
                float *r0 = d + 2 * oh * g->W, *r1 = r0 + g->W;
                for (int64_t ow = 0; ow < g->Wo; ow++) {
                    int64_t k = oh * g->Wo + ow, a = am[k], c0 = 2 * ow, top = 2 * oh * g->W + c0;
                    float v = go[k];
                    r0[c0] = a == top ? v : 0.0f;
                    r0[c0 + 1] = a == top + 1 ? v : 0.0f;
                    r1[c0] = a == top + g->W ? v : 0.0f;
                    r1[c0 + 1] = a == top + g->W + 1 ? v : 0.0f;
                }
            }
            continue;
        }
        if (j->assign)
            memset(d, 0, (size_t)HW * sizeof *d);
        for (int64_t k = 0; k < P; k++)
            if (am[k] >= 0 && am[k] < HW)   // a corrupt argmax is skipped, never written out of bounds
                d[am[k]] += go[k];
    }
}

hs_status hs_maxpool2d_backward(float *dx, const float *dout, const int32_t *argmax, const int64_t xs[4],
                                hs_pool2d_params p) {
    return hs_maxpool2d_backward_assign(dx, dout, argmax, xs, p, 0);
}

hs_status hs_maxpool2d_backward_assign(float *dx, const float *dout, const int32_t *argmax, const int64_t xs[4],
                                       hs_pool2d_params p, int assign) {
    geom g = {0};
    HS_TRY(check(&g, "maxpool2d_backward", xs, p));
    if (!dx || !dout || !argmax)
        return HS_FAIL(HS_ERR_ARG, "maxpool2d_backward: NULL dx, dout or argmax");
    pool_job j = {&g, NULL, NULL, NULL, dx, dout, argmax, assign != 0};
    hs_parallel_for(g.N * g.C, grain_for(g.H * g.W), max_back_task, &j);
    return HS_OK;
}

hs_status hs_maxpool2d_forward_ref(float *out, int32_t *argmax, const float *x, const int64_t xs[4],
                                   hs_pool2d_params p) {
    geom g = {0};
    HS_TRY(check(&g, "maxpool2d", xs, p));
    if (!out || !argmax || !x)
        return HS_FAIL(HS_ERR_ARG, "maxpool2d: NULL out, argmax or x");
    for (int64_t i = 0; i < g.N * g.C; i++)
        for (int64_t oh = 0; oh < g.Ho; oh++)
            for (int64_t ow = 0; ow < g.Wo; ow++) {
                float m = -INFINITY;
                int64_t idx = -1;
                for (int64_t kh = 0; kh < g.kh; kh++)
                    for (int64_t kw = 0; kw < g.kw; kw++) {
                        int64_t ih = oh * g.sh - g.ph + kh, iw = ow * g.sw - g.pw + kw;
                        if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W)
                            continue;
                        float v = x[(i * g.H + ih) * g.W + iw];
                        if (idx < 0 || v > m || isnan(v)) {
                            m = v;
                            idx = ih * g.W + iw;
                        }
                    }
                out[(i * g.Ho + oh) * g.Wo + ow] = m;
                argmax[(i * g.Ho + oh) * g.Wo + ow] = (int32_t)idx;
            }
    return HS_OK;
}

// ---- average ----

// The clipped window of output (oh, ow) and its divisor, as PyTorch's avg_pool2d.
static float avg_window(const geom *g, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1, int64_t *w0, int64_t *w1) {
    int64_t hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    int64_t he = hs + g->kh, we = ws + g->kw;
    if (he > g->H + g->ph)
        he = g->H + g->ph;
    if (we > g->W + g->pw)
        we = g->W + g->pw;
    int64_t pool = (he - hs) * (we - ws);
    if (hs < 0)
        hs = 0;
    if (ws < 0)
        ws = 0;
    if (he > g->H)
        he = g->H;
    if (we > g->W)
        we = g->W;
    *h0 = hs, *h1 = he, *w0 = ws, *w1 = we;
    int64_t div = g->cip ? pool : (he - hs) * (we - ws);
    return div > 0 ? (float)div : 1.0f;
}

static void avg_task(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    const geom *g = j->g;
    for (int64_t i = b; i < e; i++) {
        const float *xp = j->x + i * g->H * g->W;
        float *o = j->out + i * g->Ho * g->Wo;
        for (int64_t oh = 0; oh < g->Ho; oh++)
            for (int64_t ow = 0; ow < g->Wo; ow++) {
                int64_t h0, h1, w0, w1;
                float div = avg_window(g, oh, ow, &h0, &h1, &w0, &w1);
                float s = 0.0f;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++)
                        s += xp[ih * g->W + iw];
                o[oh * g->Wo + ow] = (h0 < h1 && w0 < w1) ? s / div : 0.0f;
            }
    }
}

static void avg_back_task(void *ctx, int64_t b, int64_t e) {
    const pool_job *j = ctx;
    const geom *g = j->g;
    for (int64_t i = b; i < e; i++) {
        float *d = j->dx + i * g->H * g->W;
        const float *go = j->dout + i * g->Ho * g->Wo;
        for (int64_t oh = 0; oh < g->Ho; oh++)
            for (int64_t ow = 0; ow < g->Wo; ow++) {
                int64_t h0, h1, w0, w1;
                float v = go[oh * g->Wo + ow] / avg_window(g, oh, ow, &h0, &h1, &w0, &w1);
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++)
                        d[ih * g->W + iw] += v;
            }
    }
}

hs_status hs_avgpool2d_forward(float *out, const float *x, const int64_t xs[4], hs_pool2d_params p) {
    geom g = {0};
    HS_TRY(check(&g, "avgpool2d", xs, p));
    if (!out || !x)
        return HS_FAIL(HS_ERR_ARG, "avgpool2d: NULL out or x");
    pool_job j = {&g, out, NULL, x, NULL, NULL, NULL, 0};
    hs_parallel_for(g.N * g.C, grain_for(g.H * g.W), avg_task, &j);
    return HS_OK;
}

hs_status hs_avgpool2d_backward(float *dx, const float *dout, const int64_t xs[4], hs_pool2d_params p) {
    geom g = {0};
    HS_TRY(check(&g, "avgpool2d_backward", xs, p));
    if (!dx || !dout)
        return HS_FAIL(HS_ERR_ARG, "avgpool2d_backward: NULL dx or dout");
    pool_job j = {&g, NULL, NULL, NULL, dx, dout, NULL, 0};
    hs_parallel_for(g.N * g.C, grain_for(g.H * g.W), avg_back_task, &j);
    return HS_OK;
}

// Reference: every tap of the padded window tested on its own; the divisor recomputed from the
// definition (taps inside the padded input, or inside the input when padding is not counted).
static float ref_divisor(const geom *g, int64_t oh, int64_t ow) {
    int64_t cnt = 0;
    for (int64_t kh = 0; kh < g->kh; kh++)
        for (int64_t kw = 0; kw < g->kw; kw++) {
            int64_t ih = oh * g->sh - g->ph + kh, iw = ow * g->sw - g->pw + kw;
            int in_pad = ih < g->H + g->ph && iw < g->W + g->pw;   // starts are never below -pad
            int in_img = ih >= 0 && ih < g->H && iw >= 0 && iw < g->W;
            cnt += g->cip ? in_pad : in_img;
        }
    return cnt > 0 ? (float)cnt : 1.0f;
}

hs_status hs_avgpool2d_forward_ref(float *out, const float *x, const int64_t xs[4], hs_pool2d_params p) {
    geom g = {0};
    HS_TRY(check(&g, "avgpool2d", xs, p));
    if (!out || !x)
        return HS_FAIL(HS_ERR_ARG, "avgpool2d: NULL out or x");
    for (int64_t i = 0; i < g.N * g.C; i++)
        for (int64_t oh = 0; oh < g.Ho; oh++)
            for (int64_t ow = 0; ow < g.Wo; ow++) {
                double s = 0;
                for (int64_t kh = 0; kh < g.kh; kh++)
                    for (int64_t kw = 0; kw < g.kw; kw++) {
                        int64_t ih = oh * g.sh - g.ph + kh, iw = ow * g.sw - g.pw + kw;
                        if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                            s += (double)x[(i * g.H + ih) * g.W + iw];
                    }
                out[(i * g.Ho + oh) * g.Wo + ow] = (float)(s / (double)ref_divisor(&g, oh, ow));
            }
    return HS_OK;
}

hs_status hs_avgpool2d_backward_ref(float *dx, const float *dout, const int64_t xs[4], hs_pool2d_params p) {
    geom g = {0};
    HS_TRY(check(&g, "avgpool2d_backward", xs, p));
    if (!dx || !dout)
        return HS_FAIL(HS_ERR_ARG, "avgpool2d_backward: NULL dx or dout");
    for (int64_t i = 0; i < g.N * g.C; i++)
        for (int64_t oh = 0; oh < g.Ho; oh++)
            for (int64_t ow = 0; ow < g.Wo; ow++) {
                float v = dout[(i * g.Ho + oh) * g.Wo + ow] / ref_divisor(&g, oh, ow);
                for (int64_t kh = 0; kh < g.kh; kh++)
                    for (int64_t kw = 0; kw < g.kw; kw++) {
                        int64_t ih = oh * g.sh - g.ph + kh, iw = ow * g.sw - g.pw + kw;
                        if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                            dx[(i * g.H + ih) * g.W + iw] += v;
                    }
            }
    return HS_OK;
}

// ---- global average ----

static hs_status check_global(const char *op, const int64_t xs[4]) {
    char a[96];
    if (!xs)
        return HS_FAIL(HS_ERR_ARG, "%s: NULL shape", op);
    hs_shape_str(4, xs, a, sizeof a);
    for (int i = 0; i < 4; i++)
        if (xs[i] <= 0)
            return HS_FAIL(HS_ERR_SHAPE, "%s: x %s must have positive sizes", op, a);
    return HS_OK;
}

typedef struct {
    float *out;
    const float *x;
    float *dx;
    const float *dout;
    int64_t HW;
} gap_job;

static void gap_task(void *ctx, int64_t b, int64_t e) {
    const gap_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        const float *xp = j->x + i * j->HW;
        double s = 0;
        for (int64_t k = 0; k < j->HW; k++)
            s += (double)xp[k];
        j->out[i] = (float)(s / (double)j->HW);
    }
}

static void gap_back_task(void *ctx, int64_t b, int64_t e) {
    const gap_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        float *d = j->dx + i * j->HW;
        float v = j->dout[i] / (float)j->HW;
        for (int64_t k = 0; k < j->HW; k++)
            d[k] += v;
    }
}

hs_status hs_global_avgpool_forward(float *out, const float *x, const int64_t xs[4]) {
    HS_TRY(check_global("global_avgpool", xs));
    if (!out || !x)
        return HS_FAIL(HS_ERR_ARG, "global_avgpool: NULL out or x");
    gap_job j = {out, x, NULL, NULL, xs[2] * xs[3]};
    hs_parallel_for(xs[0] * xs[1], grain_for(j.HW), gap_task, &j);
    return HS_OK;
}

hs_status hs_global_avgpool_backward(float *dx, const float *dout, const int64_t xs[4]) {
    HS_TRY(check_global("global_avgpool_backward", xs));
    if (!dx || !dout)
        return HS_FAIL(HS_ERR_ARG, "global_avgpool_backward: NULL dx or dout");
    gap_job j = {NULL, NULL, dx, dout, xs[2] * xs[3]};
    hs_parallel_for(xs[0] * xs[1], grain_for(j.HW), gap_back_task, &j);
    return HS_OK;
}
