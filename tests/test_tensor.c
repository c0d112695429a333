// tests/test_tensor.c: the tensor container: creation, views sharing storage, copies across
// dtypes and strides, counter-based random streams, and failure paths (fault injection).
#include "hs_test.h"

#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "tensor.h"

static void test_tensor_new_is_zeroed_contiguous_and_six_dims_work(void **state) {
    (void)state;
    int64_t shape[6] = {2, 1, 3, 1, 2, 2};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_F32, 6, shape), HS_OK);
    assert_int_equal(hs_tensor_numel(t), 24);
    assert_true(hs_tensor_is_contiguous(t));
    for (int64_t i = 0; i < 24; i++)
        assert_true(hs_tensor_get_flat(t, i) == 0.0);
    assert_int_equal(t->stride[0], 12);
    assert_int_equal(t->stride[5], 1);
    hs_tensor_free(t);
    hs_tensor_free(NULL);
}

static void test_tensor_new_rejects_negative_and_too_many_dims(void **state) {
    (void)state;
    int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    hs_tensor *t = (hs_tensor *)1;
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_F32, 9, shape), HS_ERR_ARG);
    assert_null(t);
    int64_t neg[2] = {2, -3};
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_F32, 2, neg), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "negative"));
}

static void test_tensor_views_share_storage(void **state) {
    (void)state;
    hs_tensor *t, *n, *s, *r, *p;
    assert_int_equal(hs_tensor_arange(&t, HS_DTYPE_F32, 0, 24, 1), HS_OK);
    int64_t sh[3] = {2, 3, 4};
    assert_int_equal(hs_tensor_reshape(&r, t, 3, sh), HS_OK);
    assert_int_equal(hs_tensor_narrow(&n, r, 2, 1, 2), HS_OK);   // [2,3,2]: cols 1..2
    assert_false(hs_tensor_is_contiguous(n));
    assert_true(hs_tensor_get_flat(n, 0) == 1.0);
    assert_true(hs_tensor_get_flat(n, 3) == 6.0);
    assert_int_equal(hs_tensor_select(&s, r, 0, 1), HS_OK);      // [3,4] = 12..23
    assert_int_equal(s->ndim, 2);
    assert_true(hs_tensor_get_flat(s, 0) == 12.0);
    hs_tensor_set_flat(s, 0, -5);                                // writes through to t
    assert_true(hs_tensor_get_flat(t, 12) == -5.0);
    int perm[3] = {2, 0, 1};
    assert_int_equal(hs_tensor_permute(&p, r, perm), HS_OK);     // [4,2,3]
    assert_int_equal(p->shape[0], 4);
    assert_true(hs_tensor_get_flat(p, 1) == 4.0);                 // p[0,0,1] = r[0,1,0]
    hs_tensor_free(p);
    hs_tensor_free(s);
    hs_tensor_free(n);
    hs_tensor_free(r);
    hs_tensor_free(t);
}

static void test_tensor_reshape_reports_both_shapes(void **state) {
    (void)state;
    hs_tensor *t, *r;
    int64_t sh[2] = {5, 5};
    assert_int_equal(hs_tensor_arange(&t, HS_DTYPE_F32, 0, 24, 1), HS_OK);
    assert_int_equal(hs_tensor_reshape(&r, t, 2, sh), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "[24]"));
    assert_non_null(strstr(hs_last_error()->msg, "[5,5]"));
    int64_t inf[2] = {-1, 6};
    assert_int_equal(hs_tensor_reshape(&r, t, 2, inf), HS_OK);
    assert_int_equal(r->shape[0], 4);
    hs_tensor_free(r);
    hs_tensor_free(t);
}

static void test_tensor_copy_converts_dtype_with_rounding_and_saturation(void **state) {
    (void)state;
    float src[5] = {-3.0f, 0.5f, 1.5f, 254.6f, 300.0f};
    int64_t n = 5;
    hs_tensor *f, *u;
    assert_int_equal(hs_tensor_from_buffer(&f, HS_DTYPE_F32, 1, &n, src), HS_OK);
    assert_int_equal(hs_tensor_new(&u, HS_DTYPE_U8, 1, &n), HS_OK);
    assert_int_equal(hs_tensor_copy(u, f), HS_OK);
    const uint8_t *d = u->data;
    assert_int_equal(d[0], 0);
    assert_int_equal(d[1], 0);   // half to even
    assert_int_equal(d[2], 2);
    assert_int_equal(d[3], 255);
    assert_int_equal(d[4], 255);
    hs_tensor_free(f);
    hs_tensor_free(u);
}

static void test_tensor_random_streams_are_deterministic_and_plausible(void **state) {
    (void)state;
    int64_t n = 20000;
    hs_tensor *a, *b;
    assert_int_equal(hs_tensor_new(&a, HS_DTYPE_F32, 1, &n), HS_OK);
    assert_int_equal(hs_tensor_new(&b, HS_DTYPE_F32, 1, &n), HS_OK);
    assert_int_equal(hs_tensor_rand_normal(a, 42, 0, 1), HS_OK);
    assert_int_equal(hs_tensor_rand_normal(b, 42, 0, 1), HS_OK);
    assert_memory_equal(a->data, b->data, (size_t)n * 4);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = ((float *)a->data)[i];
        sum += v;
        sq += v * v;
    }
    double mean = sum / (double)n, var = sq / (double)n - mean * mean;
    assert_true(mean > -0.03 && mean < 0.03);
    assert_true(var > 0.95 && var < 1.05);
    assert_int_equal(hs_tensor_rand_uniform(b, 43, 2, 3), HS_OK);
    for (int64_t i = 0; i < n; i++) {
        float v = ((float *)b->data)[i];
        assert_true(v >= 2.0f && v < 3.0f);
    }
    hs_tensor_free(a);
    hs_tensor_free(b);
}

