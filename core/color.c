// core/color.c: colour-space conversions (see color.h for conventions). Dimension letters:
// H rows, W columns, C channels. Float conversions run through one block driver
// (hs_color_map_pixels): pixels are loaded 256 at a time into a stack buffer as floats (U8 via a
// 256-entry table, so per-channel transfer functions such as sRGB linearisation cost a lookup),
// mapped by a small kernel, and stored with the output's strides. The kernels are written as
// branch-free loops over restrict pointers so that -O3 vectorises them; transcendental steps
// (sRGB gamma, cube root, log) use bit tricks plus polynomials or Newton steps instead of libm
// calls, accurate to a few float ulp (cube root: double precision).
#include "color.h"

// The kernels compute both sides of their selects; without this, GCC keeps the branches (an FP
// exception could become visible, though no traps are ever enabled) and does not vectorise.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#ifdef __AVX512F__
#pragma GCC target("prefer-vector-width=512")  // the double-precision Lab loop gains ~2x from zmm
#endif
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "parallel.h"

#define BLOCK 256            // pixels per stack block
#define PIXELS_PER_TASK 65536

hs_status hs_color_check_image(const hs_tensor *img, int channels, const char *op) {
    char sh[96];
    int ok = img->ndim == 3 && (channels == 0 ? img->shape[2] >= 1 : img->shape[2] == channels);
    if (channels == 1 && img->ndim == 2)
        ok = 1;
    if (!ok) {
        if (channels == 0)
            return HS_FAIL(HS_ERR_SHAPE, "%s: expected (H,W,C) image, got %s", op, hs_tensor_shape_str(img, sh, sizeof sh));
        if (channels == 1)
            return HS_FAIL(HS_ERR_SHAPE, "%s: expected (H,W) or (H,W,1) image, got %s", op,
                           hs_tensor_shape_str(img, sh, sizeof sh));
        return HS_FAIL(HS_ERR_SHAPE, "%s: expected (H,W,%d) image, got %s", op, channels,
                       hs_tensor_shape_str(img, sh, sizeof sh));
    }
    return HS_OK;
}

// out must be (H,W,C) (or (H,W) when C == 1 and allow_2d) of dtype dt, matching in's H and W.
static hs_status check_out(const hs_tensor *out, const hs_tensor *in, int c, hs_dtype dt, const char *op) {
    char a[96], b[96];
    int ok = out->ndim >= 2 && out->shape[0] == in->shape[0] && out->shape[1] == in->shape[1] &&
             ((out->ndim == 3 && out->shape[2] == c) || (out->ndim == 2 && c == 1));
    if (!ok)
        return HS_FAIL(HS_ERR_SHAPE, "%s: out is %s, want [%lld,%lld,%d] for input %s", op,
                       hs_tensor_shape_str(out, a, sizeof a), (long long)in->shape[0], (long long)in->shape[1], c,
                       hs_tensor_shape_str(in, b, sizeof b));
    if (out->dtype != dt)
        return HS_FAIL(HS_ERR_DTYPE, "%s: out must be %s, got %s", op, hs_dtype_name(dt), hs_dtype_name(out->dtype));
    return HS_OK;
}

static int64_t rows_per_task(int64_t w) { return w >= PIXELS_PER_TASK ? 1 : PIXELS_PER_TASK / (w > 0 ? w : 1); }

// ---- the 3-channel block driver ----

typedef struct {
    hs_tensor *out;
    const hs_tensor *in;
    const hs_color_map *m;
    float lut[256];
} map_job;

static void load_raw(float *dst, const map_job *j, int64_t y, int64_t x0, int64_t n);

static void load_block(float *dst, const map_job *j, int64_t y, int64_t x0, int64_t n) {
    load_raw(dst, j, y, x0, n);
    if (j->in->dtype != HS_DTYPE_U8 && j->m->pre)
        j->m->pre(dst, 3 * n);
}

