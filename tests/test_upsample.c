// tests/test_upsample.c: nearest and bilinear integer upsampling against the definitions and the
// plain-loop reference, PyTorch's reference cases, finite differences, += semantics, thread
// independence and argument errors.
#include "hs_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "ref_reader.h"
#include "rng.h"
#include "upsample.h"

static int64_t prod4(const int64_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

static float *randn(int64_t n, uint64_t stream) {
    float *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        a[i] = hs_rng_normal(5, stream, (uint64_t)i);
    return a;
}

static const int scales[][2] = {{1, 1}, {2, 2}, {3, 3}, {3, 2}, {4, 1}, {5, 7}};
#define NSCALES (sizeof scales / sizeof scales[0])

static void test_upsample_nearest_copies_each_pixel_into_its_block(void **state) {
    (void)state;
    int64_t xs[4] = {2, 3, 5, 4};
    int64_t nx = prod4(xs);
    float *x = randn(nx, 1);
    for (size_t s = 0; s < NSCALES; s++) {
        int sh = scales[s][0], sw = scales[s][1];
        int64_t Ho = xs[2] * sh, Wo = xs[3] * sw, no = xs[0] * xs[1] * Ho * Wo;
        float *out = malloc((size_t)no * 4), *dx = randn(nx, 9), *want = randn(nx, 9), *dout = randn(no, 3);
        assert_int_equal(hs_upsample_nearest_forward(out, x, xs, sh, sw), HS_OK);
        for (int64_t i = 0; i < xs[0] * xs[1]; i++)
            for (int64_t oh = 0; oh < Ho; oh++)
                for (int64_t ow = 0; ow < Wo; ow++) {
                    float v = x[(i * xs[2] + oh / sh) * xs[3] + ow / sw];
                    assert_true(out[(i * Ho + oh) * Wo + ow] == v);
                    want[(i * xs[2] + oh / sh) * xs[3] + ow / sw] += dout[(i * Ho + oh) * Wo + ow];
                }
        assert_int_equal(hs_upsample_nearest_backward(dx, dout, xs, sh, sw), HS_OK);
        hs_expect_close(dx, want, (size_t)nx, 1e-5, 1e-5);
        free(out), free(dx), free(want), free(dout);
    }
    free(x);
}

static void test_upsample_bilinear_matches_reference_loops(void **state) {
    (void)state;
    int64_t xs[4] = {2, 3, 5, 4};
    int64_t nx = prod4(xs);
    float *x = randn(nx, 1);
    for (size_t s = 0; s < NSCALES; s++) {
        int sh = scales[s][0], sw = scales[s][1];
        int64_t no = xs[0] * xs[1] * xs[2] * sh * xs[3] * sw;
        float *out = malloc((size_t)no * 4), *ref = malloc((size_t)no * 4), *dout = randn(no, 3);
        float *dx = randn(nx, 9), *want = randn(nx, 9);
        assert_int_equal(hs_upsample_bilinear_forward(out, x, xs, sh, sw), HS_OK);
        assert_int_equal(hs_upsample_bilinear_forward_ref(ref, x, xs, sh, sw), HS_OK);
        hs_expect_close(out, ref, (size_t)no, 1e-5, 1e-5);
        assert_int_equal(hs_upsample_bilinear_backward(dx, dout, xs, sh, sw), HS_OK);
        assert_int_equal(hs_upsample_bilinear_backward_ref(want, dout, xs, sh, sw), HS_OK);
        hs_expect_close(dx, want, (size_t)nx, 1e-5, 1e-5);
        free(out), free(ref), free(dout), free(dx), free(want);
    }
    free(x);
}

static int ncase;

static void torch_case(const char *name, void *ctx) {
    int bilinear = *(int *)ctx;
    ref_file f;
    if (!ref_open(&f, name))
        fail_msg("cannot read %s", name);
    int64_t xs[8], os[8];
    int nd;
    float *x = ref_tensor(&f, "x", xs, &nd, NULL), *want = ref_tensor(&f, "out", os, &nd, NULL);
    float *dout = ref_tensor(&f, "dout", NULL, NULL, NULL), *wdx = ref_tensor(&f, "dx", NULL, NULL, NULL);
    assert_non_null(x), assert_non_null(want), assert_non_null(dout), assert_non_null(wdx);
    int s = (int)ref_param(&f, "scale", 2);
    assert_int_equal(os[2], xs[2] * s);
    int64_t nx = prod4(xs), no = prod4(os);
    float *out = malloc((size_t)no * 4), *dx = calloc((size_t)nx, 4);
    if (bilinear) {
        assert_int_equal(hs_upsample_bilinear_forward(out, x, xs, s, s), HS_OK);
        assert_int_equal(hs_upsample_bilinear_backward(dx, dout, xs, s, s), HS_OK);
    } else {
        assert_int_equal(hs_upsample_nearest_forward(out, x, xs, s, s), HS_OK);
        assert_int_equal(hs_upsample_nearest_backward(dx, dout, xs, s, s), HS_OK);
    }
    hs_expect_close(out, want, (size_t)no, 1e-5, 1e-4);
    hs_expect_close(dx, wdx, (size_t)nx, 1e-4, 1e-3);
    free(x), free(want), free(dout), free(wdx), free(out), free(dx);
    ref_close(&f);
    ncase++;
}

static void test_upsample_matches_pytorch_reference_cases(void **state) {
    (void)state;
    int nearest = 0, bilinear = 1;
    ncase = 0;
    int n = ref_each_case("upsample_nearest", torch_case, &nearest) + ref_each_case("upsample_bilinear", torch_case, &bilinear);
    if (n == 0)
        skip();
    assert_true(ncase >= 2);
}

typedef struct {
    int bilinear, sh, sw;
    int64_t xs[4], no;
    float *x, *R, *out;
} fd_ctx;

static double fd_loss(void *v) {
    fd_ctx *c = v;
    if (c->bilinear)
        assert_int_equal(hs_upsample_bilinear_forward(c->out, c->x, c->xs, c->sh, c->sw), HS_OK);
    else
        assert_int_equal(hs_upsample_nearest_forward(c->out, c->x, c->xs, c->sh, c->sw), HS_OK);
    double s = 0;
    for (int64_t i = 0; i < c->no; i++)
        s += (double)c->out[i] * (double)c->R[i];
    return s;
}

static void test_upsample_backward_matches_finite_differences(void **state) {
    (void)state;
    for (int bil = 0; bil < 2; bil++) {
        fd_ctx c = {bil, 3, 2, {2, 2, 3, 4}, 0, NULL, NULL, NULL};
        int64_t nx = prod4(c.xs);
        c.no = nx * c.sh * c.sw;
        c.x = randn(nx, 1), c.R = randn(c.no, 2), c.out = malloc((size_t)c.no * 4);
        float *dx = calloc((size_t)nx, 4), *dx2 = calloc((size_t)nx, 4), *num = malloc((size_t)nx * 4);
        for (int rep = 0; rep < 2; rep++) {
            float *d = rep ? dx2 : dx;
            if (bil)
                assert_int_equal(hs_upsample_bilinear_backward(d, c.R, c.xs, c.sh, c.sw), HS_OK);
            else
                assert_int_equal(hs_upsample_nearest_backward(d, c.R, c.xs, c.sh, c.sw), HS_OK);
        }
        assert_memory_equal(dx, dx2, (size_t)nx * 4);
        for (int64_t i = 0; i < nx; i++)
            num[i] = (float)hs_numeric_grad(fd_loss, &c, c.x, (size_t)i, 1e-3f);
        hs_expect_close(dx, num, (size_t)nx, 2e-3, 2e-3);
        free(dx), free(dx2), free(num), free(c.x), free(c.R), free(c.out);
    }
}

static void test_upsample_results_identical_for_one_and_two_threads(void **state) {
    (void)state;
    int saved = hs_get_num_threads();
    int64_t xs[4] = {4, 8, 17, 19}, nx = prod4(xs), no = nx * 4;
    float *x = randn(nx, 1), *dout = randn(no, 2), *o[2], *d[2];
    for (int t = 0; t < 2; t++) {
        hs_set_num_threads(t + 1);
        o[t] = malloc((size_t)no * 4), d[t] = calloc((size_t)nx, 4);
        assert_int_equal(hs_upsample_bilinear_forward(o[t], x, xs, 2, 2), HS_OK);
        assert_int_equal(hs_upsample_bilinear_backward(d[t], dout, xs, 2, 2), HS_OK);
        assert_int_equal(hs_upsample_nearest_backward(d[t], dout, xs, 2, 2), HS_OK);
    }
    assert_memory_equal(o[0], o[1], (size_t)no * 4);
    assert_memory_equal(d[0], d[1], (size_t)nx * 4);
    for (int t = 0; t < 2; t++)
        free(o[t]), free(d[t]);
    free(x), free(dout);
    hs_set_num_threads(saved);
}

static void test_upsample_rejects_bad_scale_and_shapes(void **state) {
    (void)state;
    float buf[4] = {0};
    int64_t xs[4] = {1, 1, 2, 2}, z[4] = {1, 1, 0, 2};
    assert_int_equal(hs_upsample_nearest_forward(buf, buf, xs, 0, 2), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "[1,1,2,2]"));
    assert_int_equal(hs_upsample_bilinear_forward(buf, buf, z, 2, 2), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "[1,1,0,2]"));
    assert_int_equal(hs_upsample_bilinear_backward(NULL, buf, xs, 2, 2), HS_ERR_ARG);
    assert_int_equal(hs_upsample_nearest_backward(buf, buf, xs, 1, -1), HS_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upsample_nearest_copies_each_pixel_into_its_block),
        cmocka_unit_test(test_upsample_bilinear_matches_reference_loops),
        cmocka_unit_test(test_upsample_matches_pytorch_reference_cases),
        cmocka_unit_test(test_upsample_backward_matches_finite_differences),
        cmocka_unit_test(test_upsample_results_identical_for_one_and_two_threads),
        cmocka_unit_test(test_upsample_rejects_bad_scale_and_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
