// tests/test_batchnorm.c: batch-norm kernels against the plain-loop references (with and without
// gamma/beta, BatchNorm1d shapes, a large mean offset), PyTorch's train/eval cases (running
// statistics included), finite differences, += semantics, thread independence and errors.
#include "hs_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "batchnorm.h"
#include "parallel.h"
#include "ref_reader.h"
#include "rng.h"

static int64_t prod4(const int64_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

static float *randn(int64_t n, uint64_t stream, float scale, float shift) {
    float *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        a[i] = shift + scale * hs_rng_normal(11, stream, (uint64_t)i);
    return a;
}

static float *copy_of(const float *a, int64_t n) {
    float *b = malloc((size_t)n * sizeof(float));
    memcpy(b, a, (size_t)n * sizeof(float));
    return b;
}

static void run_vs_ref(const int64_t xs[4], float shift, int affine, uint64_t seed) {
    int64_t n = prod4(xs), C = xs[1];
    float *x = randn(n, seed, 2.0f, shift), *gm = affine ? randn(C, seed + 1, 1.0f, 0) : NULL;
    float *bt = affine ? randn(C, seed + 2, 1.0f, 0) : NULL;
    float *rm = randn(C, seed + 3, 1.0f, 0), *rv = randn(C, seed + 4, 0.1f, 1.0f);
    float *rm2 = copy_of(rm, C), *rv2 = copy_of(rv, C);
    float *out = malloc((size_t)n * 4), *out2 = malloc((size_t)n * 4);
    float *sm = malloc((size_t)C * 4), *sr = malloc((size_t)C * 4), *sm2 = malloc((size_t)C * 4), *sr2 = malloc((size_t)C * 4);
    assert_int_equal(hs_batchnorm2d_forward_train(out, sm, sr, rm, rv, x, gm, bt, xs, 0.1f, 1e-5f), HS_OK);
    assert_int_equal(hs_batchnorm2d_forward_train_ref(out2, sm2, sr2, rm2, rv2, x, gm, bt, xs, 0.1f, 1e-5f), HS_OK);
    hs_expect_close(out, out2, (size_t)n, 1e-5, 1e-4);
    hs_expect_close(sm, sm2, (size_t)C, 1e-6, 1e-6);
    hs_expect_close(sr, sr2, (size_t)C, 1e-6, 1e-5);
    hs_expect_close(rm, rm2, (size_t)C, 1e-6, 1e-6);
    hs_expect_close(rv, rv2, (size_t)C, 1e-6, 1e-5);
    float *dout = randn(n, seed + 5, 1.0f, 0), *dx = randn(n, seed + 6, 1.0f, 0), *dg = randn(C, seed + 7, 1.0f, 0);
    float *db = randn(C, seed + 8, 1.0f, 0), *dx2 = copy_of(dx, n), *dg2 = copy_of(dg, C), *db2 = copy_of(db, C);
    assert_int_equal(hs_batchnorm2d_backward_train(dx, dg, db, dout, x, gm, sm, sr, xs), HS_OK);
    assert_int_equal(hs_batchnorm2d_backward_train_ref(dx2, dg2, db2, dout, x, gm, sm2, sr2, xs), HS_OK);
    hs_expect_close(dx, dx2, (size_t)n, 1e-4, 1e-3);
    hs_expect_close(dg, dg2, (size_t)C, 1e-4, 1e-3);
    hs_expect_close(db, db2, (size_t)C, 1e-4, 1e-3);
    free(x), free(gm), free(bt), free(rm), free(rv), free(rm2), free(rv2), free(out), free(out2);
    free(sm), free(sr), free(sm2), free(sr2), free(dout), free(dx), free(dg), free(db), free(dx2), free(dg2), free(db2);
}

static void test_batchnorm2d_train_matches_reference_loops(void **state) {
    (void)state;
    int64_t a[4] = {2, 4, 9, 9}, b[4] = {3, 5, 1, 1}, c[4] = {4, 3, 33, 17}, d[4] = {1, 2, 2, 3};
    run_vs_ref(a, 0.0f, 1, 1);
    run_vs_ref(b, 0.0f, 1, 2);     // BatchNorm1d on (N, C)
    run_vs_ref(c, 100.0f, 1, 3);   // large mean: statistics must not lose the variance
    run_vs_ref(d, 0.0f, 0, 4);     // affine = False
}

static void test_batchnorm2d_matches_pytorch_reference_cases(void **state) {
    (void)state;
    ref_file f;
    if (!ref_open(&f, "batchnorm2d_train"))
        skip();
    int64_t xs[8];
    int nd;
    float *x = ref_tensor(&f, "x", xs, &nd, NULL), *gm = ref_tensor(&f, "weight", NULL, NULL, NULL);
    float *bt = ref_tensor(&f, "bias", NULL, NULL, NULL), *rm = ref_tensor(&f, "running_mean_in", NULL, NULL, NULL);
    float *rv = ref_tensor(&f, "running_var_in", NULL, NULL, NULL);
    float *rm_w = ref_tensor(&f, "running_mean_out", NULL, NULL, NULL), *rv_w = ref_tensor(&f, "running_var_out", NULL, NULL, NULL);
    float *want = ref_tensor(&f, "out", NULL, NULL, NULL), *dout = ref_tensor(&f, "dout", NULL, NULL, NULL);
    float *wdx = ref_tensor(&f, "dx", NULL, NULL, NULL), *wdg = ref_tensor(&f, "dweight", NULL, NULL, NULL);
    float *wdb = ref_tensor(&f, "dbias", NULL, NULL, NULL);
    assert_non_null(x), assert_non_null(rv_w), assert_non_null(wdb);
    float mom = (float)ref_param(&f, "momentum", 0.1), eps = (float)ref_param(&f, "eps", 1e-5);
    int64_t n = prod4(xs), C = xs[1];
    float *out = malloc((size_t)n * 4), *sm = malloc((size_t)C * 4), *sr = malloc((size_t)C * 4);
    float *dx = calloc((size_t)n, 4), *dg = calloc((size_t)C, 4), *db = calloc((size_t)C, 4);
    assert_int_equal(hs_batchnorm2d_forward_train(out, sm, sr, rm, rv, x, gm, bt, xs, mom, eps), HS_OK);
    assert_int_equal(hs_batchnorm2d_backward_train(dx, dg, db, dout, x, gm, sm, sr, xs), HS_OK);
    hs_expect_close(out, want, (size_t)n, 1e-5, 1e-4);
    hs_expect_close(rm, rm_w, (size_t)C, 1e-5, 1e-4);
    hs_expect_close(rv, rv_w, (size_t)C, 1e-5, 1e-4);
    hs_expect_close(dx, wdx, (size_t)n, 1e-4, 1e-3);
    hs_expect_close(dg, wdg, (size_t)C, 1e-4, 1e-3);
    hs_expect_close(db, wdb, (size_t)C, 1e-4, 1e-3);
    free(x), free(gm), free(bt), free(rm), free(rv), free(rm_w), free(rv_w), free(want), free(dout), free(wdx);
    free(wdg), free(wdb), free(out), free(sm), free(sr), free(dx), free(dg), free(db);
    ref_close(&f);

    if (!ref_open(&f, "batchnorm2d_eval"))
        fail_msg("batchnorm2d_eval missing");
    x = ref_tensor(&f, "x", xs, &nd, NULL), gm = ref_tensor(&f, "weight", NULL, NULL, NULL);
    bt = ref_tensor(&f, "bias", NULL, NULL, NULL), rm = ref_tensor(&f, "running_mean", NULL, NULL, NULL);
    rv = ref_tensor(&f, "running_var", NULL, NULL, NULL);
    want = ref_tensor(&f, "out", NULL, NULL, NULL), dout = ref_tensor(&f, "dout", NULL, NULL, NULL);
    wdx = ref_tensor(&f, "dx", NULL, NULL, NULL), wdg = ref_tensor(&f, "dweight", NULL, NULL, NULL);
    wdb = ref_tensor(&f, "dbias", NULL, NULL, NULL);
    assert_non_null(x), assert_non_null(rv), assert_non_null(wdb);
    eps = (float)ref_param(&f, "eps", 1e-5);
    n = prod4(xs), C = xs[1];
    out = malloc((size_t)n * 4), dx = calloc((size_t)n, 4), dg = calloc((size_t)C, 4), db = calloc((size_t)C, 4);
    assert_int_equal(hs_batchnorm2d_forward_eval(out, x, gm, bt, rm, rv, xs, eps), HS_OK);
    assert_int_equal(hs_batchnorm2d_backward_eval(dx, dg, db, dout, x, gm, rm, rv, xs, eps), HS_OK);
    hs_expect_close(out, want, (size_t)n, 1e-5, 1e-4);
    hs_expect_close(dx, wdx, (size_t)n, 1e-4, 1e-3);
    hs_expect_close(dg, wdg, (size_t)C, 1e-4, 1e-3);
    hs_expect_close(db, wdb, (size_t)C, 1e-4, 1e-3);
    free(x), free(gm), free(bt), free(rm), free(rv), free(want), free(dout), free(wdx), free(wdg), free(wdb);
    free(out), free(dx), free(dg), free(db);
    ref_close(&f);
}

// ---- finite differences ----

typedef struct {
    int train;
    int64_t xs[4], n;
    float *x, *gm, *bt, *rm, *rv, *R, *out, *sm, *sr;
} fd_ctx;

static double fd_loss(void *v) {
    fd_ctx *c = v;
    if (c->train)   // running stats not passed: the loss must not change state between evaluations
        assert_int_equal(hs_batchnorm2d_forward_train(c->out, c->sm, c->sr, NULL, NULL, c->x, c->gm, c->bt, c->xs,
                                                      0.1f, 1e-5f),
                         HS_OK);
    else
        assert_int_equal(hs_batchnorm2d_forward_eval(c->out, c->x, c->gm, c->bt, c->rm, c->rv, c->xs, 1e-5f), HS_OK);
    double s = 0;
    for (int64_t i = 0; i < c->n; i++)
        s += (double)c->out[i] * (double)c->R[i];
    return s;
}

static void check_fd(int train) {
    fd_ctx c = {.train = train, .xs = {3, 2, 2, 3}};
    c.n = prod4(c.xs);
    int64_t C = c.xs[1];
    c.x = randn(c.n, 21, 1.0f, 0.5f), c.gm = randn(C, 22, 1.0f, 0), c.bt = randn(C, 23, 1.0f, 0);
    c.rm = randn(C, 24, 0.5f, 0), c.rv = randn(C, 25, 0.1f, 1.0f), c.R = randn(c.n, 26, 1.0f, 0);
    c.out = malloc((size_t)c.n * 4), c.sm = malloc((size_t)C * 4), c.sr = malloc((size_t)C * 4);
    fd_loss(&c);   // saves mean/rstd
    float *dx = calloc((size_t)c.n, 4), *dg = calloc((size_t)C, 4), *db = calloc((size_t)C, 4);
    float *dx2 = calloc((size_t)c.n, 4), *dg2 = calloc((size_t)C, 4), *db2 = calloc((size_t)C, 4);
    for (int rep = 0; rep < 2; rep++) {
        if (train)
            assert_int_equal(hs_batchnorm2d_backward_train(rep ? dx2 : dx, rep ? dg2 : dg, rep ? db2 : db, c.R, c.x, c.gm,
                                                           c.sm, c.sr, c.xs),
                             HS_OK);
        else
            assert_int_equal(hs_batchnorm2d_backward_eval(rep ? dx2 : dx, rep ? dg2 : dg, rep ? db2 : db, c.R, c.x, c.gm,
                                                          c.rm, c.rv, c.xs, 1e-5f),
                             HS_OK);
    }
    assert_memory_equal(dx, dx2, (size_t)c.n * 4);
    assert_memory_equal(dg, dg2, (size_t)C * 4);
    assert_memory_equal(db, db2, (size_t)C * 4);
    float *num = malloc((size_t)c.n * 4);
    for (int64_t i = 0; i < c.n; i++)
        num[i] = (float)hs_numeric_grad(fd_loss, &c, c.x, (size_t)i, 1e-3f);
    hs_expect_close(dx, num, (size_t)c.n, 3e-3, 3e-3);
    for (int64_t i = 0; i < C; i++)
        num[i] = (float)hs_numeric_grad(fd_loss, &c, c.gm, (size_t)i, 1e-3f);
    hs_expect_close(dg, num, (size_t)C, 3e-3, 3e-3);
    for (int64_t i = 0; i < C; i++)
        num[i] = (float)hs_numeric_grad(fd_loss, &c, c.bt, (size_t)i, 1e-3f);
    hs_expect_close(db, num, (size_t)C, 3e-3, 3e-3);
    free(num), free(dx), free(dg), free(db), free(dx2), free(dg2), free(db2);
    free(c.x), free(c.gm), free(c.bt), free(c.rm), free(c.rv), free(c.R), free(c.out), free(c.sm), free(c.sr);
}

static void test_batchnorm2d_train_backward_matches_finite_differences(void **state) {
    (void)state;
    check_fd(1);
}

static void test_batchnorm2d_eval_backward_matches_finite_differences(void **state) {
    (void)state;
    check_fd(0);
}

// ---- fused batchnorm2d + ReLU ----

// relu(bn(x)) fused == relu applied to the unfused output; its backward == the unfused backward
// of dout masked by out > 0, added (+=) or assigned (=).
static void test_batchnorm2d_relu_fused_matches_unfused_forward_and_backward(void **state) {
    (void)state;
    int64_t xs[4] = {3, 5, 7, 9};   // plane of 63: the 16-lane loops and their tails
    int64_t n = prod4(xs), C = xs[1];
    float *x = randn(n, 31, 1.5f, 0.2f), *gm = randn(C, 32, 1.0f, 0), *bt = randn(C, 33, 1.0f, 0);
    float *rm = randn(C, 34, 0.5f, 0), *rv = randn(C, 35, 0.1f, 1.0f), *rm2 = copy_of(rm, C), *rv2 = copy_of(rv, C);
    float *out = malloc((size_t)n * 4), *fused = malloc((size_t)n * 4);
    float *sm = malloc((size_t)C * 4), *sr = malloc((size_t)C * 4), *sm2 = malloc((size_t)C * 4), *sr2 = malloc((size_t)C * 4);
    assert_int_equal(hs_batchnorm2d_forward_train(out, sm, sr, rm, rv, x, gm, bt, xs, 0.1f, 1e-5f), HS_OK);
    assert_int_equal(hs_batchnorm2d_relu_forward_train(fused, sm2, sr2, rm2, rv2, x, gm, bt, xs, 0.1f, 1e-5f), HS_OK);
    for (int64_t i = 0; i < n; i++)
        out[i] = out[i] > 0.0f ? out[i] : 0.0f;
    assert_memory_equal(fused, out, (size_t)n * 4);
    assert_memory_equal(sm, sm2, (size_t)C * 4);
    assert_memory_equal(rv, rv2, (size_t)C * 4);
    // eval
    float *ev = malloc((size_t)n * 4), *evf = malloc((size_t)n * 4);
    assert_int_equal(hs_batchnorm2d_forward_eval(ev, x, gm, bt, rm, rv, xs, 1e-5f), HS_OK);
    assert_int_equal(hs_batchnorm2d_relu_forward_eval(evf, x, gm, bt, rm, rv, xs, 1e-5f), HS_OK);
    for (int64_t i = 0; i < n; i++)
        ev[i] = ev[i] > 0.0f ? ev[i] : 0.0f;
    assert_memory_equal(evf, ev, (size_t)n * 4);
    // backward: unfused reference = masked dout through the plain backward
    float *dout = randn(n, 36, 1.0f, 0), *masked = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        masked[i] = fused[i] > 0.0f ? dout[i] : 0.0f;
    float *dx = randn(n, 37, 1.0f, 0), *dg = randn(C, 38, 1.0f, 0), *db = randn(C, 39, 1.0f, 0);
    float *dx2 = copy_of(dx, n), *dg2 = copy_of(dg, C), *db2 = copy_of(db, C);
    assert_int_equal(hs_batchnorm2d_backward_train(dx, dg, db, masked, x, gm, sm, sr, xs), HS_OK);
    assert_int_equal(hs_batchnorm2d_relu_backward_train(dx2, dg2, db2, dout, x, gm, bt, sm, sr, xs, 1, 0), HS_OK);
    hs_expect_close(dx2, dx, (size_t)n, 1e-5, 1e-5);
    hs_expect_close(dg2, dg, (size_t)C, 1e-5, 1e-5);
    hs_expect_close(db2, db, (size_t)C, 1e-5, 1e-5);
    // assign: the old dx contents do not matter
    float *dx3 = calloc((size_t)n, 4), *dx4 = randn(n, 40, 1e3f, 0);
    float *dg3 = calloc((size_t)C, 4), *db3 = calloc((size_t)C, 4);
    assert_int_equal(hs_batchnorm2d_relu_backward_train(dx3, dg3, db3, dout, x, gm, bt, sm, sr, xs, 1, 0), HS_OK);
    assert_int_equal(hs_batchnorm2d_relu_backward_train(dx4, dg3, db3, dout, x, gm, bt, sm, sr, xs, 1, 1), HS_OK);
    hs_expect_close(dx4, dx3, (size_t)n, 1e-6, 1e-5);
    // relu 0: plain batchnorm, assigned
    float *dx5 = randn(n, 41, 1e3f, 0), *dx6 = calloc((size_t)n, 4);
    assert_int_equal(hs_batchnorm2d_backward_train(dx6, dg3, db3, dout, x, gm, sm, sr, xs), HS_OK);
    assert_int_equal(hs_batchnorm2d_relu_backward_train(dx5, dg3, db3, dout, x, gm, bt, sm, sr, xs, 0, 1), HS_OK);
    hs_expect_close(dx5, dx6, (size_t)n, 1e-6, 1e-5);
    free(x), free(gm), free(bt), free(rm), free(rv), free(rm2), free(rv2), free(out), free(fused), free(sm), free(sr);
    free(sm2), free(sr2), free(ev), free(evf), free(dout), free(masked), free(dx), free(dg), free(db), free(dx2);
    free(dg2), free(db2), free(dx3), free(dx4), free(dg3), free(db3), free(dx5), free(dx6);
}

typedef struct {
    int64_t xs[4], n;
    float *x, *gm, *bt, *R, *out, *sm, *sr;
} fdr_ctx;

static double fdr_loss(void *v) {
    fdr_ctx *c = v;
    assert_int_equal(hs_batchnorm2d_relu_forward_train(c->out, c->sm, c->sr, NULL, NULL, c->x, c->gm, c->bt, c->xs,
                                                       0.1f, 1e-5f),
                     HS_OK);
    double s = 0;
    for (int64_t i = 0; i < c->n; i++)
        s += (double)c->out[i] * (double)c->R[i];
    return s;
}

static void test_batchnorm2d_relu_backward_matches_finite_differences(void **state) {
    (void)state;
    fdr_ctx c = {.xs = {3, 2, 3, 3}};
    c.n = prod4(c.xs);
    int64_t C = c.xs[1];
    c.x = randn(c.n, 51, 1.0f, 0.3f), c.gm = randn(C, 52, 1.0f, 0), c.bt = randn(C, 53, 0.3f, 0);
    c.R = randn(c.n, 54, 1.0f, 0);
    c.out = malloc((size_t)c.n * 4), c.sm = malloc((size_t)C * 4), c.sr = malloc((size_t)C * 4);
    fdr_loss(&c);
    // finite differences need smoothness: no pre-activation may sit near the ReLU kink
    float *pre = malloc((size_t)c.n * 4), *psm = malloc((size_t)C * 4), *psr = malloc((size_t)C * 4);
    assert_int_equal(hs_batchnorm2d_forward_train(pre, psm, psr, NULL, NULL, c.x, c.gm, c.bt, c.xs, 0.1f, 1e-5f), HS_OK);
    for (int64_t i = 0; i < c.n; i++)
        assert_true(fabsf(pre[i]) > 1e-2f);
    free(pre), free(psm), free(psr);
    float *dx = calloc((size_t)c.n, 4), *dg = calloc((size_t)C, 4), *db = calloc((size_t)C, 4);
    assert_int_equal(hs_batchnorm2d_relu_backward_train(dx, dg, db, c.R, c.x, c.gm, c.bt, c.sm, c.sr, c.xs, 1, 1), HS_OK);
    float *num = malloc((size_t)c.n * 4);
    for (int64_t i = 0; i < c.n; i++)
        num[i] = (float)hs_numeric_grad(fdr_loss, &c, c.x, (size_t)i, 1e-3f);
    hs_expect_close(dx, num, (size_t)c.n, 3e-3, 3e-3);
    for (int64_t i = 0; i < C; i++)
        num[i] = (float)hs_numeric_grad(fdr_loss, &c, c.gm, (size_t)i, 1e-3f);
    hs_expect_close(dg, num, (size_t)C, 3e-3, 3e-3);
    for (int64_t i = 0; i < C; i++)
        num[i] = (float)hs_numeric_grad(fdr_loss, &c, c.bt, (size_t)i, 1e-3f);
    hs_expect_close(db, num, (size_t)C, 3e-3, 3e-3);
    free(num), free(dx), free(dg), free(db);
    free(c.x), free(c.gm), free(c.bt), free(c.R), free(c.out), free(c.sm), free(c.sr);
}

static void test_batchnorm2d_results_identical_for_one_and_two_threads(void **state) {
    (void)state;
    int saved = hs_get_num_threads();
    int64_t xs[4] = {4, 16, 20, 20}, n = prod4(xs), C = xs[1];
    float *x = randn(n, 1, 1.0f, 0), *gm = randn(C, 2, 1.0f, 0), *bt = randn(C, 3, 1.0f, 0), *dout = randn(n, 4, 1.0f, 0);
    float *res[2][6];
    for (int t = 0; t < 2; t++) {
        hs_set_num_threads(t + 1);
        res[t][0] = malloc((size_t)n * 4), res[t][1] = malloc((size_t)C * 4), res[t][2] = malloc((size_t)C * 4);
        res[t][3] = calloc((size_t)n, 4), res[t][4] = calloc((size_t)C, 4), res[t][5] = calloc((size_t)C, 4);
        assert_int_equal(hs_batchnorm2d_forward_train(res[t][0], res[t][1], res[t][2], NULL, NULL, x, gm, bt, xs, 0.1f,
                                                      1e-5f),
                         HS_OK);
        assert_int_equal(hs_batchnorm2d_backward_train(res[t][3], res[t][4], res[t][5], dout, x, gm, res[t][1],
                                                       res[t][2], xs),
                         HS_OK);
    }
    int64_t sz[6] = {n, C, C, n, C, C};
    for (int i = 0; i < 6; i++)
        assert_memory_equal(res[0][i], res[1][i], (size_t)sz[i] * 4);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 6; i++)
            free(res[t][i]);
    free(x), free(gm), free(bt), free(dout);
    hs_set_num_threads(saved);
}

