// core/segment.c: thresholds, connected components and statistics, distance transform,
// watershed and nuclei splitting (segment.h). Labelling is a two-pass union-find whose final
// numbering reproduces OpenCV's scan order; the distance transform is Felzenszwalb and
// Huttenlocher's lower envelope of parabolas (exact, O(HW)); the watershed is a binary-heap
// priority flood with FIFO tie-breaking. Not a general graph-cut or level-set toolbox.
#include "segment.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "filter.h"
#include "geometry.h"
#include "morph.h"
#include "parallel.h"

// ---- helpers ----

// A (H,W) or (H,W,1) U8/F32 mask as a malloc'd 0/1 byte image (caller hs_free's *out).
static hs_status mask_bytes(uint8_t **out, int64_t *H, int64_t *W, const hs_tensor *mask, const char *op) {
    hs_image_dims d;
    *out = NULL;
    HS_TRY(hs_geometry_dims(&d, mask, op));
    if (d.c != 1)
        return HS_FAIL(HS_ERR_SHAPE, "%s: mask must be (H,W) or (H,W,1), got %lld channels", op, (long long)d.c);
    uint8_t *m = hs_alloc((size_t)(d.h * d.w));
    if (!m)
        return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory", op);
    const int64_t s0 = mask->stride[0], s1 = mask->stride[1];
    for (int64_t y = 0; y < d.h; y++)
        for (int64_t x = 0; x < d.w; x++) {
            int64_t o = y * s0 + x * s1;
            m[y * d.w + x] = mask->dtype == HS_DTYPE_U8 ? ((const uint8_t *)mask->data)[o] != 0
                                                         : ((const float *)mask->data)[o] != 0;
        }
    *out = m;
    *H = d.h;
    *W = d.w;
    return HS_OK;
}

static hs_status check_labels(const hs_tensor *labels, int64_t H, int64_t W, const char *op) {
    char a[96];
    if (!labels || labels->ndim != 2 || (H >= 0 && (labels->shape[0] != H || labels->shape[1] != W)))
        return HS_FAIL(HS_ERR_SHAPE, "%s: labels must be (%lld,%lld), got %s", op, (long long)H, (long long)W,
                       labels ? hs_tensor_shape_str(labels, a, sizeof a) : "NULL");
    if (labels->dtype != HS_DTYPE_I32 && labels->dtype != HS_DTYPE_I64)
        return HS_FAIL(HS_ERR_DTYPE, "%s: labels dtype must be I32 or I64, got %s", op, hs_dtype_name(labels->dtype));
    if (!hs_tensor_is_contiguous(labels))
        return HS_FAIL(HS_ERR_ARG, "%s: labels must be contiguous", op);
    return HS_OK;
}

static inline int64_t lab_get(const hs_tensor *l, int64_t i) {
    return l->dtype == HS_DTYPE_I32 ? ((const int32_t *)l->data)[i] : ((const int64_t *)l->data)[i];
}
static inline void lab_set(hs_tensor *l, int64_t i, int64_t v) {
    if (l->dtype == HS_DTYPE_I32)
        ((int32_t *)l->data)[i] = (int32_t)v;
    else
        ((int64_t *)l->data)[i] = v;
}

// ---- thresholds ----

hs_status hs_segment_threshold(hs_tensor *dst, const hs_tensor *src, double t, int invert) {
    hs_image_dims d;
    HS_TRY(hs_geometry_dims(&d, src, "threshold"));
    HS_TRY(hs_geometry_check_dst(dst, "threshold", HS_DTYPE_U8, &d));
    if (isnan(t))
        return HS_FAIL(HS_ERR_ARG, "threshold: threshold is NaN");
    const int64_t n = d.h * d.w * d.c;
    uint8_t *o = dst->data;
    if (src->dtype == HS_DTYPE_U8 && hs_tensor_is_contiguous(src)) {
        uint8_t lut[256];  // cv2 compares against floor(t) for U8: v > t  <=>  v > floor(t)
        for (int v = 0; v < 256; v++)
            lut[v] = (uint8_t)(((double)v > t) != (invert != 0) ? 255 : 0);
        const uint8_t *s = src->data;
        for (int64_t i = 0; i < n; i++)
            o[i] = lut[s[i]];
        return HS_OK;
    }
    for (int64_t i = 0; i < n; i++)
        o[i] = (uint8_t)((hs_tensor_get_flat(src, i) > t) != (invert != 0) ? 255 : 0);
    return HS_OK;
}

