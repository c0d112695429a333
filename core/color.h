// core/color.h: colour-space conversions of images held in tensors, with scikit-image 0.19 and
// OpenCV 4.6 conventions, and the layout/dtype conversions networks need (HWC <-> CHW).
// Not stain deconvolution (stain.h) and not contrast (contrast.h).
//
// Dimension letters: H rows, W columns, C channels. Images are (H,W,C) tensors with any strides
// (crops and other views work); a 2-D (H,W) tensor is a gray image. Every function assigns (=)
// its preallocated `out`, which must have the stated shape and dtype (HS_ERR_SHAPE/HS_ERR_DTYPE
// otherwise, with both shapes in the message), and never allocates. "Float input" means U8
// (scaled by 1/255, like skimage's img_as_float), U16 (1/65535), F32 or F64 (taken as is).
// Large images are processed in parallel row blocks (hs_parallel_for); results do not depend on
// the thread count.
#ifndef HS_COLOR_H
#define HS_COLOR_H

#include "status.h"
#include "tensor.h"

// Check that img is (H,W,channels) (channels 0: any C >= 1; channels 1 also accepts (H,W)).
// On failure: HS_ERR_SHAPE "<op>: expected (H,W,3) image, got [5,5]".
hs_status hs_color_check_image(const hs_tensor *img, int channels, const char *op);

// RGB -> gray with BT.601 weights 0.299, 0.587, 0.114. rgb (H,W,3); out (H,W) or (H,W,1).
// U8 -> U8 bit-exact with cv2.cvtColor(COLOR_RGB2GRAY) (fixed point, 15 fractional bits,
// rounded); F32 -> F32 with float weights.
hs_status hs_color_rgb2gray(hs_tensor *out, const hs_tensor *rgb);
// gray (H,W) or (H,W,1) -> out (H,W,3), same dtype, channels replicated.
hs_status hs_color_gray2rgb(hs_tensor *out, const hs_tensor *gray);

// skimage.color.rgb2hsv: float input (H,W,3) -> out F32 (H,W,3), H, S, V in [0,1]; grays have
// H = S = 0; where several channels are the maximum, blue wins over green over red (as skimage).
hs_status hs_color_rgb2hsv(hs_tensor *out, const hs_tensor *rgb);
// cv2.cvtColor(COLOR_RGB2HSV) on 8 bits, bit-exact: rgb U8 (H,W,3) -> out U8 (H,W,3), H = hue
// in degrees / 2 (0..180), S = 255 (max - min) / max, V = max, rounded in OpenCV's fixed point;
// grays have H = S = 0, and where several channels are the maximum red wins over green over blue
// (OpenCV's order, not skimage's). out may be rgb itself (not a partial overlap: HS_ERR_ARG).
// The _ref variant is the plain per-pixel loop the fast path is tested against.
hs_status hs_color_rgb2hsv_u8(hs_tensor *out, const hs_tensor *rgb);
hs_status hs_color_rgb2hsv_u8_ref(hs_tensor *out, const hs_tensor *rgb);
// skimage.color.hsv2rgb: float (H,W,3) -> out F32 (H,W,3).
hs_status hs_color_hsv2rgb(hs_tensor *out, const hs_tensor *hsv);
// skimage.color.rgb2lab (sRGB, illuminant D65, 2 degree observer): float input -> out F32,
// L in [0,100].
hs_status hs_color_rgb2lab(hs_tensor *out, const hs_tensor *rgb);
// skimage.color.lab2rgb (Z < 0 clipped to 0, result clipped to [0,1]): float -> out F32.
hs_status hs_color_lab2rgb(hs_tensor *out, const hs_tensor *lab);

// out = in * scale elementwise, any shape (same as in), any strides. out F32/F64 (exact
// products) or U8/U16 (rounded half to even, saturated, NaN -> 0); in any dtype.
hs_status hs_color_convert(hs_tensor *out, const hs_tensor *in, float scale);
// img (H,W,C) or (H,W) of any dtype -> out F32 (C,H,W) (C = 1 for 2-D), out = img * scale.
hs_status hs_color_to_chw(hs_tensor *out, const hs_tensor *img, float scale);
// chw (C,H,W) of any dtype -> out (H,W,C) U8/F32/..., out = chw * scale (rounded and clamped
// for integer outputs).
hs_status hs_color_from_chw(hs_tensor *out, const hs_tensor *chw, float scale);

// ---- building block shared with stain.c: a 3-channel per-pixel map ----
// fn maps n pixels of 3 interleaved floats (src, already through `pre`) to dst (3 per pixel).
typedef void (*hs_color_pixel_fn)(float *dst, const float *src, int64_t n, const void *aux);
// pre maps a block of n floats in place (vectorisable, unlike a per-element callback).
typedef void (*hs_color_block_fn)(float *v, int64_t n);
typedef struct {
    const char *op;          // name used in error messages
    const float *lut_u8;     // 256 entries: pre(v/255) for U8 input; NULL: v/255
    hs_color_block_fn pre;   // applied to non-U8 input after scaling; NULL: identity
    hs_color_pixel_fn fn;
    const void *aux;         // passed to fn
} hs_color_map;
// in: float input (H,W,3); out: F32 (H,W,3); out may be the same tensor as in (F32).
hs_status hs_color_map_pixels(hs_tensor *out, const hs_tensor *in, const hs_color_map *m);
// v[i] = log(max(v[i], lo)) * scale for n floats (lo > 0), to ~2 ulp of logf; +inf stays +inf.
// Vectorisable (a polynomial on the mantissa), for the per-pixel logs of stain deconvolution.
void hs_color_log_block(float *v, int64_t n, float lo, float scale);
// Stain separation's per-pixel work in one pass over n packed pixels (src, dst: 3n floats, not
// overlapping): dst[3i+j] = max(0, sum_c od_c * m[3c+j]) (m: 3x3 row-major) with od_c =
// log(max(src[3i+c], lo)) * scale as hs_color_log_block computes it. AVX-512 when compiled for
// it; the _ref plain loop gives the same bits.
void hs_color_log_matrix_block(float *dst, const float *src, int64_t n, float lo, float scale, const float *m);
void hs_color_log_matrix_block_ref(float *dst, const float *src, int64_t n, float lo, float scale, const float *m);

#endif
