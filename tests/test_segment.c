// tests/test_segment.c: thresholds (fixed, Otsu as cv2, adaptive), connected components (4/8,
// OpenCV's numbering order, stats on a synthetic image), the exact distance transform against
// brute force, watershed and the nuclei splitter on two touching discs, and argument errors.
#include "hs_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "segment.h"

static hs_tensor *new2(hs_dtype dt, int64_t h, int64_t w) {
    int64_t shape[2] = {h, w};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, dt, 2, shape), HS_OK);
    return t;
}

static void test_threshold_and_inverse(void **state) {
    (void)state;
    hs_tensor *x = new2(HS_DTYPE_U8, 1, 4), *m = new2(HS_DTYPE_U8, 1, 4);
    for (int i = 0; i < 4; i++)
        hs_tensor_set_flat(x, i, 100 + i);
    assert_int_equal(hs_segment_threshold(m, x, 101.5, 0), HS_OK);
    assert_true(hs_tensor_get_flat(m, 1) == 0 && hs_tensor_get_flat(m, 2) == 255);
    assert_int_equal(hs_segment_threshold(m, x, 101, 1), HS_OK);  // inverse: 255 where <= t
    assert_true(hs_tensor_get_flat(m, 1) == 255 && hs_tensor_get_flat(m, 2) == 0);
    hs_tensor_free(x);
    hs_tensor_free(m);
}

static void test_otsu_picks_first_maximum_like_cv2(void **state) {
    (void)state;
    // cv2.threshold([50]*8 + [200]*8, 0, 255, BINARY_INV + OTSU) -> 50
    hs_tensor *x = new2(HS_DTYPE_U8, 2, 8), *m = new2(HS_DTYPE_U8, 2, 8);
    for (int i = 0; i < 16; i++)
        hs_tensor_set_flat(x, i, i < 8 ? 50 : 200);
    double t = -1;
    assert_int_equal(hs_segment_otsu(m, &t, x, 1), HS_OK);
    assert_true(t == 50);
    assert_true(hs_tensor_get_flat(m, 0) == 255 && hs_tensor_get_flat(m, 15) == 0);
    // a constant image: no split, threshold 0 (cv2 too)
    hs_tensor_fill(x, 77);
    assert_int_equal(hs_segment_otsu(NULL, &t, x, 0), HS_OK);
    assert_true(t == 0);
    hs_tensor *f = new2(HS_DTYPE_F32, 2, 8);
    assert_int_equal(hs_segment_otsu(NULL, &t, f, 0), HS_ERR_DTYPE);
    hs_tensor_free(f);
    hs_tensor_free(x);
    hs_tensor_free(m);
}

static void test_adaptive_threshold_finds_dark_spot_on_gradient(void **state) {
    (void)state;
    hs_tensor *x = new2(HS_DTYPE_U8, 20, 40), *m = new2(HS_DTYPE_U8, 20, 40);
    for (int64_t y = 0; y < 20; y++)
        for (int64_t c = 0; c < 40; c++)
            hs_tensor_set_flat(x, y * 40 + c, 60 + 4 * (double)c);  // a strong horizontal gradient
    hs_tensor_set_flat(x, 10 * 40 + 30, 120);                         // dark spot on bright background
    for (int method = 0; method < 2; method++) {
        assert_int_equal(hs_segment_adaptive_threshold(m, x, 7, 5, (hs_adaptive_method)method, 1), HS_OK);
        assert_true(hs_tensor_get_flat(m, 10 * 40 + 30) == 255);
        assert_true(hs_tensor_get_flat(m, 3 * 40 + 30) == 0);
        assert_true(hs_tensor_get_flat(m, 3 * 40 + 3) == 0);
    }
    assert_int_equal(hs_segment_adaptive_threshold(m, x, 4, 5, HS_ADAPTIVE_MEAN, 0), HS_ERR_ARG);
    hs_tensor_free(x);
    hs_tensor_free(m);
}

