// tests/test_geometry.c: crop, pad (constant/reflect101/replicate/reflect), flip, rot90 against
// numpy's conventions, resize values checked against cv2.resize by hand (nearest, bilinear in
// fixed point, area), the vectorised U8 bilinear path against the plain loops, tiling with the
// tissue test, and argument errors.
#include "hs_test.h"

#include <math.h>

#include <string.h>

#include "geometry.h"

static hs_tensor *new_img(hs_dtype dt, int64_t h, int64_t w, int64_t c) {
    int64_t shape[3] = {h, w, c};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, dt, c ? 3 : 2, shape), HS_OK);
    return t;
}

static void expect_row(const hs_tensor *t, const double *want, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (hs_tensor_get_flat(t, i) != want[i])
            fail_msg("element %lld: got %g want %g", (long long)i, hs_tensor_get_flat(t, i), want[i]);
}

static void test_crop_copies_the_window_and_rejects_outside(void **state) {
    (void)state;
    hs_tensor *x = new_img(HS_DTYPE_U8, 4, 5, 0), *y = new_img(HS_DTYPE_U8, 2, 3, 0);
    for (int i = 0; i < 20; i++)
        hs_tensor_set_flat(x, i, i);
    assert_int_equal(hs_geometry_crop(y, x, 1, 2), HS_OK);
    const double want[6] = {11, 12, 13, 16, 17, 18};
    expect_row(y, want, 6);
    assert_int_equal(hs_geometry_crop(y, x, 3, 2), HS_ERR_ARG);
    assert_int_equal(hs_geometry_crop(y, x, -1, 0), HS_ERR_ARG);
    hs_tensor_free(x);
    hs_tensor_free(y);
}

static void test_pad_border_modes_on_a_row(void **state) {
    (void)state;
    hs_tensor *x = new_img(HS_DTYPE_F32, 1, 4, 0), *y = new_img(HS_DTYPE_F32, 1, 10, 0);
    for (int i = 0; i < 4; i++)
        hs_tensor_set_flat(x, i, i + 1);  // a b c d = 1 2 3 4
    struct {
        hs_border b;
        double want[10];
    } cases[] = {
        {HS_BORDER_REFLECT101, {4, 3, 2, 1, 2, 3, 4, 3, 2, 1}},
        {HS_BORDER_REPLICATE, {1, 1, 1, 1, 2, 3, 4, 4, 4, 4}},
        {HS_BORDER_REFLECT, {3, 2, 1, 1, 2, 3, 4, 4, 3, 2}},
        {HS_BORDER_CONSTANT, {9, 9, 9, 1, 2, 3, 4, 9, 9, 9}},
    };
    for (int c = 0; c < 4; c++) {
        assert_int_equal(hs_geometry_pad(y, x, 0, 3, cases[c].b, 9), HS_OK);
        expect_row(y, cases[c].want, 10);
    }
    hs_border b;
    assert_int_equal(hs_geometry_border_from_name(&b, "reflect_101"), HS_OK);
    assert_int_equal(b, HS_BORDER_REFLECT101);
    assert_int_equal(hs_geometry_border_from_name(&b, "wrap"), HS_ERR_ARG);
    hs_tensor_free(x);
    hs_tensor_free(y);
}

static void test_flip_and_rot90_follow_numpy(void **state) {
    (void)state;
    // m = [[a,b,c],[d,e,f]] = [[1,2,3],[4,5,6]]; np.rot90(m) = [[3,6],[2,5],[1,4]]
    hs_tensor *x = new_img(HS_DTYPE_U8, 2, 3, 1), *r = new_img(HS_DTYPE_U8, 3, 2, 1), *f = new_img(HS_DTYPE_U8, 2, 3, 1);
    for (int i = 0; i < 6; i++)
        hs_tensor_set_flat(x, i, i + 1);
    assert_int_equal(hs_geometry_rot90(r, x, 1), HS_OK);
    const double r1[6] = {3, 6, 2, 5, 1, 4}, r3[6] = {4, 1, 5, 2, 6, 3}, fh[6] = {3, 2, 1, 6, 5, 4},
                 fv[6] = {4, 5, 6, 1, 2, 3}, r2[6] = {6, 5, 4, 3, 2, 1};
    expect_row(r, r1, 6);
    assert_int_equal(hs_geometry_rot90(r, x, -1), HS_OK);
    expect_row(r, r3, 6);
    assert_int_equal(hs_geometry_rot90(f, x, 2), HS_OK);
    expect_row(f, r2, 6);
    assert_int_equal(hs_geometry_flip(f, x, 1), HS_OK);
    expect_row(f, fh, 6);
    assert_int_equal(hs_geometry_flip(f, x, 0), HS_OK);
    expect_row(f, fv, 6);
    assert_int_equal(hs_geometry_rot90(f, x, 1), HS_ERR_SHAPE);  // wrong destination for odd k
    hs_tensor_free(x);
    hs_tensor_free(r);
    hs_tensor_free(f);
}

