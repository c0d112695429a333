// core/synth.h: synthetic IHC tiles with known truth. Renders hematoxylin-stained nuclei, some
// also DAB-positive at a chosen intensity class (1+, 2+, 3+), on a light background, through the
// Ruifrok-Johnston H-DAB optical-density model (I = 255 * 10^(-OD . stains)). Exact instance
// masks and counts come with the image. Used to validate IHC quantification and as the built-in
// data set on machines without data. Not a realistic tissue simulator.
// Dimension letters: H, W image height and width.
#ifndef HS_SYNTH_H
#define HS_SYNTH_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct {
    int n_nuclei;            // nuclei to place (fewer if they do not fit without overlap)
    float radius_min, radius_max;
    float positive_fraction; // fraction of nuclei that are DAB-positive
    float intensity_mix[3];  // relative frequencies of 1+, 2+, 3+ among positive nuclei
    float hema_od;           // hematoxylin optical density of a nucleus (e.g. 0.6)
    float dab_od[3];         // DAB optical density of 1+, 2+, 3+ nuclei (e.g. 0.15, 0.4, 0.8)
    float noise;             // std of per-pixel OD noise (e.g. 0.03)
    float background_od;     // faint counterstain of the background (e.g. 0.05)
    int min_gap;             // minimal gap in pixels between nuclei (0: may touch)
    uint64_t seed;
} hs_synth_params;

typedef struct {
    float cx, cy, rx, ry, angle;
    int positive;            // 0 or 1
    int intensity;           // 0 (negative), 1, 2, 3
} hs_synth_nucleus;

void hs_synth_defaults(hs_synth_params *p);
// rgb: (H,W,3) U8, labels: (H,W) I32 instance labels (0 background, i+1 for nucleus i) or NULL.
// nuclei: caller array of capacity max_nuclei; *count receives the number placed.
hs_status hs_synth_ihc(hs_tensor *rgb, hs_tensor *labels, hs_synth_nucleus *nuclei, int max_nuclei, int *count,
                       const hs_synth_params *p);

#endif
