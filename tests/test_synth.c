// tests/test_synth.c: the synthetic IHC renderer (core/synth.h): determinism for a seed, labels
// that agree with the returned nuclei, user-given nuclei rendered exactly, touching/overlapping
// placement, the stain model (DAB-positive nuclei are browner), and bad parameters.
#include "hs_test.h"

#include <math.h>
#include <string.h>

#include "synth.h"
#include "tensor.h"

typedef struct {
    hs_tensor *rgb, *labels;
    hs_synth_nucleus nuc[256];
    int count;
} tile;

static void render(tile *t, int64_t h, int64_t w, const hs_synth_params *p) {
    int64_t s3[3] = {h, w, 3};
    assert_int_equal(hs_tensor_new(&t->rgb, HS_DTYPE_U8, 3, s3), HS_OK);
    assert_int_equal(hs_tensor_new(&t->labels, HS_DTYPE_I32, 2, s3), HS_OK);
    assert_int_equal(hs_synth_ihc(t->rgb, t->labels, t->nuc, 256, &t->count, p), HS_OK);
}

static void tile_free(tile *t) {
    hs_tensor_free(t->rgb);
    hs_tensor_free(t->labels);
}

static void test_synth_same_seed_gives_same_bytes_and_other_seed_differs(void **state) {
    (void)state;
    hs_synth_params p;
    hs_synth_defaults(&p);
    p.texture = 0.3f;
    p.eosin_od = 0.1f;
    tile a, b, c;
    render(&a, 64, 80, &p);
    render(&b, 64, 80, &p);
    p.seed = 2;
    render(&c, 64, 80, &p);
    assert_memory_equal(a.rgb->data, b.rgb->data, hs_tensor_nbytes(a.rgb));
    assert_memory_equal(a.labels->data, b.labels->data, hs_tensor_nbytes(a.labels));
    assert_true(memcmp(a.rgb->data, c.rgb->data, hs_tensor_nbytes(a.rgb)) != 0);
    tile_free(&a);
    tile_free(&b);
    tile_free(&c);
}

static void test_synth_labels_cover_every_nucleus_and_centres(void **state) {
    (void)state;
    hs_synth_params p;
    hs_synth_defaults(&p);
    p.n_nuclei = 30;
    tile t;
    render(&t, 128, 128, &p);
    assert_true(t.count > 10);
    const int32_t *l = t.labels->data;
    for (int i = 0; i < t.count; i++) {
        int64_t x = (int64_t)t.nuc[i].cx, y = (int64_t)t.nuc[i].cy;
        assert_int_equal(l[y * 128 + x], i + 1);  // min_gap 2: no overlaps, centre owned
    }
    int32_t maxl = 0;
    for (int64_t i = 0; i < 128 * 128; i++)
        maxl = l[i] > maxl ? l[i] : maxl;
    assert_int_equal(maxl, t.count);
    tile_free(&t);
}

static void test_synth_given_nuclei_are_rendered_where_asked(void **state) {
    (void)state;
    hs_synth_nucleus g[2] = {{20, 20, 6, 6, 0, 0, 0}, {44, 30, 8, 5, 0.5f, 1, 3}};
    hs_synth_params p;
    hs_synth_defaults(&p);
    p.given = g;
    p.n_given = 2;
    p.noise = 0;
    tile t;
    render(&t, 48, 64, &p);
    assert_int_equal(t.count, 2);
    const int32_t *l = t.labels->data;
    const uint8_t *px = t.rgb->data;
    assert_int_equal(l[20 * 64 + 20], 1);
    assert_int_equal(l[30 * 64 + 44], 2);
    assert_int_equal(l[2 * 64 + 2], 0);
    // hematoxylin is blue (B > R), a 3+ DAB nucleus is brown (R > B)
    const uint8_t *neg = px + (20 * 64 + 20) * 3, *pos = px + (30 * 64 + 44) * 3;
    assert_true(neg[2] > neg[0]);
    assert_true(pos[0] > pos[2]);
    tile_free(&t);
}

static void test_synth_negative_gap_makes_touching_nuclei(void **state) {
    (void)state;
    hs_synth_params p;
    hs_synth_defaults(&p);
    p.n_nuclei = 80;
    p.min_gap = -3;
    tile t;
    render(&t, 128, 128, &p);
    const int32_t *l = t.labels->data;
    int touching = 0;
    for (int64_t y = 0; y < 128; y++)
        for (int64_t x = 0; x + 1 < 128; x++)
            touching += l[y * 128 + x] > 0 && l[y * 128 + x + 1] > 0 && l[y * 128 + x] != l[y * 128 + x + 1];
    assert_true(touching > 10);
    tile_free(&t);
}

static void test_synth_rejects_bad_parameters_with_messages(void **state) {
    (void)state;
    hs_synth_params p;
    hs_synth_defaults(&p);
    int64_t s3[3] = {32, 32, 3}, bad[3] = {32, 32, 4};
    hs_tensor *rgb = NULL, *wrong = NULL;
    assert_int_equal(hs_tensor_new(&rgb, HS_DTYPE_U8, 3, s3), HS_OK);
    assert_int_equal(hs_tensor_new(&wrong, HS_DTYPE_U8, 3, bad), HS_OK);
    hs_synth_nucleus nuc[4];
    int n;
    assert_int_equal(hs_synth_ihc(wrong, NULL, nuc, 4, &n, &p), HS_ERR_SHAPE);
    p.texture = 2;
    assert_int_equal(hs_synth_ihc(rgb, NULL, nuc, 4, &n, &p), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "texture"));
    hs_synth_defaults(&p);
    hs_synth_nucleus g[1] = {{5, 5, 4, 4, 0, 1, 0}};  // positive without intensity
    p.given = g;
    p.n_given = 1;
    assert_int_equal(hs_synth_ihc(rgb, NULL, nuc, 4, &n, &p), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "given nucleus 1"));
    p.n_given = 5;  // more than the room given
    assert_int_equal(hs_synth_ihc(rgb, NULL, nuc, 4, &n, &p), HS_ERR_ARG);
    hs_tensor_free(rgb);
    hs_tensor_free(wrong);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_same_seed_gives_same_bytes_and_other_seed_differs),
        cmocka_unit_test(test_synth_labels_cover_every_nucleus_and_centres),
        cmocka_unit_test(test_synth_given_nuclei_are_rendered_where_asked),
        cmocka_unit_test(test_synth_negative_gap_makes_touching_nuclei),
        cmocka_unit_test(test_synth_rejects_bad_parameters_with_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
