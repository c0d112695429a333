// tests/test_features.c: per-image feature rows (core/feature.h) against scikit-image 0.19 /
// numpy values computed by hand for a fixed 13x17 image (the expected numbers below came from
// skimage.feature.local_binary_pattern, graycomatrix/graycoprops, skimage.color and np.histogram;
// Python is not needed to run this test), plus row layout, batches, thread independence and
// errors. Dimension letters: N images, H rows, W columns, F features.
#include "hs_test.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "feature.h"
#include "parallel.h"
#include "tensor.h"

#define TH 13
#define TW 17

// The fixed test image: a flat 4x5 block (LBP ties) and a deterministic texture elsewhere.
static uint8_t test_pixel(int y, int x, int c) {
    if (x < 5 && y < 4)
        return 128;
    return (uint8_t)((x * x * 7 + y * 23 + c * 61 + (x * y) % 5 * 19) % 256);
}

static hs_tensor *test_image(void) {
    int64_t shape[3] = {TH, TW, 3};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_U8, 3, shape), HS_OK);
    uint8_t *d = t->data;
    for (int y = 0; y < TH; y++)
        for (int x = 0; x < TW; x++)
            for (int c = 0; c < 3; c++)
                d[(y * TW + x) * 3 + c] = test_pixel(y, x, c);
    return t;
}

static hs_tensor *new_f64(int ndim, const int64_t *shape) {
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_F64, ndim, shape), HS_OK);
    return t;
}

// skimage local_binary_pattern(rgb2gray(img), 8, R, 'uniform'), first 3 rows, and the histograms
static const float lbp_codes_r1[3 * TW] = {3, 5, 5, 5, 9, 0, 9, 9, 0, 5, 0, 9, 5, 0, 9, 3, 3,
                                           5, 8, 8, 8, 6, 8, 6, 0, 7, 1, 8, 1, 9, 7, 0, 9, 3,
                                           5, 8, 8, 8, 5, 7, 9, 7, 8, 1, 9, 0, 2, 6, 8, 9, 3};
static const float lbp_codes_r2[3 * TW] = {3, 3, 5, 9, 3, 0, 9, 1, 0, 9, 1, 9, 5, 0, 0, 3, 3,
                                           3, 3, 5, 3, 3, 7, 9, 9, 9, 1, 9, 1, 9, 9, 0, 1, 3,
                                           5, 5, 8, 5, 9, 9, 9, 8, 8, 9, 9, 0, 1, 8, 8, 9, 9};
static const float lbp_hist_r1[10] = {0.14479638f,  0.117647059f, 0.036199095f,  0.0588235294f, 0.0588235294f,
                                      0.108597285f, 0.0497737557f, 0.104072398f, 0.122171946f,  0.199095023f};
static const float lbp_hist_r2[10] = {0.158371041f, 0.14479638f, 0.036199095f, 0.0678733032f, 0.0271493213f,
                                      0.0769230769f, 0.0180995475f, 0.07239819f, 0.113122172f, 0.285067873f};

// graycoprops of graycomatrix(img_as_ubyte(rgb2gray(img)) // (256 // L), [1,2,4],
// [0, pi/4, pi/2, 3pi/4], L, symmetric=True, normed=True): (6 props, 3 distances, 4 angles)
static const float glcm8[72] = {
    5.75961538f,   6.046875f,     3.82352941f,   5.47395833f,   6.17948718f,   6.046875f,     5.2513369f,
    5.47395833f,   6.71005917f,   6.60714286f,   6.97385621f,   5.07857143f,   1.90384615f,   1.97395833f,
    1.28431373f,   1.84895833f,   2.01538462f,   1.97395833f,   1.72192513f,   1.84895833f,   2.13017751f,
    2.16428571f,   2.32026144f,   1.67857143f,   0.39535764f,   0.375685803f,  0.569971009f,  0.40241563f,
    0.362879057f,  0.375685803f,  0.441258545f,  0.40241563f,   0.338427962f,  0.317828666f,  0.266751633f,
    0.451636908f,  0.180688658f,  0.181172158f,  0.210926764f,  0.181134721f,  0.176569695f,  0.181172158f,
    0.182210963f,  0.181134721f,  0.179036867f,  0.182247869f,  0.183064883f,  0.178357014f,  -0.0327586207f,
    -0.0893337536f, 0.310804841f, 0.0210141008f,  -0.0939729644f, -0.0893337536f, 0.0585285824f, 0.0210141008f,
    -0.198281791f, -0.195537276f, -0.203627449f, 0.108922857f,  0.0326483913f, 0.0328233507f, 0.0444901f,
    0.0328097873f, 0.0311768573f, 0.0328233507f, 0.033200835f,  0.0328097873f, 0.0320541998f, 0.0332142857f,
    0.0335127515f, 0.0318112245f};
