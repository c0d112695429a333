// tests/test_augment.c: seeded augmentation: the same seed gives the same plan and bytes with 1
// or 2 threads; plans are consistent with geometry.c's flip/rot90/crop; identity specs copy;
// HED jitter stays in range and is the identity at zero jitter; bad specs are rejected.
#include "hs_test.h"

#include <math.h>
#include <string.h>

#include "augment.h"
#include "geometry.h"
#include "parallel.h"
#include "rng.h"

static hs_tensor *new_img(hs_dtype dt, int64_t h, int64_t w, int64_t c) {
    int64_t shape[3] = {h, w, c};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, dt, c ? 3 : 2, shape), HS_OK);
    return t;
}

static hs_tensor *random_rgb(int64_t h, int64_t w, uint64_t seed) {
    hs_tensor *t = new_img(HS_DTYPE_U8, h, w, 3);
    for (int64_t i = 0; i < hs_tensor_numel(t); i++)
        hs_tensor_set_flat(t, i, 40 + floor((double)hs_rng_uniform(seed, 3, (uint64_t)i) * 200));
    return t;
}

static int same(const hs_tensor *a, const hs_tensor *b) {
    return hs_tensor_nbytes(a) == hs_tensor_nbytes(b) && memcmp(a->data, b->data, hs_tensor_nbytes(a)) == 0;
}

static hs_tensor *run(const hs_tensor *x, const hs_augment_spec *spec, uint64_t seed, hs_augment_plan *plan) {
    assert_int_equal(hs_augment_draw(plan, spec, seed, x->shape[0], x->shape[1]), HS_OK);
    hs_tensor *y = new_img(x->dtype, plan->out_h, plan->out_w, x->ndim == 3 ? x->shape[2] : 0);
    assert_int_equal(hs_augment_apply(y, x, plan), HS_OK);
    return y;
}

static void test_augment_is_reproducible_across_thread_counts(void **state) {
    (void)state;
    hs_tensor *x = random_rgb(37, 53, 1);
    hs_augment_spec spec = {.p_hflip = 0.5, .p_vflip = 0.5, .rot90 = 1, .crop_w = 31, .crop_h = 20,
                            .brightness = 0.1, .contrast = 0.2, .hed_sigma = 0.05, .hed_bias = 0.02};
    int saved = hs_get_num_threads();
    for (uint64_t seed = 0; seed < 6; seed++) {
        hs_augment_plan p1, p2;
        assert_int_equal(hs_set_num_threads(1), HS_OK);
        hs_tensor *a = run(x, &spec, seed, &p1);
        assert_int_equal(hs_set_num_threads(2), HS_OK);
        hs_tensor *b = run(x, &spec, seed, &p2);
        assert_true(memcmp(&p1, &p2, sizeof p1) == 0);
        assert_true(same(a, b));
        hs_tensor_free(a);
        hs_tensor_free(b);
    }
    hs_set_num_threads(saved);
    // different seeds give different plans (over a few seeds, at least one differs)
    hs_augment_plan p, q;
    int differ = 0;
    assert_int_equal(hs_augment_draw(&p, &spec, 100, 37, 53), HS_OK);
    for (uint64_t s = 101; s < 105; s++) {
        assert_int_equal(hs_augment_draw(&q, &spec, s, 37, 53), HS_OK);
        differ |= memcmp(&p, &q, sizeof p) != 0;
    }
    assert_true(differ);
    hs_tensor_free(x);
}

static void test_augment_geometry_agrees_with_flip_rot90_and_crop(void **state) {
    (void)state;
    hs_tensor *x = random_rgb(12, 17, 2);
    hs_augment_spec spec = {.p_hflip = 1.0, .rot90 = 1, .crop_w = 9, .crop_h = 7};
    hs_augment_plan p;
    hs_tensor *y = run(x, &spec, 7, &p);
    assert_true(p.hflip && !p.vflip);
    assert_true(p.x >= 0 && p.x + 9 <= 17 && p.y >= 0 && p.y + 7 <= 12);
    hs_tensor *c = new_img(HS_DTYPE_U8, 7, 9, 3), *f = new_img(HS_DTYPE_U8, 7, 9, 3);
    hs_tensor *r = new_img(HS_DTYPE_U8, p.k & 1 ? 9 : 7, p.k & 1 ? 7 : 9, 3);
    assert_int_equal(hs_geometry_crop(c, x, p.x, p.y), HS_OK);
    assert_int_equal(hs_geometry_flip(f, c, 1), HS_OK);
    assert_int_equal(hs_geometry_rot90(r, f, p.k), HS_OK);
    assert_true(same(y, r));
    hs_tensor_free(c);
    hs_tensor_free(f);
    hs_tensor_free(r);
    hs_tensor_free(y);
    // an empty spec is a copy
    hs_augment_spec none;
    memset(&none, 0, sizeof none);
    y = run(x, &none, 3, &p);
    assert_true(same(x, y));
    hs_tensor_free(y);
    hs_tensor_free(x);
}

static void test_hed_jitter_stays_in_range_and_is_identity_at_zero(void **state) {
    (void)state;
    hs_tensor *x = random_rgb(10, 10, 4);
    hs_augment_spec spec = {.hed_sigma = 0.3, .hed_bias = 0.05};
    hs_augment_plan p;
    hs_tensor *y = run(x, &spec, 11, &p);
    assert_true(p.hed);
    int changed = 0;
    for (int64_t i = 0; i < hs_tensor_numel(y); i++)
        changed |= hs_tensor_get_flat(y, i) != hs_tensor_get_flat(x, i);
    assert_true(changed);
    hs_tensor_free(y);
    // zero jitter through the full OD round trip: the input back within rounding
    p.hed_scale[0] = p.hed_scale[1] = p.hed_scale[2] = 1;
    p.hed_shift[0] = p.hed_shift[1] = p.hed_shift[2] = 0;
    y = new_img(HS_DTYPE_U8, 10, 10, 3);
    assert_int_equal(hs_augment_apply(y, x, &p), HS_OK);
    assert_true(same(x, y));
    hs_tensor_free(y);
    hs_tensor_free(x);
}

static void test_augment_rejects_bad_specs(void **state) {
    (void)state;
    hs_augment_plan p;
    hs_augment_spec bad = {.p_hflip = 1.5};
    assert_int_equal(hs_augment_draw(&p, &bad, 0, 10, 10), HS_ERR_ARG);
    hs_augment_spec crop = {.crop_w = 11, .crop_h = 4};
    assert_int_equal(hs_augment_draw(&p, &crop, 0, 10, 10), HS_ERR_ARG);
    hs_augment_spec con = {.contrast = 1.0};
    assert_int_equal(hs_augment_draw(&p, &con, 0, 10, 10), HS_ERR_ARG);
    hs_augment_spec hed = {.hed_sigma = 0.1};
    hs_tensor *g = new_img(HS_DTYPE_U8, 10, 10, 0), *y = new_img(HS_DTYPE_U8, 10, 10, 0);
    assert_int_equal(hs_augment_draw(&p, &hed, 0, 10, 10), HS_OK);
    assert_int_equal(hs_augment_apply(y, g, &p), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "RGB"));
    hs_tensor_free(g);
    hs_tensor_free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_augment_is_reproducible_across_thread_counts),
        cmocka_unit_test(test_augment_geometry_agrees_with_flip_rot90_and_crop),
        cmocka_unit_test(test_hed_jitter_stays_in_range_and_is_identity_at_zero),
        cmocka_unit_test(test_augment_rejects_bad_specs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
