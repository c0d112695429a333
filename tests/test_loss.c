// tests/test_loss.c: losses (core/loss.c): hand-computed values, PyTorch reference cases (read
// through the shared hs_test_ref_* helpers) and a torch-computed weighted + label-smoothed
// spatial cross-entropy, finite-difference gradients, += backward, thread-count determinism and
// argument errors. Dimension letters: N batch, C classes,
// S positions per sample, n elements.
#include "hs_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss.h"
#include "parallel.h"
#include "rng.h"
#include "safetensors.h"

// ---- helpers ----
static void fill_normal(float *x, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * hs_rng_normal(seed, 0, (uint64_t)i);
}

static void fill_binary(float *t, int64_t n, uint64_t seed, float p_one) {
    for (int64_t i = 0; i < n; i++)
        t[i] = hs_rng_uniform(seed, 1, (uint64_t)i) < p_one ? 1.0f : 0.0f;
}

// ---- hand-computed values ----

static void test_losses_match_hand_computed_values(void **state) {
    (void)state;
    float loss, prob[4];
    const float z[4] = {0.0f, 0.0f, 1.0f, 3.0f};   // (N=2, C=2, S=1)
    const int64_t y[2] = {0, 1};
    // -log(1/2) and -log(e^3/(e+e^3)) = log(1+e^-2)
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, y, NULL, 2, 2, 1, 0.0f), HS_OK);
    assert_float_equal(loss, (0.69314718f + 0.12692801f) / 2, 1e-6f);
    const float wantp[4] = {0.5f, 0.5f, 0.11920292f, 0.88079708f};
    hs_expect_close(prob, wantp, 4, 1e-7, 1e-6);
    const float cw[2] = {3.0f, 1.0f};   // weighted mean: (3*0.6931 + 1*0.1269) / 4
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, y, cw, 2, 2, 1, 0.0f), HS_OK);
    assert_float_equal(loss, (3 * 0.69314718f + 0.12692801f) / 4, 1e-6f);

    const float x[3] = {1.0f, 2.0f, -1.0f}, t3[3] = {0.0f, 0.5f, 1.0f};
    assert_int_equal(hs_mse_forward(&loss, x, t3, 3), HS_OK);
    assert_float_equal(loss, (1.0f + 2.25f + 4.0f) / 3, 1e-6f);

    const float zero[2] = {0.0f, 0.0f}, t2[2] = {1.0f, 0.0f};
    assert_int_equal(hs_bce_logits_forward(&loss, zero, t2, 2, 1.0f), HS_OK);
    assert_float_equal(loss, 0.69314718f, 1e-6f);
    assert_int_equal(hs_bce_logits_forward(&loss, zero, t2, 2, 2.0f), HS_OK);   // (2 log2 + log2) / 2
    assert_float_equal(loss, 1.5f * 0.69314718f, 1e-6f);
    const float big[2] = {100.0f, -100.0f};   // stable form: no inf/NaN for large |x|
    assert_int_equal(hs_bce_logits_forward(&loss, big, t2, 2, 1.0f), HS_OK);
    assert_float_equal(loss, 0.0f, 1e-6f);
    const float wrong[2] = {-100.0f, 100.0f};
    assert_int_equal(hs_bce_logits_forward(&loss, wrong, t2, 2, 1.0f), HS_OK);
    assert_float_equal(loss, 100.0f, 1e-4f);

    // p = 0.5 everywhere: 1 - (2*0.5 + 1) / (1 + 1 + 1) = 1/3
    assert_int_equal(hs_dice_logits_forward(&loss, zero, t2, 2, 1.0f), HS_OK);
    assert_float_equal(loss, 1.0f / 3, 1e-6f);
}

