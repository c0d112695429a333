// core/stain.c: colour deconvolution and stain normalisation (see stain.h). Dimension letters:
// H rows, W columns; N = H*W pixels. Deconvolution runs through color.c's block driver with a
// 256-entry table of log(max(v/255, 1e-6))/log(1e-6) for U8 input, so rgb2hed is a lookup and a
// 3x3 product per pixel; float input goes through color.c's fused log + product kernel in one
// pass. Macenko's percentiles use quickselect (numpy's linear interpolation).
#include "stain.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "tensor_ops.h"
#include "color.h"
#include "parallel.h"

// ---- matrices ----

static void inverse3(double inv[3][3], double m[3][3], double *det_out) {
    double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    *det_out = det;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            inv[i][j] = (m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0]) / det;
        }
}

static void cross3(double out[3], const double a[3], const double b[3]) {
    out[0] = a[1] * b[2] - a[2] * b[1];
    out[1] = a[2] * b[0] - a[0] * b[2];
    out[2] = a[0] * b[1] - a[1] * b[0];
}

static const struct {
    const char *name, *alias;
    double rows[3][3];  // third row all zero: skimage completes it with a cross product
} named[] = {
    {"hed", "h-e-dab", {{0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, {0.27, 0.57, 0.78}}},
    {"hdx", "h-dab", {{0.650, 0.704, 0.286}, {0.268, 0.570, 0.776}, {0, 0, 0}}},
    {"fgx", NULL, {{0.46420921, 0.83008335, 0.30827187}, {0.94705542, 0.25373821, 0.19650764}, {0, 0, 0}}},
    {"bex", NULL, {{0.834750233, 0.513556283, 0.196330403}, {0.092789, 0.954111, 0.283111}, {0, 0, 0}}},
    {"rbd", NULL,
     {{0.21393921, 0.85112669, 0.47794022}, {0.74890292, 0.60624161, 0.26731082}, {0.268, 0.570, 0.776}}},
    {"gdx", NULL, {{0.98003, 0.144316, 0.133146}, {0.268, 0.570, 0.776}, {0, 0, 0}}},
    {"hax", NULL, {{0.650, 0.704, 0.286}, {0.2743, 0.6796, 0.6803}, {0, 0, 0}}},
    {"bro", NULL,
     {{0.853033, 0.508733, 0.112656}, {0.09289875, 0.8662008, 0.49098468}, {0.10732849, 0.36765403, 0.9237484}}},
    {"bpx", NULL, {{0.7995107, 0.5913521, 0.10528667}, {0.09997159, 0.73738605, 0.6680326}, {0, 0, 0}}},
    {"ahx", NULL, {{0.874622, 0.457711, 0.158256}, {0.552556, 0.7544, 0.353744}, {0, 0, 0}}},
    {"hpx", NULL, {{0.644211, 0.716556, 0.266844}, {0.175411, 0.972178, 0.154589}, {0, 0, 0}}},
};

static hs_status finish_matrix(hs_stain_matrix *m, const char *what) {
    double det;
    inverse3(m->stain_from_rgb, m->rgb_from_stain, &det);
    if (!(fabs(det) > 1e-12) || !isfinite(det))
        return HS_FAIL(HS_ERR_ARG, "stain_matrix: %s give a singular matrix (det %g)", what, det);
    return HS_OK;
}

hs_status hs_stain_matrix_named(hs_stain_matrix *m, const char *name) {
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
        if (strcasecmp(name, named[k].name) != 0 && !(named[k].alias && strcasecmp(name, named[k].alias) == 0))
            continue;
        memcpy(m->rgb_from_stain, named[k].rows, sizeof m->rgb_from_stain);
        if (m->rgb_from_stain[2][0] == 0 && m->rgb_from_stain[2][1] == 0 && m->rgb_from_stain[2][2] == 0)
            cross3(m->rgb_from_stain[2], m->rgb_from_stain[0], m->rgb_from_stain[1]);
        return finish_matrix(m, "the named vectors");
    }
    return HS_FAIL(HS_ERR_ARG, "stain_matrix: unknown stain set '%s' (hed, hdx, fgx, bex, rbd, gdx, hax, bro, bpx, "
                               "ahx, hpx)", name);
}