static void test_labels_follow_opencv_order_for_8_and_4_connectivity(void **state) {
    (void)state;
    // cv2.connectedComponents: m[0,10] and m[1,0] set; 8-way labels (1,0) first (2x2 blocks),
    // 4-way labels (0,10) first (raster order)
    hs_tensor *m = new2(HS_DTYPE_U8, 4, 12), *l = new2(HS_DTYPE_I32, 4, 12);
    hs_tensor_set_flat(m, 10, 255);
    hs_tensor_set_flat(m, 12, 255);
    int64_t n = 0;
    assert_int_equal(hs_segment_label(l, &n, m, 8), HS_OK);
    assert_int_equal(n, 2);
    assert_true(hs_tensor_get_flat(l, 12) == 1 && hs_tensor_get_flat(l, 10) == 2);
    assert_int_equal(hs_segment_label(l, &n, m, 4), HS_OK);
    assert_true(hs_tensor_get_flat(l, 10) == 1 && hs_tensor_get_flat(l, 12) == 2);
    // diagonal neighbours: one component with 8, two with 4
    hs_tensor_fill(m, 0);
    hs_tensor_set_flat(m, 0, 1);
    hs_tensor_set_flat(m, 13, 1);
    assert_int_equal(hs_segment_label(l, &n, m, 8), HS_OK);
    assert_int_equal(n, 1);
    assert_int_equal(hs_segment_label(l, &n, m, 4), HS_OK);
    assert_int_equal(n, 2);
    assert_int_equal(hs_segment_label(l, &n, m, 6), HS_ERR_ARG);
    hs_tensor_free(m);
    hs_tensor_free(l);
}

static void test_component_stats_on_synthetic_image(void **state) {
    (void)state;
    // a 3x4 rectangle at rows 1..3, cols 2..5 and an L of 3 pixels; image channel 0 = 10*row
    hs_tensor *m = new2(HS_DTYPE_U8, 8, 10), *l = new2(HS_DTYPE_I64, 8, 10);
    int64_t ishape[3] = {8, 10, 2};
    hs_tensor *img;
    assert_int_equal(hs_tensor_new(&img, HS_DTYPE_F32, 3, ishape), HS_OK);
    for (int64_t y = 0; y < 8; y++)
        for (int64_t x = 0; x < 10; x++) {
            hs_tensor_set_flat(img, (y * 10 + x) * 2, 10.0 * (double)y);
            hs_tensor_set_flat(img, (y * 10 + x) * 2 + 1, 1.0);
        }
    for (int64_t y = 1; y <= 3; y++)
        for (int64_t x = 2; x <= 5; x++)
            hs_tensor_set_flat(m, y * 10 + x, 255);
    hs_tensor_set_flat(m, 6 * 10 + 8, 255);
    hs_tensor_set_flat(m, 7 * 10 + 8, 255);
    hs_tensor_set_flat(m, 7 * 10 + 9, 255);
    int64_t n;
    assert_int_equal(hs_segment_label(l, &n, m, 8), HS_OK);
    assert_int_equal(n, 2);
    hs_component s[2];
    assert_int_equal(hs_segment_stats(s, n, l, img), HS_OK);
    assert_int_equal(s[0].area, 12);
    assert_int_equal(s[0].x, 2);
    assert_int_equal(s[0].y, 1);
    assert_int_equal(s[0].w, 4);
    assert_int_equal(s[0].h, 3);
    assert_float_equal(s[0].cx, 3.5, 1e-12);
    assert_float_equal(s[0].cy, 2.0, 1e-12);
    assert_float_equal(s[0].mean[0], 20.0, 1e-12);
    assert_float_equal(s[0].mean[1], 1.0, 1e-12);
    assert_int_equal(s[1].area, 3);
    assert_int_equal(s[1].w, 2);
    assert_int_equal(s[1].h, 2);
    assert_float_equal(s[1].cx, 25.0 / 3, 1e-12);
    assert_float_equal(s[1].mean[0], 200.0 / 3, 1e-9);
    hs_tensor_free(img);
    hs_tensor_free(m);
    hs_tensor_free(l);
}

static void test_distance_transform_is_exact_euclidean(void **state) {
    (void)state;
    const int64_t H = 17, W = 23;
    hs_tensor *m = new2(HS_DTYPE_U8, H, W), *d = new2(HS_DTYPE_F32, H, W);
    for (int64_t i = 0; i < H * W; i++)
        hs_tensor_set_flat(m, i, hs_rng_uniform(11, 0, (uint64_t)i) < 0.9f ? 255 : 0);
    assert_int_equal(hs_segment_distance(d, m), HS_OK);
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            double best = INFINITY;
            for (int64_t yy = 0; yy < H; yy++)
                for (int64_t xx = 0; xx < W; xx++)
                    if (hs_tensor_get_flat(m, yy * W + xx) == 0) {
                        double e = sqrt((double)((y - yy) * (y - yy) + (x - xx) * (x - xx)));
                        best = e < best ? e : best;
                    }
            assert_float_equal(hs_tensor_get_flat(d, y * W + x), best, 1e-5);
        }
    // no background anywhere: +inf
    hs_tensor_fill(m, 1);
    assert_int_equal(hs_segment_distance(d, m), HS_OK);
    assert_true(isinf(hs_tensor_get_flat(d, 0)));
    hs_tensor_free(m);
    hs_tensor_free(d);
}

