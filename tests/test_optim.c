// tests/test_optim.c: SGD / Adam / AdamW steps and gradient clipping (core/optim.c): hand-computed
// steps, multi-step agreement with a double-precision transcription of torch.optim, the PyTorch
// optimizer trajectories of the reference cases (read through the shared hs_test_ref_* helpers),
// thread-count determinism and argument errors. Dimension letter: n parameters in the slab.
#include "hs_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "parallel.h"
#include "rng.h"
#include "safetensors.h"

// ---- helpers ----
static void fill_normal(float *x, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * hs_rng_normal(seed, 0, (uint64_t)i);
}

// ---- hand-computed steps ----

static void test_sgd_step_matches_hand_computed_updates(void **state) {
    (void)state;
    float w[2] = {1.0f, -2.0f}, buf[2] = {99.0f, 99.0f};
    const float g[2] = {0.5f, 1.0f};
    hs_sgd_params plain = {.lr = 0.1f};
    assert_int_equal(hs_sgd_step(w, g, NULL, 2, &plain, 1), HS_OK);   // momentum 0: buffer unused
    assert_float_equal(w[0], 0.95f, 1e-7f);
    assert_float_equal(w[1], -2.1f, 1e-7f);

    hs_sgd_params mom = {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.5f};
    w[0] = 1.0f;
    assert_int_equal(hs_sgd_step(w, g, buf, 2, &mom, 1), HS_OK);   // step 1: buf = g (no dampening)
    assert_float_equal(buf[0], 0.5f, 0);
    assert_float_equal(w[0], 0.95f, 1e-7f);
    assert_int_equal(hs_sgd_step(w, g, buf, 2, &mom, 2), HS_OK);   // buf = 0.9*0.5 + 0.5*0.5 = 0.7
    assert_float_equal(buf[0], 0.7f, 1e-7f);
    assert_float_equal(w[0], 0.88f, 1e-6f);

    hs_sgd_params nest = {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.1f, .nesterov = 1};
    w[0] = 1.0f;
    assert_int_equal(hs_sgd_step(w, g, buf, 1, &nest, 1), HS_OK);   // d = 0.6, buf = 0.6, step 0.6+0.54
    assert_float_equal(w[0], 1.0f - 0.1f * 1.14f, 1e-6f);
}

static void test_adam_first_step_moves_each_weight_by_lr(void **state) {
    (void)state;
    // step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) = lr * sign(g)
    float w[3] = {1.0f, 1.0f, 1.0f}, m[3] = {0}, v[3] = {0};
    const float g[3] = {0.3f, -4.0f, 1e-3f};
    hs_adam_params p = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    assert_int_equal(hs_adam_step(w, g, m, v, 3, &p, 1), HS_OK);
    const float want[3] = {0.99f, 1.01f, 0.99f};
    hs_expect_close(w, want, 3, 1e-6, 1e-6);
    // AdamW: w *= 1 - lr*wd before the same update
    float w2[1] = {2.0f}, m2[1] = {0}, v2[1] = {0};
    hs_adam_params pw = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.5f, .decoupled = 1};
    assert_int_equal(hs_adam_step(w2, g, m2, v2, 1, &pw, 1), HS_OK);
    assert_float_equal(w2[0], 2.0f * 0.95f - 0.1f, 1e-6f);
    // Adam (L2): the decay enters the gradient, so the first step is still lr * sign(g + wd*w)
    float w3[1] = {2.0f}, m3[1] = {0}, v3[1] = {0};
    const float gneg[1] = {-0.5f};
    hs_adam_params pl2 = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.5f};
    assert_int_equal(hs_adam_step(w3, gneg, m3, v3, 1, &pl2, 1), HS_OK);   // g + wd*w = 0.5 > 0
    assert_float_equal(w3[0], 1.9f, 1e-6f);
}