static const float glcm32[72] = {
    89.3653846f,   92.7708333f,   59.6715686f,   83.5520833f,   96.1435897f,   92.7708333f,   80.6042781f,
    83.5520833f,   103.08284f,    98.8857143f,   105.862745f,   78.9357143f,   7.65384615f,   7.75f,
    5.21078431f,   7.30208333f,   8.01025641f,   7.75f,         6.82887701f,   7.30208333f,   8.42011834f,
    8.52857143f,   9.09150327f,   6.79285714f,   0.172409923f,  0.162892316f,  0.263097845f,  0.178041722f,
    0.141416277f,  0.162892316f,  0.173719008f,  0.178041722f,  0.114507238f,  0.0954023132f, 0.0613564256f,
    0.169965441f,  0.0994623119f, 0.0917760947f, 0.103639091f,  0.0933149628f, 0.093931585f,  0.0917760947f,
    0.0894024251f, 0.0933149628f, 0.0778280854f, 0.0811272621f, 0.0767800008f, 0.0790569415f, -0.0499618719f,
    -0.0991845878f, 0.291311597f, 0.0172726693f, -0.113857268f, -0.0991845878f, 0.0429147483f, 0.0172726693f,
    -0.192385803f, -0.169064922f, -0.201534269f, 0.0928841826f, 0.00989275148f, 0.00842285156f, 0.0107410611f,
    0.00870768229f, 0.00882314267f, 0.00842285156f, 0.00799279362f, 0.00870768229f, 0.00605721088f, 0.00658163265f,
    0.00589516852f, 0.00625f};

static void test_lbp_uniform_matches_skimage_codes_and_histograms(void **state) {
    (void)state;
    hs_tensor *img = test_image();
    int64_t gshape[2] = {TH, TW};
    hs_tensor *gray = new_f64(2, gshape), *codes;
    assert_int_equal(hs_tensor_new(&codes, HS_DTYPE_F32, 2, gshape), HS_OK);
    assert_int_equal(hs_features_gray(gray, img), HS_OK);
    assert_int_equal(hs_features_lbp(codes, gray, 8, 1.0), HS_OK);
    hs_expect_close(codes->data, lbp_codes_r1, 3 * TW, 0, 0);
    assert_int_equal(hs_features_lbp(codes, gray, 8, 2.0), HS_OK);
    hs_expect_close(codes->data, lbp_codes_r2, 3 * TW, 0, 0);
    float h[10];
    assert_int_equal(hs_features_lbp_hist(h, gray, 8, 1.0), HS_OK);
    hs_expect_close(h, lbp_hist_r1, 10, 1e-7, 1e-6);
    assert_int_equal(hs_features_lbp_hist(h, gray, 8, 2.0), HS_OK);
    hs_expect_close(h, lbp_hist_r2, 10, 1e-7, 1e-6);
    float row[20];
    assert_int_equal(hs_features_lbp_row(row, img), HS_OK);
    hs_expect_close(row, lbp_hist_r1, 10, 1e-7, 1e-6);
    hs_expect_close(row + 10, lbp_hist_r2, 10, 1e-7, 1e-6);
    hs_tensor_free(codes);
    hs_tensor_free(gray);
    hs_tensor_free(img);
}

