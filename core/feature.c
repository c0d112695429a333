// core/feature.c: colour, LBP and GLCM feature rows (see feature.h; not "features.h", which would
// shadow glibc's <features.h> on the core include path). Dimension letters: N images,
// H rows, W columns, F features. LBP and GLCM replicate scikit-image 0.19's loops operation for
// operation (same double arithmetic, same rounding of offsets) so that ties in flat regions fall
// the same way; the build uses -std=c11, which keeps the compiler from contracting a*b+c to FMA.
#include "feature.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "parallel.h"
#include "stain.h"

#define N_GLCM_PROPS 6
#define N_GLCM_DIST 3
#define N_GLCM_ANGLE 4
#define LBP_P 8

static const char *const kind_names[HS_FEATURE_COUNT] = {"rgb_hist", "hsv_hist", "hed_hist",
                                                         "color_moments", "lbp", "glcm"};
static const char *const glcm_prop_names[N_GLCM_PROPS] = {"contrast", "dissimilarity", "homogeneity",
                                                          "energy", "correlation", "ASM"};
static const double glcm_distances[N_GLCM_DIST] = {1, 2, 4};
static const int glcm_angle_deg[N_GLCM_ANGLE] = {0, 45, 90, 135};
static const double lbp_radii[2] = {1, 2};

void hs_features_spec_default(hs_features_spec *spec) {
    memset(spec, 0, sizeof *spec);
    spec->bins = 16;
    spec->glcm_levels = 8;
    spec->hed_max[0] = 0.3f;
    spec->hed_max[1] = 0.2f;
    spec->hed_max[2] = 0.3f;
}

const char *hs_features_kind_name(hs_feature_kind kind) {
    return (unsigned)kind < HS_FEATURE_COUNT ? kind_names[kind] : "?";
}

hs_status hs_features_spec_add(hs_features_spec *spec, const char *name) {
    for (int k = 0; k < HS_FEATURE_COUNT; k++) {
        if (strcmp(name, kind_names[k]) != 0)
            continue;
        for (int i = 0; i < spec->n_kinds; i++)
            if (spec->kinds[i] == (hs_feature_kind)k)
                return HS_FAIL(HS_ERR_ARG, "features: '%s' listed twice", name);
        if (spec->n_kinds >= HS_FEATURE_COUNT)
            return HS_FAIL(HS_ERR_ARG, "features: too many kinds");
        spec->kinds[spec->n_kinds++] = (hs_feature_kind)k;
        return HS_OK;
    }
    return HS_FAIL(HS_ERR_ARG,
                   "features: unknown feature '%s' (known: rgb_hist, hsv_hist, hed_hist, color_moments, lbp, glcm)",
                   name);
}

static int64_t kind_size(hs_feature_kind k, const hs_features_spec *s) {
    switch (k) {
    case HS_FEATURE_RGB_HIST:
    case HS_FEATURE_HSV_HIST:
    case HS_FEATURE_HED_HIST:
        return 3 * (int64_t)s->bins;
    case HS_FEATURE_COLOR_MOMENTS:
        return 9;
    case HS_FEATURE_LBP:
        return 2 * (LBP_P + 2);
    case HS_FEATURE_GLCM:
        return N_GLCM_PROPS * N_GLCM_DIST * N_GLCM_ANGLE;
    default:
        return 0;
    }
}

hs_status hs_features_size(int64_t *n, const hs_features_spec *spec) {
    *n = 0;
    if (spec->n_kinds < 1 || spec->n_kinds > HS_FEATURE_COUNT)
        return HS_FAIL(HS_ERR_ARG, "features: the spec lists %d kinds, need 1..%d", spec->n_kinds, HS_FEATURE_COUNT);
    if (spec->bins < 2 || spec->bins > 256)
        return HS_FAIL(HS_ERR_ARG, "features: bins %d, need 2..256", spec->bins);
    if (spec->glcm_levels != 8 && spec->glcm_levels != 32)
        return HS_FAIL(HS_ERR_ARG, "features: glcm levels %d, need 8 or 32", spec->glcm_levels);
    for (int c = 0; c < 3; c++)
        if (!(spec->hed_max[c] > 0.0f) || !isfinite(spec->hed_max[c]))
            return HS_FAIL(HS_ERR_ARG, "features: hed_max[%d] = %g, need a positive number", c,
                           (double)spec->hed_max[c]);
    int64_t total = 0;
    for (int i = 0; i < spec->n_kinds; i++) {
        if ((unsigned)spec->kinds[i] >= HS_FEATURE_COUNT)
            return HS_FAIL(HS_ERR_ARG, "features: bad kind %d", (int)spec->kinds[i]);
        for (int j = 0; j < i; j++)
            if (spec->kinds[j] == spec->kinds[i])
                return HS_FAIL(HS_ERR_ARG, "features: '%s' listed twice", kind_names[spec->kinds[i]]);
        total += kind_size(spec->kinds[i], spec);
    }
    *n = total;
    return HS_OK;
}

