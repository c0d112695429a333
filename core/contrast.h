// core/contrast.h: intensity corrections: automatic brightness/contrast by percentile
// stretching, gamma, histogram equalisation (bit-exact cv2.equalizeHist) and CLAHE (OpenCV's
// algorithm). Not colour-space conversion (color.h).
//
// Dimension letters: H rows, W columns, C channels. Images are (H,W) or (H,W,C) tensors (any
// strides); multi-channel images are processed channel by channel unless stated otherwise.
// out is preallocated with in's shape and dtype and assigned (=); out may be in itself.
// equalize_hist, auto_contrast and gamma never allocate; auto_contrast on F32 and CLAHE
// allocate scratch and free it before returning.
#ifndef HS_CONTRAST_H
#define HS_CONTRAST_H

#include "status.h"
#include "tensor.h"

// Percentile stretch ("auto correction"): lo = value at percentile `low`, hi = value at
// percentile `high` (0 <= low < high <= 100), then out = (in - lo) / (hi - lo) mapped to the full
// range and clipped. U8: lo/hi are the sorted values at ranks floor(low/100*(N-1)) and
// ceil(high/100*(N-1)), out = round(255*(v-lo)/(hi-lo)); F32: numpy-style interpolated
// percentiles, out in [0,1]. joint != 0: one lo/hi over all channels (keeps the colour balance);
// joint == 0: per channel. Where hi <= lo, the channel is copied unchanged.
hs_status hs_contrast_auto(hs_tensor *out, const hs_tensor *in, double low, double high, int joint);
// Gamma: U8 out = round(255 * (v/255)^gamma) via a table; F32 out = max(v,0)^gamma. gamma > 0.
hs_status hs_contrast_gamma(hs_tensor *out, const hs_tensor *in, double gamma);
// cv2.equalizeHist, bit-exact, on U8 (each channel separately when C > 1).
hs_status hs_contrast_equalize_hist(hs_tensor *out, const hs_tensor *in);
// CLAHE on U8 as cv2.createCLAHE(clip, (tiles_x, tiles_y)).apply: per-tile histograms clipped at
// max(1, (int)(clip * tile_area / 256)) with the excess redistributed evenly, bilinear blend of
// the four neighbouring tile tables; when the size is not a multiple of the grid, the histograms
// come from the image extended bottom/right by reflection (BORDER_REFLECT_101), as OpenCV.
// Bit-exact with cv2 4.6 in our checks (1000x1000 and a 333x517 view; clip 0, 2, 4, 40; grids 3..8).
// clip <= 0 disables clipping. tiles in 1..256.
hs_status hs_contrast_clahe(hs_tensor *out, const hs_tensor *in, double clip, int tiles_x, int tiles_y);

#endif
