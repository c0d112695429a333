// tests/test_tensor_ops.c: eager tensor math (core/tensor_ops.c) against plain double loops:
// broadcasting and its shape errors, unary math, every reduction along every dim, matmul on
// transposed/batched/strided operands, joins and gathers, and bit-identical results for 1 and 2
// threads. Not a performance test.
#include "hs_test.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "parallel.h"
#include "tensor.h"
#include "tensor_ops.h"

// ---- helpers ----

static hs_tensor *mk(hs_dtype dt, int nd, const int64_t *shape) {
    hs_tensor *t = NULL;
    assert_int_equal(hs_tensor_new(&t, dt, nd, shape), HS_OK);
    return t;
}

static hs_tensor *mk_rand(int nd, const int64_t *shape, uint64_t seed) {
    hs_tensor *t = mk(HS_DTYPE_F32, nd, shape);
    assert_int_equal(hs_tensor_rand_uniform(t, seed, -2, 2), HS_OK);
    return t;
}

// Flat values of t (row-major) as floats, into a caller array.
static void to_floats(const hs_tensor *t, float *dst) {
    int64_t n = hs_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)hs_tensor_get_flat(t, i);
}

static void expect_tensor_close(const hs_tensor *got, const float *want, double atol, double rtol) {
    int64_t n = hs_tensor_numel(got);
    float *g = test_malloc((size_t)(n ? n : 1) * sizeof *g);
    to_floats(got, g);
    hs_expect_close(g, want, (size_t)n, atol, rtol);
    test_free(g);
}

static int msg_has(const char *s) { return strstr(hs_last_error()->msg, s) != NULL; }

// ---- broadcasting binary ops ----

static double ref_binop(hs_binop op, double a, double b) {
    switch (op) {
    case HS_BINOP_ADD: return a + b;
    case HS_BINOP_SUB: return a - b;
    case HS_BINOP_MUL: return a * b;
    case HS_BINOP_DIV: return a / b;
    case HS_BINOP_POW: return pow(fabs(a), b);
    case HS_BINOP_MAXIMUM: return a > b ? a : b;
    case HS_BINOP_MINIMUM: return a < b ? a : b;
    case HS_BINOP_EQ: return a == b;
    case HS_BINOP_NE: return a != b;
    case HS_BINOP_LT: return a < b;
    case HS_BINOP_LE: return a <= b;
    case HS_BINOP_GT: return a > b;
    case HS_BINOP_GE: return a >= b;
    default: return NAN;
    }
}

static void test_binary_broadcasts_every_op_like_numpy(void **state) {
    (void)state;
    int64_t sa[3] = {2, 3, 1}, sb[1] = {4}, so[3] = {2, 3, 4};
    hs_tensor *a = mk_rand(3, sa, 1), *b = mk_rand(1, sb, 2);
    hs_tensor_set_flat(b, 1, hs_tensor_get_flat(a, 2));  // a few equal pairs for eq/le/ge
    hs_tensor *absa = mk(HS_DTYPE_F32, 3, sa);           // pow on |a| to stay real
    assert_int_equal(hs_tensor_unary(absa, HS_UNOP_ABS, a), HS_OK);
    float want[24];
    for (int op = 0; op < HS_BINOP_COUNT; op++) {
        const hs_tensor *x = op == HS_BINOP_POW ? absa : a;
        hs_dtype odt = hs_binop_result_dtype((hs_binop)op, HS_DTYPE_F32, HS_DTYPE_F32);
        assert_int_equal(odt, op >= HS_BINOP_EQ ? HS_DTYPE_U8 : HS_DTYPE_F32);
        hs_tensor *out = mk(odt, 3, so);
        assert_int_equal(hs_tensor_binary(out, (hs_binop)op, x, b), HS_OK);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                for (int k = 0; k < 4; k++)
                    want[(i * 3 + j) * 4 + k] = (float)ref_binop(
                        (hs_binop)op, hs_tensor_get_flat(a, i * 3 + j), hs_tensor_get_flat(b, k));
        expect_tensor_close(out, want, 1e-6, 1e-6);
        hs_tensor_free(out);
    }
    hs_tensor_free(absa);
    hs_tensor_free(a);
    hs_tensor_free(b);
}

static void test_binary_on_transposed_view_matches_contiguous_copy(void **state) {
    (void)state;
    int64_t s[2] = {5, 7}, st[2] = {7, 5};
    hs_tensor *a = mk_rand(2, s, 3), *b = mk_rand(2, st, 4), *at, *ac, *o1 = mk(HS_DTYPE_F32, 2, st),
              *o2 = mk(HS_DTYPE_F32, 2, st);
    assert_int_equal(hs_tensor_transpose(&at, a, 0, 1), HS_OK);
    assert_int_equal(hs_tensor_clone(&ac, at), HS_OK);
    for (int op = 0; op < HS_BINOP_EQ; op++) {
        assert_int_equal(hs_tensor_binary(o1, (hs_binop)op, at, b), HS_OK);
        assert_int_equal(hs_tensor_binary(o2, (hs_binop)op, ac, b), HS_OK);
        assert_memory_equal(o1->data, o2->data, hs_tensor_nbytes(o1));  // strided == contiguous, bit for bit
    }
    hs_tensor_free(at);
    hs_tensor_free(ac);
    hs_tensor_free(a);
    hs_tensor_free(b);
    hs_tensor_free(o1);
    hs_tensor_free(o2);
}