hs_status hs_segment_otsu(hs_tensor *dst, double *t, const hs_tensor *src, int invert) {
    hs_image_dims d;
    HS_TRY(hs_geometry_dims(&d, src, "otsu"));
    if (src->dtype != HS_DTYPE_U8)
        return HS_FAIL(HS_ERR_DTYPE, "otsu: image dtype must be U8, got %s", hs_dtype_name(src->dtype));
    if (d.c != 1)
        return HS_FAIL(HS_ERR_SHAPE, "otsu: image must be gray (H,W), got %lld channels", (long long)d.c);
    int64_t hist[256] = {0};
    for (int64_t y = 0; y < d.h; y++)
        for (int64_t x = 0; x < d.w; x++)
            hist[((const uint8_t *)src->data)[y * src->stride[0] + x * src->stride[1]]]++;
    // cv2 getThreshVal_Otsu_8u, operation for operation (including mu1 *= q1 before the skip)
    const double scale = 1.0 / (double)(d.h * d.w);
    double mu = 0;
    for (int i = 0; i < 256; i++)
        mu += i * (double)hist[i];
    mu *= scale;
    double mu1 = 0, q1 = 0, max_sigma = 0, max_val = 0;
    for (int i = 0; i < 256; i++) {
        double p_i = (double)hist[i] * scale, q2, mu2, sigma;
        mu1 *= q1;
        q1 += p_i;
        q2 = 1. - q1;
        if (fmin(q1, q2) < (double)FLT_EPSILON || fmax(q1, q2) > 1. - (double)FLT_EPSILON)
            continue;
        mu1 = (mu1 + i * p_i) / q1;
        mu2 = (mu - q1 * mu1) / q2;
        sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
        if (sigma > max_sigma) {
            max_sigma = sigma;
            max_val = i;
        }
    }
    *t = max_val;
    if (dst)
        return hs_segment_threshold(dst, src, max_val, invert);
    return HS_OK;
}

hs_status hs_segment_adaptive_threshold(hs_tensor *dst, const hs_tensor *src, int block, double c,
                                        hs_adaptive_method method, int invert) {
    hs_image_dims d;
    HS_TRY(hs_geometry_dims(&d, src, "adaptive_threshold"));
    HS_TRY(hs_geometry_check_dst(dst, "adaptive_threshold", HS_DTYPE_U8, &d));
    if (d.c != 1)
        return HS_FAIL(HS_ERR_SHAPE, "adaptive_threshold: image must be gray (H,W), got %lld channels", (long long)d.c);
    if (block < 3 || block % 2 == 0)
        return HS_FAIL(HS_ERR_ARG, "adaptive_threshold: block must be odd >= 3, got %d", block);
    if (method != HS_ADAPTIVE_MEAN && method != HS_ADAPTIVE_GAUSSIAN)
        return HS_FAIL(HS_ERR_ARG, "adaptive_threshold: bad method %d", (int)method);
    if (!isfinite(c))
        return HS_FAIL(HS_ERR_ARG, "adaptive_threshold: c must be finite");
    hs_tensor *mean = NULL, *tmp;
    const hs_tensor *in;
    HS_TRY(hs_geometry_contiguous(&tmp, &in, src));
    hs_status st = hs_tensor_new(&mean, in->dtype, in->ndim, in->shape);
    if (st == HS_OK)
        st = method == HS_ADAPTIVE_MEAN ? hs_filter_box(mean, in, block, HS_BORDER_REPLICATE)
                                        : hs_filter_gaussian(mean, in, 0, block, HS_BORDER_REPLICATE);
    if (st == HS_OK) {
        const int64_t n = d.h * d.w;
        uint8_t *o = dst->data;
        if (in->dtype == HS_DTYPE_U8) {
            // cv2: idelta = ceil(c) (binary) or floor(c) (inverse); 255 where src - mean > -idelta
            const int64_t idelta = invert ? (int64_t)floor(c) : (int64_t)ceil(c);
            const uint8_t *s = in->data, *m = mean->data;
            for (int64_t i = 0; i < n; i++) {
                int64_t diff = (int64_t)s[i] - m[i];
                o[i] = (uint8_t)((invert ? diff <= -idelta : diff > -idelta) ? 255 : 0);
            }
        } else {
            const float *s = in->data, *m = mean->data;
            for (int64_t i = 0; i < n; i++) {
                int above = (double)s[i] > (double)m[i] - c;
                o[i] = (uint8_t)((above != (invert != 0)) ? 255 : 0);
            }
        }
    }
    hs_tensor_free(mean);
    hs_tensor_free(tmp);
    return st;
}