static void test_resize_matches_cv2_values(void **state) {
    (void)state;
    // cv2.resize([[0,255]], (4,1), INTER_LINEAR) = [0, 64, 191, 255]
    hs_tensor *x = new_img(HS_DTYPE_U8, 1, 2, 0), *y = new_img(HS_DTYPE_U8, 1, 4, 0);
    hs_tensor_set_flat(x, 1, 255);
    assert_int_equal(hs_geometry_resize(y, x, HS_INTERP_BILINEAR), HS_OK);
    const double lin[4] = {0, 64, 191, 255};
    expect_row(y, lin, 4);
    hs_tensor_free(x);
    hs_tensor_free(y);
    // a = arange(12).reshape(3,4)*20: nearest to (2,3) and area to (3,2)
    hs_tensor *a = new_img(HS_DTYPE_U8, 3, 4, 0), *n = new_img(HS_DTYPE_U8, 3, 2, 0), *ar = new_img(HS_DTYPE_U8, 2, 3, 0);
    for (int i = 0; i < 12; i++)
        hs_tensor_set_flat(a, i, 20 * i);
    assert_int_equal(hs_geometry_resize(n, a, HS_INTERP_NEAREST), HS_OK);
    const double nn[6] = {0, 40, 80, 120, 160, 200}, area[6] = {32, 57, 82, 138, 163, 188};
    expect_row(n, nn, 6);
    assert_int_equal(hs_geometry_resize(ar, a, HS_INTERP_AREA), HS_OK);
    expect_row(ar, area, 6);
    hs_tensor_free(a);
    hs_tensor_free(n);
    hs_tensor_free(ar);
}

static void test_resize_f32_bilinear_is_exact_on_a_ramp_and_area_halves_average(void **state) {
    (void)state;
    hs_tensor *x = new_img(HS_DTYPE_F32, 4, 8, 2), *y = new_img(HS_DTYPE_F32, 4, 4, 2), *z = new_img(HS_DTYPE_F32, 2, 4, 2);
    for (int64_t r = 0; r < 4; r++)
        for (int64_t c = 0; c < 8; c++)
            for (int64_t ch = 0; ch < 2; ch++)
                hs_tensor_set_flat(x, (r * 8 + c) * 2 + ch, (double)c + 10.0 * (double)ch);
    assert_int_equal(hs_geometry_resize(y, x, HS_INTERP_BILINEAR), HS_OK);  // x: 8 -> 4, centres at 0.5+2k
    for (int64_t c = 0; c < 4; c++)
        assert_float_equal(hs_tensor_get_flat(y, (1 * 4 + c) * 2 + 1), (0.5 + 2.0 * (double)c + 10.0), 1e-6);
    assert_int_equal(hs_geometry_resize(z, x, HS_INTERP_AREA), HS_OK);  // exact 2x: 2x2 means
    assert_float_equal(hs_tensor_get_flat(z, 0), 0.5, 1e-6);
    assert_float_equal(hs_tensor_get_flat(z, (1 * 4 + 3) * 2), 6.5, 1e-6);
    hs_interp m;
    assert_int_equal(hs_geometry_interp_from_name(&m, "cubic"), HS_ERR_ARG);
    hs_tensor_free(x);
    hs_tensor_free(y);
    hs_tensor_free(z);
}

static void test_tiles_and_tissue_fraction(void **state) {
    (void)state;
    // left half white background, right half pink tissue (saturated)
    hs_tensor *x = new_img(HS_DTYPE_U8, 100, 100, 3);
    for (int64_t r = 0; r < 100; r++)
        for (int64_t c = 0; c < 100; c++) {
            double px[3] = {250, 250, 250};
            if (c >= 50) {
                px[0] = 220;
                px[1] = 120;
                px[2] = 180;
            }
            for (int ch = 0; ch < 3; ch++)
                hs_tensor_set_flat(x, (r * 100 + c) * 3 + ch, px[ch]);
        }
    double f = 0;
    assert_int_equal(hs_geometry_tissue_fraction(&f, x, HS_TISSUE_SATURATION, 0.1), HS_OK);
    assert_float_equal(f, 0.5, 1e-12);
    assert_int_equal(hs_geometry_tissue_fraction(&f, x, HS_TISSUE_OD, 0.1), HS_OK);
    assert_float_equal(f, 0.5, 1e-12);
    int64_t xy[32], n = 0;
    assert_int_equal(hs_geometry_tile_origins(xy, 16, &n, 100, 100, 40, 30), HS_OK);
    assert_int_equal(n, 9);  // origins 0, 30, 60 on each axis
    assert_true(xy[2 * 8] == 60 && xy[2 * 8 + 1] == 60);
    assert_int_equal(hs_geometry_tile_origins(NULL, 0, &n, 100, 100, 101, 10), HS_OK);
    assert_int_equal(n, 0);
    assert_int_equal(hs_geometry_tile_origins(xy, 4, &n, 100, 100, 40, 30), HS_ERR_ARG);
    assert_int_equal(hs_geometry_tile_origins(NULL, 0, &n, 100, 100, 40, 0), HS_ERR_ARG);
    hs_tensor *g = new_img(HS_DTYPE_U8, 4, 4, 0);
    assert_int_equal(hs_geometry_tissue_fraction(&f, g, HS_TISSUE_SATURATION, 0.1), HS_ERR_SHAPE);
    hs_tensor_free(g);
    hs_tensor_free(x);
}

