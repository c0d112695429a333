// tests/test_parallel.c: the thread pool: every item processed exactly once, nested calls (a
// kernel calling a parallel kernel, e.g. the loader resizing inside a parallel decode) run
// serially instead of deadlocking, and chunking does not depend on the thread count.
#include "hs_test.h"

#include <stdatomic.h>
#include <string.h>

#include "parallel.h"

static atomic_int hits[1000];

static void mark(void *ctx, int64_t b, int64_t e) {
    (void)ctx;
    for (int64_t i = b; i < e; i++)
        atomic_fetch_add(&hits[i], 1);
}

static void nested(void *ctx, int64_t b, int64_t e) {
    (void)ctx;
    for (int64_t i = b; i < e; i++)
        hs_parallel_for(10, 3, mark, NULL);  // inner loop over hits[0..9]
}

static void test_parallel_for_visits_every_item_once(void **state) {
    (void)state;
    for (int nt = 1; nt <= 3; nt++) {
        assert_int_equal(hs_set_num_threads(nt), HS_OK);
        memset(hits, 0, sizeof hits);
        hs_parallel_for(1000, 7, mark, NULL);
        for (int i = 0; i < 1000; i++)
            assert_int_equal(atomic_load(&hits[i]), 1);
    }
}

static void test_parallel_for_nested_call_runs_serially_without_deadlock(void **state) {
    (void)state;
    assert_int_equal(hs_set_num_threads(2), HS_OK);
    memset(hits, 0, sizeof hits);
    hs_parallel_for(8, 1, nested, NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(atomic_load(&hits[i]), 8);
}

static void test_set_num_threads_rejects_out_of_range(void **state) {
    (void)state;
    assert_int_equal(hs_set_num_threads(0), HS_ERR_ARG);
    assert_int_equal(hs_set_num_threads(65), HS_ERR_ARG);
    assert_int_equal(hs_set_num_threads(2), HS_OK);
    assert_int_equal(hs_get_num_threads(), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_for_visits_every_item_once),
        cmocka_unit_test(test_parallel_for_nested_call_runs_serially_without_deadlock),
        cmocka_unit_test(test_set_num_threads_rejects_out_of_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
