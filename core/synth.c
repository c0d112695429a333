// core/synth.c: synthetic IHC renderer (see synth.h). Nuclei are rotated ellipses placed by
// rejection sampling from the counter-based RNG (or given by the caller), so a seed always gives
// the same tile. Texture and stroma are smooth value noise from the same RNG; noise is per pixel.
#include "synth.h"

#include <math.h>
#include <string.h>

#include "rng.h"

// Ruifrok & Johnston stain vectors (hematoxylin, eosin, DAB), normalised, as scikit-image's hed.
static const float stain_h[3] = {0.650f, 0.704f, 0.286f};
static const float stain_e[3] = {0.072f, 0.990f, 0.105f};
static const float stain_dab[3] = {0.268f, 0.570f, 0.776f};

// RNG streams: 1-7 placement and classes, 8-9 pixel noise, 10 texture lattice, 11 stroma lattice.
enum { S_TEXTURE = 10, S_STROMA = 11 };

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

// Smooth value noise in [-1, 1]: random lattice values every `cell` pixels, bilinear with a
// smoothstep, so it is continuous and deterministic for (seed, stream).
static float value_noise(uint64_t seed, uint64_t stream, float x, float y, float cell) {
    float gx = x / cell, gy = y / cell;
    int64_t ix = (int64_t)floorf(gx), iy = (int64_t)floorf(gy);
    float fx = gx - (float)ix, fy = gy - (float)iy;
    fx = fx * fx * (3 - 2 * fx);
    fy = fy * fy * (3 - 2 * fy);
    float v[4];
    for (int k = 0; k < 4; k++) {
        uint64_t cx = (uint64_t)(ix + (k & 1) + 1), cy = (uint64_t)(iy + (k >> 1) + 1);
        v[k] = 2 * hs_rng_uniform(seed, stream, cy * 100003u + cx) - 1;
    }
    float top = v[0] + (v[1] - v[0]) * fx, bottom = v[2] + (v[3] - v[2]) * fx;
    return top + (bottom - top) * fy;
}

static hs_status check_given(const hs_synth_params *p, int max_nuclei) {
    if (p->n_given < 0 || p->n_given > max_nuclei)
        return HS_FAIL(HS_ERR_ARG, "synth_ihc: %d given nuclei, room for %d", p->n_given, max_nuclei);
    for (int i = 0; i < p->n_given; i++) {
        const hs_synth_nucleus *g = &p->given[i];
        if (!isfinite(g->cx) || !isfinite(g->cy) || !isfinite(g->angle) || !(g->rx >= 0.5f && g->rx <= 1000) ||
            !(g->ry >= 0.5f && g->ry <= 1000))
            return HS_FAIL(HS_ERR_ARG, "synth_ihc: given nucleus %d: bad centre or radius (%g, %g, r %g x %g)", i + 1,
                           (double)g->cx, (double)g->cy, (double)g->rx, (double)g->ry);
        if (g->positive ? (g->intensity < 1 || g->intensity > 3) : g->intensity != 0)
            return HS_FAIL(HS_ERR_ARG, "synth_ihc: given nucleus %d: intensity %d with positive=%d (want 1..3 or 0)",
                           i + 1, g->intensity, g->positive);
    }
    return HS_OK;
}