// Pixels x0..x0+n-1 of row y as 3n floats: U8 through the table (pre included), others scaled.
static void load_raw(float *dst, const map_job *j, int64_t y, int64_t x0, int64_t n) {
    const hs_tensor *in = j->in;
    int64_t s1 = in->stride[1], s2 = in->stride[2], off = y * in->stride[0] + x0 * s1;
    switch (in->dtype) {
    case HS_DTYPE_U8: {
        const uint8_t *p = (const uint8_t *)in->data + off;
        if (s1 == 3 && s2 == 1 && !j->m->lut_u8) {  // v / 255 rounds exactly as the table (checked)
            for (int64_t i = 0; i < 3 * n; i++)
                dst[i] = (float)p[i] / 255.0f;
            return;
        }
        if (s1 == 3 && s2 == 1) {  // packed RGB: one flat table lookup per byte
            for (int64_t i = 0; i < 3 * n; i++)
                dst[i] = j->lut[p[i]];
            return;
        }
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                dst[3 * i + c] = j->lut[p[i * s1 + c * s2]];
        return;
    }
    case HS_DTYPE_U16: {
        const uint16_t *p = (const uint16_t *)in->data + off;
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                dst[3 * i + c] = (float)(p[i * s1 + c * s2] / 65535.0);
        return;
    }
    case HS_DTYPE_F64: {
        const double *p = (const double *)in->data + off;
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                dst[3 * i + c] = (float)p[i * s1 + c * s2];
        return;
    }
    default: {  // F32 (other dtypes rejected before)
        const float *p = (const float *)in->data + off;
        if (s1 == 3 && s2 == 1) {
            memcpy(dst, p, (size_t)n * 3 * sizeof(float));
            return;
        }
        for (int64_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                dst[3 * i + c] = p[i * s1 + c * s2];
        return;
    }
    }
}

// Whether the element ranges of a and b (any strides, non-negative) share any byte.
static int overlaps(const hs_tensor *a, const hs_tensor *b) {
    const char *a0 = a->data, *b0 = b->data;
    size_t an = hs_dtype_size(a->dtype), bn = hs_dtype_size(b->dtype);
    for (int i = 0; i < a->ndim; i++)
        an += (size_t)((a->shape[i] - 1) * a->stride[i]) * hs_dtype_size(a->dtype);
    for (int i = 0; i < b->ndim; i++)
        bn += (size_t)((b->shape[i] - 1) * b->stride[i]) * hs_dtype_size(b->dtype);
    return a0 < b0 + bn && b0 < a0 + an;
}

// The kernel reads packed F32 rows straight from the input (when no `pre` has to rewrite them)
// and writes packed output rows straight to the output, unless the two overlap (in place):
// copying a block through the stack costs as much as the kernel's arithmetic.
static void map_rows(void *ctx, int64_t y0, int64_t y1) {
    const map_job *j = ctx;
    float src[3 * BLOCK], dst[3 * BLOCK];
    hs_tensor *out = j->out;
    const hs_tensor *in = j->in;
    int64_t w = in->shape[1], o1 = out->stride[1], o2 = out->stride[2];
    int alias = overlaps(out, in);
    int direct_in = !alias && !j->m->pre && in->dtype == HS_DTYPE_F32 && in->stride[1] == 3 && in->stride[2] == 1;
    int direct_out = !alias && o1 == 3 && o2 == 1;
    for (int64_t y = y0; y < y1; y++) {
        for (int64_t x0 = 0; x0 < w; x0 += BLOCK) {
            int64_t n = w - x0 < BLOCK ? w - x0 : BLOCK;
            const float *s = src;
            if (direct_in)
                s = (const float *)in->data + y * in->stride[0] + x0 * 3;
            else
                load_block(src, j, y, x0, n);
            float *q = (float *)out->data + y * out->stride[0] + x0 * o1;
            j->m->fn(direct_out ? q : dst, s, n, j->m->aux);
            if (direct_out)
                continue;
            for (int64_t i = 0; i < n; i++)
                for (int c = 0; c < 3; c++)
                    q[i * o1 + c * o2] = dst[3 * i + c];
        }
    }
}

hs_status hs_color_map_pixels(hs_tensor *out, const hs_tensor *in, const hs_color_map *m) {
    HS_TRY(hs_color_check_image(in, 3, m->op));
    if (in->dtype != HS_DTYPE_U8 && in->dtype != HS_DTYPE_U16 && in->dtype != HS_DTYPE_F32 &&
        in->dtype != HS_DTYPE_F64)
        return HS_FAIL(HS_ERR_DTYPE, "%s: expected a U8, U16, F32 or F64 image, got %s", m->op,
                       hs_dtype_name(in->dtype));
    HS_TRY(check_out(out, in, 3, HS_DTYPE_F32, m->op));
    if (out->ndim != 3)
        return HS_FAIL(HS_ERR_SHAPE, "%s: out must be (H,W,3)", m->op);
    map_job j = {out, in, m, {0}};
    for (int v = 0; v < 256; v++)
        j.lut[v] = m->lut_u8 ? m->lut_u8[v] : (float)(v / 255.0);
    hs_parallel_for(in->shape[0], rows_per_task(in->shape[1]), map_rows, &j);
    return HS_OK;
}

// ---- gray ----

typedef struct {
    hs_tensor *out;
    const hs_tensor *in;
} gray_job;

static void gray_rows(void *ctx, int64_t y0, int64_t y1) {
    const gray_job *j = ctx;
    const hs_tensor *in = j->in;
    int64_t w = in->shape[1], s1 = in->stride[1], s2 = in->stride[2], o1 = j->out->stride[1];
    int packed = s1 == 3 && s2 == 1 && o1 == 1;
    for (int64_t y = y0; y < y1; y++) {
        if (in->dtype == HS_DTYPE_U8 && packed) {  // the same formula on packed rows (vectorises)
            const uint8_t *restrict p = (const uint8_t *)in->data + y * in->stride[0];
            uint8_t *restrict q = (uint8_t *)j->out->data + y * j->out->stride[0];
            for (int64_t x = 0; x < w; x++)
                q[x] = (uint8_t)((p[3 * x] * 9798u + p[3 * x + 1] * 19235u + p[3 * x + 2] * 3735u + (1u << 14)) >> 15);
        } else if (in->dtype == HS_DTYPE_U8) {
            // OpenCV's RGB2Gray<uchar>: weights scaled by 2^15 (9798 + 19235 + 3735 = 32768).
            const uint8_t *p = (const uint8_t *)in->data + y * in->stride[0];
            uint8_t *q = (uint8_t *)j->out->data + y * j->out->stride[0];
            for (int64_t x = 0; x < w; x++) {
                const uint8_t *px = p + x * s1;
                q[x * o1] = (uint8_t)((px[0] * 9798u + px[s2] * 19235u + px[2 * s2] * 3735u + (1u << 14)) >> 15);
            }
        } else if (packed) {
            const float *restrict p = (const float *)in->data + y * in->stride[0];
            float *restrict q = (float *)j->out->data + y * j->out->stride[0];
            for (int64_t x = 0; x < w; x++)
                q[x] = 0.299f * p[3 * x] + 0.587f * p[3 * x + 1] + 0.114f * p[3 * x + 2];
        } else {
            const float *p = (const float *)in->data + y * in->stride[0];
            float *q = (float *)j->out->data + y * j->out->stride[0];
            for (int64_t x = 0; x < w; x++) {
                const float *px = p + x * s1;
                q[x * o1] = 0.299f * px[0] + 0.587f * px[s2] + 0.114f * px[2 * s2];
            }
        }
    }
}

hs_status hs_color_rgb2gray(hs_tensor *out, const hs_tensor *rgb) {
    HS_TRY(hs_color_check_image(rgb, 3, "rgb2gray"));
    if (rgb->dtype != HS_DTYPE_U8 && rgb->dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_DTYPE, "rgb2gray: expected a U8 or F32 image, got %s", hs_dtype_name(rgb->dtype));
    HS_TRY(check_out(out, rgb, 1, rgb->dtype, "rgb2gray"));
    gray_job j = {out, rgb};
    hs_parallel_for(rgb->shape[0], rows_per_task(rgb->shape[1]), gray_rows, &j);
    return HS_OK;
}

hs_status hs_color_gray2rgb(hs_tensor *out, const hs_tensor *gray) {
    HS_TRY(hs_color_check_image(gray, 1, "gray2rgb"));
    HS_TRY(check_out(out, gray, 3, gray->dtype, "gray2rgb"));
    if (out->ndim != 3)
        return HS_FAIL(HS_ERR_SHAPE, "gray2rgb: out must be (H,W,3)");
    size_t es = hs_dtype_size(gray->dtype);
    for (int64_t y = 0; y < gray->shape[0]; y++)
        for (int64_t x = 0; x < gray->shape[1]; x++) {
            const char *p = (const char *)gray->data + es * (size_t)(y * gray->stride[0] + x * gray->stride[1]);
            char *q = (char *)out->data + es * (size_t)(y * out->stride[0] + x * out->stride[1]);
            for (int c = 0; c < 3; c++)
                memcpy(q + es * (size_t)(c * out->stride[2]), p, es);
        }
    return HS_OK;
}

// ---- HSV ----

// Stores d[3i+c] from three planes: GCC turns this loop into vector permutes, whereas the
// interleaved stores of a kernel with selects come out as one scalar store per element.
static inline void interleave3(float *restrict d, const float *restrict a, const float *restrict b,
                               const float *restrict c, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        d[3 * i] = a[i];
        d[3 * i + 1] = b[i];
        d[3 * i + 2] = c[i];
    }
}

