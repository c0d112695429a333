// tests/test_contrast.c: percentile stretch, gamma, histogram equalisation (cv2.equalizeHist
// formula) and CLAHE (single-tile case reduces to a cumulative histogram; in-place; bad args).
// Dimension letters: H, W, C.
#include "hs_test.h"

#include <math.h>
#include <string.h>

#include "contrast.h"
#include "tensor.h"

static hs_tensor *new_img(hs_dtype dt, int64_t h, int64_t w, int64_t c) {
    int64_t shape[3] = {h, w, c};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, dt, c ? 3 : 2, shape), HS_OK);
    return t;
}

static void test_equalize_hist_follows_opencv_formula(void **state) {
    (void)state;
    // values 10 (x4), 20 (x2), 30 (x1), 200 (x1): total 8, first bin 4 -> scale 255/4
    const uint8_t v[8] = {10, 10, 10, 10, 20, 20, 30, 200};
    hs_tensor *in = new_img(HS_DTYPE_U8, 2, 4, 0), *out = new_img(HS_DTYPE_U8, 2, 4, 0);
    memcpy(in->data, v, 8);
    assert_int_equal(hs_contrast_equalize_hist(out, in), HS_OK);
    // lut[10] = 0, lut[20] = round(2*63.75) = 128 (127.5 half to even), lut[30] = round(191.25), lut[200] = 255
    const uint8_t want[8] = {0, 0, 0, 0, 128, 128, 191, 255};
    assert_memory_equal(out->data, want, 8);
    memset(in->data, 77, 8);  // constant image maps to itself
    assert_int_equal(hs_contrast_equalize_hist(in, in), HS_OK);
    for (int i = 0; i < 8; i++)
        assert_int_equal(((uint8_t *)in->data)[i], 77);
    hs_tensor *f = new_img(HS_DTYPE_F32, 2, 4, 0);
    assert_int_equal(hs_contrast_equalize_hist(f, f), HS_ERR_DTYPE);
    hs_tensor_free(f);
    hs_tensor_free(out);
    hs_tensor_free(in);
}

static void test_auto_contrast_stretches_percentiles_per_channel_or_jointly(void **state) {
    (void)state;
    hs_tensor *in = new_img(HS_DTYPE_U8, 10, 10, 2), *out = new_img(HS_DTYPE_U8, 10, 10, 2);
    uint8_t *p = in->data;
    for (int i = 0; i < 100; i++) {
        p[2 * i] = (uint8_t)(50 + i);       // channel 0: 50..149
        p[2 * i + 1] = (uint8_t)(100 + i / 2);  // channel 1: 100..149
    }
    assert_int_equal(hs_contrast_auto(out, in, 0, 100, 0), HS_OK);
    const uint8_t *q = out->data;
    assert_int_equal(q[0], 0);
    assert_int_equal(q[2 * 99], 255);
    assert_int_equal(q[1], 0);
    assert_int_equal(q[2 * 99 + 1], 255);
    assert_int_equal(hs_contrast_auto(out, in, 0, 100, 1), HS_OK);  // joint: 50..149 for both
    assert_int_equal(q[1], (int)lrint(255.0 * 50 / 99));
    assert_int_equal(hs_contrast_auto(out, in, 5, 95, 0), HS_OK);   // clips the tails
    assert_int_equal(q[2 * 2], 0);
    assert_int_equal(q[2 * 97], 255);
    assert_int_equal(hs_contrast_auto(out, in, 50, 50, 0), HS_ERR_ARG);
    hs_tensor *f = new_img(HS_DTYPE_F32, 1, 5, 0), *fo = new_img(HS_DTYPE_F32, 1, 5, 0);
    const float fv[5] = {0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    memcpy(f->data, fv, sizeof fv);
    assert_int_equal(hs_contrast_auto(fo, f, 0, 100, 0), HS_OK);
    const float fw[5] = {0, 0.25f, 0.5f, 0.75f, 1};
    hs_expect_close(fo->data, fw, 5, 1e-6, 0);
    hs_tensor_free(fo);
    hs_tensor_free(f);
    hs_tensor_free(out);
    hs_tensor_free(in);
}

static void test_gamma_uses_rounded_table_and_rejects_nonpositive(void **state) {
    (void)state;
    const uint8_t v[4] = {0, 128, 255, 64};
    hs_tensor *in = new_img(HS_DTYPE_U8, 1, 4, 0), *out = new_img(HS_DTYPE_U8, 1, 4, 0);
    memcpy(in->data, v, 4);
    assert_int_equal(hs_contrast_gamma(out, in, 2.0), HS_OK);
    const uint8_t want[4] = {0, 64, 255, 16};  // round(255*(v/255)^2)
    assert_memory_equal(out->data, want, 4);
    assert_int_equal(hs_contrast_gamma(out, in, 1.0), HS_OK);
    assert_memory_equal(out->data, v, 4);
    assert_int_equal(hs_contrast_gamma(out, in, 0.0), HS_ERR_ARG);
    hs_tensor_free(out);
    hs_tensor_free(in);
}

static void test_clahe_single_tile_without_clip_is_the_scaled_cdf(void **state) {
    (void)state;
    hs_tensor *in = new_img(HS_DTYPE_U8, 16, 16, 0), *out = new_img(HS_DTYPE_U8, 16, 16, 0);
    uint8_t *p = in->data;
    int64_t hist[256] = {0};
    for (int i = 0; i < 256; i++) {
        p[i] = (uint8_t)((i * i) % 97 + 40);
        hist[p[i]]++;
    }
    assert_int_equal(hs_contrast_clahe(out, in, 0, 1, 1), HS_OK);
    int64_t cdf[256], sum = 0;
    for (int v = 0; v < 256; v++)
        cdf[v] = sum += hist[v];
    for (int i = 0; i < 256; i++)
        assert_int_equal(((uint8_t *)out->data)[i], (int)lrintf((float)cdf[p[i]] * (255.0f / 256.0f)));
    // clipping flattens the mapping: a clipped result never stretches more than the unclipped one
    hs_tensor *clipped = new_img(HS_DTYPE_U8, 16, 16, 0);
    assert_int_equal(hs_contrast_clahe(clipped, in, 1.0, 2, 2), HS_OK);
    assert_int_equal(hs_contrast_clahe(in, in, 1.0, 2, 2), HS_OK);  // in place gives the same
    assert_memory_equal(in->data, clipped->data, 256);
    assert_int_equal(hs_contrast_clahe(out, in, 2.0, 0, 8), HS_ERR_ARG);
    hs_tensor *odd = new_img(HS_DTYPE_U8, 3, 5, 3), *oo = new_img(HS_DTYPE_U8, 3, 5, 3);  // smaller than the grid
    assert_int_equal(hs_contrast_clahe(oo, odd, 2.0, 8, 8), HS_OK);
    hs_tensor_free(oo);
    hs_tensor_free(odd);
    hs_tensor_free(clipped);
    hs_tensor_free(out);
    hs_tensor_free(in);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equalize_hist_follows_opencv_formula),
        cmocka_unit_test(test_auto_contrast_stretches_percentiles_per_channel_or_jointly),
        cmocka_unit_test(test_gamma_uses_rounded_table_and_rejects_nonpositive),
        cmocka_unit_test(test_clahe_single_tile_without_clip_is_the_scaled_cdf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
