// core/geometry.c: crop, pad, flip, rot90, resize and tiling of (H,W[,C]) images (geometry.h).
// Resizing follows OpenCV 4.6's resize.cpp closely (coefficient tables, the 11-bit fixed-point
// bilinear path for U8 and its vertical rounding, area tables) so results agree within 1 LSB;
// with AVX-512BW the U8 bilinear passes are vectorised (same integers, hs_geometry_resize_ref
// keeps the plain loops). Not a general affine warp.
#include "geometry.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "parallel.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

// ---- shared image helpers ----

hs_status hs_geometry_dims(hs_image_dims *d, const hs_tensor *t, const char *op) {
    char sh[96];
    if (!t)
        return HS_FAIL(HS_ERR_ARG, "%s: image is NULL", op);
    if (t->ndim != 2 && t->ndim != 3)
        return HS_FAIL(HS_ERR_SHAPE, "%s: image must be (H,W) or (H,W,C), got %s", op,
                       hs_tensor_shape_str(t, sh, sizeof sh));
    if (t->dtype != HS_DTYPE_U8 && t->dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_DTYPE, "%s: image dtype must be U8 or F32, got %s", op, hs_dtype_name(t->dtype));
    d->h = t->shape[0];
    d->w = t->shape[1];
    d->c = t->ndim == 3 ? t->shape[2] : 1;
    d->ndim = t->ndim;
    if (d->h < 1 || d->w < 1 || d->c < 1)
        return HS_FAIL(HS_ERR_SHAPE, "%s: empty image %s", op, hs_tensor_shape_str(t, sh, sizeof sh));
    return HS_OK;
}

hs_status hs_geometry_check_dst(const hs_tensor *dst, const char *op, hs_dtype dt, const hs_image_dims *d) {
    char a[96], b[96];
    int64_t want[3] = {d->h, d->w, d->c};
    if (!dst)
        return HS_FAIL(HS_ERR_ARG, "%s: destination is NULL", op);
    int ok = dst->ndim == d->ndim && dst->shape[0] == d->h && dst->shape[1] == d->w &&
             (d->ndim == 2 || dst->shape[2] == d->c);
    if (!ok)
        return HS_FAIL(HS_ERR_SHAPE, "%s: destination is %s, want %s", op, hs_tensor_shape_str(dst, a, sizeof a),
                       hs_shape_str(d->ndim, want, b, sizeof b));
    if (dst->dtype != dt)
        return HS_FAIL(HS_ERR_DTYPE, "%s: destination dtype %s, want %s", op, hs_dtype_name(dst->dtype),
                       hs_dtype_name(dt));
    if (!hs_tensor_is_contiguous(dst))
        return HS_FAIL(HS_ERR_ARG, "%s: destination must be contiguous", op);
    return HS_OK;
}

hs_status hs_geometry_contiguous(hs_tensor **tmp, const hs_tensor **use, const hs_tensor *src) {
    *tmp = NULL;
    *use = src;
    if (hs_tensor_is_contiguous(src))
        return HS_OK;
    HS_TRY(hs_tensor_clone(tmp, src));
    *use = *tmp;
    return HS_OK;
}

int64_t hs_geometry_border_index(int64_t p, int64_t n, hs_border b) {
    if (p >= 0 && p < n)
        return p;
    switch (b) {
    case HS_BORDER_REPLICATE: return p < 0 ? 0 : n - 1;
    case HS_BORDER_CONSTANT: return -1;
    case HS_BORDER_REFLECT:
        if (n == 1)
            return 0;
        while (p < 0 || p >= n)
            p = p < 0 ? -p - 1 : 2 * n - 1 - p;
        return p;
    case HS_BORDER_REFLECT101:
    default:
        if (n == 1)
            return 0;
        while (p < 0 || p >= n)
            p = p < 0 ? -p : 2 * n - 2 - p;
        return p;
    }
}

static const char *const border_names[HS_BORDER_COUNT] = {"reflect101", "replicate", "constant", "reflect"};

hs_status hs_geometry_border_from_name(hs_border *b, const char *name) {
    if (!name)
        return HS_FAIL(HS_ERR_ARG, "border: name is NULL");
    for (int i = 0; i < HS_BORDER_COUNT; i++)
        if (strcmp(name, border_names[i]) == 0) {
            *b = (hs_border)i;
            return HS_OK;
        }
    if (strcmp(name, "reflect_101") == 0 || strcmp(name, "default") == 0) {
        *b = HS_BORDER_REFLECT101;
        return HS_OK;
    }
    return HS_FAIL(HS_ERR_ARG, "border: unknown mode '%s' (reflect101, replicate, constant, reflect)", name);
}

const char *hs_geometry_border_name(hs_border b) {
    return (unsigned)b < HS_BORDER_COUNT ? border_names[b] : "?";
}

hs_status hs_geometry_interp_from_name(hs_interp *m, const char *name) {
    if (name && strcmp(name, "nearest") == 0)
        *m = HS_INTERP_NEAREST;
    else if (name && (strcmp(name, "bilinear") == 0 || strcmp(name, "linear") == 0))
        *m = HS_INTERP_BILINEAR;
    else if (name && strcmp(name, "area") == 0)
        *m = HS_INTERP_AREA;
    else
        return HS_FAIL(HS_ERR_ARG, "resize: unknown interpolation '%s' (nearest, bilinear, area)",
                       name ? name : "(null)");
    return HS_OK;
}

// Element (y, x, c) of an image with any strides, as a byte pointer.
static const char *px(const hs_tensor *t, int64_t y, int64_t x, int64_t c) {
    int64_t off = y * t->stride[0] + x * t->stride[1] + (t->ndim == 3 ? c * t->stride[2] : 0);
    return (const char *)t->data + off * (int64_t)hs_dtype_size(t->dtype);
}

