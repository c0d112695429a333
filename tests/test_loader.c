// tests/test_loader.c: the data loader: decoding into the cache reports unreadable files by
// path, batches are identical for a seed whatever the thread count, masks follow the image's
// geometric augmentation, every item appears once per epoch, and bad shapes are refused.
#include "hs_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "parallel.h"
#include "png_io.h"

static char dir[64];

static void make_dir(void) {
    if (dir[0])
        return;
    snprintf(dir, sizeof dir, "/tmp/hs-test-loader-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

// an 8x8 RGB image whose pixel (y,x) encodes its position and the image index
static hs_tensor *pattern(int idx) {
    int64_t shape[3] = {8, 8, 3};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_U8, 3, shape), HS_OK);
    uint8_t *p = t->data;
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            p[(y * 8 + x) * 3 + 0] = (uint8_t)(y * 30);
            p[(y * 8 + x) * 3 + 1] = (uint8_t)(x * 30);
            p[(y * 8 + x) * 3 + 2] = (uint8_t)(idx * 40);
        }
    return t;
}

static void test_loader_fill_cache_decodes_and_reports_unreadable_files_by_path(void **state) {
    (void)state;
    make_dir();
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/a.png", dir);
    snprintf(b, sizeof b, "%s/missing.png", dir);
    hs_tensor *img = pattern(1);
    assert_int_equal(hs_png_write(a, img, 1), HS_OK);
    const char *paths[2] = {a, b};
    int64_t shape[4] = {2, 8, 8, 3};
    hs_tensor *cache;
    assert_int_equal(hs_tensor_new(&cache, HS_DTYPE_U8, 4, shape), HS_OK);
    int failed[2];
    char errors[2 * 256];
    int64_t nfailed = -1;
    assert_int_equal(hs_loader_fill_cache(cache, paths, 2, failed, errors, 256, &nfailed), HS_OK);
    assert_int_equal(nfailed, 1);
    assert_int_equal(failed[0], 0);
    assert_int_equal(failed[1], 1);
    assert_non_null(strstr(errors + 256, "missing.png"));
    assert_memory_equal(cache->data, img->data, 8 * 8 * 3);
    hs_tensor_free(img);
    hs_tensor_free(cache);
}

static hs_tensor *pattern_cache(int n) {
    int64_t shape[4] = {n, 8, 8, 3};
    hs_tensor *cache;
    assert_int_equal(hs_tensor_new(&cache, HS_DTYPE_U8, 4, shape), HS_OK);
    for (int i = 0; i < n; i++) {
        hs_tensor *img = pattern(i);
        memcpy((uint8_t *)cache->data + i * 192, img->data, 192);
        hs_tensor_free(img);
    }
    return cache;
}

static void test_loader_batches_are_identical_for_a_seed_whatever_the_thread_count(void **state) {
    (void)state;
    hs_tensor *cache = pattern_cache(6);
    hs_batch_spec s;
    hs_batch_spec_init(&s, 6, 6);
    s.hflip = s.vflip = s.rot90 = 1;
    s.brightness = 0.1f;
    s.contrast = 0.2f;
    s.hed_sigma = 0.05f;
    s.seed = 7;
    int64_t idx[6] = {0, 1, 2, 3, 4, 5}, xs[4] = {6, 3, 6, 6};
    hs_tensor *x1, *x2;
    assert_int_equal(hs_tensor_new(&x1, HS_DTYPE_F32, 4, xs), HS_OK);
    assert_int_equal(hs_tensor_new(&x2, HS_DTYPE_F32, 4, xs), HS_OK);
    assert_int_equal(hs_set_num_threads(1), HS_OK);
    assert_int_equal(hs_loader_make_batch(x1, NULL, cache, NULL, idx, 6, &s, 1, 3), HS_OK);
    assert_int_equal(hs_set_num_threads(2), HS_OK);
    assert_int_equal(hs_loader_make_batch(x2, NULL, cache, NULL, idx, 6, &s, 1, 3), HS_OK);
    assert_memory_equal(x1->data, x2->data, hs_tensor_nbytes(x1));
    // another epoch draws other augmentations
    assert_int_equal(hs_loader_make_batch(x2, NULL, cache, NULL, idx, 6, &s, 1, 4), HS_OK);
    assert_true(memcmp(x1->data, x2->data, hs_tensor_nbytes(x1)) != 0);
    hs_tensor_free(x1);
    hs_tensor_free(x2);
    hs_tensor_free(cache);
}

