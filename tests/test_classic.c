// tests/test_classic.c: the classical classifiers (core/classic.h): standardisation, agreement with
// scikit-learn 1.2 (LogisticRegression multinomial/lbfgs, LinearSVC/liblinear, SVC/libsvm) on a
// fixed 30-sample set (numbers computed by hand with python3-sklearn; Python is not needed here),
// separable and XOR data, determinism across thread counts, bad inputs and failed allocations.
// Dimension letters: N samples, F features, K classes.
#include "hs_test.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "classic.h"
#include "parallel.h"
#include "rng.h"
#include "tensor.h"

static hs_tensor *new_t(hs_dtype dt, int ndim, int64_t d0, int64_t d1) {
    int64_t shape[2] = {d0, d1};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, dt, ndim, shape), HS_OK);
    return t;
}

// The fixed set shared with the sklearn script: 3 overlapping classes in 2-D plus a noise feature.
static void small_set(hs_tensor **X, hs_tensor **y) {
    const int N = 30;
    const double centers[3][2] = {{0, 0}, {2, 1}, {1, -2}};
    *X = new_t(HS_DTYPE_F32, 2, N, 3);
    *y = new_t(HS_DTYPE_I64, 1, N, 0);
    float *x = (*X)->data;
    int64_t *l = (*y)->data;
    for (int i = 0; i < N; i++) {
        int c = i % 3;
        l[i] = c;
        x[3 * i + 0] = (float)(centers[c][0] + 0.9 * sin(1.7 * i + 0.3));
        x[3 * i + 1] = (float)(centers[c][1] + 0.9 * cos(2.3 * i));
        x[3 * i + 2] = (float)(0.5 * sin(0.37 * i * i));
    }
}

static hs_tensor *small_test_points(void) {
    hs_tensor *T = new_t(HS_DTYPE_F32, 2, 4, 3);
    const float v[12] = {0.5f, 0.5f, 0.0f, 1.5f, -1.0f, 0.2f, -0.5f, 2.0f, -0.3f, 3.0f, 0.0f, 0.1f};
    memcpy(T->data, v, sizeof v);
    return T;
}

// Gaussian blobs (K classes around points on a circle of radius 3) or XOR (4 blobs at (+-1,+-1),
// label = sign(x0) != sign(x1)), with extra pure-noise features.
static void blobs(hs_tensor **X, hs_tensor **y, int64_t N, int64_t F, int K, int xor, uint64_t seed) {
    *X = new_t(HS_DTYPE_F32, 2, N, F);
    *y = new_t(HS_DTYPE_I64, 1, N, 0);
    float *x = (*X)->data;
    int64_t *l = (*y)->data;
    for (int64_t i = 0; i < N; i++) {
        for (int64_t j = 0; j < F; j++)
            x[i * F + j] = hs_rng_normal(seed, 1, (uint64_t)(i * F + j)) * (xor ? 0.3f : 0.6f);
        if (xor) {
            int q = (int)(i % 4), sx = q & 1 ? 1 : -1, sy = q & 2 ? 1 : -1;
            x[i * F] += (float)sx;
            x[i * F + 1] += (float)sy;
            l[i] = sx != sy;
        } else {
            int c = (int)(i % K);
            x[i * F] += 3.0f * cosf(6.2831853f * (float)c / (float)K);
            x[i * F + 1] += 3.0f * sinf(6.2831853f * (float)c / (float)K);
            l[i] = c;
        }
    }
}

static double accuracy(const hs_classic_model *m, const hs_tensor *X, const hs_tensor *y) {
    int64_t N = X->shape[0];
    hs_tensor *pred = new_t(HS_DTYPE_I64, 1, N, 0);
    assert_int_equal(hs_classic_predict(pred, m, X), HS_OK);
    int64_t ok = 0;
    for (int64_t i = 0; i < N; i++)
        ok += ((int64_t *)pred->data)[i] == ((int64_t *)y->data)[i];
    hs_tensor_free(pred);
    return (double)ok / (double)N;
}

