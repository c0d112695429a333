// core/augment.h: seeded, reproducible data augmentation of (H,W[,C]) U8/F32 images: random
// crop, flips, rot90, brightness/contrast jitter and HED stain jitter. Random draws come from
// core/rng.h counters keyed by the seed, so a (spec, seed, image size) always gives the same
// plan and the same output whatever the thread count. Not a general colour library (color.h).
//
// Two steps: hs_augment_draw() turns a spec and a seed into a plan (the drawn values, and the
// output size, which a crop or an odd rotation changes), hs_augment_apply() executes a plan.
#ifndef HS_AUGMENT_H
#define HS_AUGMENT_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct {
    double p_hflip, p_vflip;   // probability of a horizontal / vertical flip, in [0,1]
    int rot90;                 // nonzero: rotate counter-clockwise by k*90 degrees, k uniform in 0..3
    int64_t crop_w, crop_h;    // random crop of this size (0: no crop); must fit the image
    double brightness;         // additive shift uniform in [-b, b] x full range (255 U8, 1 F32)
    double contrast;           // factor uniform in [1-c, 1+c] about the mean of the cropped input
    double hed_sigma;          // HED stain jitter: per stain scale uniform in [1-s, 1+s]
    double hed_bias;           //   and shift uniform in [-b, b] (stain OD units); RGB only
} hs_augment_spec;

typedef struct {
    int64_t x, y, w, h;        // crop window (the whole image when no crop)
    int hflip, vflip, k;       // flips and rotation count 0..3
    int64_t out_h, out_w;      // output size
    double brightness;         // additive shift (fraction of full range); 0: none
    double contrast;           // factor; 1: none
    double hed_scale[3], hed_shift[3];
    int hed;                   // nonzero: apply the stain jitter
} hs_augment_plan;

// Draw the plan for an h x w image. HS_ERR_ARG for probabilities outside [0,1], negative
// magnitudes, contrast >= 1 or a crop larger than the image.
hs_status hs_augment_draw(hs_augment_plan *plan, const hs_augment_spec *spec, uint64_t seed, int64_t h, int64_t w);
// dst: (plan->out_h, plan->out_w[,C]) of src's dtype, contiguous. Order: crop, flips, rotation,
// stain jitter (needs C == 3), then brightness/contrast. U8 results are rounded and saturated;
// F32 results are not clamped except by the stain round trip (RGB in [0,1]).
hs_status hs_augment_apply(hs_tensor *dst, const hs_tensor *src, const hs_augment_plan *plan);

#endif
