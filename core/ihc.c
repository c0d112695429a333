// core/ihc.c: IHC quantification (see ihc.h). Segmentation reuses stain.c (rgb2hed), filter.c
// (Gaussian), segment.c (Otsu, labels, split_nuclei) and morph.c (opening); the label-image
// kernels here (fill holes, area filter, expand labels, measure, overlay) are plain loops.
//
// Default DAB thresholds (0.10, 0.30, 0.60 OD): synth.c renders negative nuclei at DAB OD 0 and
// 1+/2+/3+ at 0.18/0.45/0.85; their measured per-nucleus means come back at 0.00, 0.17-0.18,
// 0.44-0.45 and 0.72-0.76 (scikit-image's DAB row and 8-bit rounding compress the darkest
// class), so thresholds near the midpoints separate the classes with a margin of ~0.07 OD.
#include "ihc.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "filter.h"
#include "morph.h"
#include "segment.h"
#include "stain.h"

const uint8_t hs_ihc_palette[4][3] = {{40, 90, 255}, {255, 225, 0}, {255, 140, 0}, {220, 0, 0}};

#define OTSU_RANGE 2.0  // OD mapped to 255 for Otsu's histogram

void hs_ihc_defaults(hs_ihc_params *p) {
    memset(p, 0, sizeof *p);
    p->nuclear = HS_IHC_NUCLEAR_HDAB;
    p->sigma = 1.0;
    p->threshold = 0;
    p->min_threshold = 0.15;
    p->open_radius = 1;
    p->fill_holes = 1;
    p->min_distance = 4;
    p->min_area = 30;
    p->max_area = 0;
    p->compartment = HS_IHC_NUCLEUS;
    p->cell_radius = 4;
    p->thresholds[0] = 0.10;
    p->thresholds[1] = 0.30;
    p->thresholds[2] = 0.60;
}

hs_status hs_ihc_check_params(const hs_ihc_params *p) {
    if (p->nuclear != HS_IHC_NUCLEAR_HDAB && p->nuclear != HS_IHC_NUCLEAR_H)
        return HS_FAIL(HS_ERR_ARG, "ihc: unknown nuclear channel %d", (int)p->nuclear);
    if (p->compartment != HS_IHC_NUCLEUS && p->compartment != HS_IHC_CELL)
        return HS_FAIL(HS_ERR_ARG, "ihc: unknown compartment %d", (int)p->compartment);
    if (!(p->sigma >= 0 && p->sigma <= 50))
        return HS_FAIL(HS_ERR_ARG, "ihc: sigma %g out of range 0..50", p->sigma);
    if (!(p->background_sigma >= 0 && p->background_sigma <= 200))
        return HS_FAIL(HS_ERR_ARG, "ihc: background_sigma %g out of range 0..200", p->background_sigma);
    if (!isfinite(p->threshold) || !(p->min_threshold >= 0 && p->min_threshold < 10))
        return HS_FAIL(HS_ERR_ARG, "ihc: threshold %g / min_threshold %g out of range", p->threshold,
                       p->min_threshold);
    if (p->open_radius < 0 || p->open_radius > 50)
        return HS_FAIL(HS_ERR_ARG, "ihc: open_radius %d out of range 0..50", p->open_radius);
    if (p->min_distance < 0 || p->min_distance > 512)
        return HS_FAIL(HS_ERR_ARG, "ihc: min_distance %d out of range 0..512", p->min_distance);
    if (p->min_area < 0 || p->max_area < 0 || (p->max_area > 0 && p->max_area < p->min_area))
        return HS_FAIL(HS_ERR_ARG, "ihc: area range %lld..%lld is empty or negative", (long long)p->min_area,
                       (long long)p->max_area);
    if (p->cell_radius < 0 || p->cell_radius > 256)
        return HS_FAIL(HS_ERR_ARG, "ihc: cell_radius %d out of range 0..256", p->cell_radius);
    const double *t = p->thresholds;
    if (!(t[0] > 0 && t[0] < t[1] && t[1] < t[2] && isfinite(t[2])))
        return HS_FAIL(HS_ERR_ARG, "ihc: thresholds must satisfy 0 < t1 < t2 < t3, got %g, %g, %g", t[0], t[1], t[2]);
    return HS_OK;
}

