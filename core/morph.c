// core/morph.c: erode/dilate/open/close with arbitrary structuring elements (morph.h).
// The source is copied once into a buffer padded with the neutral value (max for erode, min for
// dilate: "outside ignored" as OpenCV's default border), then every output row is the running
// min/max over the element's members of shifted padded rows: contiguous loops that vectorise.
// Not a van Herk / Gil-Werman implementation: cost is O(members) per pixel.
#include "morph.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "geometry.h"
#include "parallel.h"

hs_status hs_morph_shape_from_name(hs_morph_shape *s, const char *name) {
    static const char *const names[] = {"rect", "ellipse", "cross"};
    for (int i = 0; name && i < HS_MORPH_SHAPE_COUNT; i++)
        if (strcmp(name, names[i]) == 0) {
            *s = (hs_morph_shape)i;
            return HS_OK;
        }
    return HS_FAIL(HS_ERR_ARG, "morphology: unknown shape '%s' (rect, ellipse, cross)", name ? name : "(null)");
}

hs_status hs_morph_op_from_name(hs_morph_op *op, const char *name) {
    static const char *const names[] = {"erode", "dilate", "open", "close"};
    for (int i = 0; name && i < HS_MORPH_OP_COUNT; i++)
        if (strcmp(name, names[i]) == 0) {
            *op = (hs_morph_op)i;
            return HS_OK;
        }
    return HS_FAIL(HS_ERR_ARG, "morphology: unknown op '%s' (erode, dilate, open, close)", name ? name : "(null)");
}

hs_status hs_morph_structuring_element(hs_tensor *kernel, hs_morph_shape shape) {
    char sh[96];
    if (!kernel || kernel->ndim != 2 || kernel->dtype != HS_DTYPE_U8 || !hs_tensor_is_contiguous(kernel) ||
        kernel->shape[0] < 1 || kernel->shape[1] < 1)
        return HS_FAIL(HS_ERR_SHAPE, "structuring_element: kernel must be a contiguous (kh,kw) U8 tensor, got %s %s",
                       kernel ? hs_dtype_name(kernel->dtype) : "NULL",
                       kernel ? hs_tensor_shape_str(kernel, sh, sizeof sh) : "");
    if ((unsigned)shape >= HS_MORPH_SHAPE_COUNT)
        return HS_FAIL(HS_ERR_ARG, "structuring_element: bad shape %d", (int)shape);
    const int64_t kh = kernel->shape[0], kw = kernel->shape[1];
    uint8_t *k = kernel->data;
    memset(k, 0, (size_t)(kh * kw));
    // cv2.getStructuringElement: the ellipse's half-width of row i is round(r*sqrt(1 - dy^2/c^2))
    const int64_t r = kw / 2, c = kh / 2;
    const double inv_c2 = c ? 1.0 / ((double)c * (double)c) : 0;
    for (int64_t i = 0; i < kh; i++) {
        int64_t j1 = 0, j2 = 0;
        if (shape == HS_MORPH_RECT || (shape == HS_MORPH_CROSS && i == c)) {
            j2 = kw;
        } else if (shape == HS_MORPH_CROSS) {
            j1 = r;
            j2 = r + 1;
        } else {
            int64_t dy = i - c;
            if (dy < 0 ? -dy <= c : dy <= c) {
                int64_t dx = (int64_t)lrint((double)r * sqrt((double)(c * c - dy * dy) * inv_c2));
                j1 = r - dx > 0 ? r - dx : 0;
                j2 = r + dx + 1 < kw ? r + dx + 1 : kw;
            }
        }
        for (int64_t j = j1; j < j2; j++)
            k[i * kw + j] = 1;
    }
    return HS_OK;
}

typedef struct {
    hs_tensor *dst;
    hs_image_dims d;
    const void *pad;       // (H+kh-1, W+kw-1, C)
    const int32_t *off;    // member offsets (dy, dx) as element offsets into pad
    int nmem, dilate;
} morph_ctx;

static void morph_rows(void *ctx, int64_t begin, int64_t end) {
    morph_ctx *m = ctx;
    const int64_t n = m->d.w * m->d.c;
    for (int64_t y = begin; y < end; y++) {
        if (m->dst->dtype == HS_DTYPE_U8) {
            uint8_t *o = (uint8_t *)m->dst->data + y * n;
            const uint8_t *P = m->pad;
            memset(o, m->dilate ? 0 : 255, (size_t)n);
            for (int t = 0; t < m->nmem; t++) {
                const uint8_t *s = P + m->off[2 * t] + y * m->off[2 * t + 1];
                if (m->dilate)
                    for (int64_t j = 0; j < n; j++)
                        o[j] = s[j] > o[j] ? s[j] : o[j];
                else
                    for (int64_t j = 0; j < n; j++)
                        o[j] = s[j] < o[j] ? s[j] : o[j];
            }
        } else {
            float *o = (float *)m->dst->data + y * n;
            const float *P = m->pad;
            for (int64_t j = 0; j < n; j++)
                o[j] = m->dilate ? -INFINITY : INFINITY;
            for (int t = 0; t < m->nmem; t++) {
                const float *s = P + m->off[2 * t] + y * m->off[2 * t + 1];
                if (m->dilate)
                    for (int64_t j = 0; j < n; j++)
                        o[j] = s[j] > o[j] ? s[j] : o[j];
                else
                    for (int64_t j = 0; j < n; j++)
                        o[j] = s[j] < o[j] ? s[j] : o[j];
            }
        }
    }
}