static void test_gray_matches_skimage_rgb2gray_bit_for_bit(void **state) {
    (void)state;
    // pixels where a plain (r*0.2125 + g*0.7154) + b*0.0721 is one ulp off skimage.color.rgb2gray
    // (numpy/OpenBLAS sums with fused multiply-adds); LBP ties in flat background depend on it
    const uint8_t px8[24] = {153, 204, 5, 118, 4, 87, 127, 169, 1, 189, 181, 64,
                             231, 51, 218, 91, 112, 16, 139, 49, 58, 194, 94, 197};
    const double want[8] = {0x1.67081b5baa4efp-1, 0x1.12bf64df57c3ep-3, 0x1.2915bb35ae1a3p-1, 0x1.5de5378bec96fp-1,
                            0x1.96c06db0743e3p-2, 0x1.940ab9368cf9fp-2, 0x1.142ca5e3bd3cap-2, 0x1.eca12925df02bp-2};
    int64_t shape[3] = {1, 8, 3}, gshape[2] = {1, 8};
    hs_tensor *img, *gray = new_f64(2, gshape);
    assert_int_equal(hs_tensor_from_buffer(&img, HS_DTYPE_U8, 3, shape, px8), HS_OK);
    assert_int_equal(hs_features_gray(gray, img), HS_OK);
    for (int i = 0; i < 8; i++)
        assert_true(((double *)gray->data)[i] == want[i]);
    hs_tensor_free(gray);
    hs_tensor_free(img);
}

static void test_lbp_of_a_strided_gray_view_equals_the_contiguous_result(void **state) {
    (void)state;
    hs_tensor *img = test_image();
    int64_t gshape[2] = {TH, TW}, tshape[2] = {TW, TH};
    hs_tensor *gray = new_f64(2, gshape), *gt = new_f64(2, tshape), *view;
    assert_int_equal(hs_features_gray(gray, img), HS_OK);
    // a transposed copy, viewed back through a transpose: same values, non-contiguous strides
    for (int y = 0; y < TH; y++)
        for (int x = 0; x < TW; x++)
            ((double *)gt->data)[x * TH + y] = ((double *)gray->data)[y * TW + x];
    assert_int_equal(hs_tensor_transpose(&view, gt, 0, 1), HS_OK);
    assert_false(hs_tensor_is_contiguous(view));
    float a[10], b[10];
    assert_int_equal(hs_features_lbp_hist(a, gray, 8, 1.0), HS_OK);
    assert_int_equal(hs_features_lbp_hist(b, view, 8, 1.0), HS_OK);
    assert_memory_equal(a, b, sizeof a);
    hs_tensor_free(view);
    hs_tensor_free(gt);
    hs_tensor_free(gray);
    hs_tensor_free(img);
}

static void test_glcm_props_match_skimage_graycoprops_at_8_and_32_levels(void **state) {
    (void)state;
    hs_tensor *img = test_image();
    float out[72];
    assert_int_equal(hs_features_glcm_row(out, img, 8), HS_OK);
    hs_expect_close(out, glcm8, 72, 1e-6, 1e-5);
    assert_int_equal(hs_features_glcm_row(out, img, 32), HS_OK);
    hs_expect_close(out, glcm32, 72, 1e-6, 1e-5);
    hs_tensor_free(img);
}

