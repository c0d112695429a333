// core/color.c: colour-space conversions (see color.h for conventions). Dimension letters:
// H rows, W columns, C channels. Float conversions run through one block driver
// (hs_color_map_pixels): pixels are loaded 256 at a time into a stack buffer as floats (U8 via a
// 256-entry table, so per-channel transfer functions such as sRGB linearisation cost a lookup),
// mapped by a small kernel, and stored with the output's strides. The kernels are written as
// branch-free loops over restrict pointers so that -O3 vectorises them; transcendental steps
// (sRGB gamma, cube root, log) use bit tricks plus polynomials or Newton steps instead of libm
// calls, accurate to a few float ulp (cube root: double precision). When compiled for AVX-512,
// rgb2lab, the fused log + matrix of stain separation and OpenCV-convention 8-bit HSV have
// explicit 16-pixel kernels (permute-based de-interleaving, table-driven polynomials in
// registers, no gathers), with the portable loops kept as fallback and as test references.
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

#ifdef __AVX512F__
#include <immintrin.h>
#include <pthread.h>
#endif

#define BLOCK 256            // pixels per stack block
#define PIXELS_PER_TASK 65536

#ifdef __AVX512F__
// ---- AVX-512 helpers: 16 interleaved RGB pixels (3 vectors) <-> three channel planes ----

// Permute indices: channel c of 16 interleaved pixels from 3 vectors (two steps), and back.
static const int32_t deint_idx[3][2][16] = {
    {{0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0, 0, 0, 0, 0}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17, 20, 23, 26, 29}},
    {{1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 0, 0, 0, 0, 0}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 18, 21, 24, 27, 30}},
    {{2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0, 0, 0, 0, 0, 0}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 19, 22, 25, 28, 31}}};
static const int32_t inter_idx[3][2][16] = {
    {{0, 16, 0, 1, 17, 0, 2, 18, 0, 3, 19, 0, 4, 20, 0, 5}, {0, 1, 16, 3, 4, 17, 6, 7, 18, 9, 10, 19, 12, 13, 20, 15}},
    {{21, 0, 6, 22, 0, 7, 23, 0, 8, 24, 0, 9, 25, 0, 10, 26}, {0, 21, 2, 3, 22, 5, 6, 23, 8, 9, 24, 11, 12, 25, 14, 15}},
    {{0, 11, 27, 0, 12, 28, 0, 13, 29, 0, 14, 30, 0, 15, 31, 0}, {26, 1, 2, 27, 4, 5, 28, 7, 8, 29, 10, 11, 30, 13, 14, 31}}};

static inline __m512i idx_vec(const int32_t *p) { return _mm512_loadu_si512((const void *)p); }

// Masks of the three vectors holding n <= 16 pixels (3n floats).
static inline void masks3(__mmask16 m[3], int64_t n) {
    for (int v = 0; v < 3; v++) {
        int64_t k = 3 * n - 16 * v;
        m[v] = k >= 16 ? (__mmask16)0xFFFF : k <= 0 ? (__mmask16)0 : (__mmask16)((1u << k) - 1);
    }
}

// n <= 16 interleaved pixels at s -> planes c[0..2] (lanes past n are zero).
static inline void load_planes(__m512 c[3], const float *s, int64_t n) {
    __m512 a[3];
    if (n == 16) {
        for (int v = 0; v < 3; v++)
            a[v] = _mm512_loadu_ps(s + 16 * v);
    } else {
        __mmask16 m[3];
        masks3(m, n);
        for (int v = 0; v < 3; v++)
            a[v] = _mm512_maskz_loadu_ps(m[v], s + 16 * v);
    }
    for (int k = 0; k < 3; k++) {
        __m512 t = _mm512_permutex2var_ps(a[0], idx_vec(deint_idx[k][0]), a[1]);
        c[k] = _mm512_permutex2var_ps(t, idx_vec(deint_idx[k][1]), a[2]);
    }
}

static inline void store_planes(float *d, const __m512 c[3], int64_t n) {
    __m512 a[3];
    for (int v = 0; v < 3; v++) {
        __m512 t = _mm512_permutex2var_ps(c[0], idx_vec(inter_idx[v][0]), c[1]);
        a[v] = _mm512_permutex2var_ps(t, idx_vec(inter_idx[v][1]), c[2]);
    }
    if (n == 16) {
        for (int v = 0; v < 3; v++)
            _mm512_storeu_ps(d + 16 * v, a[v]);
    } else {
        __mmask16 m[3];
        masks3(m, n);
        for (int v = 0; v < 3; v++)
            _mm512_mask_storeu_ps(d + 16 * v, m[v], a[v]);
    }
}
#endif

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