// PyTorch 1.13 (float64): F.cross_entropy(z (2,3,2), t, weight=w, label_smoothing=0.2) and the
// same unweighted: the weighted smoothing term is normalised by the target weights, as torch does.
static void test_cross_entropy_spatial_weighted_smoothed_matches_pytorch(void **state) {
    (void)state;
    const float z[12] = {0.5f, -1.0f, 2.0f, 0.3f, -0.7f, 1.1f, 1.5f, 0.2f, -0.4f, -2.0f, 0.9f, 0.8f};
    const int64_t t[4] = {2, 0, 1, 2};
    const float w[3] = {0.5f, 2.0f, 1.5f};
    const float want_dw[12] = {0.040052492f,  -0.069344348f, 0.182422146f,  0.010408691f,
                               -0.222474638f, 0.058935657f,  0.193773288f,  0.084861236f,
                               -0.285262636f, -0.014167997f, 0.091489348f,  -0.070693239f};
    const float want_du[12] = {0.026564363f,  -0.197189385f, 0.177081367f,  0.054801259f,
                               -0.203645731f, 0.142388126f,  0.130532407f,  0.068572560f,
                               -0.194650304f, -0.007221891f, 0.064117898f,  -0.061350669f};
    float loss, prob[12], dz[12];
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, t, w, 2, 3, 2, 0.2f), HS_OK);
    assert_float_equal(loss, 1.9428225034f, 2e-6f);
    memset(dz, 0, sizeof dz);
    assert_int_equal(hs_cross_entropy_backward(dz, 1.0f, prob, t, w, 2, 3, 2, 0.2f), HS_OK);
    hs_expect_close(dz, want_dw, 12, 1e-6, 1e-5);
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, t, NULL, 2, 3, 2, 0.2f), HS_OK);
    assert_float_equal(loss, 1.9848638540f, 2e-6f);
    memset(dz, 0, sizeof dz);
    assert_int_equal(hs_cross_entropy_backward(dz, 1.0f, prob, t, NULL, 2, 3, 2, 0.2f), HS_OK);
    hs_expect_close(dz, want_du, 12, 1e-6, 1e-5);
}

// ---- PyTorch reference cases (loss.backward() with upstream gradient 1) ----

static void test_cross_entropy_matches_pytorch_reference_cases(void **state) {
    (void)state;
    const struct {
        const char *name;
        float smoothing;
        int weighted;
    } cases[] = {{"cross_entropy_mean", 0.0f, 0},
                 {"cross_entropy_weighted", 0.0f, 1},
                 {"cross_entropy_label_smoothing_0.1", 0.1f, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        hs_safetensors *st;
        if (hs_test_ref_load(&st, cases[k].name) != HS_OK)
            skip();
        int64_t n, nt, one;
        const hs_tensor *zt = hs_test_ref_tensor(st, "logits");
        const float *z = hs_test_ref_f32(st, "logits", &n);
        assert_true(zt->ndim >= 2);
        int64_t N = zt->shape[0], C = zt->shape[1], S = n / (N * C);
        const int64_t *t = hs_test_ref_i64(st, "target", &nt);
        assert_int_equal(nt, N * S);
        const float *want = hs_test_ref_f32(st, "out", &one), *dwant = hs_test_ref_f32(st, "dlogits", &one);
        const float *w = cases[k].weighted ? hs_test_ref_f32(st, "class_weight", &one) : NULL;
        float loss, *prob = malloc((size_t)n * sizeof *prob), *dz = calloc((size_t)n, sizeof *dz);
        assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, t, w, N, C, S, cases[k].smoothing), HS_OK);
        hs_expect_close(&loss, want, 1, HS_TEST_FWD_ATOL, HS_TEST_FWD_RTOL);
        assert_int_equal(hs_cross_entropy_backward(dz, 1.0f, prob, t, w, N, C, S, cases[k].smoothing), HS_OK);
        hs_expect_close(dz, dwant, (size_t)n, HS_TEST_GRAD_ATOL, HS_TEST_GRAD_RTOL);
        free(prob), free(dz);
        hs_safetensors_free(st);
    }
}

