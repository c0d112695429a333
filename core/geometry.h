// core/geometry.h: geometric image operations: crop, pad, flip, rot90, resize (OpenCV 4.6
// conventions: half-pixel centres, fixed-point bilinear, area averaging), and tiling a large
// image with a tissue/background test. Also the small image helpers the other image modules
// share (dims of an (H,W) / (H,W,C) tensor, border modes). Not filtering (filter.h) or colour.
//
// Images: (H,W) gray or (H,W,C) interleaved tensors, dtype U8 or F32. H = rows, W = columns,
// C = channels. Sources may have any strides; destinations are caller-allocated, contiguous,
// of the source's dtype and of the shape each function states. Every function assigns (=) dst.
#ifndef HS_GEOMETRY_H
#define HS_GEOMETRY_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

// Border modes, as OpenCV's: REFLECT101 "gfedcb|abcdefgh|gfedcba", REPLICATE "aaaaaa|abcdefgh|hhhhhhh",
// CONSTANT "000000|abcdefgh|0000000" (or a given value), REFLECT "fedcba|abcdefgh|hgfedcb".
typedef enum {
    HS_BORDER_REFLECT101 = 0,
    HS_BORDER_REPLICATE,
    HS_BORDER_CONSTANT,
    HS_BORDER_REFLECT,
    HS_BORDER_COUNT
} hs_border;

typedef enum { HS_INTERP_NEAREST = 0, HS_INTERP_BILINEAR, HS_INTERP_AREA, HS_INTERP_COUNT } hs_interp;

// Tissue test of a pixel: HSV saturation (max-min)/max above the threshold (RGB only), or mean
// optical density -log10(max(I,1/255)) over channels above the threshold (I in [0,1]).
typedef enum { HS_TISSUE_SATURATION = 0, HS_TISSUE_OD } hs_tissue_method;

// The dims of an image tensor; c = 1 and ndim = 2 for an (H,W) tensor.
typedef struct {
    int64_t h, w, c;
    int ndim;
} hs_image_dims;

// Fills *d from an (H,W) or (H,W,C) tensor of dtype U8 or F32; HS_ERR_SHAPE / HS_ERR_DTYPE
// otherwise, with messages prefixed by op ("median: ...").
hs_status hs_geometry_dims(hs_image_dims *d, const hs_tensor *t, const char *op);
// HS_OK when dst is contiguous, of dtype dt and of dims d (same ndim); else a message naming op.
hs_status hs_geometry_check_dst(const hs_tensor *dst, const char *op, hs_dtype dt, const hs_image_dims *d);
// *use = src when src is contiguous (then *tmp = NULL), else a contiguous clone in *tmp (caller
// frees *tmp with hs_tensor_free).
hs_status hs_geometry_contiguous(hs_tensor **tmp, const hs_tensor **use, const hs_tensor *src);
// Index of position p (may be outside 0..n-1) after border extension; -1 for CONSTANT outside.
int64_t hs_geometry_border_index(int64_t p, int64_t n, hs_border b);
// "reflect101" (also "reflect_101", "default"), "replicate", "constant", "reflect".
hs_status hs_geometry_border_from_name(hs_border *b, const char *name);
const char *hs_geometry_border_name(hs_border b);
// "nearest", "bilinear" (also "linear"), "area".
hs_status hs_geometry_interp_from_name(hs_interp *m, const char *name);

// dst: (h,w[,C]) = src[y:y+h, x:x+w]. HS_ERR_ARG when the window leaves the image.
hs_status hs_geometry_crop(hs_tensor *dst, const hs_tensor *src, int64_t x, int64_t y);
// dst: (H+top+bottom, W+left+right[,C]); bottom/right follow from dst's size. value is the fill of
// HS_BORDER_CONSTANT (ignored otherwise). Pads may exceed the image side (reflections repeat).
hs_status hs_geometry_pad(hs_tensor *dst, const hs_tensor *src, int64_t top, int64_t left, hs_border border,
                          double value);
// dst same shape as src; horizontal: mirror columns (x -> W-1-x), else rows.
hs_status hs_geometry_flip(hs_tensor *dst, const hs_tensor *src, int horizontal);
// Counter-clockwise rotation by k*90 degrees (numpy.rot90, any integer k). dst: (W,H[,C]) for odd k.
hs_status hs_geometry_rot90(hs_tensor *dst, const hs_tensor *src, int k);
// Resize src to dst's (h,w) as cv2.resize: NEAREST = INTER_NEAREST (floor(x*W/w)), BILINEAR =
// INTER_LINEAR (half-pixel centres; U8 in 11-bit fixed point; exact 2x downscale averages 2x2),
// AREA = INTER_AREA (pixel-area averaging downwards, area-style bilinear upwards). U8 rounds to
// nearest. Agrees with OpenCV 4.6 within 1 grey level.
hs_status hs_geometry_resize(hs_tensor *dst, const hs_tensor *src, hs_interp interp);
// The same with the plain (non-vectorised) U8 bilinear loops: identical results; for tests.
hs_status hs_geometry_resize_ref(hs_tensor *dst, const hs_tensor *src, hs_interp interp);

// Fraction of pixels of img (any strides) passing the tissue test with pixel threshold thr.
hs_status hs_geometry_tissue_fraction(double *frac, const hs_tensor *img, hs_tissue_method method, double thr);
// Tile origins of a size x size grid with the given stride over an (H,W) image, only tiles that
// fit entirely, in raster order. xy: (n,2) as (x,y) pairs, or NULL to count only; *n is the
// number of tiles; cap is the room in xy (in tiles). HS_ERR_ARG for size/stride < 1.
hs_status hs_geometry_tile_origins(int64_t *xy, int64_t cap, int64_t *n, int64_t H, int64_t W, int64_t size,
                                   int64_t stride);

#endif