static void test_clip_grad_norm_scales_only_above_max(void **state) {
    (void)state;
    float g[2] = {3.0f, 4.0f}, total;
    assert_int_equal(hs_clip_grad_norm(g, 2, 10.0f, &total), HS_OK);
    assert_float_equal(total, 5.0f, 1e-6f);
    assert_float_equal(g[0], 3.0f, 0);   // untouched
    assert_int_equal(hs_clip_grad_norm(g, 2, 1.0f, &total), HS_OK);
    assert_float_equal(total, 5.0f, 1e-6f);
    assert_float_equal(g[0], 0.6f, 1e-6f);   // max / (total + 1e-6)
    assert_float_equal(g[1], 0.8f, 1e-6f);
    double nrm;
    assert_int_equal(hs_optim_grad_norm(&nrm, g, 2), HS_OK);
    assert_true(fabs(nrm - 1.0) < 1e-6);
    assert_int_equal(hs_clip_grad_norm(NULL, 0, 1.0f, &total), HS_OK);   // empty slab: norm 0
    assert_float_equal(total, 0.0f, 0);
}

// ---- multi-step agreement with a double transcription of torch.optim ----

static void ref_sgd(double *w, const double *g, double *buf, int n, const hs_sgd_params *p, int step) {
    for (int i = 0; i < n; i++) {
        double d = g[i] + (double)p->weight_decay * w[i];
        if (p->momentum != 0.0f) {
            buf[i] = step == 1 ? d : (double)p->momentum * buf[i] + (1.0 - (double)p->dampening) * d;
            d = p->nesterov ? d + (double)p->momentum * buf[i] : buf[i];
        }
        w[i] -= (double)p->lr * d;
    }
}

static void ref_adam(double *w, const double *g, double *m, double *v, int n, const hs_adam_params *p, int step) {
    double b1 = p->beta1, b2 = p->beta2, bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
    for (int i = 0; i < n; i++) {
        double d = g[i];
        if (p->decoupled)
            w[i] *= 1 - (double)p->lr * (double)p->weight_decay;
        else
            d += (double)p->weight_decay * w[i];
        m[i] = b1 * m[i] + (1 - b1) * d;
        v[i] = b2 * v[i] + (1 - b2) * d * d;
        w[i] -= (double)p->lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + (double)p->eps);
    }
}

enum { NP = 37, NSTEPS = 6 };