static void test_elementwise_losses_match_pytorch_reference_cases(void **state) {
    (void)state;
    const struct {
        const char *name, *x, *dx;
        int kind;   // 0 mse, 1 bce, 2 dice
        float param;
    } cases[] = {{"mse_mean", "x", "dx", 0, 0.0f},
                 {"bce_with_logits_mean", "logits", "dlogits", 1, 1.0f},
                 {"bce_with_logits_pos_weight_2", "logits", "dlogits", 1, 2.0f},
                 {"dice_loss_soft", "logits", "dlogits", 2, 1.0f}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        hs_safetensors *st;
        if (hs_test_ref_load(&st, cases[k].name) != HS_OK)
            skip();
        int64_t n, m;
        const float *x = hs_test_ref_f32(st, cases[k].x, &n), *t = hs_test_ref_f32(st, "target", &m);
        assert_int_equal(m, n);
        const float *want = hs_test_ref_f32(st, "out", &m), *dwant = hs_test_ref_f32(st, cases[k].dx, &m);
        float loss, *dx = calloc((size_t)n, sizeof *dx);
        float p = cases[k].param;
        switch (cases[k].kind) {
        case 0:
            assert_int_equal(hs_mse_forward(&loss, x, t, n), HS_OK);
            assert_int_equal(hs_mse_backward(dx, 1.0f, x, t, n), HS_OK);
            break;
        case 1:
            assert_int_equal(hs_bce_logits_forward(&loss, x, t, n, p), HS_OK);
            assert_int_equal(hs_bce_logits_backward(dx, 1.0f, x, t, n, p), HS_OK);
            break;
        default:
            assert_int_equal(hs_dice_logits_forward(&loss, x, t, n, p), HS_OK);
            assert_int_equal(hs_dice_logits_backward(dx, 1.0f, x, t, n, p), HS_OK);
            break;
        }
        hs_expect_close(&loss, want, 1, HS_TEST_FWD_ATOL, HS_TEST_FWD_RTOL);
        hs_expect_close(dx, dwant, (size_t)n, HS_TEST_GRAD_ATOL, HS_TEST_GRAD_RTOL);
        free(dx);
        hs_safetensors_free(st);
    }
}

// ---- finite differences (the loss is a scalar, so dloss plays the role of R) ----

typedef struct {
    int kind;   // 0 ce, 1 mse, 2 bce, 3 dice
    float *x, *prob;
    const float *t, *w;
    const int64_t *y;
    int64_t N, C, S, n;
    float param;
} fd_ctx;

static double fd_loss(void *vctx) {
    fd_ctx *c = vctx;
    float loss = 0;
    switch (c->kind) {
    case 0:
        assert_int_equal(hs_cross_entropy_forward(&loss, c->prob, c->x, c->y, c->w, c->N, c->C, c->S, c->param), HS_OK);
        break;
    case 1:
        assert_int_equal(hs_mse_forward(&loss, c->x, c->t, c->n), HS_OK);
        break;
    case 2:
        assert_int_equal(hs_bce_logits_forward(&loss, c->x, c->t, c->n, c->param), HS_OK);
        break;
    default:
        assert_int_equal(hs_dice_logits_forward(&loss, c->x, c->t, c->n, c->param), HS_OK);
        break;
    }
    return loss;
}

static void backward(fd_ctx *c, float *dx, float dloss) {
    switch (c->kind) {
    case 0:
        assert_int_equal(hs_cross_entropy_backward(dx, dloss, c->prob, c->y, c->w, c->N, c->C, c->S, c->param), HS_OK);
        break;
    case 1:
        assert_int_equal(hs_mse_backward(dx, dloss, c->x, c->t, c->n), HS_OK);
        break;
    case 2:
        assert_int_equal(hs_bce_logits_backward(dx, dloss, c->x, c->t, c->n, c->param), HS_OK);
        break;
    default:
        assert_int_equal(hs_dice_logits_backward(dx, dloss, c->x, c->t, c->n, c->param), HS_OK);
        break;
    }
}

static void check_grad(fd_ctx *c) {
    float dx[64], num[64];
    const float dloss = 0.7f;
    assert_true(c->n <= 64);
    fd_loss(c);
    memset(dx, 0, sizeof dx);
    backward(c, dx, dloss);
    for (int64_t i = 0; i < c->n; i++)
        num[i] = (float)((double)dloss * hs_numeric_grad(fd_loss, c, c->x, (size_t)i, 1e-2f));
    // the losses are means (values ~1, float32): eps 1e-2 keeps rounding noise below 1e-5
    hs_expect_close(dx, num, (size_t)c->n, 2e-4, 2e-3);
}