hs_status hs_features_name(char *buf, size_t n, const hs_features_spec *spec, int64_t j) {
    int64_t total;
    if (n)
        buf[0] = '\0';
    HS_TRY(hs_features_size(&total, spec));
    if (j < 0 || j >= total)
        return HS_FAIL(HS_ERR_ARG, "features: feature %lld out of range 0..%lld", (long long)j, (long long)total - 1);
    for (int i = 0; i < spec->n_kinds; i++) {
        hs_feature_kind k = spec->kinds[i];
        int64_t sz = kind_size(k, spec);
        if (j >= sz) {
            j -= sz;
            continue;
        }
        static const char *const ch[3][3] = {{"r", "g", "b"}, {"h", "s", "v"}, {"h", "e", "d"}};
        static const char *const mom[3] = {"mean", "std", "skew"};
        int jj = (int)j;
        switch (k) {
        case HS_FEATURE_RGB_HIST:
        case HS_FEATURE_HSV_HIST:
        case HS_FEATURE_HED_HIST:
            snprintf(buf, n, "%s_%s_%02d", kind_names[k], ch[k - HS_FEATURE_RGB_HIST][jj / spec->bins], jj % spec->bins);
            break;
        case HS_FEATURE_COLOR_MOMENTS:
            snprintf(buf, n, "moment_%s_%s", mom[jj % 3], ch[0][jj / 3]);
            break;
        case HS_FEATURE_LBP:
            snprintf(buf, n, "lbp_r%d_u%d", (int)lbp_radii[jj / (LBP_P + 2)], jj % (LBP_P + 2));
            break;
        case HS_FEATURE_GLCM: {
            int p = jj / (N_GLCM_DIST * N_GLCM_ANGLE), d = (jj / N_GLCM_ANGLE) % N_GLCM_DIST, a = jj % N_GLCM_ANGLE;
            snprintf(buf, n, "glcm_%s_d%d_a%d", glcm_prop_names[p], (int)glcm_distances[d], glcm_angle_deg[a]);
            break;
        }
        default:
            break;
        }
        return HS_OK;
    }
    return HS_OK;  // not reached: j < total
}

// ---- image access ----

static hs_status check_rgb(const hs_tensor *rgb, const char *op) {
    char b[96];
    if (rgb->ndim != 3 || rgb->shape[2] != 3 || rgb->shape[0] < 1 || rgb->shape[1] < 1)
        return HS_FAIL(HS_ERR_SHAPE, "%s: expected a (H,W,3) image, got %s", op, hs_tensor_shape_str(rgb, b, sizeof b));
    if (rgb->dtype != HS_DTYPE_U8)
        return HS_FAIL(HS_ERR_DTYPE, "%s: expected a U8 image, got %s", op, hs_dtype_name(rgb->dtype));
    return HS_OK;
}

static inline uint8_t px(const hs_tensor *t, int64_t y, int64_t x, int c) {
    return ((const uint8_t *)t->data)[y * t->stride[0] + x * t->stride[1] + c * t->stride[2]];
}

static void normalise(float *h, int n, double total) {
    for (int i = 0; i < n; i++)
        h[i] = (float)((double)h[i] / total);
}

static int bin_of(double v, double range, int bins) {
    double f = v / range * bins;
    if (!(f > 0))
        return 0;  // also NaN
    return f >= bins ? bins - 1 : (int)f;
}

hs_status hs_features_rgb_hist(float *out, const hs_tensor *rgb, int bins) {
    HS_TRY(check_rgb(rgb, "rgb_hist"));
    if (bins < 2 || bins > 256)
        return HS_FAIL(HS_ERR_ARG, "rgb_hist: bins %d, need 2..256", bins);
    memset(out, 0, sizeof *out * 3 * (size_t)bins);
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                out[c * bins + px(rgb, y, x, c) * bins / 256] += 1.0f;  // exact below 2^24 per bin
    for (int c = 0; c < 3; c++)
        normalise(out + c * bins, bins, (double)(H * W));
    return HS_OK;
}

// HSV and HED are computed here per pixel rather than through color.c/stain.c, whose block
// drivers call hs_parallel_for: hs_features_batch already runs one image per pool task.

