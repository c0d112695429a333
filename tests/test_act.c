// tests/test_act.c: activations and softmax (core/act.c): hand-computed values, agreement with
// the PyTorch reference cases (read through the shared hs_test_ref_* helpers), finite-difference
// gradients, += backward, thread-count determinism and argument errors. Dimension letters: n elements; softmax views (outer, dim, inner).
#include "hs_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "parallel.h"
#include "rng.h"
#include "safetensors.h"

// ---- helpers ----

static void fill_normal(float *x, int64_t n, uint64_t seed, float scale, float away_from_zero) {
    for (int64_t i = 0; i < n; i++) {
        float v = scale * hs_rng_normal(seed, 0, (uint64_t)i);
        if (fabsf(v) < away_from_zero)   // keep finite differences off kinks
            v = v < 0 ? v - away_from_zero : v + away_from_zero;
        x[i] = v;
    }
}

// ---- hand-computed values ----

static void test_act_forward_matches_hand_computed_values(void **state) {
    (void)state;
    const float x[4] = {-2.0f, -0.5f, 0.0f, 1.0f};
    float out[4];
    const struct {
        hs_act a;
        float alpha;
        float want[4];
    } cases[] = {
        {HS_ACT_RELU, 0, {0.0f, 0.0f, 0.0f, 1.0f}},
        {HS_ACT_LEAKY_RELU, 0.1f, {-0.2f, -0.05f, 0.0f, 1.0f}},
        {HS_ACT_SIGMOID, 0, {0.11920292f, 0.37754067f, 0.5f, 0.73105858f}},
        {HS_ACT_TANH, 0, {-0.96402758f, -0.46211716f, 0.0f, 0.76159416f}},
        {HS_ACT_GELU, 0, {-0.04550026f, -0.15426877f, 0.0f, 0.84134475f}},
        {HS_ACT_SILU, 0, {-0.23840584f, -0.18877033f, 0.0f, 0.73105858f}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        assert_int_equal(hs_act_forward(out, x, 4, cases[k].a, cases[k].alpha), HS_OK);
        hs_expect_close(out, cases[k].want, 4, 1e-6, 1e-6);
    }
}

static void test_act_names_round_trip(void **state) {
    (void)state;
    for (int i = HS_ACT_RELU; i <= HS_ACT_SILU; i++) {
        hs_act a;
        assert_int_equal(hs_act_from_name(&a, hs_act_name((hs_act)i)), HS_OK);
        assert_int_equal(a, i);
    }
    hs_act a;
    assert_int_equal(hs_act_from_name(&a, "swish"), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "swish"));
    assert_null(hs_act_name((hs_act)42));
}

static void test_softmax_of_small_rows_matches_hand_computed_values(void **state) {
    (void)state;
    // (outer=1, dim=3, inner=2): columns {1,2,3} and {0,0,0}
    const float x[6] = {1.0f, 0.0f, 2.0f, 0.0f, 3.0f, 0.0f};
    float out[6], lout[6];
    assert_int_equal(hs_softmax_forward(out, x, 1, 3, 2, 0), HS_OK);
    assert_int_equal(hs_softmax_forward(lout, x, 1, 3, 2, 1), HS_OK);
    const float want[6] = {0.09003057f, 1.0f / 3, 0.24472847f, 1.0f / 3, 0.66524096f, 1.0f / 3};
    const float lwant[6] = {-2.40760596f, -1.09861229f, -1.40760596f, -1.09861229f, -0.40760596f, -1.09861229f};
    hs_expect_close(out, want, 6, 1e-7, 1e-6);
    hs_expect_close(lout, lwant, 6, 1e-6, 1e-6);
}

static void test_softmax_subtracts_the_max_so_large_logits_do_not_overflow(void **state) {
    (void)state;
    const float x[3] = {1000.0f, 1001.0f, 1002.0f};
    float out[3], lout[3];
    assert_int_equal(hs_softmax_forward(out, x, 1, 3, 1, 0), HS_OK);
    assert_int_equal(hs_softmax_forward(lout, x, 1, 3, 1, 1), HS_OK);
    const float want[3] = {0.09003057f, 0.24472847f, 0.66524096f};
    const float lwant[3] = {-2.40760596f, -1.40760596f, -0.40760596f};
    hs_expect_close(out, want, 3, 1e-7, 1e-6);
    hs_expect_close(lout, lwant, 3, 1e-6, 1e-6);
}