// One erode (dilate = 0) or dilate pass; src contiguous, dst validated.
static hs_status morph_pass(hs_tensor *dst, const hs_tensor *src, const hs_image_dims *d, const hs_tensor *kernel,
                            int dilate) {
    const int64_t kh = kernel->shape[0], kw = kernel->shape[1], ay = kh / 2, ax = kw / 2;
    const int64_t ph = d->h + kh - 1, pw = d->w + kw - 1, C = d->c;
    const size_t es = hs_dtype_size(src->dtype);
    int nmem = 0;
    for (int64_t i = 0; i < kh * kw; i++) {
        double v = hs_tensor_get_flat(kernel, i);
        nmem += v != 0;
    }
    size_t pad_bytes = ((size_t)(ph * pw * C) * es + 63) & ~(size_t)63;
    char *mem = hs_alloc(pad_bytes + (size_t)(2 * nmem + 2) * sizeof(int32_t));
    if (!mem)
        return HS_FAIL(HS_ERR_NOMEM, "morphology: out of memory");
    int32_t *off = (int32_t *)(mem + pad_bytes);
    int t = 0;
    for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++)
            if (hs_tensor_get_flat(kernel, i * kw + j) != 0) {
                off[2 * t] = (int32_t)((i * pw + j) * C);  // member (i,j) of output row 0
                off[2 * t + 1] = (int32_t)(pw * C);        // then one padded row per output row
                t++;
            }
    // neutral fill, then the image in the middle
    if (src->dtype == HS_DTYPE_U8) {
        memset(mem, dilate ? 0 : 255, (size_t)(ph * pw * C));
    } else {
        float *p = (float *)mem, v = dilate ? -INFINITY : INFINITY;
        for (int64_t i = 0; i < ph * pw * C; i++)
            p[i] = v;
    }
    for (int64_t y = 0; y < d->h; y++)
        memcpy(mem + (size_t)(((y + ay) * pw + ax) * C) * es, (const char *)src->data + (size_t)(y * d->w * C) * es,
               (size_t)(d->w * C) * es);
    morph_ctx m = {.dst = dst, .d = *d, .pad = mem, .off = off, .nmem = nmem, .dilate = dilate};
    if (nmem == 0) {  // an empty element: OpenCV leaves the image unchanged
        memcpy(dst->data, src->data, (size_t)(d->h * d->w * C) * es);
    } else {
        int64_t g = (d->h + 15) / 16;
        hs_parallel_for(d->h, g < 1 ? 1 : g, morph_rows, &m);
    }
    hs_free(mem);
    return HS_OK;
}

hs_status hs_morph_apply(hs_tensor *dst, const hs_tensor *src, const hs_tensor *kernel, hs_morph_op op) {
    char sh[96];
    hs_image_dims d;
    HS_TRY(hs_geometry_dims(&d, src, "morphology"));
    HS_TRY(hs_geometry_check_dst(dst, "morphology", src->dtype, &d));
    if (!kernel || kernel->ndim != 2 || kernel->shape[0] < 1 || kernel->shape[1] < 1)
        return HS_FAIL(HS_ERR_SHAPE, "morphology: structuring element must be (kh,kw), got %s",
                       kernel ? hs_tensor_shape_str(kernel, sh, sizeof sh) : "NULL");
    if (kernel->shape[0] > 1024 || kernel->shape[1] > 1024)
        return HS_FAIL(HS_ERR_ARG, "morphology: structuring element %s is too large (max 1024x1024)",
                       hs_tensor_shape_str(kernel, sh, sizeof sh));
    if ((unsigned)op >= HS_MORPH_OP_COUNT)
        return HS_FAIL(HS_ERR_ARG, "morphology: bad op %d", (int)op);
    if (dst->data == src->data)
        return HS_FAIL(HS_ERR_ARG, "morphology: destination must not alias the source");
    hs_tensor *tmp, *mid = NULL;
    const hs_tensor *in;
    HS_TRY(hs_geometry_contiguous(&tmp, &in, src));
    hs_status st;
    if (op == HS_MORPH_ERODE || op == HS_MORPH_DILATE) {
        st = morph_pass(dst, in, &d, kernel, op == HS_MORPH_DILATE);
    } else {
        st = hs_tensor_new(&mid, src->dtype, src->ndim, src->shape);
        if (st == HS_OK)
            st = morph_pass(mid, in, &d, kernel, op == HS_MORPH_CLOSE);
        if (st == HS_OK)
            st = morph_pass(dst, mid, &d, kernel, op == HS_MORPH_OPEN);
    }
    hs_tensor_free(mid);
    hs_tensor_free(tmp);
    return st;
}