// skimage.color.rgb2hsv of one U8 pixel, in double (blue wins over green over red on ties).
static void hsv_of(double out[3], uint8_t r8, uint8_t g8, uint8_t b8) {
    double r = r8 / 255.0, g = g8 / 255.0, b = b8 / 255.0;
    double v = r > g ? (r > b ? r : b) : (g > b ? g : b);
    double mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    double delta = v - mn, h = 0;
    if (delta != 0) {
        if (r == v)
            h = (g - b) / delta;
        if (g == v)
            h = 2.0 + (b - r) / delta;
        if (b == v)
            h = 4.0 + (r - g) / delta;
        h = fmod(h / 6.0, 1.0);
        if (h < 0)
            h += 1.0;  // Python's % is non-negative
    }
    out[0] = h;
    out[1] = delta == 0 ? 0.0 : delta / v;
    out[2] = v;
}

// Histograms (3*bins) of a per-pixel 3-vector function of the image over [0, range[c]].
static void pixel_hist(float *out, const hs_tensor *rgb, int bins, const double range[3],
                       void (*f)(double out[3], uint8_t, uint8_t, uint8_t, const void *), const void *ctx) {
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    int64_t count[3][256] = {{0}};
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            double v[3];
            f(v, px(rgb, y, x, 0), px(rgb, y, x, 1), px(rgb, y, x, 2), ctx);
            for (int c = 0; c < 3; c++)
                count[c][bin_of(v[c], range[c], bins)]++;
        }
    for (int c = 0; c < 3; c++)
        for (int b = 0; b < bins; b++)
            out[c * bins + b] = (float)((double)count[c][b] / (double)(H * W));
}

static void hsv_fn(double out[3], uint8_t r, uint8_t g, uint8_t b, const void *ctx) {
    (void)ctx;
    hsv_of(out, r, g, b);
}

hs_status hs_features_hsv_hist(float *out, const hs_tensor *rgb, int bins) {
    HS_TRY(check_rgb(rgb, "hsv_hist"));
    if (bins < 2 || bins > 256)
        return HS_FAIL(HS_ERR_ARG, "hsv_hist: bins %d, need 2..256", bins);
    const double range[3] = {1, 1, 1};
    pixel_hist(out, rgb, bins, range, hsv_fn, NULL);
    return HS_OK;
}

// skimage.color.rgb2hed: stains = (log(max(rgb, 1e-6)) / log(1e-6)) @ hed_from_rgb, clipped at 0.
typedef struct {
    double lut[256];  // log(max(v/255, 1e-6)) / log(1e-6)
    double m[3][3];   // stain_from_rgb
} hed_ctx;

static void hed_fn(double out[3], uint8_t r, uint8_t g, uint8_t b, const void *vctx) {
    const hed_ctx *ctx = vctx;
    double l[3] = {ctx->lut[r], ctx->lut[g], ctx->lut[b]};
    for (int k = 0; k < 3; k++) {
        double s = l[0] * ctx->m[0][k] + l[1] * ctx->m[1][k] + l[2] * ctx->m[2][k];
        out[k] = s > 0 ? s : 0;
    }
}

hs_status hs_features_hed_hist(float *out, const hs_tensor *rgb, int bins, const float hed_max[3]) {
    HS_TRY(check_rgb(rgb, "hed_hist"));
    if (bins < 2 || bins > 256)
        return HS_FAIL(HS_ERR_ARG, "hed_hist: bins %d, need 2..256", bins);
    for (int c = 0; c < 3; c++)
        if (!(hed_max[c] > 0.0f) || !isfinite(hed_max[c]))
            return HS_FAIL(HS_ERR_ARG, "hed_hist: hed_max[%d] = %g, need a positive number", c, (double)hed_max[c]);
    hs_stain_matrix sm;
    HS_TRY(hs_stain_matrix_named(&sm, "hed"));
    hed_ctx ctx;
    memcpy(ctx.m, sm.stain_from_rgb, sizeof ctx.m);
    for (int v = 0; v < 256; v++) {
        double f = v / 255.0;
        ctx.lut[v] = log(f > 1e-6 ? f : 1e-6) / log(1e-6);
    }
    const double range[3] = {hed_max[0], hed_max[1], hed_max[2]};
    pixel_hist(out, rgb, bins, range, hed_fn, &ctx);
    return HS_OK;
}