static void test_optimizers_follow_torch_semantics_over_several_steps(void **state) {
    (void)state;
    const hs_sgd_params sgds[] = {{.lr = 0.1f},
                                  {.lr = 0.05f, .momentum = 0.9f},
                                  {.lr = 0.05f, .momentum = 0.8f, .dampening = 0.3f, .weight_decay = 1e-2f},
                                  {.lr = 0.02f, .momentum = 0.95f, .weight_decay = 1e-3f, .nesterov = 1}};
    const hs_adam_params adams[] = {{.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
                                    {.lr = 3e-3f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f, .weight_decay = 0.1f},
                                    {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f,
                                     .decoupled = 1}};
    for (int k = 0; k < 7; k++) {
        float w[NP], g[NP], s1[NP] = {0}, s2[NP] = {0};
        double wd[NP], gd[NP], r1[NP] = {0}, r2[NP] = {0};
        fill_normal(w, NP, 91 + (uint64_t)k, 1.0f);
        for (int i = 0; i < NP; i++)
            wd[i] = w[i];
        for (int step = 1; step <= NSTEPS; step++) {
            fill_normal(g, NP, 1000 + (uint64_t)(k * 10 + step), 0.5f);
            for (int i = 0; i < NP; i++)
                gd[i] = g[i];
            if (k < 4) {
                assert_int_equal(hs_sgd_step(w, g, s1, NP, &sgds[k], step), HS_OK);
                ref_sgd(wd, gd, r1, NP, &sgds[k], step);
            } else {
                assert_int_equal(hs_adam_step(w, g, s1, s2, NP, &adams[k - 4], step), HS_OK);
                ref_adam(wd, gd, r1, r2, NP, &adams[k - 4], step);
            }
            float want[NP];
            for (int i = 0; i < NP; i++)
                want[i] = (float)wd[i];
            hs_expect_close(w, want, NP, 1e-6, 1e-5);
        }
    }
}

// ---- PyTorch reference trajectories: 5 steps on sum(w*R) + 0.5*sum(w*w), gradient R + w ----

static void test_optimizers_match_pytorch_reference_trajectories(void **state) {
    (void)state;
    const char *names[] = {"optim_sgd_momentum0.9_wd1e-4", "optim_sgd_nesterov", "optim_adam", "optim_adamw_wd0.01"};
    for (int k = 0; k < 4; k++) {
        hs_safetensors *st;
        if (hs_test_ref_load(&st, names[k]) != HS_OK)
            skip();
        int64_t n, nr, na;
        const float *w0 = hs_test_ref_f32(st, "w0", &n), *R = hs_test_ref_f32(st, "R", &nr);
        const float *after = hs_test_ref_f32(st, "w_after", &na);
        assert_int_equal(nr, n);
        int64_t steps = hs_test_ref_tensor(st, "w_after")->shape[0];
        assert_int_equal(na, steps * n);
        float *w = malloc((size_t)n * sizeof *w), *g = malloc((size_t)n * sizeof *g);
        float *s1 = calloc((size_t)n, sizeof *s1), *s2 = calloc((size_t)n, sizeof *s2);
        memcpy(w, w0, (size_t)n * sizeof *w);   // the steps update w in place
        int adam = strstr(names[k], "adam") != NULL;
        hs_sgd_params sp = {.lr = (float)hs_test_ref_param(st, "lr", 0, 0),
                            .momentum = (float)hs_test_ref_param(st, "momentum", 0, 0),
                            .dampening = (float)hs_test_ref_param(st, "dampening", 0, 0),
                            .weight_decay = (float)hs_test_ref_param(st, "weight_decay", 0, 0),
                            .nesterov = (int)hs_test_ref_param(st, "nesterov", 0, 0)};
        hs_adam_params ap = {.lr = (float)hs_test_ref_param(st, "lr", 0, 1e-3),
                             .beta1 = (float)hs_test_ref_param(st, "betas", 0, 0.9),
                             .beta2 = (float)hs_test_ref_param(st, "betas", 1, 0.999),
                             .eps = (float)hs_test_ref_param(st, "eps", 0, 1e-8),
                             .weight_decay = (float)hs_test_ref_param(st, "weight_decay", 0, 0),
                             .decoupled = strstr(names[k], "adamw") != NULL};
        assert_true(sp.lr > 0 || ap.lr > 0);
        for (int64_t s = 0; s < steps; s++) {
            for (int64_t i = 0; i < n; i++)
                g[i] = R[i] + w[i];
            if (adam)
                assert_int_equal(hs_adam_step(w, g, s1, s2, n, &ap, s + 1), HS_OK);
            else
                assert_int_equal(hs_sgd_step(w, g, s1, n, &sp, s + 1), HS_OK);
            hs_expect_close(w, after + s * n, (size_t)n, HS_TEST_GRAD_ATOL, HS_TEST_GRAD_RTOL);
        }
        free(w), free(g), free(s1), free(s2);
        hs_safetensors_free(st);
    }
}

// ---- determinism ----

static void test_optim_is_bit_identical_for_any_thread_count(void **state) {
    (void)state;
    const int64_t n = 300001;
    float *g = malloc((size_t)n * sizeof *g), *w[2], *s1[2], *s2[2], total[2];
    fill_normal(g, n, 95, 0.01f);
    int saved = hs_get_num_threads();
    for (int run = 0; run < 2; run++) {
        assert_int_equal(hs_set_num_threads(run == 0 ? 1 : 3), HS_OK);
        w[run] = malloc((size_t)n * sizeof(float));
        s1[run] = calloc((size_t)n, sizeof(float));
        s2[run] = calloc((size_t)n, sizeof(float));
        fill_normal(w[run], n, 96, 1.0f);
        float *gc = malloc((size_t)n * sizeof(float));
        memcpy(gc, g, (size_t)n * sizeof(float));
        assert_int_equal(hs_clip_grad_norm(gc, n, 1.0f, &total[run]), HS_OK);
        hs_sgd_params sp = {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 1e-4f, .nesterov = 1};
        hs_adam_params ap = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f, .decoupled = 1};
        for (int step = 1; step <= 3; step++) {
            assert_int_equal(hs_sgd_step(w[run], gc, s1[run], n, &sp, step), HS_OK);
            assert_int_equal(hs_adam_step(w[run], gc, s1[run], s2[run], n, &ap, step), HS_OK);
        }
        free(gc);
    }
    assert_int_equal(hs_set_num_threads(saved), HS_OK);
    assert_memory_equal(&total[0], &total[1], sizeof(float));
    assert_memory_equal(w[0], w[1], (size_t)n * sizeof(float));
    assert_memory_equal(s2[0], s2[1], (size_t)n * sizeof(float));
    for (int run = 0; run < 2; run++)
        free(w[run]), free(s1[run]), free(s2[run]);
    free(g);
}