static hs_classic_model *fit_kind(hs_classic_kind kind, const hs_tensor *X, const hs_tensor *y) {
    hs_classic_params p;
    hs_classic_params_default(&p, kind);
    hs_classic_model *m;
    assert_int_equal(hs_classic_fit(&m, X, y, &p), HS_OK);
    return m;
}

static void test_standardize_gives_zero_mean_unit_std_and_leaves_constant_columns(void **state) {
    (void)state;
    hs_tensor *X = new_t(HS_DTYPE_F32, 2, 4, 2);
    const float v[8] = {1, 5, 2, 5, 3, 5, 6, 5};
    memcpy(X->data, v, sizeof v);
    float mean[2], scale[2];
    assert_int_equal(hs_classic_standardize_fit(mean, scale, X), HS_OK);
    assert_true(fabsf(mean[0] - 3.0f) < 1e-6f && mean[1] == 5.0f);
    assert_true(fabsf(scale[0] - 1.0f / sqrtf(3.5f)) < 1e-6f);
    assert_true(scale[1] == 1.0f);  // constant column: sklearn keeps scale 1
    assert_int_equal(hs_classic_standardize_apply(X, X, mean, scale), HS_OK);
    double s = 0, s2 = 0;
    for (int i = 0; i < 4; i++) {
        s += (double)((float *)X->data)[2 * i];
        s2 += (double)((float *)X->data)[2 * i] * (double)((float *)X->data)[2 * i];
        assert_true(((float *)X->data)[2 * i + 1] == 0.0f);
    }
    assert_true(fabs(s) < 1e-6 && fabs(s2 / 4 - 1) < 1e-6);
    hs_tensor_free(X);
}

static void test_logreg_matches_sklearn_multinomial_lbfgs(void **state) {
    (void)state;
    hs_tensor *X, *y, *T = small_test_points();
    small_set(&X, &y);
    hs_classic_model *m = fit_kind(HS_CLASSIC_LOGREG, X, y);
    assert_true(m->converged);
    const float W[9] = {-1.3290981f, 0.48273276f, 0.14969805f, 1.1161276f, 1.2187234f,
                        -0.097858202f, 0.21297043f, -1.7014562f, -0.051839844f};
    const float b[3] = {0.18346949f, -0.14375639f, -0.039713096f};
    hs_expect_close(m->weight, W, 9, 1e-4, 1e-4);
    hs_expect_close(m->bias, b, 3, 1e-4, 1e-4);
    const float proba[12] = {0.68812905f, 0.24010892f, 0.071762026f, 0.15225983f, 0.21320474f, 0.63453543f,
                             0.91159927f, 0.085861757f, 0.00253897f, 0.01049538f, 0.90003175f, 0.089472872f};
    hs_tensor *P = new_t(HS_DTYPE_F32, 2, 4, 3);
    assert_int_equal(hs_classic_proba(P, m, T), HS_OK);
    hs_expect_close(P->data, proba, 12, 1e-5, 1e-4);
    assert_true(fabs(accuracy(m, X, y) - 29.0 / 30) < 1e-9);  // sklearn's score: 0.9667
    hs_tensor_free(P);
    hs_classic_model_free(m);
    hs_tensor_free(T);
    hs_tensor_free(y);
    hs_tensor_free(X);
}

static void test_linear_svm_matches_sklearn_linearsvc(void **state) {
    (void)state;
    hs_tensor *X, *y;
    small_set(&X, &y);
    hs_classic_params p;
    hs_classic_params_default(&p, HS_CLASSIC_LINEAR_SVM);
    p.tol = 1e-7;  // sklearn's reference was solved to 1e-10
    p.max_iter = 100000;
    hs_classic_model *m;
    assert_int_equal(hs_classic_fit(&m, X, y, &p), HS_OK);
    assert_true(m->converged);
    const float W[9] = {-1.2991345f, 0.56946883f, 0.1589881f, 1.1034327f, 1.0212789f,
                        0.043423324f, 0.29595294f, -1.6955414f, -0.170581f};
    const float b[3] = {-0.57210697f, -0.59935536f, -0.69279625f};
    hs_expect_close(m->weight, W, 9, 2e-4, 1e-3);
    hs_expect_close(m->bias, b, 3, 2e-4, 1e-3);
    assert_true(fabs(accuracy(m, X, y) - 29.0 / 30) < 1e-9);
    hs_classic_model_free(m);
    hs_tensor_free(y);
    hs_tensor_free(X);
}

