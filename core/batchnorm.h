// core/batchnorm.h: 2-D batch normalisation kernels (training and inference, forward and
// backward) on contiguous float32 NCHW buffers, exact against PyTorch's F.batch_norm.
// Not a layer: gamma, beta, running statistics and the saved mean/rstd are caller-owned buffers.
//
// Dimension letters: N batch, C channels, H/W plane size (H = W = 1 serves BatchNorm1d on (N,C));
// M = N*H*W values per channel. Statistics are accumulated in double.
// Forward assigns (=) out, save_mean, save_rstd and updates running stats in place; backward adds
// (+=) into dx, dgamma, dbeta (caller zeroes). gamma/beta NULL mean 1/0 (affine=False);
// dx/dgamma/dbeta NULL are skipped; running_mean/running_var NULL skip the update in training.
// Status codes: HS_ERR_ARG (NULL required buffer, bad momentum/eps), HS_ERR_SHAPE (non-positive
// sizes, training with one value per channel).
#ifndef HS_BATCHNORM_H
#define HS_BATCHNORM_H

#include <stdint.h>

#include "status.h"

// Training: out (N,C,H,W) = (x - mean) * rstd * gamma + beta with the biased batch variance,
// rstd = 1/sqrt(var + eps); save_mean, save_rstd (C) for backward; running_mean/var (C) <-
// (1 - momentum) * running + momentum * batch value, using the UNBIASED variance M/(M-1) var.
hs_status hs_batchnorm2d_forward_train(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                       float *running_var, const float *x, const float *gamma, const float *beta,
                                       const int64_t xs[4], float momentum, float eps);
// Inference: out = (x - running_mean) / sqrt(running_var + eps) * gamma + beta.
hs_status hs_batchnorm2d_forward_eval(float *out, const float *x, const float *gamma, const float *beta,
                                      const float *running_mean, const float *running_var, const int64_t xs[4],
                                      float eps);
// dx (N,C,H,W) += gamma rstd (dout - mean(dout) - xhat mean(dout xhat)), dgamma (C) += sum(dout xhat),
// dbeta (C) += sum(dout); xhat = (x - save_mean) save_rstd.
hs_status hs_batchnorm2d_backward_train(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                                        const float *gamma, const float *save_mean, const float *save_rstd,
                                        const int64_t xs[4]);   // +=
// Inference backward (statistics are constants): dx += dout gamma / sqrt(running_var + eps).
hs_status hs_batchnorm2d_backward_eval(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                                       const float *gamma, const float *running_mean, const float *running_var,
                                       const int64_t xs[4], float eps);   // +=

// Fused batchnorm2d + ReLU, what every conv-BN-ReLU block runs: out = max(0, batchnorm(x)), with
// the same arguments, statistics and running-stat updates as the unfused forwards above.
hs_status hs_batchnorm2d_relu_forward_train(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                            float *running_var, const float *x, const float *gamma, const float *beta,
                                            const int64_t xs[4], float momentum, float eps);
hs_status hs_batchnorm2d_relu_forward_eval(float *out, const float *x, const float *gamma, const float *beta,
                                           const float *running_mean, const float *running_var, const int64_t xs[4],
                                           float eps);
// Training backward of out = max(0, batchnorm(x)) (relu != 0; else plain batchnorm): dout
// (N,C,H,W) is the gradient of out. The ReLU mask, out > 0, is recomputed from x, gamma, beta and
// the saved statistics exactly as the forward computed out (no read of out). dgamma, dbeta add
// (+=); dx is assigned (=) when assign_dx is nonzero (saves the caller's zero fill when nothing
// else contributes to dx), else added (+=).
hs_status hs_batchnorm2d_relu_backward_train(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                                             const float *gamma, const float *beta, const float *save_mean,
                                             const float *save_rstd, const int64_t xs[4], int relu, int assign_dx);

// Plain-loop references of the training pass (single thread, straightforward formulas): the
// tests' oracle. Same arguments and semantics as the fast versions above.
hs_status hs_batchnorm2d_forward_train_ref(float *out, float *save_mean, float *save_rstd, float *running_mean,
                                           float *running_var, const float *x, const float *gamma,
                                           const float *beta, const int64_t xs[4], float momentum, float eps);
hs_status hs_batchnorm2d_backward_train_ref(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                                            const float *gamma, const float *save_mean, const float *save_rstd,
                                            const int64_t xs[4]);

#endif