static void test_glcm_matrix_is_symmetric_normed_and_matches_skimage_counts(void **state) {
    (void)state;
    // 8-level image of the test picture, then graycomatrix at distance 1, angle pi/4
    hs_tensor *img = test_image();
    int64_t gshape[2] = {TH, TW};
    hs_tensor *gray = new_f64(2, gshape), *q;
    assert_int_equal(hs_features_gray(gray, img), HS_OK);
    assert_int_equal(hs_tensor_new(&q, HS_DTYPE_U8, 2, gshape), HS_OK);
    for (int i = 0; i < TH * TW; i++)
        ((uint8_t *)q->data)[i] = (uint8_t)((int)nearbyint(((double *)gray->data)[i] * 255.0) >> 5);
    int64_t mshape[4] = {8, 8, 1, 1};
    hs_tensor *m = new_f64(4, mshape);
    const double d = 1, a = M_PI / 4;
    assert_int_equal(hs_features_glcm(m, q, &d, 1, &a, 1, 1, 1), HS_OK);
    const double *p = m->data;
    // P[:2, :, 0, 0] from skimage (rows 0 and 1 of the symmetric normed matrix)
    const float want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0338541667f, 0.0208333333f, 0.0104166667f, 0.0364583333f,
                            0.0208333333f, 0};
    float got[16];
    for (int i = 0; i < 16; i++)
        got[i] = (float)p[i];
    hs_expect_close(got, want, 16, 1e-9, 1e-6);
    double sum = 0;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) {
            sum += p[i * 8 + j];
            assert_true(p[i * 8 + j] == p[j * 8 + i]);
        }
    assert_true(fabs(sum - 1) < 1e-12);
    hs_tensor_free(m);
    hs_tensor_free(q);
    hs_tensor_free(gray);
    hs_tensor_free(img);
}

static void test_glcm_of_an_image_smaller_than_the_offset_is_zero_with_correlation_one(void **state) {
    (void)state;
    int64_t shape[3] = {3, 3, 3};
    hs_tensor *img;
    assert_int_equal(hs_tensor_new(&img, HS_DTYPE_U8, 3, shape), HS_OK);
    for (int i = 0; i < 27; i++)
        ((uint8_t *)img->data)[i] = (uint8_t)(i * 9);
    float out[72];
    assert_int_equal(hs_features_glcm_row(out, img, 8), HS_OK);
    // distance 4 (index 2) never fits in 3x3: skimage leaves the matrix zero; graycoprops then
    // gives 0 for every property except correlation (1, the zero-std convention)
    for (int p = 0; p < 6; p++)
        for (int a = 0; a < 4; a++)
            assert_true(out[p * 12 + 2 * 4 + a] == (p == 4 ? 1.0f : 0.0f));
    hs_tensor_free(img);
}

static void test_colour_histograms_and_moments_match_numpy(void **state) {
    (void)state;
    hs_tensor *img = test_image();
    float h[12];
    const float rgb[12] = {0.239819005f, 0.212669683f, 0.312217195f, 0.235294118f, 0.244343891f, 0.235294118f,
                           0.28959276f,  0.230769231f, 0.226244344f, 0.226244344f, 0.334841629f, 0.212669683f};
    const float hsv[12] = {0.298642534f, 0, 0.479638009f, 0.221719457f, 0.0904977376f, 0.0407239819f,
                           0.285067873f, 0.583710407f, 0, 0.0226244344f, 0.334841629f, 0.642533937f};
    const float hed[12] = {0.520361991f, 0.194570136f, 0.131221719f, 0.153846154f, 0.778280543f, 0.0226244344f,
                           0.104072398f, 0.0950226244f, 0.592760181f, 0.199095023f, 0.122171946f, 0.0859728507f};
    const float mom[9] = {0.498252152f, 0.277790371f, -0.0902845295f, 0.493230414f, 0.283266138f,
                          0.0881429482f, 0.501836572f, 0.269649713f, 0.106486715f};
    assert_int_equal(hs_features_rgb_hist(h, img, 4), HS_OK);
    hs_expect_close(h, rgb, 12, 1e-7, 1e-6);
    assert_int_equal(hs_features_hsv_hist(h, img, 4), HS_OK);
    hs_expect_close(h, hsv, 12, 1e-7, 1e-6);
    const float hed_max[3] = {0.3f, 0.2f, 0.3f};
    assert_int_equal(hs_features_hed_hist(h, img, 4, hed_max), HS_OK);
    hs_expect_close(h, hed, 12, 1e-7, 1e-6);
    float m[9];
    assert_int_equal(hs_features_color_moments(m, img), HS_OK);
    hs_expect_close(m, mom, 9, 1e-6, 1e-5);
    hs_tensor_free(img);
}