static void test_loss_backward_matches_finite_differences(void **state) {
    (void)state;
    float x[36], prob[36], t[36];
    const float w[3] = {0.5f, 2.0f, 1.25f};
    const int64_t y[12] = {0, 2, 1, 1, 0, 2, 2, 2, 0, 1, 1, 0};   // (N=3, S=4)
    fill_normal(x, 36, 61, 1.5f);
    for (int kind = 0; kind < 4; kind++) {
        const float *ws[2] = {NULL, w};
        for (int variant = 0; variant < 4; variant++) {
            fd_ctx c = {.kind = kind, .x = x, .prob = prob, .t = t, .y = y, .N = 3, .C = 3, .S = 4, .n = 36};
            if (kind == 0) {
                c.w = ws[variant & 1];
                c.param = variant & 2 ? 0.15f : 0.0f;
            } else if (kind == 1) {
                fill_normal(t, 36, 62, 1.0f);
            } else {
                fill_binary(t, 36, 63 + (uint64_t)variant, 0.4f);
                c.param = kind == 2 ? (variant & 1 ? 2.5f : 1.0f) : (variant & 1 ? 1.0f : 0.0f);
            }
            check_grad(&c);
        }
    }
}

// ---- accumulation and determinism ----

static void test_loss_backward_adds_into_existing_gradient(void **state) {
    (void)state;
    float x[24], prob[24], t[24], dx0[24], dx1[24];
    const int64_t y[8] = {1, 0, 2, 2, 0, 1, 1, 2};   // (N=2, C=3, S=4)
    fill_normal(x, 24, 71, 1.0f);
    fill_binary(t, 24, 72, 0.5f);
    for (int kind = 0; kind < 4; kind++) {
        fd_ctx c = {.kind = kind, .x = x, .prob = prob, .t = t, .y = y, .N = 2, .C = 3, .S = 4, .n = 24,
                    .param = kind == 0 ? 0.1f : 1.0f};
        fd_loss(&c);
        memset(dx0, 0, sizeof dx0);
        backward(&c, dx0, 1.0f);
        for (int i = 0; i < 24; i++)
            dx1[i] = 0.25f * (float)i;
        backward(&c, dx1, 1.0f);
        for (int i = 0; i < 24; i++)
            dx0[i] += 0.25f * (float)i;
        hs_expect_close(dx1, dx0, 24, 1e-6, 1e-6);
    }
}

static void test_losses_are_bit_identical_for_any_thread_count(void **state) {
    (void)state;
    const int64_t N = 2, C = 4, S = 40000, n = N * C * S;   // many chunks of every reduction
    float *x = malloc((size_t)n * sizeof *x), *t = malloc((size_t)n * sizeof *t);
    int64_t *y = malloc((size_t)(N * S) * sizeof *y);
    const float w[4] = {1.0f, 0.3f, 2.0f, 0.9f};
    fill_normal(x, n, 81, 2.0f);
    fill_binary(t, n, 82, 0.3f);
    for (int64_t i = 0; i < N * S; i++)
        y[i] = (int64_t)(hs_rng_u64(83, 0, (uint64_t)i) % (uint64_t)C);
    float *prob[2], *dx[2], loss[2][4];
    int saved = hs_get_num_threads();
    for (int run = 0; run < 2; run++) {
        assert_int_equal(hs_set_num_threads(run == 0 ? 1 : 3), HS_OK);
        prob[run] = malloc((size_t)n * sizeof(float));
        dx[run] = calloc((size_t)n, sizeof(float));
        assert_int_equal(hs_cross_entropy_forward(&loss[run][0], prob[run], x, y, w, N, C, S, 0.1f), HS_OK);
        assert_int_equal(hs_cross_entropy_backward(dx[run], 1.0f, prob[run], y, w, N, C, S, 0.1f), HS_OK);
        assert_int_equal(hs_mse_forward(&loss[run][1], x, t, n), HS_OK);
        assert_int_equal(hs_mse_backward(dx[run], 1.0f, x, t, n), HS_OK);
        assert_int_equal(hs_bce_logits_forward(&loss[run][2], x, t, n, 3.0f), HS_OK);
        assert_int_equal(hs_bce_logits_backward(dx[run], 1.0f, x, t, n, 3.0f), HS_OK);
        assert_int_equal(hs_dice_logits_forward(&loss[run][3], x, t, n, 1.0f), HS_OK);
        assert_int_equal(hs_dice_logits_backward(dx[run], 1.0f, x, t, n, 1.0f), HS_OK);
    }
    assert_int_equal(hs_set_num_threads(saved), HS_OK);
    assert_memory_equal(loss[0], loss[1], sizeof loss[0]);
    assert_memory_equal(prob[0], prob[1], (size_t)n * sizeof(float));
    assert_memory_equal(dx[0], dx[1], (size_t)n * sizeof(float));
    // and agrees with a plain double loop (sanity of the chunked reduction)
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += ((double)x[i] - (double)t[i]) * ((double)x[i] - (double)t[i]);
    assert_float_equal(loss[0][1], (float)(s / (double)n), 1e-6f * (float)(s / (double)n));
    for (int run = 0; run < 2; run++)
        free(prob[run]), free(dx[run]);
    free(x), free(t), free(y);
}