static void test_rbf_svm_matches_sklearn_svc_decision_function(void **state) {
    (void)state;
    hs_tensor *X, *y, *T = small_test_points();
    small_set(&X, &y);
    hs_classic_params p;
    hs_classic_params_default(&p, HS_CLASSIC_RBF_SVM);
    p.tol = 1e-8;
    hs_classic_model *m;
    assert_int_equal(hs_classic_fit(&m, X, y, &p), HS_OK);
    assert_true(m->converged);
    assert_true(fabs(m->gamma - 0.33333333415932365) < 1e-6);  // "scale" on standardised data
    assert_int_equal(m->n_sv, 24);
    const float dec[12] = {2.2227379f, 0.88024347f, -0.19746026f, 0.95574092f, -0.17603666f, 2.1866355f,
                           2.1808743f, 0.95087072f, -0.16778523f, -0.17476404f, 2.2088863f, 0.87812075f};
    hs_tensor *D = new_t(HS_DTYPE_F32, 2, 4, 3), *pred = new_t(HS_DTYPE_I32, 1, 4, 0);
    assert_int_equal(hs_classic_decision(D, m, T), HS_OK);
    hs_expect_close(D->data, dec, 12, 1e-4, 1e-4);
    assert_int_equal(hs_classic_predict(pred, m, T), HS_OK);
    const int32_t want[4] = {0, 2, 0, 1};
    assert_memory_equal(pred->data, want, sizeof want);
    assert_true(fabs(accuracy(m, X, y) - 28.0 / 30) < 1e-9);  // sklearn's score: 0.9333
    hs_tensor_free(pred);
    hs_tensor_free(D);
    hs_classic_model_free(m);
    hs_tensor_free(T);
    hs_tensor_free(y);
    hs_tensor_free(X);
}

static void test_every_classifier_separates_well_separated_blobs(void **state) {
    (void)state;
    hs_tensor *X, *y, *Xt, *yt;
    blobs(&X, &y, 200, 5, 4, 0, 11);
    blobs(&Xt, &yt, 100, 5, 4, 0, 12);
    for (int k = 0; k < HS_CLASSIC_KIND_COUNT; k++) {
        hs_classic_model *m = fit_kind((hs_classic_kind)k, X, y);
        assert_true(accuracy(m, X, y) >= 0.99);
        assert_true(accuracy(m, Xt, yt) >= 0.97);
        hs_classic_model_free(m);
    }
    hs_tensor_free(yt);
    hs_tensor_free(Xt);
    hs_tensor_free(y);
    hs_tensor_free(X);
}

static void test_rbf_svm_solves_xor_and_linear_models_cannot(void **state) {
    (void)state;
    hs_tensor *X, *y, *Xt, *yt;
    blobs(&X, &y, 200, 2, 2, 1, 21);
    blobs(&Xt, &yt, 200, 2, 2, 1, 22);
    hs_classic_model *rbf = fit_kind(HS_CLASSIC_RBF_SVM, X, y);
    assert_true(accuracy(rbf, Xt, yt) >= 0.97);
    hs_classic_model *lr = fit_kind(HS_CLASSIC_LOGREG, X, y), *ls = fit_kind(HS_CLASSIC_LINEAR_SVM, X, y);
    assert_true(accuracy(lr, Xt, yt) <= 0.75);
    assert_true(accuracy(ls, Xt, yt) <= 0.75);
    hs_classic_model_free(ls);
    hs_classic_model_free(lr);
    hs_classic_model_free(rbf);
    hs_tensor_free(yt);
    hs_tensor_free(Xt);
    hs_tensor_free(y);
    hs_tensor_free(X);
}