// Branch-free (all cases computed, then selected) so that it vectorises; the arithmetic of each
// case is unchanged, so results are bit-identical to the branchy form. H, S, V go to planes
// first, then interleave3 (n <= BLOCK).
static void k_rgb2hsv(float *restrict d, const float *restrict s, int64_t n, const void *aux) {
    (void)aux;
    float ph[BLOCK], ps[BLOCK], pv[BLOCK];
    for (int64_t i = 0; i < n; i++) {
        float r = s[3 * i], g = s[3 * i + 1], b = s[3 * i + 2];
        float mx = r > g ? r : g, mn = r < g ? r : g;
        float v = mx > b ? mx : b, lo = mn < b ? mn : b, delta = v - lo;
        // skimage assigns red, then green, then blue: the last maximum wins.
        float num = b == v ? r - g : g == v ? b - r : g - b;
        float off = b == v ? 4.0f : g == v ? 2.0f : 0.0f;
        float dd = delta != 0 ? delta : 1.0f, vv = v != 0 ? v : 1.0f;
        float h = (off + num / dd) / 6.0f;
        h -= floorf(h);  // Python's % 1.
        ph[i] = delta != 0 ? h : 0.0f;
        ps[i] = delta != 0 ? delta / vv : 0.0f;
        pv[i] = v;
    }
    interleave3(d, ph, ps, pv, n);
}

