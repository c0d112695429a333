// core/act.h: elementwise activations (ReLU, leaky ReLU, sigmoid, tanh, GELU, SiLU) and softmax /
// log-softmax along one dim, forward and backward, on contiguous float32 buffers. Plain kernels:
// no tensors, no graph (the autodiff graph wires them in), no allocation.
//
// Dimension letters: n = element count; softmax views its buffer as (outer, dim, inner), reducing
// over the middle index (so softmax over C of an (N,C,H,W) tensor is outer=N, dim=C, inner=H*W).
// Forward assigns (=) its output; backward ADDS (+=) into dx, and the caller zeroes dx first.
// Errors: HS_ERR_ARG for a negative size, a zero softmax dim, an unknown activation, a bad alpha
// or a NULL buffer that the op needs. Results are bit-identical for any thread count.
#ifndef HS_ACT_H
#define HS_ACT_H

#include <stdint.h>

#include "status.h"

typedef enum { HS_ACT_RELU, HS_ACT_LEAKY_RELU, HS_ACT_SIGMOID, HS_ACT_TANH, HS_ACT_GELU, HS_ACT_SILU } hs_act;

// "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu" (NULL for an invalid value).
const char *hs_act_name(hs_act a);
// Parse one of the names above into *a; HS_ERR_ARG for an unknown name.
hs_status hs_act_from_name(hs_act *a, const char *name);

// out(n) = act(x(n)). alpha is the negative slope of HS_ACT_LEAKY_RELU (finite; ignored by the
// others). GELU is the exact erf form 0.5*x*(1+erf(x/sqrt(2))) (PyTorch's default). out may alias x.
hs_status hs_act_forward(float *out, const float *x, int64_t n, hs_act a, float alpha);
// dx(n) += dout(n) * act'(x). The derivative is taken from out for sigmoid and tanh (x may be NULL
// there) and from x for relu, leaky_relu, gelu and silu (out may be NULL there). ReLU's derivative
// at exactly 0 is 0, as in PyTorch.
hs_status hs_act_backward(float *dx, const float *dout, const float *x, const float *out, int64_t n, hs_act a,
                          float alpha);

// out(outer,dim,inner) = softmax of x over the middle dim (log != 0: log_softmax). The maximum is
// subtracted first and the normaliser is summed in double. out may alias x.
hs_status hs_softmax_forward(float *out, const float *x, int64_t outer, int64_t dim, int64_t inner, int log);
// dx += the gradient given the forward's out (softmax or log_softmax, per log):
//   softmax:     dx += out * (dout - sum_dim(dout * out))
//   log_softmax: dx += dout - exp(out) * sum_dim(dout)
hs_status hs_softmax_backward(float *dx, const float *dout, const float *out, int64_t outer, int64_t dim,
                              int64_t inner, int log);

#endif