#ifdef __AVX512F__
// OpenCV's fixed-point gray of 16 packed pixels per step: bytes widened to 32-bit lanes,
// de-interleaved by permutes, the same integer formula, narrowed back; the tail as the plain loop.
static void gray_u8_row_avx512(uint8_t *restrict q, const uint8_t *restrict p, int64_t w) {
    // as int16 pairs for vpmaddwd: r * 9798 + g * 19235 and b * 3735 + 1 * 2^14 (exact)
    const __m512i wrg = _mm512_set1_epi32(9798 | 19235 << 16), wb1 = _mm512_set1_epi32(3735 | 1 << 30),
                  one = _mm512_set1_epi32(1 << 16);
    int64_t x = 0;
    for (; x + 16 <= w; x += 16) {
        __m512i a[3], c[3];
        for (int v = 0; v < 3; v++)
            a[v] = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + 3 * x + 16 * v)));
        for (int k = 0; k < 3; k++)
            c[k] = _mm512_permutex2var_epi32(_mm512_permutex2var_epi32(a[0], idx_vec(deint_idx[k][0]), a[1]),
                                             idx_vec(deint_idx[k][1]), a[2]);
        __m512i sum = _mm512_add_epi32(_mm512_madd_epi16(_mm512_or_si512(c[0], _mm512_slli_epi32(c[1], 16)), wrg),
                                       _mm512_madd_epi16(_mm512_or_si512(c[2], one), wb1));
        _mm_storeu_si128((__m128i *)(void *)(q + x), _mm512_cvtepi32_epi8(_mm512_srli_epi32(sum, 15)));
    }
    for (; x < w; x++)
        q[x] = (uint8_t)((p[3 * x] * 9798u + p[3 * x + 1] * 19235u + p[3 * x + 2] * 3735u + (1u << 14)) >> 15);
}
#endif

