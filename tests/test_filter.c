// tests/test_filter.c: Gaussian, box, median, unsharp and generic separable filters: hand-checked
// small images, OpenCV's kernel values and size rule, borders, brute-force references on random
// images, thread-count independence, and errors for bad kernel sizes, shapes and dtypes.
#include "hs_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "parallel.h"
#include "rng.h"

static hs_tensor *new_img(hs_dtype dt, int64_t h, int64_t w, int64_t c) {
    int64_t shape[3] = {h, w, c};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, dt, c ? 3 : 2, shape), HS_OK);
    return t;
}

static hs_tensor *random_img(hs_dtype dt, int64_t h, int64_t w, int64_t c, uint64_t seed) {
    hs_tensor *t = new_img(dt, h, w, c);
    int64_t n = hs_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        float u = hs_rng_uniform(seed, 7, (uint64_t)i);
        hs_tensor_set_flat(t, i, dt == HS_DTYPE_U8 ? floor((double)u * 256) : (double)u);
    }
    return t;
}

static void expect_tensors_equal(const hs_tensor *a, const hs_tensor *b) {
    assert_int_equal(hs_tensor_numel(a), hs_tensor_numel(b));
    for (int64_t i = 0; i < hs_tensor_numel(a); i++)
        if (hs_tensor_get_flat(a, i) != hs_tensor_get_flat(b, i))
            fail_msg("element %lld: %g != %g", (long long)i, hs_tensor_get_flat(a, i), hs_tensor_get_flat(b, i));
}

static void test_gaussian_ksize_follows_opencv_rule(void **state) {
    (void)state;
    assert_int_equal(hs_filter_gaussian_ksize(1.0, HS_DTYPE_U8), 7);
    assert_int_equal(hs_filter_gaussian_ksize(2.0, HS_DTYPE_U8), 13);
    assert_int_equal(hs_filter_gaussian_ksize(2.0, HS_DTYPE_F32), 17);
    assert_int_equal(hs_filter_gaussian_ksize(0.5, HS_DTYPE_F32), 5);
}

static void test_gaussian_kernel_matches_cv2_get_gaussian_kernel(void **state) {
    (void)state;
    float k[9], want[9] = {0.02763055f, 0.06628225f, 0.12383154f, 0.18017382f, 0.20416369f,
                           0.18017382f, 0.12383154f, 0.06628225f, 0.02763055f};
    assert_int_equal(hs_filter_gaussian_kernel(k, 9, 2.0), HS_OK);
    hs_expect_close(k, want, 9, 1e-7, 1e-6);
    float k3[3], want3[3] = {0.25f, 0.5f, 0.25f};  // sigma <= 0, ksize 3: OpenCV's fixed table
    assert_int_equal(hs_filter_gaussian_kernel(k3, 3, 0), HS_OK);
    hs_expect_close(k3, want3, 3, 0, 0);
    assert_int_equal(hs_filter_gaussian_kernel(k3, 4, 1.0), HS_ERR_ARG);
}

static void test_gaussian_u8_keeps_constant_image_exactly(void **state) {
    (void)state;
    // the U8 fixed-point kernel sums to exactly 256 (OpenCV's error-diffused rounding)
    for (double sigma = 0.7; sigma < 4; sigma += 0.45) {
        hs_tensor *x = new_img(HS_DTYPE_U8, 9, 11, 3), *y = new_img(HS_DTYPE_U8, 9, 11, 3);
        hs_tensor_fill(x, 201);
        assert_int_equal(hs_filter_gaussian(y, x, sigma, 0, HS_BORDER_REFLECT101), HS_OK);
        for (int64_t i = 0; i < hs_tensor_numel(y); i++)
            assert_true(hs_tensor_get_flat(y, i) == 201);
        hs_tensor_free(x);
        hs_tensor_free(y);
    }
}

static void test_gaussian_u8_impulse_gives_opencv_fixed_point_kernel(void **state) {
    (void)state;
    // one row: the vertical pass sums to 256/256, so the row is the horizontal U8 kernel * 255/256;
    // cv2.GaussianBlur(row with 255 at 20, (0,0), 2) = ... 1 2 7 16 31 45 52 45 31 16 7 2 1 ...
    hs_tensor *x = new_img(HS_DTYPE_U8, 1, 41, 0), *y = new_img(HS_DTYPE_U8, 1, 41, 0);
    hs_tensor_set_flat(x, 20, 255);
    assert_int_equal(hs_filter_gaussian(y, x, 2.0, 0, HS_BORDER_REFLECT101), HS_OK);
    const int want[13] = {1, 2, 7, 16, 31, 45, 52, 45, 31, 16, 7, 2, 1};
    for (int i = 0; i < 13; i++)
        assert_int_equal((int)hs_tensor_get_flat(y, 14 + i), want[i]);
    assert_int_equal((int)hs_tensor_get_flat(y, 13), 0);
    hs_tensor_free(x);
    hs_tensor_free(y);
}

