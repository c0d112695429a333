// core/contrast.c: percentile stretch, gamma, histogram equalisation and CLAHE (contrast.h).
// Dimension letters: H rows, W columns, C channels. Every U8 operation is a 256-entry table
// built from a histogram, then applied per pixel; the tables follow OpenCV's float arithmetic
// (sum * scale in float, cvRound = round half to even) so that equalize_hist is bit-exact.
#include "contrast.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "tensor_ops.h"

// (H,W) or (H,W,C) with in's shape and the given dtype set.
static hs_status check_io(const hs_tensor *out, const hs_tensor *in, const char *op, int allow_f32) {
    char a[96], b[96];
    if (in->ndim != 2 && in->ndim != 3)
        return HS_FAIL(HS_ERR_SHAPE, "%s: expected (H,W) or (H,W,C) image, got %s", op,
                       hs_tensor_shape_str(in, a, sizeof a));
    if (in->dtype != HS_DTYPE_U8 && !(allow_f32 && in->dtype == HS_DTYPE_F32))
        return HS_FAIL(HS_ERR_DTYPE, "%s: expected a U8%s image, got %s", op, allow_f32 ? " or F32" : "",
                       hs_dtype_name(in->dtype));
    if (!hs_tensor_same_shape(out, in) || out->dtype != in->dtype)
        return HS_FAIL(HS_ERR_SHAPE, "%s: out is %s %s, want %s %s", op, hs_dtype_name(out->dtype),
                       hs_tensor_shape_str(out, a, sizeof a), hs_dtype_name(in->dtype),
                       hs_tensor_shape_str(in, b, sizeof b));
    return HS_OK;
}

static int64_t nchan(const hs_tensor *t) { return t->ndim == 3 ? t->shape[2] : 1; }
static int64_t cstride(const hs_tensor *t) { return t->ndim == 3 ? t->stride[2] : 0; }

static void hist_u8(int64_t hist[256], const hs_tensor *in, int64_t c) {
    const uint8_t *p = (const uint8_t *)in->data + c * cstride(in);
    for (int64_t y = 0; y < in->shape[0]; y++)
        for (int64_t x = 0; x < in->shape[1]; x++)
            hist[p[y * in->stride[0] + x * in->stride[1]]]++;
}

static void apply_lut_u8(hs_tensor *out, const hs_tensor *in, int64_t c, const uint8_t lut[256]) {
    const uint8_t *p = (const uint8_t *)in->data + c * cstride(in);
    uint8_t *q = (uint8_t *)out->data + c * cstride(out);
    for (int64_t y = 0; y < in->shape[0]; y++)
        for (int64_t x = 0; x < in->shape[1]; x++)
            q[y * out->stride[0] + x * out->stride[1]] = lut[p[y * in->stride[0] + x * in->stride[1]]];
}

// ---- equalize_hist ----

hs_status hs_contrast_equalize_hist(hs_tensor *out, const hs_tensor *in) {
    HS_TRY(check_io(out, in, "equalize_hist", 0));
    int64_t total = in->shape[0] * in->shape[1];
    if (total == 0)
        return HS_OK;
    for (int64_t c = 0; c < nchan(in); c++) {
        int64_t hist[256] = {0};
        uint8_t lut[256];
        hist_u8(hist, in, c);
        int i = 0;
        while (!hist[i])
            i++;
        if (hist[i] == total) {  // a constant image maps to itself, as OpenCV
            memset(lut, i, sizeof lut);
        } else {
            float scale = 255.0f / (float)(total - hist[i]);
            int64_t sum = 0;
            memset(lut, 0, sizeof lut);
            for (lut[i++] = 0; i < 256; i++) {
                sum += hist[i];
                float v = (float)sum * scale;
                long r = lrintf(v);
                lut[i] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
            }
        }
        apply_lut_u8(out, in, c, lut);
    }
    return HS_OK;
}

// ---- auto contrast ----

// Sorted value at `rank` from a histogram.
static int hist_rank(const int64_t hist[256], int64_t rank) {
    int64_t cum = 0;
    for (int v = 0; v < 256; v++) {
        cum += hist[v];
        if (cum > rank)
            return v;
    }
    return 255;
}

static hs_status auto_u8(hs_tensor *out, const hs_tensor *in, double low, double high, int joint) {
    int64_t nc = nchan(in), n = in->shape[0] * in->shape[1];
    int64_t hists[2][256];  // hists[1] holds the joint histogram
    memset(hists[1], 0, sizeof hists[1]);
    if (joint)
        for (int64_t c = 0; c < nc; c++)
            hist_u8(hists[1], in, c);
    for (int64_t c = 0; c < nc; c++) {
        const int64_t *h = hists[1];
        int64_t total = n * nc;
        if (!joint) {
            memset(hists[0], 0, sizeof hists[0]);
            hist_u8(hists[0], in, c);
            h = hists[0];
            total = n;
        }
        int lo = hist_rank(h, (int64_t)floor(low / 100.0 * (double)(total - 1)));
        int hi = hist_rank(h, (int64_t)ceil(high / 100.0 * (double)(total - 1)));
        uint8_t lut[256];
        for (int v = 0; v < 256; v++) {
            if (hi <= lo)
                lut[v] = (uint8_t)v;
            else
                lut[v] = v <= lo ? 0 : v >= hi ? 255 : (uint8_t)lrint(255.0 * (v - lo) / (hi - lo));
        }
        apply_lut_u8(out, in, c, lut);
    }
    return HS_OK;
}

