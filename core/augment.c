// core/augment.c: seeded augmentation plans and their execution (augment.h). Every random value
// is hs_rng_uniform(seed, AUG_STREAM, i) for a fixed slot i per decision, so plans never depend
// on threads or on which options are enabled. The HED round trip uses scikit-image's
// Ruifrok-Johnston matrices and log scaling (rgb2hed/hed2rgb), kept here in a few lines rather
// than depending on stain.c. Not a pipeline of arbitrary transforms.
#include "augment.h"

#include <math.h>
#include <string.h>

#include "geometry.h"
#include "parallel.h"
#include "rng.h"

#define AUG_STREAM 0xA06D3E17u

enum { SLOT_HFLIP, SLOT_VFLIP, SLOT_ROT, SLOT_CROP_X, SLOT_CROP_Y, SLOT_BRIGHT, SLOT_CONTRAST, SLOT_HED = 8 };

hs_status hs_augment_draw(hs_augment_plan *plan, const hs_augment_spec *spec, uint64_t seed, int64_t h, int64_t w) {
    if (!plan || !spec)
        return HS_FAIL(HS_ERR_ARG, "augment: NULL plan or spec");
    if (h < 1 || w < 1)
        return HS_FAIL(HS_ERR_SHAPE, "augment: empty image %lldx%lld", (long long)h, (long long)w);
    if (!(spec->p_hflip >= 0 && spec->p_hflip <= 1) || !(spec->p_vflip >= 0 && spec->p_vflip <= 1))
        return HS_FAIL(HS_ERR_ARG, "augment: flip probabilities must be in [0,1], got %g and %g", spec->p_hflip,
                       spec->p_vflip);
    if (!(spec->brightness >= 0) || !(spec->contrast >= 0 && spec->contrast < 1) || !(spec->hed_sigma >= 0 &&
        spec->hed_sigma < 1) || !(spec->hed_bias >= 0))
        return HS_FAIL(HS_ERR_ARG, "augment: brightness (%g), hed_bias (%g) must be >= 0; contrast (%g) and "
                       "hed_sigma (%g) in [0,1)", spec->brightness, spec->hed_bias, spec->contrast, spec->hed_sigma);
    if (spec->crop_w < 0 || spec->crop_h < 0 || spec->crop_w > w || spec->crop_h > h)
        return HS_FAIL(HS_ERR_ARG, "augment: crop %lldx%lld does not fit the %lldx%lld image", (long long)spec->crop_w,
                       (long long)spec->crop_h, (long long)w, (long long)h);
    memset(plan, 0, sizeof *plan);
#define U(slot) ((double)hs_rng_uniform(seed, AUG_STREAM, (uint64_t)(slot)))
    plan->w = spec->crop_w ? spec->crop_w : w;
    plan->h = spec->crop_h ? spec->crop_h : h;
    plan->x = (int64_t)floor(U(SLOT_CROP_X) * (double)(w - plan->w + 1));
    plan->y = (int64_t)floor(U(SLOT_CROP_Y) * (double)(h - plan->h + 1));
    if (plan->x > w - plan->w)
        plan->x = w - plan->w;
    if (plan->y > h - plan->h)
        plan->y = h - plan->h;
    plan->hflip = U(SLOT_HFLIP) < spec->p_hflip;
    plan->vflip = U(SLOT_VFLIP) < spec->p_vflip;
    plan->k = spec->rot90 ? (int)floor(U(SLOT_ROT) * 4) & 3 : 0;
    plan->out_h = plan->k & 1 ? plan->w : plan->h;
    plan->out_w = plan->k & 1 ? plan->h : plan->w;
    plan->brightness = (2 * U(SLOT_BRIGHT) - 1) * spec->brightness;
    plan->contrast = 1 + (2 * U(SLOT_CONTRAST) - 1) * spec->contrast;
    plan->hed = spec->hed_sigma > 0 || spec->hed_bias > 0;
    for (int j = 0; j < 3; j++) {
        plan->hed_scale[j] = 1 + (2 * U(SLOT_HED + j) - 1) * spec->hed_sigma;
        plan->hed_shift[j] = (2 * U(SLOT_HED + 3 + j) - 1) * spec->hed_bias;
    }
#undef U
    return HS_OK;
}

// scikit-image rgb_from_hed (rows: haematoxylin, eosin, DAB) and its inverse, computed once per call.
static const double rgb_from_hed[3][3] = {{0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, {0.27, 0.57, 0.78}};

static void invert3(double inv[3][3], const double m[3][3]) {
    double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int a = (j + 1) % 3, b = (j + 2) % 3, c = (i + 1) % 3, d = (i + 2) % 3;
            inv[i][j] = (m[a][c] * m[b][d] - m[a][d] * m[b][c]) / det;
        }
}

typedef struct {
    const hs_tensor *src;
    hs_tensor *dst;
    const hs_augment_plan *p;
    hs_image_dims s;
    double mean;                 // of the crop, for contrast
    double hed_from_rgb[3][3];
    float od_lut[256];           // U8 -> skimage optical density
} aug_ctx;