// ---- errors ----

static void test_optim_rejects_bad_arguments(void **state) {
    (void)state;
    float w[2] = {0}, g[2] = {0}, b[2] = {0}, v[2] = {0};
    hs_sgd_params sp = {.lr = 0.1f, .momentum = 0.9f};
    assert_int_equal(hs_sgd_step(w, g, b, -1, &sp, 1), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "negative"));
    assert_int_equal(hs_sgd_step(w, g, b, 2, &sp, 0), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "1-based"));
    assert_int_equal(hs_sgd_step(w, g, NULL, 2, &sp, 1), HS_ERR_ARG);   // momentum needs its buffer
    assert_int_equal(hs_sgd_step(w, g, b, 2, NULL, 1), HS_ERR_ARG);
    hs_sgd_params bad = {.lr = -0.1f};
    assert_int_equal(hs_sgd_step(w, g, b, 2, &bad, 1), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "learning rate"));
    hs_sgd_params nest = {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .nesterov = 1};
    assert_int_equal(hs_sgd_step(w, g, b, 2, &nest, 1), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "Nesterov"));
    hs_adam_params ap = {.lr = 1e-3f, .beta1 = 1.0f, .beta2 = 0.999f, .eps = 1e-8f};
    assert_int_equal(hs_adam_step(w, g, b, v, 2, &ap, 1), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "beta"));
    ap.beta1 = 0.9f;
    ap.eps = -1.0f;
    assert_int_equal(hs_adam_step(w, g, b, v, 2, &ap, 1), HS_ERR_ARG);
    ap.eps = 1e-8f;
    assert_int_equal(hs_adam_step(w, g, b, NULL, 2, &ap, 1), HS_ERR_ARG);
    assert_int_equal(hs_adam_step(w, g, b, v, 2, &ap, -3), HS_ERR_ARG);
    assert_int_equal(hs_adam_step(w, g, b, v, 2, &ap, 1), HS_OK);
    float total;
    assert_int_equal(hs_clip_grad_norm(g, 2, -1.0f, &total), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "max_norm"));
    assert_int_equal(hs_clip_grad_norm(g, -2, 1.0f, &total), HS_ERR_ARG);
    assert_int_equal(hs_optim_grad_norm(NULL, g, 2), HS_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_step_matches_hand_computed_updates),
        cmocka_unit_test(test_adam_first_step_moves_each_weight_by_lr),
        cmocka_unit_test(test_clip_grad_norm_scales_only_above_max),
        cmocka_unit_test(test_optimizers_follow_torch_semantics_over_several_steps),
        cmocka_unit_test(test_optimizers_match_pytorch_reference_trajectories),
        cmocka_unit_test(test_optim_is_bit_identical_for_any_thread_count),
        cmocka_unit_test(test_optim_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