// ---- argument checks ----

static hs_status check_plane(const hs_tensor *t, hs_dtype dt, int64_t H, int64_t W, const char *what) {
    char a[64];
    if (t->dtype != dt || t->ndim != 2 || !hs_tensor_is_contiguous(t) || (H >= 0 && (t->shape[0] != H || t->shape[1] != W)))
        return HS_FAIL(HS_ERR_SHAPE, "ihc: %s must be a contiguous (%lld,%lld) %s tensor, got %s %s", what,
                       (long long)H, (long long)W, hs_dtype_name(dt), hs_dtype_name(t->dtype),
                       hs_tensor_shape_str(t, a, sizeof a));
    return HS_OK;
}

static hs_status check_labels(const hs_tensor *t, const char *op) {
    char a[64];
    if (t->dtype != HS_DTYPE_I32 || t->ndim != 2 || !hs_tensor_is_contiguous(t))
        return HS_FAIL(HS_ERR_SHAPE, "%s: labels must be a contiguous (H,W) I32 tensor, got %s %s", op,
                       hs_dtype_name(t->dtype), hs_tensor_shape_str(t, a, sizeof a));
    return HS_OK;
}

// ---- channels ----

hs_status hs_ihc_channels(hs_tensor *nuclear, hs_tensor *dab, const hs_tensor *rgb, hs_ihc_nuclear mode) {
    char a[64];
    if (rgb->ndim != 3 || rgb->shape[2] != 3)
        return HS_FAIL(HS_ERR_SHAPE, "ihc_channels: rgb must be (H,W,3), got %s", hs_tensor_shape_str(rgb, a, sizeof a));
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    if (nuclear)
        HS_TRY(check_plane(nuclear, HS_DTYPE_F32, H, W, "nuclear"));
    if (dab)
        HS_TRY(check_plane(dab, HS_DTYPE_F32, H, W, "dab"));
    int64_t shape[3] = {H, W, 3};
    hs_tensor *hed = NULL;
    HS_TRY(hs_tensor_new(&hed, HS_DTYPE_F32, 3, shape));
    hs_status s = hs_stain_rgb2hed(hed, rgb);
    if (s == HS_OK) {
        const float *h = hed->data;
        float *n = nuclear ? nuclear->data : NULL, *d = dab ? dab->data : NULL;
        for (int64_t i = 0; i < H * W; i++) {
            float od_h = 6 * h[i * 3], od_d = 6 * h[i * 3 + 2];
            if (n)
                n[i] = mode == HS_IHC_NUCLEAR_H ? od_h : od_h + od_d;
            if (d)
                d[i] = od_d;
        }
    }
    hs_tensor_free(hed);
    return s;
}

// ---- label-image kernels ----

hs_status hs_ihc_fill_holes(hs_tensor *dst, const hs_tensor *mask) {
    HS_TRY(check_plane(mask, HS_DTYPE_U8, -1, -1, "fill_holes mask"));
    int64_t H = mask->shape[0], W = mask->shape[1];
    HS_TRY(check_plane(dst, HS_DTYPE_U8, H, W, "fill_holes dst"));
    int64_t n = H * W;
    // stack of background pixels reached from the border; reached marked 1 in `seen`
    int64_t *stack = hs_alloc(sizeof *stack * (size_t)(n > 0 ? n : 1));
    uint8_t *seen = hs_calloc((size_t)(n > 0 ? n : 1), 1);
    if (!stack || !seen) {
        hs_free(stack);
        hs_free(seen);
        return HS_FAIL(HS_ERR_NOMEM, "fill_holes: out of memory for %lld pixels", (long long)n);
    }
    const uint8_t *m = mask->data;
    int64_t top = 0;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++)
            if ((y == 0 || x == 0 || y == H - 1 || x == W - 1) && !m[y * W + x] && !seen[y * W + x]) {
                seen[y * W + x] = 1;
                stack[top++] = y * W + x;
            }
    while (top > 0) {
        int64_t i = stack[--top], y = i / W, x = i % W;
        int64_t nb[4] = {y > 0 ? i - W : -1, y < H - 1 ? i + W : -1, x > 0 ? i - 1 : -1, x < W - 1 ? i + 1 : -1};
        for (int k = 0; k < 4; k++)
            if (nb[k] >= 0 && !m[nb[k]] && !seen[nb[k]]) {
                seen[nb[k]] = 1;
                stack[top++] = nb[k];
            }
    }
    uint8_t *d = dst->data;
    for (int64_t i = 0; i < n; i++)
        d[i] = seen[i] ? 0 : 255;
    hs_free(stack);
    hs_free(seen);
    return HS_OK;
}

