// tests/test_pool.c: max/avg/global-average pooling kernels against the plain-loop references
// (padding, ceil mode, count_include_pad, odd sizes), PyTorch's reference cases, finite
// differences, += semantics, thread-count independence and argument errors.
#include "hs_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "pool.h"
#include "ref_reader.h"
#include "rng.h"

static int64_t prod4(const int64_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

static float *randn(int64_t n, uint64_t stream) {
    float *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        a[i] = hs_rng_normal(7, stream, (uint64_t)i);
    return a;
}

// Distinct values 0.01 apart in a scrambled order: no ties, and no max changes under +-1e-3.
static float *distinct(int64_t n, uint64_t stream) {
    float *a = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        a[i] = 0.01f * (float)i - 0.005f * (float)n;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t k = (int64_t)(hs_rng_u64(3, stream, (uint64_t)i) % (uint64_t)(i + 1));
        float t = a[i];
        a[i] = a[k];
        a[k] = t;
    }
    return a;
}

typedef struct {
    int64_t xs[4];
    hs_pool2d_params p;
} pool_case;

static const pool_case cases[] = {
    {{2, 3, 10, 10}, {2, 2, 2, 2, 0, 0, 0, 1}},
    {{2, 3, 9, 11}, {2, 2, 2, 2, 0, 0, 0, 1}},   // odd: last row/col dropped
    {{2, 3, 9, 11}, {2, 2, 2, 2, 0, 0, 1, 1}},   // odd, ceil mode
    {{1, 2, 10, 10}, {3, 3, 2, 2, 1, 1, 0, 1}},
    {{1, 2, 10, 10}, {3, 3, 2, 2, 1, 1, 0, 0}},  // padding not counted
    {{1, 2, 4, 4}, {3, 3, 2, 2, 1, 1, 1, 1}},    // ceil mode with padding
    {{1, 2, 4, 4}, {3, 3, 2, 2, 1, 1, 1, 0}},
    {{2, 1, 7, 8}, {3, 2, 1, 3, 1, 0, 0, 1}},    // rectangular kernel and stride
    {{1, 3, 5, 5}, {5, 5, 1, 1, 2, 2, 0, 1}},
    {{1, 1, 6, 5}, {4, 4, 3, 3, 2, 2, 1, 1}},
};
#define NCASES (sizeof cases / sizeof cases[0])

static void test_maxpool2d_matches_reference_loops(void **state) {
    (void)state;
    for (size_t c = 0; c < NCASES; c++) {
        int64_t os[4];
        assert_int_equal(hs_pool2d_out_shape(os, cases[c].xs, cases[c].p), HS_OK);
        int64_t nx = prod4(cases[c].xs), no = prod4(os);
        float *x = randn(nx, c), *out = malloc((size_t)no * 4), *ref = malloc((size_t)no * 4);
        int32_t *am = malloc((size_t)no * 4), *am_ref = malloc((size_t)no * 4);
        assert_int_equal(hs_maxpool2d_forward(out, am, x, cases[c].xs, cases[c].p), HS_OK);
        assert_int_equal(hs_maxpool2d_forward_ref(ref, am_ref, x, cases[c].xs, cases[c].p), HS_OK);
        assert_memory_equal(out, ref, (size_t)no * 4);
        assert_memory_equal(am, am_ref, (size_t)no * 4);
        // backward: dx += dout routed to the argmax, starting from a non-zero dx
        float *dout = randn(no, c + 50), *dx = randn(nx, c + 60), *want = randn(nx, c + 60);
        for (int64_t i = 0; i < no; i++) {
            int64_t plane = i / (os[2] * os[3]);
            want[plane * cases[c].xs[2] * cases[c].xs[3] + am_ref[i]] += dout[i];
        }
        assert_int_equal(hs_maxpool2d_backward(dx, dout, am, cases[c].xs, cases[c].p), HS_OK);
        hs_expect_close(dx, want, (size_t)nx, 1e-6, 1e-6);
        free(x), free(out), free(ref), free(am), free(am_ref), free(dout), free(dx), free(want);
    }
}

// The assigning backward (the graph's first writer of a gradient) == += into a zeroed dx,
// whatever dx held, on every case (overlapping windows, ceil mode, dropped rows).
static void test_maxpool2d_backward_assign_overwrites_dx(void **state) {
    (void)state;
    for (size_t k = 0; k < NCASES; k++) {
        int64_t os[4];
        assert_int_equal(hs_pool2d_out_shape(os, cases[k].xs, cases[k].p), HS_OK);
        int64_t nx = prod4(cases[k].xs), no = prod4(os);
        float *x = distinct(nx, k), *dout = randn(no, 40 + k), *out = malloc((size_t)no * 4);
        int32_t *am = malloc((size_t)no * sizeof *am);
        assert_int_equal(hs_maxpool2d_forward(out, am, x, cases[k].xs, cases[k].p), HS_OK);
        float *dx = randn(nx, 60 + k), *dz = calloc((size_t)nx, 4);
        assert_int_equal(hs_maxpool2d_backward_assign(dx, dout, am, cases[k].xs, cases[k].p, 1), HS_OK);
        assert_int_equal(hs_maxpool2d_backward(dz, dout, am, cases[k].xs, cases[k].p), HS_OK);
        assert_memory_equal(dx, dz, (size_t)nx * 4);
        free(x), free(dout), free(out), free(am), free(dx), free(dz);
    }
}

