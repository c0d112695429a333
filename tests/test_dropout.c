// tests/test_dropout.c: inverted dropout: the mask comes from the counter RNG (same seed and
// stream -> same mask, whatever the thread count), keeps about 1-p of the elements, scales by
// 1/(1-p), p = 0 and p = 1 edge cases, backward (+=, finite differences) and argument errors.
#include "hs_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dropout.h"
#include "parallel.h"
#include "rng.h"

static float *randn(int64_t n, uint64_t stream) {
    float *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        a[i] = hs_rng_normal(9, stream, (uint64_t)i);
    return a;
}

static void test_dropout_keeps_about_one_minus_p_and_scales_kept_values(void **state) {
    (void)state;
    int64_t n = 200000;
    float p = 0.3f;
    float *x = randn(n, 1), *out = malloc((size_t)n * 4);
    uint8_t *mask = malloc((size_t)n);
    assert_int_equal(hs_dropout_forward(out, mask, x, n, p, 1234, 7), HS_OK);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(mask[i] == 0 || mask[i] == 1);
        kept += mask[i];
        float want = mask[i] ? x[i] * (1.0f / (1.0f - p)) : 0.0f;
        assert_true(out[i] == want);
    }
    double frac = (double)kept / (double)n, sd = sqrt(0.3 * 0.7 / (double)n);
    assert_true(fabs(frac - 0.7) < 5 * sd);
    free(x), free(out), free(mask);
}

static void test_dropout_mask_depends_only_on_seed_stream_and_index(void **state) {
    (void)state;
    int saved = hs_get_num_threads();
    int64_t n = 100003;
    float *x = randn(n, 2), *o[3];
    uint8_t *m[3];
    for (int k = 0; k < 3; k++) {
        o[k] = malloc((size_t)n * 4), m[k] = malloc((size_t)n);
        hs_set_num_threads(k == 1 ? 2 : 1);
        assert_int_equal(hs_dropout_forward(o[k], m[k], x, n, 0.5f, 99, k == 2 ? 2 : 1), HS_OK);
    }
    assert_memory_equal(m[0], m[1], (size_t)n);   // one vs two threads
    assert_memory_equal(o[0], o[1], (size_t)n * 4);
    assert_true(memcmp(m[0], m[2], (size_t)n) != 0);   // another stream: another mask
    // the mask of a prefix is the prefix of the mask
    uint8_t *pm = malloc(1000);
    float *po = malloc(1000 * 4);
    assert_int_equal(hs_dropout_forward(po, pm, x, 1000, 0.5f, 99, 1), HS_OK);
    assert_memory_equal(pm, m[0], 1000);
    for (int k = 0; k < 3; k++)
        free(o[k]), free(m[k]);
    free(x), free(pm), free(po);
    hs_set_num_threads(saved);
}

static void test_dropout_p0_is_identity_and_p1_drops_everything(void **state) {
    (void)state;
    int64_t n = 1000;
    float *x = randn(n, 3), *out = malloc((size_t)n * 4);
    uint8_t *mask = malloc((size_t)n);
    assert_int_equal(hs_dropout_forward(out, mask, x, n, 0.0f, 1, 1), HS_OK);
    assert_memory_equal(out, x, (size_t)n * 4);
    assert_int_equal(hs_dropout_forward(out, NULL, x, n, 1.0f, 1, 1), HS_OK);   // mask optional
    for (int64_t i = 0; i < n; i++)
        assert_true(out[i] == 0.0f);
    free(x), free(out), free(mask);
}

typedef struct {
    int64_t n;
    float *x, *R, *out;
} fd_ctx;

static double fd_loss(void *v) {
    fd_ctx *c = v;
    assert_int_equal(hs_dropout_forward(c->out, NULL, c->x, c->n, 0.4f, 5, 6), HS_OK);
    double s = 0;
    for (int64_t i = 0; i < c->n; i++)
        s += (double)c->out[i] * (double)c->R[i];
    return s;
}

static void test_dropout_backward_accumulates_and_matches_finite_differences(void **state) {
    (void)state;
    fd_ctx c = {64, randn(64, 4), randn(64, 5), malloc(64 * 4)};
    uint8_t mask[64];
    assert_int_equal(hs_dropout_forward(c.out, mask, c.x, c.n, 0.4f, 5, 6), HS_OK);
    float dx[64], num[64];
    for (int i = 0; i < 64; i++)
        dx[i] = 1.0f;
    assert_int_equal(hs_dropout_backward(dx, c.R, mask, c.n, 0.4f), HS_OK);
    for (int i = 0; i < 64; i++) {
        num[i] = (float)hs_numeric_grad(fd_loss, &c, c.x, (size_t)i, 1e-3f);
        dx[i] -= 1.0f;   // remove the starting value: backward must have added
    }
    hs_expect_close(dx, num, 64, 1e-3, 1e-3);
    free(c.x), free(c.R), free(c.out);
}

static void test_dropout_rejects_bad_p_and_null_buffers(void **state) {
    (void)state;
    float buf[4] = {0};
    uint8_t m[4] = {0};
    assert_int_equal(hs_dropout_forward(buf, m, buf, 4, 1.5f, 0, 0), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "1.5"));
    assert_int_equal(hs_dropout_forward(buf, m, buf, 4, NAN, 0, 0), HS_ERR_ARG);
    assert_int_equal(hs_dropout_forward(NULL, m, buf, 4, 0.5f, 0, 0), HS_ERR_ARG);
    assert_int_equal(hs_dropout_backward(buf, buf, NULL, 4, 0.5f), HS_ERR_ARG);
    assert_int_equal(hs_dropout_forward(buf, m, buf, -1, 0.5f, 0, 0), HS_ERR_ARG);
    assert_int_equal(hs_dropout_forward(NULL, NULL, NULL, 0, 0.5f, 0, 0), HS_OK);   // empty is fine
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_keeps_about_one_minus_p_and_scales_kept_values),
        cmocka_unit_test(test_dropout_mask_depends_only_on_seed_stream_and_index),
        cmocka_unit_test(test_dropout_p0_is_identity_and_p1_drops_everything),
        cmocka_unit_test(test_dropout_backward_accumulates_and_matches_finite_differences),
        cmocka_unit_test(test_dropout_rejects_bad_p_and_null_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