static void test_binary_rejects_unbroadcastable_shapes_naming_both(void **state) {
    (void)state;
    int64_t sa[2] = {2, 3}, sb[1] = {4}, so[2] = {2, 4};
    hs_tensor *a = mk(HS_DTYPE_F32, 2, sa), *b = mk(HS_DTYPE_F32, 1, sb), *o = mk(HS_DTYPE_F32, 2, so);
    assert_int_equal(hs_tensor_binary(o, HS_BINOP_SUB, a, b), HS_ERR_SHAPE);
    assert_true(msg_has("sub"));
    assert_true(msg_has("[2,3]"));
    assert_true(msg_has("[4]"));
    int nd;
    int64_t sh[HS_MAX_DIMS];
    assert_int_equal(hs_broadcast_shape(&nd, sh, a, b), HS_ERR_SHAPE);
    // out of the wrong shape: names the op, out and the wanted shape
    assert_int_equal(hs_tensor_binary(o, HS_BINOP_MUL, a, a), HS_ERR_SHAPE);
    assert_true(msg_has("mul"));
    assert_true(msg_has("[2,4]"));
    assert_true(msg_has("[2,3]"));
    hs_tensor_free(a);
    hs_tensor_free(b);
    hs_tensor_free(o);
}

static void test_binary_scalar_keeps_operand_order_and_in_place_works(void **state) {
    (void)state;
    hs_tensor *x;
    assert_int_equal(hs_tensor_arange(&x, HS_DTYPE_F32, 0, 4, 1), HS_OK);  // 0 1 2 3
    hs_tensor *o = mk(HS_DTYPE_F32, 1, x->shape), *m = mk(HS_DTYPE_U8, 1, x->shape);
    assert_int_equal(hs_tensor_binary_scalar(o, HS_BINOP_SUB, x, 10, 1), HS_OK);
    expect_tensor_close(o, (const float[]){10, 9, 8, 7}, 0, 0);
    assert_int_equal(hs_tensor_binary_scalar(o, HS_BINOP_SUB, x, 10, 0), HS_OK);
    expect_tensor_close(o, (const float[]){-10, -9, -8, -7}, 0, 0);
    assert_int_equal(hs_tensor_binary_scalar(o, HS_BINOP_POW, x, 2, 1), HS_OK);  // 2^x
    expect_tensor_close(o, (const float[]){1, 2, 4, 8}, 0, 0);
    assert_int_equal(hs_tensor_binary_scalar(m, HS_BINOP_GE, x, 2, 0), HS_OK);
    expect_tensor_close(m, (const float[]){0, 0, 1, 1}, 0, 0);
    assert_int_equal(hs_tensor_binary_scalar(x, HS_BINOP_MUL, x, 3, 0), HS_OK);  // in place
    expect_tensor_close(x, (const float[]){0, 3, 6, 9}, 0, 0);
    // integer tensors: U8 + 300 saturates when stored back as U8, F32 result dtype for div
    assert_int_equal(hs_binop_result_dtype(HS_BINOP_DIV, HS_DTYPE_U8, HS_DTYPE_I64), HS_DTYPE_F32);
    assert_int_equal(hs_binop_result_dtype(HS_BINOP_ADD, HS_DTYPE_U8, HS_DTYPE_I64), HS_DTYPE_I64);
    assert_int_equal(hs_binop_result_dtype(HS_BINOP_ADD, HS_DTYPE_I32, HS_DTYPE_F32), HS_DTYPE_F32);
    assert_int_equal(hs_tensor_binary_scalar(m, HS_BINOP_ADD, m, 300, 0), HS_OK);
    expect_tensor_close(m, (const float[]){255, 255, 255, 255}, 0, 0);
    hs_tensor_free(x);
    hs_tensor_free(o);
    hs_tensor_free(m);
}

static void test_maximum_and_minimum_propagate_nan(void **state) {
    (void)state;
    int64_t s[1] = {3};
    hs_tensor *a = mk(HS_DTYPE_F32, 1, s), *b = mk(HS_DTYPE_F32, 1, s), *o = mk(HS_DTYPE_F32, 1, s);
    hs_tensor_set_flat(a, 0, NAN);
    hs_tensor_set_flat(a, 1, 1);
    hs_tensor_set_flat(a, 2, -1);
    hs_tensor_set_flat(b, 1, NAN);
    assert_int_equal(hs_tensor_binary(o, HS_BINOP_MAXIMUM, a, b), HS_OK);
    expect_tensor_close(o, (const float[]){NAN, NAN, 0}, 0, 0);
    assert_int_equal(hs_tensor_binary(o, HS_BINOP_MINIMUM, a, b), HS_OK);
    expect_tensor_close(o, (const float[]){NAN, NAN, -1}, 0, 0);
    hs_tensor_free(a);
    hs_tensor_free(b);
    hs_tensor_free(o);
}

