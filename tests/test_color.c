// tests/test_color.c: colour spaces (color.h) and stain deconvolution/normalisation (stain.h)
// on known values from scikit-image 0.19 / OpenCV 4.6, round trips, strided inputs, layout
// conversions, and shape/dtype errors. Dimension letters: H, W, C.
#include "hs_test.h"

#include <math.h>
#include <string.h>

#include "color.h"
#include "rng.h"
#include "stain.h"
#include "tensor.h"

// The six test pixels used for the known values below (one row, (1,6,3) U8).
static const uint8_t px[18] = {255, 0, 0, 0, 255, 0, 10, 20, 200, 255, 255, 255, 0, 0, 0, 120, 60, 180};

static hs_tensor *new_img(hs_dtype dt, int64_t h, int64_t w, int64_t c) {
    int64_t shape[3] = {h, w, c};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, dt, c ? 3 : 2, shape), HS_OK);
    return t;
}

static hs_tensor *six_pixels(void) {
    hs_tensor *t = new_img(HS_DTYPE_U8, 1, 6, 3);
    memcpy(t->data, px, sizeof px);
    return t;
}

static void test_rgb2gray_u8_matches_opencv_fixed_point(void **state) {
    (void)state;
    hs_tensor *rgb = six_pixels(), *g = new_img(HS_DTYPE_U8, 1, 6, 0);
    assert_int_equal(hs_color_rgb2gray(g, rgb), HS_OK);
    const uint8_t want[6] = {76, 150, 38, 255, 0, 92};  // cv2.cvtColor(COLOR_RGB2GRAY)
    assert_memory_equal(g->data, want, 6);
    hs_tensor *f = new_img(HS_DTYPE_F32, 1, 6, 3), *gf = new_img(HS_DTYPE_F32, 1, 6, 1);
    assert_int_equal(hs_color_convert(f, rgb, 1.0f), HS_OK);
    assert_int_equal(hs_color_rgb2gray(gf, f), HS_OK);
    const float wantf[6] = {76.245f, 149.685f, 37.53f, 255.0f, 0.0f, 91.62f};
    hs_expect_close(gf->data, wantf, 6, 1e-3, 1e-6);
    hs_tensor *back = new_img(HS_DTYPE_U8, 1, 6, 3);
    assert_int_equal(hs_color_gray2rgb(back, g), HS_OK);
    assert_int_equal(((uint8_t *)back->data)[3 * 5 + 2], 92);
    hs_tensor_free(back);
    hs_tensor_free(gf);
    hs_tensor_free(f);
    hs_tensor_free(g);
    hs_tensor_free(rgb);
}

static void test_rgb2hsv_and_rgb2lab_match_skimage_known_values(void **state) {
    (void)state;
    hs_tensor *rgb = six_pixels(), *out = new_img(HS_DTYPE_F32, 1, 6, 3), *back = new_img(HS_DTYPE_F32, 1, 6, 3);
    assert_int_equal(hs_color_rgb2hsv(out, rgb), HS_OK);
    const float hsv[18] = {0, 1, 1, 0.3333333f, 1, 1, 0.6578947f, 0.95f, 0.7843137f,
                           0, 0, 1, 0, 0, 0, 0.75f, 0.6666667f, 0.7058824f};
    hs_expect_close(out->data, hsv, 18, 1e-6, 0);
    assert_int_equal(hs_color_hsv2rgb(back, out), HS_OK);
    float rgbf[18];
    for (int i = 0; i < 18; i++)
        rgbf[i] = px[i] / 255.0f;
    hs_expect_close(back->data, rgbf, 18, 1e-6, 0);
    assert_int_equal(hs_color_rgb2lab(out, rgb), HS_OK);
    const float lab[18] = {53.24059f, 80.09231f, 67.20275f, 87.7351f, -86.18303f, 83.1797f,
                           25.960648f, 61.2832f, -86.908585f, 100.0f, -0.0024549f, 0.0046534f,
                           0, 0, 0, 38.759647f, 48.940895f, -53.75336f};
    hs_expect_close(out->data, lab, 18, 2e-5, 0);
    assert_int_equal(hs_color_lab2rgb(back, out), HS_OK);
    hs_expect_close(back->data, rgbf, 18, 1e-5, 0);
    hs_tensor_free(back);
    hs_tensor_free(out);
    hs_tensor_free(rgb);
}

static void test_rgb2hed_matches_skimage_and_inverts(void **state) {
    (void)state;
    hs_tensor *rgb = six_pixels(), *hed = new_img(HS_DTYPE_F32, 1, 6, 3), *back = new_img(HS_DTYPE_F32, 1, 6, 3);
    assert_int_equal(hs_stain_rgb2hed(hed, rgb), HS_OK);
    const float want[18] = {0, 0.6543162f, 1.4380662f, 1.2760754f, 0, 1.0174723f, 0.4175148f, 0, 0,
                            0, 0, 0, 1.2101673f, 0, 0.8819504f, 0.0803849f, 0.0517514f, 0};
    hs_expect_close(hed->data, want, 18, 1e-6, 1e-6);
    // hed2rgb inverts rgb2hed wherever no density was clipped at 0: check white stays white
    assert_int_equal(hs_stain_hed2rgb(back, hed), HS_OK);
    const float *b = back->data;
    assert_true(fabsf(b[9] - 1) < 1e-6f && fabsf(b[10] - 1) < 1e-6f && fabsf(b[11] - 1) < 1e-6f);
    // float input in (0,1] with strictly positive densities round-trips
    hs_tensor *f = new_img(HS_DTYPE_F32, 1, 1, 3), *s = new_img(HS_DTYPE_F32, 1, 1, 3), *r = new_img(HS_DTYPE_F32, 1, 1, 3);
    hs_stain_matrix m;
    assert_int_equal(hs_stain_matrix_named(&m, "hed"), HS_OK);
    float dens[3] = {0.3f, 0.2f, 0.1f};
    memcpy(s->data, dens, sizeof dens);
    assert_int_equal(hs_stain_combine(f, s, &m), HS_OK);
    assert_int_equal(hs_stain_separate(r, f, &m), HS_OK);
    hs_expect_close(r->data, dens, 3, 1e-5, 0);
    hs_tensor_free(r);
    hs_tensor_free(s);
    hs_tensor_free(f);
    hs_tensor_free(back);
    hs_tensor_free(hed);
    hs_tensor_free(rgb);
}