static void k_hsv2rgb(float *d, const float *s, int64_t n, const void *aux) {
    (void)aux;
    for (int64_t i = 0; i < n; i++) {
        float h = s[3 * i], sat = s[3 * i + 1], v = s[3 * i + 2];
        float hi = floorf(h * 6.0f), f = h * 6.0f - hi;
        float p = v * (1 - sat), q = v * (1 - f * sat), t = v * (1 - (1 - f) * sat), r, g, b;
        int k = ((int)fmodf(hi, 6.0f) + 6) % 6;
        switch (k) {
        case 0: r = v, g = t, b = p; break;
        case 1: r = q, g = v, b = p; break;
        case 2: r = p, g = v, b = t; break;
        case 3: r = p, g = q, b = v; break;
        case 4: r = t, g = p, b = v; break;
        default: r = v, g = p, b = q; break;
        }
        d[3 * i] = r;
        d[3 * i + 1] = g;
        d[3 * i + 2] = b;
    }
}

hs_status hs_color_rgb2hsv(hs_tensor *out, const hs_tensor *rgb) {
    hs_color_map m = {"rgb2hsv", NULL, NULL, k_rgb2hsv, NULL};
    return hs_color_map_pixels(out, rgb, &m);
}

hs_status hs_color_hsv2rgb(hs_tensor *out, const hs_tensor *hsv) {
    hs_color_map m = {"hsv2rgb", NULL, NULL, k_hsv2rgb, NULL};
    return hs_color_map_pixels(out, hsv, &m);
}

// ---- CIE Lab (sRGB, D65, 2 degree) ----

static const double xyz_from_rgb[3][3] = {
    {0.412453, 0.357580, 0.180423}, {0.212671, 0.715160, 0.072169}, {0.019334, 0.119193, 0.950227}};
static const double white_d65[3] = {0.95047, 1.0, 1.08883};

// ---- vectorisable elementary functions (inlined into the block loops) ----

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