static void expect_same_model(const hs_classic_model *a, const hs_classic_model *b) {
    int64_t F = a->n_features, K = a->n_classes;
    assert_int_equal(a->n_sv, b->n_sv);
    assert_int_equal(a->iterations, b->iterations);
    assert_memory_equal(a->mean, b->mean, sizeof(float) * (size_t)F);
    if (a->kind == HS_CLASSIC_RBF_SVM) {
        assert_memory_equal(a->sv, b->sv, sizeof(float) * (size_t)(a->n_sv * F));
        assert_memory_equal(a->coef, b->coef, sizeof(float) * (size_t)(a->n_sv * K * (K - 1) / 2));
        assert_memory_equal(a->rho, b->rho, sizeof(float) * (size_t)(K * (K - 1) / 2));
    } else {
        assert_memory_equal(a->weight, b->weight, sizeof(float) * (size_t)(K * F));
        assert_memory_equal(a->bias, b->bias, sizeof(float) * (size_t)K);
    }
}

static void test_same_seed_gives_a_bit_identical_model_for_any_thread_count(void **state) {
    (void)state;
    hs_tensor *X, *y;
    blobs(&X, &y, 700, 6, 5, 0, 31);  // > 2 logreg chunks, 10 SVM pairs, 5 one-vs-rest classes
    int saved = hs_get_num_threads();
    for (int k = 0; k < HS_CLASSIC_KIND_COUNT; k++) {
        hs_set_num_threads(1);
        hs_classic_model *a = fit_kind((hs_classic_kind)k, X, y);
        hs_set_num_threads(3);
        hs_classic_model *b = fit_kind((hs_classic_kind)k, X, y);
        expect_same_model(a, b);
        hs_tensor *sa = new_t(HS_DTYPE_F32, 2, 700, 5), *sb = new_t(HS_DTYPE_F32, 2, 700, 5);
        assert_int_equal(hs_classic_decision(sa, a, X), HS_OK);
        hs_set_num_threads(1);
        assert_int_equal(hs_classic_decision(sb, b, X), HS_OK);
        assert_memory_equal(sa->data, sb->data, hs_tensor_nbytes(sa));
        hs_tensor_free(sb);
        hs_tensor_free(sa);
        hs_classic_model_free(b);
        hs_classic_model_free(a);
    }
    // the linear SVM's seed orders the coordinates: another seed, another (equally good) model
    hs_classic_params p;
    hs_classic_params_default(&p, HS_CLASSIC_LINEAR_SVM);
    hs_classic_model *a, *b;
    assert_int_equal(hs_classic_fit(&a, X, y, &p), HS_OK);
    p.seed = 2;
    assert_int_equal(hs_classic_fit(&b, X, y, &p), HS_OK);
    assert_true(memcmp(a->weight, b->weight, sizeof(float) * 30) != 0);
    hs_expect_close(a->weight, b->weight, 30, 1e-2, 1e-2);
    hs_classic_model_free(b);
    hs_classic_model_free(a);
    hs_set_num_threads(saved);
    hs_tensor_free(y);
    hs_tensor_free(X);
}

static void test_proba_rows_sum_to_one_and_predict_is_their_argmax(void **state) {
    (void)state;
    hs_tensor *X, *y;
    blobs(&X, &y, 90, 3, 3, 0, 41);
    for (int k = 0; k < HS_CLASSIC_KIND_COUNT; k++) {
        hs_classic_model *m = fit_kind((hs_classic_kind)k, X, y);
        hs_tensor *P = new_t(HS_DTYPE_F32, 2, 90, 3), *pred = new_t(HS_DTYPE_I64, 1, 90, 0);
        assert_int_equal(hs_classic_proba(P, m, X), HS_OK);
        assert_int_equal(hs_classic_predict(pred, m, X), HS_OK);
        const float *p = P->data;
        for (int i = 0; i < 90; i++) {
            int best = 0;
            for (int c = 1; c < 3; c++)
                if (p[i * 3 + c] > p[i * 3 + best])
                    best = c;
            assert_true(fabsf(p[i * 3] + p[i * 3 + 1] + p[i * 3 + 2] - 1.0f) < 1e-5f);
            assert_int_equal(((int64_t *)pred->data)[i], best);
        }
        hs_tensor_free(pred);
        hs_tensor_free(P);
        hs_classic_model_free(m);
    }
    hs_tensor_free(y);
    hs_tensor_free(X);
}