static hs_status normalise(double v[3], int row) {
    double n = sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    if (!(n > 1e-12) || !isfinite(n))
        return HS_FAIL(HS_ERR_ARG, "stain_matrix: stain vector %d is zero or not finite", row + 1);
    for (int i = 0; i < 3; i++)
        v[i] /= n;
    return HS_OK;
}

hs_status hs_stain_matrix_from_vectors(hs_stain_matrix *m, const double (*vectors)[3], int n) {
    if (n != 2 && n != 3)
        return HS_FAIL(HS_ERR_ARG, "stain_matrix: expected 2 or 3 stain vectors, got %d", n);
    for (int i = 0; i < n; i++) {
        memcpy(m->rgb_from_stain[i], vectors[i], sizeof m->rgb_from_stain[i]);
        HS_TRY(normalise(m->rgb_from_stain[i], i));
    }
    if (n == 2) {
        cross3(m->rgb_from_stain[2], m->rgb_from_stain[0], m->rgb_from_stain[1]);
        if (normalise(m->rgb_from_stain[2], 2) != HS_OK)
            return HS_FAIL(HS_ERR_ARG, "stain_matrix: the two stain vectors are parallel");
    }
    return finish_matrix(m, "the stain vectors");
}

hs_status hs_stain_matrix_set(hs_stain_matrix *m, const double (*rows)[3]) {
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            if (!isfinite(rows[i][j]))
                return HS_FAIL(HS_ERR_ARG, "stain_matrix: entry (%d,%d) is not finite", i + 1, j + 1);
            m->rgb_from_stain[i][j] = rows[i][j];
        }
    return finish_matrix(m, "the rows");
}

// ---- separate / combine (block kernels for hs_color_map_pixels) ----

typedef struct {
    float m[3][3];
} mat3f;

static const double log_adjust = -13.815510557964274;  // log(1e-6), as skimage

// Float input: logs and the product in one pass straight from the input rows to the output
// rows (color.c's fused kernel; the block driver reads and writes packed rows in place).
static void k_separate_log(float *restrict d, const float *restrict s, int64_t n, const void *aux) {
    hs_color_log_matrix_block(d, s, n, 1e-6f, (float)(1.0 / log_adjust), &((const mat3f *)aux)->m[0][0]);
}

static void k_separate(float *restrict d, const float *restrict s, int64_t n, const void *aux) {
    const mat3f a = *(const mat3f *)aux;  // stain_from_rgb: stains = od (row) @ M; a local copy vectorises
    for (int64_t i = 0; i < n; i++) {
        float r = s[3 * i], g = s[3 * i + 1], b = s[3 * i + 2];
        for (int j = 0; j < 3; j++) {
            float v = r * a.m[0][j] + g * a.m[1][j] + b * a.m[2][j];
            d[3 * i + j] = v > 0 ? v : 0;
        }
    }
}

static void k_combine(float *d, const float *s, int64_t n, const void *aux) {
    const mat3f *a = aux;  // rgb_from_stain * log(1e-6): rgb = exp(stains @ M)
    for (int64_t i = 0; i < n; i++) {
        float h = s[3 * i], e = s[3 * i + 1], x = s[3 * i + 2];
        for (int j = 0; j < 3; j++) {
            float v = expf(h * a->m[0][j] + e * a->m[1][j] + x * a->m[2][j]);
            d[3 * i + j] = v < 1 ? v : 1;
        }
    }
}

// U8 input: the density of channel c at value v times row c of the matrix is a table
// tab[c][v] of 4 floats (the 4th zero), so a pixel is three table loads and two vector adds.
// Each product and sum is the float operation the block kernel does (lut[v] * m[c][j], summed
// left to right), so both paths give identical bits.
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

typedef struct {
    hs_tensor *out;
    const hs_tensor *in;
    v4f tab[3][256];
} sep_u8_job;