// ---- errors ----

static void test_losses_reject_bad_arguments(void **state) {
    (void)state;
    float loss, prob[6], z[6] = {0}, d[6] = {0};
    int64_t y[3] = {0, 1, 2};
    const float zw[2] = {0.0f, 0.0f};
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, y, NULL, 3, 0, 1, 0.0f), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "(3,0,1)"));
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, y, NULL, -1, 2, 1, 0.0f), HS_ERR_ARG);
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, y, NULL, 3, 2, 1, 0.0f), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "target[2] = 2"));
    assert_non_null(strstr(hs_last_error()->msg, "[0, 2)"));
    y[2] = -1;
    assert_int_equal(hs_cross_entropy_backward(d, 1.0f, prob, y, NULL, 1, 2, 3, 0.0f), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "target[2] (sample 0, position 2) = -1"));
    y[2] = 1;
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, y, NULL, 3, 2, 1, 1.5f), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "label_smoothing"));
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, y, zw, 3, 2, 1, 0.0f), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "sum to 0"));
    assert_int_equal(hs_cross_entropy_forward(&loss, NULL, z, y, NULL, 3, 2, 1, 0.0f), HS_ERR_ARG);
    assert_int_equal(hs_cross_entropy_forward(&loss, prob, z, y, NULL, 3, 2, 1, 0.0f), HS_OK);

    assert_int_equal(hs_mse_forward(&loss, z, d, 0), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "n = 0"));
    assert_int_equal(hs_mse_backward(d, 1.0f, z, d, -4), HS_ERR_ARG);
    assert_int_equal(hs_mse_forward(&loss, z, NULL, 6), HS_ERR_ARG);
    assert_int_equal(hs_bce_logits_forward(&loss, z, d, 6, -1.0f), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "pos_weight"));
    assert_int_equal(hs_bce_logits_backward(d, 1.0f, z, d, 6, NAN), HS_ERR_ARG);
    assert_int_equal(hs_dice_logits_forward(&loss, z, d, 6, -1.0f), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "smooth"));
    assert_int_equal(hs_dice_logits_backward(d, 1.0f, z, d, -1, 1.0f), HS_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_losses_match_hand_computed_values),
        cmocka_unit_test(test_cross_entropy_spatial_weighted_smoothed_matches_pytorch),
        cmocka_unit_test(test_cross_entropy_matches_pytorch_reference_cases),
        cmocka_unit_test(test_elementwise_losses_match_pytorch_reference_cases),
        cmocka_unit_test(test_loss_backward_matches_finite_differences),
        cmocka_unit_test(test_loss_backward_adds_into_existing_gradient),
        cmocka_unit_test(test_losses_are_bit_identical_for_any_thread_count),
        cmocka_unit_test(test_losses_reject_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