hs_status hs_ihc_filter_area(hs_tensor *labels, int64_t *count, int64_t min_area, int64_t max_area) {
    HS_TRY(check_labels(labels, "filter_area"));
    if (*count < 0 || min_area < 0 || max_area < 0)
        return HS_FAIL(HS_ERR_ARG, "filter_area: count %lld, area range %lld..%lld must be >= 0", (long long)*count,
                       (long long)min_area, (long long)max_area);
    int64_t n = hs_tensor_numel(labels), c = *count;
    int64_t *area = hs_calloc((size_t)c + 1, sizeof *area);
    if (!area)
        return HS_FAIL(HS_ERR_NOMEM, "filter_area: out of memory for %lld labels", (long long)c);
    int32_t *l = labels->data;
    for (int64_t i = 0; i < n; i++)
        if (l[i] > 0 && l[i] <= c)
            area[l[i]]++;
    int64_t next = 0;  // area[] becomes the new label (0: removed)
    for (int64_t k = 1; k <= c; k++) {
        int keep = area[k] > 0 && area[k] >= min_area && (max_area == 0 || area[k] <= max_area);
        area[k] = keep ? ++next : 0;
    }
    for (int64_t i = 0; i < n; i++)
        l[i] = (l[i] > 0 && l[i] <= c) ? (int32_t)area[l[i]] : 0;
    *count = next;
    hs_free(area);
    return HS_OK;
}

hs_status hs_ihc_expand_labels(hs_tensor *dst, const hs_tensor *labels, int radius) {
    HS_TRY(check_labels(labels, "expand_labels"));
    int64_t H = labels->shape[0], W = labels->shape[1];
    HS_TRY(check_labels(dst, "expand_labels"));
    if (dst->shape[0] != H || dst->shape[1] != W)
        return HS_FAIL(HS_ERR_SHAPE, "expand_labels: dst %lldx%lld, labels %lldx%lld", (long long)dst->shape[0],
                       (long long)dst->shape[1], (long long)H, (long long)W);
    if (radius < 0 || radius > 256)
        return HS_FAIL(HS_ERR_ARG, "expand_labels: radius %d out of range 0..256", radius);
    if (dst->data == labels->data)
        return HS_FAIL(HS_ERR_ARG, "expand_labels: dst must not alias labels");
    const int32_t *l = labels->data;
    int32_t *d = dst->data;
    int64_t r2max = (int64_t)radius * radius;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            int32_t own = l[y * W + x];
            if (own != 0 || radius == 0) {
                d[y * W + x] = own;
                continue;
            }
            int64_t best = r2max + 1;
            int32_t lab = 0;
            for (int64_t dy = -radius; dy <= radius; dy++) {
                int64_t yy = y + dy;
                if (yy < 0 || yy >= H)
                    continue;
                for (int64_t dx = -radius; dx <= radius; dx++) {
                    int64_t xx = x + dx, r2 = dy * dy + dx * dx;
                    if (xx < 0 || xx >= W || r2 > best)
                        continue;
                    int32_t v = l[yy * W + xx];
                    if (v > 0 && (r2 < best || v < lab)) {
                        best = r2;
                        lab = v;
                    }
                }
            }
            d[y * W + x] = lab;
        }
    return HS_OK;
}

// ---- segmentation ----

