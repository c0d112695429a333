// core/filter.c: separable (Gaussian, box) and median filters of (H,W[,C]) images (filter.h).
// Separable filters run the vertical pass first into a row buffer padded by the border, then the
// horizontal pass, one output row at a time, so the inner loops are contiguous and vectorise.
// U8 Gaussian and box use exact integer sums (OpenCV's bit-exact fixed point), so the only
// rounding is the final one. Median uses sorting networks held in vector registers across a
// row of pixels (k = 3, 5) and Huang's sliding histogram (k >= 7). Not morphology (morph.c).
#include "filter.h"

// Min/max selects on floats (median networks) vectorise only when GCC may evaluate both sides;
// no FP exception is ever unmasked here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

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
    int symmetric;             // k[i] == k[n-1-i] for both kernels (Gaussian, box): paired taps
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

// acc[j] += k0*s0[j] + k1*s1[j] + k2*s2[j] + k3*s3[j], added left to right: the same
// operations in the same order as four single-tap passes (bit-identical), with a quarter of
// the loads and stores of acc. Fewer than four taps (the last group) go one at a time.
static void acc4_f32(float *restrict acc, const float *restrict s0, const float *restrict s1,
                     const float *restrict s2, const float *restrict s3, const float *k, int64_t n) {
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3];
    for (int64_t j = 0; j < n; j++)
        acc[j] = (((acc[j] + k0 * s0[j]) + k1 * s1[j]) + k2 * s2[j]) + k3 * s3[j];
}

static void acc4_u8f(float *restrict acc, const uint8_t *restrict s0, const uint8_t *restrict s1,
                     const uint8_t *restrict s2, const uint8_t *restrict s3, const float *k, int64_t n) {
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3];
    for (int64_t j = 0; j < n; j++)
        acc[j] = (((acc[j] + k0 * (float)s0[j]) + k1 * (float)s1[j]) + k2 * (float)s2[j]) + k3 * (float)s3[j];
}

static void acc4_u32(uint32_t *restrict acc, const uint8_t *restrict s0, const uint8_t *restrict s1,
                     const uint8_t *restrict s2, const uint8_t *restrict s3, const uint32_t *k, int64_t n) {
    const uint32_t k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3];
    for (int64_t j = 0; j < n; j++)
        acc[j] += k0 * s0[j] + k1 * s1[j] + k2 * s2[j] + k3 * s3[j];
}

static void acc4_u32h(uint32_t *restrict acc, const uint32_t *restrict s0, const uint32_t *restrict s1,
                      const uint32_t *restrict s2, const uint32_t *restrict s3, const uint32_t *k, int64_t n) {
    const uint32_t k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3];
    for (int64_t j = 0; j < n; j++)
        acc[j] += k0 * s0[j] + k1 * s1[j] + k2 * s2[j] + k3 * s3[j];
}