static void test_feature_row_concatenates_kinds_in_spec_order_and_names_them(void **state) {
    (void)state;
    hs_features_spec spec;
    hs_features_spec_default(&spec);
    assert_int_equal(hs_features_spec_add(&spec, "glcm"), HS_OK);
    assert_int_equal(hs_features_spec_add(&spec, "rgb_hist"), HS_OK);
    assert_int_equal(hs_features_spec_add(&spec, "lbp"), HS_OK);
    assert_int_equal(hs_features_spec_add(&spec, "color_moments"), HS_OK);
    spec.bins = 4;
    int64_t F;
    assert_int_equal(hs_features_size(&F, &spec), HS_OK);
    assert_int_equal(F, 72 + 12 + 20 + 9);
    hs_tensor *img = test_image();
    float row[113];
    assert_int_equal(hs_features_compute(row, F, img, &spec), HS_OK);
    hs_expect_close(row, glcm8, 72, 1e-6, 1e-5);
    assert_true(fabsf(row[72] - 0.239819005f) < 1e-6f);
    hs_expect_close(row + 84, lbp_hist_r1, 10, 1e-7, 1e-6);
    hs_expect_close(row + 94, lbp_hist_r2, 10, 1e-7, 1e-6);
    char name[64];
    assert_int_equal(hs_features_name(name, sizeof name, &spec, 0), HS_OK);
    assert_string_equal(name, "glcm_contrast_d1_a0");
    assert_int_equal(hs_features_name(name, sizeof name, &spec, 71), HS_OK);
    assert_string_equal(name, "glcm_ASM_d4_a135");
    assert_int_equal(hs_features_name(name, sizeof name, &spec, 72 + 4 + 3), HS_OK);
    assert_string_equal(name, "rgb_hist_g_03");
    assert_int_equal(hs_features_name(name, sizeof name, &spec, 84 + 19), HS_OK);
    assert_string_equal(name, "lbp_r2_u9");
    assert_int_equal(hs_features_name(name, sizeof name, &spec, 104 + 5), HS_OK);
    assert_string_equal(name, "moment_skew_g");
    assert_int_equal(hs_features_name(name, sizeof name, &spec, F), HS_ERR_ARG);
    assert_int_equal(hs_features_compute(row, F - 1, img, &spec), HS_ERR_SHAPE);
    hs_tensor_free(img);
}

