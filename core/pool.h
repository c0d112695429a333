// core/pool.h: 2-D max and average pooling and global average pooling on contiguous float32
// NCHW buffers, exact against PyTorch (F.max_pool2d, F.avg_pool2d, adaptive_avg_pool2d(1)).
// Not a layer and no autodiff: the graph owns the buffers, including maxpool's saved argmax.
//
// Dimension letters: N batch, C channels, H/W input size, Ho/Wo output size.
// Output size (PyTorch): Ho = floor_or_ceil((H + 2 pad_h - kh) / stride_h) + 1; in ceil mode the
// last window must start inside the input or left padding (else Ho is one less). pad <= k/2.
// Forward assigns (=); backward adds (+=) into dx (caller zeroes). Status codes: HS_ERR_ARG (NULL
// buffer, bad params), HS_ERR_SHAPE (non-positive sizes, window larger than the padded input).
#ifndef HS_POOL_H
#define HS_POOL_H

#include <stdint.h>

#include "status.h"

// PyTorch defaults: ceil_mode 0, count_include_pad 1.
typedef struct { int kh, kw, stride_h, stride_w, pad_h, pad_w; int ceil_mode; int count_include_pad; } hs_pool2d_params;

// out = (N, C, Ho, Wo).
hs_status hs_pool2d_out_shape(int64_t out[4], const int64_t x[4], hs_pool2d_params p);

// out (N,C,Ho,Wo) = max over each window (padding counts as -inf; NaN propagates);
// argmax (N,C,Ho,Wo) = flat index ih*W + iw of the max inside its (H,W) plane (first max wins).
hs_status hs_maxpool2d_forward(float *out, int32_t *argmax /* flat index into the (H,W) plane */, const float *x,
                               const int64_t xs[4], hs_pool2d_params p);
// dx (N,C,H,W) += dout (N,C,Ho,Wo) routed through argmax.
hs_status hs_maxpool2d_backward(float *dx, const float *dout, const int32_t *argmax, const int64_t xs[4],
                                hs_pool2d_params p);   // +=
// As hs_maxpool2d_backward, but with assign != 0 each dx plane is first cleared, so dx = routed
// dout (=): the graph's first writer of a gradient skips the zero fill this way.
hs_status hs_maxpool2d_backward_assign(float *dx, const float *dout, const int32_t *argmax, const int64_t xs[4],
                                       hs_pool2d_params p, int assign);
// out (N,C,Ho,Wo) = window mean; the divisor counts the padding when count_include_pad (never
// the part of a ceil-mode window beyond the right padding), as PyTorch.
hs_status hs_avgpool2d_forward(float *out, const float *x, const int64_t xs[4], hs_pool2d_params p);
// dx (N,C,H,W) += dout (N,C,Ho,Wo) spread evenly over each window.
hs_status hs_avgpool2d_backward(float *dx, const float *dout, const int64_t xs[4], hs_pool2d_params p);   // +=
// out (N,C) = mean over each (H,W) plane of x (N,C,H,W).
hs_status hs_global_avgpool_forward(float *out /*(N,C)*/, const float *x, const int64_t xs[4]);
// dx (N,C,H,W) += dout (N,C) / (H*W).
hs_status hs_global_avgpool_backward(float *dx, const float *dout, const int64_t xs[4]);   // +=

// Plain-loop references (single thread), the tests' oracle: same shapes and semantics.
hs_status hs_maxpool2d_forward_ref(float *out, int32_t *argmax, const float *x, const int64_t xs[4],
                                   hs_pool2d_params p);
hs_status hs_avgpool2d_forward_ref(float *out, const float *x, const int64_t xs[4], hs_pool2d_params p);
hs_status hs_avgpool2d_backward_ref(float *dx, const float *dout, const int64_t xs[4], hs_pool2d_params p);

#endif
