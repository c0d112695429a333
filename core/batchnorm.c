// core/batchnorm.c: batch normalisation kernels (see batchnorm.h). Channels are independent, so
// the fast versions run channels under hs_parallel_for; inside a channel the sums use 16 float
// lanes per plane (vectorisable, fixed order) combined in double, so results do not depend on the
// thread count. *_ref are the textbook loops in double. The *_relu_* variants apply the ReLU that
// follows a batchnorm in the same pass (forward) and mask dout by the output's sign (backward),
// which the backward recomputes from x: the forward's per-channel scale and shift derive from the
// saved (float) mean and rstd alone (bn_coeffs), so both passes evaluate the same x * a + s.
//
// Letters: N batch, C channels, H/W plane size, M = N*H*W values per channel.
#include "batchnorm.h"

#include <math.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "parallel.h"
#include "tensor.h"

#define LANES 16

// sum of a[0..n) in a fixed order: 16 interleaved float partial sums, then double.
static double sum_f(const float *a, int64_t n) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++)
            acc[k] += a[i + k];
    double s = 0;
    for (int k = 0; k < LANES; k++)
        s += (double)acc[k];
    for (; i < n; i++)
        s += (double)a[i];
    return s;
}

// sum of (a - m)^2 and, when b != NULL, of (a - m) * b.
static double sum_dev2(const float *a, int64_t n, float m) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) {
            float d = a[i + k] - m;
            acc[k] += d * d;
        }
    double s = 0;
    for (int k = 0; k < LANES; k++)
        s += (double)acc[k];
    for (; i < n; i++) {
        double d = (double)a[i] - (double)m;
        s += d * d;
    }
    return s;
}

static double sum_devdot(const float *a, const float *b, int64_t n, float m) {
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++)
            acc[k] += (a[i + k] - m) * b[i + k];
    double s = 0;
    for (int k = 0; k < LANES; k++)
        s += (double)acc[k];
    for (; i < n; i++)
        s += ((double)a[i] - (double)m) * (double)b[i];
    return s;
}

static hs_status check(const char *op, const int64_t xs[4], int training) {
    char a[96];
    if (!xs)
        return HS_FAIL(HS_ERR_ARG, "%s: NULL shape", op);
    hs_shape_str(4, xs, a, sizeof a);
    for (int i = 0; i < 4; i++)
        if (xs[i] <= 0)
            return HS_FAIL(HS_ERR_SHAPE, "%s: x %s must have positive sizes", op, a);
    if (training && xs[0] * xs[2] * xs[3] < 2)
        return HS_FAIL(HS_ERR_SHAPE, "%s: x %s has one value per channel; training needs more than one", op, a);
    return HS_OK;
}

typedef struct {
    int64_t N, C, HW;
    float *out, *save_mean, *save_rstd, *running_mean, *running_var;
    const float *x, *gamma, *beta, *rm, *rv;
    float momentum, eps;
    float *dx, *dgamma, *dbeta;
    const float *dout, *smean, *srstd;
    int relu;              // fused ReLU: forward clamps, backward masks dout by x * a + s > 0
    int assign;            // backward: dx = ... instead of dx += ...
} bn_job;

// The affine form of channel c's training normalisation, out = x * a + s, from the saved mean
// and rstd: forward and backward (its ReLU mask) both compute it this way.
static void bn_coeffs(const bn_job *j, int64_t c, float mean, float rstd, float *a, float *s) {
    double g = j->gamma ? (double)j->gamma[c] : 1.0, bt = j->beta ? (double)j->beta[c] : 0.0;
    *a = (float)((double)rstd * g);
    *s = (float)(bt - (double)mean * (double)rstd * g);
}

// out plane = x * alpha + shift (then max(0, .) when fused with ReLU) for every n of channel c.
static void affine(const bn_job *j, int64_t c, float alpha, float shift) {
    for (int64_t n = 0; n < j->N; n++) {
        const float *xp = j->x + (n * j->C + c) * j->HW;
        float *o = j->out + (n * j->C + c) * j->HW;
        if (j->relu) {
            for (int64_t k = 0; k < j->HW; k++) {
                float v = xp[k] * alpha + shift;
                o[k] = v > 0.0f ? v : 0.0f;
            }
        } else {
            for (int64_t k = 0; k < j->HW; k++)
                o[k] = xp[k] * alpha + shift;
        }
    }
}