static void test_box_3x3_hand_checked_reflect101_and_replicate(void **state) {
    (void)state;
    hs_tensor *x = new_img(HS_DTYPE_F32, 3, 3, 0), *y = new_img(HS_DTYPE_F32, 3, 3, 0);
    for (int i = 0; i < 9; i++)
        hs_tensor_set_flat(x, i, i + 1);
    assert_int_equal(hs_filter_box(y, x, 3, HS_BORDER_REFLECT101), HS_OK);
    assert_float_equal(hs_tensor_get_flat(y, 4), 5.0, 1e-6);
    assert_float_equal(hs_tensor_get_flat(y, 0), 33.0 / 9, 1e-5);  // rows {1,0,1} x cols {1,0,1}
    assert_int_equal(hs_filter_box(y, x, 3, HS_BORDER_REPLICATE), HS_OK);
    assert_float_equal(hs_tensor_get_flat(y, 0), 21.0 / 9, 1e-5);  // rows {0,0,1} x cols {0,0,1}
    assert_int_equal(hs_filter_box(y, x, 3, HS_BORDER_CONSTANT), HS_OK);
    assert_float_equal(hs_tensor_get_flat(y, 0), 12.0 / 9, 1e-5);  // zeros outside
    hs_tensor_free(x);
    hs_tensor_free(y);
}

// Direct 2-D reference of a separable filter with reflect101 borders.
static double sep_ref(const hs_tensor *x, int64_t y0, int64_t x0, int64_t c, const float *kx, int nx, const float *ky,
                      int ny) {
    int64_t H = x->shape[0], W = x->shape[1], C = x->ndim == 3 ? x->shape[2] : 1;
    double s = 0;
    for (int i = 0; i < ny; i++)
        for (int j = 0; j < nx; j++) {
            int64_t yy = hs_geometry_border_index(y0 + i - ny / 2, H, HS_BORDER_REFLECT101);
            int64_t xx = hs_geometry_border_index(x0 + j - nx / 2, W, HS_BORDER_REFLECT101);
            s += (double)ky[i] * (double)kx[j] * hs_tensor_get_flat(x, (yy * W + xx) * C + c);
        }
    return s;
}

static void test_separable_matches_direct_2d_filter(void **state) {
    (void)state;
    hs_tensor *x = random_img(HS_DTYPE_F32, 13, 17, 2, 3), *y = new_img(HS_DTYPE_F32, 13, 17, 2);
    float kx[5] = {0.1f, -0.3f, 1.2f, 0.4f, 0.05f}, ky[4] = {0.2f, 0.5f, 0.25f, -0.1f};  // even ny: anchor 2
    assert_int_equal(hs_filter_separable(y, x, kx, 5, ky, 4, HS_BORDER_REFLECT101), HS_OK);
    for (int64_t yy = 0; yy < 13; yy++)
        for (int64_t xx = 0; xx < 17; xx++)
            for (int64_t c = 0; c < 2; c++)
                assert_float_equal(hs_tensor_get_flat(y, (yy * 17 + xx) * 2 + c), sep_ref(x, yy, xx, c, kx, 5, ky, 4),
                                   1e-5);
    hs_tensor_free(x);
    hs_tensor_free(y);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Brute-force median with replicated borders.
static void median_ref(hs_tensor *out, const hs_tensor *x, int k) {
    int64_t H = x->shape[0], W = x->shape[1], C = x->ndim == 3 ? x->shape[2] : 1;
    double v[81 * 9];
    for (int64_t yy = 0; yy < H; yy++)
        for (int64_t xx = 0; xx < W; xx++)
            for (int64_t c = 0; c < C; c++) {
                int n = 0;
                for (int i = -k / 2; i <= k / 2; i++)
                    for (int j = -k / 2; j <= k / 2; j++) {
                        int64_t sy = yy + i < 0 ? 0 : yy + i >= H ? H - 1 : yy + i;
                        int64_t sx = xx + j < 0 ? 0 : xx + j >= W ? W - 1 : xx + j;
                        v[n++] = hs_tensor_get_flat(x, (sy * W + sx) * C + c);
                    }
                qsort(v, (size_t)n, sizeof *v, cmp_double);
                hs_tensor_set_flat(out, (yy * W + xx) * C + c, v[n / 2]);
            }
}

static void test_median_matches_brute_force_for_u8_and_f32(void **state) {
    (void)state;
    const int ks[4] = {3, 5, 7, 9};
    const hs_dtype dts[2] = {HS_DTYPE_U8, HS_DTYPE_F32};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < 4; i++) {
            hs_tensor *x = random_img(dts[d], 23, 301, 3, (uint64_t)(10 + i)), *y = new_img(dts[d], 23, 301, 3),
                      *r = new_img(dts[d], 23, 301, 3);
            assert_int_equal(hs_filter_median(y, x, ks[i]), HS_OK);
            median_ref(r, x, ks[i]);
            expect_tensors_equal(y, r);
            hs_tensor_free(x);
            hs_tensor_free(y);
            hs_tensor_free(r);
        }
}