hs_status hs_features_color_moments(float *out, const hs_tensor *rgb) {
    HS_TRY(check_rgb(rgb, "color_moments"));
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    double n = (double)(H * W);
    for (int c = 0; c < 3; c++) {
        // exact integer histogram first: the moments are then sums over 256 values, not H*W
        int64_t count[256] = {0};
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++)
                count[px(rgb, y, x, c)]++;
        double mean = 0;
        for (int v = 0; v < 256; v++)
            mean += (double)count[v] * (v / 255.0);
        mean /= n;
        double m2 = 0, m3 = 0;
        for (int v = 0; v < 256; v++) {
            double d = v / 255.0 - mean;
            m2 += (double)count[v] * d * d;
            m3 += (double)count[v] * d * d * d;
        }
        out[3 * c + 0] = (float)mean;
        out[3 * c + 1] = (float)sqrt(m2 / n);
        out[3 * c + 2] = (float)cbrt(m3 / n);
    }
    return HS_OK;
}

// ---- gray, LBP ----

static hs_status check_gray(const hs_tensor *g, const char *op) {
    char b[96];
    if (g->ndim != 2 || g->shape[0] < 1 || g->shape[1] < 1)
        return HS_FAIL(HS_ERR_SHAPE, "%s: expected a (H,W) gray image, got %s", op, hs_tensor_shape_str(g, b, sizeof b));
    if (g->dtype != HS_DTYPE_F64)
        return HS_FAIL(HS_ERR_DTYPE, "%s: expected an F64 gray image, got %s", op, hs_dtype_name(g->dtype));
    return HS_OK;
}

// skimage's rgb2gray is img_as_float (v * (1/255), a product, not a division) then `rgb @ coeffs`,
// which numpy 1.24 hands to OpenBLAS's dgemv: for images at least 2 pixels wide that is the fused
// chain below, G first, bit for bit (checked on random images of many shapes and on every Kather
// tile). LBP compares interpolated neighbours with the centre exactly, so in flat regions
// (background tiles) one ulp of gray decides whole histogram bins.
static inline double gray_of(uint8_t r, uint8_t g, uint8_t b) {
    const double k = 1.0 / 255.0;
    return fma(b * k, 0.0721, fma(r * k, 0.2125, (g * k) * 0.7154));
}

static void gray_rows(double *g, const hs_tensor *rgb) {
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            g[y * W + x] = gray_of(px(rgb, y, x, 0), px(rgb, y, x, 1), px(rgb, y, x, 2));
}

hs_status hs_features_gray(hs_tensor *gray, const hs_tensor *rgb) {
    HS_TRY(check_rgb(rgb, "gray"));
    HS_TRY(check_gray(gray, "gray"));
    char a[96];
    if (gray->shape[0] != rgb->shape[0] || gray->shape[1] != rgb->shape[1])
        return HS_FAIL(HS_ERR_SHAPE, "gray: out %s, want [%lld,%lld]", hs_tensor_shape_str(gray, a, sizeof a),
                       (long long)rgb->shape[0], (long long)rgb->shape[1]);
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    double *g = gray->data;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            g[y * gray->stride[0] + x * gray->stride[1]] = gray_of(px(rgb, y, x, 0), px(rgb, y, x, 1), px(rgb, y, x, 2));
    return HS_OK;
}

static inline double pixel_or_zero(const double *img, int64_t H, int64_t W, long r, long c) {
    return (r < 0 || r >= H || c < 0 || c >= W) ? 0.0 : img[r * W + c];
}

// skimage's _shared/interpolation.pxd bilinear_interpolation, mode 'C', cval 0.
static inline double bilinear(const double *img, int64_t H, int64_t W, double r, double c) {
    long minr = (long)floor(r), minc = (long)floor(c), maxr = (long)ceil(r), maxc = (long)ceil(c);
    double dr = r - (double)minr, dc = c - (double)minc;
    double tl = pixel_or_zero(img, H, W, minr, minc), tr = pixel_or_zero(img, H, W, minr, maxc);
    double bl = pixel_or_zero(img, H, W, maxr, minc), br = pixel_or_zero(img, H, W, maxr, maxc);
    double top = (1 - dc) * tl + dc * tr;
    double bottom = (1 - dc) * bl + dc * br;
    return (1 - dr) * top + dr * bottom;
}

// numpy's round(x, 5): rint(x * 1e5) / 1e5
static double round5(double x) { return nearbyint(x * 100000.0) / 100000.0; }