// ---- connected components ----

static int64_t uf_find(int64_t *parent, int64_t a) {
    while (parent[a] != a) {
        parent[a] = parent[parent[a]];
        a = parent[a];
    }
    return a;
}

static int64_t uf_union(int64_t *parent, int64_t a, int64_t b) {
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a < b) {
        parent[b] = a;
        return a;
    }
    parent[a] = b;
    return b;
}

// Label the 0/1 image m into prov (provisional roots, then final labels written to `labels`).
static hs_status label_bytes(hs_tensor *labels, int64_t *count, const uint8_t *m, int64_t H, int64_t W, int conn,
                             const char *op) {
    const int64_t n = H * W;
    int64_t *prov = hs_alloc((size_t)(2 * n + 1) * sizeof(int64_t));
    if (!prov)
        return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory for %lld pixels", op, (long long)n);
    int64_t *parent = prov + n;  // parent[0]: background
    int64_t next = 1;
    parent[0] = 0;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            int64_t i = y * W + x, lab = 0;
            if (!m[i]) {
                prov[i] = 0;
                continue;
            }
            int64_t nb[4];
            int nn = 0;
            if (x > 0 && m[i - 1])
                nb[nn++] = prov[i - 1];
            if (y > 0) {
                if (m[i - W])
                    nb[nn++] = prov[i - W];
                if (conn == 8 && x > 0 && m[i - W - 1])
                    nb[nn++] = prov[i - W - 1];
                if (conn == 8 && x + 1 < W && m[i - W + 1])
                    nb[nn++] = prov[i - W + 1];
            }
            if (nn == 0) {
                lab = next;
                parent[next] = next;
                next++;
            } else {
                lab = nb[0];
                for (int k = 1; k < nn; k++)
                    lab = uf_union(parent, lab, nb[k]);
                lab = uf_find(parent, lab);
            }
            prov[i] = lab;
        }
    // flatten to roots, then number the roots in OpenCV's order of first encounter
    for (int64_t p = 1; p < next; p++)
        parent[p] = uf_find(parent, p);
    int64_t *num = hs_alloc((size_t)(next + 1) * sizeof(int64_t));
    if (!num) {
        hs_free(prov);
        return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory", op);
    }
    memset(num, 0, (size_t)(next + 1) * sizeof(int64_t));
    int64_t k = 0;
    if (conn == 8) {  // OpenCV's 8-way scan (Spaghetti) creates labels per 2x2 block
        for (int64_t by = 0; by < H; by += 2)
            for (int64_t bx = 0; bx < W; bx += 2)
                for (int64_t dy = 0; dy < 2 && by + dy < H; dy++)
                    for (int64_t dx = 0; dx < 2 && bx + dx < W; dx++) {
                        int64_t r = parent[prov[(by + dy) * W + bx + dx]];
                        if (r && !num[r])
                            num[r] = ++k;
                    }
    } else {
        for (int64_t i = 0; i < n; i++) {
            int64_t r = parent[prov[i]];
            if (r && !num[r])
                num[r] = ++k;
        }
    }
    for (int64_t i = 0; i < n; i++)
        lab_set(labels, i, prov[i] ? num[parent[prov[i]]] : 0);
    *count = k;
    hs_free(num);
    hs_free(prov);
    return HS_OK;
}

