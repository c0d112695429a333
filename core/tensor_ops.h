// core/tensor_ops.h: eager math on hs_tensor: broadcasting elementwise ops, reductions, matmul,
// concatenation, gathers, histograms. Not the container (tensor.h) and not nn layers (conv2d.h,
// linear.h, ...): these are the building blocks scripts and tests use directly.
//
// Conventions for every function here:
// - Destination first. `out` is allocated by the caller with the documented shape (the
//   *_shape helpers compute it); any dtype is accepted for `out` unless stated, values are
//   converted like hs_tensor_copy (integers: round half to even, saturate; NaN -> 0).
// - Dims are 0-based; `dim = -1` in a reduction means "all dims".
// - Arithmetic is done in double for every dtype (F32 inputs are exact in double), so F32 fast
//   paths (contiguous data) and the generic strided path give bit-identical results. I64 values
//   beyond 2^53 lose precision.
// - `out` may be exactly one of the inputs (in-place); partially overlapping views are undefined.
// - Nothing allocates except hs_tensor_matmul (documented there). Large F32 loops run on
//   hs_parallel_for; results are bit-identical for any thread count.
// - Shape errors return HS_ERR_SHAPE with a message naming the op and both shapes.
#ifndef HS_TENSOR_OPS_H
#define HS_TENSOR_OPS_H

#include "status.h"
#include "tensor.h"

// ---- broadcasting binary ops ----
typedef enum {
    HS_BINOP_ADD = 0,
    HS_BINOP_SUB,
    HS_BINOP_MUL,
    HS_BINOP_DIV,
    HS_BINOP_POW,
    HS_BINOP_MAXIMUM,  // NaN propagates (like torch.maximum)
    HS_BINOP_MINIMUM,
    HS_BINOP_EQ,       // comparisons produce 0/1 (store in a U8 out for a mask)
    HS_BINOP_NE,
    HS_BINOP_LT,
    HS_BINOP_LE,
    HS_BINOP_GT,
    HS_BINOP_GE,
    HS_BINOP_COUNT
} hs_binop;

const char *hs_binop_name(hs_binop op);  // "add", "sub", ... ("?" when out of range)
// The dtype a binding should allocate for `a op b`: U8 for comparisons; F32 for div/pow of
// integers; otherwise the wider of the two (F64 > F32 > I64 > I32 > U16 > U8).
hs_dtype hs_binop_result_dtype(hs_binop op, hs_dtype a, hs_dtype b);

// Numpy broadcasting of a and b (right-aligned; sizes equal or 1). HS_ERR_SHAPE names both shapes.
hs_status hs_broadcast_shape(int *ndim, int64_t shape[HS_MAX_DIMS], const hs_tensor *a, const hs_tensor *b);

// out = a op b, out: broadcast shape of (a, b).
hs_status hs_tensor_binary(hs_tensor *out, hs_binop op, const hs_tensor *a, const hs_tensor *b);
// out = a op s (scalar_first == 0) or s op a (scalar_first != 0); out: a's shape. When a is F32
// the scalar is first rounded to float (as torch does for a Python scalar).
hs_status hs_tensor_binary_scalar(hs_tensor *out, hs_binop op, const hs_tensor *a, double s, int scalar_first);
// out = mask != 0 ? a : b, all three broadcast together; out: their broadcast shape.
hs_status hs_tensor_where(hs_tensor *out, const hs_tensor *mask, const hs_tensor *a, const hs_tensor *b);
// out = mask != 0 ? value : t; mask broadcasts to t; out: t's shape (out == t for in-place).
hs_status hs_tensor_masked_fill(hs_tensor *out, const hs_tensor *t, const hs_tensor *mask, double value);

// ---- unary ops ----
typedef enum {
    HS_UNOP_NEG = 0,
    HS_UNOP_ABS,
    HS_UNOP_EXP,
    HS_UNOP_LOG,
    HS_UNOP_SQRT,
    HS_UNOP_SQUARE,
    HS_UNOP_SIN,
    HS_UNOP_COS,
    HS_UNOP_TANH,
    HS_UNOP_SIGMOID,
    HS_UNOP_RELU,
    HS_UNOP_FLOOR,
    HS_UNOP_CEIL,
    HS_UNOP_ROUND,  // half to even, like torch.round
    HS_UNOP_SIGN,   // -1, 0, 1 (NaN stays NaN)
    HS_UNOP_LOG1P,
    HS_UNOP_EXPM1,
    HS_UNOP_COUNT
} hs_unop;

const char *hs_unop_name(hs_unop op);
// out = op(a); out: a's shape.
hs_status hs_tensor_unary(hs_tensor *out, hs_unop op, const hs_tensor *a);
// out = min(max(a, lo), hi); pass -INFINITY / INFINITY for a missing bound. NaN stays NaN.
// HS_ERR_ARG when lo > hi.
hs_status hs_tensor_clamp(hs_tensor *out, const hs_tensor *a, double lo, double hi);

// Same shape and equal values (compared as double; dtypes may differ; NaN != NaN).
hs_status hs_tensor_equal(int *result, const hs_tensor *a, const hs_tensor *b);
// |a - b| <= atol + rtol*|b| everywhere, a and b broadcast; NaN is never close.
hs_status hs_tensor_allclose(int *result, const hs_tensor *a, const hs_tensor *b, double atol, double rtol);