static void test_where_and_masked_fill_broadcast_the_mask(void **state) {
    (void)state;
    int64_t s[2] = {2, 3}, sm[2] = {2, 1}, sr[1] = {3};
    hs_tensor *a = mk(HS_DTYPE_F32, 2, s), *b = mk(HS_DTYPE_F32, 1, sr), *m = mk(HS_DTYPE_U8, 2, sm),
              *o = mk(HS_DTYPE_F32, 2, s);
    hs_tensor_fill(a, 1);
    hs_tensor_fill(b, -1);
    hs_tensor_set_flat(b, 2, -3);
    hs_tensor_set_flat(m, 1, 1);  // row 2 takes a
    assert_int_equal(hs_tensor_where(o, m, a, b), HS_OK);
    expect_tensor_close(o, (const float[]){-1, -1, -3, 1, 1, 1}, 0, 0);
    assert_int_equal(hs_tensor_masked_fill(a, a, m, 7), HS_OK);  // in place
    expect_tensor_close(a, (const float[]){1, 1, 1, 7, 7, 7}, 0, 0);
    int64_t sbad[1] = {2};
    hs_tensor *bad = mk(HS_DTYPE_U8, 1, sbad);
    assert_int_equal(hs_tensor_masked_fill(o, o, bad, 0), HS_ERR_SHAPE);
    assert_true(msg_has("[2]") && msg_has("[2,3]"));
    assert_int_equal(hs_tensor_where(o, bad, a, b), HS_ERR_SHAPE);
    hs_tensor_free(bad);
    hs_tensor_free(a);
    hs_tensor_free(b);
    hs_tensor_free(m);
    hs_tensor_free(o);
}

// ---- unary ----

static double ref_unop(hs_unop op, double x) {
    switch (op) {
    case HS_UNOP_NEG: return -x;
    case HS_UNOP_ABS: return fabs(x);
    case HS_UNOP_EXP: return exp(x);
    case HS_UNOP_LOG: return log(fabs(x) + 0.1);
    case HS_UNOP_SQRT: return sqrt(fabs(x) + 0.1);
    case HS_UNOP_SQUARE: return x * x;
    case HS_UNOP_SIN: return sin(x);
    case HS_UNOP_COS: return cos(x);
    case HS_UNOP_TANH: return tanh(x);
    case HS_UNOP_SIGMOID: return 1 / (1 + exp(-x));
    case HS_UNOP_RELU: return x > 0 ? x : 0;
    case HS_UNOP_FLOOR: return floor(x);
    case HS_UNOP_CEIL: return ceil(x);
    case HS_UNOP_ROUND: return nearbyint(x);
    case HS_UNOP_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case HS_UNOP_LOG1P: return log1p(fabs(x));
    case HS_UNOP_EXPM1: return expm1(x);
    default: return NAN;
    }
}

static void test_unary_ops_match_libm_in_double(void **state) {
    (void)state;
    int64_t s[2] = {4, 9};
    hs_tensor *x = mk_rand(2, s, 5), *pos = mk(HS_DTYPE_F32, 2, s), *o = mk(HS_DTYPE_F32, 2, s);
    hs_tensor_set_flat(x, 0, 2.5);   // round half to even
    hs_tensor_set_flat(x, 1, -0.5);
    hs_tensor_set_flat(x, 2, 0);
    float want[36];
    for (int op = 0; op < HS_UNOP_COUNT; op++) {
        const hs_tensor *in = x;
        if (op == HS_UNOP_LOG || op == HS_UNOP_SQRT || op == HS_UNOP_LOG1P) {  // positive inputs
            assert_int_equal(hs_tensor_unary(pos, HS_UNOP_ABS, x), HS_OK);
            if (op != HS_UNOP_LOG1P)
                assert_int_equal(hs_tensor_binary_scalar(pos, HS_BINOP_ADD, pos, 0.1, 0), HS_OK);
            in = pos;
        }
        assert_int_equal(hs_tensor_unary(o, (hs_unop)op, in), HS_OK);
        for (int i = 0; i < 36; i++)
            want[i] = (float)ref_unop((hs_unop)op, hs_tensor_get_flat(x, i));
        expect_tensor_close(o, want, 1e-6, 1e-6);
    }
    assert_int_equal(hs_tensor_unary(o, HS_UNOP_ROUND, x), HS_OK);
    assert_true(hs_tensor_get_flat(o, 0) == 2.0 && hs_tensor_get_flat(o, 1) == 0.0);
    assert_int_equal(hs_tensor_clamp(o, x, -0.5, 0.5), HS_OK);
    for (int i = 0; i < 36; i++)
        want[i] = (float)fmin(fmax(hs_tensor_get_flat(x, i), -0.5), 0.5);
    expect_tensor_close(o, want, 0, 0);
    assert_int_equal(hs_tensor_clamp(o, x, 1, -1), HS_ERR_ARG);
    hs_tensor_free(x);
    hs_tensor_free(pos);
    hs_tensor_free(o);
}

// ---- reductions ----

typedef enum { K_SUM, K_MEAN, K_VAR_U, K_VAR_B, K_STD, K_PROD, K_MAX, K_MIN, K_ARGMAX, K_ARGMIN, K_COUNT } kind;

static hs_status run_kind(kind k, hs_tensor *out, const hs_tensor *t, int dim, int keepdim) {
    switch (k) {
    case K_SUM: return hs_tensor_sum(out, t, dim, keepdim);
    case K_MEAN: return hs_tensor_mean(out, t, dim, keepdim);
    case K_VAR_U: return hs_tensor_var(out, t, dim, 1, keepdim);
    case K_VAR_B: return hs_tensor_var(out, t, dim, 0, keepdim);
    case K_STD: return hs_tensor_std(out, t, dim, 1, keepdim);
    case K_PROD: return hs_tensor_prod(out, t, dim, keepdim);
    case K_MAX: return hs_tensor_max(out, NULL, t, dim, keepdim);
    case K_MIN: return hs_tensor_min(out, NULL, t, dim, keepdim);
    case K_ARGMAX: return hs_tensor_argmax(out, t, dim, keepdim);
    case K_ARGMIN: return hs_tensor_argmin(out, t, dim, keepdim);
    default: return HS_ERR_ARG;
    }
}