static hs_status auto_f32(hs_tensor *out, const hs_tensor *in, double low, double high, int joint) {
    int64_t nc = nchan(in), n = in->shape[0] * in->shape[1], cs = cstride(in), ocs = cstride(out);
    int64_t groups = joint ? 1 : nc, per = joint ? n * nc : n;
    float *buf = hs_alloc((size_t)(per > 0 ? per : 1) * sizeof(float));
    if (!buf)
        return HS_FAIL(HS_ERR_NOMEM, "auto_contrast: out of memory for %lld values", (long long)per);
    for (int64_t g = 0; g < groups; g++) {
        int64_t c0 = joint ? 0 : g, c1 = joint ? nc : g + 1, k = 0;
        for (int64_t c = c0; c < c1; c++)
            for (int64_t y = 0; y < in->shape[0]; y++)
                for (int64_t x = 0; x < in->shape[1]; x++)
                    buf[k++] = ((const float *)in->data)[y * in->stride[0] + x * in->stride[1] + c * cs];
        if (k == 0)
            break;
        double lo = hs_percentile_f32(buf, k, low), hi = hs_percentile_f32(buf, k, high);
        for (int64_t c = c0; c < c1; c++)
            for (int64_t y = 0; y < in->shape[0]; y++)
                for (int64_t x = 0; x < in->shape[1]; x++) {
                    float v = ((const float *)in->data)[y * in->stride[0] + x * in->stride[1] + c * cs];
                    if (hi > lo) {
                        v = (float)(((double)v - lo) / (hi - lo));
                        v = v < 0 ? 0 : v > 1 ? 1 : v;
                    }
                    ((float *)out->data)[y * out->stride[0] + x * out->stride[1] + c * ocs] = v;
                }
    }
    hs_free(buf);
    return HS_OK;
}

hs_status hs_contrast_auto(hs_tensor *out, const hs_tensor *in, double low, double high, int joint) {
    HS_TRY(check_io(out, in, "auto_contrast", 1));
    if (!(low >= 0 && low < high && high <= 100))
        return HS_FAIL(HS_ERR_ARG, "auto_contrast: need 0 <= low < high <= 100, got low %g, high %g", low, high);
    if (in->shape[0] * in->shape[1] == 0)
        return HS_OK;
    return in->dtype == HS_DTYPE_U8 ? auto_u8(out, in, low, high, joint) : auto_f32(out, in, low, high, joint);
}

// ---- gamma ----

hs_status hs_contrast_gamma(hs_tensor *out, const hs_tensor *in, double gamma) {
    HS_TRY(check_io(out, in, "gamma", 1));
    if (!(gamma > 0) || !isfinite(gamma))
        return HS_FAIL(HS_ERR_ARG, "gamma: gamma must be positive and finite, got %g", gamma);
    if (in->dtype == HS_DTYPE_U8) {
        uint8_t lut[256];
        for (int v = 0; v < 256; v++)
            lut[v] = (uint8_t)lrint(255.0 * pow(v / 255.0, gamma));
        for (int64_t c = 0; c < nchan(in); c++)
            apply_lut_u8(out, in, c, lut);
        return HS_OK;
    }
    float g = (float)gamma;
    for (int64_t c = 0; c < nchan(in); c++)
        for (int64_t y = 0; y < in->shape[0]; y++)
            for (int64_t x = 0; x < in->shape[1]; x++) {
                float v = ((const float *)in->data)[y * in->stride[0] + x * in->stride[1] + c * cstride(in)];
                ((float *)out->data)[y * out->stride[0] + x * out->stride[1] + c * cstride(out)] =
                    v > 0 ? powf(v, g) : 0.0f;
            }
    return HS_OK;
}

// ---- CLAHE ----

static int64_t reflect101(int64_t i, int64_t n) {
    if (n == 1)
        return 0;
    int64_t period = 2 * (n - 1);
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - i;
}