static void separate_u8_rows(void *ctx, int64_t y0, int64_t y1) {
    const sep_u8_job *j = ctx;
    const hs_tensor *in = j->in;
    hs_tensor *out = j->out;
    const int64_t w = in->shape[1], s1 = in->stride[1], s2 = in->stride[2];
    const v4f zero = {0, 0, 0, 0};
    for (int64_t y = y0; y < y1; y++) {
        const uint8_t *p = (const uint8_t *)in->data + y * in->stride[0];
        float *q = (float *)out->data + y * out->stride[0];
        for (int64_t x = 0; x < w; x++, p += s1, q += 3) {
            v4f v = (j->tab[0][p[0]] + j->tab[1][p[s2]]) + j->tab[2][p[2 * s2]];
            v = (v4f)((v4i)v & (v > zero));  // max(v, 0): the tables hold no NaN
            memcpy(q, &v, 3 * sizeof(float));
        }
    }
}

hs_status hs_stain_separate(hs_tensor *out, const hs_tensor *rgb, const hs_stain_matrix *m) {
    mat3f a;
    float lut[256];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            a.m[i][j] = (float)m->stain_from_rgb[i][j];
    for (int v = 0; v < 256; v++)
        lut[v] = (float)(log(fmax(v / 255.0, 1e-6)) / log_adjust);
    hs_color_map map = {"separate_stains", lut, NULL, rgb->dtype == HS_DTYPE_U8 ? k_separate : k_separate_log, &a};
    if (rgb->dtype == HS_DTYPE_U8 && rgb->ndim == 3 && rgb->shape[2] == 3 && out->ndim == 3 &&
        out->dtype == HS_DTYPE_F32 && out->shape[0] == rgb->shape[0] && out->shape[1] == rgb->shape[1] &&
        out->shape[2] == 3 && out->stride[1] == 3 && out->stride[2] == 1) {
        sep_u8_job *j = hs_alloc(sizeof *j);
        if (!j)
            return HS_FAIL(HS_ERR_NOMEM, "separate_stains: out of memory");
        j->out = out;
        j->in = rgb;
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++)
                j->tab[c][v] = (v4f){lut[v] * a.m[c][0], lut[v] * a.m[c][1], lut[v] * a.m[c][2], 0};
        int64_t w = rgb->shape[1] > 0 ? rgb->shape[1] : 1;
        hs_parallel_for(rgb->shape[0], w >= 65536 ? 1 : 65536 / w, separate_u8_rows, j);
        hs_free(j);
        return HS_OK;
    }
    return hs_color_map_pixels(out, rgb, &map);
}

hs_status hs_stain_combine(hs_tensor *out, const hs_tensor *stains, const hs_stain_matrix *m) {
    mat3f a;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            a.m[i][j] = (float)(m->rgb_from_stain[i][j] * log_adjust);
    hs_color_map map = {"combine_stains", NULL, NULL, k_combine, &a};
    if (stains->dtype == HS_DTYPE_U8 || stains->dtype == HS_DTYPE_U16)
        return HS_FAIL(HS_ERR_DTYPE, "combine_stains: expected F32 or F64 stain densities, got %s",
                       hs_dtype_name(stains->dtype));
    return hs_color_map_pixels(out, stains, &map);
}

hs_status hs_stain_rgb2hed(hs_tensor *out, const hs_tensor *rgb) {
    hs_stain_matrix m;
    HS_TRY(hs_stain_matrix_named(&m, "hed"));
    HS_TRY(hs_color_check_image(rgb, 3, "rgb2hed"));
    return hs_stain_separate(out, rgb, &m);
}

hs_status hs_stain_hed2rgb(hs_tensor *out, const hs_tensor *hed) {
    hs_stain_matrix m;
    HS_TRY(hs_stain_matrix_named(&m, "hed"));
    HS_TRY(hs_color_check_image(hed, 3, "hed2rgb"));
    return hs_stain_combine(out, hed, &m);
}

// ---- shared helpers for normalisation ----