static void test_stain_matrices_named_and_from_vectors(void **state) {
    (void)state;
    hs_stain_matrix m, v;
    assert_int_equal(hs_stain_matrix_named(&m, "H-DAB"), HS_OK);  // skimage's rgb_from_hdx
    const float third[3] = {0.383284f, -0.427752f, 0.181828f};
    float got[3] = {(float)m.rgb_from_stain[2][0], (float)m.rgb_from_stain[2][1], (float)m.rgb_from_stain[2][2]};
    hs_expect_close(got, third, 3, 1e-6, 0);
    hs_tensor *rgb = six_pixels(), *out = new_img(HS_DTYPE_F32, 1, 6, 3);
    assert_int_equal(hs_stain_separate(out, rgb, &m), HS_OK);
    const float hdx[18] = {0, 1.5331459f, 0, 0.2823281f, 0.8197688f, 1.5570405f, 0.3914559f, 0, 0.039219f,
                           0, 0, 0, 0.9675614f, 0.8433787f, 0.3784649f, 0.1141056f, 0.0028965f, 0};
    hs_expect_close(out->data, hdx, 18, 1e-6, 1e-6);
    const double two[2][3] = {{2, 0, 0}, {0, 3, 0}};
    assert_int_equal(hs_stain_matrix_from_vectors(&v, two, 2), HS_OK);
    assert_true(v.rgb_from_stain[0][0] == 1.0 && v.rgb_from_stain[1][1] == 1.0 && v.rgb_from_stain[2][2] == 1.0);
    const double parallel[2][3] = {{1, 1, 0}, {2, 2, 0}};
    assert_int_equal(hs_stain_matrix_from_vectors(&v, parallel, 2), HS_ERR_ARG);
    const double zero[2][3] = {{0, 0, 0}, {1, 0, 0}};
    assert_int_equal(hs_stain_matrix_from_vectors(&v, zero, 2), HS_ERR_ARG);
    assert_int_equal(hs_stain_matrix_named(&v, "nope"), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "hed"));
    hs_tensor_free(out);
    hs_tensor_free(rgb);
}

static void test_color_ops_report_shapes_and_dtypes(void **state) {
    (void)state;
    hs_tensor *bad = new_img(HS_DTYPE_U8, 5, 5, 0), *out = new_img(HS_DTYPE_F32, 5, 5, 3);
    assert_int_equal(hs_stain_rgb2hed(out, bad), HS_ERR_SHAPE);
    assert_string_equal(hs_last_error()->msg, "rgb2hed: expected (H,W,3) image, got [5,5]");
    hs_tensor *rgb = new_img(HS_DTYPE_U8, 5, 5, 3), *small = new_img(HS_DTYPE_F32, 5, 4, 3);
    assert_int_equal(hs_color_rgb2lab(small, rgb), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "[5,4,3]"));
    hs_tensor *i64 = new_img(HS_DTYPE_I64, 5, 5, 3);
    assert_int_equal(hs_color_rgb2hsv(out, i64), HS_ERR_DTYPE);
    hs_tensor *u8out = new_img(HS_DTYPE_U8, 5, 5, 3);
    assert_int_equal(hs_color_rgb2hsv(u8out, rgb), HS_ERR_DTYPE);
    hs_tensor_free(u8out);
    hs_tensor_free(i64);
    hs_tensor_free(small);
    hs_tensor_free(rgb);
    hs_tensor_free(out);
    hs_tensor_free(bad);
}

static void test_to_chw_and_from_chw_round_trip_on_views(void **state) {
    (void)state;
    hs_tensor *img = new_img(HS_DTYPE_U8, 4, 6, 3), *crop;
    for (int64_t i = 0; i < 72; i++)
        ((uint8_t *)img->data)[i] = (uint8_t)(i * 3);
    assert_int_equal(hs_tensor_narrow(&crop, img, 1, 1, 4), HS_OK);  // (4,4,3) view
    int64_t chw_shape[3] = {3, 4, 4};
    hs_tensor *chw, *back = new_img(HS_DTYPE_U8, 4, 4, 3);
    assert_int_equal(hs_tensor_new(&chw, HS_DTYPE_F32, 3, chw_shape), HS_OK);
    assert_int_equal(hs_color_to_chw(chw, crop, 1.0f / 255), HS_OK);
    // chw[c][y][x] = crop[y][x][c] / 255
    int64_t y = 2, x = 3, c = 1;
    float want = (float)(((uint8_t *)img->data)[(y * 6 + x + 1) * 3 + c] / 255.0);
    assert_true(fabsf(((float *)chw->data)[(c * 4 + y) * 4 + x] - want) < 1e-7f);
    assert_int_equal(hs_color_from_chw(back, chw, 255.0f), HS_OK);
    for (int64_t i = 0; i < 48; i++)
        assert_true(hs_tensor_get_flat(back, i) == hs_tensor_get_flat(crop, i));
    assert_int_equal(hs_color_to_chw(back, crop, 1.0f), HS_ERR_SHAPE);
    hs_tensor_free(back);
    hs_tensor_free(chw);
    hs_tensor_free(crop);
    hs_tensor_free(img);
}