// Random placement by rejection sampling (bounded attempts); returns the number placed.
static int place_random(hs_synth_nucleus *nuclei, int want, int64_t H, int64_t W, const hs_synth_params *p) {
    float mix = p->intensity_mix[0] + p->intensity_mix[1] + p->intensity_mix[2];
    int n = 0;
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
            // overlapping nuclei (negative gap) still keep their centres apart: each stays visible
            float floor_need = 0.8f * (c.rx > nuclei[j].rx ? c.rx : nuclei[j].rx);
            if (need < floor_need)
                need = floor_need;
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
    return n;
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
    if (max_nuclei < 0)
        return HS_FAIL(HS_ERR_ARG, "synth_ihc: max_nuclei %d < 0", max_nuclei);
    if (!p->given && (p->n_nuclei < 0 || p->radius_min <= 1 || p->radius_max < p->radius_min ||
                      p->positive_fraction < 0 || p->positive_fraction > 1))
        return HS_FAIL(HS_ERR_ARG, "synth_ihc: bad parameters (n_nuclei %d, radius %g..%g, positive_fraction %g)",
                       p->n_nuclei, (double)p->radius_min, (double)p->radius_max, (double)p->positive_fraction);
    if (!(p->noise >= 0) || !(p->texture >= 0 && p->texture <= 1) || !(p->eosin_od >= 0) ||
        !(p->hema_od >= 0) || !(p->background_od >= 0))
        return HS_FAIL(HS_ERR_ARG, "synth_ihc: bad parameters (noise %g, texture %g (0..1), eosin_od %g, hema_od %g, "
                       "background_od %g)", (double)p->noise, (double)p->texture, (double)p->eosin_od,
                       (double)p->hema_od, (double)p->background_od);
    for (int k = 0; k < 3; k++)
        if (!(p->dab_od[k] >= 0) || !(p->intensity_mix[k] >= 0))
            return HS_FAIL(HS_ERR_ARG, "synth_ihc: dab_od and intensity_mix entries must be >= 0 (entry %d: %g, %g)",
                           k + 1, (double)p->dab_od[k], (double)p->intensity_mix[k]);
    float mix = p->intensity_mix[0] + p->intensity_mix[1] + p->intensity_mix[2];
    if (!p->given && !(mix > 0))
        return HS_FAIL(HS_ERR_ARG, "synth_ihc: intensity_mix must have a positive sum");

    int n;
    if (p->given) {
        HS_TRY(check_given(p, max_nuclei));
        n = p->n_given;
        memcpy(nuclei, p->given, sizeof *nuclei * (size_t)n);
    } else {
        n = place_random(nuclei, p->n_nuclei < max_nuclei ? p->n_nuclei : max_nuclei, H, W, p);
    }
    *count = n;

    uint8_t *px = rgb->data;
    int32_t *lab = labels ? labels->data : NULL;
    for (int64_t y = 0; y < H; y++) {
        for (int64_t x = 0; x < W; x++) {
            int64_t i = y * W + x;
            float od_h = p->background_od, od_d = 0, od_e = 0;
            int32_t id = 0;
            for (int j = 0; j < n; j++) {
                const hs_synth_nucleus *c = &nuclei[j];
                float reach = (c->rx > c->ry ? c->rx : c->ry) + 1;
                if (fabsf((float)x - c->cx) > reach || fabsf((float)y - c->cy) > reach)
                    continue;
                if (inside(c, (float)x + 0.5f, (float)y + 0.5f)) {
                    // DAB over a nucleus hides part of its hematoxylin (as in real Ki-67 stains)
                    od_h = p->hema_od * (c->positive ? 0.55f : 1.0f);
                    if (p->texture > 0)
                        od_h *= 1 + p->texture * value_noise(p->seed, S_TEXTURE, (float)x, (float)y, 2.5f);
                    od_d = c->positive ? p->dab_od[c->intensity - 1] : 0;
                    id = j + 1;
                    break;
                }
            }
            if (p->eosin_od > 0)
                od_e = p->eosin_od * (0.6f + 0.4f * value_noise(p->seed, S_STROMA, (float)x, (float)y, 24.0f));
            float noise = p->noise * (hs_rng_normal(p->seed, 8, (uint64_t)i));
            float noise2 = p->noise * (hs_rng_normal(p->seed, 9, (uint64_t)i));
            od_h = fmaxf(0, od_h + noise);
            od_d = od_d > 0 ? fmaxf(0, od_d + noise2) : 0;
            for (int ch = 0; ch < 3; ch++) {
                float od = od_h * stain_h[ch] + od_d * stain_dab[ch] + od_e * stain_e[ch];
                float v = 255.0f * powf(10.0f, -od);
                px[i * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrintf(v));
            }
            if (lab)
                lab[i] = id;
        }
    }
    return HS_OK;
}
