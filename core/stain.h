// core/stain.h: stain colour deconvolution (Ruifrok & Johnston, with scikit-image 0.19's exact
// conventions) and stain normalisation (Reinhard, Macenko). Not general colour spaces (color.h).
//
// Dimension letters: H rows, W columns. Images are (H,W,3) RGB tensors, any strides; "float
// input" is U8 (/255), U16 (/65535), F32 or F64 as in color.h. Outputs are preallocated by the
// caller and assigned (=). Deconvolution never allocates; the normalisation fit/apply functions
// allocate their own scratch (O(H*W) floats) and free it before returning.
#ifndef HS_STAIN_H
#define HS_STAIN_H

#include "status.h"
#include "tensor.h"

typedef struct {
    double rgb_from_stain[3][3];  // row i: optical-density vector of stain i (skimage rgb_from_*)
    double stain_from_rgb[3][3];  // its inverse (skimage *_from_rgb)
} hs_stain_matrix;

// scikit-image's matrices by name: "hed" (H-E-DAB, Ruifrok & Johnston), "hdx" (H-DAB; also
// "h-dab"), "fgx", "bex", "rbd", "gdx", "hax", "bro", "bpx", "ahx", "hpx". Unit rows are NOT
// enforced (skimage's "hed" rows are not exactly unit), so results match skimage exactly.
// HS_ERR_ARG for an unknown name (the message lists the known ones).
hs_status hs_stain_matrix_named(hs_stain_matrix *m, const char *name);
// User stain vectors (n = 2 or 3 rows of RGB optical densities): rows are normalised to unit
// length; with n = 2 the third row is the normalised cross product of the first two.
// HS_ERR_ARG for zero/non-finite vectors or a singular matrix.
hs_status hs_stain_matrix_from_vectors(hs_stain_matrix *m, const double (*vectors)[3], int n);
// Full rgb_from_stain rows taken as given (no normalisation; e.g. a matrix read back from
// hs_stain_matrix_named). HS_ERR_ARG when singular or not finite.
hs_status hs_stain_matrix_set(hs_stain_matrix *m, const double (*rows)[3]);

// skimage.color.separate_stains: rgb float input (H,W,3) -> out F32 (H,W,3) stain densities:
// stains = (log(max(rgb, 1e-6)) / log(1e-6)) @ stain_from_rgb, clipped at 0.
hs_status hs_stain_separate(hs_tensor *out, const hs_tensor *rgb, const hs_stain_matrix *m);
// skimage.color.combine_stains: stains F32 (H,W,3) -> out F32 (H,W,3) RGB in [0,1]:
// rgb = exp(-(stains * -log(1e-6)) @ rgb_from_stain), clipped to [0,1].
hs_status hs_stain_combine(hs_tensor *out, const hs_tensor *stains, const hs_stain_matrix *m);
// skimage.color.rgb2hed / hed2rgb (separate/combine with the "hed" matrix).
hs_status hs_stain_rgb2hed(hs_tensor *out, const hs_tensor *rgb);
hs_status hs_stain_hed2rgb(hs_tensor *out, const hs_tensor *hed);

// ---- Reinhard: match per-channel mean and std in CIE Lab (color.h's rgb2lab) ----
typedef struct {
    double mean[3], std[3];  // of L, a, b over all pixels (population std)
} hs_stain_reinhard;
hs_status hs_stain_reinhard_fit(hs_stain_reinhard *target, const hs_tensor *rgb);
// out (H,W,3) U8 (rounded) or F32 in [0,1]: lab' = (lab - mean_src) / std_src * std_tgt + mean_tgt,
// back through lab2rgb; the source statistics are those of rgb itself.
hs_status hs_stain_reinhard_apply(hs_tensor *out, const hs_tensor *rgb, const hs_stain_reinhard *target);

// ---- Macenko: stain vectors from the angular extremes in the plane of the two principal
// eigenvectors of the tissue optical densities ----
typedef struct {
    double io;     // background (transmitted light) intensity, default 240
    double alpha;  // percentile of the angular extremes, default 1
    double beta;   // OD threshold below which a pixel is background, default 0.15
} hs_stain_macenko_opts;
typedef struct {
    double stains[2][3];  // unit OD vectors: [0] hematoxylin (larger red OD), [1] eosin
    double max_conc[2];   // 99th percentiles of the concentrations
} hs_stain_macenko;
// Defaults above; and the usual reference target (Macenko et al. H&E: stains
// (0.5626,0.7201,0.4062), (0.2159,0.8012,0.5581), max_conc 1.9705, 1.0308).
hs_stain_macenko_opts hs_stain_macenko_default_opts(void);
hs_stain_macenko hs_stain_macenko_default_target(void);
// OD = -log((I + 1) / io) (I in 0..255; float input is scaled by 255 first). Pixels with any
// channel OD < beta are ignored for the stain vectors; concentrations (least squares) use all.
// HS_ERR_ARG when fewer than 2 tissue pixels remain.
hs_status hs_stain_macenko_fit(hs_stain_macenko *fit, const hs_tensor *rgb, const hs_stain_macenko_opts *opts);
// Fit rgb itself, then out = io * exp(-target.stains^T (C * target.max_conc / fit.max_conc)),
// out (H,W,3) U8 (rounded, clamped to 255) or F32 (/255, clamped to [0,1]).
hs_status hs_stain_macenko_apply(hs_tensor *out, const hs_tensor *rgb, const hs_stain_macenko *target,
                                 const hs_stain_macenko_opts *opts);

#endif