static void test_convert_rounds_half_to_even_and_saturates(void **state) {
    (void)state;
    float v[6] = {-3.0f, 0.5f, 1.5f, 2.5f, 254.6f, 300.0f};
    v[0] = NAN;
    int64_t n = 6;
    hs_tensor *in, *out;
    assert_int_equal(hs_tensor_from_buffer(&in, HS_DTYPE_F32, 1, &n, v), HS_OK);
    assert_int_equal(hs_tensor_new(&out, HS_DTYPE_U8, 1, &n), HS_OK);
    assert_int_equal(hs_color_convert(out, in, 1.0f), HS_OK);
    const uint8_t want[6] = {0, 0, 2, 2, 255, 255};
    assert_memory_equal(out->data, want, 6);
    hs_tensor_free(out);
    hs_tensor_free(in);
}

// Synthetic H&E image from two known stains; Macenko must find them again.
static hs_tensor *synthetic_he(const double stains[2][3], int64_t h, int64_t w) {
    hs_tensor *img = new_img(HS_DTYPE_U8, h, w, 3);
    uint8_t *p = img->data;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            double c0 = 0, c1 = 0;
            int64_t k = (y * 7 + x * 13) % 10;
            if (k < 4)
                c0 = 0.2 + 0.15 * (double)((x + y) % 10);   // hematoxylin only
            else if (k < 8)
                c1 = 0.2 + 0.1 * (double)((x * 3 + y) % 10);  // eosin only
            else
                c0 = 0.3, c1 = 0.3 + 0.05 * (double)(x % 7);  // mixtures
            for (int ch = 0; ch < 3; ch++) {
                double v = 240.0 * exp(-(stains[0][ch] * c0 + stains[1][ch] * c1)) - 1;
                p[(y * w + x) * 3 + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lrint(v));
            }
        }
    return img;
}

static double cosine(const double *a, const double *b) {
    return (a[0] * b[0] + a[1] * b[1] + a[2] * b[2]) /
           sqrt((a[0] * a[0] + a[1] * a[1] + a[2] * a[2]) * (b[0] * b[0] + b[1] * b[1] + b[2] * b[2]));
}

static void test_macenko_fit_recovers_synthetic_stains_and_apply_matches_target(void **state) {
    (void)state;
    hs_stain_macenko ref = hs_stain_macenko_default_target();
    hs_tensor *img = synthetic_he((const double(*)[3])ref.stains, 64, 64);
    hs_stain_macenko fit;
    assert_int_equal(hs_stain_macenko_fit(&fit, img, NULL), HS_OK);
    assert_true(cosine(fit.stains[0], ref.stains[0]) > 0.995);
    assert_true(cosine(fit.stains[1], ref.stains[1]) > 0.995);
    hs_tensor *out = new_img(HS_DTYPE_U8, 64, 64, 3);
    assert_int_equal(hs_stain_macenko_apply(out, img, &fit, NULL), HS_OK);  // normalising to itself
    double err = 0;
    for (int64_t i = 0; i < 64 * 64 * 3; i++)
        err += fabs(hs_tensor_get_flat(out, i) - hs_tensor_get_flat(img, i));
    assert_true(err / (64 * 64 * 3) < 2.0);
    hs_tensor *blank = new_img(HS_DTYPE_U8, 8, 8, 3);
    memset(blank->data, 255, 8 * 8 * 3);  // all white: no tissue pixel
    assert_int_equal(hs_stain_macenko_fit(&fit, blank, NULL), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "tissue"));
    hs_tensor_free(blank);
    hs_tensor_free(out);
    hs_tensor_free(img);
}

static void test_reinhard_apply_moves_lab_statistics_to_the_target(void **state) {
    (void)state;
    hs_stain_macenko ref = hs_stain_macenko_default_target();
    hs_tensor *img = synthetic_he((const double(*)[3])ref.stains, 48, 48), *out = new_img(HS_DTYPE_F32, 48, 48, 3);
    hs_stain_reinhard target = {{60, 10, -5}, {12, 6, 5}}, got;
    assert_int_equal(hs_stain_reinhard_apply(out, img, &target), HS_OK);
    assert_int_equal(hs_stain_reinhard_fit(&got, out), HS_OK);
    for (int c = 0; c < 3; c++) {
        assert_true(fabs(got.mean[c] - target.mean[c]) < 0.5);
        assert_true(fabs(got.std[c] - target.std[c]) < 0.5);
    }
    hs_tensor *o8 = new_img(HS_DTYPE_U8, 48, 48, 3);
    assert_int_equal(hs_stain_reinhard_fit(&got, img), HS_OK);
    assert_int_equal(hs_stain_reinhard_apply(o8, img, &got), HS_OK);  // identity up to rounding
    for (int64_t i = 0; i < 48 * 48 * 3; i++)
        assert_true(fabs(hs_tensor_get_flat(o8, i) - hs_tensor_get_flat(img, i)) <= 1.0);
    hs_tensor_free(o8);
    hs_tensor_free(out);
    hs_tensor_free(img);
}