// Natural log of a positive normal float: x = 2^e * m with m in [sqrt(1/2), sqrt(2)), then
// log(m) = t - t^2/2 + t^3 P(t), t = m - 1, with Cephes logf's polynomial (relative error
// ~1e-7) and ln 2 split in two for the exponent term; no division, so it vectorises. P is
// evaluated in fused multiply-adds (fmaf: one instruction with -march=native; -std=c11 turns
// off GCC's own contraction), which cut rgb2hed/rgb2lab time by a fifth. +inf -> +inf. Within
// 2 ulp of logf (tests check it).
static inline float fast_logf(float x) {
    uint32_t i = f2u(x);
    int32_t e = (int32_t)(i >> 23) - 127;
    float m = u2f((i & 0x007FFFFFu) | 0x3F800000u);  // [1, 2)
    int big = m > 1.41421356f;
    m = big ? 0.5f * m : m;
    e += big;
    float t = m - 1.0f, z = t * t, fe = (float)e;
    // Horner in fused multiply-adds (one rounding per step, half the latency of mul + add);
    // Estrin's split (two chains on t^2) shortens the dependency chain further.
    float p01 = fmaf(7.0376836292e-2f, t, -1.1514610310e-1f), p23 = fmaf(1.1676998740e-1f, t, -1.2420140846e-1f);
    float p45 = fmaf(1.4249322787e-1f, t, -1.6668057665e-1f), p67 = fmaf(2.0000714765e-1f, t, -2.4999993993e-1f);
    float z2 = z * z;
    float hi = fmaf(fmaf(p01, z, p23), z2, fmaf(p45, z, p67));
    float p = fmaf(hi, t, 3.3333331174e-1f);
    float y = fmaf(t * z, p, fmaf(-2.12194440e-4f, fe, -0.5f * z));
    float r = (t + y) + 0.693359375f * fe;
    return i >= 0x7F800000u ? x : r;
}

// e^y for |y| < 87: y = k ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^8.
static inline float fast_expf(float y) {
    float k = nearbyintf(y * 1.44269504088896f);
    float r = (y - k * 0.693145751953125f) - k * 1.42860682030941723212e-6f;  // Cody-Waite ln2
    float p = 1.0f / 40320;  // Horner in fused multiply-adds (one rounding per step)
    p = fmaf(p, r, 1.0f / 5040);
    p = fmaf(p, r, 1.0f / 720);
    p = fmaf(p, r, 1.0f / 120);
    p = fmaf(p, r, 1.0f / 24);
    p = fmaf(p, r, 1.0f / 6);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t ki = (int32_t)k;
    ki = ki < -126 ? -126 : ki > 127 ? 127 : ki;
    return p * u2f((uint32_t)(ki + 127) << 23);
}

void hs_color_log_block(float *v, int64_t n, float lo, float scale) {
    for (int64_t i = 0; i < n; i++) {
        float x = v[i] > lo ? v[i] : lo;  // NaN -> lo, as fmaxf
        v[i] = fast_logf(x) * scale;
    }
}

// sRGB gamma expansion of float input in place: ((v + 0.055) / 1.055)^2.4 above 0.04045.
static void srgb_to_linear_block(float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        // reciprocal constants instead of divisions (within an ulp; divisions would not pipeline)
        float x = v[i], u = (x + 0.055f) * (float)(1.0 / 1.055);
        float h = fast_expf(1.2f * fast_logf(u > 0.04f ? u : 0.04f));  // u^1.2, squared: no overflow
        v[i] = x > 0.04045f ? (u < 1e30f ? h * h : INFINITY) : x * (float)(1.0 / 12.92);  // before the square
    }
}

// Cube root of t > 0 in double: a first guess of t^(-1/3) from the float bits (the inverse
// cube-root magic constant, ~5%), division-free Newton steps x <- x (4 - t x^3) / 3 (quadratic:
// three in float reach ~1e-7, one in double ~1e-14), then cbrt(t) = t x^2. Vectorises.
static inline double fast_cbrt(double t) {
    float tf = (float)t;
    tf = tf > 1e-30f ? tf : 1e-30f;
    float xf = u2f(0x54A2FA8Cu - f2u(tf) / 3u);
    for (int k = 0; k < 3; k++)
        xf = xf * fmaf(-tf * xf * xf, xf, 4.0f) * (1.0f / 3.0f);
    double x = (double)xf;
    x = x * fma(-t * x * x, x, 4.0) * (1.0 / 3.0);
    return t * x * x;
}

static inline double lab_f(double t) {
    double c = fast_cbrt(t > 0.008856 ? t : 1.0);
    return t > 0.008856 ? c : 7.787 * t + 16.0 / 116.0;
}

typedef struct {
    float m[3][3];
} mat3f;

typedef struct {
    double m[3][3];
} mat3d;