// ---- crop, pad, flip, rot90 ----

hs_status hs_geometry_crop(hs_tensor *dst, const hs_tensor *src, int64_t x, int64_t y) {
    hs_image_dims s, d;
    HS_TRY(hs_geometry_dims(&s, src, "crop"));
    if (!dst || dst->ndim != s.ndim)
        return HS_FAIL(HS_ERR_SHAPE, "crop: destination must have %d dims", s.ndim);
    d = s;
    d.h = dst->shape[0];
    d.w = dst->shape[1];
    HS_TRY(hs_geometry_check_dst(dst, "crop", src->dtype, &d));
    if (x < 0 || y < 0 || d.w < 1 || d.h < 1 || x + d.w > s.w || y + d.h > s.h)
        return HS_FAIL(HS_ERR_ARG, "crop: window x=%lld y=%lld w=%lld h=%lld leaves the %lldx%lld image", (long long)x,
                       (long long)y, (long long)d.w, (long long)d.h, (long long)s.w, (long long)s.h);
    hs_tensor view = *src;
    view.shape[0] = d.h;
    view.shape[1] = d.w;
    view.data = (void *)px(src, y, x, 0);
    view.storage = NULL;
    return hs_tensor_copy(dst, &view);
}

hs_status hs_geometry_pad(hs_tensor *dst, const hs_tensor *src, int64_t top, int64_t left, hs_border border,
                          double value) {
    hs_image_dims s, d;
    HS_TRY(hs_geometry_dims(&s, src, "pad"));
    if (!dst || dst->ndim != s.ndim)
        return HS_FAIL(HS_ERR_SHAPE, "pad: destination must have %d dims", s.ndim);
    if ((unsigned)border >= HS_BORDER_COUNT)
        return HS_FAIL(HS_ERR_ARG, "pad: bad border mode %d", (int)border);
    d = s;
    d.h = dst->shape[0];
    d.w = dst->shape[1];
    HS_TRY(hs_geometry_check_dst(dst, "pad", src->dtype, &d));
    int64_t bottom = d.h - s.h - top, right = d.w - s.w - left;
    if (top < 0 || left < 0 || bottom < 0 || right < 0)
        return HS_FAIL(HS_ERR_ARG, "pad: negative padding (top %lld, left %lld, bottom %lld, right %lld)",
                       (long long)top, (long long)left, (long long)bottom, (long long)right);
    size_t es = hs_dtype_size(src->dtype);
    char fill[8];
    if (src->dtype == HS_DTYPE_U8) {
        double v = value < 0 ? 0 : value > 255 ? 255 : nearbyint(value);
        fill[0] = (char)(uint8_t)v;
    } else {
        float f = (float)value;
        memcpy(fill, &f, sizeof f);
    }
    char *out = dst->data;
    for (int64_t y = 0; y < d.h; y++) {
        int64_t sy = hs_geometry_border_index(y - top, s.h, border);
        for (int64_t x = 0; x < d.w; x++) {
            int64_t sx = hs_geometry_border_index(x - left, s.w, border);
            char *o = out + ((y * d.w + x) * d.c) * (int64_t)es;
            for (int64_t c = 0; c < d.c; c++)
                memcpy(o + c * (int64_t)es, sy < 0 || sx < 0 ? fill : px(src, sy, sx, c), es);
        }
    }
    return HS_OK;
}

hs_status hs_geometry_flip(hs_tensor *dst, const hs_tensor *src, int horizontal) {
    hs_image_dims s;
    HS_TRY(hs_geometry_dims(&s, src, "flip"));
    HS_TRY(hs_geometry_check_dst(dst, "flip", src->dtype, &s));
    if (dst->data == src->data)
        return HS_FAIL(HS_ERR_ARG, "flip: destination must not alias the source");
    size_t es = hs_dtype_size(src->dtype);
    char *out = dst->data;
    for (int64_t y = 0; y < s.h; y++)
        for (int64_t x = 0; x < s.w; x++) {
            int64_t sy = horizontal ? y : s.h - 1 - y, sx = horizontal ? s.w - 1 - x : x;
            char *o = out + ((y * s.w + x) * s.c) * (int64_t)es;
            for (int64_t c = 0; c < s.c; c++)
                memcpy(o + c * (int64_t)es, px(src, sy, sx, c), es);
        }
    return HS_OK;
}

hs_status hs_geometry_rot90(hs_tensor *dst, const hs_tensor *src, int k) {
    hs_image_dims s, d;
    HS_TRY(hs_geometry_dims(&s, src, "rot90"));
    k = ((k % 4) + 4) % 4;
    d = s;
    if (k & 1) {
        d.h = s.w;
        d.w = s.h;
    }
    HS_TRY(hs_geometry_check_dst(dst, "rot90", src->dtype, &d));
    if (dst->data == src->data)
        return HS_FAIL(HS_ERR_ARG, "rot90: destination must not alias the source");
    size_t es = hs_dtype_size(src->dtype);
    char *out = dst->data;
    for (int64_t i = 0; i < d.h; i++)
        for (int64_t j = 0; j < d.w; j++) {
            int64_t sy, sx;  // numpy.rot90: k=1 maps out[i][j] = in[j][W-1-i]
            switch (k) {
            case 0: sy = i; sx = j; break;
            case 1: sy = j; sx = s.w - 1 - i; break;
            case 2: sy = s.h - 1 - i; sx = s.w - 1 - j; break;
            default: sy = s.h - 1 - j; sx = i; break;
            }
            char *o = out + ((i * d.w + j) * d.c) * (int64_t)es;
            for (int64_t c = 0; c < d.c; c++)
                memcpy(o + c * (int64_t)es, px(src, sy, sx, c), es);
        }
    return HS_OK;
}

