// core/feature.h: hand-crafted per-image feature vectors for the classical baselines (classic.h):
// colour histograms (RGB, HSV, HED optical density), colour moments, uniform LBP histograms and
// GLCM statistics, with scikit-image 0.19's exact conventions where skimage has the operation.
// Not a classifier (classic.h) and not general image processing (filter.h, color.h).
// Named feature.h, not features.h: core/ is on the include path and would shadow glibc's <features.h>.
//
// Dimension letters: N images, H rows, W columns, F features. Images are (H,W,3) U8 RGB tensors
// with any strides; a batch is (N,H,W,3) U8. Feature rows are float arrays whose length is given
// by hs_features_size(). Row functions allocate their own O(H*W) scratch and free it before
// returning; results never depend on the thread count.
#ifndef HS_FEATURE_H
#define HS_FEATURE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef enum {
    HS_FEATURE_RGB_HIST = 0,   // "rgb_hist": 3*bins, per-channel histograms of R, G, B
    HS_FEATURE_HSV_HIST,       // "hsv_hist": 3*bins, of skimage rgb2hsv's H, S, V in [0,1]
    HS_FEATURE_HED_HIST,       // "hed_hist": 3*bins, of skimage rgb2hed's H, E, D over [0, hed_max]
    HS_FEATURE_COLOR_MOMENTS,  // "color_moments": 9, mean, std, cbrt(3rd central moment) of R, G, B
    HS_FEATURE_LBP,            // "lbp": 2*(P+2) = 20, uniform LBP histograms, P = 8, R = 1 and 2
    HS_FEATURE_GLCM,           // "glcm": 72, six graycoprops x distances {1,2,4} x angles {0,45,90,135}
    HS_FEATURE_COUNT
} hs_feature_kind;

typedef struct {
    int n_kinds;                          // number of entries used in kinds
    hs_feature_kind kinds[HS_FEATURE_COUNT];  // in output order, each at most once
    int bins;                             // colour histogram bins per channel, 2..256 (default 16)
    int glcm_levels;                      // GLCM grey levels: 8 or 32 (default 8)
    float hed_max[3];                     // HED histogram ranges [0, hed_max[c]] (default 0.3, 0.2, 0.3)
} hs_features_spec;

// An empty spec (no kinds) with the defaults above.
void hs_features_spec_default(hs_features_spec *spec);
// Append a kind by name ("rgb_hist", "hsv_hist", "hed_hist", "color_moments", "lbp", "glcm").
// HS_ERR_ARG for an unknown name (the message lists the known ones) or a repeated kind.
hs_status hs_features_spec_add(hs_features_spec *spec, const char *name);
const char *hs_features_kind_name(hs_feature_kind kind);
// Number of features in a row; HS_ERR_ARG when the spec is invalid (no kinds, bins out of range,
// levels not 8 or 32, non-positive hed_max).
hs_status hs_features_size(int64_t *n, const hs_features_spec *spec);
// Name of feature j (0-based) of a row, e.g. "rgb_hist_g_03", "lbp_r2_u9", "glcm_contrast_d4_a135",
// into buf (always NUL-terminated). HS_ERR_ARG when j is out of range.
hs_status hs_features_name(char *buf, size_t n, const hs_features_spec *spec, int64_t j);

// One row: row[0 .. n) = the spec's features of rgb (H,W,3) U8, in spec order (=).
// n must equal hs_features_size(spec) (HS_ERR_SHAPE otherwise). HS_ERR_NOMEM on scratch failure.
hs_status hs_features_compute(float *row, int64_t n, const hs_tensor *rgb, const hs_features_spec *spec);
// A batch: out (N,F) F32 (any strides) = the rows of images (N,H,W,3) U8, computed in parallel
// over images.
hs_status hs_features_batch(hs_tensor *out, const hs_tensor *images, const hs_features_spec *spec);

// ---- the pieces (each assigns its `out`, of the stated length) ----
// Histograms are normalised to sum 1 per channel. RGB: bin = v*bins/256 (np.histogram over
// [0,256)). HSV and HED: bin = floor(v/range*bins), values at or above the range go to the last
// bin (np.histogram's closed last bin, plus clamping); HED values are >= 0 by construction.
hs_status hs_features_rgb_hist(float *out, const hs_tensor *rgb, int bins);                             // (3*bins)
hs_status hs_features_hsv_hist(float *out, const hs_tensor *rgb, int bins);                             // (3*bins)
hs_status hs_features_hed_hist(float *out, const hs_tensor *rgb, int bins, const float hed_max[3]);     // (3*bins)
// Per channel of rgb/255: mean, population std, cube root of the third central moment.
hs_status hs_features_color_moments(float *out, const hs_tensor *rgb);                                  // (9)

// skimage.color.rgb2gray on U8, bit for bit: gray (H,W) F64 = 0.2125 R + 0.7154 G + 0.0721 B of
// rgb * (1/255), summed as numpy 1.24/OpenBLAS does for images >= 2 pixels wide (fused
// multiply-adds: G, then R, then B).
hs_status hs_features_gray(hs_tensor *gray, const hs_tensor *rgb);
// skimage.feature.local_binary_pattern(gray, P, R, method="uniform"): codes (H,W) F64 or F32 in
// 0..P+1 (P+1: non-uniform). gray (H,W) F64 (any strides); neighbours by bilinear interpolation
// at offsets rounded to 5 decimals, zero outside the image. P in 1..32, R > 0.
hs_status hs_features_lbp(hs_tensor *codes, const hs_tensor *gray, int P, double R);
// Histogram of the codes above normalised to sum 1 (np.histogram(codes, bins=P+2, range=(0,P+2),
// density=True)): out (P+2).
hs_status hs_features_lbp_hist(float *out, const hs_tensor *gray, int P, double R);

// skimage.feature.graycomatrix(img, distances, angles, levels, symmetric, normed): img (H,W) U8
// with values < levels counted (others ignored), glcm (levels, levels, nd, na) F64 (=). Offsets
// are (round(sin(a)*d), round(cos(a)*d)) in (row, col). levels in 2..256.
hs_status hs_features_glcm(hs_tensor *glcm, const hs_tensor *img, const double *distances, int nd,
                           const double *angles, int na, int symmetric, int normed);
// skimage.feature.graycoprops for the six properties, in this order: contrast, dissimilarity,
// homogeneity, energy, correlation, ASM. glcm (L,L,nd,na) F64 -> out (6,nd,na) (=); each matrix
// is normalised to sum 1 first (all-zero matrices are left as they are, as skimage does).
hs_status hs_features_glcm_props(float *out, const hs_tensor *glcm);
// The "glcm" row piece: levels = img_as_ubyte(rgb2gray(rgb)) // (256 / levels), symmetric normed
// GLCM at distances {1,2,4} and angles {0, pi/4, pi/2, 3pi/4}, then glcm_props: out (72).
hs_status hs_features_glcm_row(float *out, const hs_tensor *rgb, int levels);
// The "lbp" row piece: lbp_hist(rgb2gray(rgb), 8, 1) then lbp_hist(..., 8, 2): out (20).
hs_status hs_features_lbp_row(float *out, const hs_tensor *rgb);

#endif