static void test_median_of_tiny_and_gray_images(void **state) {
    (void)state;
    hs_tensor *x = random_img(HS_DTYPE_U8, 2, 1, 0, 5), *y = new_img(HS_DTYPE_U8, 2, 1, 0), *r = new_img(HS_DTYPE_U8, 2, 1, 0);
    assert_int_equal(hs_filter_median(y, x, 5), HS_OK);
    median_ref(r, x, 5);
    expect_tensors_equal(y, r);
    hs_tensor_free(x);
    hs_tensor_free(y);
    hs_tensor_free(r);
}

static void test_median_rejects_even_or_small_ksize(void **state) {
    (void)state;
    hs_tensor *x = new_img(HS_DTYPE_U8, 4, 4, 0), *y = new_img(HS_DTYPE_U8, 4, 4, 0);
    assert_int_equal(hs_filter_median(y, x, 4), HS_ERR_ARG);
    assert_string_equal(hs_last_error()->msg, "median: ksize must be odd >= 3, got 4");
    assert_int_equal(hs_filter_median(y, x, 1), HS_ERR_ARG);
    hs_tensor_free(x);
    hs_tensor_free(y);
}

static void test_filters_reject_bad_dtype_shape_and_destination(void **state) {
    (void)state;
    int64_t s4[4] = {2, 2, 2, 2}, s2[2] = {4, 4};
    hs_tensor *bad4, *i64, *x = new_img(HS_DTYPE_U8, 4, 4, 0), *wrong = new_img(HS_DTYPE_U8, 4, 5, 0),
                             *f = new_img(HS_DTYPE_F32, 4, 4, 0);
    assert_int_equal(hs_tensor_new(&bad4, HS_DTYPE_U8, 4, s4), HS_OK);
    assert_int_equal(hs_tensor_new(&i64, HS_DTYPE_I64, 2, s2), HS_OK);
    assert_int_equal(hs_filter_gaussian(bad4, bad4, 1.0, 0, HS_BORDER_REFLECT101), HS_ERR_SHAPE);
    assert_int_equal(hs_filter_box(i64, i64, 3, HS_BORDER_REFLECT101), HS_ERR_DTYPE);
    assert_non_null(strstr(hs_last_error()->msg, "I64"));
    assert_int_equal(hs_filter_gaussian(wrong, x, 1.0, 0, HS_BORDER_REFLECT101), HS_ERR_SHAPE);
    assert_int_equal(hs_filter_gaussian(f, x, 1.0, 0, HS_BORDER_REFLECT101), HS_ERR_DTYPE);
    assert_int_equal(hs_filter_gaussian(x, x, 1.0, 0, HS_BORDER_REFLECT101), HS_ERR_ARG);  // aliasing
    assert_int_equal(hs_filter_gaussian(f, f, -1.0, 0, HS_BORDER_REFLECT101), HS_ERR_ARG);
    assert_int_equal(hs_filter_box(wrong, wrong, 0, HS_BORDER_REFLECT101), HS_ERR_ARG);
    assert_int_equal(hs_filter_unsharp(f, f, 0, 1), HS_ERR_ARG);
    hs_tensor_free(bad4);
    hs_tensor_free(i64);
    hs_tensor_free(x);
    hs_tensor_free(wrong);
    hs_tensor_free(f);
}