static void test_geometry_rejects_bad_images(void **state) {
    (void)state;
    int64_t s1[1] = {5}, s2[2] = {3, 3};
    hs_tensor *v, *i, *y = new_img(HS_DTYPE_U8, 3, 3, 0);
    assert_int_equal(hs_tensor_new(&v, HS_DTYPE_U8, 1, s1), HS_OK);
    assert_int_equal(hs_tensor_new(&i, HS_DTYPE_I32, 2, s2), HS_OK);
    assert_int_equal(hs_geometry_flip(y, v, 1), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "(H,W)"));
    assert_int_equal(hs_geometry_resize(y, i, HS_INTERP_AREA), HS_ERR_DTYPE);
    assert_int_equal(hs_geometry_flip(y, y, 1), HS_ERR_ARG);
    hs_tensor_free(v);
    hs_tensor_free(i);
    hs_tensor_free(y);
}

// Integer-scale area downscaling (row sums, then pixel sums) against a plain 2-D average, for
// the spelt-out 4x4 RGB case and the generic loop (3x2, 2 channels), U8 and F32.
static void test_resize_area_integer_scale_matches_plain_average(void **state) {
    (void)state;
    static const int cfg[][4] = {{4, 4, 3, 0}, {3, 2, 2, 0}, {4, 4, 3, 1}, {3, 2, 2, 1}};  // sx, sy, C, f32
    for (size_t k = 0; k < sizeof cfg / sizeof cfg[0]; k++) {
        int sx = cfg[k][0], sy = cfg[k][1], C = cfg[k][2], f32 = cfg[k][3];
        int64_t dw = 7, dh = 5, W = dw * sx, H = dh * sy;
        hs_dtype dt = f32 ? HS_DTYPE_F32 : HS_DTYPE_U8;
        hs_tensor *x = new_img(dt, H, W, C), *y = new_img(dt, dh, dw, C);
        for (int64_t i = 0; i < hs_tensor_numel(x); i++)
            hs_tensor_set_flat(x, i, f32 ? (double)((i * 37) % 101) / 101.0 : (double)((i * 37 + 11) % 256));
        assert_int_equal(hs_geometry_resize(y, x, HS_INTERP_AREA), HS_OK);
        for (int64_t yy = 0; yy < dh; yy++)
            for (int64_t xx = 0; xx < dw; xx++)
                for (int64_t c = 0; c < C; c++) {
                    double sum = 0;
                    for (int i = 0; i < sy; i++)
                        for (int t = 0; t < sx; t++)
                            sum += hs_tensor_get_flat(x, ((yy * sy + i) * W + xx * sx + t) * C + c);
                    double want = sum / (sx * sy), got = hs_tensor_get_flat(y, (yy * dw + xx) * C + c);
                    if (f32)
                        assert_float_equal(got, want, 1e-6);
                    else
                        assert_float_equal(got, nearbyint(want), 0);
                }
        hs_tensor_free(x);
        hs_tensor_free(y);
    }
}

