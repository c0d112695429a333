// core/conv2d.h: 2-D convolution and transposed convolution kernels (forward and backward) on
// contiguous float32 NCHW buffers, exact against PyTorch's F.conv2d / F.conv_transpose2d.
// Not a layer: no parameters, no autodiff; the graph calls these with caller-owned buffers.
//
// Dimension letters: N batch, C input channels, H/W input height/width, Cout output channels,
// KH/KW kernel size, Ho/Wo output height/width, G groups.
//
// Kernels never allocate: scratch (im2col columns) comes from the caller through `ws`, which must
// hold at least *_workspace_size() floats (may be 0, then ws may be NULL). Forward assigns (=)
// its output; backward adds (+=) into every gradient (the caller zeroes them first).
// Threads: hs_parallel_for only (BLAS included, see blas.h); results are bit-identical for any
// thread count.
// Algorithms (chosen per shape, see conv2d.c): im2col + sgemm, 1x1 as GEMM, depthwise loops and,
// on AVX-512 builds, direct 3x3 stride-1 kernels (conv3x3.h) for small and medium channel counts.
// Status codes: HS_ERR_ARG (NULL buffer, bad params, missing workspace), HS_ERR_SHAPE (sizes not
// positive, channels not divisible by groups, weight not matching x, kernel larger than the
// padded input). Messages name the op and print both shapes.
#ifndef HS_CONV2D_H
#define HS_CONV2D_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

// ---- conv2d: x (N,C,H,W), weight (Cout, C/G, KH, KW), bias (Cout) or NULL, out (N,Cout,Ho,Wo),
// Ho = (H + 2 pad_h - dil_h (KH-1) - 1) / stride_h + 1 (floor), likewise Wo.
typedef struct { int stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups; } hs_conv2d_params;

// out = (N, Cout, Ho, Wo) for x shape `x` and weight shape `w`; validates everything.
hs_status hs_conv2d_out_shape(int64_t out[4], const int64_t x[4], const int64_t w[4], hs_conv2d_params p);
// A per-output-channel epilogue fused into the forward: out = act((conv + bias) * scale[co] +
// shift[co]) with act = ReLU when relu != 0; scale / shift NULL mean 1 / 0. The graph folds an
// eval-mode batchnorm (and the ReLU after it) into the conv in front of it this way.
typedef struct { const float *scale, *shift; int relu; } hs_conv2d_epilogue;

// Floats of scratch needed by hs_conv2d_forward and hs_conv2d_backward (0 for invalid shapes).
size_t hs_conv2d_workspace_size(const int64_t x[4], const int64_t w[4], hs_conv2d_params p);
// out (N,Cout,Ho,Wo) = conv2d(x, w) + bias.
hs_status hs_conv2d_forward(float *out, const float *x, const float *w, const float *bias, const int64_t xs[4],
                            const int64_t ws_[4], hs_conv2d_params p, float *ws);
// hs_conv2d_forward followed by the epilogue ep (NULL: none), applied while each tile is in cache.
hs_status hs_conv2d_forward_fused(float *out, const float *x, const float *w, const float *bias, const int64_t xs[4],
                                  const int64_t ws_[4], hs_conv2d_params p, const hs_conv2d_epilogue *ep, float *ws);
// dx (N,C,H,W) += ..., dw (Cout,C/G,KH,KW) += ..., dbias (Cout) += sum of dout; dx and dbias may
// be NULL (skipped). dout (N,Cout,Ho,Wo).
hs_status hs_conv2d_backward(float *dx /*NULL: skip*/, float *dw, float *dbias /*NULL: skip*/, const float *dout,
                             const float *x, const float *w, const int64_t xs[4], const int64_t ws_[4],
                             hs_conv2d_params p, float *ws);   // all +=

// As hs_conv2d_backward, but with assign_dx != 0 dx is assigned (=) instead of added: the graph's
// first writer of a gradient skips the zero fill this way. dw and dbias still add.
hs_status hs_conv2d_backward_assign(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                    const float *w, const int64_t xs[4], const int64_t ws_[4], hs_conv2d_params p,
                                    float *ws, int assign_dx);

// Enables (1, the default) or disables (0) the direct 3x3 kernels (core/conv3x3.c) that
// hs_conv2d_forward/_backward pick for 3x3 stride-1 convs with few channels on AVX-512 builds;
// disabled, every shape takes the im2col + sgemm path. For tests and benchmarks comparing the
// two; not thread-safe against concurrent convolutions. Returns the previous setting.
int hs_conv2d_set_direct(int enable);

// Plain-loop references (double accumulation, no workspace, single thread): the tests' oracle.
// Same shapes and semantics as the functions above (forward =, backward +=).
hs_status hs_conv2d_forward_ref(float *out, const float *x, const float *w, const float *bias, const int64_t xs[4],
                                const int64_t ws_[4], hs_conv2d_params p);
hs_status hs_conv2d_backward_ref(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                 const float *w, const int64_t xs[4], const int64_t ws_[4], hs_conv2d_params p);

// ---- conv_transpose2d: x (N,C,H,W), weight (C, Cout/G, KH, KW) as PyTorch, bias (Cout) or NULL,
// out (N,Cout,Ho,Wo) with Ho = (H-1) stride_h - 2 pad_h + dil_h (KH-1) + outpad_h + 1, likewise Wo.
// outpad must be smaller than the stride or the dilation (as PyTorch).
typedef struct { int stride_h, stride_w, pad_h, pad_w, outpad_h, outpad_w, dil_h, dil_w, groups; } hs_convt2d_params;

hs_status hs_conv_transpose2d_out_shape(int64_t out[4], const int64_t x[4], const int64_t w[4], hs_convt2d_params p);
size_t hs_conv_transpose2d_workspace_size(const int64_t x[4], const int64_t w[4], hs_convt2d_params p);
// out (N,Cout,Ho,Wo) = conv_transpose2d(x, w) + bias.
hs_status hs_conv_transpose2d_forward(float *out, const float *x, const float *w, const float *bias,
                                      const int64_t xs[4], const int64_t ws_[4], hs_convt2d_params p, float *ws);
// dx (N,C,H,W) +=, dw (C,Cout/G,KH,KW) +=, dbias (Cout) +=; dx and dbias may be NULL.
hs_status hs_conv_transpose2d_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                       const float *w, const int64_t xs[4], const int64_t ws_[4],
                                       hs_convt2d_params p, float *ws);   // +=

// As hs_conv_transpose2d_backward, with dx assigned (=) when assign_dx != 0.
hs_status hs_conv_transpose2d_backward_assign(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                              const float *w, const int64_t xs[4], const int64_t ws_[4],
                                              hs_convt2d_params p, float *ws, int assign_dx);

hs_status hs_conv_transpose2d_forward_ref(float *out, const float *x, const float *w, const float *bias,
                                          const int64_t xs[4], const int64_t ws_[4], hs_convt2d_params p);
hs_status hs_conv_transpose2d_backward_ref(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                           const float *w, const int64_t xs[4], const int64_t ws_[4],
                                           hs_convt2d_params p);

#endif