// Reduce the values v[0..n) in order with a plain double loop.
static double ref_reduce(kind k, const double *v, int n) {
    double s = 0, p = 1, m = 0;
    int bi = 0;
    for (int i = 0; i < n; i++) {
        s += v[i];
        p *= v[i];
        if ((k == K_MAX || k == K_ARGMAX) ? v[i] > v[bi] : v[i] < v[bi])
            bi = i;
    }
    m = s / n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    switch (k) {
    case K_SUM: return s;
    case K_MEAN: return m;
    case K_VAR_U: return ss / (n - 1);
    case K_VAR_B: return ss / n;
    case K_STD: return sqrt(ss / (n - 1));
    case K_PROD: return p;
    case K_MAX:
    case K_MIN: return v[bi];
    default: return bi;
    }
}

// Every reduction along every dim (and all dims), keepdim or not, on a contiguous tensor and on
// a permuted view, against ref_reduce over the elements gathered with hs_tensor_get.
static void check_reductions(const hs_tensor *t) {
    for (int k = 0; k < K_COUNT; k++) {
        for (int dim = -1; dim < t->ndim; dim++) {
            for (int keep = 0; keep < 2; keep++) {
                int nd;
                int64_t sh[HS_MAX_DIMS];
                assert_int_equal(hs_reduce_shape(&nd, sh, t, dim, keep), HS_OK);
                hs_dtype dt = k >= K_ARGMAX ? HS_DTYPE_I64 : HS_DTYPE_F32;
                hs_tensor *out = mk(dt, nd, sh);
                assert_int_equal(run_kind((kind)k, out, t, dim, keep), HS_OK);
                int64_t nout = hs_tensor_numel(out), R = dim < 0 ? hs_tensor_numel(t) : t->shape[dim];
                float *want = test_malloc((size_t)nout * sizeof *want);
                double *v = test_malloc((size_t)R * sizeof *v);
                for (int64_t o = 0; o < nout; o++) {
                    // output index o -> t index with dim free
                    int64_t idx[HS_MAX_DIMS], rem = o;
                    for (int d = t->ndim - 1; d >= 0; d--) {
                        if (d == dim || dim < 0) {
                            idx[d] = 0;
                            continue;
                        }
                        idx[d] = rem % t->shape[d];
                        rem /= t->shape[d];
                    }
                    for (int64_t r = 0; r < R; r++) {
                        if (dim < 0) {
                            v[r] = hs_tensor_get_flat(t, r);
                        } else {
                            idx[dim] = r;
                            assert_int_equal(hs_tensor_get(t, idx, &v[r]), HS_OK);
                        }
                    }
                    want[o] = (float)ref_reduce((kind)k, v, (int)R);
                }
                expect_tensor_close(out, want, 1e-6, 1e-5);
                test_free(v);
                test_free(want);
                hs_tensor_free(out);
            }
        }
    }
}

static void test_every_reduction_matches_plain_double_loop(void **state) {
    (void)state;
    int64_t s[3] = {3, 4, 5};
    hs_tensor *t = mk_rand(3, s, 7), *p;
    check_reductions(t);
    int perm[3] = {2, 0, 1};
    assert_int_equal(hs_tensor_permute(&p, t, perm), HS_OK);
    check_reductions(p);
    hs_tensor_free(p);
    int64_t s1[1] = {70000};  // all-dim path with several fixed chunks
    hs_tensor *big = mk_rand(1, s1, 8);
    hs_tensor *o1 = mk(HS_DTYPE_F64, 0, s1), *o2 = mk(HS_DTYPE_F64, 0, s1);
    assert_int_equal(hs_tensor_sum(o1, big, -1, 0), HS_OK);
    assert_int_equal(hs_tensor_sum(o2, big, 0, 0), HS_OK);  // one output: same engine, same bits
    assert_true(*(double *)o1->data == *(double *)o2->data);
    double ref = 0;
    for (int64_t i = 0; i < s1[0]; i++)
        ref += hs_tensor_get_flat(big, i);
    assert_true(fabs(*(double *)o1->data - ref) < 1e-9);
    hs_tensor_free(o1);
    hs_tensor_free(o2);
    hs_tensor_free(big);
    hs_tensor_free(t);
}