static void test_batchnorm2d_rejects_single_value_per_channel_and_bad_args(void **state) {
    (void)state;
    float buf[8] = {0};
    int64_t one[4] = {1, 2, 1, 1}, zero[4] = {2, 0, 3, 3};
    assert_int_equal(hs_batchnorm2d_forward_train(buf, buf, buf, NULL, NULL, buf, NULL, NULL, one, 0.1f, 1e-5f),
                     HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "[1,2,1,1]"));
    assert_int_equal(hs_batchnorm2d_forward_eval(buf, buf, NULL, NULL, buf, buf, one, 1e-5f), HS_OK);   // eval is fine
    assert_int_equal(hs_batchnorm2d_forward_eval(buf, buf, NULL, NULL, buf, buf, zero, 1e-5f), HS_ERR_SHAPE);
    int64_t ok[4] = {2, 2, 1, 2};
    assert_int_equal(hs_batchnorm2d_forward_train(buf, buf, buf, NULL, NULL, buf, NULL, NULL, ok, 1.5f, 1e-5f), HS_ERR_ARG);
    assert_int_equal(hs_batchnorm2d_forward_train(buf, NULL, buf, NULL, NULL, buf, NULL, NULL, ok, 0.1f, 1e-5f), HS_ERR_ARG);
    assert_int_equal(hs_batchnorm2d_backward_eval(buf, NULL, NULL, buf, buf, NULL, NULL, buf, ok, 1e-5f), HS_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm2d_train_matches_reference_loops),
        cmocka_unit_test(test_batchnorm2d_matches_pytorch_reference_cases),
        cmocka_unit_test(test_batchnorm2d_train_backward_matches_finite_differences),
        cmocka_unit_test(test_batchnorm2d_eval_backward_matches_finite_differences),
        cmocka_unit_test(test_batchnorm2d_results_identical_for_one_and_two_threads),
        cmocka_unit_test(test_batchnorm2d_relu_fused_matches_unfused_forward_and_backward),
        cmocka_unit_test(test_batchnorm2d_relu_backward_matches_finite_differences),
        cmocka_unit_test(test_batchnorm2d_rejects_single_value_per_channel_and_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