// Uniform LBP codes of a contiguous (H,W) double image into codes[H*W] (values 0..P+1).
static void lbp_codes(uint8_t *codes, const double *img, int64_t H, int64_t W, int P, double R) {
    double rp[32], cp[32], tex[32];
    int sgn[32];
    for (int i = 0; i < P; i++) {
        double a = 2 * M_PI * i / P;
        rp[i] = round5(-R * sin(a));
        cp[i] = round5(R * cos(a));
    }
    for (int64_t r = 0; r < H; r++)
        for (int64_t c = 0; c < W; c++) {
            double center = img[r * W + c];
            for (int i = 0; i < P; i++)
                tex[i] = bilinear(img, H, W, (double)r + rp[i], (double)c + cp[i]);
            int ones = 0, changes = 0;
            for (int i = 0; i < P; i++) {
                sgn[i] = tex[i] - center >= 0;
                ones += sgn[i];
            }
            for (int i = 0; i < P - 1; i++)  // skimage counts the P-1 linear transitions only; for
                changes += sgn[i] != sgn[i + 1];  // a circular pattern "<= 2" means the same thing
            codes[r * W + c] = (uint8_t)(changes <= 2 ? ones : P + 1);
        }
}

static hs_status check_lbp_args(int P, double R, const char *op) {
    if (P < 1 || P > 32)
        return HS_FAIL(HS_ERR_ARG, "%s: P = %d, need 1..32", op, P);
    if (!(R > 0) || !isfinite(R))
        return HS_FAIL(HS_ERR_ARG, "%s: R = %g, need a positive radius", op, R);
    return HS_OK;
}

// A contiguous copy of gray (or gray itself when already contiguous); *owned is what to free.
static hs_status contiguous_gray(const double **g, double **owned, const hs_tensor *gray) {
    *owned = NULL;
    if (hs_tensor_is_contiguous(gray)) {
        *g = gray->data;
        return HS_OK;
    }
    int64_t H = gray->shape[0], W = gray->shape[1];
    double *d = hs_alloc(sizeof *d * (size_t)(H * W));
    if (!d)
        return HS_FAIL(HS_ERR_NOMEM, "lbp: out of memory for a %lldx%lld image", (long long)H, (long long)W);
    const double *s = gray->data;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            d[y * W + x] = s[y * gray->stride[0] + x * gray->stride[1]];
    *g = d;
    *owned = d;
    return HS_OK;
}

hs_status hs_features_lbp(hs_tensor *codes, const hs_tensor *gray, int P, double R) {
    HS_TRY(check_gray(gray, "lbp"));
    HS_TRY(check_lbp_args(P, R, "lbp"));
    char a[96];
    if (codes->ndim != 2 || codes->shape[0] != gray->shape[0] || codes->shape[1] != gray->shape[1])
        return HS_FAIL(HS_ERR_SHAPE, "lbp: codes %s, want [%lld,%lld]", hs_tensor_shape_str(codes, a, sizeof a),
                       (long long)gray->shape[0], (long long)gray->shape[1]);
    if (codes->dtype != HS_DTYPE_F64 && codes->dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_DTYPE, "lbp: codes must be F64 or F32, got %s", hs_dtype_name(codes->dtype));
    int64_t H = gray->shape[0], W = gray->shape[1];
    const double *g;
    double *owned;
    HS_TRY(contiguous_gray(&g, &owned, gray));
    uint8_t *c8 = hs_alloc((size_t)(H * W));
    if (!c8) {
        hs_free(owned);
        return HS_FAIL(HS_ERR_NOMEM, "lbp: out of memory");
    }
    lbp_codes(c8, g, H, W, P, R);
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            int64_t o = y * codes->stride[0] + x * codes->stride[1];
            if (codes->dtype == HS_DTYPE_F64)
                ((double *)codes->data)[o] = c8[y * W + x];
            else
                ((float *)codes->data)[o] = c8[y * W + x];
        }
    hs_free(c8);
    hs_free(owned);
    return HS_OK;
}

static void code_hist(float *out, const uint8_t *codes, int64_t n, int P) {
    int64_t count[34] = {0};
    for (int64_t i = 0; i < n; i++)
        count[codes[i]]++;
    for (int b = 0; b < P + 2; b++)
        out[b] = (float)((double)count[b] / (double)n);
}

hs_status hs_features_lbp_hist(float *out, const hs_tensor *gray, int P, double R) {
    HS_TRY(check_gray(gray, "lbp_hist"));
    HS_TRY(check_lbp_args(P, R, "lbp_hist"));
    int64_t H = gray->shape[0], W = gray->shape[1];
    const double *g;
    double *owned;
    HS_TRY(contiguous_gray(&g, &owned, gray));
    uint8_t *c8 = hs_alloc((size_t)(H * W));
    if (!c8) {
        hs_free(owned);
        return HS_FAIL(HS_ERR_NOMEM, "lbp_hist: out of memory");
    }
    lbp_codes(c8, g, H, W, P, R);
    code_hist(out, c8, H * W, P);
    hs_free(c8);
    hs_free(owned);
    return HS_OK;
}