static void test_argmax_ties_pick_first_occurrence(void **state) {
    (void)state;
    int64_t s[2] = {2, 4}, so[1] = {2};
    hs_tensor *t = mk(HS_DTYPE_F32, 2, s), *i = mk(HS_DTYPE_I64, 1, so), *v = mk(HS_DTYPE_F32, 1, so);
    const float vals[8] = {1, 5, 5, 2, 3, 3, 3, 3};
    memcpy(t->data, vals, sizeof vals);
    assert_int_equal(hs_tensor_max(v, i, t, 1, 0), HS_OK);
    assert_int_equal(((int64_t *)i->data)[0], 1);
    assert_int_equal(((int64_t *)i->data)[1], 0);
    assert_int_equal(hs_tensor_argmin(i, t, 1, 0), HS_OK);
    assert_int_equal(((int64_t *)i->data)[1], 0);
    hs_tensor *all = mk(HS_DTYPE_I64, 0, so);
    assert_int_equal(hs_tensor_argmax(all, t, -1, 0), HS_OK);
    assert_int_equal(*(int64_t *)all->data, 1);
    hs_tensor_set_flat(t, 6, NAN);  // NaN wins max and propagates
    assert_int_equal(hs_tensor_max(v, i, t, 1, 0), HS_OK);
    assert_true(isnan(hs_tensor_get_flat(v, 1)));
    assert_int_equal(((int64_t *)i->data)[1], 2);
    hs_tensor_free(all);
    hs_tensor_free(t);
    hs_tensor_free(i);
    hs_tensor_free(v);
}

static void test_reduce_rejects_bad_dim_and_out_shape(void **state) {
    (void)state;
    int64_t s[2] = {2, 3}, so[1] = {3}, s0[2] = {2, 0};
    hs_tensor *t = mk(HS_DTYPE_F32, 2, s), *o = mk(HS_DTYPE_F32, 1, so), *e = mk(HS_DTYPE_F32, 2, s0);
    assert_int_equal(hs_tensor_sum(o, t, 1, 0), HS_ERR_SHAPE);  // want [2]
    assert_true(msg_has("sum") && msg_has("[3]") && msg_has("[2]") && msg_has("[2,3]"));
    assert_int_equal(hs_tensor_mean(o, t, 2, 0), HS_ERR_ARG);
    assert_int_equal(hs_tensor_sum(o, t, -1, 0), HS_ERR_SHAPE);
    hs_tensor *o2 = mk(HS_DTYPE_F32, 1, s);  // [2]
    assert_int_equal(hs_tensor_max(o2, NULL, e, 1, 0), HS_ERR_ARG);  // empty dim
    assert_int_equal(hs_tensor_sum(o2, e, 1, 0), HS_OK);
    expect_tensor_close(o2, (const float[]){0, 0}, 0, 0);
    hs_tensor_free(o2);
    hs_tensor_free(t);
    hs_tensor_free(o);
    hs_tensor_free(e);
}

static void test_cumsum_runs_along_each_dim(void **state) {
    (void)state;
    hs_tensor *a, *r;
    assert_int_equal(hs_tensor_arange(&a, HS_DTYPE_F32, 1, 7, 1), HS_OK);
    int64_t s[2] = {2, 3};
    assert_int_equal(hs_tensor_reshape(&r, a, 2, s), HS_OK);  // 1 2 3 / 4 5 6
    hs_tensor *o = mk(HS_DTYPE_F32, 2, s);
    assert_int_equal(hs_tensor_cumsum(o, r, 1), HS_OK);
    expect_tensor_close(o, (const float[]){1, 3, 6, 4, 9, 15}, 0, 0);
    assert_int_equal(hs_tensor_cumsum(r, r, 0), HS_OK);  // in place
    expect_tensor_close(r, (const float[]){1, 2, 3, 5, 7, 9}, 0, 0);
    hs_tensor_free(o);
    hs_tensor_free(r);
    hs_tensor_free(a);
}

// ---- matmul ----

static void expect_matmul_matches_ref(const hs_tensor *a, const hs_tensor *b) {
    int nd;
    int64_t sh[HS_MAX_DIMS];
    assert_int_equal(hs_matmul_shape(&nd, sh, a, b), HS_OK);
    hs_tensor *o = mk(HS_DTYPE_F32, nd, sh), *r = mk(HS_DTYPE_F32, nd, sh);
    hs_tensor_fill(o, NAN);  // beta = 0 must not read the old values
    assert_int_equal(hs_tensor_matmul(o, a, b), HS_OK);
    assert_int_equal(hs_tensor_matmul_ref(r, a, b), HS_OK);
    hs_expect_close((const float *)o->data, (const float *)r->data, (size_t)hs_tensor_numel(o), 1e-5, 1e-5);
    hs_tensor_free(o);
    hs_tensor_free(r);
}