// ---- resize ----

#define COEF_BITS 11
#define COEF_SCALE (1 << COEF_BITS)

typedef struct {
    const hs_tensor *src;  // contiguous
    hs_tensor *dst;
    hs_image_dims s, d;
    const int64_t *xofs, *yofs;    // source pixel index per dst column / row
    const float *xalpha, *yalpha;  // fractional parts (bilinear) per dst column / row
    const int16_t *xa, *ya;        // U8 fixed-point coefficients (2 per dst column / row)
    const int32_t *eo0, *eo1;      // per output element (dx*C + c): source element offsets
    const int32_t *ea0, *ea1;      //   and U8 fixed-point weights
    const float *ef0, *ef1;        //   and F32 weights
    const int32_t *ea01;           // the U8 weights as int16 pairs (ea0 | ea1 << 16)
    const int16_t *hidx;           // per 16 elements: 32 word indices (both taps) from hbase
    const int32_t *hbase;          // per 16 elements: lowest source offset, -1: span > 64 bytes
    // area tables
    const int64_t *xtab_di, *xtab_si;
    const float *xtab_a;
    int64_t xtab_n;
    const int64_t *ytab_di, *ytab_si;
    const float *ytab_a;
    int64_t ytab_n;
    const int64_t *ytab_start;  // first ytab entry of each dst row (d.h + 1 entries)
    int iscale_x, iscale_y;
    int fast;  // U8 bilinear: use hrow_u8_row (vectorised); 0: the plain loops (tests)
    void *scratch;  // per chunk
    size_t scratch_bytes;
    int64_t grain;
} resize_ctx;

// Coefficients of OpenCV's linear resize (resize.cpp, the !area_mode / area_mode branches).
static void linear_coefs(int64_t *ofs, float *alpha, int64_t dsize, int64_t ssize, int area_mode) {
    double scale = (double)ssize / (double)dsize, inv_scale = (double)dsize / (double)ssize;
    for (int64_t dx = 0; dx < dsize; dx++) {
        int64_t sx;
        float fx;
        if (!area_mode) {
            fx = (float)(((double)dx + 0.5) * scale - 0.5);
            sx = (int64_t)floorf(fx);
            fx -= (float)sx;
        } else {
            sx = (int64_t)floor((double)dx * scale);
            fx = (float)((double)(dx + 1) - (double)(sx + 1) * inv_scale);
            fx = fx <= 0 ? 0.f : fx - floorf(fx);
        }
        if (sx < 0) {
            fx = 0;
            sx = 0;
        }
        if (sx >= ssize - 1) {
            fx = 0;
            sx = ssize - 1;
        }
        ofs[dx] = sx;
        alpha[dx] = fx;
    }
}

static int16_t fixed_coef(float v) { return (int16_t)lrintf(v * (float)COEF_SCALE); }

// One horizontally interpolated source row: h[j] for the n = dw*C output elements, through the
// per-element tables (source offsets o0/o1, weights).
static void hrow_u8(int32_t *h, const uint8_t *s, const resize_ctx *r, int64_t n) {
    for (int64_t j = 0; j < n; j++)
        h[j] = s[r->eo0[j]] * r->ea0[j] + s[r->eo1[j]] * r->ea1[j];
}

// The same for 3 channels, one or two source rows at once (s1 NULL: one): one table lookup per
// pixel instead of per element, shared by both rows; the integer arithmetic is hrow_u8's.
static void hrow2_u8_c3(int32_t *restrict h0, int32_t *restrict h1, const uint8_t *restrict s0,
                        const uint8_t *restrict s1, const resize_ctx *r, int64_t dw) {
    const int32_t *restrict eo0 = r->eo0, *restrict eo1 = r->eo1, *restrict ea0 = r->ea0, *restrict ea1 = r->ea1;
    for (int64_t x = 0; x < dw; x++) {
        int64_t j = 3 * x;
        int32_t o0 = eo0[j], o1 = eo1[j], a0 = ea0[j], a1 = ea1[j];
        int32_t p0 = s0[o0] * a0 + s0[o1] * a1, p1 = s0[o0 + 1] * a0 + s0[o1 + 1] * a1,
                p2 = s0[o0 + 2] * a0 + s0[o1 + 2] * a1;
        h0[j] = p0;
        h0[j + 1] = p1;
        h0[j + 2] = p2;
        if (s1) {
            int32_t q0 = s1[o0] * a0 + s1[o1] * a1, q1 = s1[o0 + 1] * a0 + s1[o1 + 1] * a1,
                    q2 = s1[o0 + 2] * a0 + s1[o1 + 2] * a1;
            h1[j] = q0;
            h1[j + 1] = q1;
            h1[j + 2] = q2;
        }
    }
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define HS_RESIZE_AVX512 1
#endif

// hrow_u8 for a whole row (row_bytes: the source row's length). With AVX-512BW, 16 output
// elements per step: their taps lie within 64 bytes from the step's lowest source offset
// (base, precomputed with the word indices of both taps; base -1: wider, done by the plain
// loop), so the 64 bytes are loaded once (masked at the row's end), widened to words, the tap
// pairs picked by one two-register word permute and multiplied-added as int16 pairs
// (vpmaddwd: the same exact integer products and sum as the plain loop). Gathers would be
// slower (the gather-data-sampling microcode fix makes them slow on many Intel CPUs).
static void hrow_u8_row(int32_t *restrict h, const uint8_t *restrict s, const resize_ctx *r, int64_t n,
                        int64_t row_bytes, int64_t pf) {
    int64_t j = 0;
#ifdef HS_RESIZE_AVX512
    for (; j + 16 <= n; j += 16) {
        int32_t base = r->hbase[j / 16];
        if (base < 0) {
            for (int64_t k = j; k < j + 16; k++)
                h[k] = s[r->eo0[k]] * r->ea0[k] + s[r->eo1[k]] * r->ea1[k];
            continue;
        }
        if (pf)  // the same bytes of the source row the next output row needs (downscales)
            _mm_prefetch((const char *)(s + pf + base), _MM_HINT_T0);
        int64_t avail = row_bytes - base;
        __mmask64 m = avail >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << avail) - 1);
        __m512i v = _mm512_maskz_loadu_epi8(m, (const void *)(s + base));
        __m512i w0 = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(v)),
                w1 = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(v, 1));
        __m512i pair = _mm512_permutex2var_epi16(w0, _mm512_loadu_si512((const void *)(r->hidx + 2 * j)), w1);
        _mm512_storeu_si512((void *)(h + j), _mm512_madd_epi16(pair, _mm512_loadu_si512((const void *)(r->ea01 + j))));
    }