static void test_a_model_built_by_hand_scores_weight_x_plus_bias(void **state) {
    (void)state;
    hs_classic_model *m;
    assert_int_equal(hs_classic_model_new(&m, HS_CLASSIC_LINEAR_SVM, 2, 2, 0), HS_OK);
    m->weight[0] = 1;
    m->weight[3] = -2;
    m->bias[1] = 0.5f;
    m->mean[0] = 1;
    m->scale[1] = 2;
    hs_tensor *X = new_t(HS_DTYPE_F32, 2, 1, 2), *S = new_t(HS_DTYPE_F32, 2, 1, 2);
    ((float *)X->data)[0] = 3;
    ((float *)X->data)[1] = 1;
    assert_int_equal(hs_classic_decision(S, m, X), HS_OK);
    const float want[2] = {2.0f, -3.5f};  // (3-1)*1 ; -2*(1*2) + 0.5
    hs_expect_close(S->data, want, 2, 0, 0);
    hs_classic_model_free(m);
    hs_classic_model_free(NULL);
    assert_int_equal(hs_classic_model_new(&m, HS_CLASSIC_LOGREG, 2, 1, 0), HS_ERR_ARG);
    assert_null(m);
    hs_tensor_free(S);
    hs_tensor_free(X);
}

static void test_fit_rejects_mismatched_n_nonfinite_features_one_class_and_bad_params(void **state) {
    (void)state;
    hs_tensor *X, *y;
    small_set(&X, &y);
    hs_classic_params p;
    hs_classic_params_default(&p, HS_CLASSIC_LOGREG);
    hs_classic_model *m = (hs_classic_model *)&p;  // must be reset to NULL on failure
    hs_tensor *y29 = new_t(HS_DTYPE_I64, 1, 29, 0);
    assert_int_equal(hs_classic_fit(&m, X, y29, &p), HS_ERR_SHAPE);
    assert_null(m);
    assert_non_null(strstr(hs_last_error()->msg, "(30)"));
    hs_tensor *yf = new_t(HS_DTYPE_F32, 1, 30, 0);
    assert_int_equal(hs_classic_fit(&m, X, yf, &p), HS_ERR_DTYPE);
    hs_tensor *one = new_t(HS_DTYPE_I64, 1, 30, 0);
    for (int i = 0; i < 30; i++)
        ((int64_t *)one->data)[i] = 2;
    for (int k = 0; k < HS_CLASSIC_KIND_COUNT; k++) {
        hs_classic_params q;
        hs_classic_params_default(&q, (hs_classic_kind)k);
        assert_int_equal(hs_classic_fit(&m, X, one, &q), HS_ERR_ARG);
        assert_non_null(strstr(hs_last_error()->msg, "only one class"));
    }
    ((int64_t *)one->data)[3] = -1;
    assert_int_equal(hs_classic_fit(&m, X, one, &p), HS_ERR_ARG);
    ((float *)X->data)[7] = NAN;
    assert_int_equal(hs_classic_fit(&m, X, y, &p), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "X[3,2]"));
    ((float *)X->data)[7] = INFINITY;
    assert_int_equal(hs_classic_fit(&m, X, y, &p), HS_ERR_ARG);
    ((float *)X->data)[7] = 0;
    p.C = 0;
    assert_int_equal(hs_classic_fit(&m, X, y, &p), HS_ERR_ARG);
    p.C = 1;
    p.kind = HS_CLASSIC_KIND_COUNT;
    assert_int_equal(hs_classic_fit(&m, X, y, &p), HS_ERR_ARG);
    hs_classic_kind kind;
    assert_int_equal(hs_classic_kind_from_name(&kind, "rbf_svm"), HS_OK);
    assert_int_equal(kind, HS_CLASSIC_RBF_SVM);
    assert_int_equal(hs_classic_kind_from_name(&kind, "knn"), HS_ERR_ARG);
    // predict-time checks: feature count, NaN, output shape
    hs_classic_params_default(&p, HS_CLASSIC_LOGREG);
    assert_int_equal(hs_classic_fit(&m, X, y, &p), HS_OK);
    hs_tensor *X2 = new_t(HS_DTYPE_F32, 2, 5, 2), *pred = new_t(HS_DTYPE_I64, 1, 5, 0), *S = new_t(HS_DTYPE_F32, 2, 5, 2);
    assert_int_equal(hs_classic_predict(pred, m, X2), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "fitted on 3"));
    hs_tensor *X3 = new_t(HS_DTYPE_F32, 2, 5, 3);
    ((float *)X3->data)[4] = NAN;
    assert_int_equal(hs_classic_predict(pred, m, X3), HS_ERR_ARG);
    ((float *)X3->data)[4] = 0;
    assert_int_equal(hs_classic_decision(S, m, X3), HS_ERR_SHAPE);  // scores need 3 columns
    hs_classic_model_free(m);
    // the RBF kernel matrix is N x N: refused beyond 10000 samples before anything is allocated
    hs_tensor *Xbig = new_t(HS_DTYPE_F32, 2, 10001, 1), *ybig = new_t(HS_DTYPE_I64, 1, 10001, 0);
    ((int64_t *)ybig->data)[0] = 1;
    hs_classic_params_default(&p, HS_CLASSIC_RBF_SVM);
    assert_int_equal(hs_classic_fit(&m, Xbig, ybig, &p), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "10000"));
    hs_tensor_free(ybig);
    hs_tensor_free(Xbig);
    hs_tensor_free(X3);
    hs_tensor_free(S);
    hs_tensor_free(pred);
    hs_tensor_free(X2);
    hs_tensor_free(one);
    hs_tensor_free(yf);
    hs_tensor_free(y29);
    hs_tensor_free(y);
    hs_tensor_free(X);
}