static hs_status check_rgb_in(const hs_tensor *rgb, const char *op) {
    HS_TRY(hs_color_check_image(rgb, 3, op));
    if (rgb->dtype != HS_DTYPE_U8 && rgb->dtype != HS_DTYPE_U16 && rgb->dtype != HS_DTYPE_F32 &&
        rgb->dtype != HS_DTYPE_F64)
        return HS_FAIL(HS_ERR_DTYPE, "%s: expected a U8, U16, F32 or F64 image, got %s", op, hs_dtype_name(rgb->dtype));
    if (rgb->shape[0] * rgb->shape[1] < 1)
        return HS_FAIL(HS_ERR_SHAPE, "%s: empty image", op);
    return HS_OK;
}

static hs_status check_rgb_out(const hs_tensor *out, const hs_tensor *rgb, const char *op) {
    char a[96], b[96];
    if (out->ndim != 3 || out->shape[0] != rgb->shape[0] || out->shape[1] != rgb->shape[1] || out->shape[2] != 3)
        return HS_FAIL(HS_ERR_SHAPE, "%s: out is %s, want %s", op, hs_tensor_shape_str(out, a, sizeof a),
                       hs_tensor_shape_str(rgb, b, sizeof b));
    if (out->dtype != HS_DTYPE_U8 && out->dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_DTYPE, "%s: out must be U8 or F32, got %s", op, hs_dtype_name(out->dtype));
    return HS_OK;
}

// Pixel (y,x) channel c of a float-input image as a 0..255 intensity.
static double intensity(const hs_tensor *t, int64_t y, int64_t x, int c) {
    int64_t off = y * t->stride[0] + x * t->stride[1] + c * t->stride[2];
    switch (t->dtype) {
    case HS_DTYPE_U8: return ((const uint8_t *)t->data)[off];
    case HS_DTYPE_U16: return ((const uint16_t *)t->data)[off] / 257.0;
    case HS_DTYPE_F64: return ((const double *)t->data)[off] * 255.0;
    default: return (double)((const float *)t->data)[off] * 255.0;
    }
}

// ---- Reinhard ----

static hs_status lab_stats(hs_stain_reinhard *st, const hs_tensor *lab) {
    int64_t n = lab->shape[0] * lab->shape[1];
    const float *p = lab->data;  // contiguous (H,W,3), made by us
    double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0};
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            sum[c] += (double)p[3 * i + c];
    for (int c = 0; c < 3; c++)
        st->mean[c] = sum[c] / (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            double d = (double)p[3 * i + c] - st->mean[c];
            sq[c] += d * d;
        }
    for (int c = 0; c < 3; c++)
        st->std[c] = sqrt(sq[c] / (double)n);
    return HS_OK;
}

static hs_status new_lab(hs_tensor **lab, const hs_tensor *rgb) {
    int64_t shape[3] = {rgb->shape[0], rgb->shape[1], 3};
    HS_TRY(hs_tensor_new(lab, HS_DTYPE_F32, 3, shape));
    hs_status s = hs_color_rgb2lab(*lab, rgb);
    if (s != HS_OK) {
        hs_tensor_free(*lab);
        *lab = NULL;
    }
    return s;
}

hs_status hs_stain_reinhard_fit(hs_stain_reinhard *target, const hs_tensor *rgb) {
    HS_TRY(check_rgb_in(rgb, "reinhard_fit"));
    hs_tensor *lab;
    HS_TRY(new_lab(&lab, rgb));
    hs_status s = lab_stats(target, lab);
    hs_tensor_free(lab);
    return s;
}