#else
    (void)pf;
#endif
    for (; j < n; j++)
        h[j] = s[r->eo0[j]] * r->ea0[j] + s[r->eo1[j]] * r->ea1[j];
}

// The vertical U8 pass below, 32 elements per step in 16-bit lanes (vpmulhw is exactly the
// (b * x) >> 16 of the 32-bit formula: x = h >> 4 < 2^15 and b <= 2048); returns the count done.
static int64_t vrow_u8(uint8_t *restrict o, const int32_t *restrict h0, const int32_t *restrict h1, int32_t b0,
                       int32_t b1, int64_t n) {
    int64_t i = 0;
#ifdef HS_RESIZE_AVX512
    const __m512i vb0 = _mm512_set1_epi16((short)b0), vb1 = _mm512_set1_epi16((short)b1),
                  two = _mm512_set1_epi16(2), zero = _mm512_setzero_si512();
    for (; i + 32 <= n; i += 32) {
        __m512i x[2];
        const int32_t *src[2] = {h0 + i, h1 + i};
        for (int k = 0; k < 2; k++) {
            __m256i a = _mm512_cvtepi32_epi16(_mm512_srai_epi32(_mm512_loadu_si512((const void *)src[k]), 4));
            __m256i b = _mm512_cvtepi32_epi16(_mm512_srai_epi32(_mm512_loadu_si512((const void *)(src[k] + 16)), 4));
            x[k] = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
        }
        __m512i v = _mm512_add_epi16(_mm512_add_epi16(_mm512_mulhi_epi16(vb0, x[0]), _mm512_mulhi_epi16(vb1, x[1])), two);
        v = _mm512_max_epi16(_mm512_srai_epi16(v, 2), zero);
        _mm256_storeu_si256((__m256i *)(void *)(o + i), _mm512_cvtusepi16_epi8(v));
    }
#else
    (void)o, (void)h0, (void)h1, (void)b0, (void)b1, (void)n;
#endif
    return i;
}

static void hrow_f32(float *h, const float *s, const resize_ctx *r, int64_t n) {
    for (int64_t j = 0; j < n; j++)
        h[j] = s[r->eo0[j]] * r->ef0[j] + s[r->eo1[j]] * r->ef1[j];
}

