// core/synth.h: synthetic IHC tiles with known truth. Renders hematoxylin-stained nuclei, some
// also DAB-positive at a chosen intensity class (1+, 2+, 3+), on a light background, through the
// Ruifrok-Johnston H-(E)-DAB optical-density model (I = 255 * 10^(-OD . stains)). Exact instance
// masks and counts come with the image. Used to validate IHC quantification (core/ihc.h) and as
// the built-in data set on machines without data. Not a realistic tissue simulator.
// Dimension letters: H, W image height and width.
#ifndef HS_SYNTH_H
#define HS_SYNTH_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

// One nucleus: a rotated ellipse (pixel coordinates, 0-based, centre of pixel (0,0) is (0.5,0.5)).
typedef struct {
    float cx, cy, rx, ry, angle;  // centre, semi-axes (pixels), rotation (radians)
    int positive;                 // 0 or 1
    int intensity;                // 0 (negative), 1, 2, 3 (the DAB class of a positive nucleus)
} hs_synth_nucleus;

typedef struct {
    int n_nuclei;            // nuclei to place at random (fewer if they do not fit)
    float radius_min, radius_max;
    float positive_fraction; // fraction of nuclei that are DAB-positive
    float intensity_mix[3];  // relative frequencies of 1+, 2+, 3+ among positive nuclei
    float hema_od;           // hematoxylin optical density of a negative nucleus (e.g. 0.55)
    float dab_od[3];         // DAB optical density of 1+, 2+, 3+ nuclei (e.g. 0.18, 0.45, 0.85)
    float noise;             // std of per-pixel OD noise (e.g. 0.03)
    float background_od;     // faint hematoxylin of the background (e.g. 0.04)
    int min_gap;             // minimal gap in pixels between random nuclei; 0 lets them touch,
                             // negative values let them overlap by that many pixels
    float texture;           // chromatin texture: relative amplitude of smooth hematoxylin
                             // variation inside nuclei (0 = flat, e.g. 0.3)
    float eosin_od;          // faint eosin-like stroma in the background (0 = none, e.g. 0.1)
    const hs_synth_nucleus *given;  // when non-NULL: render exactly these n_given nuclei
    int n_given;                    // (n_nuclei, radius, positivity draws are then ignored)
    uint64_t seed;
} hs_synth_params;

// Defaults: 40 nuclei of radius 6..10, 40 % positive, classes equally likely, hema 0.55, DAB
// 0.18/0.45/0.85, noise 0.03, background 0.04, min_gap 2, no texture, no eosin, seed 1.
void hs_synth_defaults(hs_synth_params *p);

// rgb: (H,W,3) U8 contiguous (assigned), labels: (H,W) I32 contiguous (assigned) instance labels
// (0 background, i+1 for nucleus i; where nuclei overlap the earlier one owns the pixel) or NULL.
// nuclei: caller array of capacity max_nuclei receiving the nuclei placed (or copied from
// p->given); *count receives their number. A given nucleus whose pixels are all owned by earlier
// ones still counts (the caller chose it). Same seed and parameters: the same bytes.
// HS_ERR_SHAPE for bad tensors, HS_ERR_ARG for bad parameters (message names the field).
hs_status hs_synth_ihc(hs_tensor *rgb, hs_tensor *labels, hs_synth_nucleus *nuclei, int max_nuclei, int *count,
                       const hs_synth_params *p);

#endif