hs_status hs_ihc_segment(hs_tensor *labels, int64_t *count, double *threshold, const hs_tensor *nuclear,
                         const hs_ihc_params *p) {
    *count = 0;
    HS_TRY(hs_ihc_check_params(p));
    HS_TRY(check_plane(nuclear, HS_DTYPE_F32, -1, -1, "nuclear"));
    int64_t H = nuclear->shape[0], W = nuclear->shape[1], shape[2] = {H, W};
    HS_TRY(check_labels(labels, "ihc_segment"));
    if (labels->shape[0] != H || labels->shape[1] != W)
        return HS_FAIL(HS_ERR_SHAPE, "ihc_segment: labels %lldx%lld, image %lldx%lld", (long long)labels->shape[0],
                       (long long)labels->shape[1], (long long)H, (long long)W);
    hs_tensor *smooth = NULL, *u8 = NULL, *mask = NULL, *tmp = NULL, *se = NULL;
    hs_status s = HS_OK;
    double t = p->threshold;
#define STEP(expr)                 \
    do {                           \
        if ((s = (expr)) != HS_OK) \
            goto done;             \
    } while (0)
    STEP(hs_tensor_new(&smooth, HS_DTYPE_F32, 2, shape));
    STEP(hs_tensor_new(&mask, HS_DTYPE_U8, 2, shape));
    STEP(hs_tensor_new(&tmp, HS_DTYPE_U8, 2, shape));
    if (p->sigma > 0)
        STEP(hs_filter_gaussian(smooth, nuclear, p->sigma, 0, HS_BORDER_REFLECT101));
    else
        STEP(hs_tensor_copy(smooth, nuclear));
    if (p->background_sigma > 0) {
        // local contrast: nuclei stand out from a slowly varying (stained cytoplasm) background
        STEP(hs_tensor_new(&u8, HS_DTYPE_F32, 2, shape));  // reused below as the Otsu image
        STEP(hs_filter_gaussian(u8, smooth, p->background_sigma, 0, HS_BORDER_REFLECT101));
        float *sm = smooth->data;
        const float *bg = u8->data;
        for (int64_t i = 0; i < H * W; i++)
            sm[i] = sm[i] > bg[i] ? sm[i] - bg[i] : 0;
        hs_tensor_free(u8);
        u8 = NULL;
    }
    if (t <= 0) {
        // Otsu on the OD scaled to 0..255 (a U8 histogram, as cv2), floored so that a tile of
        // background alone does not split its noise into "nuclei"
        STEP(hs_tensor_new(&u8, HS_DTYPE_U8, 2, shape));
        const float *sm = smooth->data;
        uint8_t *q = u8->data;
        for (int64_t i = 0; i < H * W; i++) {
            double v = (double)sm[i] / OTSU_RANGE * 255.0;
            q[i] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : lrint(v));
        }
        double tu = 0;
        STEP(hs_segment_otsu(NULL, &tu, u8, 0));
        t = (tu + 0.5) / 255.0 * OTSU_RANGE;  // between the last background and first object bin
        if (t < p->min_threshold)
            t = p->min_threshold;
    }
    STEP(hs_segment_threshold(mask, smooth, t, 0));
    if (p->open_radius > 0) {
        int64_t k = 2 * p->open_radius + 1, kshape[2] = {k, k};
        STEP(hs_tensor_new(&se, HS_DTYPE_U8, 2, kshape));
        STEP(hs_morph_structuring_element(se, HS_MORPH_ELLIPSE));
        STEP(hs_morph_apply(tmp, mask, se, HS_MORPH_OPEN));
        STEP(hs_tensor_copy(mask, tmp));
    }
    if (p->fill_holes)
        STEP(hs_ihc_fill_holes(mask, mask));
    if (p->min_distance > 0)
        STEP(hs_segment_split_nuclei(labels, count, mask, p->min_distance));
    else
        STEP(hs_segment_label(labels, count, mask, 8));
    STEP(hs_ihc_filter_area(labels, count, p->min_area, p->max_area));
    if (threshold)
        *threshold = t;