static void test_loader_masks_follow_the_geometric_augmentation(void **state) {
    (void)state;
    hs_tensor *cache = pattern_cache(4);
    int64_t ms[4] = {4, 8, 8, 1};
    hs_tensor *masks;
    assert_int_equal(hs_tensor_new(&masks, HS_DTYPE_U8, 4, ms), HS_OK);
    // mask = 255 where the red channel (the row code) is >= 120, i.e. rows 4..7
    for (int64_t i = 0; i < 4 * 64; i++)
        ((uint8_t *)masks->data)[i] = ((uint8_t *)cache->data)[i * 3] >= 120 ? 255 : 0;
    hs_batch_spec s;
    hs_batch_spec_init(&s, 8, 8);
    s.hflip = s.vflip = s.rot90 = 1;
    s.seed = 11;
    int64_t idx[4] = {0, 1, 2, 3}, xs[4] = {4, 3, 8, 8}, mos[4] = {4, 1, 8, 8};
    hs_tensor *x, *m;
    assert_int_equal(hs_tensor_new(&x, HS_DTYPE_F32, 4, xs), HS_OK);
    assert_int_equal(hs_tensor_new(&m, HS_DTYPE_F32, 4, mos), HS_OK);
    assert_int_equal(hs_loader_make_batch(x, m, cache, masks, idx, 4, &s, 1, 1), HS_OK);
    const float *xp = x->data, *mp = m->data;
    for (int b = 0; b < 4; b++)
        for (int p = 0; p < 64; p++) {
            float red = xp[b * 192 + p] * 255.0f;   // channel 0 plane, mean 0, std 1
            assert_true((red >= 119.5f) == (mp[b * 64 + p] == 1.0f));
        }
    hs_tensor_free(x);
    hs_tensor_free(m);
    hs_tensor_free(masks);
    hs_tensor_free(cache);
}

static void test_loader_epoch_yields_every_item_once_and_shuffles_by_seed(void **state) {
    (void)state;
    hs_tensor *cache = pattern_cache(5);
    int64_t ls[1] = {5};
    hs_tensor *labels;
    assert_int_equal(hs_tensor_new(&labels, HS_DTYPE_I64, 1, ls), HS_OK);
    for (int i = 0; i < 5; i++)
        ((int64_t *)labels->data)[i] = 10 + i;
    hs_batch_spec s;
    hs_batch_spec_init(&s, 8, 8);
    s.seed = 5;
    hs_loader *l;
    assert_int_equal(hs_loader_new(&l, cache, labels, NULL, &s, 2, 1, 0, 1), HS_OK);
    assert_int_equal(hs_loader_num_batches(l), 3);
    int64_t xs[4] = {2, 3, 8, 8}, ys[1] = {2};
    hs_tensor *x, *y;
    assert_int_equal(hs_tensor_new(&x, HS_DTYPE_F32, 4, xs), HS_OK);
    assert_int_equal(hs_tensor_new(&y, HS_DTYPE_I64, 1, ys), HS_OK);
    int seen[5] = {0};
    int64_t order[5], k = 0;
    assert_int_equal(hs_loader_start_epoch(l, 1), HS_OK);
    for (;;) {
        int64_t idx[2], n;
        assert_int_equal(hs_loader_next(l, x, y, idx, &n), HS_OK);
        if (n == 0)
            break;
        for (int64_t i = 0; i < n; i++) {
            seen[idx[i]]++;
            assert_int_equal(((int64_t *)y->data)[i], 10 + idx[i]);   // labels travel with items
            order[k++] = idx[i];
        }
    }
    assert_int_equal(k, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], 1);
    // the same epoch again gives the same order
    assert_int_equal(hs_loader_start_epoch(l, 1), HS_OK);
    for (int64_t j = 0; j < 5;) {
        int64_t idx[2], n;
        assert_int_equal(hs_loader_next(l, x, y, idx, &n), HS_OK);
        for (int64_t i = 0; i < n; i++)
            assert_int_equal(idx[i], order[j++]);
    }
    hs_loader_free(l);
    hs_tensor_free(x);
    hs_tensor_free(y);
    hs_tensor_free(labels);
    hs_tensor_free(cache);
}

static void test_loader_refuses_bad_shapes_with_a_message(void **state) {
    (void)state;
    hs_tensor *cache = pattern_cache(2);
    hs_batch_spec s;
    hs_batch_spec_init(&s, 16, 16);   // larger than the cached 8x8 images
    int64_t idx[2] = {0, 1}, xs[4] = {2, 3, 16, 16};
    hs_tensor *x;
    assert_int_equal(hs_tensor_new(&x, HS_DTYPE_F32, 4, xs), HS_OK);
    assert_int_equal(hs_loader_make_batch(x, NULL, cache, NULL, idx, 2, &s, 1, 0), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "does not fit"));
    hs_batch_spec_init(&s, 8, 8);
    idx[1] = 9;
    int64_t xs8[4] = {2, 3, 8, 8};
    hs_tensor *x8;
    assert_int_equal(hs_tensor_new(&x8, HS_DTYPE_F32, 4, xs8), HS_OK);
    assert_int_equal(hs_loader_make_batch(x8, NULL, cache, NULL, idx, 2, &s, 1, 0), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "out of range"));
    hs_tensor_free(x);
    hs_tensor_free(x8);
    hs_tensor_free(cache);
}

static int cleanup(void **state) {
    (void)state;
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            return 0;
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loader_fill_cache_decodes_and_reports_unreadable_files_by_path),
        cmocka_unit_test(test_loader_batches_are_identical_for_a_seed_whatever_the_thread_count),
        cmocka_unit_test(test_loader_masks_follow_the_geometric_augmentation),
        cmocka_unit_test(test_loader_epoch_yields_every_item_once_and_shuffles_by_seed),
        cmocka_unit_test(test_loader_refuses_bad_shapes_with_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, cleanup);
}