static void aug_rows(void *vctx, int64_t begin, int64_t end) {
    const aug_ctx *a = vctx;
    const hs_augment_plan *p = a->p;
    const int64_t C = a->s.c, ow = p->out_w;
    const int u8 = a->src->dtype == HS_DTYPE_U8;
    const double full = u8 ? 255.0 : 1.0, log_adjust = log(1e-6);
    const size_t es = hs_dtype_size(a->src->dtype);
    for (int64_t i = begin; i < end; i++)
        for (int64_t j = 0; j < ow; j++) {
            int64_t r, c;  // position in the (flipped) crop, inverting numpy.rot90's map
            switch (p->k) {
            case 0: r = i; c = j; break;
            case 1: r = j; c = p->w - 1 - i; break;
            case 2: r = p->h - 1 - i; c = p->w - 1 - j; break;
            default: r = p->h - 1 - j; c = i; break;
            }
            if (p->vflip)
                r = p->h - 1 - r;
            if (p->hflip)
                c = p->w - 1 - c;
            const int64_t sy = p->y + r, sx = p->x + c;
            double v[8];
            const int64_t nc = C < 8 ? C : 8;
            for (int64_t ch = 0; ch < nc; ch++) {
                int64_t o = sy * a->src->stride[0] + sx * a->src->stride[1] + (a->src->ndim == 3 ? ch * a->src->stride[2] : 0);
                v[ch] = u8 ? (double)((const uint8_t *)a->src->data)[o] : (double)((const float *)a->src->data)[o];
            }
            if (p->hed && C == 3) {
                double od[3], st[3];
                for (int ch = 0; ch < 3; ch++)
                    od[ch] = u8 ? (double)a->od_lut[(int)v[ch]] : log(fmax(v[ch], 1e-6)) / log_adjust;
                for (int s = 0; s < 3; s++) {
                    st[s] = od[0] * a->hed_from_rgb[0][s] + od[1] * a->hed_from_rgb[1][s] + od[2] * a->hed_from_rgb[2][s];
                    st[s] = st[s] * p->hed_scale[s] + p->hed_shift[s];
                }
                for (int ch = 0; ch < 3; ch++) {
                    double l = st[0] * rgb_from_hed[0][ch] + st[1] * rgb_from_hed[1][ch] + st[2] * rgb_from_hed[2][ch];
                    double rgb = exp(l * log_adjust);
                    rgb = rgb < 0 ? 0 : rgb > 1 ? 1 : rgb;
                    v[ch] = rgb * full;
                }
            }
            if (p->contrast != 1 || p->brightness != 0)
                for (int64_t ch = 0; ch < nc; ch++)
                    v[ch] = (v[ch] - a->mean) * p->contrast + a->mean + p->brightness * full;
            char *o = (char *)a->dst->data + (size_t)((i * ow + j) * C) * es;
            for (int64_t ch = 0; ch < C; ch++) {
                double x = ch < nc ? v[ch] : 0;
                if (ch >= nc) {  // more than 8 channels: copy the rest untouched
                    int64_t so = sy * a->src->stride[0] + sx * a->src->stride[1] + ch * a->src->stride[2];
                    x = u8 ? (double)((const uint8_t *)a->src->data)[so] : (double)((const float *)a->src->data)[so];
                }
                if (u8) {
                    x = nearbyint(x);
                    ((uint8_t *)o)[ch] = (uint8_t)(x < 0 ? 0 : x > 255 ? 255 : x);
                } else {
                    ((float *)o)[ch] = (float)x;
                }
            }
        }
}

hs_status hs_augment_apply(hs_tensor *dst, const hs_tensor *src, const hs_augment_plan *plan) {
    aug_ctx a;
    memset(&a, 0, sizeof a);
    HS_TRY(hs_geometry_dims(&a.s, src, "augment"));
    if (!plan)
        return HS_FAIL(HS_ERR_ARG, "augment: plan is NULL");
    if (plan->x < 0 || plan->y < 0 || plan->w < 1 || plan->h < 1 || plan->x + plan->w > a.s.w ||
        plan->y + plan->h > a.s.h || plan->k < 0 || plan->k > 3)
        return HS_FAIL(HS_ERR_ARG, "augment: the plan (crop %lld,%lld %lldx%lld) does not fit the %lldx%lld image",
                       (long long)plan->x, (long long)plan->y, (long long)plan->w, (long long)plan->h,
                       (long long)a.s.w, (long long)a.s.h);
    if (plan->hed && a.s.c != 3)
        return HS_FAIL(HS_ERR_SHAPE, "augment: HED stain jitter needs an RGB image, got %lld channel(s)",
                       (long long)a.s.c);
    hs_image_dims d = a.s;
    d.h = plan->k & 1 ? plan->w : plan->h;
    d.w = plan->k & 1 ? plan->h : plan->w;
    HS_TRY(hs_geometry_check_dst(dst, "augment", src->dtype, &d));
    if (plan->out_h != d.h || plan->out_w != d.w)
        return HS_FAIL(HS_ERR_ARG, "augment: plan output %lldx%lld disagrees with its crop and rotation",
                       (long long)plan->out_w, (long long)plan->out_h);
    a.src = src;
    a.dst = dst;
    a.p = plan;
    invert3(a.hed_from_rgb, rgb_from_hed);
    for (int i = 0; i < 256; i++)
        a.od_lut[i] = (float)(log(fmax(i / 255.0, 1e-6)) / log(1e-6));
    if (plan->contrast != 1) {  // mean of the crop, serial in a fixed order: deterministic
        double sum = 0;
        for (int64_t y = plan->y; y < plan->y + plan->h; y++)
            for (int64_t x = plan->x; x < plan->x + plan->w; x++)
                for (int64_t c = 0; c < a.s.c; c++) {
                    int64_t o = y * src->stride[0] + x * src->stride[1] + (src->ndim == 3 ? c * src->stride[2] : 0);
                    sum += src->dtype == HS_DTYPE_U8 ? (double)((const uint8_t *)src->data)[o]
                                                     : (double)((const float *)src->data)[o];
                }
        a.mean = sum / (double)(plan->w * plan->h * a.s.c);
    }
    int64_t g = (d.h + 15) / 16;
    hs_parallel_for(d.h, g < 1 ? 1 : g, aug_rows, &a);
    return HS_OK;
}