done:
#undef STEP
    hs_tensor_free(smooth);
    hs_tensor_free(u8);
    hs_tensor_free(mask);
    hs_tensor_free(tmp);
    hs_tensor_free(se);
    if (s != HS_OK)
        *count = 0;
    return s;
}

// ---- measurement and summary ----

int hs_ihc_classify(double dab_od, const double t[3]) {
    return dab_od >= t[2] ? 3 : dab_od >= t[1] ? 2 : dab_od >= t[0] ? 1 : 0;
}

hs_status hs_ihc_measure(hs_ihc_nucleus *nuclei, int64_t count, const hs_tensor *labels, const hs_tensor *nuclear,
                         const hs_tensor *dab, const hs_ihc_params *p) {
    HS_TRY(hs_ihc_check_params(p));
    HS_TRY(check_labels(labels, "ihc_measure"));
    int64_t H = labels->shape[0], W = labels->shape[1], n = H * W;
    if (nuclear)
        HS_TRY(check_plane(nuclear, HS_DTYPE_F32, H, W, "nuclear"));
    HS_TRY(check_plane(dab, HS_DTYPE_F32, H, W, "dab"));
    if (count < 0)
        return HS_FAIL(HS_ERR_ARG, "ihc_measure: count %lld < 0", (long long)count);
    if (count == 0)
        return HS_OK;
    double *acc = hs_calloc((size_t)count * 4, sizeof *acc);  // sum x, sum y, sum nuclear, sum dab
    int64_t *cells = hs_calloc((size_t)count, sizeof *cells);
    hs_tensor *expanded = NULL;
    if (!acc || !cells) {
        hs_free(acc);
        hs_free(cells);
        return HS_FAIL(HS_ERR_NOMEM, "ihc_measure: out of memory for %lld nuclei", (long long)count);
    }
    for (int64_t k = 0; k < count; k++)
        nuclei[k].area = 0;
    const int32_t *l = labels->data;
    const float *nu = nuclear ? nuclear->data : NULL, *d = dab->data;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = (int64_t)l[i] - 1;
        if (k < 0 || k >= count)
            continue;
        nuclei[k].area++;
        acc[k * 4 + 0] += (double)(i % W);
        acc[k * 4 + 1] += (double)(i / W);
        acc[k * 4 + 2] += nu ? (double)nu[i] : 0.0;
        acc[k * 4 + 3] += (double)d[i];
    }
    const int32_t *ml = l;  // label image of the measured compartment
    if (p->compartment == HS_IHC_CELL && p->cell_radius > 0) {
        int64_t shape[2] = {H, W};
        hs_status s = hs_tensor_new(&expanded, HS_DTYPE_I32, 2, shape);
        if (s == HS_OK)
            s = hs_ihc_expand_labels(expanded, labels, p->cell_radius);
        if (s != HS_OK) {
            hs_tensor_free(expanded);
            hs_free(acc);
            hs_free(cells);
            return s;
        }
        ml = expanded->data;
        for (int64_t k = 0; k < count; k++)
            acc[k * 4 + 3] = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t k = (int64_t)ml[i] - 1;
            if (k < 0 || k >= count)
                continue;
            cells[k]++;
            acc[k * 4 + 3] += (double)d[i];
        }
    }
    for (int64_t k = 0; k < count; k++) {
        hs_ihc_nucleus *c = &nuclei[k];
        double a = (double)c->area, m = ml == l ? a : (double)cells[k];
        c->cx = a > 0 ? acc[k * 4 + 0] / a : 0;
        c->cy = a > 0 ? acc[k * 4 + 1] / a : 0;
        c->nuclear_od = a > 0 ? acc[k * 4 + 2] / a : 0;
        c->dab_od = m > 0 ? acc[k * 4 + 3] / m : 0;
        c->cls = hs_ihc_classify(c->dab_od, p->thresholds);
    }
    hs_tensor_free(expanded);
    hs_free(acc);
    hs_free(cells);
    return HS_OK;
}