static void train_fwd_task(void *ctx, int64_t b, int64_t e) {
    const bn_job *j = ctx;
    int64_t M = j->N * j->HW;
    for (int64_t c = b; c < e; c++) {
        double s = 0;
        for (int64_t n = 0; n < j->N; n++)
            s += sum_f(j->x + (n * j->C + c) * j->HW, j->HW);
        double mean = s / (double)M;
        double v = 0;
        for (int64_t n = 0; n < j->N; n++)
            v += sum_dev2(j->x + (n * j->C + c) * j->HW, j->HW, (float)mean);
        // the float-rounded mean leaves a tiny bias in v: correct it exactly (sum (x - m) = s - M m)
        double dm = s - (double)M * (double)(float)mean;
        v -= dm * dm / (double)M;
        if (v < 0)
            v = 0;
        double var = v / (double)M;
        double rstd = 1.0 / sqrt(var + (double)j->eps);
        j->save_mean[c] = (float)mean;
        j->save_rstd[c] = (float)rstd;
        if (j->running_mean)
            j->running_mean[c] = (float)((1.0 - (double)j->momentum) * (double)j->running_mean[c] +
                                         (double)j->momentum * mean);
        if (j->running_var)
            j->running_var[c] = (float)((1.0 - (double)j->momentum) * (double)j->running_var[c] +
                                        (double)j->momentum * v / (double)(M - 1));
        float a, sh;
        bn_coeffs(j, c, j->save_mean[c], j->save_rstd[c], &a, &sh);
        affine(j, c, a, sh);
    }
}

static int64_t grain(int64_t per_channel) {
    int64_t g = 32768 / (per_channel > 0 ? per_channel : 1);
    return g < 1 ? 1 : g;
}

static hs_status forward_train(float *out, float *save_mean, float *save_rstd, float *running_mean, float *running_var,
                               const float *x, const float *gamma, const float *beta, const int64_t xs[4],
                               float momentum, float eps, int relu) {
    HS_TRY(check("batchnorm2d", xs, 1));
    if (!out || !x || !save_mean || !save_rstd)
        return HS_FAIL(HS_ERR_ARG, "batchnorm2d: NULL out, x, save_mean or save_rstd");
    if (!(eps >= 0.0f) || !(momentum >= 0.0f && momentum <= 1.0f))
        return HS_FAIL(HS_ERR_ARG, "batchnorm2d: momentum %g must be in [0,1] and eps %g >= 0", (double)momentum,
                       (double)eps);
    bn_job j = {xs[0], xs[1], xs[2] * xs[3], out, save_mean, save_rstd, running_mean, running_var, x, gamma, beta,
                NULL, NULL, momentum, eps, NULL, NULL, NULL, NULL, NULL, NULL, relu, 0};
    hs_parallel_for(xs[1], grain(xs[0] * xs[2] * xs[3]), train_fwd_task, &j);
    return HS_OK;
}

hs_status hs_batchnorm2d_forward_train(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                       float *running_var, const float *x, const float *gamma, const float *beta,
                                       const int64_t xs[4], float momentum, float eps) {
    return forward_train(out, save_mean, save_rstd, running_mean, running_var, x, gamma, beta, xs, momentum, eps, 0);
}

hs_status hs_batchnorm2d_relu_forward_train(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                            float *running_var, const float *x, const float *gamma, const float *beta,
                                            const int64_t xs[4], float momentum, float eps) {
    return forward_train(out, save_mean, save_rstd, running_mean, running_var, x, gamma, beta, xs, momentum, eps, 1);
}

static void eval_fwd_task(void *ctx, int64_t b, int64_t e) {
    const bn_job *j = ctx;
    for (int64_t c = b; c < e; c++) {
        double rstd = 1.0 / sqrt((double)j->rv[c] + (double)j->eps);
        double g = j->gamma ? (double)j->gamma[c] : 1.0, bt = j->beta ? (double)j->beta[c] : 0.0;
        affine(j, c, (float)(rstd * g), (float)(bt - (double)j->rm[c] * rstd * g));
    }
}