hs_status hs_features_lbp_row(float *out, const hs_tensor *rgb) {
    HS_TRY(check_rgb(rgb, "lbp"));
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    double *g = hs_alloc(sizeof *g * (size_t)(H * W));
    uint8_t *c8 = hs_alloc((size_t)(H * W));
    if (!g || !c8) {
        hs_free(g);
        hs_free(c8);
        return HS_FAIL(HS_ERR_NOMEM, "lbp: out of memory for a %lldx%lld image", (long long)H, (long long)W);
    }
    gray_rows(g, rgb);
    for (int k = 0; k < 2; k++) {
        lbp_codes(c8, g, H, W, LBP_P, lbp_radii[k]);
        code_hist(out + k * (LBP_P + 2), c8, H * W, LBP_P);
    }
    hs_free(c8);
    hs_free(g);
    return HS_OK;
}

// ---- GLCM ----

// Counts of (levels x levels) for one offset, symmetric or not, into m (double, zeroed by caller).
static void glcm_count(double *m, int levels, int stride_ij, const uint8_t *img, int64_t H, int64_t W,
                       int64_t s0, int64_t s1, long orow, long ocol) {
    int64_t r0 = orow < 0 ? -orow : 0, r1 = orow > 0 ? H - orow : H;
    int64_t c0 = ocol < 0 ? -ocol : 0, c1 = ocol > 0 ? W - ocol : W;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = c0; c < c1; c++) {
            int i = img[r * s0 + c * s1], j = img[(r + orow) * s0 + (c + ocol) * s1];
            if (i < levels && j < levels)
                m[(i * levels + j) * stride_ij] += 1;
        }
}

hs_status hs_features_glcm(hs_tensor *glcm, const hs_tensor *img, const double *distances, int nd,
                           const double *angles, int na, int symmetric, int normed) {
    char a[96];
    if (img->ndim != 2 || img->dtype != HS_DTYPE_U8)
        return HS_FAIL(HS_ERR_SHAPE, "glcm: expected a (H,W) U8 image, got %s %s", hs_dtype_name(img->dtype),
                       hs_tensor_shape_str(img, a, sizeof a));
    if (nd < 1 || na < 1)
        return HS_FAIL(HS_ERR_ARG, "glcm: need at least one distance and one angle (got %d, %d)", nd, na);
    if (glcm->ndim != 4 || glcm->dtype != HS_DTYPE_F64 || glcm->shape[0] != glcm->shape[1] || glcm->shape[0] < 2 ||
        glcm->shape[0] > 256 || glcm->shape[2] != nd || glcm->shape[3] != na || !hs_tensor_is_contiguous(glcm))
        return HS_FAIL(HS_ERR_SHAPE, "glcm: out must be a contiguous F64 (L,L,%d,%d) with L in 2..256, got %s %s", nd, na,
                       hs_dtype_name(glcm->dtype), hs_tensor_shape_str(glcm, a, sizeof a));
    for (int d = 0; d < nd; d++)
        if (!(distances[d] >= 0) || !isfinite(distances[d]))
            return HS_FAIL(HS_ERR_ARG, "glcm: distance %d is %g, need >= 0", d, distances[d]);
    for (int k = 0; k < na; k++)
        if (!isfinite(angles[k]))
            return HS_FAIL(HS_ERR_ARG, "glcm: angle %d is not finite", k);
    int L = (int)glcm->shape[0];
    int64_t H = img->shape[0], W = img->shape[1];
    double *m = glcm->data;
    int64_t per = (int64_t)nd * na;
    memset(m, 0, sizeof *m * (size_t)(L * L * per));
    for (int ai = 0; ai < na; ai++)
        for (int di = 0; di < nd; di++) {
            long orow = lround(sin(angles[ai]) * distances[di]), ocol = lround(cos(angles[ai]) * distances[di]);
            if (labs(orow) >= H || labs(ocol) >= W)
                continue;
            double *base = m + di * na + ai;
            glcm_count(base, L, (int)per, img->data, H, W, img->stride[0], img->stride[1], orow, ocol);
            if (symmetric)
                for (int i = 0; i < L; i++)
                    for (int j = i + 1; j < L; j++) {
                        double s = base[(i * L + j) * per] + base[(j * L + i) * per];
                        base[(i * L + j) * per] = base[(j * L + i) * per] = s;
                    }
            if (symmetric)
                for (int i = 0; i < L; i++)
                    base[(i * L + i) * per] *= 2;
            if (normed) {
                double sum = 0;
                for (int i = 0; i < L * L; i++)
                    sum += base[i * per];
                if (sum > 0)
                    for (int i = 0; i < L * L; i++)
                        base[i * per] /= sum;
            }
        }
    return HS_OK;
}