// ---- reductions ----
// Along one dim (0 <= dim < t->ndim) the output is t's shape without that dim (keepdim: with
// size 1 there). With dim == -1 all dims are reduced: the output is 0-d (keepdim: all ones);
// any out with one element is accepted for dim == -1.
// Sums, means and variances accumulate in double, in a fixed order (all-dim reductions: fixed
// chunks of the flattened tensor, combined in chunk order), so results do not depend on the
// thread count. Reducing an empty dim: sum 0, prod 1, mean/var NaN, max/min/arg* HS_ERR_ARG.
hs_status hs_reduce_shape(int *ndim, int64_t shape[HS_MAX_DIMS], const hs_tensor *t, int dim, int keepdim);
hs_status hs_tensor_sum(hs_tensor *out, const hs_tensor *t, int dim, int keepdim);
hs_status hs_tensor_mean(hs_tensor *out, const hs_tensor *t, int dim, int keepdim);
hs_status hs_tensor_prod(hs_tensor *out, const hs_tensor *t, int dim, int keepdim);
// Two-pass variance (mean first); unbiased divides by n-1 (NaN when n == 1).
hs_status hs_tensor_var(hs_tensor *out, const hs_tensor *t, int dim, int unbiased, int keepdim);
hs_status hs_tensor_std(hs_tensor *out, const hs_tensor *t, int dim, int unbiased, int keepdim);
// values and/or indices (either may be NULL, not both): max and its 0-based index along dim
// (flat row-major index for dim == -1); ties give the first occurrence; NaN counts as the
// largest (and the smallest for min), so it propagates as in torch.
hs_status hs_tensor_max(hs_tensor *values, hs_tensor *indices, const hs_tensor *t, int dim, int keepdim);
hs_status hs_tensor_min(hs_tensor *values, hs_tensor *indices, const hs_tensor *t, int dim, int keepdim);
hs_status hs_tensor_argmax(hs_tensor *indices, const hs_tensor *t, int dim, int keepdim);
hs_status hs_tensor_argmin(hs_tensor *indices, const hs_tensor *t, int dim, int keepdim);
// out = running sum along dim (double accumulator); out: t's shape (out == t allowed).
hs_status hs_tensor_cumsum(hs_tensor *out, const hs_tensor *t, int dim);

// ---- matmul ----
// out(M,N) = a(M,K) b(K,N); or batched out(B,M,N) = a(B,M,K) b(B,K,N), where a 2-D a or b is
// shared by every batch. Any strides: F32 operands with a unit inner stride go to hs_sgemm
// directly (a column-major view uses the transpose flag); other layouts (and out overlapping an
// input, or out without a unit inner stride) go through a temporary contiguous copy, the one
// allocation in this file (HS_ERR_NOMEM if it fails). Non-F32 dtypes use a double triple loop.
hs_status hs_matmul_shape(int *ndim, int64_t shape[HS_MAX_DIMS], const hs_tensor *a, const hs_tensor *b);
hs_status hs_tensor_matmul(hs_tensor *out, const hs_tensor *a, const hs_tensor *b);
// Plain triple loop in double (the reference the tests compare with); same shapes as above.
hs_status hs_tensor_matmul_ref(hs_tensor *out, const hs_tensor *a, const hs_tensor *b);

// ---- joining and gathering ----
// out = ins[0..n-1] joined along dim (all the same ndim, equal sizes except along dim).
hs_status hs_tensor_concat(hs_tensor *out, const hs_tensor *const *ins, int n, int dim);
// out = ins stacked along a new dim (0 <= dim <= ndim); all ins the same shape.
hs_status hs_tensor_stack(hs_tensor *out, const hs_tensor *const *ins, int n, int dim);
// out = t with dim replaced by index entries: out[..., i, ...] = t[..., index[i], ...].
// index: 1-D (or 0-d) integer-valued tensor of 0-based positions; HS_ERR_ARG when out of range.
hs_status hs_tensor_index_select(hs_tensor *out, const hs_tensor *t, int dim, const hs_tensor *index);
// out(..., C) = (index(...) == c) for c in 0..C-1 where C = out's last dim; index holds class
// ids 0..C-1 (HS_ERR_ARG otherwise); out's shape is index's shape plus C.
hs_status hs_tensor_one_hot(hs_tensor *out, const hs_tensor *index);
// out(bins) = counts of t's values in `bins` equal bins over [lo, hi] (hi falls in the last
// bin; values outside and NaN are ignored), like torch.histc. lo == hi: use t's min and max
// (widened by 1 when they are equal too, as torch does). Counts are exact in an F32 out up to 2^24.
hs_status hs_tensor_histc(hs_tensor *out, const hs_tensor *t, double lo, double hi);
// values/indices (either may be NULL) = t sorted along dim (stable; descending when
// descending != 0); out shapes: t's shape. Indices are 0-based positions along dim. The sort is
// an in-place merge sort over the index row, using `work` (2 * t->shape[dim] int64) as scratch.
int64_t hs_tensor_sort_workspace_size(const hs_tensor *t, int dim);  // number of int64 entries
hs_status hs_tensor_sort(hs_tensor *values, hs_tensor *indices, const hs_tensor *t, int dim, int descending,
                         int64_t *work);

// Percentile q (0..100) of a[0..n-1] with linear interpolation between ranks (numpy's default
// 'linear' method); n >= 1. Reorders a (quickselect, O(n) expected). Used by contrast stretching
// and stain normalisation.
double hs_percentile_f32(float *a, int64_t n, double q);

#endif
