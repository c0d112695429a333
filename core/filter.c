// core/filter.c: separable (Gaussian, box) and median filters of (H,W[,C]) images (filter.h).
// Separable filters run the vertical pass first into a row buffer padded by the border, then the
// horizontal pass, one output row at a time, so the inner loops are contiguous and vectorise.
// U8 Gaussian and box use exact integer sums (OpenCV's bit-exact fixed point), so the only
// rounding is the final one. Median uses pruned Batcher sorting networks applied to blocks of
// pixels (k = 3, 5) and Huang's sliding histogram (k >= 7). Not morphology (morph.c).
#include "filter.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "parallel.h"

static int64_t row_grain(int64_t h) {
    int64_t g = (h + 15) / 16;  // about 16 chunks: balances 2..16 threads, scratch per chunk
    return g < 1 ? 1 : g;
}

// ---- kernels ----

int hs_filter_gaussian_ksize(double sigma, hs_dtype dt) {
    return ((int)lrint(sigma * (dt == HS_DTYPE_U8 ? 3 : 4) * 2 + 1)) | 1;
}

// OpenCV's fixed tables for sigma <= 0 and ksize <= 7 (getGaussianKernel small_gaussian_tab).
static const double small_gauss[4][7] = {{1.0},
                                         {0.25, 0.5, 0.25},
                                         {0.0625, 0.25, 0.375, 0.25, 0.0625},
                                         {0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125}};

static hs_status gaussian_kernel_f64(double *k, int ksize, double sigma) {
    if (ksize < 1 || ksize % 2 == 0)
        return HS_FAIL(HS_ERR_ARG, "gaussian: ksize must be odd >= 1, got %d", ksize);
    if (sigma <= 0 && ksize <= 7) {
        for (int i = 0; i < ksize; i++)
            k[i] = small_gauss[ksize / 2][i];
        return HS_OK;
    }
    double s = sigma > 0 ? sigma : ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8;
    double scale2 = -0.5 / (s * s), sum = 0;
    for (int i = 0; i < ksize; i++) {
        double x = i - (ksize - 1) * 0.5;
        k[i] = exp(scale2 * x * x);
        sum += k[i];
    }
    for (int i = 0; i < ksize; i++)
        k[i] /= sum;
    return HS_OK;
}

hs_status hs_filter_gaussian_kernel(float *k, int ksize, double sigma) {
    if (ksize < 1 || ksize % 2 == 0 || ksize > 4097)
        return HS_FAIL(HS_ERR_ARG, "gaussian: ksize must be odd in 1..4097, got %d", ksize);
    double *tmp = hs_alloc((size_t)ksize * sizeof *tmp);
    if (!tmp)
        return HS_FAIL(HS_ERR_NOMEM, "gaussian: out of memory");
    hs_status st = gaussian_kernel_f64(tmp, ksize, sigma);
    for (int i = 0; st == HS_OK && i < ksize; i++)
        k[i] = (float)tmp[i];
    hs_free(tmp);
    return st;
}

// ---- the separable engine ----

typedef struct {
    const hs_tensor *src;  // contiguous, U8 or F32
    hs_tensor *dst;        // contiguous, U8 or F32 (may differ from src: unsharp blurs to F32)
    hs_image_dims d;
    hs_border border;
    const float *kx, *ky;      // float path
    const uint32_t *ikx, *iky; // integer path (U8 source, U8 destination)
    int nx, ny, integer;
    double scale;              // integer path: 0 -> (v + 2^15) >> 16, else round(v * scale)
    char *scratch;
    size_t scratch_bytes;
    int64_t grain;
} sep_ctx;

// Fill the nx-1 border columns of a padded row (interior at offset ax*C) from its interior.
#define FILL_BORDER(T)                                                                  \
    do {                                                                                \
        for (int64_t x = -ax; x < W + (nx - 1 - ax); x++) {                             \
            if (x == 0)                                                                 \
                x = W;                                                                  \
            if (x >= W + (nx - 1 - ax))                                                 \
                break;                                                                  \
            int64_t bx = hs_geometry_border_index(x, W, c->border);                     \
            for (int64_t ch = 0; ch < C; ch++)                                          \
                acc[(x + ax) * C + ch] = bx < 0 ? (T)0 : acc[(bx + ax) * C + ch];       \
        }                                                                               \
    } while (0)