static void gray_rows(void *ctx, int64_t y0, int64_t y1) {
    const gray_job *j = ctx;
    const hs_tensor *in = j->in;
    int64_t w = in->shape[1], s1 = in->stride[1], s2 = in->stride[2], o1 = j->out->stride[1];
    int packed = s1 == 3 && s2 == 1 && o1 == 1;
    for (int64_t y = y0; y < y1; y++) {
        if (in->dtype == HS_DTYPE_U8 && packed) {  // the same formula on packed rows (vectorises)
            const uint8_t *restrict p = (const uint8_t *)in->data + y * in->stride[0];
            uint8_t *restrict q = (uint8_t *)j->out->data + y * j->out->stride[0];
#ifdef __AVX512F__
            gray_u8_row_avx512(q, p, w);
#else
            for (int64_t x = 0; x < w; x++)
                q[x] = (uint8_t)((p[3 * x] * 9798u + p[3 * x + 1] * 19235u + p[3 * x + 2] * 3735u + (1u << 14)) >> 15);
#endif
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

// ---- HSV in OpenCV's 8-bit convention ----
// cv2.cvtColor(COLOR_RGB2HSV) on U8 (color_hsv.simd.hpp, RGB2HSV_b): V = max, S = 255 diff / V
// and H = 30 (sector offset + (x - y) / diff) through tables of rounded 12-bit reciprocals, all
// integer arithmetic, so results are exact; red wins ties over green over blue (unlike
// skimage). Checked against cv2 on all 2^24 colours.

#define HSV_SHIFT 12

typedef struct {
    int32_t sdiv[256], hdiv[256];  // round((255 << 12) / v), round((180 << 12) / (6 diff)); [0] = 0
} hsv_tables;

static void hsv_tables_init(hsv_tables *t) {
    t->sdiv[0] = t->hdiv[0] = 0;
    for (int i = 1; i < 256; i++) {  // no ties at .5 among these quotients: rint = cvRound
        t->sdiv[i] = (int32_t)lrint((double)(255 << HSV_SHIFT) / i);
        t->hdiv[i] = (int32_t)lrint((double)(180 << HSV_SHIFT) / (6.0 * i));
    }
}

static inline void hsv8_pixel(uint8_t *q, int r, int g, int b, const hsv_tables *t) {
    int v = r > g ? r : g, mn = r < g ? r : g;
    v = v > b ? v : b;
    mn = mn < b ? mn : b;
    int diff = v - mn;
    int s = (diff * t->sdiv[v] + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;
    int h = v == r ? g - b : v == g ? b - r + 2 * diff : r - g + 4 * diff;
    h = (h * t->hdiv[diff] + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;  // arithmetic shift, as OpenCV
    h += h < 0 ? 180 : 0;
    q[0] = (uint8_t)h;  // 0..180
    q[1] = (uint8_t)s;
    q[2] = (uint8_t)v;
}

typedef struct {
    hs_tensor *out;
    const hs_tensor *in;
    hsv_tables t;
} hsv8_job;

#ifdef __AVX512F__
// round(num / d) for lanes d in 1..255, the table entries, from the float quotient: for the two
// numerators used (255 << 12 and (180 << 12) / 6) it rounds to the same integer as the exact
// quotient for every d (checked; the tests go through every V and every max - min). Gathers
// from the tables would be slower on CPUs with the gather-data-sampling microcode fix.
static inline __m512i div_round(int32_t num, __m512i d) {
    return _mm512_cvtps_epi32(_mm512_div_ps(_mm512_set1_ps((float)num), _mm512_cvtepi32_ps(d)));
}

// 16 packed pixels: bytes widened to 32-bit lanes, de-interleaved by the float permutes, the
// same integer formula with the table entries recomputed (div_round; lanes with v or diff 0
// multiply 0 by whatever they get), narrowed back.
static void hsv8_row_avx512(uint8_t *restrict q, const uint8_t *restrict p, int64_t n, const hsv_tables *t) {
    const __m512i half = _mm512_set1_epi32(1 << (HSV_SHIFT - 1)), zero = _mm512_setzero_si512();
    int64_t x = 0;
    for (; x + 16 <= n; x += 16, p += 48, q += 48) {
        __m512i a[3], c[3], o[3];
        for (int v = 0; v < 3; v++)
            a[v] = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * v)));
        for (int k = 0; k < 3; k++)
            c[k] = _mm512_permutex2var_epi32(_mm512_permutex2var_epi32(a[0], idx_vec(deint_idx[k][0]), a[1]),
                                             idx_vec(deint_idx[k][1]), a[2]);
        __m512i r = c[0], g = c[1], b = c[2];
        __m512i v = _mm512_max_epi32(_mm512_max_epi32(r, g), b), mn = _mm512_min_epi32(_mm512_min_epi32(r, g), b);
        __m512i diff = _mm512_sub_epi32(v, mn);
        __m512i s = _mm512_srai_epi32(
            _mm512_add_epi32(_mm512_mullo_epi32(diff, div_round(255 << HSV_SHIFT, v)), half), HSV_SHIFT);
        __mmask16 is_r = _mm512_cmpeq_epi32_mask(v, r), is_g = _mm512_cmpeq_epi32_mask(v, g);
        __m512i hb = _mm512_add_epi32(_mm512_sub_epi32(r, g), _mm512_slli_epi32(diff, 2));
        __m512i hg = _mm512_add_epi32(_mm512_sub_epi32(b, r), _mm512_slli_epi32(diff, 1));
        __m512i h = _mm512_mask_blend_epi32(is_r, _mm512_mask_blend_epi32(is_g, hb, hg), _mm512_sub_epi32(g, b));
        h = _mm512_srai_epi32(_mm512_add_epi32(_mm512_mullo_epi32(h, div_round((180 << HSV_SHIFT) / 6, diff)), half),
                              HSV_SHIFT);
        h = _mm512_mask_add_epi32(h, _mm512_cmplt_epi32_mask(h, zero), h, _mm512_set1_epi32(180));
        for (int w = 0; w < 3; w++) {
            __m512i u = _mm512_permutex2var_epi32(h, idx_vec(inter_idx[w][0]), s);
            o[w] = _mm512_permutex2var_epi32(u, idx_vec(inter_idx[w][1]), v);
            _mm_storeu_si128((__m128i *)(void *)(q + 16 * w), _mm512_cvtepi32_epi8(o[w]));
        }
    }
    for (; x < n; x++, p += 3, q += 3)
        hsv8_pixel(q, p[0], p[1], p[2], t);
}
#endif

static void hsv8_rows(void *ctx, int64_t y0, int64_t y1) {
    const hsv8_job *j = ctx;
    const hs_tensor *in = j->in;
    hs_tensor *out = j->out;
    int64_t w = in->shape[1], s1 = in->stride[1], s2 = in->stride[2], o1 = out->stride[1], o2 = out->stride[2];
    for (int64_t y = y0; y < y1; y++) {
        const uint8_t *p = (const uint8_t *)in->data + y * in->stride[0];
        uint8_t *q = (uint8_t *)out->data + y * out->stride[0];
#ifdef __AVX512F__
        if (s1 == 3 && s2 == 1 && o1 == 3 && o2 == 1) {
            hsv8_row_avx512(q, p, w, &j->t);
            continue;
        }
#endif
        for (int64_t x = 0; x < w; x++) {
            uint8_t px[3];
            hsv8_pixel(px, p[x * s1], p[x * s1 + s2], p[x * s1 + 2 * s2], &j->t);
            for (int c = 0; c < 3; c++)
                q[x * o1 + c * o2] = px[c];
        }
    }
}

hs_status hs_color_rgb2hsv_u8(hs_tensor *out, const hs_tensor *rgb) {
    HS_TRY(hs_color_check_image(rgb, 3, "rgb2hsv_u8"));
    if (rgb->dtype != HS_DTYPE_U8)
        return HS_FAIL(HS_ERR_DTYPE, "rgb2hsv_u8: expected a U8 image, got %s", hs_dtype_name(rgb->dtype));
    HS_TRY(check_out(out, rgb, 3, HS_DTYPE_U8, "rgb2hsv_u8"));
    if (out->ndim != 3)
        return HS_FAIL(HS_ERR_SHAPE, "rgb2hsv_u8: out must be (H,W,3)");
    int same = out->data == rgb->data;
    for (int d = 0; d < 3; d++)
        same = same && out->stride[d] == rgb->stride[d];
    if (overlaps(out, rgb) && !same)
        return HS_FAIL(HS_ERR_ARG, "rgb2hsv_u8: out overlaps the input without being the same view");
    hsv8_job j = {out, rgb, {{0}, {0}}};
    hsv_tables_init(&j.t);
    hs_parallel_for(rgb->shape[0], rows_per_task(rgb->shape[1]), hsv8_rows, &j);
    return HS_OK;
}

hs_status hs_color_rgb2hsv_u8_ref(hs_tensor *out, const hs_tensor *rgb) {
    HS_TRY(hs_color_check_image(rgb, 3, "rgb2hsv_u8"));
    if (rgb->dtype != HS_DTYPE_U8)
        return HS_FAIL(HS_ERR_DTYPE, "rgb2hsv_u8: expected a U8 image, got %s", hs_dtype_name(rgb->dtype));
    HS_TRY(check_out(out, rgb, 3, HS_DTYPE_U8, "rgb2hsv_u8"));
    hsv_tables t;
    hsv_tables_init(&t);
    for (int64_t y = 0; y < rgb->shape[0]; y++)
        for (int64_t x = 0; x < rgb->shape[1]; x++) {
            const uint8_t *p = (const uint8_t *)rgb->data + y * rgb->stride[0] + x * rgb->stride[1];
            uint8_t px[3];
            hsv8_pixel(px, p[0], p[rgb->stride[2]], p[2 * rgb->stride[2]], &t);
            uint8_t *q = (uint8_t *)out->data + y * out->stride[0] + x * out->stride[1];
            for (int c = 0; c < 3; c++)
                q[c * out->stride[2]] = px[c];
        }
    return HS_OK;
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

#ifdef __AVX512F__
// fast_logf on 16 lanes, the same operations in the same order (so the same bits).
static inline __m512 v_fast_logf(__m512 x) {
    __m512i i = _mm512_castps_si512(x);
    __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(i, 23), _mm512_set1_epi32(127));
    __m512 m = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(i, _mm512_set1_epi32(0x007FFFFF)),
                                                   _mm512_set1_epi32(0x3F800000)));
    __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, big, _mm512_set1_ps(0.5f), m);
    e = _mm512_mask_add_epi32(e, big, e, _mm512_set1_epi32(1));
    __m512 t = _mm512_sub_ps(m, _mm512_set1_ps(1.0f)), z = _mm512_mul_ps(t, t), fe = _mm512_cvtepi32_ps(e);
    __m512 p01 = _mm512_fmadd_ps(_mm512_set1_ps(7.0376836292e-2f), t, _mm512_set1_ps(-1.1514610310e-1f));
    __m512 p23 = _mm512_fmadd_ps(_mm512_set1_ps(1.1676998740e-1f), t, _mm512_set1_ps(-1.2420140846e-1f));
    __m512 p45 = _mm512_fmadd_ps(_mm512_set1_ps(1.4249322787e-1f), t, _mm512_set1_ps(-1.6668057665e-1f));
    __m512 p67 = _mm512_fmadd_ps(_mm512_set1_ps(2.0000714765e-1f), t, _mm512_set1_ps(-2.4999993993e-1f));
    __m512 z2 = _mm512_mul_ps(z, z);
    __m512 hi = _mm512_fmadd_ps(_mm512_fmadd_ps(p01, z, p23), z2, _mm512_fmadd_ps(p45, z, p67));
    __m512 p = _mm512_fmadd_ps(hi, t, _mm512_set1_ps(3.3333331174e-1f));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(t, z), p,
                               _mm512_fmadd_ps(_mm512_set1_ps(-2.12194440e-4f), fe, _mm512_mul_ps(_mm512_set1_ps(-0.5f), z)));
    __m512 r = _mm512_add_ps(_mm512_add_ps(t, y), _mm512_mul_ps(_mm512_set1_ps(0.693359375f), fe));
    __mmask16 special = _mm512_cmp_epu32_mask(i, _mm512_set1_epi32(0x7F800000), _MM_CMPINT_NLT);
    return _mm512_mask_blend_ps(special, r, x);
}

