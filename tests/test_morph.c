// tests/test_morph.c: structuring elements against cv2.getStructuringElement, erode/dilate/
// open/close on hand-checked masks and against a brute-force reference (outside pixels ignored),
// F32 images, and errors for bad shapes, dtypes and names.
#include "hs_test.h"

#include <math.h>
#include <string.h>

#include "morph.h"
#include "rng.h"

static hs_tensor *new2(hs_dtype dt, int64_t h, int64_t w) {
    int64_t shape[2] = {h, w};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, dt, 2, shape), HS_OK);
    return t;
}

static void expect_pattern(const hs_tensor *k, const char *rows) {
    // rows: kh strings of '0'/'1' concatenated
    for (int64_t i = 0; i < hs_tensor_numel(k); i++)
        if (hs_tensor_get_flat(k, i) != (double)(rows[i] - '0'))
            fail_msg("element %lld: got %g want %c", (long long)i, hs_tensor_get_flat(k, i), rows[i]);
}

static void test_structuring_elements_match_cv2(void **state) {
    (void)state;
    struct {
        hs_morph_shape s;
        int kh, kw;
        const char *p;
    } cases[] = {
        {HS_MORPH_ELLIPSE, 3, 3, "010111010"},
        {HS_MORPH_ELLIPSE, 5, 5, "0010011111111111111100100"},
        {HS_MORPH_ELLIPSE, 7, 7, "0001000" "0111110" "1111111" "1111111" "1111111" "0111110" "0001000"},
        {HS_MORPH_ELLIPSE, 5, 7, "0001000" "1111111" "1111111" "1111111" "0001000"},  // (kh 5, kw 7)
        {HS_MORPH_CROSS, 5, 5, "0010000100111110010000100"},
        {HS_MORPH_RECT, 2, 3, "111111"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        hs_tensor *k = new2(HS_DTYPE_U8, cases[c].kh, cases[c].kw);
        assert_int_equal(hs_morph_structuring_element(k, cases[c].s), HS_OK);
        expect_pattern(k, cases[c].p);
        hs_tensor_free(k);
    }
    // 9x9 ellipse: rows 1 and 7 span columns 1..7 (cv2)
    hs_tensor *k9 = new2(HS_DTYPE_U8, 9, 9);
    assert_int_equal(hs_morph_structuring_element(k9, HS_MORPH_ELLIPSE), HS_OK);
    expect_pattern(k9, "000010000" "011111110" "011111110" "111111111" "111111111" "111111111" "011111110"
                       "011111110" "000010000");
    hs_tensor_free(k9);
}

// Brute force: min/max over members, outside pixels ignored.
static double morph_ref(const hs_tensor *x, const hs_tensor *k, int64_t y0, int64_t x0, int dilate) {
    int64_t H = x->shape[0], W = x->shape[1], kh = k->shape[0], kw = k->shape[1];
    double best = dilate ? -1e30 : 1e30;
    for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++) {
            if (hs_tensor_get_flat(k, i * kw + j) == 0)
                continue;
            int64_t yy = y0 + i - kh / 2, xx = x0 + j - kw / 2;
            if (yy < 0 || yy >= H || xx < 0 || xx >= W)
                continue;
            double v = hs_tensor_get_flat(x, yy * W + xx);
            best = dilate ? (v > best ? v : best) : (v < best ? v : best);
        }
    return best;
}

static void test_erode_dilate_match_brute_force_with_outside_ignored(void **state) {
    (void)state;
    const hs_dtype dts[2] = {HS_DTYPE_U8, HS_DTYPE_F32};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 3; s++) {
            hs_tensor *x = new2(dts[d], 19, 23), *y = new2(dts[d], 19, 23), *k = new2(HS_DTYPE_U8, 5, 7);
            for (int64_t i = 0; i < 19 * 23; i++)
                hs_tensor_set_flat(x, i, floor((double)hs_rng_uniform(3, 1, (uint64_t)i) * 250));
            assert_int_equal(hs_morph_structuring_element(k, (hs_morph_shape)s), HS_OK);
            for (int dil = 0; dil < 2; dil++) {
                assert_int_equal(hs_morph_apply(y, x, k, dil ? HS_MORPH_DILATE : HS_MORPH_ERODE), HS_OK);
                for (int64_t yy = 0; yy < 19; yy++)
                    for (int64_t xx = 0; xx < 23; xx++)
                        assert_true(hs_tensor_get_flat(y, yy * 23 + xx) == morph_ref(x, k, yy, xx, dil));
            }
            hs_tensor_free(x);
            hs_tensor_free(y);
            hs_tensor_free(k);
        }
}