static void test_maxpool2d_propagates_nan_and_picks_first_of_ties(void **state) {
    (void)state;
    int64_t xs[4] = {1, 1, 2, 4};
    float x[8] = {1, 1, 0, NAN, 1, 0, 2, 2};
    float out[2];
    int32_t am[2];
    hs_pool2d_params p = {2, 2, 2, 2, 0, 0, 0, 1};
    assert_int_equal(hs_maxpool2d_forward(out, am, x, xs, p), HS_OK);
    assert_true(out[0] == 1.0f && am[0] == 0);
    assert_true(isnan(out[1]) && am[1] == 3);
}

static void test_avgpool2d_matches_reference_loops(void **state) {
    (void)state;
    for (size_t c = 0; c < NCASES; c++) {
        int64_t os[4];
        assert_int_equal(hs_pool2d_out_shape(os, cases[c].xs, cases[c].p), HS_OK);
        int64_t nx = prod4(cases[c].xs), no = prod4(os);
        float *x = randn(nx, c), *out = malloc((size_t)no * 4), *ref = malloc((size_t)no * 4);
        assert_int_equal(hs_avgpool2d_forward(out, x, cases[c].xs, cases[c].p), HS_OK);
        assert_int_equal(hs_avgpool2d_forward_ref(ref, x, cases[c].xs, cases[c].p), HS_OK);
        hs_expect_close(out, ref, (size_t)no, 1e-6, 1e-5);
        float *dout = randn(no, c + 50), *dx = randn(nx, c + 60), *want = randn(nx, c + 60);
        assert_int_equal(hs_avgpool2d_backward(dx, dout, cases[c].xs, cases[c].p), HS_OK);
        assert_int_equal(hs_avgpool2d_backward_ref(want, dout, cases[c].xs, cases[c].p), HS_OK);
        hs_expect_close(dx, want, (size_t)nx, 1e-6, 1e-5);
        free(x), free(out), free(ref), free(dout), free(dx), free(want);
    }
}

static void test_pool2d_out_shape_follows_pytorch_ceil_mode(void **state) {
    (void)state;
    int64_t os[4], xs[4] = {1, 1, 4, 4}, x5[4] = {1, 1, 5, 5};
    assert_int_equal(hs_pool2d_out_shape(os, xs, (hs_pool2d_params){3, 3, 2, 2, 1, 1, 1, 1}), HS_OK);
    assert_int_equal(os[2], 3);
    assert_int_equal(hs_pool2d_out_shape(os, xs, (hs_pool2d_params){3, 3, 2, 2, 1, 1, 0, 1}), HS_OK);
    assert_int_equal(os[2], 2);
    assert_int_equal(hs_pool2d_out_shape(os, x5, (hs_pool2d_params){2, 2, 2, 2, 0, 0, 1, 1}), HS_OK);
    assert_int_equal(os[2], 3);
    // the last ceil-mode window would start in the right padding: dropped
    assert_int_equal(hs_pool2d_out_shape(os, xs, (hs_pool2d_params){2, 2, 2, 2, 1, 1, 1, 1}), HS_OK);
    assert_int_equal(os[2], 3);
}

// ---- PyTorch cases ----

static int ncase;