hs_status hs_segment_label(hs_tensor *labels, int64_t *count, const hs_tensor *mask, int connectivity) {
    if (connectivity != 4 && connectivity != 8)
        return HS_FAIL(HS_ERR_ARG, "connected_components: connectivity must be 4 or 8, got %d", connectivity);
    uint8_t *m;
    int64_t H, W;
    HS_TRY(mask_bytes(&m, &H, &W, mask, "connected_components"));
    hs_status st = check_labels(labels, H, W, "connected_components");
    if (st == HS_OK)
        st = label_bytes(labels, count, m, H, W, connectivity, "connected_components");
    hs_free(m);
    return st;
}

hs_status hs_segment_stats(hs_component *stats, int64_t count, const hs_tensor *labels, const hs_tensor *image) {
    HS_TRY(check_labels(labels, -1, -1, "component_stats"));
    const int64_t H = labels->shape[0], W = labels->shape[1];
    hs_image_dims d = {H, W, 0, 2};
    if (count < 0)
        return HS_FAIL(HS_ERR_ARG, "component_stats: count %lld is negative", (long long)count);
    if (image) {
        HS_TRY(hs_geometry_dims(&d, image, "component_stats"));
        if (d.h != H || d.w != W)
            return HS_FAIL(HS_ERR_SHAPE, "component_stats: image is %lldx%lld, labels %lldx%lld", (long long)d.h,
                           (long long)d.w, (long long)H, (long long)W);
        if (d.c > HS_SEGMENT_MAX_CHANNELS)
            return HS_FAIL(HS_ERR_SHAPE, "component_stats: image has %lld channels, at most %d", (long long)d.c,
                           HS_SEGMENT_MAX_CHANNELS);
    }
    double *acc = hs_calloc((size_t)(count + 1) * (2 + HS_SEGMENT_MAX_CHANNELS), sizeof(double));
    if (!acc)
        return HS_FAIL(HS_ERR_NOMEM, "component_stats: out of memory");
    for (int64_t k = 0; k < count; k++) {
        memset(&stats[k], 0, sizeof stats[k]);
        stats[k].x = W;
        stats[k].y = H;
        stats[k].w = -1;  // right edge while scanning
        stats[k].h = -1;  // bottom edge while scanning
    }
    const int u8 = image && image->dtype == HS_DTYPE_U8;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            int64_t l = lab_get(labels, y * W + x);
            if (l < 1 || l > count)
                continue;
            hs_component *s = &stats[l - 1];
            double *a = acc + (l - 1) * (2 + HS_SEGMENT_MAX_CHANNELS);
            s->area++;
            if (x < s->x) s->x = x;
            if (y < s->y) s->y = y;
            if (x > s->w) s->w = x;
            if (y > s->h) s->h = y;
            a[0] += (double)x;
            a[1] += (double)y;
            for (int64_t c = 0; image && c < d.c; c++) {
                int64_t o = y * image->stride[0] + x * image->stride[1] + (image->ndim == 3 ? c * image->stride[2] : 0);
                a[2 + c] += u8 ? (double)((const uint8_t *)image->data)[o] : (double)((const float *)image->data)[o];
            }
        }
    for (int64_t k = 0; k < count; k++) {
        hs_component *s = &stats[k];
        const double *a = acc + k * (2 + HS_SEGMENT_MAX_CHANNELS);
        if (s->area == 0) {
            s->x = s->y = s->w = s->h = 0;
            continue;
        }
        s->w = s->w - s->x + 1;
        s->h = s->h - s->y + 1;
        s->cx = a[0] / (double)s->area;
        s->cy = a[1] / (double)s->area;
        for (int64_t c = 0; image && c < d.c; c++)
            s->mean[c] = a[2 + c] / (double)s->area;
    }
    hs_free(acc);
    return HS_OK;
}

// ---- distance transform ----

#define DT_INF 1e20

typedef struct {
    float *out;           // (H,W) squared distances, then distances
    int64_t H, W;
    int pass;             // 0: columns, 1: rows
    char *scratch;
    size_t scratch_bytes;
    int64_t grain;
} dt_ctx;