// ---- the vectorised kernels against plain double-precision loops (libm) ----

// (h,w,3) image of random values in [0,1] (F32) or 0..255 (U8), with some grays, equal maxima,
// black and white pixels mixed in; or a view of columns 3..3+w of a wider image when view != 0.
static hs_tensor *random_rgb(hs_tensor **base, hs_dtype dt, int64_t h, int64_t w, int view, uint64_t seed) {
    hs_tensor *b = new_img(dt, h, w + (view ? 7 : 0), 3), *v = b;
    for (int64_t i = 0; i < hs_tensor_numel(b); i++) {
        double u = (double)hs_rng_uniform(seed, 3, (uint64_t)i);
        hs_tensor_set_flat(b, i, dt == HS_DTYPE_U8 ? floor(u * 256) : u);
    }
    int64_t np = hs_tensor_numel(b) / 3;
    for (int64_t p = 0; p < np; p += 5) {  // every 5th pixel: a special case
        double a = hs_tensor_get_flat(b, 3 * p), c = hs_tensor_get_flat(b, 3 * p + 2);
        switch ((p / 5) % 4) {
        case 0: hs_tensor_set_flat(b, 3 * p + 1, a), hs_tensor_set_flat(b, 3 * p + 2, a); break;  // gray
        case 1: hs_tensor_set_flat(b, 3 * p + 1, c > a ? c : a); break;                           // ties
        case 2: for (int k = 0; k < 3; k++) hs_tensor_set_flat(b, 3 * p + k, 0); break;
        default: for (int k = 0; k < 3; k++) hs_tensor_set_flat(b, 3 * p + k, dt == HS_DTYPE_U8 ? 255 : 1); break;
        }
    }
    if (view)
        assert_int_equal(hs_tensor_narrow(&v, b, 1, 3, w), HS_OK);
    *base = b;
    return v;
}

static double px_float(const hs_tensor *t, int64_t y, int64_t x, int c) {
    int64_t off = y * t->stride[0] + x * t->stride[1] + c * t->stride[2];
    return t->dtype == HS_DTYPE_U8 ? ((const uint8_t *)t->data)[off] / 255.0 : (double)((const float *)t->data)[off];
}

static double ref_lab_f(double t) { return t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116.0; }

static void test_vectorised_color_kernels_match_plain_loops_on_odd_sizes_and_views(void **state) {
    (void)state;
    static const int64_t sizes[][2] = {{1, 1}, {3, 7}, {17, 300}, {2, 257}};
    static const double m[3][3] = {{0.412453, 0.357580, 0.180423}, {0.212671, 0.715160, 0.072169},
                                   {0.019334, 0.119193, 0.950227}};
    static const double white[3] = {0.95047, 1.0, 1.08883};
    hs_stain_matrix sm;
    assert_int_equal(hs_stain_matrix_named(&sm, "hed"), HS_OK);
    uint64_t seed = 1;
    for (int dt = 0; dt < 2; dt++)
        for (int view = 0; view < 2; view++)
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                int64_t h = sizes[si][0], w = sizes[si][1];
                hs_dtype t = dt ? HS_DTYPE_F32 : HS_DTYPE_U8;
                hs_tensor *base, *x = random_rgb(&base, t, h, w, view, seed++);
                hs_tensor *hsv = new_img(HS_DTYPE_F32, h, w, 3), *lab = new_img(HS_DTYPE_F32, h, w, 3);
                hs_tensor *hed = new_img(HS_DTYPE_F32, h, w, 3), *gray = new_img(t, h, w, 0);
                assert_int_equal(hs_color_rgb2hsv(hsv, x), HS_OK);
                assert_int_equal(hs_color_rgb2lab(lab, x), HS_OK);
                assert_int_equal(hs_stain_rgb2hed(hed, x), HS_OK);
                assert_int_equal(hs_color_rgb2gray(gray, x), HS_OK);
                const float *H = hsv->data, *L = lab->data, *D = hed->data;
                for (int64_t y = 0; y < h; y++)
                    for (int64_t xx = 0; xx < w; xx++) {
                        int64_t o = 3 * (y * w + xx);
                        float r = (float)px_float(x, y, xx, 0), g = (float)px_float(x, y, xx, 1);
                        float b = (float)px_float(x, y, xx, 2);
                        // HSV: skimage's branches in float, bit-exact
                        float v = fmaxf(r, fmaxf(g, b)), delta = v - fminf(r, fminf(g, b)), hh = 0, sat = 0;
                        if (delta != 0) {
                            hh = b == v ? 4.0f + (r - g) / delta : g == v ? 2.0f + (b - r) / delta : (g - b) / delta;
                            hh = hh / 6.0f;
                            hh -= floorf(hh);
                            sat = delta / v;
                        }
                        assert_true(H[o] == hh && H[o + 1] == sat && H[o + 2] == v);
                        // Lab in double with libm's pow and cbrt
                        double lin[3], f[3];
                        for (int c = 0; c < 3; c++) {
                            double u = px_float(x, y, xx, c);
                            lin[c] = u > 0.04045 ? pow((u + 0.055) / 1.055, 2.4) : u / 12.92;
                        }
                        for (int c = 0; c < 3; c++)
                            f[c] = ref_lab_f((m[c][0] * lin[0] + m[c][1] * lin[1] + m[c][2] * lin[2]) / white[c]);
                        double want_lab[3] = {116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])};
                        for (int c = 0; c < 3; c++)
                            if (fabs((double)L[o + c] - want_lab[c]) > 2e-5 + 1e-6 * fabs(want_lab[c]))
                                fail_msg("lab (%lld,%lld,%d): %.8g, want %.8g", (long long)y, (long long)xx, c,
                                         (double)L[o + c], want_lab[c]);
                        // HED in double
                        double od[3];
                        for (int c = 0; c < 3; c++)
                            od[c] = log(fmax(px_float(x, y, xx, c), 1e-6)) / log(1e-6);
                        for (int c = 0; c < 3; c++) {
                            double want = od[0] * sm.stain_from_rgb[0][c] + od[1] * sm.stain_from_rgb[1][c] +
                                          od[2] * sm.stain_from_rgb[2][c];
                            want = want > 0 ? want : 0;
                            if (fabs((double)D[o + c] - want) > 2e-6 + 1e-5 * fabs(want))
                                fail_msg("hed (%lld,%lld,%d): %.8g, want %.8g", (long long)y, (long long)xx, c,
                                         (double)D[o + c], want);
                        }
                        // gray: OpenCV's fixed point (U8) or float weights
                        int64_t go = y * w + xx;
                        if (t == HS_DTYPE_U8) {
                            const uint8_t *p = (const uint8_t *)x->data + y * x->stride[0] + xx * x->stride[1];
                            unsigned want = (p[0] * 9798u + p[1] * 19235u + p[2] * 3735u + (1u << 14)) >> 15;
                            assert_int_equal(((const uint8_t *)gray->data)[go], want);
                        } else {
                            assert_true(((const float *)gray->data)[go] == 0.299f * r + 0.587f * g + 0.114f * b);
                        }
                    }
                if (view)
                    hs_tensor_free(x);
                hs_tensor_free(base);
                hs_tensor_free(hsv);
                hs_tensor_free(lab);
                hs_tensor_free(hed);
                hs_tensor_free(gray);
            }
}

