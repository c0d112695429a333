// core/loss.h: scalar training losses with PyTorch's mean reductions, forward and backward:
// cross-entropy (class weights, label smoothing), MSE, BCE-with-logits (pos_weight) and soft Dice
// on sigmoid(logits). Plain kernels on contiguous float32 buffers; no graph, no allocation.
//
// Dimension letters: N = batch, C = classes, S = spatial positions per sample (H*W; 1 for plain
// classification), n = element count. Logits are laid out (N,C,S) as an NCHW tensor is.
// Forward assigns (=) the scalar *loss; backward ADDS (+=) dloss * d(loss)/d(input) into the input
// gradient, and the caller zeroes it first. All sums run in double over fixed chunks, so results
// are bit-identical for any thread count.
// Errors: HS_ERR_ARG for non-positive sizes, NULL buffers, a target class outside [0, C) (the
// message names its index), label_smoothing outside [0, 1], non-finite or negative pos_weight or
// smooth, or weighted cross-entropy whose target weights sum to 0.
#ifndef HS_LOSS_H
#define HS_LOSS_H

#include <stdint.h>

#include "status.h"

// Cross-entropy of logits (N,C,S) against class indices target (N,S), optional class weights
// weight (C) (NULL: all 1), label smoothing eps in [0, 1], mean reduction exactly as PyTorch 1.13:
//   D    = sum_i weight[target_i]                   (N*S when weight is NULL)
//   loss = (1-eps) * sum_i weight[t_i] * -log p_i,t_i / D + (eps/C) * sum_i sum_c weight[c] * -log p_ic / D
// prob (N,C,S) receives the softmax over C, saved for the backward; it must not alias logits.
hs_status hs_cross_entropy_forward(float *loss, float *prob, const float *logits, const int64_t *target,
                                   const float *weight, int64_t N, int64_t C, int64_t S, float label_smoothing);
// dlogits (N,C,S) += dloss * d(loss)/d(logits), from the forward's prob (N,C,S).
hs_status hs_cross_entropy_backward(float *dlogits, float dloss, const float *prob, const int64_t *target,
                                    const float *weight, int64_t N, int64_t C, int64_t S, float label_smoothing);

// loss = sum((x - target)^2) / n; x, target (n), n >= 1.
hs_status hs_mse_forward(float *loss, const float *x, const float *target, int64_t n);
// dx (n) += dloss * 2 (x - target) / n.
hs_status hs_mse_backward(float *dx, float dloss, const float *x, const float *target, int64_t n);

// loss = mean_i [ (1-t) x + (1 + (pos_weight-1) t) * softplus(-x) ], the stable form of
// -[pos_weight t log sigmoid(x) + (1-t) log(1 - sigmoid(x))]; logits, target (n). pos_weight = 1: none.
hs_status hs_bce_logits_forward(float *loss, const float *logits, const float *target, int64_t n, float pos_weight);
// dlogits (n) += dloss * ((1 + (pos_weight-1) t) sigmoid(x) - pos_weight t) / n.
hs_status hs_bce_logits_backward(float *dlogits, float dloss, const float *logits, const float *target, int64_t n,
                                 float pos_weight);

// Soft Dice on p = sigmoid(logits), sums over all n elements (the whole batch):
//   loss = 1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth);  logits, target (n), smooth >= 0.
hs_status hs_dice_logits_forward(float *loss, const float *logits, const float *target, int64_t n, float smooth);
// dlogits (n) += dloss * d(loss)/d(logits).
hs_status hs_dice_logits_backward(float *dlogits, float dloss, const float *logits, const float *target, int64_t n,
                                  float smooth);

#endif