static void test_open_removes_specks_and_close_fills_holes(void **state) {
    (void)state;
    hs_tensor *x = new2(HS_DTYPE_U8, 12, 12), *y = new2(HS_DTYPE_U8, 12, 12), *k = new2(HS_DTYPE_U8, 3, 3);
    assert_int_equal(hs_morph_structuring_element(k, HS_MORPH_RECT), HS_OK);
    for (int64_t i = 2; i < 9; i++)
        for (int64_t j = 2; j < 9; j++)
            hs_tensor_set_flat(x, i * 12 + j, 255);
    hs_tensor_set_flat(x, 5 * 12 + 5, 0);    // a one-pixel hole inside the square
    hs_tensor_set_flat(x, 0 * 12 + 11, 255); // a one-pixel speck in a corner (touching the border)
    assert_int_equal(hs_morph_apply(y, x, k, HS_MORPH_OPEN), HS_OK);
    assert_true(hs_tensor_get_flat(y, 11) == 0);
    assert_true(hs_tensor_get_flat(y, 2 * 12 + 2) == 255);  // square corners survive an opening
    assert_int_equal(hs_morph_apply(y, x, k, HS_MORPH_CLOSE), HS_OK);
    assert_true(hs_tensor_get_flat(y, 5 * 12 + 5) == 255);
    assert_true(hs_tensor_get_flat(y, 11) == 255);  // closing keeps the speck
    // erosion of an all-foreground image stays foreground at the border (outside ignored)
    hs_tensor_fill(x, 255);
    assert_int_equal(hs_morph_apply(y, x, k, HS_MORPH_ERODE), HS_OK);
    assert_true(hs_tensor_get_flat(y, 0) == 255);
    hs_tensor_free(x);
    hs_tensor_free(y);
    hs_tensor_free(k);
}

static void test_morphology_rejects_bad_arguments(void **state) {
    (void)state;
    hs_tensor *x = new2(HS_DTYPE_U8, 4, 4), *y = new2(HS_DTYPE_U8, 4, 4), *k = new2(HS_DTYPE_U8, 3, 3);
    hs_tensor *i32 = new2(HS_DTYPE_I32, 4, 4), *kf = new2(HS_DTYPE_F32, 3, 3);
    hs_morph_shape s;
    hs_morph_op op;
    assert_int_equal(hs_morph_shape_from_name(&s, "diamond"), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "diamond"));
    assert_int_equal(hs_morph_op_from_name(&op, "close"), HS_OK);
    assert_int_equal(op, HS_MORPH_CLOSE);
    assert_int_equal(hs_morph_apply(i32, i32, k, HS_MORPH_ERODE), HS_ERR_DTYPE);
    assert_int_equal(hs_morph_apply(y, x, NULL, HS_MORPH_ERODE), HS_ERR_SHAPE);
    assert_int_equal(hs_morph_apply(x, x, k, HS_MORPH_ERODE), HS_ERR_ARG);
    assert_int_equal(hs_morph_structuring_element(kf, HS_MORPH_RECT), HS_ERR_SHAPE);
    hs_tensor_free(x);
    hs_tensor_free(y);
    hs_tensor_free(k);
    hs_tensor_free(i32);
    hs_tensor_free(kf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structuring_elements_match_cv2),
        cmocka_unit_test(test_erode_dilate_match_brute_force_with_outside_ignored),
        cmocka_unit_test(test_open_removes_specks_and_close_fills_holes),
        cmocka_unit_test(test_morphology_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
