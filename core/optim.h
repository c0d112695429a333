// core/optim.h: optimizer updates on one flat parameter slab (SGD with momentum/Nesterov, Adam,
// AdamW) and gradient-norm clipping, with exactly torch.optim's semantics. Plain loops over float32
// buffers of n elements; optimizer state (momentum buffer, moments) lives in caller slabs with the
// same layout as the parameters. Not a parameter manager: Lua decides which slabs to update.
//
// All functions update in place and return HS_ERR_ARG for n < 0, a NULL buffer (when n > 0), a
// step < 1 or an invalid hyper-parameter (the message names it and its value, as torch does).
// Results are bit-identical for any thread count.
#ifndef HS_OPTIM_H
#define HS_OPTIM_H

#include <stdint.h>

#include "status.h"

typedef struct { float lr, momentum, dampening, weight_decay; int nesterov; } hs_sgd_params;
typedef struct { float lr, beta1, beta2, eps, weight_decay; int decoupled; } hs_adam_params;  // decoupled=1: AdamW

// torch.optim.SGD, step 1-based. w, g, momentum_buf (n). With d = g + weight_decay*w:
//   momentum == 0: w -= lr*d                          (momentum_buf unused, may be NULL)
//   step == 1:     buf = d                             (the buffer starts as the first gradient)
//   step > 1:      buf = momentum*buf + (1-dampening)*d
//   w -= lr * (nesterov ? d + momentum*buf : buf)
// Constraints as torch: lr, momentum, weight_decay >= 0; nesterov needs momentum > 0, dampening 0.
hs_status hs_sgd_step(float *w, const float *g, float *momentum_buf, int64_t n, const hs_sgd_params *p, int64_t step);

// torch.optim.Adam (decoupled = 0: L2 decay added to the gradient) or torch.optim.AdamW
// (decoupled = 1: w *= 1 - lr*weight_decay first), step 1-based; m, v (n) start zeroed:
//   m = beta1*m + (1-beta1)*d;  v = beta2*v + (1-beta2)*d*d
//   w -= lr/(1-beta1^step) * m / (sqrt(v)/sqrt(1-beta2^step) + eps)
// Constraints as torch: lr, eps, weight_decay >= 0; 0 <= beta1, beta2 < 1.
hs_status hs_adam_step(float *w, const float *g, float *m, float *v, int64_t n, const hs_adam_params *p,
                       int64_t step);

// torch.nn.utils.clip_grad_norm_ on one slab g (n): total = ||g||_2 (summed in double); when
// max_norm / (total + 1e-6) < 1, g is scaled by that factor. *total_norm_out (may be NULL) gets
// the norm before clipping. max_norm must be >= 0.
hs_status hs_clip_grad_norm(float *g, int64_t n, float max_norm, float *total_norm_out);

// ||g||_2 of g (n), summed in double over fixed chunks (deterministic); for clipping across slabs.
hs_status hs_optim_grad_norm(double *norm, const float *g, int64_t n);
// g (n) *= scale.
hs_status hs_optim_scale(float *g, int64_t n, float scale);

#endif