static void resize_linear_rows(void *vctx, int64_t begin, int64_t end) {
    resize_ctx *r = vctx;
    const int64_t C = r->s.c, sw = r->s.w, sh = r->s.h, dw = r->d.w, n = dw * C;
    char *scr = (char *)r->scratch + (size_t)(begin / r->grain) * r->scratch_bytes;
    int64_t have0 = -1, have1 = -1;  // source rows currently in the two row buffers
    if (r->src->dtype == HS_DTYPE_U8) {
        int32_t *h0 = (int32_t *)scr, *h1 = h0 + n;
        const uint8_t *S = r->src->data;
        uint8_t *D = r->dst->data;
        for (int64_t dy = begin; dy < end; dy++) {
            int64_t sy0 = r->yofs[dy], sy1 = sy0 + 1 < sh ? sy0 + 1 : sh - 1;
            if (sy0 == have1 && sy0 != have0) {  // moving down one row: reuse the lower buffer
                int32_t *t = h0;
                h0 = h1;
                h1 = t;
                have0 = have1;
                have1 = -1;
            }
            if (r->fast) {
                // prefetch distance: from this row to the one the next output row reads in its place
                int64_t nsy = dy + 1 < end ? r->yofs[dy + 1] : -1, next1 = nsy + 1 < sh ? nsy + 1 : sh - 1;
                int64_t pf0 = nsy > sy1 ? (nsy - sy0) * sw * C : 0, pf1 = nsy > sy1 ? (next1 - sy1) * sw * C : 0;
                if (have0 != sy0)
                    hrow_u8_row(h0, S + sy0 * sw * C, r, n, sw * C, pf0);
                if (have1 != sy1)
                    hrow_u8_row(h1, S + sy1 * sw * C, r, n, sw * C, pf1);
            } else if (C == 3 && have0 != sy0 && have1 != sy1) {
                hrow2_u8_c3(h0, h1, S + sy0 * sw * C, S + sy1 * sw * C, r, dw);
            } else if (C == 3) {
                if (have0 != sy0)
                    hrow2_u8_c3(h0, NULL, S + sy0 * sw * C, NULL, r, dw);
                if (have1 != sy1)
                    hrow2_u8_c3(h1, NULL, S + sy1 * sw * C, NULL, r, dw);
            } else {
                if (have0 != sy0)
                    hrow_u8(h0, S + sy0 * sw * C, r, n);
                if (have1 != sy1)
                    hrow_u8(h1, S + sy1 * sw * C, r, n);
            }
            have0 = sy0;
            have1 = sy1;
            // OpenCV's SIMD vertical pass (VResizeLinearVec_32s8u): rows pre-shifted by 4, the
            // products' high halves summed, then a rounding shift by 2.
            int32_t b0 = r->ya[2 * dy], b1 = r->ya[2 * dy + 1];
            uint8_t *o = D + dy * n;
            for (int64_t i = r->fast ? vrow_u8(o, h0, h1, b0, b1, n) : 0; i < n; i++) {
                int32_t v = (((b0 * (h0[i] >> 4)) >> 16) + ((b1 * (h1[i] >> 4)) >> 16) + 2) >> 2;
                o[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    } else {
        float *h0 = (float *)scr, *h1 = h0 + n;
        const float *S = r->src->data;
        float *D = r->dst->data;
        for (int64_t dy = begin; dy < end; dy++) {
            int64_t sy0 = r->yofs[dy], sy1 = sy0 + 1 < sh ? sy0 + 1 : sh - 1;
            if (sy0 == have1 && sy0 != have0) {
                float *t = h0;
                h0 = h1;
                h1 = t;
                have0 = have1;
                have1 = -1;
            }
            if (have0 != sy0)
                hrow_f32(h0, S + sy0 * sw * C, r, n);
            if (have1 != sy1)
                hrow_f32(h1, S + sy1 * sw * C, r, n);
            have0 = sy0;
            have1 = sy1;
            float b1 = r->yalpha[dy], b0 = 1.f - b1;
            float *o = D + dy * n;
            for (int64_t i = 0; i < n; i++)
                o[i] = h0[i] * b0 + h1[i] * b1;
        }
    }
}

static void resize_nearest_rows(void *vctx, int64_t begin, int64_t end) {
    resize_ctx *r = vctx;
    const int64_t C = r->s.c, dw = r->d.w;
    size_t es = hs_dtype_size(r->src->dtype);
    const char *S = r->src->data;
    char *D = r->dst->data;
    for (int64_t dy = begin; dy < end; dy++) {
        const char *s = S + (size_t)(r->yofs[dy] * r->s.w * C) * es;
        char *o = D + (size_t)(dy * dw * C) * es;
        for (int64_t dx = 0; dx < dw; dx++)
            memcpy(o + (size_t)(dx * C) * es, s + (size_t)(r->xofs[dx] * C) * es, (size_t)C * es);
    }
}

// Integer-scale area averaging (OpenCV resizeAreaFast); the 2x2 U8 case rounds half up as
// OpenCV's SIMD path does, other scales round sum/area to nearest. Each output row first sums
// its sy source rows column by column into a row buffer (contiguous, vectorises), then adds
// sx neighbouring pixels of that buffer per output element. U8 sums are exact integers, so the
// order is free; F32 sums are rows-then-columns (OpenCV adds in yet another order, and all of
// them agree to float rounding).
static void resize_area_fast_rows(void *vctx, int64_t begin, int64_t end) {
    resize_ctx *r = vctx;
    const int64_t C = r->s.c, sw = r->s.w, dw = r->d.w, n = dw * C, m = dw * r->iscale_x * C;
    const int sx = r->iscale_x, sy = r->iscale_y, area = sx * sy;
    const float scale = 1.f / (float)area;
    char *scr = (char *)r->scratch + (size_t)(begin / r->grain) * r->scratch_bytes;
    for (int64_t dy = begin; dy < end; dy++) {
        if (r->src->dtype == HS_DTYPE_U8) {
            const uint8_t *S = (const uint8_t *)r->src->data + dy * sy * sw * C;
            uint8_t *restrict o = (uint8_t *)r->dst->data + dy * n;
            if (sx == 2 && sy == 2) {
                const uint8_t *s0 = S, *s1 = S + sw * C;
                for (int64_t dx = 0; dx < dw; dx++)
                    for (int64_t c = 0; c < C; c++) {
                        int64_t k = 2 * dx * C + c;
                        o[dx * C + c] = (uint8_t)((s0[k] + s0[k + C] + s1[k] + s1[k + C] + 2) >> 2);
                    }
                continue;
            }
            int32_t *restrict vs = (int32_t *)scr;
            {
                const uint8_t *restrict s0 = S;
                for (int64_t i = 0; i < m; i++)
                    vs[i] = s0[i];
            }
            for (int i = 1; i < sy; i++) {
                const uint8_t *restrict si = S + i * sw * C;
                for (int64_t k = 0; k < m; k++)
                    vs[k] += si[k];
            }
            if (C == 3 && sx == 4) {  // the common case spelt out: 4 pixels of 3 channels
                for (int64_t dx = 0; dx < dw; dx++) {
                    const int32_t *v = vs + 12 * dx;
                    for (int c = 0; c < 3; c++) {
                        long q = lrintf((float)(v[c] + v[c + 3] + v[c + 6] + v[c + 9]) * scale);
                        o[3 * dx + c] = (uint8_t)(q > 255 ? 255 : q);
                    }
                }
                continue;
            }
            for (int64_t dx = 0; dx < dw; dx++)
                for (int64_t c = 0; c < C; c++) {
                    const int32_t *v = vs + dx * sx * C + c;
                    int32_t sum = 0;
                    for (int t = 0; t < sx; t++)
                        sum += v[t * C];
                    long q = lrintf((float)sum * scale);
                    o[dx * C + c] = (uint8_t)(q > 255 ? 255 : q);
                }
        } else {
            const float *S = (const float *)r->src->data + dy * sy * sw * C;
            float *restrict o = (float *)r->dst->data + dy * n;
            float *restrict vs = (float *)scr;
            {
                const float *restrict s0 = S;
                for (int64_t i = 0; i < m; i++)
                    vs[i] = s0[i];
            }
            for (int i = 1; i < sy; i++) {
                const float *restrict si = S + i * sw * C;
                for (int64_t k = 0; k < m; k++)
                    vs[k] += si[k];
            }
            if (C == 3 && sx == 4) {
                for (int64_t dx = 0; dx < dw; dx++) {
                    const float *v = vs + 12 * dx;
                    for (int c = 0; c < 3; c++)
                        o[3 * dx + c] = (((v[c] + v[c + 3]) + v[c + 6]) + v[c + 9]) * scale;
                }
                continue;
            }
            for (int64_t dx = 0; dx < dw; dx++)
                for (int64_t c = 0; c < C; c++) {
                    const float *v = vs + dx * sx * C + c;
                    float sum = 0;
                    for (int t = 0; t < sx; t++)
                        sum += v[t * C];
                    o[dx * C + c] = sum * scale;
                }
        }
    }
}

// General area averaging (OpenCV computeResizeAreaTab + ResizeArea_Invoker), float sums.
static void resize_area_rows(void *vctx, int64_t begin, int64_t end) {
    resize_ctx *r = vctx;
    const int64_t C = r->s.c, sw = r->s.w, n = r->d.w * C;
    float *buf = (float *)((char *)r->scratch + (size_t)(begin / r->grain) * r->scratch_bytes), *sum = buf + n;
    for (int64_t dy = begin; dy < end; dy++) {
        memset(sum, 0, (size_t)n * sizeof *sum);
        for (int64_t k = r->ytab_start[dy]; k < r->ytab_start[dy + 1]; k++) {
            int64_t sy = r->ytab_si[k];
            float beta = r->ytab_a[k];
            memset(buf, 0, (size_t)n * sizeof *buf);
            if (r->src->dtype == HS_DTYPE_U8) {
                const uint8_t *s = (const uint8_t *)r->src->data + sy * sw * C;
                for (int64_t t = 0; t < r->xtab_n; t++) {
                    int64_t di = r->xtab_di[t] * C, si = r->xtab_si[t] * C;
                    for (int64_t c = 0; c < C; c++)
                        buf[di + c] += (float)s[si + c] * r->xtab_a[t];
                }
            } else {
                const float *s = (const float *)r->src->data + sy * sw * C;
                for (int64_t t = 0; t < r->xtab_n; t++) {
                    int64_t di = r->xtab_di[t] * C, si = r->xtab_si[t] * C;
                    for (int64_t c = 0; c < C; c++)
                        buf[di + c] += s[si + c] * r->xtab_a[t];
                }
            }
            for (int64_t i = 0; i < n; i++)
                sum[i] += beta * buf[i];
        }
        if (r->src->dtype == HS_DTYPE_U8) {
            uint8_t *o = (uint8_t *)r->dst->data + dy * n;
            for (int64_t i = 0; i < n; i++) {
                long v = lrintf(sum[i]);
                o[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        } else {
            memcpy((float *)r->dst->data + dy * n, sum, (size_t)n * sizeof *sum);
        }
    }
}

// Area table entries for one axis; returns the count (at most 2*ssize + dsize).
static int64_t area_tab(int64_t *di, int64_t *si, float *alpha, int64_t ssize, int64_t dsize) {
    double scale = (double)ssize / (double)dsize;
    int64_t k = 0;
    for (int64_t dx = 0; dx < dsize; dx++) {
        double fsx1 = (double)dx * scale, fsx2 = fsx1 + scale;
        double cell = fmin(scale, (double)ssize - fsx1);
        int64_t sx1 = (int64_t)ceil(fsx1), sx2 = (int64_t)floor(fsx2);
        if (sx2 > ssize - 1)
            sx2 = ssize - 1;
        if (sx1 > sx2)
            sx1 = sx2;
        if ((double)sx1 - fsx1 > 1e-3) {
            di[k] = dx;
            si[k] = sx1 - 1;
            alpha[k++] = (float)(((double)sx1 - fsx1) / cell);
        }
        for (int64_t sx = sx1; sx < sx2; sx++) {
            di[k] = dx;
            si[k] = sx;
            alpha[k++] = (float)(1.0 / cell);
        }
        if (fsx2 - (double)sx2 > 1e-3) {
            di[k] = dx;
            si[k] = sx2;
            alpha[k++] = (float)(fmin(fmin(fsx2 - (double)sx2, 1.), cell) / cell);
        }
    }
    return k;
}

static int64_t row_grain(int64_t h) {
    int64_t g = (h + 15) / 16;
    return g < 1 ? 1 : g;
}

static hs_status resize_impl(hs_tensor *dst, const hs_tensor *src, hs_interp interp, int plain);

hs_status hs_geometry_resize(hs_tensor *dst, const hs_tensor *src, hs_interp interp) {
    return resize_impl(dst, src, interp, 0);
}

hs_status hs_geometry_resize_ref(hs_tensor *dst, const hs_tensor *src, hs_interp interp) {
    return resize_impl(dst, src, interp, 1);
}

static hs_status resize_impl(hs_tensor *dst, const hs_tensor *src, hs_interp interp, int plain) {
    hs_image_dims s, d;
    HS_TRY(hs_geometry_dims(&s, src, "resize"));
    if (!dst || dst->ndim != s.ndim)
        return HS_FAIL(HS_ERR_SHAPE, "resize: destination must have %d dims", s.ndim);
    if ((unsigned)interp >= HS_INTERP_COUNT)
        return HS_FAIL(HS_ERR_ARG, "resize: bad interpolation %d", (int)interp);
    d = s;
    d.h = dst->shape[0];
    d.w = dst->shape[1];
    if (d.h < 1 || d.w < 1)
        return HS_FAIL(HS_ERR_SHAPE, "resize: target size %lldx%lld must be positive", (long long)d.w,
                       (long long)d.h);
    HS_TRY(hs_geometry_check_dst(dst, "resize", src->dtype, &d));
    hs_tensor *tmp;
    const hs_tensor *in;
    HS_TRY(hs_geometry_contiguous(&tmp, &in, src));

    resize_ctx r;
    memset(&r, 0, sizeof r);
    r.src = in;
    r.dst = dst;
    r.s = s;
    r.d = d;
    r.grain = row_grain(d.h);
    int64_t nchunks = (d.h + r.grain - 1) / r.grain;
    double scale_x = (double)s.w / (double)d.w, scale_y = (double)s.h / (double)d.h;
    int iscale_x = (int)lrint(scale_x), iscale_y = (int)lrint(scale_y);
    int area_fast = fabs(scale_x - iscale_x) < 2.220446049250313e-16 && fabs(scale_y - iscale_y) < 2.220446049250313e-16;
    if (interp == HS_INTERP_BILINEAR && area_fast && iscale_x == 2 && iscale_y == 2)
        interp = HS_INTERP_AREA;  // OpenCV: an exact 2x bilinear downscale is the 2x2 average
    hs_status st = HS_OK;
    void *mem = NULL;
    if (interp == HS_INTERP_NEAREST) {
        mem = hs_alloc((size_t)(d.w + d.h) * sizeof(int64_t));
        if (!mem) {
            st = HS_FAIL(HS_ERR_NOMEM, "resize: out of memory");
            goto done;
        }
        int64_t *xo = mem, *yo = xo + d.w;
        for (int64_t x = 0; x < d.w; x++) {
            int64_t v = (int64_t)floor((double)x * scale_x);
            xo[x] = v < s.w - 1 ? v : s.w - 1;
        }
        for (int64_t y = 0; y < d.h; y++) {
            int64_t v = (int64_t)floor((double)y * scale_y);
            yo[y] = v < s.h - 1 ? v : s.h - 1;
        }
        r.xofs = xo;
        r.yofs = yo;
        hs_parallel_for(d.h, r.grain, resize_nearest_rows, &r);
    } else if (interp == HS_INTERP_AREA && scale_x >= 1 && scale_y >= 1) {
        if (area_fast) {
            r.iscale_x = iscale_x;
            r.iscale_y = iscale_y;
            r.scratch_bytes = ((size_t)(d.w * iscale_x * s.c) * 4 + 63) & ~(size_t)63;  // column sums
            mem = hs_alloc((size_t)nchunks * r.scratch_bytes);
            if (!mem) {
                st = HS_FAIL(HS_ERR_NOMEM, "resize: out of memory");
                goto done;
            }
            r.scratch = mem;
            hs_parallel_for(d.h, r.grain, resize_area_fast_rows, &r);
            goto done;
        }
        int64_t nx = 2 * s.w + d.w + 2, ny = 2 * s.h + d.h + 2;
        r.scratch_bytes = (size_t)(2 * d.w * s.c) * sizeof(float);
        size_t tabs = (size_t)(nx + ny) * (2 * sizeof(int64_t) + sizeof(float)) + (size_t)(d.h + 1) * sizeof(int64_t);
        mem = hs_alloc(tabs + (size_t)nchunks * r.scratch_bytes + 64);
        if (!mem) {
            st = HS_FAIL(HS_ERR_NOMEM, "resize: out of memory");
            goto done;
        }
        r.scratch = mem;
        int64_t *p = (int64_t *)((char *)mem + (size_t)nchunks * r.scratch_bytes);
        int64_t *xdi = p, *xsi = xdi + nx, *ydi = xsi + nx, *ysi = ydi + ny, *ystart = ysi + ny;
        float *xa = (float *)(ystart + d.h + 1), *ya = xa + nx;
        r.xtab_n = area_tab(xdi, xsi, xa, s.w, d.w);
        r.ytab_n = area_tab(ydi, ysi, ya, s.h, d.h);
        int64_t k = 0;
        for (int64_t y = 0; y <= d.h; y++) {
            while (k < r.ytab_n && ydi[k] < y)
                k++;
            ystart[y] = k;
        }
        r.xtab_di = xdi;
        r.xtab_si = xsi;
        r.xtab_a = xa;
        r.ytab_di = ydi;
        r.ytab_si = ysi;
        r.ytab_a = ya;
        r.ytab_start = ystart;
        hs_parallel_for(d.h, r.grain, resize_area_rows, &r);
    } else {
        int area_mode = interp == HS_INTERP_AREA;
        r.scratch_bytes = ((size_t)(2 * d.w * s.c) * 4 + 63) & ~(size_t)63;
        size_t tabs = (size_t)(d.w + d.h) * (sizeof(int64_t) + sizeof(float) + 2 * sizeof(int16_t)) +
                      (size_t)(d.w * s.c) * 9 * 4 + 128;
        if (s.w * s.c > INT32_MAX) {
            st = HS_FAIL(HS_ERR_ARG, "resize: rows of %lld elements are too long", (long long)(s.w * s.c));
            goto done;
        }
        mem = hs_alloc((size_t)nchunks * r.scratch_bytes + tabs + 64);
        if (!mem) {
            st = HS_FAIL(HS_ERR_NOMEM, "resize: out of memory");
            goto done;
        }
        r.scratch = mem;
        int64_t *xo = (int64_t *)((char *)mem + (size_t)nchunks * r.scratch_bytes), *yo = xo + d.w;
        float *xal = (float *)(yo + d.h), *yal = xal + d.w;
        int16_t *xa = (int16_t *)(yal + d.h), *ya = xa + 2 * d.w;
        linear_coefs(xo, xal, d.w, s.w, area_mode);
        linear_coefs(yo, yal, d.h, s.h, area_mode);
        for (int64_t x = 0; x < d.w; x++) {
            xa[2 * x] = fixed_coef(1.f - xal[x]);
            xa[2 * x + 1] = fixed_coef(xal[x]);
        }
        for (int64_t y = 0; y < d.h; y++) {
            ya[2 * y] = fixed_coef(1.f - yal[y]);
            ya[2 * y + 1] = fixed_coef(yal[y]);
        }
        const int64_t n = d.w * s.c;
        int32_t *eo0 = (int32_t *)(((uintptr_t)(ya + 2 * d.h) + 15) & ~(uintptr_t)15), *eo1 = eo0 + n, *ea0 = eo1 + n,
                *ea1 = ea0 + n;
        float *ef0 = (float *)(ea1 + n), *ef1 = ef0 + n;
        int32_t *ea01 = (int32_t *)(ef1 + n), *hbase = ea01 + n;
        int16_t *hidx = (int16_t *)(hbase + n / 16 + 1);
        for (int64_t x = 0; x < d.w; x++) {
            int64_t x0 = xo[x], x1 = xo[x] + 1 < s.w ? xo[x] + 1 : s.w - 1;
            for (int64_t c = 0; c < s.c; c++) {
                int64_t j = x * s.c + c;
                eo0[j] = (int32_t)(x0 * s.c + c);
                eo1[j] = (int32_t)(x1 * s.c + c);
                ea0[j] = xa[2 * x];
                ea1[j] = xa[2 * x + 1];
                ef0[j] = 1.f - xal[x];
                ef1[j] = xal[x];
                ea01[j] = (int32_t)((uint32_t)(uint16_t)xa[2 * x] | (uint32_t)(uint16_t)xa[2 * x + 1] << 16);
            }
        }
        r.xofs = xo;
        r.yofs = yo;
        r.xalpha = xal;
        r.yalpha = yal;
        r.xa = xa;
        r.ya = ya;
        r.eo0 = eo0;
        r.eo1 = eo1;
        r.ea0 = ea0;
        r.ea1 = ea1;
        r.ef0 = ef0;
        r.ef1 = ef1;
        for (int64_t c = 0; c < n / 16; c++) {  // the word-permute tables of hrow_u8_row
            int32_t lo = eo0[16 * c], hi = eo1[16 * c];
            for (int64_t k = 16 * c; k < 16 * c + 16; k++) {
                lo = eo0[k] < lo ? eo0[k] : lo;
                hi = eo1[k] > hi ? eo1[k] : hi;
            }
            hbase[c] = hi - lo < 64 ? lo : -1;
            for (int64_t k = 0; k < 16; k++) {
                hidx[32 * c + 2 * k] = (int16_t)(hi - lo < 64 ? eo0[16 * c + k] - lo : 0);
                hidx[32 * c + 2 * k + 1] = (int16_t)(hi - lo < 64 ? eo1[16 * c + k] - lo : 0);
            }
        }
        r.ea01 = ea01;
        r.hidx = hidx;
        r.hbase = hbase;
        r.fast = !plain;
        hs_parallel_for(d.h, r.grain, resize_linear_rows, &r);
    }
done:
    hs_free(mem);
    hs_tensor_free(tmp);
    return st;
}

// ---- tiling ----

hs_status hs_geometry_tissue_fraction(double *frac, const hs_tensor *img, hs_tissue_method method, double thr) {
    hs_image_dims s;
    HS_TRY(hs_geometry_dims(&s, img, "tissue"));
    if (method == HS_TISSUE_SATURATION && s.c < 3)
        return HS_FAIL(HS_ERR_SHAPE, "tissue: the saturation test needs an RGB image, got %lld channel(s)",
                       (long long)s.c);
    if (method != HS_TISSUE_SATURATION && method != HS_TISSUE_OD)
        return HS_FAIL(HS_ERR_ARG, "tissue: bad method %d", (int)method);
    const int u8 = img->dtype == HS_DTYPE_U8;
    const int64_t nc = method == HS_TISSUE_SATURATION ? 3 : s.c;
    int64_t count = 0;
    for (int64_t y = 0; y < s.h; y++)
        for (int64_t x = 0; x < s.w; x++) {
            double od = 0, mx = -1e300, mn = 1e300;
            for (int64_t c = 0; c < nc; c++) {
                const char *p = px(img, y, x, c);
                double a = u8 ? *(const uint8_t *)p / 255.0 : (double)*(const float *)p;
                mx = fmax(mx, a);
                mn = fmin(mn, a);
                od += -log10(fmax(a, 1.0 / 255.0));
            }
            int tissue;
            if (method == HS_TISSUE_SATURATION)
                tissue = mx > 0 && (mx - mn) / mx > thr;
            else
                tissue = od / (double)nc > thr;
            count += tissue;
        }
    *frac = (double)count / (double)(s.h * s.w);
    return HS_OK;
}

hs_status hs_geometry_tile_origins(int64_t *xy, int64_t cap, int64_t *n, int64_t H, int64_t W, int64_t size,
                                   int64_t stride) {
    if (size < 1 || stride < 1)
        return HS_FAIL(HS_ERR_ARG, "tiles: size (%lld) and stride (%lld) must be >= 1", (long long)size,
                       (long long)stride);
    int64_t k = 0;
    for (int64_t y = 0; y + size <= H; y += stride)
        for (int64_t x = 0; x + size <= W; x += stride) {
            if (xy) {
                if (k >= cap)
                    return HS_FAIL(HS_ERR_ARG, "tiles: room for %lld origins, need more", (long long)cap);
                xy[2 * k] = x;
                xy[2 * k + 1] = y;
            }
            k++;
        }
    *n = k;
    return HS_OK;
}