static void log_matrix_avx512(float *restrict dst, const float *restrict src, int64_t n, float lo, float scale,
                              const float *m) {
    __m512 vm[3][3], vlo = _mm512_set1_ps(lo), vs = _mm512_set1_ps(scale), zero = _mm512_setzero_ps();
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            vm[i][j] = _mm512_set1_ps(m[3 * i + j]);
    for (int64_t i0 = 0; i0 < n; i0 += 16) {
        int64_t k = n - i0 < 16 ? n - i0 : 16;
        __m512 c[3], o[3];
        load_planes(c, src + 3 * i0, k);
        for (int ch = 0; ch < 3; ch++)  // max(v, lo): lo for NaN, as the scalar select
            c[ch] = _mm512_mul_ps(v_fast_logf(_mm512_max_ps(c[ch], vlo)), vs);
        for (int j = 0; j < 3; j++) {
            __m512 v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(c[0], vm[0][j]), _mm512_mul_ps(c[1], vm[1][j])),
                                     _mm512_mul_ps(c[2], vm[2][j]));
            o[j] = _mm512_max_ps(v, zero);  // NaN -> 0 as v > 0 ? v : 0
        }
        store_planes(dst + 3 * i0, o, k);
    }
}
#endif

void hs_color_log_matrix_block(float *restrict dst, const float *restrict src, int64_t n, float lo, float scale,
                               const float *m) {
#ifdef __AVX512F__
    log_matrix_avx512(dst, src, n, lo, scale, m);
#else
    hs_color_log_matrix_block_ref(dst, src, n, lo, scale, m);
#endif
}