hs_status hs_features_glcm_props(float *out, const hs_tensor *glcm) {
    char a[96];
    if (glcm->ndim != 4 || glcm->dtype != HS_DTYPE_F64 || glcm->shape[0] != glcm->shape[1] ||
        !hs_tensor_is_contiguous(glcm))
        return HS_FAIL(HS_ERR_SHAPE, "glcm_props: expected a contiguous F64 (L,L,nd,na), got %s %s",
                       hs_dtype_name(glcm->dtype), hs_tensor_shape_str(glcm, a, sizeof a));
    int L = (int)glcm->shape[0];
    int64_t nd = glcm->shape[2], na = glcm->shape[3], per = nd * na;
    const double *m = glcm->data;
    for (int64_t k = 0; k < per; k++) {
        double sum = 0;
        for (int i = 0; i < L * L; i++)
            sum += m[i * per + k];
        if (sum == 0)
            sum = 1;
        double contrast = 0, dissim = 0, homog = 0, asm_ = 0, mi = 0, mj = 0;
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++) {
                double p = m[(i * L + j) * per + k] / sum;
                double d = i - j;
                contrast += p * d * d;
                dissim += p * fabs(d);
                homog += p / (1 + d * d);
                asm_ += p * p;
                mi += i * p;
                mj += j * p;
            }
        double vi = 0, vj = 0, cov = 0;
        for (int i = 0; i < L; i++)
            for (int j = 0; j < L; j++) {
                double p = m[(i * L + j) * per + k] / sum;
                vi += p * (i - mi) * (i - mi);
                vj += p * (j - mj) * (j - mj);
                cov += p * (i - mi) * (j - mj);
            }
        double si = sqrt(vi), sj = sqrt(vj);
        double corr = (si < 1e-15 || sj < 1e-15) ? 1.0 : cov / (si * sj);
        const double v[N_GLCM_PROPS] = {contrast, dissim, homog, sqrt(asm_), corr, asm_};
        for (int p = 0; p < N_GLCM_PROPS; p++)
            out[p * per + k] = (float)v[p];
    }
    return HS_OK;
}

hs_status hs_features_glcm_row(float *out, const hs_tensor *rgb, int levels) {
    HS_TRY(check_rgb(rgb, "glcm"));
    if (levels != 8 && levels != 32)
        return HS_FAIL(HS_ERR_ARG, "glcm: levels %d, need 8 or 32", levels);
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    double *g = hs_alloc(sizeof *g * (size_t)(H * W));
    uint8_t *q = hs_alloc((size_t)(H * W));
    hs_tensor *m = NULL, *qt = NULL;
    int64_t mshape[4] = {levels, levels, N_GLCM_DIST, N_GLCM_ANGLE}, qshape[2] = {H, W};
    if (!g || !q) {
        hs_free(g);
        hs_free(q);
        return HS_FAIL(HS_ERR_NOMEM, "glcm: out of memory for a %lldx%lld image", (long long)H, (long long)W);
    }
    gray_rows(g, rgb);
    int shift = levels == 8 ? 5 : 3;
    for (int64_t i = 0; i < H * W; i++) {
        double v = nearbyint(g[i] * 255.0);  // img_as_ubyte: rint(x * 255), clipped
        int u = v < 0 ? 0 : (v > 255 ? 255 : (int)v);
        q[i] = (uint8_t)(u >> shift);
    }
    double angles[N_GLCM_ANGLE];
    for (int a = 0; a < N_GLCM_ANGLE; a++)
        angles[a] = a * (M_PI / 4);
    hs_status s = hs_tensor_new(&m, HS_DTYPE_F64, 4, mshape);
    if (s == HS_OK)
        s = hs_tensor_wrap(&qt, HS_DTYPE_U8, 2, qshape, q);
    if (s == HS_OK)
        s = hs_features_glcm(m, qt, glcm_distances, N_GLCM_DIST, angles, N_GLCM_ANGLE, 1, 1);
    if (s == HS_OK)
        s = hs_features_glcm_props(out, m);
    hs_tensor_free(qt);
    hs_tensor_free(m);
    hs_free(q);
    hs_free(g);
    return s;
}

// ---- rows and batches ----

