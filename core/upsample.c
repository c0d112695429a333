// core/upsample.c: integer-factor nearest/bilinear upsampling (see upsample.h). Planes are
// independent and run under hs_parallel_for; each task writes only its own plane, so results do
// not depend on the thread count. Index arithmetic copies PyTorch's (float scale 1/s, source
// coordinate computed in double then rounded to float) so that the taps agree exactly.
//
// Letters: N batch, C channels, H/W input size, Ho/Wo = H*sh, W*sw output size.
#include "upsample.h"

#include <math.h>

#include "parallel.h"
#include "tensor.h"

typedef struct {
    int64_t H, W, Ho, Wo;
    float sch, scw;   // 1/scale as PyTorch's float
    float *out;
    const float *x;
    float *dx;
    const float *dout;
} up_job;

static hs_status check(const char *op, const int64_t xs[4], int sh, int sw) {
    char a[96];
    if (!xs)
        return HS_FAIL(HS_ERR_ARG, "%s: NULL shape", op);
    hs_shape_str(4, xs, a, sizeof a);
    for (int i = 0; i < 4; i++)
        if (xs[i] <= 0)
            return HS_FAIL(HS_ERR_SHAPE, "%s: x %s must have positive sizes", op, a);
    if (sh < 1 || sw < 1)
        return HS_FAIL(HS_ERR_ARG, "%s: scale %dx%d must be integers >= 1 (x %s)", op, sh, sw, a);
    if (xs[2] * sh > INT32_MAX || xs[3] * sw > INT32_MAX)
        return HS_FAIL(HS_ERR_SHAPE, "%s: x %s scaled %dx%d is too large", op, a, sh, sw);
    return HS_OK;
}

static up_job make_job(const int64_t xs[4], int sh, int sw) {
    up_job j = {xs[2], xs[3], xs[2] * sh, xs[3] * sw, (float)(1.0 / sh), (float)(1.0 / sw), NULL, NULL, NULL, NULL};
    return j;
}

static int64_t grain(int64_t per_plane) {
    int64_t g = 32768 / (per_plane > 0 ? per_plane : 1);
    return g < 1 ? 1 : g;
}

// PyTorch nearest_idx
static int64_t nearest_src(int64_t o, int64_t in, int64_t out, float scale) {
    if (out == in)
        return o;
    if (out == 2 * in)
        return o >> 1;
    int64_t s = (int64_t)floorf((float)o * scale);
    return s < in - 1 ? s : in - 1;
}

static void nearest_fwd_task(void *ctx, int64_t b, int64_t e) {
    const up_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        const float *xp = j->x + i * j->H * j->W;
        float *o = j->out + i * j->Ho * j->Wo;
        for (int64_t oh = 0; oh < j->Ho; oh++) {
            const float *src = xp + nearest_src(oh, j->H, j->Ho, j->sch) * j->W;
            float *dst = o + oh * j->Wo;
            if (j->Wo == 2 * j->W) {
                for (int64_t iw = 0; iw < j->W; iw++)
                    dst[2 * iw] = dst[2 * iw + 1] = src[iw];
            } else {
                for (int64_t ow = 0; ow < j->Wo; ow++)
                    dst[ow] = src[nearest_src(ow, j->W, j->Wo, j->scw)];
            }
        }
    }
}

static void nearest_bwd_task(void *ctx, int64_t b, int64_t e) {
    const up_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        float *d = j->dx + i * j->H * j->W;
        const float *go = j->dout + i * j->Ho * j->Wo;
        for (int64_t oh = 0; oh < j->Ho; oh++) {
            float *dst = d + nearest_src(oh, j->H, j->Ho, j->sch) * j->W;
            const float *src = go + oh * j->Wo;
            for (int64_t ow = 0; ow < j->Wo; ow++)
                dst[nearest_src(ow, j->W, j->Wo, j->scw)] += src[ow];
        }
    }
}