void hs_color_log_matrix_block_ref(float *restrict dst, const float *restrict src, int64_t n, float lo, float scale,
                                   const float *m) {
    for (int64_t i = 0; i < n; i++) {
        float od[3];
        for (int c = 0; c < 3; c++) {
            float x = src[3 * i + c] > lo ? src[3 * i + c] : lo;
            od[c] = fast_logf(x) * scale;
        }
        for (int j = 0; j < 3; j++) {
            float v = od[0] * m[j] + od[1] * m[3 + j] + od[2] * m[6 + j];
            dst[3 * i + j] = v > 0 ? v : 0;
        }
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

// ---- AVX-512 kernels: 16 pixels per step, in float, table-driven polynomials ----
// The portable kernels above spend most of their time in exp/log (sRGB gamma) and in double
// precision (cube roots). With AVX-512 the per-pixel transcendental steps become piecewise
// polynomials looked up in registers (vpermps): the cube root's argument picks a power-of-two
// scale by its exponent and one of 16 cubics on [1,2) by its top 4 mantissa bits (Chebyshev fits
// in double, ~5e-9 relative), then one compensated Newton step; the sRGB gamma is 32 quartics
// directly in x (4 per octave). A value costs a few integer ops, a few permutes and 3-4 FMAs;
// the XYZ products are in double. ~6x faster than the portable kernels. A row is loaded
// 48 floats (16 pixels) at a time and de-interleaved by permutes; a short last step uses masked
// loads and stores, so every pixel goes through the same arithmetic wherever it sits in a row
// (results never depend on the image width or the thread count). Pixels outside the range the
// tables cover (a channel above 2 or NaN: float input is not clamped) are redone by the
// portable kernel.
#ifdef __AVX512F__

// A function on [1,2) as 16 cubics in s = m - centre (centre of 1/16-wide piece k), plus a
// scale per binary exponent: f(2^e m) = scale[e + bias] * piece_k(s).
typedef struct {
    float c[4][16];   // c[i][k]: coefficient of s^i in piece k
    float scale[16];  // scale[e + bias]
} piecewise;

// Polynomial of degree deg (<= 4) through f at the deg + 1 Chebyshev nodes of [c - h, c + h], in
// powers of s = x - c (double Gaussian elimination on the Vandermonde system).
static void cheb_fit(double *out, int deg, double (*f)(double), double c, double h) {
    double a[5][6];
    int n = deg + 1;
    for (int j = 0; j < n; j++) {
        double s = h * cos((2 * j + 1) * 3.14159265358979323846 / (2 * n));
        for (int i = 0; i < n; i++)
            a[j][i] = pow(s, i);
        a[j][n] = f(c + s);
    }
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(a[r][col]) > fabs(a[piv][col]))
                piv = r;
        for (int i = 0; i <= n; i++) {
            double t = a[col][i];
            a[col][i] = a[piv][i];
            a[piv][i] = t;
        }
        for (int r = 0; r < n; r++) {
            if (r == col)
                continue;
            double q = a[r][col] / a[col][col];
            for (int i = col; i <= n; i++)
                a[r][i] -= q * a[col][i];
        }
    }
    for (int i = 0; i < n; i++)
        out[i] = a[i][n] / a[i][i];
}

