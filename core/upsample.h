// core/upsample.h: nearest and bilinear (align_corners=false) upsampling by integer factors on
// contiguous float32 NCHW buffers, exact against PyTorch's F.interpolate(scale_factor=s).
// Not a general resize (see the image module for that): integer scale factors >= 1 only.
//
// Dimension letters: N batch, C channels, H/W input size; out is (N, C, H*scale_h, W*scale_w).
// Forward assigns (=); backward adds (+=) into dx (caller zeroes). Source indices follow
// PyTorch's float arithmetic (scale = 1/s as float). Status codes: HS_ERR_ARG (NULL buffer,
// scale < 1), HS_ERR_SHAPE (non-positive sizes).
#ifndef HS_UPSAMPLE_H
#define HS_UPSAMPLE_H

#include <stdint.h>

#include "status.h"

// out (N,C,H*sh,W*sw)[oh][ow] = x[floor(oh/sh)][floor(ow/sw)].
hs_status hs_upsample_nearest_forward(float *out, const float *x, const int64_t xs[4], int scale_h, int scale_w);
// dx (N,C,H,W) += sum of dout over each sh x sw block.
hs_status hs_upsample_nearest_backward(float *dx, const float *dout, const int64_t xs[4], int scale_h,
                                       int scale_w);   // +=
// out (N,C,H*sh,W*sw): bilinear with source coordinate (o + 0.5)/s - 0.5 clamped at 0, as PyTorch.
hs_status hs_upsample_bilinear_forward(float *out, const float *x, const int64_t xs[4], int scale_h, int scale_w);
// dx (N,C,H,W) += the adjoint of the bilinear forward applied to dout (N,C,H*sh,W*sw).
hs_status hs_upsample_bilinear_backward(float *dx, const float *dout, const int64_t xs[4], int scale_h,
                                        int scale_w);   // +=

// Plain-loop reference of the bilinear pair (single thread, per-tap weights in double).
hs_status hs_upsample_bilinear_forward_ref(float *out, const float *x, const int64_t xs[4], int scale_h, int scale_w);
hs_status hs_upsample_bilinear_backward_ref(float *dx, const float *dout, const int64_t xs[4], int scale_h,
                                            int scale_w);

#endif