hs_status hs_features_compute(float *row, int64_t n, const hs_tensor *rgb, const hs_features_spec *spec) {
    int64_t total;
    HS_TRY(hs_features_size(&total, spec));
    if (n != total)
        return HS_FAIL(HS_ERR_SHAPE, "features: row has %lld entries, the spec needs %lld", (long long)n,
                       (long long)total);
    HS_TRY(check_rgb(rgb, "features"));
    float *o = row;
    for (int i = 0; i < spec->n_kinds; i++) {
        switch (spec->kinds[i]) {
        case HS_FEATURE_RGB_HIST:
            HS_TRY(hs_features_rgb_hist(o, rgb, spec->bins));
            break;
        case HS_FEATURE_HSV_HIST:
            HS_TRY(hs_features_hsv_hist(o, rgb, spec->bins));
            break;
        case HS_FEATURE_HED_HIST:
            HS_TRY(hs_features_hed_hist(o, rgb, spec->bins, spec->hed_max));
            break;
        case HS_FEATURE_COLOR_MOMENTS:
            HS_TRY(hs_features_color_moments(o, rgb));
            break;
        case HS_FEATURE_LBP:
            HS_TRY(hs_features_lbp_row(o, rgb));
            break;
        case HS_FEATURE_GLCM:
            HS_TRY(hs_features_glcm_row(o, rgb, spec->glcm_levels));
            break;
        default:
            break;
        }
        o += kind_size(spec->kinds[i], spec);
    }
    return HS_OK;
}

typedef struct {
    const hs_tensor *images;
    const hs_features_spec *spec;
    float *rows;  // (N,F) contiguous scratch
    int64_t F;
    hs_status *status;  // (N)
} batch_ctx;

static void batch_range(void *vctx, int64_t begin, int64_t end) {
    batch_ctx *ctx = vctx;
    for (int64_t i = begin; i < end; i++) {
        hs_tensor img = {0};  // a non-owning (H,W,3) view of image i
        img.dtype = HS_DTYPE_U8;
        img.ndim = 3;
        for (int d = 0; d < 3; d++) {
            img.shape[d] = ctx->images->shape[d + 1];
            img.stride[d] = ctx->images->stride[d + 1];
        }
        img.data = (uint8_t *)ctx->images->data + i * ctx->images->stride[0];
        ctx->status[i] = hs_features_compute(ctx->rows + i * ctx->F, ctx->F, &img, ctx->spec);
    }
}

hs_status hs_features_batch(hs_tensor *out, const hs_tensor *images, const hs_features_spec *spec) {
    int64_t F;
    char a[96], b[96];
    HS_TRY(hs_features_size(&F, spec));
    if (images->ndim != 4 || images->shape[3] != 3 || images->shape[0] < 1 || images->shape[1] < 1 ||
        images->shape[2] < 1)
        return HS_FAIL(HS_ERR_SHAPE, "features: expected (N,H,W,3) images, got %s", hs_tensor_shape_str(images, a, sizeof a));
    if (images->dtype != HS_DTYPE_U8)
        return HS_FAIL(HS_ERR_DTYPE, "features: expected U8 images, got %s", hs_dtype_name(images->dtype));
    int64_t N = images->shape[0];
    if (out->ndim != 2 || out->shape[0] != N || out->shape[1] != F)
        return HS_FAIL(HS_ERR_SHAPE, "features: out %s, want [%lld,%lld]", hs_tensor_shape_str(out, b, sizeof b),
                       (long long)N, (long long)F);
    if (out->dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_DTYPE, "features: out must be F32, got %s", hs_dtype_name(out->dtype));
    float *rows = hs_alloc(sizeof *rows * (size_t)(N * F));
    hs_status *st = hs_alloc(sizeof *st * (size_t)N);
    if (!rows || !st) {
        hs_free(rows);
        hs_free(st);
        return HS_FAIL(HS_ERR_NOMEM, "features: out of memory for %lld rows", (long long)N);
    }
    batch_ctx ctx = {images, spec, rows, F, st};
    hs_parallel_for(N, 1, batch_range, &ctx);
    hs_status s = HS_OK;
    for (int64_t i = 0; i < N && s == HS_OK; i++)
        if (st[i] != HS_OK)  // the worker's message stayed on its thread: everything but memory was checked above
            s = HS_FAIL(st[i], "features: image %lld failed (%s)", (long long)i, hs_status_name(st[i]));
    if (s == HS_OK)
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < F; j++)
                ((float *)out->data)[i * out->stride[0] + j * out->stride[1]] = rows[i * F + j];
    hs_free(st);
    hs_free(rows);
    return s;
}