// The 3-channel U8 bilinear path (one table lookup per pixel, two source rows per pass) must
// give exactly what the generic per-element path gives each channel on its own, for down-,
// up- and mixed scales (rows reused or not) and for one-pixel-wide images.
static void test_resize_bilinear_u8_three_channel_path_matches_per_channel_resize(void **state) {
    (void)state;
    static const int64_t cases[][4] = {{48, 64, 12, 16}, {20, 30, 31, 45}, {23, 37, 17, 10}, {9, 1, 4, 3}, {5, 7, 5, 7}};
    uint64_t seed = 7;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t h = cases[k][0], w = cases[k][1], dh = cases[k][2], dw = cases[k][3];
        hs_tensor *x = new_img(HS_DTYPE_U8, h, w, 3), *y = new_img(HS_DTYPE_U8, dh, dw, 3);
        uint8_t *px = x->data;
        for (int64_t i = 0; i < h * w * 3; i++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            px[i] = (uint8_t)(seed >> 56);
        }
        assert_int_equal(hs_geometry_resize(y, x, HS_INTERP_BILINEAR), HS_OK);
        for (int c = 0; c < 3; c++) {
            hs_tensor *xc = new_img(HS_DTYPE_U8, h, w, 0), *yc = new_img(HS_DTYPE_U8, dh, dw, 0);
            for (int64_t i = 0; i < h * w; i++)
                ((uint8_t *)xc->data)[i] = px[3 * i + c];
            assert_int_equal(hs_geometry_resize(yc, xc, HS_INTERP_BILINEAR), HS_OK);
            for (int64_t i = 0; i < dh * dw; i++)
                if (((const uint8_t *)yc->data)[i] != ((const uint8_t *)y->data)[3 * i + c])
                    fail_msg("case %zu channel %d element %lld: 3-channel %d, per channel %d", k, c, (long long)i,
                             ((const uint8_t *)y->data)[3 * i + c], ((const uint8_t *)yc->data)[i]);
            hs_tensor_free(xc);
            hs_tensor_free(yc);
        }
        hs_tensor_free(x);
        hs_tensor_free(y);
    }
}

// The vectorised U8 bilinear passes (word permutes over 64-byte windows, 16-bit vertical
// multiply) against the plain loops, bit for bit: down- and upscales (windows too wide for the
// permute fall back per 16 elements), 1 to 4 channels, 1-row and 1-column images and odd
// widths (tails), values 0 and 255 in runs; and the 2048 -> 512 benchmark shape.
static void test_resize_bilinear_u8_fast_path_matches_plain_loops(void **state) {
    (void)state;
    static const int64_t cases[][4] = {{64, 256, 16, 64}, {37, 41, 13, 7}, {1, 17, 1, 5},  {5, 1, 3, 1},
                                       {33, 65, 17, 31},  {2, 2, 3, 3},    {9, 300, 4, 77}, {20, 31, 45, 70},
                                       {7, 400, 3, 19},   {1, 1, 1, 1},    {3, 50, 1, 49}};
    uint64_t seed = 3;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0] + 1; k++)
        for (int64_t c = 1; c <= 4; c++) {
            int last = k == sizeof cases / sizeof cases[0];
            if (last && c != 3)
                continue;
            int64_t h = last ? 2048 : cases[k][0], w = last ? 2048 : cases[k][1], dh = last ? 512 : cases[k][2],
                    dw = last ? 512 : cases[k][3];
            hs_tensor *x = new_img(HS_DTYPE_U8, h, w, c), *a = new_img(HS_DTYPE_U8, dh, dw, c),
                      *b = new_img(HS_DTYPE_U8, dh, dw, c);
            uint8_t *px = x->data;
            for (int64_t i = 0; i < h * w * c; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                px[i] = (i / 7) % 5 == 0 ? 255 : (i / 7) % 5 == 1 ? 0 : (uint8_t)(seed >> 56);
            }
            assert_int_equal(hs_geometry_resize(a, x, HS_INTERP_BILINEAR), HS_OK);
            assert_int_equal(hs_geometry_resize_ref(b, x, HS_INTERP_BILINEAR), HS_OK);
            if (memcmp(a->data, b->data, (size_t)(dh * dw * c)) != 0)
                fail_msg("%lldx%lldx%lld -> %lldx%lld: fast and plain bilinear differ", (long long)h, (long long)w,
                         (long long)c, (long long)dh, (long long)dw);
            hs_tensor_free(x);
            hs_tensor_free(a);
            hs_tensor_free(b);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crop_copies_the_window_and_rejects_outside),
        cmocka_unit_test(test_pad_border_modes_on_a_row),
        cmocka_unit_test(test_flip_and_rot90_follow_numpy),
        cmocka_unit_test(test_resize_matches_cv2_values),
        cmocka_unit_test(test_resize_f32_bilinear_is_exact_on_a_ramp_and_area_halves_average),
        cmocka_unit_test(test_resize_area_integer_scale_matches_plain_average),
        cmocka_unit_test(test_resize_bilinear_u8_three_channel_path_matches_per_channel_resize),
        cmocka_unit_test(test_resize_bilinear_u8_fast_path_matches_plain_loops),
        cmocka_unit_test(test_tiles_and_tissue_fraction),
        cmocka_unit_test(test_geometry_rejects_bad_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
