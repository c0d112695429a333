// tests/test_dist.c: core/dist.h and the data-parallel loader shard (core/loader.h). Run by CTest
// as one process (the world has one rank: every collective is a local no-op or copy); run under
// `mpirun -np 2` by tests/mpi_dp.sh, where the collectives are checked across ranks.
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "hs_test.h"
#include "loader.h"
#include "tensor.h"

static int rank, size;

static int setup(void **state) {
    (void)state;
    return hs_dist_init(&rank, &size) == HS_OK ? 0 : -1;
}

static void test_dist_init_is_idempotent_and_one_rank_when_not_launched(void **state) {
    (void)state;
    int r = -1, s = -1;
    assert_int_equal(hs_dist_init(&r, &s), HS_OK);
    assert_int_equal(r, rank);
    assert_int_equal(s, size);
    assert_int_equal(hs_dist_rank(), rank);
    assert_int_equal(hs_dist_size(), size);
    if (!hs_dist_launched()) {
        assert_int_equal(size, 1);
        assert_int_equal(rank, 0);
        assert_int_equal(hs_dist_initialized(), 0);  // MPI_Init only under a launcher
    } else {
        assert_true(hs_dist_available());
        assert_int_equal(hs_dist_initialized(), 1);
    }
}

static void test_dist_allreduce_sums_every_rank_contribution(void **state) {
    (void)state;
    enum { N = 1000 };
    float *f = malloc(sizeof(float) * N), *want = malloc(sizeof(float) * N);
    double d[3] = {rank + 0.5, 1.0, -2.0 * rank};
    for (int i = 0; i < N; i++) {
        f[i] = (float)(rank + 1) * (float)(i % 17 - 8) * 0.25f;
        want[i] = (float)(size * (size + 1) / 2) * (float)(i % 17 - 8) * 0.25f;  // exact in float
    }
    assert_int_equal(hs_dist_allreduce_sum_f32(f, N), HS_OK);
    hs_expect_close(f, want, N, 0, 0);
    assert_int_equal(hs_dist_allreduce_sum_f64(d, 3), HS_OK);
    assert_true(d[0] == size * size / 2.0 && d[1] == size && d[2] == -(double)size * (size - 1));
    assert_int_equal(hs_dist_allreduce_sum_f32(f, -1), HS_ERR_ARG);
    free(f);
    free(want);
}

static void test_dist_iallreduce_completes_in_any_wait_order(void **state) {
    (void)state;
    float a[64], b[64], wa[64], wb[64];
    for (int i = 0; i < 64; i++) {
        a[i] = (float)i;
        b[i] = (float)(rank * 64 + i);
        wa[i] = (float)(size * i);
        wb[i] = (float)(64 * size * (size - 1) / 2 + size * i);
    }
    int ra, rb;
    assert_int_equal(hs_dist_iallreduce_sum_f32(&ra, a, 64), HS_OK);
    assert_int_equal(hs_dist_iallreduce_sum_f32(&rb, b, 64), HS_OK);
    hs_dist_progress();
    assert_int_equal(hs_dist_wait(rb), HS_OK);
    assert_int_equal(hs_dist_wait(ra), HS_OK);
    hs_expect_close(a, wa, 64, 0, 0);
    hs_expect_close(b, wb, 64, 0, 0);
    assert_int_not_equal(hs_dist_wait(HS_DIST_MAX_REQUESTS), HS_OK);  // not a request
}

static void test_dist_bcast_and_gather_move_bytes_in_rank_order(void **state) {
    (void)state;
    char msg[32] = "";
    uint64_t n = 0;
    if (rank == 0) {
        strcpy(msg, "hello from root");
        n = strlen(msg) + 1;
    }
    assert_int_equal(hs_dist_bcast_size(&n, 0), HS_OK);
    assert_int_equal(n, 16);
    assert_int_equal(hs_dist_bcast(msg, n, 0), HS_OK);
    assert_string_equal(msg, "hello from root");
    assert_int_equal(hs_dist_bcast_size(&n, size), HS_ERR_ARG);  // root out of range
    assert_non_null(strstr(hs_last_error()->msg, "out of range"));

    char mine[8];
    uint64_t len = (uint64_t)(1 + rank);  // rank r sends r+1 bytes 'a'+r
    memset(mine, 'a' + rank, sizeof mine);
    uint64_t *sizes = calloc((size_t)size, sizeof *sizes);
    assert_int_equal(hs_dist_allgather_sizes(sizes, len), HS_OK);
    uint64_t total = 0;
    for (int r = 0; r < size; r++) {
        assert_int_equal(sizes[r], (uint64_t)(r + 1));
        total += sizes[r];
    }
    char *all = calloc(total + 1, 1);
    assert_int_equal(hs_dist_allgatherv(all, sizes, mine, len), HS_OK);
    for (int r = 0, off = 0; r < size; off += r + 1, r++)
        for (int i = 0; i <= r; i++)
            assert_int_equal(all[off + i], 'a' + r);
    free(all);
    free(sizes);
}

// a u8 cache of N random-ish images (N,H,W,C)
static hs_tensor *make_cache(int64_t N, int64_t H, int64_t W, int64_t C) {
    int64_t shape[4] = {N, H, W, C};
    hs_tensor *t = NULL;
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_U8, 4, shape), HS_OK);
    uint8_t *p = t->data;
    for (int64_t i = 0; i < hs_tensor_numel(t); i++)
        p[i] = (uint8_t)((i * 2654435761u) >> 7);
    return t;
}