static void test_matmul_matches_triple_loop_on_plain_transposed_and_strided(void **state) {
    (void)state;
    int64_t sa[2] = {5, 7}, sb[2] = {7, 3}, sat[2] = {7, 5}, sbt[2] = {3, 7}, sw[2] = {5, 11};
    hs_tensor *a = mk_rand(2, sa, 1), *b = mk_rand(2, sb, 2), *at0 = mk_rand(2, sat, 3), *bt0 = mk_rand(2, sbt, 4),
              *wide = mk_rand(2, sw, 5);
    hs_tensor *at, *bt, *nar, *sel;
    assert_int_equal(hs_tensor_transpose(&at, at0, 0, 1), HS_OK);  // (5,7) column-major
    assert_int_equal(hs_tensor_transpose(&bt, bt0, 0, 1), HS_OK);  // (7,3) column-major
    assert_int_equal(hs_tensor_narrow(&nar, wide, 1, 2, 7), HS_OK); // (5,7) with row stride 11
    expect_matmul_matches_ref(a, b);
    expect_matmul_matches_ref(at, b);
    expect_matmul_matches_ref(a, bt);
    expect_matmul_matches_ref(at, bt);
    expect_matmul_matches_ref(nar, bt);
    // a column of a transposed view: (5,1) with odd strides; and a strided slice (copy path)
    int64_t s3[3] = {2, 5, 7};
    hs_tensor *a3 = mk_rand(3, s3, 6);
    assert_int_equal(hs_tensor_narrow(&sel, a3, 2, 1, 3), HS_OK);  // (2,5,3) inner stride 1
    int64_t sk[2] = {3, 4};
    hs_tensor *k = mk_rand(2, sk, 9);
    expect_matmul_matches_ref(sel, k);
    hs_tensor *every_other;  // rows 0..2 of a (2,5,7) narrowed along the batch: stride 35
    int64_t sb3[3] = {2, 7, 4};
    hs_tensor *b3 = mk_rand(3, sb3, 10);
    expect_matmul_matches_ref(a3, b3);   // batched x batched
    expect_matmul_matches_ref(a3, b);     // batched x shared 2-D (one big gemm)
    expect_matmul_matches_ref(a, b3);    // shared 2-D x batched
    int perm[3] = {0, 2, 1};
    assert_int_equal(hs_tensor_permute(&every_other, b3, perm), HS_OK);  // (2,4,7)
    hs_tensor *a34;
    int64_t s34[3] = {2, 3, 4};
    a34 = mk_rand(3, s34, 11);
    expect_matmul_matches_ref(a34, every_other);  // transposed batched operand
    hs_tensor_free(a34);
    hs_tensor_free(every_other);
    hs_tensor_free(b3);
    hs_tensor_free(k);
    hs_tensor_free(sel);
    hs_tensor_free(a3);
    hs_tensor_free(nar);
    hs_tensor_free(at);
    hs_tensor_free(bt);
    hs_tensor_free(a);
    hs_tensor_free(b);
    hs_tensor_free(at0);
    hs_tensor_free(bt0);
    hs_tensor_free(wide);
}

static void test_matmul_rejects_mismatched_shapes_and_handles_aliasing(void **state) {
    (void)state;
    int64_t sa[2] = {3, 4}, sb[2] = {5, 3}, so[2] = {3, 3}, sq[2] = {3, 3};
    hs_tensor *a = mk(HS_DTYPE_F32, 2, sa), *b = mk(HS_DTYPE_F32, 2, sb), *o = mk(HS_DTYPE_F32, 2, so);
    assert_int_equal(hs_tensor_matmul(o, a, b), HS_ERR_SHAPE);
    assert_true(msg_has("matmul") && msg_has("[3,4]") && msg_has("[5,3]"));
    // out == a: goes through a temporary, result still right
    hs_tensor *q = mk_rand(2, sq, 3), *q2, *r = mk(HS_DTYPE_F32, 2, sq);
    assert_int_equal(hs_tensor_clone(&q2, q), HS_OK);
    assert_int_equal(hs_tensor_matmul_ref(r, q, q), HS_OK);
    assert_int_equal(hs_tensor_matmul(q2, q2, q2), HS_OK);
    hs_expect_close((const float *)q2->data, (const float *)r->data, 9, 1e-5, 1e-5);
    // integer operands take the double loop
    hs_tensor *ia, *ib, *io = mk(HS_DTYPE_I64, 2, so);
    assert_int_equal(hs_tensor_arange(&ia, HS_DTYPE_I64, 0, 9, 1), HS_OK);
    assert_int_equal(hs_tensor_reshape(&ib, ia, 2, so), HS_OK);
    assert_int_equal(hs_tensor_matmul(io, ib, ib), HS_OK);
    expect_tensor_close(io, (const float[]){15, 18, 21, 42, 54, 66, 69, 90, 111}, 0, 0);
    hs_tensor_free(io);
    hs_tensor_free(ib);
    hs_tensor_free(ia);
    hs_tensor_free(q);
    hs_tensor_free(q2);
    hs_tensor_free(r);
    hs_tensor_free(a);
    hs_tensor_free(b);
    hs_tensor_free(o);
}

static void test_matmul_copy_path_survives_allocation_failures(void **state) {
    (void)state;
    int64_t sw[2] = {4, 9}, sb[2] = {6, 3}, so[2] = {4, 3};
    hs_tensor *w = mk_rand(2, sw, 1), *b = mk_rand(2, sb, 2), *o = mk(HS_DTYPE_F32, 2, so), *r = mk(HS_DTYPE_F32, 2, so);
    hs_tensor nar;  // (4,6) rows of stride 9 but every other column: stride 2 -> needs a copy
    nar = *w;
    nar.storage = NULL;
    nar.shape[1] = 4;
    nar.stride[1] = 2;
    int64_t sb4[2] = {4, 3};
    hs_tensor *b4 = mk_rand(2, sb4, 3);
    assert_int_equal(hs_tensor_matmul_ref(r, &nar, b4), HS_OK);
    hs_status s = HS_ERR_NOMEM;
    for (uint64_t n = 1; s != HS_OK && n < 20; n++) {
        hs_alloc_fail_after(n);
        s = hs_tensor_matmul(o, &nar, b4);
        hs_alloc_fail_after(0);
        assert_true(s == HS_OK || s == HS_ERR_NOMEM);
    }
    assert_int_equal(s, HS_OK);
    hs_expect_close((const float *)o->data, (const float *)r->data, 12, 1e-5, 1e-5);
    hs_tensor_free(b4);
    hs_tensor_free(w);
    hs_tensor_free(b);
    hs_tensor_free(o);
    hs_tensor_free(r);
}