static hs_status forward_eval(float *out, const float *x, const float *gamma, const float *beta,
                              const float *running_mean, const float *running_var, const int64_t xs[4], float eps,
                              int relu) {
    HS_TRY(check("batchnorm2d_eval", xs, 0));
    if (!out || !x || !running_mean || !running_var)
        return HS_FAIL(HS_ERR_ARG, "batchnorm2d_eval: NULL out, x, running_mean or running_var");
    if (!(eps >= 0.0f))
        return HS_FAIL(HS_ERR_ARG, "batchnorm2d_eval: eps %g must be >= 0", (double)eps);
    bn_job j = {xs[0], xs[1], xs[2] * xs[3], out, NULL, NULL, NULL, NULL, x, gamma, beta,
                running_mean, running_var, 0.0f, eps, NULL, NULL, NULL, NULL, NULL, NULL, relu, 0};
    hs_parallel_for(xs[1], grain(xs[0] * xs[2] * xs[3]), eval_fwd_task, &j);
    return HS_OK;
}

hs_status hs_batchnorm2d_forward_eval(float *out, const float *x, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var, const int64_t xs[4],
                                      float eps) {
    return forward_eval(out, x, gamma, beta, running_mean, running_var, xs, eps, 0);
}

hs_status hs_batchnorm2d_relu_forward_eval(float *out, const float *x, const float *gamma, const float *beta,
                                           const float *running_mean, const float *running_var, const int64_t xs[4],
                                           float eps) {
    return forward_eval(out, x, gamma, beta, running_mean, running_var, xs, eps, 1);
}

// sums over one plane of d = dout * (x * a + s > 0) (the ReLU mask; relu 0: no mask): sum d and
// sum (x - m) d.
static void plane_sums_masked(const float *d, const float *xp, int64_t n, float m, int relu, float a, float s,
                              double *sdy, double *sdyx) {
    if (!relu) {
        *sdy += sum_f(d, n);
        *sdyx += sum_devdot(xp, d, n, m);
        return;
    }
    float a1[LANES] = {0}, a2[LANES] = {0};
    int64_t i = 0;
#ifdef __AVX512F__
    // the loop below in 16 lanes, the same operations and order (GCC's own vectorisation of it
    // shuffled 4-wide pieces)
    __m512 v1 = _mm512_setzero_ps(), v2 = _mm512_setzero_ps();
    const __m512 va = _mm512_set1_ps(a), vs = _mm512_set1_ps(s), vm = _mm512_set1_ps(m);
    for (; i + LANES <= n; i += LANES) {
        __m512 xv = _mm512_loadu_ps(xp + i);
        __mmask16 keep = _mm512_cmp_ps_mask(_mm512_add_ps(_mm512_mul_ps(xv, va), vs), _mm512_setzero_ps(), _CMP_GT_OQ);
        __m512 dv = _mm512_maskz_loadu_ps(keep, d + i);
        v1 = _mm512_add_ps(v1, dv);
        v2 = _mm512_add_ps(v2, _mm512_mul_ps(_mm512_sub_ps(xv, vm), dv));
    }
    _mm512_storeu_ps(a1, v1);
    _mm512_storeu_ps(a2, v2);
#else
    for (; i + LANES <= n; i += LANES) {
        float dv[LANES], xv[LANES];   // loaded unconditionally: the mask is a select, not a branch
        for (int k = 0; k < LANES; k++) {
            dv[k] = d[i + k];
            xv[k] = xp[i + k];
        }
        for (int k = 0; k < LANES; k++)
            dv[k] = xv[k] * a + s > 0.0f ? dv[k] : 0.0f;
        for (int k = 0; k < LANES; k++) {
            a1[k] += dv[k];
            a2[k] += (xv[k] - m) * dv[k];
        }
    }
#endif
    double s1 = 0, s2 = 0;
    for (int k = 0; k < LANES; k++) {
        s1 += (double)a1[k];
        s2 += (double)a2[k];
    }
    for (; i < n; i++) {
        double dv = xp[i] * a + s > 0.0f ? (double)d[i] : 0.0;
        s1 += dv;
        s2 += ((double)xp[i] - (double)m) * dv;
    }
    *sdy += s1;
    *sdyx += s2;
}