// In double: a and b are differences of cube roots scaled by 500 and 200, where float rounding
// alone would cost ~5e-5 against skimage's float64 result.
// Three simple loops over a block (n <= BLOCK): XYZ/white by the matrix, f() over all 3n
// values as one flat array (the expensive part, a clean vector loop), then L, a, b.
static void k_rgb2lab(float *restrict d, const float *restrict s, int64_t n, const void *aux) {
    const mat3d a = *(const mat3d *)aux;  // xyz_from_rgb, rows divided by the white point (local: no aliasing)
    double t[3 * BLOCK];
    for (int64_t i = 0; i < n; i++) {
        double r = s[3 * i], g = s[3 * i + 1], b = s[3 * i + 2];
        t[i] = a.m[0][0] * r + a.m[0][1] * g + a.m[0][2] * b;
        t[BLOCK + i] = a.m[1][0] * r + a.m[1][1] * g + a.m[1][2] * b;
        t[2 * BLOCK + i] = a.m[2][0] * r + a.m[2][1] * g + a.m[2][2] * b;
    }
    for (int c = 0; c < 3; c++)
        for (int64_t i = c * BLOCK; i < c * BLOCK + n; i++)
            t[i] = lab_f(t[i]);
    for (int64_t i = 0; i < n; i++) {
        double fx = t[i], fy = t[BLOCK + i], fz = t[2 * BLOCK + i];
        d[3 * i] = (float)(116.0 * fy - 16.0);
        d[3 * i + 1] = (float)(500.0 * (fx - fy));
        d[3 * i + 2] = (float)(200.0 * (fy - fz));
    }
}

static float lab_finv(float t) { return t > 0.2068966f ? t * t * t : (t - 16.0f / 116.0f) / 7.787f; }

static float linear_to_srgb(float v) {
    v = v > 0.0031308f ? 1.055f * powf(v, 1.0f / 2.4f) - 0.055f : v * 12.92f;
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static void k_lab2rgb(float *d, const float *s, int64_t n, const void *aux) {
    const mat3f *a = aux;  // rgb_from_xyz with columns multiplied by the white point
    for (int64_t i = 0; i < n; i++) {
        float y = (s[3 * i] + 16.0f) / 116.0f, x = s[3 * i + 1] / 500.0f + y, z = y - s[3 * i + 2] / 200.0f;
        if (z < 0)
            z = 0;
        x = lab_finv(x), y = lab_finv(y), z = lab_finv(z);
        for (int c = 0; c < 3; c++)
            d[3 * i + c] = linear_to_srgb(a->m[c][0] * x + a->m[c][1] * y + a->m[c][2] * z);
    }
}

static void inverse3(double inv[3][3], const double m[3][3]) {
    double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            // cofactor of m[j][i]
            int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            inv[i][j] = (m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]) / det;
        }
}

hs_status hs_color_rgb2lab(hs_tensor *out, const hs_tensor *rgb) {
    mat3d a;
    float lut[256];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            a.m[i][j] = xyz_from_rgb[i][j] / white_d65[i];
    for (int v = 0; v < 256; v++) {
        double x = v / 255.0;
        lut[v] = (float)(x > 0.04045 ? pow((x + 0.055) / 1.055, 2.4) : x / 12.92);
    }
    hs_color_map m = {"rgb2lab", lut, srgb_to_linear_block, k_rgb2lab, &a};
    return hs_color_map_pixels(out, rgb, &m);
}

hs_status hs_color_lab2rgb(hs_tensor *out, const hs_tensor *lab) {
    double inv[3][3];
    inverse3(inv, xyz_from_rgb);
    mat3f a;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            a.m[i][j] = (float)(inv[i][j] * white_d65[j]);
    hs_color_map m = {"lab2rgb", NULL, NULL, k_lab2rgb, &a};
    return hs_color_map_pixels(out, lab, &m);
}

// ---- dtype / layout conversion ----

typedef struct {
    hs_tensor out;           // viewed with in's logical shape
    const hs_tensor *in;
    double scale;
    int64_t inner;           // elements in the last two dims
} conv_job;

static void load_row(double *dst, const hs_tensor *t, int64_t off, int64_t s, int64_t n) {
    switch (t->dtype) {
    case HS_DTYPE_U8: for (int64_t i = 0; i < n; i++) dst[i] = ((const uint8_t *)t->data)[off + i * s]; break;
    case HS_DTYPE_U16: for (int64_t i = 0; i < n; i++) dst[i] = ((const uint16_t *)t->data)[off + i * s]; break;
    case HS_DTYPE_I32: for (int64_t i = 0; i < n; i++) dst[i] = ((const int32_t *)t->data)[off + i * s]; break;
    case HS_DTYPE_I64: for (int64_t i = 0; i < n; i++) dst[i] = (double)((const int64_t *)t->data)[off + i * s]; break;
    case HS_DTYPE_F64: for (int64_t i = 0; i < n; i++) dst[i] = ((const double *)t->data)[off + i * s]; break;
    default: for (int64_t i = 0; i < n; i++) dst[i] = ((const float *)t->data)[off + i * s]; break;
    }
}