// 1-D squared distance transform of f (n samples) into d (Felzenszwalb & Huttenlocher 2012).
static void dt_1d(double *d, const double *f, int64_t n, int64_t *v, double *z) {
    int64_t k = 0;
    v[0] = 0;
    z[0] = -HUGE_VAL;
    z[1] = HUGE_VAL;
    for (int64_t q = 1; q < n; q++) {
        if (f[q] >= DT_INF)
            continue;  // an infinite parabola never enters the envelope
        if (f[v[0]] >= DT_INF) {  // envelope so far only holds infinite parabolas: restart
            k = 0;
            v[0] = q;
            z[0] = -HUGE_VAL;
            z[1] = HUGE_VAL;
            continue;
        }
        double s;
        for (;;) {
            int64_t p = v[k];
            s = ((f[q] + (double)(q * q)) - (f[p] + (double)(p * p))) / (double)(2 * (q - p));
            if (s <= z[k] && k > 0)
                k--;
            else
                break;
        }
        k++;
        v[k] = q;
        z[k] = s;
        z[k + 1] = HUGE_VAL;
    }
    if (f[v[0]] >= DT_INF) {
        for (int64_t q = 0; q < n; q++)
            d[q] = DT_INF;
        return;
    }
    k = 0;
    for (int64_t q = 0; q < n; q++) {
        while (z[k + 1] < (double)q)
            k++;
        double dq = (double)(q - v[k]);
        d[q] = dq * dq + f[v[k]];
    }
}

static void dt_lines(void *ctx, int64_t begin, int64_t end) {
    dt_ctx *c = ctx;
    const int64_t n = c->pass == 0 ? c->H : c->W, step = c->pass == 0 ? c->W : 1;
    double *f = (double *)(c->scratch + (size_t)(begin / c->grain) * c->scratch_bytes), *d = f + n, *z = d + n;
    int64_t *v = (int64_t *)(z + n + 1);
    for (int64_t line = begin; line < end; line++) {
        float *p = c->out + (c->pass == 0 ? line : line * c->W);
        for (int64_t q = 0; q < n; q++)
            f[q] = p[q * step] >= 1e19f ? DT_INF : (double)p[q * step];
        dt_1d(d, f, n, v, z);
        for (int64_t q = 0; q < n; q++) {
            double r = d[q];
            if (c->pass == 0)
                p[q * step] = r >= DT_INF ? 1e20f : (float)r;
            else
                p[q * step] = r >= DT_INF ? INFINITY : (float)sqrt(r);
        }
    }
}

static hs_status distance_bytes(float *out, const uint8_t *m, int64_t H, int64_t W) {
    for (int64_t i = 0; i < H * W; i++)
        out[i] = m[i] ? 1e20f : 0.f;
    const int64_t n = H > W ? H : W;
    dt_ctx c = {.out = out, .H = H, .W = W};
    c.scratch_bytes = ((size_t)(3 * n + 1) * sizeof(double) + (size_t)n * sizeof(int64_t) + 63) & ~(size_t)63;
    int64_t g = (n + 15) / 16;
    c.grain = g < 1 ? 1 : g;
    c.scratch = hs_alloc((size_t)((n + c.grain - 1) / c.grain) * c.scratch_bytes);
    if (!c.scratch)
        return HS_FAIL(HS_ERR_NOMEM, "distance_transform: out of memory");
    c.pass = 0;
    hs_parallel_for(W, c.grain, dt_lines, &c);
    c.pass = 1;
    hs_parallel_for(H, c.grain, dt_lines, &c);
    hs_free(c.scratch);
    return HS_OK;
}