hs_status hs_stain_reinhard_apply(hs_tensor *out, const hs_tensor *rgb, const hs_stain_reinhard *target) {
    HS_TRY(check_rgb_in(rgb, "reinhard_apply"));
    HS_TRY(check_rgb_out(out, rgb, "reinhard_apply"));
    for (int c = 0; c < 3; c++)
        if (!(target->std[c] >= 0) || !isfinite(target->mean[c]) || !isfinite(target->std[c]))
            return HS_FAIL(HS_ERR_ARG, "reinhard_apply: target statistics of channel %d are not finite", c + 1);
    hs_tensor *lab;
    HS_TRY(new_lab(&lab, rgb));
    hs_stain_reinhard src;
    lab_stats(&src, lab);
    float gain[3], bias[3];
    for (int c = 0; c < 3; c++) {
        double g = src.std[c] > 1e-12 ? target->std[c] / src.std[c] : 1.0;
        gain[c] = (float)g;
        bias[c] = (float)(target->mean[c] - src.mean[c] * g);
    }
    float *p = lab->data;
    int64_t n = rgb->shape[0] * rgb->shape[1];
    for (int64_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            p[3 * i + c] = p[3 * i + c] * gain[c] + bias[c];
    hs_status s = hs_color_lab2rgb(lab, lab);
    if (s == HS_OK)
        s = hs_color_convert(out, lab, out->dtype == HS_DTYPE_U8 ? 255.0f : 1.0f);
    hs_tensor_free(lab);
    return s;
}

// ---- Macenko ----

hs_stain_macenko_opts hs_stain_macenko_default_opts(void) {
    hs_stain_macenko_opts o = {240.0, 1.0, 0.15};
    return o;
}

hs_stain_macenko hs_stain_macenko_default_target(void) {
    hs_stain_macenko t = {{{0.5626, 0.7201, 0.4062}, {0.2159, 0.8012, 0.5581}}, {1.9705, 1.0308}};
    return t;
}

// Symmetric 3x3 eigen-decomposition by cyclic Jacobi; eigenvalues ascending, vectors in columns.
static void eigh3(double w[3], double v[3][3], double a_in[3][3]) {
    double a[3][3];
    memcpy(a, a_in, sizeof a);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            v[i][j] = i == j;
    for (int sweep = 0; sweep < 50; sweep++) {
        double off = fabs(a[0][1]) + fabs(a[0][2]) + fabs(a[1][2]);
        if (off < 1e-300)
            break;
        for (int p = 0; p < 2; p++)
            for (int q = p + 1; q < 3; q++) {
                if (fabs(a[p][q]) < 1e-300)
                    continue;
                double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < 3; k++) {  // a = J^T a J
                    double akp = a[k][p], akq = a[k][q];
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for (int k = 0; k < 3; k++) {
                    double apk = a[p][k], aqk = a[q][k];
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for (int k = 0; k < 3; k++) {
                    double vkp = v[k][p], vkq = v[k][q];
                    v[k][p] = c * vkp - s * vkq;
                    v[k][q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < 3; i++)
        w[i] = a[i][i];
    for (int i = 0; i < 2; i++)  // sort ascending (selection sort on 3 entries)
        for (int j = i + 1; j < 3; j++)
            if (w[j] < w[i]) {
                double t = w[i];
                w[i] = w[j];
                w[j] = t;
                for (int k = 0; k < 3; k++) {
                    t = v[k][i];
                    v[k][i] = v[k][j];
                    v[k][j] = t;
                }
            }
}

typedef struct {
    float *od;       // (N,3) optical densities
    float *buf0;     // (N) scratch
    float *buf1;     // (N) scratch
    int64_t n;
} macenko_work;

static void work_free(macenko_work *w) {
    hs_free(w->od);
    hs_free(w->buf0);
    hs_free(w->buf1);
}

static hs_status work_new(macenko_work *w, const hs_tensor *rgb, double io, const char *op) {
    memset(w, 0, sizeof *w);
    if (!(io > 0) || !isfinite(io))
        return HS_FAIL(HS_ERR_ARG, "%s: io must be positive, got %g", op, io);
    int64_t h = rgb->shape[0], wd = rgb->shape[1];
    w->n = h * wd;
    w->od = hs_alloc((size_t)w->n * 3 * sizeof(float));
    w->buf0 = hs_alloc((size_t)w->n * sizeof(float));
    w->buf1 = hs_alloc((size_t)w->n * sizeof(float));
    if (!w->od || !w->buf0 || !w->buf1) {
        work_free(w);
        return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory for %lld pixels", op, (long long)w->n);
    }
    float lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = (float)-log((v + 1.0) / io);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < wd; x++)
            for (int c = 0; c < 3; c++) {
                float *o = &w->od[3 * (y * wd + x) + c];
                if (rgb->dtype == HS_DTYPE_U8)
                    *o = lut[((const uint8_t *)rgb->data)[y * rgb->stride[0] + x * rgb->stride[1] + c * rgb->stride[2]]];
                else
                    *o = (float)-log((intensity(rgb, y, x, c) + 1.0) / io);
            }
    return HS_OK;
}

// Concentrations of (N,3) ODs on two unit stains by least squares (2x2 normal equations).
static hs_status concentrations(float *c0, float *c1, const float *od, int64_t n, const hs_stain_macenko *fit,
                                const char *op) {
    const double(*st)[3] = fit->stains;
    double a = 0, b = 0, d = 0;
    for (int k = 0; k < 3; k++) {
        a += st[0][k] * st[0][k];
        b += st[0][k] * st[1][k];
        d += st[1][k] * st[1][k];
    }
    double det = a * d - b * b;
    if (!(fabs(det) > 1e-12))
        return HS_FAIL(HS_ERR_ARG, "%s: the two stain vectors are parallel", op);
    float i00 = (float)(d / det), i01 = (float)(-b / det), i11 = (float)(a / det);
    float s0[3], s1[3];
    for (int k = 0; k < 3; k++)
        s0[k] = (float)st[0][k], s1[k] = (float)st[1][k];
    for (int64_t i = 0; i < n; i++) {
        const float *o = od + 3 * i;
        float p0 = s0[0] * o[0] + s0[1] * o[1] + s0[2] * o[2], p1 = s1[0] * o[0] + s1[1] * o[1] + s1[2] * o[2];
        c0[i] = i00 * p0 + i01 * p1;
        c1[i] = i01 * p0 + i11 * p1;
    }
    return HS_OK;
}

static hs_status macenko_fit_work(hs_stain_macenko *fit, macenko_work *w, const hs_stain_macenko_opts *o,
                                  const char *op) {
    if (!(o->alpha >= 0 && o->alpha < 50) || !isfinite(o->beta))
        return HS_FAIL(HS_ERR_ARG, "%s: alpha must be in [0,50) and beta finite (got %g, %g)", op, o->alpha, o->beta);
    // tissue pixels: every channel OD >= beta; covariance in double
    double sum[3] = {0, 0, 0}, sxy[3][3] = {{0}};
    int64_t m = 0;
    for (int64_t i = 0; i < w->n; i++) {
        const float *p = w->od + 3 * i;
        if ((double)p[0] < o->beta || (double)p[1] < o->beta || (double)p[2] < o->beta)
            continue;
        for (int r = 0; r < 3; r++) {
            sum[r] += (double)p[r];
            for (int c = 0; c < 3; c++)
                sxy[r][c] += (double)p[r] * (double)p[c];
        }
        m++;
    }
    if (m < 2)
        return HS_FAIL(HS_ERR_ARG, "%s: only %lld tissue pixels (OD >= %g in every channel); need at least 2", op,
                       (long long)m, o->beta);
    double cov[3][3], ev[3], vec[3][3];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            cov[r][c] = (sxy[r][c] - sum[r] * sum[c] / (double)m) / (double)(m - 1);
    eigh3(ev, vec, cov);
    double e2[3], e3[3];  // second and largest eigenvectors; e3 oriented into the data
    double s3 = vec[0][2] + vec[1][2] + vec[2][2];
    for (int k = 0; k < 3; k++) {
        e2[k] = vec[k][1];
        e3[k] = s3 < 0 ? -vec[k][2] : vec[k][2];
    }
    int64_t t = 0;
    for (int64_t i = 0; i < w->n; i++) {
        const float *p = w->od + 3 * i;
        if ((double)p[0] < o->beta || (double)p[1] < o->beta || (double)p[2] < o->beta)
            continue;
        double x = (double)p[0] * e2[0] + (double)p[1] * e2[1] + (double)p[2] * e2[2];
        double y = (double)p[0] * e3[0] + (double)p[1] * e3[1] + (double)p[2] * e3[2];
        w->buf0[t++] = (float)atan2(y, x);
    }
    double phi_min = hs_percentile_f32(w->buf0, t, o->alpha), phi_max = hs_percentile_f32(w->buf0, t, 100 - o->alpha);
    double vmin[3], vmax[3];
    for (int k = 0; k < 3; k++) {
        vmin[k] = e2[k] * cos(phi_min) + e3[k] * sin(phi_min);
        vmax[k] = e2[k] * cos(phi_max) + e3[k] * sin(phi_max);
    }
    const double *h = vmin[0] > vmax[0] ? vmin : vmax, *e = vmin[0] > vmax[0] ? vmax : vmin;
    for (int k = 0; k < 3; k++) {
        fit->stains[0][k] = h[k];
        fit->stains[1][k] = e[k];
    }
    for (int s = 0; s < 2; s++) {  // OD vectors point into the positive octant
        if (fit->stains[s][0] + fit->stains[s][1] + fit->stains[s][2] < 0)
            for (int k = 0; k < 3; k++)
                fit->stains[s][k] = -fit->stains[s][k];
    }
    HS_TRY(concentrations(w->buf0, w->buf1, w->od, w->n, fit, op));
    fit->max_conc[0] = hs_percentile_f32(w->buf0, w->n, 99);
    fit->max_conc[1] = hs_percentile_f32(w->buf1, w->n, 99);
    return HS_OK;
}

static hs_stain_macenko_opts opts_or_default(const hs_stain_macenko_opts *opts) {
    return opts ? *opts : hs_stain_macenko_default_opts();
}

hs_status hs_stain_macenko_fit(hs_stain_macenko *fit, const hs_tensor *rgb, const hs_stain_macenko_opts *opts) {
    hs_stain_macenko_opts o = opts_or_default(opts);
    HS_TRY(check_rgb_in(rgb, "macenko_fit"));
    macenko_work w;
    HS_TRY(work_new(&w, rgb, o.io, "macenko_fit"));
    hs_status s = macenko_fit_work(fit, &w, &o, "macenko_fit");
    work_free(&w);
    return s;
}

hs_status hs_stain_macenko_apply(hs_tensor *out, const hs_tensor *rgb, const hs_stain_macenko *target,
                                 const hs_stain_macenko_opts *opts) {
    hs_stain_macenko_opts o = opts_or_default(opts);
    HS_TRY(check_rgb_in(rgb, "macenko_apply"));
    HS_TRY(check_rgb_out(out, rgb, "macenko_apply"));
    for (int s = 0; s < 2; s++)
        if (!(target->max_conc[s] > 0) || !isfinite(target->max_conc[s]))
            return HS_FAIL(HS_ERR_ARG, "macenko_apply: target max concentration %d must be positive", s + 1);
    macenko_work w;
    HS_TRY(work_new(&w, rgb, o.io, "macenko_apply"));
    hs_stain_macenko src;
    hs_status st = macenko_fit_work(&src, &w, &o, "macenko_apply");
    if (st == HS_OK)
        st = concentrations(w.buf0, w.buf1, w.od, w.n, &src, "macenko_apply");
    if (st == HS_OK) {
        float g0 = (float)(src.max_conc[0] > 0 ? target->max_conc[0] / src.max_conc[0] : 1.0);
        float g1 = (float)(src.max_conc[1] > 0 ? target->max_conc[1] / src.max_conc[1] : 1.0);
        int64_t wd = rgb->shape[1];
        for (int64_t i = 0; i < w.n; i++) {
            float c0 = w.buf0[i] * g0, c1 = w.buf1[i] * g1;
            int64_t y = i / wd, x = i % wd;
            for (int k = 0; k < 3; k++) {
                double v = o.io * exp(-(target->stains[0][k] * (double)c0 + target->stains[1][k] * (double)c1));
                int64_t off = y * out->stride[0] + x * out->stride[1] + k * out->stride[2];
                if (out->dtype == HS_DTYPE_U8)
                    ((uint8_t *)out->data)[off] = (uint8_t)(v >= 255 ? 255 : v <= 0 ? 0 : nearbyint(v));
                else
                    ((float *)out->data)[off] = (float)(v >= 255 ? 1.0 : v <= 0 ? 0.0 : v / 255.0);
            }
        }
    }
    work_free(&w);
    return st;
}