hs_status hs_contrast_clahe(hs_tensor *out, const hs_tensor *in, double clip, int tiles_x, int tiles_y) {
    HS_TRY(check_io(out, in, "clahe", 0));
    if (tiles_x < 1 || tiles_y < 1 || tiles_x > 256 || tiles_y > 256)
        return HS_FAIL(HS_ERR_ARG, "clahe: tile grid %dx%d not within 1..256", tiles_x, tiles_y);
    if (!isfinite(clip))
        return HS_FAIL(HS_ERR_ARG, "clahe: clip limit must be finite");
    int64_t h = in->shape[0], w = in->shape[1];
    if (h == 0 || w == 0)
        return HS_OK;
    int64_t eh = h, ew = w;  // OpenCV pads both sides of the grid as soon as either is uneven
    if (w % tiles_x != 0 || h % tiles_y != 0) {
        eh = h + tiles_y - h % tiles_y;
        ew = w + tiles_x - w % tiles_x;
    }
    int64_t th = eh / tiles_y, tw = ew / tiles_x, area = th * tw;
    int limit = 0;
    if (clip > 0) {
        limit = (int)(clip * (double)area / 256);
        limit = limit > 1 ? limit : 1;
    }
    float lut_scale = 255.0f / (float)area;
    size_t ntiles = (size_t)tiles_x * (size_t)tiles_y;
    uint8_t *luts = hs_alloc(ntiles * 256 + (size_t)w * (sizeof(int) * 2 + sizeof(float) * 2));
    if (!luts)
        return HS_FAIL(HS_ERR_NOMEM, "clahe: out of memory");
    int *ind1 = (int *)(luts + ntiles * 256), *ind2 = ind1 + w;
    float *xa = (float *)(ind2 + w), *xa1 = xa + w;
    float inv_tw = 1.0f / (float)tw, inv_th = 1.0f / (float)th;
    for (int64_t x = 0; x < w; x++) {
        float txf = (float)x * inv_tw - 0.5f;
        int tx1 = (int)floorf(txf), tx2 = tx1 + 1;
        xa[x] = txf - (float)tx1;
        xa1[x] = 1.0f - xa[x];
        tx1 = tx1 > 0 ? tx1 : 0;
        tx2 = tx2 < tiles_x - 1 ? tx2 : tiles_x - 1;
        ind1[x] = tx1 * 256;
        ind2[x] = tx2 * 256;
    }
    for (int64_t c = 0; c < nchan(in); c++) {
        const uint8_t *p = (const uint8_t *)in->data + c * cstride(in);
        uint8_t *q = (uint8_t *)out->data + c * cstride(out);
        for (int ty = 0; ty < tiles_y; ty++)
            for (int tx = 0; tx < tiles_x; tx++) {
                int hist[256] = {0};
                for (int64_t y = ty * th; y < (ty + 1) * th; y++) {
                    int64_t sy = y < h ? y : reflect101(y, h);
                    for (int64_t x = tx * tw; x < (tx + 1) * tw; x++) {
                        int64_t sx = x < w ? x : reflect101(x, w);
                        hist[p[sy * in->stride[0] + sx * in->stride[1]]]++;
                    }
                }
                if (limit > 0) {
                    int clipped = 0;
                    for (int i = 0; i < 256; i++)
                        if (hist[i] > limit) {
                            clipped += hist[i] - limit;
                            hist[i] = limit;
                        }
                    int batch = clipped / 256, residual = clipped - batch * 256;
                    for (int i = 0; i < 256; i++)
                        hist[i] += batch;
                    if (residual) {
                        int step = 256 / residual > 1 ? 256 / residual : 1;
                        for (int i = 0; i < 256 && residual > 0; i += step, residual--)
                            hist[i]++;
                    }
                }
                uint8_t *lut = luts + ((size_t)ty * (size_t)tiles_x + (size_t)tx) * 256;
                int sum = 0;
                for (int i = 0; i < 256; i++) {
                    sum += hist[i];
                    long r = lrintf((float)sum * lut_scale);
                    lut[i] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
                }
            }
        // Tables of channel c are complete before any write; the blend then reads only the pixel
        // it writes, so out may alias in.
        for (int64_t y = 0; y < h; y++) {
            float tyf = (float)y * inv_th - 0.5f;
            int ty1 = (int)floorf(tyf), ty2 = ty1 + 1;
            float ya = tyf - (float)ty1, ya1 = 1.0f - ya;
            ty1 = ty1 > 0 ? ty1 : 0;
            ty2 = ty2 < tiles_y - 1 ? ty2 : tiles_y - 1;
            const uint8_t *l1 = luts + (size_t)ty1 * (size_t)tiles_x * 256, *l2 = luts + (size_t)ty2 * (size_t)tiles_x * 256;
            for (int64_t x = 0; x < w; x++) {
                int v = p[y * in->stride[0] + x * in->stride[1]];
                float res = ((float)l1[ind1[x] + v] * xa1[x] + (float)l1[ind2[x] + v] * xa[x]) * ya1 +
                            ((float)l2[ind1[x] + v] * xa1[x] + (float)l2[ind2[x] + v] * xa[x]) * ya;
                long r = lrintf(res);
                q[y * out->stride[0] + x * out->stride[1]] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
            }
        }
    }
    hs_free(luts);
    return HS_OK;
}