static void test_fit_and_predict_survive_every_failed_allocation(void **state) {
    (void)state;
    hs_tensor *X, *y;
    small_set(&X, &y);
    hs_tensor *pred = new_t(HS_DTYPE_I64, 1, 30, 0);
    int saved = hs_get_num_threads();
    hs_set_num_threads(1);
    for (int k = 0; k < HS_CLASSIC_KIND_COUNT; k++) {
        hs_classic_params p;
        hs_classic_params_default(&p, (hs_classic_kind)k);
        hs_status s = HS_ERR_NOMEM;
        hs_classic_model *m = NULL;
        int n;
        for (n = 1; n < 100 && s != HS_OK; n++) {
            hs_alloc_fail_after((uint64_t)n);
            s = hs_classic_fit(&m, X, y, &p);
            if (s == HS_OK)
                s = hs_classic_predict(pred, m, X);
            hs_alloc_fail_after(0);
            assert_true(s == HS_OK || s == HS_ERR_NOMEM);
            if (s != HS_OK) {
                hs_classic_model_free(m);
                m = NULL;
            }
        }
        assert_int_equal(s, HS_OK);
        assert_true(n > 4);
        hs_classic_model_free(m);
    }
    hs_set_num_threads(saved);
    hs_tensor_free(pred);
    hs_tensor_free(y);
    hs_tensor_free(X);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standardize_gives_zero_mean_unit_std_and_leaves_constant_columns),
        cmocka_unit_test(test_logreg_matches_sklearn_multinomial_lbfgs),
        cmocka_unit_test(test_linear_svm_matches_sklearn_linearsvc),
        cmocka_unit_test(test_rbf_svm_matches_sklearn_svc_decision_function),
        cmocka_unit_test(test_every_classifier_separates_well_separated_blobs),
        cmocka_unit_test(test_rbf_svm_solves_xor_and_linear_models_cannot),
        cmocka_unit_test(test_same_seed_gives_a_bit_identical_model_for_any_thread_count),
        cmocka_unit_test(test_proba_rows_sum_to_one_and_predict_is_their_argmax),
        cmocka_unit_test(test_a_model_built_by_hand_scores_weight_x_plus_bias),
        cmocka_unit_test(test_fit_rejects_mismatched_n_nonfinite_features_one_class_and_bad_params),
        cmocka_unit_test(test_fit_and_predict_survive_every_failed_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