static void test_batch_rows_equal_single_rows_for_any_thread_count_and_strides(void **state) {
    (void)state;
    // (N,H,W,3) batch of 3 images: the test image, its mirror, and a constant image; then the
    // same batch through a strided view (every other column of a 2x wider batch)
    const int N = 3;
    int64_t shape[4] = {N, TH, 2 * TW, 3};
    hs_tensor *wide;
    assert_int_equal(hs_tensor_new(&wide, HS_DTYPE_U8, 4, shape), HS_OK);
    uint8_t *d = wide->data;
    for (int n = 0; n < N; n++)
        for (int y = 0; y < TH; y++)
            for (int x = 0; x < TW; x++)
                for (int c = 0; c < 3; c++) {
                    uint8_t v = n == 0 ? test_pixel(y, x, c) : n == 1 ? test_pixel(y, TW - 1 - x, c) : 77;
                    d[((n * TH + y) * 2 * TW + 2 * x) * 3 + c] = v;
                    d[((n * TH + y) * 2 * TW + 2 * x + 1) * 3 + c] = 255;  // noise the view must skip
                }
    hs_tensor view = *wide;  // every other column: stride doubled, width halved
    view.storage = NULL;
    view.shape[2] = TW;
    view.stride[2] = 2 * wide->stride[2];
    hs_features_spec spec;
    hs_features_spec_default(&spec);
    const char *kinds[] = {"rgb_hist", "hsv_hist", "hed_hist", "color_moments", "lbp", "glcm"};
    for (int k = 0; k < 6; k++)
        assert_int_equal(hs_features_spec_add(&spec, kinds[k]), HS_OK);
    int64_t F;
    assert_int_equal(hs_features_size(&F, &spec), HS_OK);
    assert_int_equal(F, 3 * 16 * 3 + 9 + 20 + 72);
    int64_t oshape[2] = {N, F};
    hs_tensor *out1, *out4;
    assert_int_equal(hs_tensor_new(&out1, HS_DTYPE_F32, 2, oshape), HS_OK);
    assert_int_equal(hs_tensor_new(&out4, HS_DTYPE_F32, 2, oshape), HS_OK);
    int saved = hs_get_num_threads();
    hs_set_num_threads(1);
    assert_int_equal(hs_features_batch(out1, &view, &spec), HS_OK);
    hs_set_num_threads(4);
    assert_int_equal(hs_features_batch(out4, &view, &spec), HS_OK);
    hs_set_num_threads(saved);
    assert_memory_equal(out1->data, out4->data, hs_tensor_nbytes(out1));
    hs_tensor *img = test_image();
    float *row = test_malloc(sizeof *row * (size_t)F);
    assert_int_equal(hs_features_compute(row, F, img, &spec), HS_OK);
    assert_memory_equal(out1->data, row, sizeof *row * (size_t)F);
    // the constant image: every histogram is one-hot, LBP all code 8 except at borders
    const float *r2 = (const float *)out1->data + 2 * F;
    assert_true(r2[77 * 16 / 256] == 1.0f);
    test_free(row);
    hs_tensor_free(img);
    hs_tensor_free(out4);
    hs_tensor_free(out1);
    hs_tensor_free(wide);
}

static void test_features_reject_bad_specs_shapes_and_dtypes(void **state) {
    (void)state;
    hs_features_spec spec;
    hs_features_spec_default(&spec);
    int64_t F;
    assert_int_equal(hs_features_size(&F, &spec), HS_ERR_ARG);  // no kinds
    assert_int_equal(hs_features_spec_add(&spec, "sift"), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "rgb_hist"));
    assert_int_equal(hs_features_spec_add(&spec, "lbp"), HS_OK);
    assert_int_equal(hs_features_spec_add(&spec, "lbp"), HS_ERR_ARG);
    spec.glcm_levels = 16;
    assert_int_equal(hs_features_size(&F, &spec), HS_ERR_ARG);
    spec.glcm_levels = 32;
    spec.bins = 1;
    assert_int_equal(hs_features_size(&F, &spec), HS_ERR_ARG);
    spec.bins = 16;
    spec.hed_max[1] = 0;
    assert_int_equal(hs_features_size(&F, &spec), HS_ERR_ARG);
    spec.hed_max[1] = 0.2f;
    assert_int_equal(hs_features_size(&F, &spec), HS_OK);

    int64_t s4[4] = {2, 8, 8, 3}, s4g[4] = {2, 8, 8, 1}, so[2] = {2, 20};
    hs_tensor *u8, *f32, *gray1, *out;
    assert_int_equal(hs_tensor_new(&u8, HS_DTYPE_U8, 4, s4), HS_OK);
    assert_int_equal(hs_tensor_new(&f32, HS_DTYPE_F32, 4, s4), HS_OK);
    assert_int_equal(hs_tensor_new(&gray1, HS_DTYPE_U8, 4, s4g), HS_OK);
    assert_int_equal(hs_tensor_new(&out, HS_DTYPE_F32, 2, so), HS_OK);
    assert_int_equal(hs_features_batch(out, u8, &spec), HS_OK);
    assert_int_equal(hs_features_batch(out, f32, &spec), HS_ERR_DTYPE);
    assert_int_equal(hs_features_batch(out, gray1, &spec), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "[2,8,8,1]"));
    assert_int_equal(hs_features_spec_add(&spec, "glcm"), HS_OK);
    assert_int_equal(hs_features_batch(out, u8, &spec), HS_ERR_SHAPE);  // out has 20 columns, needs 92
    float h[4];
    hs_tensor img = *u8;  // (8,8,3) view of image 0 with the batch's leading dim dropped
    img.storage = NULL;
    img.ndim = 3;
    for (int i = 0; i < 3; i++) {
        img.shape[i] = u8->shape[i + 1];
        img.stride[i] = u8->stride[i + 1];
    }
    assert_int_equal(hs_features_lbp_row(h, f32), HS_ERR_SHAPE);
    assert_int_equal(hs_features_rgb_hist(h, &img, 300), HS_ERR_ARG);
    assert_int_equal(hs_features_glcm_row(h, &img, 7), HS_ERR_ARG);
    hs_tensor_free(out);
    hs_tensor_free(gray1);
    hs_tensor_free(f32);
    hs_tensor_free(u8);
}

