// tests/test_ihc.c: IHC quantification kernels (core/ihc.h): fill holes, area filter, expand
// labels, classification and summary arithmetic, overlay colours, and the whole segment+measure
// chain recovering the known counts and classes of synthetic tiles (core/synth.h).
#include "hs_test.h"

#include <math.h>
#include <string.h>

#include "ihc.h"
#include "synth.h"
#include "tensor.h"

static hs_tensor *plane(hs_dtype dt, int64_t h, int64_t w) {
    int64_t s[2] = {h, w};
    hs_tensor *t = NULL;
    assert_int_equal(hs_tensor_new(&t, dt, 2, s), HS_OK);
    return t;
}

static void test_fill_holes_fills_enclosed_background_only(void **state) {
    (void)state;
    hs_tensor *m = plane(HS_DTYPE_U8, 7, 7);
    uint8_t *d = m->data;
    for (int i = 1; i <= 5; i++)  // a square ring around (3,3)
        d[1 * 7 + i] = d[5 * 7 + i] = d[i * 7 + 1] = d[i * 7 + 5] = 255;
    d[3 * 7 + 5] = 0;             // a gap in the ring joins its inside to the outer background
    hs_tensor *out = plane(HS_DTYPE_U8, 7, 7);
    assert_int_equal(hs_ihc_fill_holes(out, m), HS_OK);
    assert_int_equal(((uint8_t *)out->data)[3 * 7 + 3], 0);  // open ring: not a hole
    d[3 * 7 + 5] = 255;
    assert_int_equal(hs_ihc_fill_holes(out, m), HS_OK);
    const uint8_t *o = out->data;
    assert_int_equal(o[3 * 7 + 3], 255);
    assert_int_equal(o[0], 0);
    assert_int_equal(o[6 * 7 + 6], 0);
    hs_tensor_free(m);
    hs_tensor_free(out);
}

static void test_filter_area_drops_small_and_large_and_renumbers(void **state) {
    (void)state;
    hs_tensor *l = plane(HS_DTYPE_I32, 4, 10);
    int32_t *d = l->data;
    d[0] = 1;                                   // label 1: area 1
    for (int i = 0; i < 4; i++) d[10 + i] = 2;  // label 2: area 4
    for (int i = 0; i < 9; i++) d[30 + i] = 3;  // label 3: area 9
    int64_t count = 3;
    assert_int_equal(hs_ihc_filter_area(l, &count, 2, 5), HS_OK);
    assert_int_equal(count, 1);
    assert_int_equal(d[0], 0);
    assert_int_equal(d[10], 1);
    assert_int_equal(d[30], 0);
    count = -1;
    assert_int_equal(hs_ihc_filter_area(l, &count, 0, 0), HS_ERR_ARG);
    hs_tensor_free(l);
}

static void test_expand_labels_grows_to_nearest_within_radius(void **state) {
    (void)state;
    hs_tensor *l = plane(HS_DTYPE_I32, 1, 9), *out = plane(HS_DTYPE_I32, 1, 9);
    int32_t *d = l->data;
    d[0] = 1;
    d[8] = 2;
    assert_int_equal(hs_ihc_expand_labels(out, l, 3), HS_OK);
    const int32_t want[9] = {1, 1, 1, 1, 0, 2, 2, 2, 2};
    assert_memory_equal(out->data, want, sizeof want);
    assert_int_equal(hs_ihc_expand_labels(l, l, 3), HS_ERR_ARG);  // no aliasing
    hs_tensor_free(l);
    hs_tensor_free(out);
}

static void test_summary_computes_labelling_index_and_h_score(void **state) {
    (void)state;
    const double t[3] = {0.1, 0.3, 0.6};
    assert_int_equal(hs_ihc_classify(0.05, t), 0);
    assert_int_equal(hs_ihc_classify(0.10, t), 1);
    assert_int_equal(hs_ihc_classify(0.31, t), 2);
    assert_int_equal(hs_ihc_classify(0.90, t), 3);
    hs_ihc_nucleus n[8];
    memset(n, 0, sizeof n);
    int cls[8] = {0, 0, 0, 0, 1, 2, 3, 3};  // 4 negative, 1x1+, 1x2+, 2x3+
    for (int i = 0; i < 8; i++) n[i].cls = cls[i];
    hs_ihc_summary s;
    hs_ihc_summarize(&s, n, 8);
    assert_int_equal(s.count, 8);
    assert_int_equal(s.positive, 4);
    assert_int_equal(s.by_class[2], 2);
    assert_true(fabs(s.labelling_index - 50.0) < 1e-12);
    assert_true(fabs(s.h_score - 100.0 * (1 + 2 + 6) / 8) < 1e-12);
    hs_ihc_summarize(&s, NULL, 0);
    assert_true(s.labelling_index == 0 && s.h_score == 0);
}

static void test_check_params_rejects_unordered_thresholds(void **state) {
    (void)state;
    hs_ihc_params p;
    hs_ihc_defaults(&p);
    assert_int_equal(hs_ihc_check_params(&p), HS_OK);
    p.thresholds[1] = 0.05;
    assert_int_equal(hs_ihc_check_params(&p), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "thresholds"));
}