// Backward for one channel given mean and rstd; `train` adds the terms through the batch stats.
static void backward_channel(const bn_job *j, int64_t c, float mean, float rstd, int train) {
    int64_t M = j->N * j->HW;
    float ra = 0.0f, rs = 0.0f;   // the forward's x * ra + rs, whose sign is the ReLU mask
    if (j->relu)
        bn_coeffs(j, c, mean, rstd, &ra, &rs);
    double sdy = 0, sdyx = 0;
    for (int64_t n = 0; n < j->N; n++) {
        int64_t off = (n * j->C + c) * j->HW;
        plane_sums_masked(j->dout + off, j->x + off, j->HW, mean, j->relu, ra, rs, &sdy, &sdyx);
    }
    if (j->dgamma)
        j->dgamma[c] += (float)(sdyx * (double)rstd);
    if (j->dbeta)
        j->dbeta[c] += (float)sdy;
    if (!j->dx)
        return;
    double g = j->gamma ? (double)j->gamma[c] : 1.0;
    // dx = a dout + b (x - mean) + k  (train: a = g rstd, b = -g rstd^3 sdyx / M, k = -a mean(dout))
    double a = g * (double)rstd, bb = 0, k = 0;
    if (train) {
        bb = -g * (double)rstd * (double)rstd * (double)rstd * sdyx / (double)M;
        k = -a * sdy / (double)M;
    }
    float af = (float)a, bf = (float)bb, kf = (float)k;
    for (int64_t n = 0; n < j->N; n++) {
        int64_t off = (n * j->C + c) * j->HW;
        const float *d = j->dout + off, *xp = j->x + off;
        float *o = j->dx + off;
        if (j->relu && j->assign) {
            for (int64_t i = 0; i < j->HW; i++) {
                float xv = xp[i], dv = xv * ra + rs > 0.0f ? d[i] : 0.0f;
                o[i] = af * dv + bf * (xv - mean) + kf;
            }
        } else if (j->relu) {
            for (int64_t i = 0; i < j->HW; i++) {
                float xv = xp[i], dv = xv * ra + rs > 0.0f ? d[i] : 0.0f;
                o[i] += af * dv + bf * (xv - mean) + kf;
            }
        } else if (j->assign) {
            for (int64_t i = 0; i < j->HW; i++)
                o[i] = af * d[i] + bf * (xp[i] - mean) + kf;
        } else {
            for (int64_t i = 0; i < j->HW; i++)
                o[i] += af * d[i] + bf * (xp[i] - mean) + kf;
        }
    }
}

static void train_bwd_task(void *ctx, int64_t b, int64_t e) {
    const bn_job *j = ctx;
    for (int64_t c = b; c < e; c++)
        backward_channel(j, c, j->smean[c], j->srstd[c], 1);
}

static void eval_bwd_task(void *ctx, int64_t b, int64_t e) {
    const bn_job *j = ctx;
    for (int64_t c = b; c < e; c++)
        backward_channel(j, c, j->rm[c], (float)(1.0 / sqrt((double)j->rv[c] + (double)j->eps)), 0);
}

hs_status hs_batchnorm2d_backward_train(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                                        const float *gamma, const float *save_mean, const float *save_rstd,
                                        const int64_t xs[4]) {
    return hs_batchnorm2d_relu_backward_train(dx, dgamma, dbeta, dout, x, gamma, NULL, save_mean, save_rstd, xs, 0, 0);
}

hs_status hs_batchnorm2d_relu_backward_train(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                                             const float *gamma, const float *beta, const float *save_mean,
                                             const float *save_rstd, const int64_t xs[4], int relu, int assign_dx) {
    HS_TRY(check("batchnorm2d_backward", xs, 1));
    if (!dout || !x || !save_mean || !save_rstd)
        return HS_FAIL(HS_ERR_ARG, "batchnorm2d_backward: NULL dout, x, save_mean or save_rstd");
    bn_job j = {xs[0], xs[1], xs[2] * xs[3], NULL, NULL, NULL, NULL, NULL, x, gamma, beta, NULL, NULL, 0.0f, 0.0f,
                dx, dgamma, dbeta, dout, save_mean, save_rstd, relu != 0, assign_dx != 0};
    hs_parallel_for(xs[1], grain(3 * xs[0] * xs[2] * xs[3]), train_bwd_task, &j);
    return HS_OK;
}