// ---- joins and gathers ----

static void test_concat_and_stack_join_along_any_dim(void **state) {
    (void)state;
    int64_t s1[2] = {2, 1}, s2[2] = {2, 2}, so[2] = {2, 3};
    hs_tensor *a = mk(HS_DTYPE_F32, 2, s1), *b = mk(HS_DTYPE_U8, 2, s2), *o = mk(HS_DTYPE_F32, 2, so);
    hs_tensor_fill(a, 1);
    for (int i = 0; i < 4; i++)
        hs_tensor_set_flat(b, i, 10 + i);
    const hs_tensor *ins[2] = {a, b};
    assert_int_equal(hs_tensor_concat(o, ins, 2, 1), HS_OK);
    expect_tensor_close(o, (const float[]){1, 10, 11, 1, 12, 13}, 0, 0);
    assert_int_equal(hs_tensor_concat(o, ins, 2, 0), HS_ERR_SHAPE);
    assert_true(msg_has("concat") && msg_has("[2,2]") && msg_has("[2,1]"));
    const hs_tensor *same[2] = {b, b};
    int64_t st[3] = {2, 2, 2};
    hs_tensor *stk = mk(HS_DTYPE_F32, 3, st);
    assert_int_equal(hs_tensor_stack(stk, same, 2, 2), HS_OK);  // new last dim
    expect_tensor_close(stk, (const float[]){10, 10, 11, 11, 12, 12, 13, 13}, 0, 0);
    assert_int_equal(hs_tensor_stack(stk, ins, 2, 0), HS_ERR_SHAPE);
    hs_tensor_free(stk);
    hs_tensor_free(a);
    hs_tensor_free(b);
    hs_tensor_free(o);
}