static void test_overlay_paints_outlines_in_class_colours(void **state) {
    (void)state;
    int64_t s3[3] = {9, 9, 3};
    hs_tensor *rgb = NULL, *out = NULL;
    assert_int_equal(hs_tensor_new(&rgb, HS_DTYPE_U8, 3, s3), HS_OK);
    assert_int_equal(hs_tensor_new(&out, HS_DTYPE_U8, 3, s3), HS_OK);
    hs_tensor_fill(rgb, 200);
    hs_tensor *l = plane(HS_DTYPE_I32, 9, 9);
    int32_t *d = l->data;
    for (int y = 2; y <= 6; y++)
        for (int x = 2; x <= 6; x++) d[y * 9 + x] = 1;
    hs_ihc_nucleus n = {0};
    n.cls = 3;
    assert_int_equal(hs_ihc_overlay(out, rgb, l, &n, 1, 1), HS_OK);
    const uint8_t *o = out->data;
    assert_memory_equal(o + (2 * 9 + 4) * 3, hs_ihc_palette[3], 3);  // outline
    assert_int_equal(o[(4 * 9 + 4) * 3], 200);                       // interior untouched
    assert_int_equal(o[0], 200);                                     // background untouched
    hs_tensor *cm = plane(HS_DTYPE_U8, 9, 9);
    assert_int_equal(hs_ihc_class_map(cm, l, &n, 1), HS_OK);
    assert_int_equal(((uint8_t *)cm->data)[4 * 9 + 4], 4);
    hs_tensor_free(cm);
    hs_tensor_free(rgb);
    hs_tensor_free(out);
    hs_tensor_free(l);
}

// The whole chain on synthetic tiles, including touching nuclei: counts within 10 %, labelling
// index within 5 points, H-score within 20.
static void test_quantify_recovers_synthetic_truth(void **state) {
    (void)state;
    const int64_t H = 160, W = 160;
    int64_t s3[3] = {H, W, 3};
    hs_tensor *rgb = NULL;
    assert_int_equal(hs_tensor_new(&rgb, HS_DTYPE_U8, 3, s3), HS_OK);
    hs_tensor *nuclear = plane(HS_DTYPE_F32, H, W), *dab = plane(HS_DTYPE_F32, H, W);
    hs_tensor *labels = plane(HS_DTYPE_I32, H, W);
    static hs_synth_nucleus truth[200];
    static hs_ihc_nucleus got[400];
    hs_ihc_params ip;
    hs_ihc_defaults(&ip);
    for (int k = 0; k < 6; k++) {
        hs_synth_params sp;
        hs_synth_defaults(&sp);
        sp.seed = (uint64_t)(100 + k);
        sp.n_nuclei = 15 + 10 * k;
        sp.min_gap = 2 - k;  // down to overlapping nuclei
        sp.positive_fraction = 0.15f * (float)(k + 1);
        sp.texture = 0.25f;
        int n = 0;
        assert_int_equal(hs_synth_ihc(rgb, NULL, truth, 200, &n, &sp), HS_OK);
        int pos = 0, score = 0;
        for (int i = 0; i < n; i++) {
            pos += truth[i].positive;
            score += truth[i].intensity;
        }
        assert_int_equal(hs_ihc_channels(nuclear, dab, rgb, ip.nuclear), HS_OK);
        int64_t count = 0;
        assert_int_equal(hs_ihc_segment(labels, &count, NULL, nuclear, &ip), HS_OK);
        assert_true(count <= 400);
        assert_int_equal(hs_ihc_measure(got, count, labels, nuclear, dab, &ip), HS_OK);
        hs_ihc_summary s;
        hs_ihc_summarize(&s, got, count);
        double li = 100.0 * pos / n, hsc = 100.0 * score / n;
        assert_true(fabs((double)s.count - n) <= 0.10 * n);
        assert_true(fabs(s.labelling_index - li) <= 5.0);
        assert_true(fabs(s.h_score - hsc) <= 20.0);
    }
    hs_tensor_free(rgb);
    hs_tensor_free(nuclear);
    hs_tensor_free(dab);
    hs_tensor_free(labels);
}

static void test_segment_finds_nothing_on_an_empty_tile(void **state) {
    (void)state;
    hs_tensor *nuclear = plane(HS_DTYPE_F32, 32, 32), *labels = plane(HS_DTYPE_I32, 32, 32);
    float *d = nuclear->data;
    for (int i = 0; i < 32 * 32; i++) d[i] = 0.02f + 0.01f * (float)(i % 7) / 7;  // faint background only
    hs_ihc_params p;
    hs_ihc_defaults(&p);
    int64_t count = -1;
    double t = 0;
    assert_int_equal(hs_ihc_segment(labels, &count, &t, nuclear, &p), HS_OK);
    assert_int_equal(count, 0);
    assert_true(t >= p.min_threshold);
    hs_tensor_free(nuclear);
    hs_tensor_free(labels);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill_holes_fills_enclosed_background_only),
        cmocka_unit_test(test_filter_area_drops_small_and_large_and_renumbers),
        cmocka_unit_test(test_expand_labels_grows_to_nearest_within_radius),
        cmocka_unit_test(test_summary_computes_labelling_index_and_h_score),
        cmocka_unit_test(test_check_params_rejects_unordered_thresholds),
        cmocka_unit_test(test_overlay_paints_outlines_in_class_colours),
        cmocka_unit_test(test_quantify_recovers_synthetic_truth),
        cmocka_unit_test(test_segment_finds_nothing_on_an_empty_tile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