static void test_unsharp_with_zero_amount_is_identity_and_sharpens_edges(void **state) {
    (void)state;
    hs_tensor *x = new_img(HS_DTYPE_U8, 1, 20, 0), *y = new_img(HS_DTYPE_U8, 1, 20, 0);
    for (int i = 10; i < 20; i++)
        hs_tensor_set_flat(x, i, 200);
    for (int i = 0; i < 10; i++)
        hs_tensor_set_flat(x, i, 50);
    assert_int_equal(hs_filter_unsharp(y, x, 1.5, 0), HS_OK);
    expect_tensors_equal(y, x);
    assert_int_equal(hs_filter_unsharp(y, x, 1.5, 1.0), HS_OK);
    assert_true(hs_tensor_get_flat(y, 9) < 50);    // undershoot before the edge
    assert_true(hs_tensor_get_flat(y, 10) > 200);  // overshoot after it
    assert_true(hs_tensor_get_flat(y, 0) == 50);
    hs_tensor_free(x);
    hs_tensor_free(y);
}

static void test_filters_do_not_depend_on_thread_count(void **state) {
    (void)state;
    hs_tensor *x = random_img(HS_DTYPE_U8, 67, 45, 3, 9), *a = new_img(HS_DTYPE_U8, 67, 45, 3),
              *b = new_img(HS_DTYPE_U8, 67, 45, 3);
    int saved = hs_get_num_threads();
    assert_int_equal(hs_set_num_threads(1), HS_OK);
    assert_int_equal(hs_filter_gaussian(a, x, 1.7, 0, HS_BORDER_REFLECT101), HS_OK);
    assert_int_equal(hs_set_num_threads(2), HS_OK);
    assert_int_equal(hs_filter_gaussian(b, x, 1.7, 0, HS_BORDER_REFLECT101), HS_OK);
    expect_tensors_equal(a, b);
    assert_int_equal(hs_filter_median(a, x, 5), HS_OK);
    assert_int_equal(hs_set_num_threads(1), HS_OK);
    assert_int_equal(hs_filter_median(b, x, 5), HS_OK);
    expect_tensors_equal(a, b);
    hs_set_num_threads(saved);
    hs_tensor_free(x);
    hs_tensor_free(a);
    hs_tensor_free(b);
}

static void test_filters_accept_strided_views(void **state) {
    (void)state;
    hs_tensor *x = random_img(HS_DTYPE_F32, 10, 12, 3, 4), *view, *c, *a = new_img(HS_DTYPE_F32, 10, 6, 3),
              *b = new_img(HS_DTYPE_F32, 10, 6, 3);
    assert_int_equal(hs_tensor_narrow(&view, x, 1, 3, 6), HS_OK);
    assert_int_equal(hs_tensor_clone(&c, view), HS_OK);
    assert_int_equal(hs_filter_gaussian(a, view, 1.0, 0, HS_BORDER_REPLICATE), HS_OK);
    assert_int_equal(hs_filter_gaussian(b, c, 1.0, 0, HS_BORDER_REPLICATE), HS_OK);
    expect_tensors_equal(a, b);
    hs_tensor_free(view);
    hs_tensor_free(c);
    hs_tensor_free(x);
    hs_tensor_free(a);
    hs_tensor_free(b);
}

// The register sorting networks (k = 3, 5), the histogram (U8, k >= 7) and the sort path against
// the plain-loop reference, on odd sizes, 1..4 channels, gray images and strided views.
static void test_median_fast_paths_match_plain_reference_on_odd_sizes_and_views(void **state) {
    (void)state;
    static const int64_t dims[][3] = {{1, 1, 3}, {2, 3, 1}, {37, 29, 3}, {5, 41, 0}, {23, 6, 4}, {64, 33, 2}};
    static const int ks[] = {3, 5, 7};
    uint64_t seed = 100;
    for (int dt = 0; dt < 2; dt++) {
        hs_dtype t = dt ? HS_DTYPE_F32 : HS_DTYPE_U8;
        for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
            for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
                const int64_t *d = dims[i];
                hs_tensor *x = random_img(t, d[0], d[1], d[2], seed++);
                hs_tensor *a = new_img(t, d[0], d[1], d[2]), *b = new_img(t, d[0], d[1], d[2]);
                assert_int_equal(hs_filter_median(a, x, ks[k]), HS_OK);
                assert_int_equal(hs_filter_median_ref(b, x, ks[k]), HS_OK);
                expect_tensors_equal(a, b);
                hs_tensor_free(x);
                hs_tensor_free(a);
                hs_tensor_free(b);
            }
        // a strided view: columns 4..34 of a 19x40x3 image
        hs_tensor *x = random_img(t, 19, 40, 3, seed++), *view;
        assert_int_equal(hs_tensor_narrow(&view, x, 1, 4, 31), HS_OK);
        for (size_t k = 0; k < 2; k++) {
            hs_tensor *a = new_img(t, 19, 31, 3), *b = new_img(t, 19, 31, 3);
            assert_int_equal(hs_filter_median(a, view, ks[k]), HS_OK);
            assert_int_equal(hs_filter_median_ref(b, view, ks[k]), HS_OK);
            expect_tensors_equal(a, b);
            hs_tensor_free(a);
            hs_tensor_free(b);
        }
        hs_tensor_free(view);
        hs_tensor_free(x);
    }
}

