// core/synth.c: synthetic IHC renderer (see synth.h). Nuclei are rotated ellipses placed by
// rejection sampling from the counter-based RNG, so a seed always gives the same tile.
#include "synth.h"

#include <math.h>
#include <string.h>

#include "rng.h"

// Ruifrok & Johnston H-DAB stain vectors (rows: hematoxylin, DAB), normalised, as scikit-image.
static const float stain_h[3] = {0.650f, 0.704f, 0.286f};
static const float stain_dab[3] = {0.268f, 0.570f, 0.776f};

void hs_synth_defaults(hs_synth_params *p) {
    memset(p, 0, sizeof *p);
    p->n_nuclei = 40;
    p->radius_min = 6;
    p->radius_max = 10;
    p->positive_fraction = 0.4f;
    p->intensity_mix[0] = p->intensity_mix[1] = p->intensity_mix[2] = 1;
    p->hema_od = 0.55f;
    p->dab_od[0] = 0.18f;
    p->dab_od[1] = 0.45f;
    p->dab_od[2] = 0.85f;
    p->noise = 0.03f;
    p->background_od = 0.04f;
    p->min_gap = 2;
    p->seed = 1;
}

static float unif(const hs_synth_params *p, uint64_t stream, uint64_t i) { return hs_rng_uniform(p->seed, stream, i); }

static int inside(const hs_synth_nucleus *n, float x, float y) {
    float c = cosf(n->angle), s = sinf(n->angle);
    float dx = x - n->cx, dy = y - n->cy;
    float u = (dx * c + dy * s) / n->rx, v = (-dx * s + dy * c) / n->ry;
    return u * u + v * v <= 1.0f;
}

hs_status hs_synth_ihc(hs_tensor *rgb, hs_tensor *labels, hs_synth_nucleus *nuclei, int max_nuclei, int *count,
                       const hs_synth_params *p) {
    char a[64];
    *count = 0;
    if (rgb->dtype != HS_DTYPE_U8 || rgb->ndim != 3 || rgb->shape[2] != 3 || !hs_tensor_is_contiguous(rgb))
        return HS_FAIL(HS_ERR_SHAPE, "synth_ihc: rgb must be a contiguous (H,W,3) u8 tensor, got %s %s",
                       hs_dtype_name(rgb->dtype), hs_tensor_shape_str(rgb, a, sizeof a));
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    if (H < 8 || W < 8 || H > 16384 || W > 16384)
        return HS_FAIL(HS_ERR_ARG, "synth_ihc: image size %lldx%lld out of range 8..16384", (long long)W, (long long)H);
    if (labels && (labels->dtype != HS_DTYPE_I32 || labels->ndim != 2 || labels->shape[0] != H ||
                   labels->shape[1] != W || !hs_tensor_is_contiguous(labels)))
        return HS_FAIL(HS_ERR_SHAPE, "synth_ihc: labels must be a contiguous (H,W) i32 tensor matching the image");
    if (p->n_nuclei < 0 || p->radius_min <= 1 || p->radius_max < p->radius_min ||
        p->positive_fraction < 0 || p->positive_fraction > 1 || p->noise < 0 || max_nuclei < 0)
        return HS_FAIL(HS_ERR_ARG, "synth_ihc: bad parameters (n_nuclei %d, radius %g..%g, positive_fraction %g)",
                       p->n_nuclei, (double)p->radius_min, (double)p->radius_max, (double)p->positive_fraction);
    float mix = p->intensity_mix[0] + p->intensity_mix[1] + p->intensity_mix[2];
    if (!(mix > 0))
        return HS_FAIL(HS_ERR_ARG, "synth_ihc: intensity_mix must have a positive sum");

    // place nuclei by rejection sampling (bounded attempts)
    int n = 0, want = p->n_nuclei < max_nuclei ? p->n_nuclei : max_nuclei;
    for (uint64_t attempt = 0; n < want && attempt < (uint64_t)want * 200; attempt++) {
        hs_synth_nucleus c;
        float r = p->radius_min + (p->radius_max - p->radius_min) * unif(p, 1, attempt);
        float elong = 0.75f + 0.25f * unif(p, 2, attempt);
        c.rx = r;
        c.ry = r * elong;
        c.angle = 3.14159265f * unif(p, 3, attempt);
        c.cx = r + 1 + ((float)W - 2 * r - 2) * unif(p, 4, attempt);
        c.cy = r + 1 + ((float)H - 2 * r - 2) * unif(p, 5, attempt);
        int ok = 1;
        for (int j = 0; j < n && ok; j++) {
            float dx = c.cx - nuclei[j].cx, dy = c.cy - nuclei[j].cy;
            float need = c.rx + nuclei[j].rx + (float)p->min_gap;
            if (dx * dx + dy * dy < need * need)
                ok = 0;
        }
        if (!ok)
            continue;
        c.positive = unif(p, 6, (uint64_t)n) < p->positive_fraction;
        c.intensity = 0;
        if (c.positive) {
            float u = unif(p, 7, (uint64_t)n) * mix;
            c.intensity = u < p->intensity_mix[0] ? 1 : (u < p->intensity_mix[0] + p->intensity_mix[1] ? 2 : 3);
        }
        nuclei[n++] = c;
    }
    *count = n;

    uint8_t *px = rgb->data;
    int32_t *lab = labels ? labels->data : NULL;
    for (int64_t y = 0; y < H; y++) {
        for (int64_t x = 0; x < W; x++) {
            int64_t i = y * W + x;
            float od_h = p->background_od, od_d = 0;
            int32_t id = 0;
            for (int j = 0; j < n; j++) {
                const hs_synth_nucleus *c = &nuclei[j];
                if (fabsf((float)x - c->cx) > c->rx + 1 || fabsf((float)y - c->cy) > c->rx + 1)
                    continue;
                if (inside(c, (float)x + 0.5f, (float)y + 0.5f)) {
                    // slightly darker rim, like a nuclear membrane; chromatin texture from noise
                    od_h = p->hema_od * (c->positive ? 0.55f : 1.0f);
                    od_d = c->positive ? p->dab_od[c->intensity - 1] : 0;
                    id = j + 1;
                    break;
                }
            }
            float noise = p->noise * (hs_rng_normal(p->seed, 8, (uint64_t)i));
            float noise2 = p->noise * (hs_rng_normal(p->seed, 9, (uint64_t)i));
            od_h = fmaxf(0, od_h + noise);
            od_d = od_d > 0 ? fmaxf(0, od_d + noise2) : 0;
            for (int ch = 0; ch < 3; ch++) {
                float od = od_h * stain_h[ch] + od_d * stain_dab[ch];
                float v = 255.0f * powf(10.0f, -od);
                px[i * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
            }
            if (lab)
                lab[i] = id;
        }
    }
    return HS_OK;
}