hs_status hs_segment_distance(hs_tensor *dist, const hs_tensor *mask) {
    char a[96];
    uint8_t *m;
    int64_t H, W;
    HS_TRY(mask_bytes(&m, &H, &W, mask, "distance_transform"));
    hs_status st = HS_OK;
    if (!dist || dist->ndim != 2 || dist->shape[0] != H || dist->shape[1] != W || dist->dtype != HS_DTYPE_F32 ||
        !hs_tensor_is_contiguous(dist))
        st = HS_FAIL(HS_ERR_SHAPE, "distance_transform: output must be contiguous F32 (%lld,%lld), got %s %s",
                     (long long)H, (long long)W, dist ? hs_dtype_name(dist->dtype) : "NULL",
                     dist ? hs_tensor_shape_str(dist, a, sizeof a) : "");
    if (st == HS_OK)
        st = distance_bytes(dist->data, m, H, W);
    hs_free(m);
    return st;
}

// ---- watershed ----

typedef struct {
    float v;
    int64_t age, idx;
} heap_item;

static int heap_less(const heap_item *a, const heap_item *b) {
    return a->v < b->v || (a->v == b->v && a->age < b->age);
}

static void heap_push(heap_item *h, int64_t *n, heap_item it) {
    int64_t i = (*n)++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!heap_less(&it, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = it;
}

static heap_item heap_pop(heap_item *h, int64_t *n) {
    heap_item top = h[0], last = h[--(*n)];
    int64_t i = 0;
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        const heap_item *best = &last;
        if (l < *n && heap_less(&h[l], best)) {
            m = l;
            best = &h[l];
        }
        if (r < *n && heap_less(&h[r], best))
            m = r;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

// Flood labels (contiguous I32/I64) over surf (H*W floats) inside m (NULL: everywhere).
static hs_status flood(hs_tensor *labels, const float *surf, const uint8_t *m, int64_t H, int64_t W, int conn) {
    const int64_t n = H * W;
    heap_item *heap = hs_alloc((size_t)(n + 1) * sizeof *heap);
    if (!heap)
        return HS_FAIL(HS_ERR_NOMEM, "watershed: out of memory for %lld pixels", (long long)n);
    int64_t hn = 0, age = 0;
    for (int64_t i = 0; i < n; i++)
        if (lab_get(labels, i) > 0)
            heap_push(heap, &hn, (heap_item){surf[i], age++, i});
    static const int dy8[8] = {-1, 0, 0, 1, -1, -1, 1, 1}, dx8[8] = {0, -1, 1, 0, -1, 1, -1, 1};
    while (hn > 0) {
        heap_item it = heap_pop(heap, &hn);
        const int64_t y = it.idx / W, x = it.idx % W, l = lab_get(labels, it.idx);
        for (int k = 0; k < conn; k++) {
            int64_t yy = y + dy8[k], xx = x + dx8[k];
            if (yy < 0 || yy >= H || xx < 0 || xx >= W)
                continue;
            int64_t j = yy * W + xx;
            if (lab_get(labels, j) != 0 || (m && !m[j]))
                continue;
            lab_set(labels, j, l);  // claimed when queued: each pixel enters the heap once
            heap_push(heap, &hn, (heap_item){surf[j], age++, j});
        }
    }
    hs_free(heap);
    return HS_OK;
}

hs_status hs_segment_watershed(hs_tensor *labels, const hs_tensor *surface, const hs_tensor *mask, int connectivity) {
    hs_image_dims d;
    if (connectivity != 4 && connectivity != 8)
        return HS_FAIL(HS_ERR_ARG, "watershed: connectivity must be 4 or 8, got %d", connectivity);
    HS_TRY(hs_geometry_dims(&d, surface, "watershed"));
    if (d.c != 1)
        return HS_FAIL(HS_ERR_SHAPE, "watershed: surface must be (H,W), got %lld channels", (long long)d.c);
    HS_TRY(check_labels(labels, d.h, d.w, "watershed"));
    uint8_t *m = NULL;
    if (mask) {
        int64_t mh, mw;
        HS_TRY(mask_bytes(&m, &mh, &mw, mask, "watershed"));
        if (mh != d.h || mw != d.w) {
            hs_free(m);
            return HS_FAIL(HS_ERR_SHAPE, "watershed: mask is %lldx%lld, surface %lldx%lld", (long long)mh,
                           (long long)mw, (long long)d.h, (long long)d.w);
        }
    }
    float *surf = hs_alloc((size_t)(d.h * d.w) * sizeof(float));
    hs_status st = HS_OK;
    if (!surf) {
        st = HS_FAIL(HS_ERR_NOMEM, "watershed: out of memory");
    } else {
        for (int64_t y = 0; y < d.h; y++)
            for (int64_t x = 0; x < d.w; x++) {
                int64_t o = y * surface->stride[0] + x * surface->stride[1];
                surf[y * d.w + x] = surface->dtype == HS_DTYPE_U8 ? (float)((const uint8_t *)surface->data)[o]
                                                                  : ((const float *)surface->data)[o];
            }
        st = flood(labels, surf, m, d.h, d.w, connectivity);
    }
    hs_free(surf);
    hs_free(m);
    return st;
}

hs_status hs_segment_split_nuclei(hs_tensor *labels, int64_t *count, const hs_tensor *mask, int min_distance) {
    if (min_distance < 1 || min_distance > 512)
        return HS_FAIL(HS_ERR_ARG, "split_nuclei: min_distance must be in 1..512, got %d", min_distance);
    uint8_t *m;
    int64_t H, W;
    HS_TRY(mask_bytes(&m, &H, &W, mask, "split_nuclei"));
    hs_status st = check_labels(labels, H, W, "split_nuclei");
    hs_tensor *dist = NULL, *dmax = NULL, *ker = NULL, *peaks = NULL, *plab = NULL;
    int64_t shape[2] = {H, W}, kshape[2] = {2 * min_distance + 1, 2 * min_distance + 1};
    if (st == HS_OK)
        st = hs_tensor_new(&dist, HS_DTYPE_F32, 2, shape);
    if (st == HS_OK)
        st = hs_tensor_new(&dmax, HS_DTYPE_F32, 2, shape);
    if (st == HS_OK)
        st = hs_tensor_new(&peaks, HS_DTYPE_U8, 2, shape);
    if (st == HS_OK)
        st = hs_tensor_new(&ker, HS_DTYPE_U8, 2, kshape);
    if (st == HS_OK)
        st = hs_morph_structuring_element(ker, HS_MORPH_RECT);
    if (st == HS_OK)
        st = distance_bytes(dist->data, m, H, W);
    if (st == HS_OK)
        st = hs_morph_apply(dmax, dist, ker, HS_MORPH_DILATE);
    int64_t npeaks = 0;
    if (st == HS_OK) {
        // peaks: foreground pixels equal to the maximum of their window; a plateau of equal
        // maxima is one connected peak and so one marker
        const float *dv = dist->data, *mv = dmax->data;
        uint8_t *pv = peaks->data;
        for (int64_t i = 0; i < H * W; i++)
            pv[i] = m[i] && dv[i] > 0 && dv[i] >= mv[i];
        st = label_bytes(labels, &npeaks, pv, H, W, 8, "split_nuclei");
    }
    if (st == HS_OK) {
        float *surf = dmax->data;  // reuse as the flooding surface -distance
        const float *dv = dist->data;
        for (int64_t i = 0; i < H * W; i++)
            surf[i] = -dv[i];
        st = flood(labels, surf, m, H, W, 8);
    }
    if (st == HS_OK) {
        // foreground no marker reached (an object whose peak lost to a taller neighbour's window)
        uint8_t *left = peaks->data;
        int64_t nleft = 0, any = 0;
        for (int64_t i = 0; i < H * W; i++) {
            left[i] = m[i] && lab_get(labels, i) == 0;
            any |= left[i];
        }
        if (any) {
            st = hs_tensor_new(&plab, HS_DTYPE_I64, 2, shape);
            if (st == HS_OK)
                st = label_bytes(plab, &nleft, left, H, W, 8, "split_nuclei");
            if (st == HS_OK)
                for (int64_t i = 0; i < H * W; i++)
                    if (left[i])
                        lab_set(labels, i, npeaks + ((const int64_t *)plab->data)[i]);
        }
        *count = npeaks + nleft;
    }
    hs_tensor_free(plab);
    hs_tensor_free(ker);
    hs_tensor_free(peaks);
    hs_tensor_free(dmax);
    hs_tensor_free(dist);
    hs_free(m);
    return st;
}