// sRGB expansion and logs far outside [0,1] (F32 input is not clamped): finite where libm is.
static void test_float_color_kernels_handle_out_of_range_values(void **state) {
    (void)state;
    static const float vals[] = {-1.0f, 0.0f, 1e-30f, 0.04045f, 0.5f, 2.0f, 1e3f, 1e10f};
    int64_t n = (int64_t)(sizeof vals / sizeof vals[0]);
    hs_tensor *x = new_img(HS_DTYPE_F32, 1, n, 3), *lab = new_img(HS_DTYPE_F32, 1, n, 3),
              *hed = new_img(HS_DTYPE_F32, 1, n, 3);
    float *p = x->data;
    for (int64_t i = 0; i < n; i++)
        p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = vals[i];
    assert_int_equal(hs_color_rgb2lab(lab, x), HS_OK);
    assert_int_equal(hs_stain_rgb2hed(hed, x), HS_OK);
    for (int64_t i = 0; i < n; i++) {
        double u = vals[i], lin = u > 0.04045 ? pow((u + 0.055) / 1.055, 2.4) : u / 12.92;
        double fy = ref_lab_f(lin), want_l = 116 * fy - 16;
        double got_l = ((const float *)lab->data)[3 * i];
        if (fabs(got_l - want_l) > 1e-4 * (1 + fabs(want_l)))
            fail_msg("L of gray %g: %.8g, want %.8g", (double)vals[i], got_l, want_l);
        for (int c = 0; c < 3; c++)
            assert_true(isfinite(((const float *)hed->data)[3 * i + c]));
    }
    hs_tensor_free(x);
    hs_tensor_free(lab);
    hs_tensor_free(hed);
}

// The float rgb2lab path (sRGB gamma by exp/log polynomials in fused multiply-adds, cube root
// by Newton steps) against libm in double on 65536 random colours, a seventh of them dark
// (linear segment, cube-root knee): within 2e-5 + 1e-6|want|, the bound of the plain-loop test.
static void test_rgb2lab_f32_fast_paths_stay_within_2e5_of_libm_on_random_colours(void **state) {
    (void)state;
    static const double m[3][3] = {{0.412453, 0.357580, 0.180423}, {0.212671, 0.715160, 0.072169},
                                   {0.019334, 0.119193, 0.950227}};
    static const double white[3] = {0.95047, 1.0, 1.08883};
    const int64_t n = 65536;
    hs_tensor *x = new_img(HS_DTYPE_F32, 1, n, 3), *lab = new_img(HS_DTYPE_F32, 1, n, 3);
    float *p = x->data;
    uint64_t seed = 11;
    for (int64_t i = 0; i < 3 * n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        float u = (float)((double)(seed >> 40) / 16777216.0);
        p[i] = i % 7 == 0 ? u * 0.01f : u;
    }
    assert_int_equal(hs_color_rgb2lab(lab, x), HS_OK);
    const float *L = lab->data;
    for (int64_t i = 0; i < n; i++) {
        double lin[3], f[3];
        for (int c = 0; c < 3; c++) {
            double u = p[3 * i + c];
            lin[c] = u > 0.04045 ? pow((u + 0.055) / 1.055, 2.4) : u / 12.92;
        }
        for (int c = 0; c < 3; c++)
            f[c] = ref_lab_f((m[c][0] * lin[0] + m[c][1] * lin[1] + m[c][2] * lin[2]) / white[c]);
        double want[3] = {116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])};
        for (int c = 0; c < 3; c++)
            if (fabs((double)L[3 * i + c] - want[c]) > 2e-5 + 1e-6 * fabs(want[c]))
                fail_msg("lab pixel %lld channel %d: %.8g, want %.8g", (long long)i, c, (double)L[3 * i + c], want[c]);
    }
    hs_tensor_free(x);
    hs_tensor_free(lab);
}