hs_status hs_batchnorm2d_backward_eval(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                                       const float *gamma, const float *running_mean, const float *running_var,
                                       const int64_t xs[4], float eps) {
    HS_TRY(check("batchnorm2d_eval_backward", xs, 0));
    if (!dout || !x || !running_mean || !running_var)
        return HS_FAIL(HS_ERR_ARG, "batchnorm2d_eval_backward: NULL dout, x, running_mean or running_var");
    bn_job j = {xs[0], xs[1], xs[2] * xs[3], NULL, NULL, NULL, NULL, NULL, x, gamma, NULL, running_mean, running_var,
                0.0f, eps, dx, dgamma, dbeta, dout, NULL, NULL, 0, 0};
    hs_parallel_for(xs[1], grain(2 * xs[0] * xs[2] * xs[3]), eval_bwd_task, &j);
    return HS_OK;
}

// ---- references ----

hs_status hs_batchnorm2d_forward_train_ref(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                           float *running_var, const float *x, const float *gamma,
                                           const float *beta, const int64_t xs[4], float momentum, float eps) {
    HS_TRY(check("batchnorm2d", xs, 1));
    if (!out || !x || !save_mean || !save_rstd)
        return HS_FAIL(HS_ERR_ARG, "batchnorm2d: NULL out, x, save_mean or save_rstd");
    int64_t N = xs[0], C = xs[1], HW = xs[2] * xs[3], M = N * HW;
    for (int64_t c = 0; c < C; c++) {
        double s = 0, v = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < HW; k++)
                s += (double)x[(n * C + c) * HW + k];
        double mean = s / (double)M;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < HW; k++) {
                double d = (double)x[(n * C + c) * HW + k] - mean;
                v += d * d;
            }
        double rstd = 1.0 / sqrt(v / (double)M + (double)eps);
        save_mean[c] = (float)mean;
        save_rstd[c] = (float)rstd;
        if (running_mean)
            running_mean[c] = (float)((1 - (double)momentum) * (double)running_mean[c] + (double)momentum * mean);
        if (running_var)
            running_var[c] = (float)((1 - (double)momentum) * (double)running_var[c] +
                                     (double)momentum * v / (double)(M - 1));
        double g = gamma ? (double)gamma[c] : 1.0, b = beta ? (double)beta[c] : 0.0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < HW; k++)
                out[(n * C + c) * HW + k] = (float)(((double)x[(n * C + c) * HW + k] - mean) * rstd * g + b);
    }
    return HS_OK;
}

hs_status hs_batchnorm2d_backward_train_ref(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                                            const float *gamma, const float *save_mean, const float *save_rstd,
                                            const int64_t xs[4]) {
    HS_TRY(check("batchnorm2d_backward", xs, 1));
    if (!dout || !x || !save_mean || !save_rstd)
        return HS_FAIL(HS_ERR_ARG, "batchnorm2d_backward: NULL dout, x, save_mean or save_rstd");
    int64_t N = xs[0], C = xs[1], HW = xs[2] * xs[3], M = N * HW;
    for (int64_t c = 0; c < C; c++) {
        double m = save_mean[c], r = save_rstd[c], g = gamma ? (double)gamma[c] : 1.0, sdy = 0, sdyxh = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < HW; k++) {
                int64_t i = (n * C + c) * HW + k;
                sdy += (double)dout[i];
                sdyxh += (double)dout[i] * ((double)x[i] - m) * r;
            }
        if (dgamma)
            dgamma[c] += (float)sdyxh;
        if (dbeta)
            dbeta[c] += (float)sdy;
        if (dx)
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < HW; k++) {
                    int64_t i = (n * C + c) * HW + k;
                    double xh = ((double)x[i] - m) * r;
                    dx[i] += (float)(g * r * ((double)dout[i] - sdy / (double)M - xh * sdyxh / (double)M));
                }
    }
    return HS_OK;
}