static void test_index_select_one_hot_histc_and_sort(void **state) {
    (void)state;
    hs_tensor *a, *r;
    assert_int_equal(hs_tensor_arange(&a, HS_DTYPE_F32, 0, 6, 1), HS_OK);
    int64_t s[2] = {2, 3}, si[1] = {4}, so[2] = {2, 4};
    assert_int_equal(hs_tensor_reshape(&r, a, 2, s), HS_OK);
    hs_tensor *idx = mk(HS_DTYPE_I64, 1, si), *o = mk(HS_DTYPE_F32, 2, so);
    const int64_t iv[4] = {2, 0, 2, 1};
    memcpy(idx->data, iv, sizeof iv);
    assert_int_equal(hs_tensor_index_select(o, r, 1, idx), HS_OK);
    expect_tensor_close(o, (const float[]){2, 0, 2, 1, 5, 3, 5, 4}, 0, 0);
    hs_tensor_set_flat(idx, 3, 3);
    assert_int_equal(hs_tensor_index_select(o, r, 1, idx), HS_ERR_ARG);
    // one_hot: (4) ids -> (4,4)
    int64_t sh[2] = {4, 4};
    hs_tensor *oh = mk(HS_DTYPE_F32, 2, sh);
    assert_int_equal(hs_tensor_one_hot(oh, idx), HS_OK);
    expect_tensor_close(oh, (const float[]){0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, 0, 0);
    hs_tensor_set_flat(idx, 3, 4);
    assert_int_equal(hs_tensor_one_hot(oh, idx), HS_ERR_ARG);
    // histc: 0..5 in 3 bins over [0, 5] -> {0,1}, {2,3}, {4,5}
    int64_t sb[1] = {3};
    hs_tensor *h = mk(HS_DTYPE_F32, 1, sb);
    assert_int_equal(hs_tensor_histc(h, r, 0, 5), HS_OK);
    expect_tensor_close(h, (const float[]){2, 2, 2}, 0, 0);
    assert_int_equal(hs_tensor_histc(h, r, 1, 3.5), HS_OK);  // 0, 4, 5 ignored
    expect_tensor_close(h, (const float[]){1, 1, 1}, 0, 0);
    assert_int_equal(hs_tensor_histc(h, r, 0, 0), HS_OK);  // data range
    expect_tensor_close(h, (const float[]){2, 2, 2}, 0, 0);
    // sort: stable, descending, indices along dim
    int64_t s5[1] = {5};
    hs_tensor *x = mk(HS_DTYPE_F32, 1, s5), *sv = mk(HS_DTYPE_F32, 1, s5), *si2 = mk(HS_DTYPE_I64, 1, s5);
    const float xv[5] = {3, 1, 3, NAN, 0};
    memcpy(x->data, xv, sizeof xv);
    int64_t work[10];
    assert_int_equal(hs_tensor_sort_workspace_size(x, 0), 10);
    assert_int_equal(hs_tensor_sort(sv, si2, x, 0, 0, work), HS_OK);
    expect_tensor_close(sv, (const float[]){0, 1, 3, 3, NAN}, 0, 0);
    expect_tensor_close(si2, (const float[]){4, 1, 0, 2, 3}, 0, 0);
    assert_int_equal(hs_tensor_sort(sv, si2, x, 0, 1, work), HS_OK);
    expect_tensor_close(sv, (const float[]){NAN, 3, 3, 1, 0}, 0, 0);
    expect_tensor_close(si2, (const float[]){3, 0, 2, 1, 4}, 0, 0);
    assert_int_equal(hs_tensor_sort(x, NULL, x, 0, 0, work), HS_ERR_ARG);
    hs_tensor_free(x);
    hs_tensor_free(sv);
    hs_tensor_free(si2);
    hs_tensor_free(h);
    hs_tensor_free(oh);
    hs_tensor_free(idx);
    hs_tensor_free(o);
    hs_tensor_free(r);
    hs_tensor_free(a);
}

static void test_equal_and_allclose(void **state) {
    (void)state;
    int64_t s[2] = {2, 2}, s1[1] = {2};
    hs_tensor *a = mk_rand(2, s, 1), *b, *c = mk(HS_DTYPE_F32, 1, s1);
    assert_int_equal(hs_tensor_clone(&b, a), HS_OK);
    int eq = 0;
    assert_int_equal(hs_tensor_equal(&eq, a, b), HS_OK);
    assert_true(eq);
    assert_int_equal(hs_tensor_equal(&eq, a, c), HS_OK);
    assert_false(eq);
    hs_tensor_set_flat(b, 3, hs_tensor_get_flat(b, 3) + 1e-6);
    assert_int_equal(hs_tensor_equal(&eq, a, b), HS_OK);
    assert_false(eq);
    assert_int_equal(hs_tensor_allclose(&eq, a, b, 1e-5, 0), HS_OK);
    assert_true(eq);
    assert_int_equal(hs_tensor_allclose(&eq, a, b, 1e-8, 0), HS_OK);
    assert_false(eq);
    hs_tensor_free(a);
    hs_tensor_free(b);
    hs_tensor_free(c);
}

// ---- determinism across thread counts ----

static void run_suite(hs_tensor *const *outs, const hs_tensor *x, const hs_tensor *y) {
    assert_int_equal(hs_tensor_binary(outs[0], HS_BINOP_MUL, x, y), HS_OK);
    assert_int_equal(hs_tensor_unary(outs[1], HS_UNOP_TANH, x), HS_OK);
    assert_int_equal(hs_tensor_sum(outs[2], x, -1, 0), HS_OK);
    assert_int_equal(hs_tensor_var(outs[3], x, -1, 1, 0), HS_OK);
    assert_int_equal(hs_tensor_sum(outs[4], x, 0, 0), HS_OK);
    assert_int_equal(hs_tensor_max(outs[5], NULL, x, 1, 0), HS_OK);
}

static void test_parallel_loops_are_bit_identical_for_1_and_2_threads(void **state) {
    (void)state;
    int64_t s[2] = {600, 500}, sr[1] = {500}, sc[1] = {600};
    hs_tensor *x = mk_rand(2, s, 21), *y = mk_rand(1, sr, 22);
    hs_tensor *r1[6] = {mk(HS_DTYPE_F32, 2, s), mk(HS_DTYPE_F32, 2, s), mk(HS_DTYPE_F64, 0, s),
                        mk(HS_DTYPE_F64, 0, s), mk(HS_DTYPE_F32, 1, sr), mk(HS_DTYPE_F32, 1, sc)};
    hs_tensor *r2[6] = {mk(HS_DTYPE_F32, 2, s), mk(HS_DTYPE_F32, 2, s), mk(HS_DTYPE_F64, 0, s),
                        mk(HS_DTYPE_F64, 0, s), mk(HS_DTYPE_F32, 1, sr), mk(HS_DTYPE_F32, 1, sc)};
    int saved = hs_get_num_threads();
    assert_int_equal(hs_set_num_threads(1), HS_OK);
    run_suite(r1, x, y);
    assert_int_equal(hs_set_num_threads(2), HS_OK);
    run_suite(r2, x, y);
    assert_int_equal(hs_set_num_threads(saved), HS_OK);
    for (int i = 0; i < 6; i++)
        assert_memory_equal(r1[i]->data, r2[i]->data, hs_tensor_nbytes(r1[i]));
    for (int i = 0; i < 6; i++) {
        hs_tensor_free(r1[i]);
        hs_tensor_free(r2[i]);
    }
    hs_tensor_free(x);
    hs_tensor_free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_broadcasts_every_op_like_numpy),
        cmocka_unit_test(test_binary_on_transposed_view_matches_contiguous_copy),
        cmocka_unit_test(test_binary_rejects_unbroadcastable_shapes_naming_both),
        cmocka_unit_test(test_binary_scalar_keeps_operand_order_and_in_place_works),
        cmocka_unit_test(test_maximum_and_minimum_propagate_nan),
        cmocka_unit_test(test_where_and_masked_fill_broadcast_the_mask),
        cmocka_unit_test(test_unary_ops_match_libm_in_double),
        cmocka_unit_test(test_every_reduction_matches_plain_double_loop),
        cmocka_unit_test(test_argmax_ties_pick_first_occurrence),
        cmocka_unit_test(test_reduce_rejects_bad_dim_and_out_shape),
        cmocka_unit_test(test_cumsum_runs_along_each_dim),
        cmocka_unit_test(test_matmul_matches_triple_loop_on_plain_transposed_and_strided),
        cmocka_unit_test(test_matmul_rejects_mismatched_shapes_and_handles_aliasing),
        cmocka_unit_test(test_matmul_copy_path_survives_allocation_failures),
        cmocka_unit_test(test_concat_and_stack_join_along_any_dim),
        cmocka_unit_test(test_index_select_one_hot_histc_and_sort),
        cmocka_unit_test(test_equal_and_allclose),
        cmocka_unit_test(test_parallel_loops_are_bit_identical_for_1_and_2_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