static void test_tensor_new_survives_every_allocation_failure(void **state) {
    (void)state;
    int64_t shape[2] = {3, 4};
    for (uint64_t k = 1;; k++) {
        hs_tensor *t = NULL;
        hs_alloc_fail_after(k);
        hs_status s = hs_tensor_new(&t, HS_DTYPE_F32, 2, shape);
        hs_alloc_fail_after(0);
        if (s == HS_OK) {
            hs_tensor_free(t);
            break;
        }
        assert_int_equal(s, HS_ERR_NOMEM);
        assert_null(t);
        assert_true(k < 10);
    }
}

// Big blocks are mapped (2 MB aligned) and small ones come from the heap; hs_free takes both,
// hs_calloc is zero even when it reuses a kept block that was dirtied before being freed, and
// every successful allocation is counted once.
static void test_alloc_big_blocks_are_aligned_zeroed_reused_and_counted(void **state) {
    (void)state;
    const size_t big = HS_ALLOC_BIG + 12345;
    uint64_t n0 = hs_alloc_count();
    unsigned char *a = hs_alloc(big), *s = hs_alloc(100);
    assert_non_null(a);
    assert_non_null(s);
    assert_int_equal((uintptr_t)a % HS_ALLOC_BIG, 0);
    assert_int_equal((uintptr_t)s % 64, 0);
    memset(a, 0xAB, big);
    memset(s, 0xCD, 100);
    assert_int_equal(hs_alloc_count() - n0, 2);
    hs_free(a);
    hs_free(s);
    for (int round = 0; round < 3; round++) {  // the same size again: a kept block, dirty inside
        unsigned char *z = hs_calloc(big, 1);
        assert_non_null(z);
        for (size_t i = 0; i < big; i += 4093)
            assert_int_equal(z[i], 0);
        assert_int_equal(z[big - 1], 0);
        memset(z, 0x5A, big);
        hs_free(z);
    }
    assert_int_equal(hs_alloc_count() - n0, 5);
    // many live big blocks at once (the registry grows), freed in a scrambled order
    enum { N = 40 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = hs_alloc(HS_ALLOC_BIG * (size_t)(1 + i % 3));
        assert_non_null(p[i]);
        memset(p[i], i, 64);
    }
    for (int i = 0; i < N; i++) {
        int k = (i * 17) % N;
        assert_int_equal(((unsigned char *)p[k])[63], k);
        hs_free(p[k]);
    }
    hs_free(NULL);
}

static void test_alloc_injected_failure_hits_big_blocks_too(void **state) {
    (void)state;
    hs_alloc_fail_after(1);
    assert_null(hs_alloc(3 * HS_ALLOC_BIG));
    void *p = hs_alloc(3 * HS_ALLOC_BIG);  // injection fired once
    assert_non_null(p);
    hs_free(p);
    assert_null(hs_calloc(SIZE_MAX / 2, 4));  // overflow
}

static void test_tensor_new_uninit_has_the_shape_and_any_contents(void **state) {
    (void)state;
    int64_t shape[3] = {1024, 1024, 3};  // 12 MB of F32: a mapped block
    hs_tensor *t, *z;
    assert_int_equal(hs_tensor_new_uninit(&t, HS_DTYPE_F32, 3, shape), HS_OK);
    assert_true(hs_tensor_is_contiguous(t));
    assert_int_equal(hs_tensor_numel(t), 1024 * 1024 * 3);
    assert_int_equal(hs_tensor_fill(t, 7.0), HS_OK);
    hs_tensor_free(t);
    assert_int_equal(hs_tensor_new(&z, HS_DTYPE_F32, 3, shape), HS_OK);  // may reuse t's block
    for (int64_t i = 0; i < hs_tensor_numel(z); i += 997)
        assert_true(hs_tensor_get_flat(z, i) == 0.0);
    hs_tensor_free(z);
    int64_t bad[1] = {-1};
    t = (hs_tensor *)1;
    assert_int_equal(hs_tensor_new_uninit(&t, HS_DTYPE_U8, 1, bad), HS_ERR_ARG);
    assert_null(t);
    for (uint64_t k = 1;; k++) {
        hs_alloc_fail_after(k);
        hs_status st = hs_tensor_new_uninit(&t, HS_DTYPE_U8, 3, shape);
        hs_alloc_fail_after(0);
        if (st == HS_OK) {
            hs_tensor_free(t);
            break;
        }
        assert_int_equal(st, HS_ERR_NOMEM);
        assert_null(t);
        assert_true(k < 10);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_new_is_zeroed_contiguous_and_six_dims_work),
        cmocka_unit_test(test_tensor_new_rejects_negative_and_too_many_dims),
        cmocka_unit_test(test_tensor_views_share_storage),
        cmocka_unit_test(test_tensor_reshape_reports_both_shapes),
        cmocka_unit_test(test_tensor_copy_converts_dtype_with_rounding_and_saturation),
        cmocka_unit_test(test_tensor_random_streams_are_deterministic_and_plausible),
        cmocka_unit_test(test_tensor_new_survives_every_allocation_failure),
        cmocka_unit_test(test_alloc_big_blocks_are_aligned_zeroed_reused_and_counted),
        cmocka_unit_test(test_alloc_injected_failure_hits_big_blocks_too),
        cmocka_unit_test(test_tensor_new_uninit_has_the_shape_and_any_contents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