static void torch_case(const char *name, void *ctx) {
    const char *op = ctx;
    ref_file f;
    if (!ref_open(&f, name))
        fail_msg("cannot read %s", name);
    int64_t xs[8], os[8];
    int nd = 0, ond = 0;
    float *x = ref_tensor(&f, "x", xs, &nd, NULL), *want = ref_tensor(&f, "out", os, &ond, NULL);
    float *dout = ref_tensor(&f, "dout", NULL, NULL, NULL), *wdx = ref_tensor(&f, "dx", NULL, NULL, NULL);
    assert_non_null(x), assert_non_null(want), assert_non_null(dout), assert_non_null(wdx);
    assert_int_equal(nd, 4);
    int k = (int)ref_param(&f, "kernel", 1), s = (int)ref_param(&f, "stride", k), pd = (int)ref_param(&f, "padding", 0);
    hs_pool2d_params p = {k, k, s, s, pd, pd, 0, 1};
    int64_t nx = prod4(xs), no = 1;
    for (int i = 0; i < ond; i++)
        no *= os[i];
    float *out = malloc((size_t)no * 4), *dx = calloc((size_t)nx, 4);
    int32_t *am = malloc((size_t)no * 4);
    if (strcmp(op, "max") == 0) {
        int64_t got[4];
        assert_int_equal(hs_pool2d_out_shape(got, xs, p), HS_OK);
        assert_int_equal(prod4(got), no);
        assert_int_equal(hs_maxpool2d_forward(out, am, x, xs, p), HS_OK);
        assert_int_equal(hs_maxpool2d_backward(dx, dout, am, xs, p), HS_OK);
    } else if (strcmp(op, "avg") == 0) {
        assert_int_equal(hs_avgpool2d_forward(out, x, xs, p), HS_OK);
        assert_int_equal(hs_avgpool2d_backward(dx, dout, xs, p), HS_OK);
    } else {
        assert_int_equal(no, xs[0] * xs[1]);
        assert_int_equal(hs_global_avgpool_forward(out, x, xs), HS_OK);
        assert_int_equal(hs_global_avgpool_backward(dx, dout, xs), HS_OK);
    }
    hs_expect_close(out, want, (size_t)no, 1e-5, 1e-4);
    hs_expect_close(dx, wdx, (size_t)nx, 1e-4, 1e-3);
    free(x), free(want), free(dout), free(wdx), free(out), free(dx), free(am);
    ref_close(&f);
    ncase++;
}

static void test_pooling_matches_pytorch_reference_cases(void **state) {
    (void)state;
    ncase = 0;
    int n = ref_each_case("maxpool2d_", torch_case, "max");
    n += ref_each_case("avgpool2d_", torch_case, "avg");
    n += ref_each_case("global_avgpool", torch_case, "global");
    if (n == 0)
        skip();
    assert_true(ncase >= 3);
}

// ---- finite differences ----

typedef struct {
    int kind;   // 0 max, 1 avg, 2 global
    int64_t xs[4], no;
    hs_pool2d_params p;
    float *x, *R, *out;
    int32_t *am;
} fd_ctx;

static double fd_loss(void *v) {
    fd_ctx *c = v;
    if (c->kind == 0)
        assert_int_equal(hs_maxpool2d_forward(c->out, c->am, c->x, c->xs, c->p), HS_OK);
    else if (c->kind == 1)
        assert_int_equal(hs_avgpool2d_forward(c->out, c->x, c->xs, c->p), HS_OK);
    else
        assert_int_equal(hs_global_avgpool_forward(c->out, c->x, c->xs), HS_OK);
    double s = 0;
    for (int64_t i = 0; i < c->no; i++)
        s += (double)c->out[i] * (double)c->R[i];
    return s;
}

static void check_fd(fd_ctx *c) {
    int64_t os[4];
    if (c->kind < 2) {
        assert_int_equal(hs_pool2d_out_shape(os, c->xs, c->p), HS_OK);
        c->no = prod4(os);
    } else {
        c->no = c->xs[0] * c->xs[1];
    }
    int64_t nx = prod4(c->xs);
    c->x = distinct(nx, 1);
    c->R = randn(c->no, 2);
    c->out = malloc((size_t)c->no * 4);
    c->am = malloc((size_t)c->no * 4);
    float *dx = calloc((size_t)nx, 4), *dx2 = calloc((size_t)nx, 4), *num = malloc((size_t)nx * 4);
    fd_loss(c);   // fills argmax
    for (int rep = 0; rep < 2; rep++) {
        float *d = rep ? dx2 : dx;
        if (c->kind == 0)
            assert_int_equal(hs_maxpool2d_backward(d, c->R, c->am, c->xs, c->p), HS_OK);
        else if (c->kind == 1)
            assert_int_equal(hs_avgpool2d_backward(d, c->R, c->xs, c->p), HS_OK);
        else
            assert_int_equal(hs_global_avgpool_backward(d, c->R, c->xs), HS_OK);
    }
    assert_memory_equal(dx, dx2, (size_t)nx * 4);
    for (int64_t i = 0; i < nx; i++)
        num[i] = (float)hs_numeric_grad(fd_loss, c, c->x, (size_t)i, 1e-3f);
    hs_expect_close(dx, num, (size_t)nx, 2e-3, 2e-3);
    free(dx), free(dx2), free(num), free(c->x), free(c->R), free(c->out), free(c->am);
}