// hs_color_log_block (the logarithm of stain optical densities) within 2 ulp of log over the float range.
static void test_log_block_is_within_two_ulp_of_log(void **state) {
    (void)state;
    enum { N = 4096 };
    float v[N], x[N];
    double worst = 0;
    for (uint32_t u = 0x00800000u; u < 0x7F000000u; u += 0x00800000u / 8) {
        for (int i = 0; i < N; i++) {
            uint32_t bits = u + (uint32_t)i * 251u;
            memcpy(&x[i], &bits, sizeof bits);
            v[i] = x[i];
        }
        hs_color_log_block(v, N, 1e-30f, 1.0f);
        for (int i = 0; i < N; i++) {
            double want = log((double)(x[i] > 1e-30f ? x[i] : 1e-30f));
            float aw = (float)fabs(want);
            double ulp = (double)(nextafterf(aw, INFINITY) - aw);
            double e = fabs((double)v[i] - want) / ulp;
            if (fabs(want) > 1e-3 && e > worst)
                worst = e;
        }
    }
    if (worst > 2.0)
        fail_msg("log_block: %.2f ulp from log", worst);
}

// Every U8 value through the fast paths: rgb2hsv reads U8 as v / 255.0f (must round exactly as
// (float)(v / 255.0), the F32 input it stands for), and rgb2hed's U8 table path (packed output)
// must give the same bits as the block driver (used for a strided output).
static void test_u8_fast_paths_match_float_input_and_block_driver_for_all_values(void **state) {
    (void)state;
    hs_tensor *u = new_img(HS_DTYPE_U8, 256, 256, 3), *f = new_img(HS_DTYPE_F32, 256, 256, 3);
    for (int64_t y = 0; y < 256; y++)
        for (int64_t x = 0; x < 256; x++) {
            int64_t p = y * 256 + x;
            int v[3] = {(int)y, (int)x, (int)((x * 7 + y * 13) & 255)};
            for (int c = 0; c < 3; c++) {
                ((uint8_t *)u->data)[3 * p + c] = (uint8_t)v[c];
                ((float *)f->data)[3 * p + c] = (float)(v[c] / 255.0);
            }
        }
    hs_tensor *a = new_img(HS_DTYPE_F32, 256, 256, 3), *b = new_img(HS_DTYPE_F32, 256, 256, 3);
    assert_int_equal(hs_color_rgb2hsv(a, u), HS_OK);
    assert_int_equal(hs_color_rgb2hsv(b, f), HS_OK);
    assert_memory_equal(a->data, b->data, hs_tensor_nbytes(a));
    // strided destination: every 2nd pixel of a (256,512,3) tensor
    hs_tensor *wide = new_img(HS_DTYPE_F32, 256, 512, 3), *view;
    int64_t shape[4] = {256, 256, 2, 3};
    hs_tensor *r4, *sel;
    assert_int_equal(hs_tensor_reshape(&r4, wide, 4, shape), HS_OK);
    assert_int_equal(hs_tensor_select(&sel, r4, 2, 1), HS_OK);
    view = sel;
    assert_int_equal(hs_stain_rgb2hed(a, u), HS_OK);
    assert_int_equal(hs_stain_rgb2hed(view, u), HS_OK);
    for (int64_t i = 0; i < hs_tensor_numel(a); i++)
        if (hs_tensor_get_flat(a, i) != hs_tensor_get_flat(view, i))
            fail_msg("rgb2hed element %lld: table %.9g, block %.9g", (long long)i, hs_tensor_get_flat(a, i),
                     hs_tensor_get_flat(view, i));
    hs_tensor_free(sel);
    hs_tensor_free(r4);
    hs_tensor_free(wide);
    hs_tensor_free(a);
    hs_tensor_free(b);
    hs_tensor_free(u);
    hs_tensor_free(f);
}

// ---- OpenCV-convention 8-bit HSV and the AVX-512 fast paths against their plain loops ----