static void test_act_forward_works_in_place(void **state) {
    (void)state;
    float x[3] = {-1.0f, 0.5f, 2.0f};
    assert_int_equal(hs_act_forward(x, x, 3, HS_ACT_RELU, 0), HS_OK);
    const float want[3] = {0.0f, 0.5f, 2.0f};
    hs_expect_close(x, want, 3, 0, 0);
    float y[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    assert_int_equal(hs_softmax_forward(y, y, 1, 4, 1, 1), HS_OK);
    const float lwant[4] = {-3.44018970f, -2.44018970f, -1.44018970f, -0.44018970f};
    hs_expect_close(y, lwant, 4, 1e-6, 1e-6);
}

// ---- PyTorch reference cases ----

static void test_act_matches_pytorch_reference_cases(void **state) {
    (void)state;
    const struct {
        const char *name;
        hs_act a;
        float alpha;
    } cases[] = {{"relu", HS_ACT_RELU, 0},       {"leaky_relu_0.1", HS_ACT_LEAKY_RELU, 0.1f},
                 {"sigmoid", HS_ACT_SIGMOID, 0}, {"tanh", HS_ACT_TANH, 0},
                 {"gelu", HS_ACT_GELU, 0},       {"silu", HS_ACT_SILU, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        hs_safetensors *st;
        if (hs_test_ref_load(&st, cases[k].name) != HS_OK)
            skip();
        int64_t n, n2;
        const float *x = hs_test_ref_f32(st, "x", &n), *want = hs_test_ref_f32(st, "out", &n2);
        const float *dout = hs_test_ref_f32(st, "dout", &n2), *dxw = hs_test_ref_f32(st, "dx", &n2);
        float *out = malloc((size_t)n * sizeof *out), *dx = calloc((size_t)n, sizeof *dx);
        assert_int_equal(hs_act_forward(out, x, n, cases[k].a, cases[k].alpha), HS_OK);
        hs_expect_close(out, want, (size_t)n, HS_TEST_FWD_ATOL, HS_TEST_FWD_RTOL);
        assert_int_equal(hs_act_backward(dx, dout, x, out, n, cases[k].a, cases[k].alpha), HS_OK);
        hs_expect_close(dx, dxw, (size_t)n, HS_TEST_GRAD_ATOL, HS_TEST_GRAD_RTOL);
        free(out), free(dx);
        hs_safetensors_free(st);
    }
}

static void test_softmax_matches_pytorch_reference_cases(void **state) {
    (void)state;
    const char *names[2] = {"softmax_dim1", "log_softmax_dim1"};
    for (int log = 0; log < 2; log++) {
        hs_safetensors *st;
        if (hs_test_ref_load(&st, names[log]) != HS_OK)
            skip();
        int64_t n, n2;
        const hs_tensor *xt = hs_test_ref_tensor(st, "x");
        const float *x = hs_test_ref_f32(st, "x", &n);
        assert_true(xt->ndim >= 2);
        int64_t outer = xt->shape[0], dim = xt->shape[1], inner = 1;
        for (int i = 2; i < xt->ndim; i++)
            inner *= xt->shape[i];
        const float *want = hs_test_ref_f32(st, "out", &n2), *dout = hs_test_ref_f32(st, "dout", &n2);
        const float *dxw = hs_test_ref_f32(st, "dx", &n2);
        float *out = malloc((size_t)n * sizeof *out), *dx = calloc((size_t)n, sizeof *dx);
        assert_int_equal(hs_softmax_forward(out, x, outer, dim, inner, log), HS_OK);
        hs_expect_close(out, want, (size_t)n, HS_TEST_FWD_ATOL, HS_TEST_FWD_RTOL);
        assert_int_equal(hs_softmax_backward(dx, dout, out, outer, dim, inner, log), HS_OK);
        hs_expect_close(dx, dxw, (size_t)n, HS_TEST_GRAD_ATOL, HS_TEST_GRAD_RTOL);
        free(out), free(dx);
        hs_safetensors_free(st);
    }
}

// ---- finite differences: loss = sum(out * R) ----

typedef struct {
    float *x, *out;
    const float *R;
    int64_t n, outer, dim, inner;
    hs_act a;
    float alpha;
    int softmax, log;
} fd_ctx;

static double fd_loss(void *vctx) {
    fd_ctx *c = vctx;
    if (c->softmax)
        assert_int_equal(hs_softmax_forward(c->out, c->x, c->outer, c->dim, c->inner, c->log), HS_OK);
    else
        assert_int_equal(hs_act_forward(c->out, c->x, c->n, c->a, c->alpha), HS_OK);
    double s = 0;
    for (int64_t i = 0; i < c->n; i++)
        s += (double)c->out[i] * (double)c->R[i];
    return s;
}

static void check_grad(fd_ctx *c) {
    float dx[64], num[64];
    assert_true(c->n <= 64);
    fd_loss(c);   // c->out = forward output (what backward receives)
    memset(dx, 0, sizeof dx);
    if (c->softmax)
        assert_int_equal(hs_softmax_backward(dx, c->R, c->out, c->outer, c->dim, c->inner, c->log), HS_OK);
    else
        assert_int_equal(hs_act_backward(dx, c->R, c->x, c->out, c->n, c->a, c->alpha), HS_OK);
    float out_saved[64];
    memcpy(out_saved, c->out, (size_t)c->n * sizeof(float));
    for (int64_t i = 0; i < c->n; i++)
        num[i] = (float)hs_numeric_grad(fd_loss, c, c->x, (size_t)i, 1e-3f);
    hs_expect_close(dx, num, (size_t)c->n, 5e-4, 5e-3);
    memcpy(c->out, out_saved, (size_t)c->n * sizeof(float));
}

static void test_act_backward_matches_finite_differences(void **state) {
    (void)state;
    float x[24], out[24], R[24];
    fill_normal(x, 24, 11, 1.5f, 0.05f);
    fill_normal(R, 24, 12, 1.0f, 0.0f);
    for (int a = HS_ACT_RELU; a <= HS_ACT_SILU; a++) {
        fd_ctx c = {.x = x, .out = out, .R = R, .n = 24, .a = (hs_act)a, .alpha = 0.2f};
        check_grad(&c);
    }
}

static void test_softmax_backward_matches_finite_differences(void **state) {
    (void)state;
    float x[2 * 4 * 3], out[24], R[24];
    fill_normal(x, 24, 21, 2.0f, 0.0f);
    fill_normal(R, 24, 22, 1.0f, 0.0f);
    for (int log = 0; log < 2; log++) {
        fd_ctx c = {.x = x, .out = out, .R = R, .n = 24, .outer = 2, .dim = 4, .inner = 3, .softmax = 1, .log = log};
        check_grad(&c);
        fd_ctx c1 = {.x = x, .out = out, .R = R, .n = 24, .outer = 1, .dim = 24, .inner = 1, .softmax = 1, .log = log};
        check_grad(&c1);
    }
}

// ---- accumulation, determinism ----

static void test_act_backward_adds_into_existing_gradient(void **state) {
    (void)state;
    float x[16], out[16], R[16], dx0[16], dx1[16];
    fill_normal(x, 16, 31, 1.0f, 0.05f);
    fill_normal(R, 16, 32, 1.0f, 0.0f);
    for (int a = HS_ACT_RELU; a <= HS_ACT_SILU; a++) {
        assert_int_equal(hs_act_forward(out, x, 16, (hs_act)a, 0.1f), HS_OK);
        memset(dx0, 0, sizeof dx0);
        assert_int_equal(hs_act_backward(dx0, R, x, out, 16, (hs_act)a, 0.1f), HS_OK);
        for (int i = 0; i < 16; i++)
            dx1[i] = 1.5f;
        assert_int_equal(hs_act_backward(dx1, R, x, out, 16, (hs_act)a, 0.1f), HS_OK);
        for (int i = 0; i < 16; i++)
            dx0[i] += 1.5f;
        hs_expect_close(dx1, dx0, 16, 1e-6, 1e-6);
    }
    for (int log = 0; log < 2; log++) {
        assert_int_equal(hs_softmax_forward(out, x, 2, 4, 2, log), HS_OK);
        memset(dx0, 0, sizeof dx0);
        assert_int_equal(hs_softmax_backward(dx0, R, out, 2, 4, 2, log), HS_OK);
        for (int i = 0; i < 16; i++)
            dx1[i] = -2.0f;
        assert_int_equal(hs_softmax_backward(dx1, R, out, 2, 4, 2, log), HS_OK);
        for (int i = 0; i < 16; i++)
            dx0[i] += -2.0f;
        hs_expect_close(dx1, dx0, 16, 1e-6, 1e-6);
    }
}

static void test_act_and_softmax_are_bit_identical_for_any_thread_count(void **state) {
    (void)state;
    const int64_t n = 3 * 70 * 1000;   // several parallel chunks; softmax (3, 70, 1000)
    float *x = malloc((size_t)n * sizeof *x), *R = malloc((size_t)n * sizeof *R);
    float *out[2], *dx[2];
    fill_normal(x, n, 41, 2.0f, 0.0f);
    fill_normal(R, n, 42, 1.0f, 0.0f);
    int saved = hs_get_num_threads();
    for (int a = HS_ACT_RELU; a <= HS_ACT_SILU + 2; a++) {
        for (int run = 0; run < 2; run++) {
            assert_int_equal(hs_set_num_threads(run == 0 ? 1 : 4), HS_OK);
            out[run] = malloc((size_t)n * sizeof(float));
            dx[run] = calloc((size_t)n, sizeof(float));
            if (a <= HS_ACT_SILU) {
                assert_int_equal(hs_act_forward(out[run], x, n, (hs_act)a, 0.01f), HS_OK);
                assert_int_equal(hs_act_backward(dx[run], R, x, out[run], n, (hs_act)a, 0.01f), HS_OK);
            } else {
                int log = a - HS_ACT_SILU - 1;
                assert_int_equal(hs_softmax_forward(out[run], x, 3, 70, 1000, log), HS_OK);
                assert_int_equal(hs_softmax_backward(dx[run], R, out[run], 3, 70, 1000, log), HS_OK);
            }
        }
        assert_memory_equal(out[0], out[1], (size_t)n * sizeof(float));
        assert_memory_equal(dx[0], dx[1], (size_t)n * sizeof(float));
        for (int run = 0; run < 2; run++)
            free(out[run]), free(dx[run]);
    }
    assert_int_equal(hs_set_num_threads(saved), HS_OK);
    free(x), free(R);
}

static void test_softmax_blocked_inner_matches_row_by_row(void **state) {
    (void)state;
    // inner = 130 spans three blocks of 64; compare with the same rows taken one at a time
    enum { OUTER = 2, DIM = 5, INNER = 130, NE = OUTER * DIM * INNER };
    float *x = malloc(NE * sizeof *x), *out = malloc(NE * sizeof *out), *ref = malloc(NE * sizeof *ref);
    float row[DIM], rout[DIM];
    fill_normal(x, NE, 51, 3.0f, 0.0f);
    for (int log = 0; log < 2; log++) {
        assert_int_equal(hs_softmax_forward(out, x, OUTER, DIM, INNER, log), HS_OK);
        for (int o = 0; o < OUTER; o++)
            for (int i = 0; i < INNER; i++) {
                for (int d = 0; d < DIM; d++)
                    row[d] = x[(o * DIM + d) * INNER + i];
                assert_int_equal(hs_softmax_forward(rout, row, 1, DIM, 1, log), HS_OK);
                for (int d = 0; d < DIM; d++)
                    ref[(o * DIM + d) * INNER + i] = rout[d];
            }
        assert_memory_equal(out, ref, NE * sizeof(float));
    }
    free(x), free(out), free(ref);
}

// ---- errors ----

static void test_act_rejects_bad_arguments(void **state) {
    (void)state;
    float x[2] = {1, 2}, y[2];
    assert_int_equal(hs_act_forward(y, x, -1, HS_ACT_RELU, 0), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "negative"));
    assert_int_equal(hs_act_forward(y, x, 2, (hs_act)17, 0), HS_ERR_ARG);
    assert_int_equal(hs_act_forward(NULL, x, 2, HS_ACT_TANH, 0), HS_ERR_ARG);
    assert_int_equal(hs_act_forward(y, x, 2, HS_ACT_LEAKY_RELU, NAN), HS_ERR_ARG);
    assert_int_equal(hs_act_forward(NULL, NULL, 0, HS_ACT_RELU, 0), HS_OK);   // empty is fine
    assert_int_equal(hs_act_backward(y, x, NULL, x, 2, HS_ACT_GELU, 0), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "'x'"));
    assert_int_equal(hs_act_backward(y, x, x, NULL, 2, HS_ACT_SIGMOID, 0), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "'out'"));
    assert_int_equal(hs_act_backward(y, x, NULL, x, 2, HS_ACT_TANH, 0), HS_OK);   // tanh uses out only
    assert_int_equal(hs_softmax_forward(y, x, 1, 0, 2, 0), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "dim 0"));
    assert_int_equal(hs_softmax_forward(y, x, -1, 2, 1, 0), HS_ERR_ARG);
    assert_int_equal(hs_softmax_backward(y, x, x, 1, 2, -3, 1), HS_ERR_ARG);
    assert_int_equal(hs_softmax_backward(y, NULL, x, 1, 2, 1, 1), HS_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_act_forward_matches_hand_computed_values),
        cmocka_unit_test(test_act_names_round_trip),
        cmocka_unit_test(test_softmax_of_small_rows_matches_hand_computed_values),
        cmocka_unit_test(test_softmax_subtracts_the_max_so_large_logits_do_not_overflow),
        cmocka_unit_test(test_act_forward_works_in_place),
        cmocka_unit_test(test_act_matches_pytorch_reference_cases),
        cmocka_unit_test(test_softmax_matches_pytorch_reference_cases),
        cmocka_unit_test(test_act_backward_matches_finite_differences),
        cmocka_unit_test(test_softmax_backward_matches_finite_differences),
        cmocka_unit_test(test_act_backward_adds_into_existing_gradient),
        cmocka_unit_test(test_act_and_softmax_are_bit_identical_for_any_thread_count),
        cmocka_unit_test(test_softmax_blocked_inner_matches_row_by_row),
        cmocka_unit_test(test_act_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