static void sep_rows_float(sep_ctx *c, int64_t begin, int64_t end) {
    const int64_t H = c->d.h, W = c->d.w, C = c->d.c, n = W * C;
    const int nx = c->nx, ny = c->ny, ax = nx / 2, ay = ny / 2;
    float *acc = (float *)(c->scratch + (size_t)(begin / c->grain) * c->scratch_bytes);
    float *out = acc + (W + nx - 1) * C;
    const int u8 = c->src->dtype == HS_DTYPE_U8;
    for (int64_t y = begin; y < end; y++) {
        float *mid = acc + ax * C;
        memset(mid, 0, (size_t)n * sizeof *mid);
        for (int i = 0; i < ny;) {  // up to four source rows (those inside the image) per pass
            const void *rows[4];
            float k[4] = {0, 0, 0, 0};
            int m = 0;
            for (; i < ny && m < 4; i++) {
                int64_t sy = hs_geometry_border_index(y - ay + i, H, c->border);
                if (sy < 0)
                    continue;
                rows[m] = u8 ? (const void *)((const uint8_t *)c->src->data + sy * n)
                             : (const void *)((const float *)c->src->data + sy * n);
                k[m++] = c->ky[i];
            }
            if (m == 4 && u8)
                acc4_u8f(mid, rows[0], rows[1], rows[2], rows[3], k, n);
            else if (m == 4)
                acc4_f32(mid, rows[0], rows[1], rows[2], rows[3], k, n);
            for (int q = 0; q < m && m < 4; q++) {
                const float kq = k[q];
                if (u8) {
                    const uint8_t *sq = rows[q];
                    for (int64_t j = 0; j < n; j++)
                        mid[j] += kq * (float)sq[j];
                } else {
                    const float *sq = rows[q];
                    for (int64_t j = 0; j < n; j++)
                        mid[j] += kq * sq[j];
                }
            }
        }
        FILL_BORDER(float);
        memset(out, 0, (size_t)n * sizeof *out);
        int t = 0;
        for (; t + 4 <= nx; t += 4)
            acc4_f32(out, acc + t * C, acc + (t + 1) * C, acc + (t + 2) * C, acc + (t + 3) * C, c->kx + t, n);
        for (; t < nx; t++) {
            const float k = c->kx[t], *a = acc + t * C;
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
        for (int i = 0; i < ny;) {  // exact integer sums: grouping taps changes nothing
            const uint8_t *rows[4];
            uint32_t k[4] = {0, 0, 0, 0};
            int m = 0;
            for (; i < ny && m < 4; i++) {
                int64_t sy = hs_geometry_border_index(y - ay + i, H, c->border);
                if (sy < 0)
                    continue;
                rows[m] = (const uint8_t *)c->src->data + sy * n;
                k[m++] = c->iky[i];
            }
            for (int q = m; q < 4; q++)  // k = 0: exact integers, nothing changes
                rows[q] = rows[0];
            if (m > 0)
                acc4_u32(mid, rows[0], rows[1], rows[2], rows[3], k, n);
        }
        FILL_BORDER(uint32_t);
        memset(out, 0, (size_t)n * sizeof *out);
        for (int t = 0; t < nx; t += 4) {
            uint32_t k[4] = {0, 0, 0, 0};
            const uint32_t *a[4];
            for (int q = 0; q < 4; q++) {
                a[q] = acc + (t + q < nx ? t + q : t) * C;
                k[q] = t + q < nx ? c->ikx[t + q] : 0;
            }
            acc4_u32h(out, a[0], a[1], a[2], a[3], k, n);
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

// ---- symmetric kernels (Gaussian, box): taps i and n-1-i share a weight, so each pair of
// rows (vertically) or of shifted row copies (horizontally) is added first and multiplied once.

// The source rows of output row y: row i of the window, NULL outside a constant border.
static const void *window_row(const sep_ctx *c, int64_t y, int i, size_t es) {
    int64_t sy = hs_geometry_border_index(y - c->ny / 2 + i, c->d.h, c->border);
    return sy < 0 ? NULL : (const char *)c->src->data + (size_t)(sy * c->d.w * c->d.c) * es;
}

// U8 -> U8 with integer weights whose column sum times 255 fits 16 bits (Gaussian: 256,
// box: ny): the vertical pass runs in 16-bit lanes (exact: every partial sum is at most
// 255 * sum(ky)), the horizontal pass in 32-bit lanes; both exact, so identical to the
// tap-by-tap integer sums. (OpenCV's fixed point runs rows first; exact sums commute.)
static void sep_rows_u16(sep_ctx *c, int64_t begin, int64_t end) {
    const int64_t W = c->d.w, C = c->d.c, n = W * C;
    const int nx = c->nx, ny = c->ny, ax = nx / 2, ay = ny / 2;
    char *scr = c->scratch + (size_t)(begin / c->grain) * c->scratch_bytes;
    uint16_t *acc = (uint16_t *)scr;  // (W + nx - 1) * C, the padded vertical sums
    uint32_t *out = (uint32_t *)(scr + (((size_t)((W + nx - 1) * C) * 2 + 63) & ~(size_t)63));
    const uint8_t *zero = (const uint8_t *)(out + n);  // n zero bytes: a row outside a constant border
    for (int64_t y = begin; y < end; y++) {
        uint16_t *restrict mid = acc + ax * C;
        {
            const uint8_t *s = window_row(c, y, ay, 1);
            const uint8_t *restrict sc = s ? s : zero;
            const uint16_t k = (uint16_t)c->iky[ay];
            for (int64_t j = 0; j < n; j++)
                mid[j] = (uint16_t)(k * sc[j]);
        }
        for (int i = 0; i < ay; i++) {
            const uint8_t *a = window_row(c, y, i, 1), *b = window_row(c, y, ny - 1 - i, 1);
            const uint8_t *restrict sa = a ? a : zero, *restrict sb = b ? b : zero;
            const uint16_t k = (uint16_t)c->iky[i];
            for (int64_t j = 0; j < n; j++)
                mid[j] = (uint16_t)(mid[j] + k * (uint16_t)(sa[j] + sb[j]));
        }
        FILL_BORDER(uint16_t);
        {
            const uint16_t *restrict m = acc + ax * C;
            const uint32_t k = c->ikx[ax];
            for (int64_t j = 0; j < n; j++)
                out[j] = k * m[j];
        }
        int t = 0;
        for (; t + 1 < ax; t += 2) {  // two pairs per pass over out
            const uint16_t *restrict a0 = acc + t * C, *restrict b0 = acc + (nx - 1 - t) * C;
            const uint16_t *restrict a1 = acc + (t + 1) * C, *restrict b1 = acc + (nx - 2 - t) * C;
            const uint32_t k0 = c->ikx[t], k1 = c->ikx[t + 1];
            for (int64_t j = 0; j < n; j++)
                out[j] += k0 * ((uint32_t)a0[j] + b0[j]) + k1 * ((uint32_t)a1[j] + b1[j]);
        }
        for (; t < ax; t++) {
            const uint16_t *restrict a0 = acc + t * C, *restrict b0 = acc + (nx - 1 - t) * C;
            const uint32_t k0 = c->ikx[t];
            for (int64_t j = 0; j < n; j++)
                out[j] += k0 * ((uint32_t)a0[j] + b0[j]);
        }
        uint8_t *restrict o = (uint8_t *)c->dst->data + y * n;
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

// F32 -> F32: sums of paired taps, then one multiply, as OpenCV's symmetric row and column
// filters do; the horizontal pass writes the destination row directly.
static void sep_rows_f32_sym(sep_ctx *c, int64_t begin, int64_t end) {
    const int64_t W = c->d.w, C = c->d.c, n = W * C;
    const int nx = c->nx, ny = c->ny, ax = nx / 2, ay = ny / 2;
    float *acc = (float *)(c->scratch + (size_t)(begin / c->grain) * c->scratch_bytes);
    const float *zero = acc + (W + nx - 1) * C;  // n zeros after the padded row
    for (int64_t y = begin; y < end; y++) {
        float *restrict mid = acc + ax * C;
        {
            const float *s = window_row(c, y, ay, 4);
            const float *restrict sc = s ? s : zero;
            const float k = c->ky[ay];
            for (int64_t j = 0; j < n; j++)
                mid[j] = k * sc[j];
        }
        int i = 0;
        for (; i + 1 < ay; i += 2) {
            const float *a0 = window_row(c, y, i, 4), *b0 = window_row(c, y, ny - 1 - i, 4);
            const float *a1 = window_row(c, y, i + 1, 4), *b1 = window_row(c, y, ny - 2 - i, 4);
            const float *restrict sa0 = a0 ? a0 : zero, *restrict sb0 = b0 ? b0 : zero;
            const float *restrict sa1 = a1 ? a1 : zero, *restrict sb1 = b1 ? b1 : zero;
            const float k0 = c->ky[i], k1 = c->ky[i + 1];
            for (int64_t j = 0; j < n; j++)
                mid[j] += k0 * (sa0[j] + sb0[j]) + k1 * (sa1[j] + sb1[j]);
        }
        for (; i < ay; i++) {
            const float *a0 = window_row(c, y, i, 4), *b0 = window_row(c, y, ny - 1 - i, 4);
            const float *restrict sa0 = a0 ? a0 : zero, *restrict sb0 = b0 ? b0 : zero;
            const float k0 = c->ky[i];
            for (int64_t j = 0; j < n; j++)
                mid[j] += k0 * (sa0[j] + sb0[j]);
        }
        FILL_BORDER(float);
        float *restrict o = (float *)c->dst->data + y * n;
        {
            const float *restrict m = acc + ax * C;
            const float k = c->kx[ax];
            for (int64_t j = 0; j < n; j++)
                o[j] = k * m[j];
        }
        int t = 0;
        for (; t + 1 < ax; t += 2) {
            const float *restrict a0 = acc + t * C, *restrict b0 = acc + (nx - 1 - t) * C;
            const float *restrict a1 = acc + (t + 1) * C, *restrict b1 = acc + (nx - 2 - t) * C;
            const float k0 = c->kx[t], k1 = c->kx[t + 1];
            for (int64_t j = 0; j < n; j++)
                o[j] += k0 * (a0[j] + b0[j]) + k1 * (a1[j] + b1[j]);
        }
        for (; t < ax; t++) {
            const float *restrict a0 = acc + t * C, *restrict b0 = acc + (nx - 1 - t) * C;
            const float k0 = c->kx[t];
            for (int64_t j = 0; j < n; j++)
                o[j] += k0 * (a0[j] + b0[j]);
        }
    }
}

// Which row function: the paired-tap paths need odd symmetric kernels of equal length; the
// 16-bit one also needs 255 * sum(ky) < 2^16.
static int use_u16(const sep_ctx *c) {
    if (!c->integer || !c->symmetric || c->nx % 2 == 0 || c->ny % 2 == 0)
        return 0;
    uint64_t sum = 0;
    for (int i = 0; i < c->ny; i++)
        sum += c->iky[i];
    return sum * 255 <= 65535;
}

static int use_f32_sym(const sep_ctx *c) {
    return !c->integer && c->symmetric && c->nx % 2 == 1 && c->ny % 2 == 1 && c->src->dtype == HS_DTYPE_F32 &&
           c->dst->dtype == HS_DTYPE_F32;
}

static void sep_rows(void *ctx, int64_t begin, int64_t end) {
    sep_ctx *c = ctx;
    if (use_u16(c))
        sep_rows_u16(c, begin, end);
    else if (c->integer)
        sep_rows_int(c, begin, end);
    else if (use_f32_sym(c))
        sep_rows_f32_sym(c, begin, end);
    else
        sep_rows_float(c, begin, end);
}

// Run the engine on validated, contiguous tensors.
static hs_status sep_run(sep_ctx *c, const char *op) {
    const int64_t W = c->d.w, C = c->d.c;
    c->grain = row_grain(c->d.h);
    int64_t nchunks = (c->d.h + c->grain - 1) / c->grain;
    // padded row + output row (4-byte elements), plus 64 bytes of alignment and one row of
    // zeros (W*C elements) for the paired-tap paths
    c->scratch_bytes = (size_t)((W + c->nx - 1) * C + 2 * W * C) * 4 + 64;
    c->scratch_bytes = (c->scratch_bytes + 63) & ~(size_t)63;
    c->scratch = hs_calloc((size_t)nchunks, c->scratch_bytes);  // zeroed: the zero rows
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
        c.symmetric = 1;  // gaussian_kernel_f64 and the error diffusion above are mirror-symmetric
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
                 .nx = ksize, .ny = ksize, .integer = in->dtype == HS_DTYPE_U8, .symmetric = 1,
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


typedef struct {
    const hs_tensor *src;
    hs_tensor *dst;
    hs_image_dims d;
    int k, r;
    const void *pad;          // (H+2r, W+2r, C) replicate-padded copy of src
    char *scratch;
    size_t scratch_bytes;
    int64_t grain;
} med_ctx;

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
        T a0 = r0[j], a1 = r0[j + C], a2 = r0[j + 2 * C], a3 = r1[j];           \
        T a4 = r1[j + C], a5 = r1[j + 2 * C], a6 = r2[j], a7 = r2[j + C];       \
        T a8 = r2[j + 2 * C], lo_, hi_;                                            \
        CS(a1, a2); CS(a4, a5); CS(a7, a8); CS(a0, a1);                               \
        CS(a3, a4); CS(a6, a7); CS(a1, a2); CS(a4, a5);                               \
        CS(a7, a8); CS(a0, a3); CS(a5, a8); CS(a4, a7);                               \
        CS(a3, a6); CS(a1, a4); CS(a2, a5); CS(a4, a7);                               \
        CS(a4, a2); CS(a6, a4); CS(a4, a2);                                           \
        (void)lo_;                                                                   \
        o[j] = a4;                                                                   \
    }

// 5x5 median: Batcher's odd-even merge sort on 32 wires, pruned to the 25 real ones and then to
// the comparators the middle wire (12) depends on (113), written out so that the 25 values of a
// pixel live in vector registers across a loop over pixels (no scratch traffic per comparator;
// unused min/max halves are dropped by the compiler). Checked against hs_filter_median_ref.
#define MED25(T)                                                                              \
    for (int64_t j = 0; j < n; j++) {                                                        \
        T a0 = r0[j], a1 = r0[j + C], a2 = r0[j + 2 * C], a3 = r0[j + 3 * C];          \
        T a4 = r0[j + 4 * C], a5 = r1[j], a6 = r1[j + C], a7 = r1[j + 2 * C];          \
        T a8 = r1[j + 3 * C], a9 = r1[j + 4 * C], a10 = r2[j], a11 = r2[j + C];        \
        T a12 = r2[j + 2 * C], a13 = r2[j + 3 * C], a14 = r2[j + 4 * C], a15 = r3[j];  \
        T a16 = r3[j + C], a17 = r3[j + 2 * C], a18 = r3[j + 3 * C];                    \
        T a19 = r3[j + 4 * C], a20 = r4[j], a21 = r4[j + C], a22 = r4[j + 2 * C];      \
        T a23 = r4[j + 3 * C], a24 = r4[j + 4 * C], lo_, hi_;                             \
        CS(a0, a1); CS(a2, a3); CS(a4, a5); CS(a6, a7); CS(a8, a9); CS(a10, a11); CS(a12, a13); CS(a14, a15); \
        CS(a16, a17); CS(a18, a19); CS(a20, a21); CS(a22, a23); CS(a0, a2); CS(a1, a3); CS(a4, a6); CS(a5, a7); \
        CS(a8, a10); CS(a9, a11); CS(a12, a14); CS(a13, a15); CS(a16, a18); CS(a17, a19); CS(a20, a22); CS(a21, a23); \
        CS(a1, a2); CS(a5, a6); CS(a9, a10); CS(a13, a14); CS(a17, a18); CS(a21, a22); CS(a0, a4); CS(a1, a5); \
        CS(a2, a6); CS(a3, a7); CS(a8, a12); CS(a9, a13); CS(a10, a14); CS(a11, a15); CS(a16, a20); CS(a17, a21); \
        CS(a18, a22); CS(a19, a23); CS(a2, a4); CS(a3, a5); CS(a10, a12); CS(a11, a13); CS(a18, a20); CS(a19, a21); \
        CS(a1, a2); CS(a3, a4); CS(a5, a6); CS(a9, a10); CS(a11, a12); CS(a13, a14); CS(a17, a18); CS(a19, a20); \
        CS(a21, a22); CS(a0, a8); CS(a1, a9); CS(a2, a10); CS(a3, a11); CS(a4, a12); CS(a5, a13); CS(a6, a14); \
        CS(a7, a15); CS(a16, a24); CS(a4, a8); CS(a5, a9); CS(a6, a10); CS(a7, a11); CS(a20, a24); CS(a2, a4); \
        CS(a3, a5); CS(a6, a8); CS(a7, a9); CS(a10, a12); CS(a11, a13); CS(a18, a20); CS(a19, a21); CS(a22, a24); \
        CS(a1, a2); CS(a3, a4); CS(a5, a6); CS(a7, a8); CS(a9, a10); CS(a11, a12); CS(a13, a14); CS(a17, a18); \
        CS(a19, a20); CS(a21, a22); CS(a23, a24); CS(a0, a16); CS(a1, a17); CS(a2, a18); CS(a3, a19); CS(a4, a20); \
        CS(a5, a21); CS(a6, a22); CS(a7, a23); CS(a8, a24); CS(a8, a16); CS(a9, a17); CS(a10, a18); CS(a11, a19); \
        CS(a12, a20); CS(a13, a21); CS(a6, a10); CS(a7, a11); CS(a12, a16); CS(a13, a17); CS(a10, a12); CS(a11, a13); \
        CS(a11, a12); \
        (void)lo_;                                                                           \
        o[j] = a12;                                                                          \
    }

// One output row: o[j] = median of the 5x5 window whose top-left sample is r0[j] (rows r0..r4 of
// the padded image, C interleaved channels). restrict parameters: no alias checks, so it vectorises.
static void med25_u8(uint8_t *restrict o, const uint8_t *restrict r0, const uint8_t *restrict r1,
                     const uint8_t *restrict r2, const uint8_t *restrict r3, const uint8_t *restrict r4, int64_t n,
                     int64_t C) {
    MED25(uint8_t)
}

static void med25_f32(float *restrict o, const float *restrict r0, const float *restrict r1,
                      const float *restrict r2, const float *restrict r3, const float *restrict r4, int64_t n,
                      int64_t C) {
    MED25(float)
}

static void median5_rows(void *ctx, int64_t begin, int64_t end) {
    med_ctx *m = ctx;
    const int64_t W = m->d.w, C = m->d.c, n = W * C, pw = (W + 4) * C;
    for (int64_t y = begin; y < end; y++) {
        if (m->src->dtype == HS_DTYPE_U8) {
            const uint8_t *r0 = (const uint8_t *)m->pad + y * pw;
            med25_u8((uint8_t *)m->dst->data + y * n, r0, r0 + pw, r0 + 2 * pw, r0 + 3 * pw, r0 + 4 * pw, n, C);
        } else {
            const float *r0 = (const float *)m->pad + y * pw;
            med25_f32((float *)m->dst->data + y * n, r0, r0 + pw, r0 + 2 * pw, r0 + 3 * pw, r0 + 4 * pw, n, C);
        }
    }
}

static void median3_rows(void *ctx, int64_t begin, int64_t end) {
    med_ctx *m = ctx;
    const int64_t W = m->d.w, C = m->d.c, n = W * C, pw = (W + 2) * C;
    for (int64_t y = begin; y < end; y++) {
        if (m->src->dtype == HS_DTYPE_U8) {
            const uint8_t *P = m->pad;
            const uint8_t *restrict r0 = P + y * pw, *restrict r1 = r0 + pw, *restrict r2 = r1 + pw;
            uint8_t *o = (uint8_t *)m->dst->data + y * n;
            MED9(uint8_t)
        } else {
            const float *P = m->pad;
            const float *restrict r0 = P + y * pw, *restrict r1 = r0 + pw, *restrict r2 = r1 + pw;
            float *o = (float *)m->dst->data + y * n;
            MED9(float)
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
    if (ksize <= 5) {
        m.scratch_bytes = 0;  // register networks
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
    hs_range_fn fn = ksize == 3 ? median3_rows : ksize == 5 ? median5_rows
                     : in->dtype == HS_DTYPE_U8 ? median_hist_rows : median_sort_rows;
    hs_parallel_for(d.h, m.grain, fn, &m);
    hs_free(mem);
    hs_tensor_free(tmp);
    return HS_OK;
}

// Plain-loop reference: gather the k x k window (replicated border) and insertion-sort it.
hs_status hs_filter_median_ref(hs_tensor *dst, const hs_tensor *src, int ksize) {
    if (ksize < 3 || ksize % 2 == 0 || ksize > 255)
        return HS_FAIL(HS_ERR_ARG, "median: ksize must be odd >= 3, got %d", ksize);
    hs_image_dims d;
    HS_TRY(hs_geometry_dims(&d, src, "median"));
    HS_TRY(hs_geometry_check_dst(dst, "median", src->dtype, &d));
    const int r = ksize / 2, kk = ksize * ksize;
    float *v = hs_alloc((size_t)kk * sizeof *v);
    if (!v)
        return HS_FAIL(HS_ERR_NOMEM, "median: out of memory");
    const int64_t sc = d.ndim == 3 ? src->stride[2] : 0;
    for (int64_t y = 0; y < d.h; y++)
        for (int64_t x = 0; x < d.w; x++)
            for (int64_t c = 0; c < d.c; c++) {
                int n = 0;
                for (int dy = -r; dy <= r; dy++)
                    for (int dx = -r; dx <= r; dx++) {
                        int64_t yy = hs_geometry_border_index(y + dy, d.h, HS_BORDER_REPLICATE);
                        int64_t xx = hs_geometry_border_index(x + dx, d.w, HS_BORDER_REPLICATE);
                        int64_t off = yy * src->stride[0] + xx * src->stride[1] + c * sc;
                        float a = src->dtype == HS_DTYPE_U8 ? (float)((const uint8_t *)src->data)[off]
                                                            : ((const float *)src->data)[off];
                        int i = n++;
                        for (; i > 0 && v[i - 1] > a; i--)
                            v[i] = v[i - 1];
                        v[i] = a;
                    }
                int64_t o = (y * d.w + x) * d.c + c;
                if (dst->dtype == HS_DTYPE_U8)
                    ((uint8_t *)dst->data)[o] = (uint8_t)v[kk / 2];
                else
                    ((float *)dst->data)[o] = v[kk / 2];
            }
    hs_free(v);
    return HS_OK;
}