// Colours (ties, grays, black, white, range edges) and cv2.cvtColor(COLOR_RGB2HSV)'s output for
// them (OpenCV 4.6). The implementation was also checked against cv2 on all 2^24 colours.
static void test_rgb2hsv_u8_matches_opencv_known_values(void **state) {
    (void)state;
    static const uint8_t rgb[14][3] = {{255, 0, 0},   {10, 20, 200},  {120, 60, 180}, {0, 0, 0},   {255, 255, 255},
                                       {200, 200, 10}, {10, 200, 200}, {200, 10, 200}, {1, 0, 0},   {0, 1, 255},
                                       {254, 255, 0},  {128, 127, 126}, {3, 2, 1},     {0, 255, 1}};
    static const uint8_t want[42] = {0,  255, 255, 118, 242, 200, 135, 170, 180, 0,  0,   0,   0,  0,
                                     255, 30, 242, 200, 90,  242, 200, 150, 242, 200, 0,  255, 1,   120,
                                     255, 255, 30, 255, 255, 15,  4,   128, 15,  170, 3,  60,  255, 255};
    hs_tensor *x = new_img(HS_DTYPE_U8, 1, 14, 3), *out = new_img(HS_DTYPE_U8, 1, 14, 3),
              *ref = new_img(HS_DTYPE_U8, 1, 14, 3);
    memcpy(x->data, rgb, sizeof rgb);
    assert_int_equal(hs_color_rgb2hsv_u8(out, x), HS_OK);
    assert_int_equal(hs_color_rgb2hsv_u8_ref(ref, x), HS_OK);
    assert_memory_equal(out->data, want, sizeof want);
    assert_memory_equal(ref->data, want, sizeof want);
    // in place (the same view) is allowed, F32 input and F32 output are not
    assert_int_equal(hs_color_rgb2hsv_u8(x, x), HS_OK);
    assert_memory_equal(x->data, want, sizeof want);
    hs_tensor *f = new_img(HS_DTYPE_F32, 1, 14, 3);
    assert_int_equal(hs_color_rgb2hsv_u8(out, f), HS_ERR_DTYPE);
    assert_int_equal(hs_color_rgb2hsv_u8(f, x), HS_ERR_DTYPE);
    hs_tensor_free(f);
    hs_tensor_free(x);
    hs_tensor_free(out);
    hs_tensor_free(ref);
}

// The vectorised rows (16 pixels per step, divisions instead of tables) against the plain loop:
// every value of V and max-min, odd widths (tails), a 1-row image, strided input and output.
static void test_rgb2hsv_u8_fast_path_matches_plain_loop_on_odd_widths_and_views(void **state) {
    (void)state;
    static const int64_t sizes[][2] = {{256, 256}, {1, 1}, {1, 15}, {1, 17}, {3, 33}, {5, 47}};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int view = 0; view < 2; view++) {
            int64_t h = sizes[si][0], w = sizes[si][1];
            hs_tensor *base = new_img(HS_DTYPE_U8, h, w + 3, 3), *x = base;
            uint8_t *p = base->data;
            for (int64_t i = 0; i < hs_tensor_numel(base); i++)  // all (y, x) byte pairs, 0 and 255 included
                p[i] = (uint8_t)(i % 3 == 0 ? (i / 3) / (w + 3) : i % 3 == 1 ? (i / 3) % (w + 3) : (i * 37) >> 3);
            if (view)
                assert_int_equal(hs_tensor_narrow(&x, base, 1, 2, w), HS_OK);
            else
                assert_int_equal(hs_tensor_narrow(&x, base, 1, 0, w), HS_OK);
            hs_tensor *a = new_img(HS_DTYPE_U8, h, w, 3), *b = new_img(HS_DTYPE_U8, h, w, 3);
            assert_int_equal(hs_color_rgb2hsv_u8(a, x), HS_OK);
            assert_int_equal(hs_color_rgb2hsv_u8_ref(b, x), HS_OK);
            assert_memory_equal(a->data, b->data, hs_tensor_nbytes(a));
            // strided destination: channels reversed through a view
            hs_tensor *wide = new_img(HS_DTYPE_U8, h, w + 2, 3), *ov;
            assert_int_equal(hs_tensor_narrow(&ov, wide, 1, 1, w), HS_OK);
            assert_int_equal(hs_color_rgb2hsv_u8(ov, x), HS_OK);
            for (int64_t y = 0; y < h; y++)
                for (int64_t xx = 0; xx < w; xx++)
                    for (int c = 0; c < 3; c++)
                        assert_int_equal(((uint8_t *)ov->data)[y * ov->stride[0] + xx * ov->stride[1] + c],
                                         ((uint8_t *)b->data)[3 * (y * w + xx) + c]);
            hs_tensor_free(ov);
            hs_tensor_free(wide);
            hs_tensor_free(x);
            hs_tensor_free(base);
            hs_tensor_free(a);
            hs_tensor_free(b);
        }
}

// rgb2hed's fused log + matrix pass (AVX-512) gives the bits of the plain loop for every count
// of pixels up to 50 (tails) and for 0, 1, tiny, denormal, huge, negative, inf and NaN values.
static void test_log_matrix_block_fast_path_gives_the_plain_loops_bits(void **state) {
    (void)state;
    static const float special[] = {0.0f, 1.0f, 1e-7f, 1e-6f, 1.5e-45f, 3e38f, -1.0f, INFINITY, NAN, 0.5f, 254.0f / 255};
    enum { N = 50 };
    float src[3 * N], a[3 * N], b[3 * N];
    hs_stain_matrix sm;
    assert_int_equal(hs_stain_matrix_named(&sm, "hed"), HS_OK);
    float m[9];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            m[3 * i + j] = (float)sm.stain_from_rgb[i][j];
    for (int i = 0; i < 3 * N; i++)
        src[i] = i % 4 == 0 ? special[(i / 4) % (sizeof special / sizeof special[0])]
                            : (float)hs_rng_uniform(5, 0, (uint64_t)i);
    for (int64_t n = 1; n <= N; n++) {
        memset(a, 0xAB, sizeof a);
        memset(b, 0xAB, sizeof b);
        hs_color_log_matrix_block(a, src, n, 1e-6f, (float)(1.0 / log(1e-6)), m);
        hs_color_log_matrix_block_ref(b, src, n, 1e-6f, (float)(1.0 / log(1e-6)), m);
        assert_memory_equal(a, b, sizeof a);  // also: nothing written past 3n floats
    }
}