// sRGB expansion ((x + 0.055) / 1.055)^2.4 directly in x (no rounded intermediate u, whose
// rounding alone is ~2.4 ulp): 32 quartics, 4 per binary octave of x from [2^-5, 2^-4) up (piece
// index = the top 7 bits of x's exponent and mantissa, minus a constant), ~1e-8 relative.
typedef struct {
    float c[5][32];  // c[i][j]: coefficient of s^i in piece j, s = x - centre[j]
    float centre[32];
} srgb_pieces;

static double srgb_exact(double x) { return pow((x + 0.055) / 1.055, 2.4); }

static void fit_srgb(srgb_pieces *p) {
    for (int j = 0; j < 32; j++) {
        double lo = ldexp(1.0 + (j % 4) / 4.0, -5 + j / 4), h = ldexp(1.0 / 8.0, -5 + j / 4), cf[5];
        cheb_fit(cf, 4, srgb_exact, lo + h, h);
        for (int i = 0; i < 5; i++)
            p->c[i][j] = (float)cf[i];
        p->centre[j] = (float)(lo + h);  // exact
    }
}

static void fit_piecewise(piecewise *p, double (*f)(double), double power, int bias) {
    for (int k = 0; k < 16; k++) {
        double cf[4];
        cheb_fit(cf, 3, f, 1.0 + (k + 0.5) / 16.0, 1.0 / 32.0);
        for (int i = 0; i < 4; i++)
            p->c[i][k] = (float)cf[i];
        p->scale[k] = (float)pow(2.0, power * (k - bias));
    }
}

static srgb_pieces srgb_tab;
static piecewise cbrt_tab;
static pthread_once_t lab_tab_once = PTHREAD_ONCE_INIT;
static void lab_tab_init(void) {
    fit_srgb(&srgb_tab);
    fit_piecewise(&cbrt_tab, cbrt, 1.0 / 3.0, 7);
}

typedef struct {
    __m512 c[5][2], centre[2];
} srgb_v;

static inline srgb_v srgb_load(void) {
    srgb_v v;
    for (int i = 0; i < 5; i++)
        for (int h = 0; h < 2; h++)
            v.c[i][h] = _mm512_loadu_ps(srgb_tab.c[i] + 16 * h);
    for (int h = 0; h < 2; h++)
        v.centre[h] = _mm512_loadu_ps(srgb_tab.centre + 16 * h);
    return v;
}

typedef struct {
    __m512 c0, c1, c2, c3, scale;
} piecewise_v;