static void sep_rows_float(sep_ctx *c, int64_t begin, int64_t end) {
    const int64_t H = c->d.h, W = c->d.w, C = c->d.c, n = W * C;
    const int nx = c->nx, ny = c->ny, ax = nx / 2, ay = ny / 2;
    float *acc = (float *)(c->scratch + (size_t)(begin / c->grain) * c->scratch_bytes);
    float *out = acc + (W + nx - 1) * C;
    for (int64_t y = begin; y < end; y++) {
        float *mid = acc + ax * C;
        memset(mid, 0, (size_t)n * sizeof *mid);
        for (int i = 0; i < ny; i++) {
            int64_t sy = hs_geometry_border_index(y - ay + i, H, c->border);
            if (sy < 0)
                continue;
            const float k = c->ky[i];
            if (c->src->dtype == HS_DTYPE_U8) {
                const uint8_t *s = (const uint8_t *)c->src->data + sy * n;
                for (int64_t j = 0; j < n; j++)
                    mid[j] += k * (float)s[j];
            } else {
                const float *s = (const float *)c->src->data + sy * n;
                for (int64_t j = 0; j < n; j++)
                    mid[j] += k * s[j];
            }
        }
        FILL_BORDER(float);
        memset(out, 0, (size_t)n * sizeof *out);
        for (int t = 0; t < nx; t++) {
            const float k = c->kx[t];
            const float *a = acc + t * C;
            for (int64_t j = 0; j < n; j++)
                out[j] += k * a[j];
        }
        if (c->dst->dtype == HS_DTYPE_U8) {
            uint8_t *o = (uint8_t *)c->dst->data + y * n;
            for (int64_t j = 0; j < n; j++) {
                float v = rintf(out[j]);
                o[j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        } else {
            memcpy((float *)c->dst->data + y * n, out, (size_t)n * sizeof *out);
        }
    }
}

static void sep_rows_int(sep_ctx *c, int64_t begin, int64_t end) {
    const int64_t H = c->d.h, W = c->d.w, C = c->d.c, n = W * C;
    const int nx = c->nx, ny = c->ny, ax = nx / 2, ay = ny / 2;
    uint32_t *acc = (uint32_t *)(c->scratch + (size_t)(begin / c->grain) * c->scratch_bytes);
    uint32_t *out = acc + (W + nx - 1) * C;
    for (int64_t y = begin; y < end; y++) {
        uint32_t *mid = acc + ax * C;
        memset(mid, 0, (size_t)n * sizeof *mid);
        for (int i = 0; i < ny; i++) {
            int64_t sy = hs_geometry_border_index(y - ay + i, H, c->border);
            if (sy < 0)
                continue;
            const uint32_t k = c->iky[i];
            const uint8_t *s = (const uint8_t *)c->src->data + sy * n;
            for (int64_t j = 0; j < n; j++)
                mid[j] += k * s[j];
        }
        FILL_BORDER(uint32_t);
        memset(out, 0, (size_t)n * sizeof *out);
        for (int t = 0; t < nx; t++) {
            const uint32_t k = c->ikx[t];
            const uint32_t *a = acc + t * C;
            for (int64_t j = 0; j < n; j++)
                out[j] += k * a[j];
        }
        uint8_t *o = (uint8_t *)c->dst->data + y * n;
        if (c->scale == 0) {
            for (int64_t j = 0; j < n; j++) {
                uint32_t v = (out[j] + (1u << 15)) >> 16;
                o[j] = (uint8_t)(v > 255 ? 255 : v);
            }
        } else {
            for (int64_t j = 0; j < n; j++) {
                long v = lrint((double)out[j] * c->scale);
                o[j] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
}

static void sep_rows(void *ctx, int64_t begin, int64_t end) {
    sep_ctx *c = ctx;
    if (c->integer)
        sep_rows_int(c, begin, end);
    else
        sep_rows_float(c, begin, end);
}

// Run the engine on validated, contiguous tensors.
static hs_status sep_run(sep_ctx *c, const char *op) {
    const int64_t W = c->d.w, C = c->d.c;
    c->grain = row_grain(c->d.h);
    int64_t nchunks = (c->d.h + c->grain - 1) / c->grain;
    c->scratch_bytes = (size_t)((W + c->nx - 1) * C + W * C) * 4;
    c->scratch_bytes = (c->scratch_bytes + 63) & ~(size_t)63;
    c->scratch = hs_alloc((size_t)nchunks * c->scratch_bytes);
    if (!c->scratch)
        return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory for %lld row buffers", op, (long long)nchunks);
    hs_parallel_for(c->d.h, c->grain, sep_rows, c);
    hs_free(c->scratch);
    c->scratch = NULL;
    return HS_OK;
}

// Common validation: src image, dst same dims with dtype dst_dt; returns a contiguous source.
static hs_status prepare(hs_image_dims *d, hs_tensor **tmp, const hs_tensor **in, hs_tensor *dst,
                         const hs_tensor *src, hs_dtype dst_dt, const char *op) {
    *tmp = NULL;
    HS_TRY(hs_geometry_dims(d, src, op));
    HS_TRY(hs_geometry_check_dst(dst, op, dst_dt, d));
    if (dst->data == src->data)
        return HS_FAIL(HS_ERR_ARG, "%s: destination must not alias the source", op);
    return hs_geometry_contiguous(tmp, in, src);
}

hs_status hs_filter_separable(hs_tensor *dst, const hs_tensor *src, const float *kx, int nx, const float *ky, int ny,
                              hs_border border) {
    if (!kx || !ky || nx < 1 || ny < 1)
        return HS_FAIL(HS_ERR_ARG, "separable: kernels must have >= 1 taps, got %d and %d", nx, ny);
    if ((unsigned)border >= HS_BORDER_COUNT)
        return HS_FAIL(HS_ERR_ARG, "separable: bad border mode %d", (int)border);
    hs_image_dims d;
    hs_tensor *tmp;
    const hs_tensor *in;
    HS_TRY(prepare(&d, &tmp, &in, dst, src, src ? src->dtype : HS_DTYPE_F32, "separable"));
    sep_ctx c = {.src = in, .dst = dst, .d = d, .border = border, .kx = kx, .ky = ky, .nx = nx, .ny = ny};
    hs_status st = sep_run(&c, "separable");
    hs_tensor_free(tmp);
    return st;
}

static hs_status gaussian_to(hs_tensor *dst, const hs_tensor *src, double sigma, int ksize, hs_border border,
                             hs_dtype dst_dt, const char *op) {
    if ((unsigned)border >= HS_BORDER_COUNT)
        return HS_FAIL(HS_ERR_ARG, "%s: bad border mode %d", op, (int)border);
    if (!(sigma > 0) && ksize <= 0)
        return HS_FAIL(HS_ERR_ARG, "%s: sigma must be > 0 (or give ksize), got %g", op, sigma);
    if (!src)
        return HS_FAIL(HS_ERR_ARG, "%s: image is NULL", op);
    if (ksize <= 0)
        ksize = hs_filter_gaussian_ksize(sigma, src->dtype);
    if (ksize % 2 == 0 || ksize > 4097)
        return HS_FAIL(HS_ERR_ARG, "%s: ksize must be odd in 1..4097, got %d", op, ksize);
    hs_image_dims d;
    hs_tensor *tmp;
    const hs_tensor *in;
    HS_TRY(prepare(&d, &tmp, &in, dst, src, dst_dt, op));
    double *kd = hs_alloc((size_t)ksize * (sizeof(double) + sizeof(float) + sizeof(uint32_t)));
    if (!kd) {
        hs_tensor_free(tmp);
        return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory", op);
    }
    float *kf = (float *)(kd + ksize);
    uint32_t *ki = (uint32_t *)(kf + ksize);
    hs_status st = gaussian_kernel_f64(kd, ksize, sigma);
    sep_ctx c = {.src = in, .dst = dst, .d = d, .border = border, .nx = ksize, .ny = ksize};
    if (st == HS_OK) {
        for (int i = 0; i < ksize; i++)
            kf[i] = (float)kd[i];
        // OpenCV's U8 kernel (getGaussianKernelFixedPoint_ED): 8 fraction bits, the rounding
        // error diffused from the tails inwards and the centre tap making the sum exactly 256.
        double err = 0;
        int64_t sum = 0;
        for (int i = 0; i < ksize / 2; i++) {
            double adj = kd[i] * 256.0 + err;
            double v = nearbyint(adj);
            err = adj - v;
            ki[i] = ki[ksize - 1 - i] = (uint32_t)v;
            sum += 2 * (int64_t)v;
        }
        ki[ksize / 2] = (uint32_t)(256 - sum);
        c.kx = c.ky = kf;
        c.ikx = c.iky = ki;
        c.integer = in->dtype == HS_DTYPE_U8 && dst_dt == HS_DTYPE_U8;
        st = sep_run(&c, op);
    }
    hs_free(kd);
    hs_tensor_free(tmp);
    return st;
}

hs_status hs_filter_gaussian(hs_tensor *dst, const hs_tensor *src, double sigma, int ksize, hs_border border) {
    return gaussian_to(dst, src, sigma, ksize, border, src ? src->dtype : HS_DTYPE_F32, "gaussian");
}

hs_status hs_filter_box(hs_tensor *dst, const hs_tensor *src, int ksize, hs_border border) {
    if (ksize < 1 || ksize > 4097)
        return HS_FAIL(HS_ERR_ARG, "box: ksize must be in 1..4097, got %d", ksize);
    if ((unsigned)border >= HS_BORDER_COUNT)
        return HS_FAIL(HS_ERR_ARG, "box: bad border mode %d", (int)border);
    hs_image_dims d;
    hs_tensor *tmp;
    const hs_tensor *in;
    HS_TRY(prepare(&d, &tmp, &in, dst, src, src ? src->dtype : HS_DTYPE_F32, "box"));
    float *kf = hs_alloc((size_t)ksize * (sizeof(float) + sizeof(uint32_t)));
    if (!kf) {
        hs_tensor_free(tmp);
        return HS_FAIL(HS_ERR_NOMEM, "box: out of memory");
    }
    uint32_t *ki = (uint32_t *)(kf + ksize);
    for (int i = 0; i < ksize; i++) {
        kf[i] = 1.0f / (float)ksize;
        ki[i] = 1;
    }
    sep_ctx c = {.src = in, .dst = dst, .d = d, .border = border, .kx = kf, .ky = kf, .ikx = ki, .iky = ki,
                 .nx = ksize, .ny = ksize, .integer = in->dtype == HS_DTYPE_U8,
                 .scale = 1.0 / ((double)ksize * (double)ksize)};
    hs_status st = sep_run(&c, "box");
    hs_free(kf);
    hs_tensor_free(tmp);
    return st;
}

// ---- unsharp mask ----

hs_status hs_filter_unsharp(hs_tensor *dst, const hs_tensor *src, double sigma, double amount) {
    if (!(sigma > 0))
        return HS_FAIL(HS_ERR_ARG, "unsharp: sigma must be > 0, got %g", sigma);
    if (!isfinite(amount))
        return HS_FAIL(HS_ERR_ARG, "unsharp: amount must be finite");
    hs_image_dims d;
    hs_tensor *tmp, *blur = NULL;
    const hs_tensor *in;
    HS_TRY(prepare(&d, &tmp, &in, dst, src, src ? src->dtype : HS_DTYPE_F32, "unsharp"));
    int64_t shape[3] = {d.h, d.w, d.c};
    hs_status st = hs_tensor_new(&blur, HS_DTYPE_F32, d.ndim, shape);
    if (st == HS_OK)  // float kernel radius round(4 sigma) for both dtypes: a smooth, unrounded blur
        st = gaussian_to(blur, in, sigma, hs_filter_gaussian_ksize(sigma, HS_DTYPE_F32), HS_BORDER_REFLECT101,
                         HS_DTYPE_F32, "unsharp");
    if (st == HS_OK) {
        const int64_t n = d.h * d.w * d.c;
        const float *b = blur->data, a = (float)amount;
        if (in->dtype == HS_DTYPE_U8) {
            const uint8_t *s = in->data;
            uint8_t *o = dst->data;
            for (int64_t i = 0; i < n; i++) {
                float v = rintf((float)s[i] + a * ((float)s[i] - b[i]));
                o[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        } else {
            const float *s = in->data;
            float *o = dst->data;
            for (int64_t i = 0; i < n; i++)
                o[i] = s[i] + a * (s[i] - b[i]);
        }
    }
    hs_tensor_free(blur);
    hs_tensor_free(tmp);
    return st;
}

// ---- median ----

#define MED_LANES 256
#define MED_MAX_NET 1024

typedef struct {
    const hs_tensor *src;
    hs_tensor *dst;
    hs_image_dims d;
    int k, r;
    const void *pad;          // (H+2r, W+2r, C) replicate-padded copy of src
    const int16_t *net;       // comparator pairs (a, b): a gets the min
    int nnet;
    char *scratch;
    size_t scratch_bytes;
    int64_t grain;
} med_ctx;

// Batcher's odd-even merge sort on npow2 wires, dropping comparators that touch wires >= n
// (those hold +inf), then keeping only the comparators the median wire n/2 depends on.
static int median_network(int16_t *net, int n) {
    int npow = 1;
    while (npow < n)
        npow <<= 1;
    int16_t all[2 * MED_MAX_NET];
    int m = 0;
    for (int p = 1; p < npow; p <<= 1)
        for (int k = p; k >= 1; k >>= 1)
            for (int j = k % p; j + k < npow; j += 2 * k)
                for (int i = 0; i < k && i < npow - j - k; i++)
                    if ((i + j) / (2 * p) == (i + j + k) / (2 * p) && i + j + k < n && m < MED_MAX_NET) {
                        all[2 * m] = (int16_t)(i + j);
                        all[2 * m + 1] = (int16_t)(i + j + k);
                        m++;
                    }
    unsigned char need[64] = {0};
    need[n / 2] = 1;
    unsigned char keep[MED_MAX_NET];
    int kept = 0;
    for (int c = m - 1; c >= 0; c--) {
        int a = all[2 * c], b = all[2 * c + 1];
        keep[c] = need[a] || need[b];
        if (keep[c]) {
            need[a] = need[b] = 1;
            kept++;
        }
    }
    int o = 0;
    for (int c = 0; c < m && o < MED_MAX_NET; c++)
        if (keep[c]) {
            net[2 * o] = all[2 * c];
            net[2 * o + 1] = all[2 * c + 1];
            o++;
        }
    (void)kept;
    return o;
}

static void cmpswap_u8(uint8_t *restrict a, uint8_t *restrict b, int n) {
    for (int l = 0; l < n; l++) {
        uint8_t x = a[l], y = b[l];
        a[l] = x < y ? x : y;
        b[l] = x < y ? y : x;
    }
}

static void cmpswap_f32(float *restrict a, float *restrict b, int n) {
    for (int l = 0; l < n; l++) {
        float x = a[l], y = b[l];
        a[l] = x < y ? x : y;
        b[l] = x < y ? y : x;
    }
}

// 3x3 median: Paeth/Devillard's 19-comparator network (opt_med9), written out so the loop over
// pixels vectorises. a0..a8 are the 9 neighbours in row-major order; a4 ends up the median.
#define CS(x, y)                    \
    do {                            \
        lo_ = x < y ? x : y;        \
        hi_ = x < y ? y : x;        \
        x = lo_;                    \
        y = hi_;                    \
    } while (0)
#define MED9(T)                                                                       \
    for (int64_t j = 0; j < n; j++) {                                                \
        T a0 = r[0][j], a1 = r[0][j + C], a2 = r[0][j + 2 * C], a3 = r[1][j];           \
        T a4 = r[1][j + C], a5 = r[1][j + 2 * C], a6 = r[2][j], a7 = r[2][j + C];       \
        T a8 = r[2][j + 2 * C], lo_, hi_;                                            \
        CS(a1, a2); CS(a4, a5); CS(a7, a8); CS(a0, a1);                               \
        CS(a3, a4); CS(a6, a7); CS(a1, a2); CS(a4, a5);                               \
        CS(a7, a8); CS(a0, a3); CS(a5, a8); CS(a4, a7);                               \
        CS(a3, a6); CS(a1, a4); CS(a2, a5); CS(a4, a7);                               \
        CS(a4, a2); CS(a6, a4); CS(a4, a2);                                           \
        (void)lo_;                                                                   \
        o[j] = a4;                                                                   \
    }

static void median3_rows(void *ctx, int64_t begin, int64_t end) {
    med_ctx *m = ctx;
    const int64_t W = m->d.w, C = m->d.c, n = W * C, pw = (W + 2) * C;
    for (int64_t y = begin; y < end; y++) {
        if (m->src->dtype == HS_DTYPE_U8) {
            const uint8_t *P = m->pad, *r[3] = {P + y * pw, P + (y + 1) * pw, P + (y + 2) * pw};
            uint8_t *o = (uint8_t *)m->dst->data + y * n;
            MED9(uint8_t)
        } else {
            const float *P = m->pad, *r[3] = {P + y * pw, P + (y + 1) * pw, P + (y + 2) * pw};
            float *o = (float *)m->dst->data + y * n;
            MED9(float)
        }
    }
}

static void median_net_rows(void *ctx, int64_t begin, int64_t end) {
    med_ctx *m = ctx;
    const int64_t W = m->d.w, C = m->d.c, n = W * C, pw = (W + 2 * m->r) * C;
    const int k = m->k, kk = k * k;
    char *scr = m->scratch + (size_t)(begin / m->grain) * m->scratch_bytes;
    const int u8 = m->src->dtype == HS_DTYPE_U8;
    for (int64_t y = begin; y < end; y++) {
        for (int64_t j0 = 0; j0 < n; j0 += MED_LANES) {
            int L = (int)(n - j0 < MED_LANES ? n - j0 : MED_LANES);
            if (u8) {
                uint8_t *v = (uint8_t *)scr;
                const uint8_t *P = m->pad;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++)
                        memcpy(v + (dy * k + dx) * MED_LANES, P + (y + dy) * pw + j0 + dx * C, (size_t)L);
                for (int c = 0; c < m->nnet; c++)
                    cmpswap_u8(v + m->net[2 * c] * MED_LANES, v + m->net[2 * c + 1] * MED_LANES, L);
                memcpy((uint8_t *)m->dst->data + y * n + j0, v + (kk / 2) * MED_LANES, (size_t)L);
            } else {
                float *v = (float *)scr;
                const float *P = m->pad;
                for (int dy = 0; dy < k; dy++)
                    for (int dx = 0; dx < k; dx++)
                        memcpy(v + (dy * k + dx) * MED_LANES, P + (y + dy) * pw + j0 + dx * C, (size_t)L * 4);
                for (int c = 0; c < m->nnet; c++)
                    cmpswap_f32(v + m->net[2 * c] * MED_LANES, v + m->net[2 * c + 1] * MED_LANES, L);
                memcpy((float *)m->dst->data + y * n + j0, v + (kk / 2) * MED_LANES, (size_t)L * 4);
            }
        }
    }
}

// Huang's algorithm with a two-level (16 x 16) histogram, per row and channel (U8, k >= 7).
static void median_hist_rows(void *ctx, int64_t begin, int64_t end) {
    med_ctx *m = ctx;
    const int64_t W = m->d.w, C = m->d.c, n = W * C, pw = (W + 2 * m->r) * C;
    const int k = m->k, target = k * k / 2 + 1;
    uint16_t *hist = (uint16_t *)(m->scratch + (size_t)(begin / m->grain) * m->scratch_bytes), *coarse = hist + 256;
    const uint8_t *P = m->pad;
    uint8_t *D = m->dst->data;
    for (int64_t y = begin; y < end; y++)
        for (int64_t c = 0; c < C; c++) {
            memset(hist, 0, 272 * sizeof *hist);
            for (int dy = 0; dy < k; dy++)
                for (int dx = 0; dx < k; dx++) {
                    uint8_t v = P[(y + dy) * pw + dx * C + c];
                    hist[v]++;
                    coarse[v >> 4]++;
                }
            for (int64_t x = 0;; x++) {
                int sum = 0, b = 0;
                while (sum + coarse[b] < target)
                    sum += coarse[b++];
                int v = b << 4;
                while (sum + hist[v] < target)
                    sum += hist[v++];
                D[y * n + x * C + c] = (uint8_t)v;
                if (x + 1 == W)
                    break;
                for (int dy = 0; dy < k; dy++) {  // slide: drop column x, add column x + k
                    const uint8_t *row = P + (y + dy) * pw;
                    uint8_t o = row[x * C + c], a = row[(x + k) * C + c];
                    hist[o]--;
                    coarse[o >> 4]--;
                    hist[a]++;
                    coarse[a >> 4]++;
                }
            }
        }
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void median_sort_rows(void *ctx, int64_t begin, int64_t end) {
    med_ctx *m = ctx;
    const int64_t W = m->d.w, C = m->d.c, n = W * C, pw = (W + 2 * m->r) * C;
    const int k = m->k, kk = k * k;
    float *v = (float *)(m->scratch + (size_t)(begin / m->grain) * m->scratch_bytes);
    const float *P = m->pad;
    float *D = m->dst->data;
    for (int64_t y = begin; y < end; y++)
        for (int64_t j = 0; j < n; j++) {
            for (int dy = 0; dy < k; dy++)
                for (int dx = 0; dx < k; dx++)
                    v[dy * k + dx] = P[(y + dy) * pw + j + dx * C];
            qsort(v, (size_t)kk, sizeof *v, cmp_float);
            D[y * n + j] = v[kk / 2];
        }
}

hs_status hs_filter_median(hs_tensor *dst, const hs_tensor *src, int ksize) {
    if (ksize < 3 || ksize % 2 == 0 || ksize > 255)
        return HS_FAIL(HS_ERR_ARG, "median: ksize must be odd >= 3, got %d", ksize);
    hs_image_dims d;
    hs_tensor *tmp;
    const hs_tensor *in;
    HS_TRY(prepare(&d, &tmp, &in, dst, src, src ? src->dtype : HS_DTYPE_F32, "median"));
    const int r = ksize / 2;
    const size_t es = hs_dtype_size(in->dtype);
    const int64_t ph = d.h + 2 * r, pw = d.w + 2 * r;
    med_ctx m = {.src = in, .dst = dst, .d = d, .k = ksize, .r = r};
    m.grain = row_grain(d.h);
    int64_t nchunks = (d.h + m.grain - 1) / m.grain;
    int16_t net[2 * MED_MAX_NET];
    int use_net = ksize <= 5;
    if (use_net) {
        m.nnet = median_network(net, ksize * ksize);
        m.net = net;
        m.scratch_bytes = (size_t)(ksize * ksize) * MED_LANES * es;
    } else if (in->dtype == HS_DTYPE_U8) {
        m.scratch_bytes = 272 * sizeof(uint16_t);
    } else {
        m.scratch_bytes = (size_t)(ksize * ksize) * sizeof(float);
    }
    m.scratch_bytes = (m.scratch_bytes + 63) & ~(size_t)63;
    size_t pad_bytes = ((size_t)(ph * pw * d.c) * es + 63) & ~(size_t)63;
    char *mem = hs_alloc(pad_bytes + (size_t)nchunks * m.scratch_bytes);
    if (!mem) {
        hs_tensor_free(tmp);
        return HS_FAIL(HS_ERR_NOMEM, "median: out of memory");
    }
    // replicate-padded copy: every window read is then in bounds and contiguous along x
    for (int64_t y = 0; y < ph; y++) {
        int64_t sy = hs_geometry_border_index(y - r, d.h, HS_BORDER_REPLICATE);
        const char *srow = (const char *)in->data + (size_t)(sy * d.w * d.c) * es;
        char *prow = mem + (size_t)(y * pw * d.c) * es;
        for (int64_t x = 0; x < r; x++) {
            memcpy(prow + (size_t)(x * d.c) * es, srow, (size_t)d.c * es);
            memcpy(prow + (size_t)((r + d.w + x) * d.c) * es, srow + (size_t)((d.w - 1) * d.c) * es, (size_t)d.c * es);
        }
        memcpy(prow + (size_t)(r * d.c) * es, srow, (size_t)(d.w * d.c) * es);
    }
    m.pad = mem;
    m.scratch = mem + pad_bytes;
    hs_range_fn fn = ksize == 3 ? median3_rows : use_net ? median_net_rows
                     : in->dtype == HS_DTYPE_U8 ? median_hist_rows : median_sort_rows;
    hs_parallel_for(d.h, m.grain, fn, &m);
    hs_free(mem);
    hs_tensor_free(tmp);
    return HS_OK;
}