// The Lab kernel processes 16 pixels at a time (a short, masked last step; pixels with a
// channel above 2 or NaN redone by the portable kernel): a pixel's result must not depend on
// where it sits in the row. Values at the edges: 0, 1, the sRGB knee, the boundaries of the
// gamma pieces (powers of two) and their neighbours, and out-of-range ones.
static void test_rgb2lab_pixel_results_do_not_depend_on_position_and_edges_are_accurate(void **state) {
    (void)state;
    static const double m[3][3] = {{0.412453, 0.357580, 0.180423}, {0.212671, 0.715160, 0.072169},
                                   {0.019334, 0.119193, 0.950227}};
    static const double white[3] = {0.95047, 1.0, 1.08883};
    float vals[64];
    int nv = 0;
    vals[nv++] = 0.0f, vals[nv++] = 1.0f, vals[nv++] = 0.04045f, vals[nv++] = nextafterf(0.04045f, 1.0f);
    vals[nv++] = nextafterf(0.04045f, 0.0f), vals[nv++] = 2.0f, vals[nv++] = nextafterf(1.0f, 0.0f);
    for (int e = -5; e <= 0; e++)
        for (int q = 0; q < 4; q++) {
            float v = (float)ldexp(1.0 + q / 4.0, e);
            vals[nv++] = v;
            if (q == 0)
                vals[nv++] = nextafterf(v, 0.0f);
        }
    const int64_t w = 37;  // two full steps and a tail of 5
    hs_tensor *x = new_img(HS_DTYPE_F32, 1, w, 3), *lab = new_img(HS_DTYPE_F32, 1, w, 3);
    hs_tensor *one = new_img(HS_DTYPE_F32, 1, 1, 3), *lab1 = new_img(HS_DTYPE_F32, 1, 1, 3);
    float *p = x->data;
    for (int round = 0; round < 3; round++) {
        for (int64_t i = 0; i < 3 * w; i++)
            p[i] = vals[(i * (round + 1) + round) % nv];
        if (round == 2)
            p[3 * 7] = 5.0f, p[3 * 20 + 1] = NAN, p[3 * 33 + 2] = 1e10f;  // redone pixels among normal ones
        assert_int_equal(hs_color_rgb2lab(lab, x), HS_OK);
        for (int64_t i = 0; i < w; i++) {
            memcpy(one->data, p + 3 * i, 3 * sizeof(float));
            assert_int_equal(hs_color_rgb2lab(lab1, one), HS_OK);
            assert_memory_equal(lab1->data, (const float *)lab->data + 3 * i, 3 * sizeof(float));
            double lin[3], f[3];
            int finite = 1, in_range = 1;  // out of range: the portable kernel, ~1e-6 relative
            for (int c = 0; c < 3; c++) {
                double u = p[3 * i + c];
                finite = finite && isfinite(u);
                in_range = in_range && u <= 2;
                lin[c] = u > 0.04045 ? pow((u + 0.055) / 1.055, 2.4) : u / 12.92;
            }
            if (!finite)
                continue;
            for (int c = 0; c < 3; c++)
                f[c] = ref_lab_f((m[c][0] * lin[0] + m[c][1] * lin[1] + m[c][2] * lin[2]) / white[c]);
            double want[3] = {116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])};
            for (int c = 0; c < 3; c++) {
                double got = ((const float *)lab->data)[3 * i + c];
                if (fabs(got - want[c]) > 2e-5 + (in_range ? 1e-6 : 1e-5) * fabs(want[c]))
                    fail_msg("lab pixel %lld (%g,%g,%g) channel %d: %.8g, want %.8g", (long long)i, (double)p[3 * i],
                             (double)p[3 * i + 1], (double)p[3 * i + 2], c, got, want[c]);
            }
        }
    }
    hs_tensor_free(x);
    hs_tensor_free(lab);
    hs_tensor_free(one);
    hs_tensor_free(lab1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rgb2gray_u8_matches_opencv_fixed_point),
        cmocka_unit_test(test_rgb2hsv_and_rgb2lab_match_skimage_known_values),
        cmocka_unit_test(test_rgb2lab_f32_fast_paths_stay_within_2e5_of_libm_on_random_colours),
        cmocka_unit_test(test_log_block_is_within_two_ulp_of_log),
        cmocka_unit_test(test_rgb2hed_matches_skimage_and_inverts),
        cmocka_unit_test(test_stain_matrices_named_and_from_vectors),
        cmocka_unit_test(test_color_ops_report_shapes_and_dtypes),
        cmocka_unit_test(test_to_chw_and_from_chw_round_trip_on_views),
        cmocka_unit_test(test_convert_rounds_half_to_even_and_saturates),
        cmocka_unit_test(test_macenko_fit_recovers_synthetic_stains_and_apply_matches_target),
        cmocka_unit_test(test_reinhard_apply_moves_lab_statistics_to_the_target),
        cmocka_unit_test(test_vectorised_color_kernels_match_plain_loops_on_odd_sizes_and_views),
        cmocka_unit_test(test_float_color_kernels_handle_out_of_range_values),
        cmocka_unit_test(test_u8_fast_paths_match_float_input_and_block_driver_for_all_values),
        cmocka_unit_test(test_rgb2hsv_u8_matches_opencv_known_values),
        cmocka_unit_test(test_rgb2hsv_u8_fast_path_matches_plain_loop_on_odd_widths_and_views),
        cmocka_unit_test(test_log_matrix_block_fast_path_gives_the_plain_loops_bits),
        cmocka_unit_test(test_rgb2lab_pixel_results_do_not_depend_on_position_and_edges_are_accurate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