void hs_ihc_summarize(hs_ihc_summary *s, const hs_ihc_nucleus *nuclei, int64_t count) {
    memset(s, 0, sizeof *s);
    for (int64_t k = 0; k < count; k++) {
        int c = nuclei[k].cls;
        s->count++;
        if (c >= 1 && c <= 3) {
            s->positive++;
            s->by_class[c - 1]++;
        }
    }
    s->negative = s->count - s->positive;
    if (s->count > 0) {
        s->labelling_index = 100.0 * (double)s->positive / (double)s->count;
        s->h_score = 100.0 * (double)(s->by_class[0] + 2 * s->by_class[1] + 3 * s->by_class[2]) / (double)s->count;
    }
}

// ---- pictures ----

hs_status hs_ihc_overlay(hs_tensor *dst, const hs_tensor *rgb, const hs_tensor *labels, const hs_ihc_nucleus *nuclei,
                         int64_t count, int thickness) {
    char a[64];
    HS_TRY(check_labels(labels, "ihc_overlay"));
    int64_t H = labels->shape[0], W = labels->shape[1];
    if (rgb->dtype != HS_DTYPE_U8 || rgb->ndim != 3 || rgb->shape[0] != H || rgb->shape[1] != W || rgb->shape[2] != 3)
        return HS_FAIL(HS_ERR_SHAPE, "ihc_overlay: rgb must be (%lld,%lld,3) U8, got %s %s", (long long)H, (long long)W,
                       hs_dtype_name(rgb->dtype), hs_tensor_shape_str(rgb, a, sizeof a));
    if (dst->dtype != HS_DTYPE_U8 || !hs_tensor_is_contiguous(dst) || !hs_tensor_same_shape(dst, rgb))
        return HS_FAIL(HS_ERR_SHAPE, "ihc_overlay: dst must be a contiguous (%lld,%lld,3) U8 tensor, got %s %s",
                       (long long)H, (long long)W, hs_dtype_name(dst->dtype), hs_tensor_shape_str(dst, a, sizeof a));
    if (thickness < 1 || thickness > 64)
        return HS_FAIL(HS_ERR_ARG, "ihc_overlay: thickness %d out of range 1..64", thickness);
    if (count < 0 || (count > 0 && !nuclei))
        return HS_FAIL(HS_ERR_ARG, "ihc_overlay: count %lld without nuclei", (long long)count);
    if (dst->data != rgb->data)
        HS_TRY(hs_tensor_copy(dst, rgb));
    const int32_t *l = labels->data;
    uint8_t *o = dst->data;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            int32_t v = l[y * W + x];
            if (v <= 0 || v > count)
                continue;
            int edge = 0;
            for (int64_t dy = -thickness; dy <= thickness && !edge; dy++)
                for (int64_t dx = -thickness; dx <= thickness && !edge; dx++) {
                    int64_t yy = y + dy, xx = x + dx;
                    if (thickness == 1 && dx != 0 && dy != 0)
                        continue;  // 4-neighbourhood for thin outlines
                    edge = yy < 0 || xx < 0 || yy >= H || xx >= W || l[yy * W + xx] != v;
                }
            if (!edge)
                continue;
            const uint8_t *c = hs_ihc_palette[nuclei[v - 1].cls & 3];
            for (int ch = 0; ch < 3; ch++)
                o[(y * W + x) * 3 + ch] = c[ch];
        }
    return HS_OK;
}

hs_status hs_ihc_class_map(hs_tensor *dst, const hs_tensor *labels, const hs_ihc_nucleus *nuclei, int64_t count) {
    HS_TRY(check_labels(labels, "ihc_class_map"));
    HS_TRY(check_plane(dst, HS_DTYPE_U8, labels->shape[0], labels->shape[1], "class map"));
    if (count < 0 || (count > 0 && !nuclei))
        return HS_FAIL(HS_ERR_ARG, "ihc_class_map: count %lld without nuclei", (long long)count);
    const int32_t *l = labels->data;
    uint8_t *d = dst->data;
    for (int64_t i = 0; i < hs_tensor_numel(labels); i++)
        d[i] = (l[i] > 0 && l[i] <= count) ? (uint8_t)(1 + (nuclei[l[i] - 1].cls & 3)) : 0;
    return HS_OK;
}