static double sat(double v, double hi) {
    if (!(v > 0))
        return 0;  // also NaN
    return v > hi ? hi : nearbyint(v);  // default rounding mode: half to even
}

static void store_row(hs_tensor *t, int64_t off, int64_t s, const double *src, int64_t n, double scale) {
    switch (t->dtype) {
    case HS_DTYPE_U8: for (int64_t i = 0; i < n; i++) ((uint8_t *)t->data)[off + i * s] = (uint8_t)sat(src[i] * scale, 255); break;
    case HS_DTYPE_U16: for (int64_t i = 0; i < n; i++) ((uint16_t *)t->data)[off + i * s] = (uint16_t)sat(src[i] * scale, 65535); break;
    case HS_DTYPE_F64: for (int64_t i = 0; i < n; i++) ((double *)t->data)[off + i * s] = src[i] * scale; break;
    default: for (int64_t i = 0; i < n; i++) ((float *)t->data)[off + i * s] = (float)(src[i] * scale); break;
    }
}

// One "row" = the last two dims (for images (W,C) of one image row, so CHW <-> HWC stays a short
// inner loop); common dtype pairs get a typed loop, the rest go through a double buffer.
static void conv_plane(const conv_job *j, int64_t oi, int64_t oo) {
    const hs_tensor *in = j->in, *out = &j->out;
    int nd = in->ndim;
    int64_t n1 = nd >= 2 ? in->shape[nd - 2] : 1, n2 = nd >= 1 ? in->shape[nd - 1] : 1;
    int64_t a1 = nd >= 2 ? in->stride[nd - 2] : 0, a2 = nd >= 1 ? in->stride[nd - 1] : 1;
    int64_t b1 = nd >= 2 ? out->stride[nd - 2] : 0, b2 = nd >= 1 ? out->stride[nd - 1] : 1;
    if (in->dtype == HS_DTYPE_U8 && out->dtype == HS_DTYPE_F32) {
        const uint8_t *p = (const uint8_t *)in->data + oi;
        float *q = (float *)out->data + oo, sc = (float)j->scale;
        for (int64_t x = 0; x < n1; x++)
            for (int64_t c = 0; c < n2; c++)
                q[x * b1 + c * b2] = (float)p[x * a1 + c * a2] * sc;
        return;
    }
    if (in->dtype == HS_DTYPE_F32 && out->dtype == HS_DTYPE_U8) {
        const float *p = (const float *)in->data + oi;
        uint8_t *q = (uint8_t *)out->data + oo;
        float sc = (float)j->scale;
        for (int64_t x = 0; x < n1; x++)
            for (int64_t c = 0; c < n2; c++) {
                float v = p[x * a1 + c * a2] * sc;  // NaN and negatives -> 0, round half to even
                q[x * b1 + c * b2] = (uint8_t)(v > 0 ? (v < 255 ? lrintf(v) : 255) : 0);
            }
        return;
    }
    if (in->dtype == HS_DTYPE_F32 && out->dtype == HS_DTYPE_F32) {
        const float *p = (const float *)in->data + oi;
        float *q = (float *)out->data + oo, sc = (float)j->scale;
        for (int64_t x = 0; x < n1; x++)
            for (int64_t c = 0; c < n2; c++)
                q[x * b1 + c * b2] = p[x * a1 + c * a2] * sc;
        return;
    }
    double buf[BLOCK];
    for (int64_t x = 0; x < n1; x++)
        for (int64_t c0 = 0; c0 < n2; c0 += BLOCK) {
            int64_t n = n2 - c0 < BLOCK ? n2 - c0 : BLOCK;
            load_row(buf, in, oi + x * a1 + c0 * a2, a2, n);
            store_row((hs_tensor *)out, oo + x * b1 + c0 * b2, b2, buf, n, j->scale);
        }
}