static void test_pooling_backward_matches_finite_differences(void **state) {
    (void)state;
    fd_ctx a = {.kind = 0, .xs = {2, 2, 5, 6}, .p = {3, 3, 2, 2, 1, 1, 1, 1}};
    check_fd(&a);
    fd_ctx b = {.kind = 1, .xs = {2, 2, 5, 6}, .p = {3, 3, 2, 2, 1, 1, 1, 0}};
    check_fd(&b);
    fd_ctx c = {.kind = 1, .xs = {1, 2, 6, 6}, .p = {2, 2, 2, 2, 0, 0, 0, 1}};
    check_fd(&c);
    fd_ctx d = {.kind = 2, .xs = {2, 3, 4, 5}};
    check_fd(&d);
}

static void test_pooling_results_identical_for_one_and_two_threads(void **state) {
    (void)state;
    int saved = hs_get_num_threads();
    int64_t xs[4] = {4, 8, 32, 30}, os[4];
    hs_pool2d_params p = {3, 3, 2, 2, 1, 1, 0, 1};
    assert_int_equal(hs_pool2d_out_shape(os, xs, p), HS_OK);
    int64_t nx = prod4(xs), no = prod4(os);
    float *x = randn(nx, 5), *dout = randn(no, 6);
    float *o[2], *d[2], *g[2], *gd[2];
    int32_t *am[2];
    for (int t = 0; t < 2; t++) {
        hs_set_num_threads(t + 1);
        o[t] = malloc((size_t)no * 4), am[t] = malloc((size_t)no * 4), d[t] = calloc((size_t)nx, 4);
        g[t] = malloc((size_t)(xs[0] * xs[1]) * 4), gd[t] = calloc((size_t)nx, 4);
        assert_int_equal(hs_maxpool2d_forward(o[t], am[t], x, xs, p), HS_OK);
        assert_int_equal(hs_maxpool2d_backward(d[t], dout, am[t], xs, p), HS_OK);
        assert_int_equal(hs_avgpool2d_backward(d[t], dout, xs, p), HS_OK);
        assert_int_equal(hs_global_avgpool_forward(g[t], x, xs), HS_OK);
        assert_int_equal(hs_global_avgpool_backward(gd[t], dout, xs), HS_OK);
    }
    assert_memory_equal(o[0], o[1], (size_t)no * 4);
    assert_memory_equal(am[0], am[1], (size_t)no * 4);
    assert_memory_equal(d[0], d[1], (size_t)nx * 4);
    assert_memory_equal(g[0], g[1], (size_t)(xs[0] * xs[1]) * 4);
    assert_memory_equal(gd[0], gd[1], (size_t)nx * 4);
    for (int t = 0; t < 2; t++)
        free(o[t]), free(am[t]), free(d[t]), free(g[t]), free(gd[t]);
    free(x), free(dout);
    hs_set_num_threads(saved);
}

static void test_pooling_rejects_bad_shapes_and_params(void **state) {
    (void)state;
    int64_t os[4], xs[4] = {1, 2, 3, 3};
    assert_int_equal(hs_pool2d_out_shape(os, xs, (hs_pool2d_params){5, 5, 1, 1, 0, 0, 0, 1}), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "[1,2,3,3]"));
    assert_int_equal(hs_pool2d_out_shape(os, xs, (hs_pool2d_params){2, 2, 1, 1, 2, 2, 0, 1}), HS_ERR_ARG);  // pad > k/2
    assert_int_equal(hs_pool2d_out_shape(os, xs, (hs_pool2d_params){2, 2, 0, 1, 0, 0, 0, 1}), HS_ERR_ARG);  // stride 0
    int64_t z[4] = {1, 0, 3, 3};
    assert_int_equal(hs_pool2d_out_shape(os, z, (hs_pool2d_params){2, 2, 2, 2, 0, 0, 0, 1}), HS_ERR_SHAPE);
    assert_int_equal(hs_global_avgpool_forward(NULL, NULL, xs), HS_ERR_ARG);
    assert_int_equal(hs_global_avgpool_backward(NULL, NULL, z), HS_ERR_SHAPE);
    float buf[9];
    assert_int_equal(hs_maxpool2d_forward(buf, NULL, buf, xs, (hs_pool2d_params){2, 2, 2, 2, 0, 0, 0, 1}), HS_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool2d_matches_reference_loops),
        cmocka_unit_test(test_maxpool2d_propagates_nan_and_picks_first_of_ties),
        cmocka_unit_test(test_maxpool2d_backward_assign_overwrites_dx),
        cmocka_unit_test(test_avgpool2d_matches_reference_loops),
        cmocka_unit_test(test_pool2d_out_shape_follows_pytorch_ceil_mode),
        cmocka_unit_test(test_pooling_matches_pytorch_reference_cases),
        cmocka_unit_test(test_pooling_backward_matches_finite_differences),
        cmocka_unit_test(test_pooling_results_identical_for_one_and_two_threads),
        cmocka_unit_test(test_pooling_rejects_bad_shapes_and_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