hs_status hs_upsample_nearest_forward(float *out, const float *x, const int64_t xs[4], int scale_h, int scale_w) {
    HS_TRY(check("upsample_nearest", xs, scale_h, scale_w));
    if (!out || !x)
        return HS_FAIL(HS_ERR_ARG, "upsample_nearest: NULL out or x");
    up_job j = make_job(xs, scale_h, scale_w);
    j.out = out;
    j.x = x;
    hs_parallel_for(xs[0] * xs[1], grain(j.Ho * j.Wo), nearest_fwd_task, &j);
    return HS_OK;
}

hs_status hs_upsample_nearest_backward(float *dx, const float *dout, const int64_t xs[4], int scale_h, int scale_w) {
    HS_TRY(check("upsample_nearest_backward", xs, scale_h, scale_w));
    if (!dx || !dout)
        return HS_FAIL(HS_ERR_ARG, "upsample_nearest_backward: NULL dx or dout");
    up_job j = make_job(xs, scale_h, scale_w);
    j.dx = dx;
    j.dout = dout;
    hs_parallel_for(xs[0] * xs[1], grain(j.Ho * j.Wo), nearest_bwd_task, &j);
    return HS_OK;
}

// ---- bilinear, align_corners = false ----

// PyTorch area_pixel_compute_source_index + compute_source_index_and_lambda.
static void linear_src(int64_t o, int64_t in, float scale, int64_t *i0, int64_t *i1, float *l0, float *l1) {
    float real = (float)((double)scale * ((double)o + 0.5) - 0.5);
    if (real < 0.0f)
        real = 0.0f;
    int64_t a = (int64_t)real;
    int64_t off = a < in - 1 ? 1 : 0;
    float lam = real - (float)a;
    if (lam < 0.0f)
        lam = 0.0f;
    if (lam > 1.0f)
        lam = 1.0f;
    *i0 = a;
    *i1 = a + off;
    *l1 = lam;
    *l0 = 1.0f - lam;
}

static void bilinear_fwd_task(void *ctx, int64_t b, int64_t e) {
    const up_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        const float *xp = j->x + i * j->H * j->W;
        float *o = j->out + i * j->Ho * j->Wo;
        for (int64_t oh = 0; oh < j->Ho; oh++) {
            int64_t h0, h1;
            float hl0, hl1;
            linear_src(oh, j->H, j->sch, &h0, &h1, &hl0, &hl1);
            const float *r0 = xp + h0 * j->W, *r1 = xp + h1 * j->W;
            float *dst = o + oh * j->Wo;
            for (int64_t ow = 0; ow < j->Wo; ow++) {
                int64_t w0, w1;
                float wl0, wl1;
                linear_src(ow, j->W, j->scw, &w0, &w1, &wl0, &wl1);
                dst[ow] = hl0 * (wl0 * r0[w0] + wl1 * r0[w1]) + hl1 * (wl0 * r1[w0] + wl1 * r1[w1]);
            }
        }
    }
}

static void bilinear_bwd_task(void *ctx, int64_t b, int64_t e) {
    const up_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        float *d = j->dx + i * j->H * j->W;
        const float *go = j->dout + i * j->Ho * j->Wo;
        for (int64_t oh = 0; oh < j->Ho; oh++) {
            int64_t h0, h1;
            float hl0, hl1;
            linear_src(oh, j->H, j->sch, &h0, &h1, &hl0, &hl1);
            float *r0 = d + h0 * j->W, *r1 = d + h1 * j->W;
            const float *src = go + oh * j->Wo;
            for (int64_t ow = 0; ow < j->Wo; ow++) {
                int64_t w0, w1;
                float wl0, wl1;
                linear_src(ow, j->W, j->scw, &w0, &w1, &wl0, &wl1);
                float g = src[ow];
                r0[w0] += hl0 * wl0 * g;
                r0[w1] += hl0 * wl1 * g;
                r1[w0] += hl1 * wl0 * g;
                r1[w1] += hl1 * wl1 * g;
            }
        }
    }
}