static void conv_rows(void *ctx, int64_t r0, int64_t r1) {
    const conv_job *j = ctx;
    const hs_tensor *in = j->in, *out = &j->out;
    int nd = in->ndim;
    for (int64_t r = r0; r < r1; r++) {
        int64_t rem = r, oi = 0, oo = 0;  // unravel r over dims 0..nd-3
        for (int d = nd - 3; d >= 0; d--) {
            int64_t i = rem % in->shape[d];
            rem /= in->shape[d];
            oi += i * in->stride[d];
            oo += i * out->stride[d];
        }
        conv_plane(j, oi, oo);
    }
}

static hs_status convert_view(const hs_tensor *outv, const hs_tensor *in, float scale) {
    if (outv->dtype != HS_DTYPE_F32 && outv->dtype != HS_DTYPE_F64 && outv->dtype != HS_DTYPE_U8 &&
        outv->dtype != HS_DTYPE_U16)
        return HS_FAIL(HS_ERR_DTYPE, "convert: out must be F32, F64, U8 or U16, got %s", hs_dtype_name(outv->dtype));
    conv_job j;
    j.out = *outv;
    j.in = in;
    j.scale = scale;
    int nd = in->ndim;
    j.inner = (nd >= 1 ? in->shape[nd - 1] : 1) * (nd >= 2 ? in->shape[nd - 2] : 1);  // elements per row
    int64_t rows = j.inner ? hs_tensor_numel(in) / j.inner : 0;
    hs_parallel_for(rows, rows_per_task(j.inner), conv_rows, &j);
    return HS_OK;
}

hs_status hs_color_convert(hs_tensor *out, const hs_tensor *in, float scale) {
    char a[96], b[96];
    if (!hs_tensor_same_shape(out, in))
        return HS_FAIL(HS_ERR_SHAPE, "convert: out is %s, want %s", hs_tensor_shape_str(out, a, sizeof a),
                       hs_tensor_shape_str(in, b, sizeof b));
    return convert_view(out, in, scale);
}

hs_status hs_color_to_chw(hs_tensor *out, const hs_tensor *img, float scale) {
    char a[96], b[96];
    if (img->ndim != 2 && img->ndim != 3)
        return HS_FAIL(HS_ERR_SHAPE, "to_chw: expected (H,W,C) or (H,W) image, got %s",
                       hs_tensor_shape_str(img, a, sizeof a));
    int64_t c = img->ndim == 3 ? img->shape[2] : 1;
    if (out->ndim != 3 || out->shape[0] != c || out->shape[1] != img->shape[0] || out->shape[2] != img->shape[1])
        return HS_FAIL(HS_ERR_SHAPE, "to_chw: out is %s, want [%lld,%lld,%lld] for image %s",
                       hs_tensor_shape_str(out, a, sizeof a), (long long)c, (long long)img->shape[0],
                       (long long)img->shape[1], hs_tensor_shape_str(img, b, sizeof b));
    hs_tensor v = *out;  // out seen as (H,W,C) or (H,W)
    v.ndim = img->ndim;
    v.shape[0] = out->shape[1], v.stride[0] = out->stride[1];
    v.shape[1] = out->shape[2], v.stride[1] = out->stride[2];
    v.shape[2] = out->shape[0], v.stride[2] = out->stride[0];
    return convert_view(&v, img, scale);
}

hs_status hs_color_from_chw(hs_tensor *out, const hs_tensor *chw, float scale) {
    char a[96], b[96];
    if (chw->ndim != 3)
        return HS_FAIL(HS_ERR_SHAPE, "from_chw: expected a (C,H,W) tensor, got %s", hs_tensor_shape_str(chw, a, sizeof a));
    if (out->ndim != 3 || out->shape[0] != chw->shape[1] || out->shape[1] != chw->shape[2] ||
        out->shape[2] != chw->shape[0])
        return HS_FAIL(HS_ERR_SHAPE, "from_chw: out is %s, want [%lld,%lld,%lld] for %s",
                       hs_tensor_shape_str(out, a, sizeof a), (long long)chw->shape[1], (long long)chw->shape[2],
                       (long long)chw->shape[0], hs_tensor_shape_str(chw, b, sizeof b));
    hs_tensor v = *out;  // out seen as (C,H,W)
    v.shape[0] = out->shape[2], v.stride[0] = out->stride[2];
    v.shape[1] = out->shape[0], v.stride[1] = out->stride[0];
    v.shape[2] = out->shape[1], v.stride[2] = out->stride[1];
    return convert_view(&v, chw, scale);
}