static void test_loader_shards_concatenate_to_the_unsharded_batches(void **state) {
    (void)state;
    enum { N = 22, B = 6, P = 3, H = 12, W = 12, C = 3, h = 8 };
    hs_tensor *cache = make_cache(N, H, W, C), *labels = NULL;
    int64_t ls[1] = {N};
    assert_int_equal(hs_tensor_new(&labels, HS_DTYPE_I64, 1, ls), HS_OK);
    for (int i = 0; i < N; i++)
        ((int64_t *)labels->data)[i] = i % 4;
    hs_batch_spec s;
    hs_batch_spec_init(&s, h, h);
    s.hflip = s.vflip = s.rot90 = 1;
    s.brightness = 0.1f;
    s.contrast = 0.1f;
    s.hed_sigma = 0.05f;
    s.seed = 11;
    hs_loader *whole = NULL, *part[P] = {NULL};
    assert_int_equal(hs_loader_new(&whole, cache, labels, NULL, &s, B, 1, 1, 1), HS_OK);
    for (int r = 0; r < P; r++)
        assert_int_equal(hs_loader_new_shard(&part[r], cache, labels, NULL, &s, B, 1, 1, 1, r, P), HS_OK);
    assert_int_equal(hs_loader_num_batches(part[0]), N / B);
    int64_t xs[4] = {B, C, h, h}, xps[4] = {B / P, C, h, h}, ys[1] = {B}, yps[1] = {B / P};
    hs_tensor *x = NULL, *y = NULL, *xp = NULL, *yp = NULL;
    assert_int_equal(hs_tensor_new(&x, HS_DTYPE_F32, 4, xs), HS_OK);
    assert_int_equal(hs_tensor_new(&y, HS_DTYPE_I64, 1, ys), HS_OK);
    assert_int_equal(hs_tensor_new(&xp, HS_DTYPE_F32, 4, xps), HS_OK);
    assert_int_equal(hs_tensor_new(&yp, HS_DTYPE_I64, 1, yps), HS_OK);
    size_t rows = (size_t)(B / P) * C * h * h;
    for (uint64_t epoch = 1; epoch <= 2; epoch++) {
        assert_int_equal(hs_loader_start_epoch(whole, epoch), HS_OK);
        for (int r = 0; r < P; r++)
            assert_int_equal(hs_loader_start_epoch(part[r], epoch), HS_OK);
        for (;;) {
            int64_t cnt = 0, cp = 0, idx[B], idxp[B / P];
            assert_int_equal(hs_loader_next(whole, x, y, idx, &cnt), HS_OK);
            for (int r = 0; r < P; r++) {
                assert_int_equal(hs_loader_next(part[r], xp, yp, idxp, &cp), HS_OK);
                if (cnt == 0) {
                    assert_int_equal(cp, 0);
                    continue;
                }
                assert_int_equal(cp, B / P);
                assert_memory_equal(xp->data, (float *)x->data + r * rows, rows * sizeof(float));
                assert_memory_equal(yp->data, (int64_t *)y->data + r * (B / P), sizeof(int64_t) * (B / P));
                assert_memory_equal(idxp, idx + r * (B / P), sizeof idxp);
            }
            if (cnt == 0)
                break;
        }
    }
    for (int r = 0; r < P; r++)
        hs_loader_free(part[r]);
    hs_loader_free(whole);
    hs_tensor_free(x);
    hs_tensor_free(y);
    hs_tensor_free(xp);
    hs_tensor_free(yp);
    hs_tensor_free(labels);
    hs_tensor_free(cache);
}

static void test_loader_shard_rejects_indivisible_batch_and_bad_rank(void **state) {
    (void)state;
    hs_tensor *cache = make_cache(8, 8, 8, 3);
    hs_batch_spec s;
    hs_batch_spec_init(&s, 8, 8);
    hs_loader *l = NULL;
    assert_int_equal(hs_loader_new_shard(&l, cache, NULL, NULL, &s, 5, 0, 1, 0, 0, 2), HS_ERR_ARG);
    assert_null(l);
    assert_non_null(strstr(hs_last_error()->msg, "global batch 5 is not divisible by 2"));
    assert_int_equal(hs_loader_new_shard(&l, cache, NULL, NULL, &s, 4, 0, 1, 0, 2, 2), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "shard 2 of 2 is out of range"));
    assert_int_equal(hs_loader_new_shard(&l, cache, NULL, NULL, &s, 4, 0, 1, 0, 0, 0), HS_ERR_ARG);
    hs_tensor_free(cache);
}

// last: MPI cannot be started again after finalize
static void test_dist_finalize_is_idempotent_and_final(void **state) {
    (void)state;
    assert_int_equal(hs_dist_barrier(), HS_OK);
    assert_int_equal(hs_dist_finalize(30), HS_OK);
    assert_int_equal(hs_dist_finalize(30), HS_OK);
    assert_int_equal(hs_dist_size(), 1);
    assert_int_equal(hs_dist_abort(1), HS_ERR_STATE);  // not running: the caller exits itself
    int r, s;
    if (hs_dist_launched())  // finalized for good
        assert_int_equal(hs_dist_init(&r, &s), HS_ERR_STATE);
    else  // never started: still the one-rank world
        assert_int_equal(hs_dist_init(&r, &s), HS_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dist_init_is_idempotent_and_one_rank_when_not_launched),
        cmocka_unit_test(test_dist_allreduce_sums_every_rank_contribution),
        cmocka_unit_test(test_dist_iallreduce_completes_in_any_wait_order),
        cmocka_unit_test(test_dist_bcast_and_gather_move_bytes_in_rank_order),
        cmocka_unit_test(test_loader_shards_concatenate_to_the_unsharded_batches),
        cmocka_unit_test(test_loader_shard_rejects_indivisible_batch_and_bad_rank),
        cmocka_unit_test(test_dist_finalize_is_idempotent_and_final),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