static inline piecewise_v piecewise_load(const piecewise *p) {
    piecewise_v v = {_mm512_loadu_ps(p->c[0]), _mm512_loadu_ps(p->c[1]), _mm512_loadu_ps(p->c[2]),
                     _mm512_loadu_ps(p->c[3]), _mm512_loadu_ps(p->scale)};
    return v;
}

// f(x) for positive normal x whose exponent e has e + bias in 0..15 (other lanes: garbage).
static inline __m512 piecewise_eval(const piecewise_v *p, __m512 x, int bias) {
    __m512i bits = _mm512_castps_si512(x);
    __m512i k = _mm512_and_si512(_mm512_srli_epi32(bits, 19), _mm512_set1_epi32(15));
    __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(bits, 23), _mm512_set1_epi32(127 - bias));
    __m512 m = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFF)),
                                                   _mm512_set1_epi32(0x3F800000)));
    __m512 s = _mm512_sub_ps(m, _mm512_set1_ps(1.03125f));  // exact: m - centre of piece k
    __m512 r = _mm512_permutexvar_ps(k, p->c3);
    r = _mm512_fmadd_ps(r, s, _mm512_permutexvar_ps(k, p->c2));
    r = _mm512_fmadd_ps(r, s, _mm512_permutexvar_ps(k, p->c1));
    r = _mm512_fmadd_ps(r, s, _mm512_permutexvar_ps(k, p->c0));
    return _mm512_mul_ps(r, _mm512_permutexvar_ps(e, p->scale));
}

// x <= 0.04045: x / 12.92; up to 2: the quartic of x's piece (lanes above 2 or NaN: garbage,
// the caller redoes them).
static inline __m512 v_srgb_to_linear(const srgb_v *g, __m512 x) {
    __m512i j = _mm512_sub_epi32(_mm512_srli_epi32(_mm512_castps_si512(x), 21), _mm512_set1_epi32((127 - 5) << 2));
    __m512 s = _mm512_sub_ps(x, _mm512_permutex2var_ps(g->centre[0], j, g->centre[1]));  // exact
    __m512 p = _mm512_permutex2var_ps(g->c[4][0], j, g->c[4][1]);
    for (int i = 3; i >= 0; i--)
        p = _mm512_fmadd_ps(p, s, _mm512_permutex2var_ps(g->c[i][0], j, g->c[i][1]));
    __mmask16 hi = _mm512_cmp_ps_mask(x, _mm512_set1_ps(0.04045f), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(hi, _mm512_mul_ps(x, _mm512_set1_ps((float)(1.0 / 12.92))), p);
}

// Lab's f(t) for t = th + tl (a float plus its rounding error) as hi + lo: above the knee
// hi = cbrt(th) to ~1 ulp and lo its Newton correction (t - hi^3) / (3 hi^2), with th - hi^3
// from fused multiply-adds (exact products), so that the differences in a and b keep ~1e-6
// accuracy although every step is float; below the knee hi = 16/116 and lo = 7.787 t (+ the
// rounding of 16/116).
static inline void v_lab_f(__m512 *hi, __m512 *lo, const piecewise_v *cb, __m512 th, __m512 tl) {
    __m512 y = piecewise_eval(cb, th, 7);
    __m512 y2 = _mm512_mul_ps(y, y), y2e = _mm512_fmsub_ps(y, y, y2);
    __m512 r = _mm512_fnmadd_ps(y, y2, th);
    r = _mm512_add_ps(_mm512_fnmadd_ps(y, y2e, r), tl);
    __m512 corr = _mm512_mul_ps(r, _mm512_rcp14_ps(_mm512_mul_ps(_mm512_set1_ps(3.0f), y2)));
    __mmask16 cube = _mm512_cmp_ps_mask(th, _mm512_set1_ps(0.008856f), _CMP_GT_OQ);
    const float k16 = (float)(16.0 / 116.0), k16lo = (float)(16.0 / 116.0 - (double)k16);
    __m512 lin = _mm512_fmadd_ps(th, _mm512_set1_ps(7.787f), _mm512_fmadd_ps(tl, _mm512_set1_ps(7.787f), _mm512_set1_ps(k16lo)));
    *hi = _mm512_mask_blend_ps(cube, _mm512_set1_ps(k16), y);
    *lo = _mm512_mask_blend_ps(cube, lin, corr);
}

// The two halves of a float vector in double, and back.
static inline void v_to_pd(__m512d out[2], __m512 x) {
    out[0] = _mm512_cvtps_pd(_mm512_castps512_ps256(x));
    out[1] = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
}

static inline __m512 v_to_ps(const __m512d x[2]) {
    __m256 a = _mm512_cvtpd_ps(x[0]), b = _mm512_cvtpd_ps(x[1]);
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(a)), _mm256_castps_pd(b), 1));
}