// The paired-tap paths (symmetric kernels): U8 box sums in 16-bit lanes against exact 2-D
// integer sums, and the F32 Gaussian against the generic separable engine with the same
// kernel, for reflect101 and constant borders (rows outside are zero).
static double box_ref(const hs_tensor *x, int64_t y0, int64_t x0, int64_t c, int k, hs_border b) {
    int64_t H = x->shape[0], W = x->shape[1], C = x->shape[2];
    double s = 0;
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) {
            int64_t yy = hs_geometry_border_index(y0 + i - k / 2, H, b);
            int64_t xx = hs_geometry_border_index(x0 + j - k / 2, W, b);
            if (yy >= 0 && xx >= 0)
                s += hs_tensor_get_flat(x, (yy * W + xx) * C + c);
        }
    return s;
}

static void test_symmetric_paths_match_direct_sums_and_generic_engine(void **state) {
    (void)state;
    static const hs_border borders[2] = {HS_BORDER_REFLECT101, HS_BORDER_CONSTANT};
    hs_tensor *x = random_img(HS_DTYPE_U8, 23, 19, 3, 5), *y = new_img(HS_DTYPE_U8, 23, 19, 3);
    hs_tensor *xf = random_img(HS_DTYPE_F32, 23, 19, 3, 6), *a = new_img(HS_DTYPE_F32, 23, 19, 3),
              *b = new_img(HS_DTYPE_F32, 23, 19, 3);
    float k[17];
    assert_int_equal(hs_filter_gaussian_kernel(k, 17, 2.0), HS_OK);
    for (int bi = 0; bi < 2; bi++) {
        assert_int_equal(hs_filter_box(y, x, 5, borders[bi]), HS_OK);
        for (int64_t yy = 0; yy < 23; yy++)
            for (int64_t xx = 0; xx < 19; xx++)
                for (int64_t c = 0; c < 3; c++)
                    assert_float_equal(hs_tensor_get_flat(y, (yy * 19 + xx) * 3 + c),
                                       nearbyint(box_ref(x, yy, xx, c, 5, borders[bi]) / 25), 0);
        assert_int_equal(hs_filter_gaussian(a, xf, 2.0, 0, borders[bi]), HS_OK);
        assert_int_equal(hs_filter_separable(b, xf, k, 17, k, 17, borders[bi]), HS_OK);
        hs_expect_close(a->data, b->data, hs_tensor_numel(a), 1e-6, 1e-5);
    }
    hs_tensor_free(x);
    hs_tensor_free(y);
    hs_tensor_free(xf);
    hs_tensor_free(a);
    hs_tensor_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symmetric_paths_match_direct_sums_and_generic_engine),
        cmocka_unit_test(test_gaussian_ksize_follows_opencv_rule),
        cmocka_unit_test(test_gaussian_kernel_matches_cv2_get_gaussian_kernel),
        cmocka_unit_test(test_gaussian_u8_keeps_constant_image_exactly),
        cmocka_unit_test(test_gaussian_u8_impulse_gives_opencv_fixed_point_kernel),
        cmocka_unit_test(test_box_3x3_hand_checked_reflect101_and_replicate),
        cmocka_unit_test(test_separable_matches_direct_2d_filter),
        cmocka_unit_test(test_median_matches_brute_force_for_u8_and_f32),
        cmocka_unit_test(test_median_of_tiny_and_gray_images),
        cmocka_unit_test(test_median_rejects_even_or_small_ksize),
        cmocka_unit_test(test_filters_reject_bad_dtype_shape_and_destination),
        cmocka_unit_test(test_unsharp_with_zero_amount_is_identity_and_sharpens_edges),
        cmocka_unit_test(test_filters_do_not_depend_on_thread_count),
        cmocka_unit_test(test_filters_accept_strided_views),
        cmocka_unit_test(test_median_fast_paths_match_plain_reference_on_odd_sizes_and_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