static void test_features_batch_survives_every_failed_allocation(void **state) {
    (void)state;
    hs_features_spec spec;
    hs_features_spec_default(&spec);
    const char *kinds[] = {"hsv_hist", "hed_hist", "lbp", "glcm"};
    for (int k = 0; k < 4; k++)
        assert_int_equal(hs_features_spec_add(&spec, kinds[k]), HS_OK);
    int64_t F, s4[4] = {2, 9, 7, 3};
    assert_int_equal(hs_features_size(&F, &spec), HS_OK);
    int64_t so[2] = {2, F};
    hs_tensor *imgs, *out;
    assert_int_equal(hs_tensor_new(&imgs, HS_DTYPE_U8, 4, s4), HS_OK);
    assert_int_equal(hs_tensor_new(&out, HS_DTYPE_F32, 2, so), HS_OK);
    for (int i = 0; i < 2 * 9 * 7 * 3; i++)
        ((uint8_t *)imgs->data)[i] = (uint8_t)(i * 31);
    int saved = hs_get_num_threads();
    hs_set_num_threads(1);  // the Nth allocation must be the same one every run
    hs_status s = HS_ERR_NOMEM;
    int n;
    for (n = 1; n < 200 && s != HS_OK; n++) {
        hs_alloc_fail_after((uint64_t)n);
        s = hs_features_batch(out, imgs, &spec);
        hs_alloc_fail_after(0);
        assert_true(s == HS_OK || s == HS_ERR_NOMEM);
    }
    hs_set_num_threads(saved);
    assert_int_equal(s, HS_OK);
    assert_true(n > 3);
    hs_tensor_free(out);
    hs_tensor_free(imgs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lbp_uniform_matches_skimage_codes_and_histograms),
        cmocka_unit_test(test_gray_matches_skimage_rgb2gray_bit_for_bit),
        cmocka_unit_test(test_lbp_of_a_strided_gray_view_equals_the_contiguous_result),
        cmocka_unit_test(test_glcm_props_match_skimage_graycoprops_at_8_and_32_levels),
        cmocka_unit_test(test_glcm_matrix_is_symmetric_normed_and_matches_skimage_counts),
        cmocka_unit_test(test_glcm_of_an_image_smaller_than_the_offset_is_zero_with_correlation_one),
        cmocka_unit_test(test_colour_histograms_and_moments_match_numpy),
        cmocka_unit_test(test_feature_row_concatenates_kinds_in_spec_order_and_names_them),
        cmocka_unit_test(test_batch_rows_equal_single_rows_for_any_thread_count_and_strides),
        cmocka_unit_test(test_features_reject_bad_specs_shapes_and_dtypes),
        cmocka_unit_test(test_features_batch_survives_every_failed_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