hs_status hs_upsample_bilinear_forward(float *out, const float *x, const int64_t xs[4], int scale_h, int scale_w) {
    HS_TRY(check("upsample_bilinear", xs, scale_h, scale_w));
    if (!out || !x)
        return HS_FAIL(HS_ERR_ARG, "upsample_bilinear: NULL out or x");
    up_job j = make_job(xs, scale_h, scale_w);
    j.out = out;
    j.x = x;
    hs_parallel_for(xs[0] * xs[1], grain(4 * j.Ho * j.Wo), bilinear_fwd_task, &j);
    return HS_OK;
}

hs_status hs_upsample_bilinear_backward(float *dx, const float *dout, const int64_t xs[4], int scale_h, int scale_w) {
    HS_TRY(check("upsample_bilinear_backward", xs, scale_h, scale_w));
    if (!dx || !dout)
        return HS_FAIL(HS_ERR_ARG, "upsample_bilinear_backward: NULL dx or dout");
    up_job j = make_job(xs, scale_h, scale_w);
    j.dx = dx;
    j.dout = dout;
    hs_parallel_for(xs[0] * xs[1], grain(4 * j.Ho * j.Wo), bilinear_bwd_task, &j);
    return HS_OK;
}

// Reference: the textbook definition in double: source coordinate (o + 0.5)/s - 0.5 clamped to
// [0, in-1], weights 1 - frac and frac.
static void ref_src(int64_t o, int64_t in, int s, int64_t *i0, int64_t *i1, double *l1) {
    double r = ((double)o + 0.5) / s - 0.5;
    if (r < 0)
        r = 0;
    *i0 = (int64_t)floor(r);
    if (*i0 > in - 1)
        *i0 = in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *l1 = *i1 == *i0 ? 0.0 : r - (double)*i0;
}

hs_status hs_upsample_bilinear_forward_ref(float *out, const float *x, const int64_t xs[4], int scale_h, int scale_w) {
    HS_TRY(check("upsample_bilinear", xs, scale_h, scale_w));
    if (!out || !x)
        return HS_FAIL(HS_ERR_ARG, "upsample_bilinear: NULL out or x");
    int64_t H = xs[2], W = xs[3], Ho = H * scale_h, Wo = W * scale_w;
    for (int64_t i = 0; i < xs[0] * xs[1]; i++)
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t h0, h1, w0, w1;
                double a, b;
                ref_src(oh, H, scale_h, &h0, &h1, &a);
                ref_src(ow, W, scale_w, &w0, &w1, &b);
                const float *p = x + i * H * W;
                out[(i * Ho + oh) * Wo + ow] =
                    (float)((1 - a) * ((1 - b) * (double)p[h0 * W + w0] + b * (double)p[h0 * W + w1]) +
                            a * ((1 - b) * (double)p[h1 * W + w0] + b * (double)p[h1 * W + w1]));
            }
    return HS_OK;
}

hs_status hs_upsample_bilinear_backward_ref(float *dx, const float *dout, const int64_t xs[4], int scale_h,
                                            int scale_w) {
    HS_TRY(check("upsample_bilinear_backward", xs, scale_h, scale_w));
    if (!dx || !dout)
        return HS_FAIL(HS_ERR_ARG, "upsample_bilinear_backward: NULL dx or dout");
    int64_t H = xs[2], W = xs[3], Ho = H * scale_h, Wo = W * scale_w;
    for (int64_t i = 0; i < xs[0] * xs[1]; i++)
        for (int64_t oh = 0; oh < Ho; oh++)
            for (int64_t ow = 0; ow < Wo; ow++) {
                int64_t h0, h1, w0, w1;
                double a, b, g = (double)dout[(i * Ho + oh) * Wo + ow];
                ref_src(oh, H, scale_h, &h0, &h1, &a);
                ref_src(ow, W, scale_w, &w0, &w1, &b);
                float *p = dx + i * H * W;
                p[h0 * W + w0] += (float)((1 - a) * (1 - b) * g);
                p[h0 * W + w1] += (float)((1 - a) * b * g);
                p[h1 * W + w0] += (float)(a * (1 - b) * g);
                p[h1 * W + w1] += (float)(a * b * g);
            }
    return HS_OK;
}