static void draw_two_touching_discs(hs_tensor *m, int64_t H, int64_t W) {
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            double a = (double)((y - 20) * (y - 20) + (x - 18) * (x - 18)), b = (double)((y - 20) * (y - 20) + (x - 34) * (x - 34));
            hs_tensor_set_flat(m, y * W + x, a <= 100 || b <= 100 ? 255 : 0);  // radius 10, centres 16 apart
        }
}

static void test_watershed_splits_two_touching_discs(void **state) {
    (void)state;
    const int64_t H = 40, W = 52;
    hs_tensor *m = new2(HS_DTYPE_U8, H, W), *l = new2(HS_DTYPE_I32, H, W), *cc = new2(HS_DTYPE_I32, H, W);
    draw_two_touching_discs(m, H, W);
    int64_t n = 0;
    assert_int_equal(hs_segment_label(cc, &n, m, 8), HS_OK);
    assert_int_equal(n, 1);  // one blob to the eye of connected components
    assert_int_equal(hs_segment_split_nuclei(l, &n, m, 5), HS_OK);
    assert_int_equal(n, 2);
    int64_t a = (int64_t)hs_tensor_get_flat(l, 20 * W + 18), b = (int64_t)hs_tensor_get_flat(l, 20 * W + 34);
    assert_true(a >= 1 && b >= 1 && a != b);
    int64_t area[3] = {0, 0, 0};
    for (int64_t i = 0; i < H * W; i++) {
        int64_t v = (int64_t)hs_tensor_get_flat(l, i);
        assert_true((v != 0) == (hs_tensor_get_flat(m, i) != 0));  // exactly the mask is labelled
        area[v]++;
    }
    assert_true(llabs(area[1] - area[2]) <= W / 4);  // the split runs through the neck
    // the watershed on its own, from two hand-placed markers on -distance
    hs_tensor *d = new2(HS_DTYPE_F32, H, W);
    assert_int_equal(hs_segment_distance(d, m), HS_OK);
    for (int64_t i = 0; i < H * W; i++)
        hs_tensor_set_flat(d, i, -hs_tensor_get_flat(d, i));
    hs_tensor_fill(cc, 0);
    hs_tensor_set_flat(cc, 20 * W + 18, 1);
    hs_tensor_set_flat(cc, 20 * W + 34, 2);
    assert_int_equal(hs_segment_watershed(cc, d, m, 4), HS_OK);
    assert_true(hs_tensor_get_flat(cc, 20 * W + 12) == 1 && hs_tensor_get_flat(cc, 20 * W + 40) == 2);
    assert_true(hs_tensor_get_flat(cc, 0) == 0);
    hs_tensor_free(d);
    hs_tensor_free(m);
    hs_tensor_free(l);
    hs_tensor_free(cc);
}

static void test_segment_rejects_bad_shapes_and_dtypes(void **state) {
    (void)state;
    hs_tensor *m = new2(HS_DTYPE_U8, 4, 4), *lf = new2(HS_DTYPE_F32, 4, 4), *l5 = new2(HS_DTYPE_I32, 4, 5);
    int64_t s3[3] = {4, 4, 3}, n;
    hs_tensor *rgb;
    assert_int_equal(hs_tensor_new(&rgb, HS_DTYPE_U8, 3, s3), HS_OK);
    assert_int_equal(hs_segment_label(lf, &n, m, 8), HS_ERR_DTYPE);
    assert_int_equal(hs_segment_label(l5, &n, m, 8), HS_ERR_SHAPE);
    assert_int_equal(hs_segment_label(l5, &n, rgb, 8), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "channels"));
    assert_int_equal(hs_segment_distance(l5, m), HS_ERR_SHAPE);
    assert_int_equal(hs_segment_split_nuclei(l5, &n, m, 0), HS_ERR_ARG);
    assert_int_equal(hs_segment_otsu(NULL, &(double){0}, rgb, 0), HS_ERR_SHAPE);
    hs_tensor_free(rgb);
    hs_tensor_free(m);
    hs_tensor_free(lf);
    hs_tensor_free(l5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_and_inverse),
        cmocka_unit_test(test_otsu_picks_first_maximum_like_cv2),
        cmocka_unit_test(test_adaptive_threshold_finds_dark_spot_on_gradient),
        cmocka_unit_test(test_labels_follow_opencv_order_for_8_and_4_connectivity),
        cmocka_unit_test(test_component_stats_on_synthetic_image),
        cmocka_unit_test(test_distance_transform_is_exact_euclidean),
        cmocka_unit_test(test_watershed_splits_two_touching_discs),
        cmocka_unit_test(test_segment_rejects_bad_shapes_and_dtypes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