typedef struct {
    int srgb;  // input is sRGB (apply the gamma), else already linear
    mat3d md;  // xyz_from_rgb rows / white point (also the portable kernel's aux)
} lab_aux;

static void k_rgb2lab_avx512(float *restrict d, const float *restrict s, int64_t n, const void *aux) {
    const lab_aux *A = aux;
    srgb_v g = srgb_load();
    piecewise_v cb = piecewise_load(&cbrt_tab);
    __m512d m[3][3];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            m[i][j] = _mm512_set1_pd(A->md.m[i][j]);
    for (int64_t i0 = 0; i0 < n; i0 += 16) {
        int64_t k = n - i0 < 16 ? n - i0 : 16;
        __m512 c[3], f[3], l[3];
        load_planes(c, s + 3 * i0, k);
        __mmask16 bad = 0;
        if (A->srgb) {
            __mmask16 ok = (__mmask16)((k == 16 ? 0xFFFFu : (1u << k) - 1));
            for (int ch = 0; ch < 3; ch++) {
                ok &= _mm512_cmp_ps_mask(c[ch], _mm512_set1_ps(2.0f), _CMP_LE_OQ);
                c[ch] = v_srgb_to_linear(&g, c[ch]);
            }
            bad = (__mmask16)(~ok & (k == 16 ? 0xFFFFu : (1u << k) - 1));
        }
        // X/Xn, Y/Yn, Z/Zn in double (float rounding here alone would cost ~3e-5 in a and b),
        // passed on as a float and its rounding error.
        __m512d cd[3][2];
        for (int ch = 0; ch < 3; ch++)
            v_to_pd(cd[ch], c[ch]);
        for (int r = 0; r < 3; r++) {
            __m512d t[2], th2[2];
            for (int h = 0; h < 2; h++) {
                t[h] = _mm512_mul_pd(m[r][2], cd[2][h]);
                t[h] = _mm512_fmadd_pd(m[r][1], cd[1][h], t[h]);
                t[h] = _mm512_fmadd_pd(m[r][0], cd[0][h], t[h]);
            }
            __m512 th = v_to_ps(t);
            v_to_pd(th2, th);
            for (int h = 0; h < 2; h++)
                th2[h] = _mm512_sub_pd(t[h], th2[h]);
            v_lab_f(&f[r], &l[r], &cb, th, v_to_ps(th2));
        }
        // L = 116 fy - 16, a = 500 (fx - fy), b = 200 (fy - fz), each difference as hi + lo
        __m512 L = _mm512_fmadd_ps(_mm512_set1_ps(116.0f), l[1], _mm512_fmsub_ps(_mm512_set1_ps(116.0f), f[1], _mm512_set1_ps(16.0f)));
        __m512 a = _mm512_mul_ps(_mm512_set1_ps(500.0f), _mm512_add_ps(_mm512_sub_ps(f[0], f[1]), _mm512_sub_ps(l[0], l[1])));
        __m512 b = _mm512_mul_ps(_mm512_set1_ps(200.0f), _mm512_add_ps(_mm512_sub_ps(f[1], f[2]), _mm512_sub_ps(l[1], l[2])));
        __m512 o[3] = {L, a, b};
        store_planes(d + 3 * i0, o, k);
        while (bad) {  // rare: redo with the portable kernel
            int lane = __builtin_ctz(bad);
            bad &= (__mmask16)(bad - 1);
            float px[3];
            memcpy(px, s + 3 * (i0 + lane), sizeof px);
            srgb_to_linear_block(px, 3);
            k_rgb2lab(d + 3 * (i0 + lane), px, 1, &A->md);
        }
    }
}
#endif

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
#ifdef __AVX512F__
    pthread_once(&lab_tab_once, lab_tab_init);
    lab_aux aux;
    aux.md = a;
    aux.srgb = rgb->dtype != HS_DTYPE_U8;  // U8 goes through the table (already linear)
    hs_color_map m = {"rgb2lab", lut, NULL, k_rgb2lab_avx512, &aux};
#else
    hs_color_map m = {"rgb2lab", lut, srgb_to_linear_block, k_rgb2lab, &a};
#endif
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
