// tests/test_jpeg_io.c: JPEG decoding/encoding: quality round trips within tolerance, gray,
// sniffing from memory, and hostile input (truncated, wrong signature, corrupt header, absurd or
// zero sizes, allocation failures); plus one real blood-cell JPEG from the shared data.
#include "hs_test.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "jpeg_io.h"
#include "png_io.h"
#include "tensor.h"

// A smooth colour gradient (JPEG-friendly), (H,W,C) U8.
static hs_tensor *gradient(int64_t h, int64_t w, int64_t c) {
    int64_t shape[3] = {h, w, c};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_U8, 3, shape), HS_OK);
    uint8_t *p = t->data;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int64_t k = 0; k < c; k++)
                p[(y * w + x) * c + k] = (uint8_t)(k == 0 ? 255 * x / (w - 1) : k == 1 ? 255 * y / (h - 1) : 128);
    return t;
}

static double mean_abs_diff(const hs_tensor *a, const hs_tensor *b) {
    assert_int_equal(hs_tensor_numel(a), hs_tensor_numel(b));
    double s = 0;
    for (int64_t i = 0; i < hs_tensor_numel(a); i++)
        s += fabs(hs_tensor_get_flat(a, i) - hs_tensor_get_flat(b, i));
    return s / (double)hs_tensor_numel(a);
}

static void test_jpeg_round_trip_error_shrinks_with_quality(void **state) {
    (void)state;
    hs_tensor *img = gradient(48, 64, 3), *lo, *hi;
    void *b1, *b2;
    size_t n1, n2;
    assert_int_equal(hs_jpeg_encode(&b1, &n1, img, 20), HS_OK);
    assert_int_equal(hs_jpeg_encode(&b2, &n2, img, 95), HS_OK);
    assert_true(n1 < n2);
    assert_int_equal(hs_image_decode(&lo, b1, n1, "q20"), HS_OK);
    assert_int_equal(hs_image_decode(&hi, b2, n2, "q95"), HS_OK);
    assert_int_equal(hi->shape[0], 48);
    assert_int_equal(hi->shape[1], 64);
    assert_int_equal(hi->shape[2], 3);
    double e_lo = mean_abs_diff(img, lo), e_hi = mean_abs_diff(img, hi);
    assert_true(e_hi < 1.5);
    assert_true(e_hi < e_lo);
    hs_free(b1);
    hs_free(b2);
    hs_tensor_free(lo);
    hs_tensor_free(hi);
    hs_tensor_free(img);
}

static void test_jpeg_gray_round_trip_and_info(void **state) {
    (void)state;
    hs_tensor *img = gradient(30, 40, 1), *back;
    assert_int_equal(hs_image_write(hs_test_tmp_path("g.jpg"), img, 95), HS_OK);
    assert_int_equal(hs_image_read(&back, hs_test_tmp_path("g.jpg")), HS_OK);
    assert_int_equal(back->shape[2], 1);
    assert_true(mean_abs_diff(img, back) < 1.0);
    hs_image_info info;
    assert_int_equal(hs_image_read_info(&info, hs_test_tmp_path("g.jpg")), HS_OK);
    assert_int_equal(info.width, 40);
    assert_int_equal(info.height, 30);
    assert_int_equal(info.channels, 1);
    assert_int_equal(info.format, HS_IMAGE_FORMAT_JPEG);
    hs_tensor_free(back);
    hs_tensor_free(img);
}

static void test_jpeg_encode_rejects_bad_images(void **state) {
    (void)state;
    void *b;
    size_t n;
    hs_tensor *rgba = gradient(8, 8, 4);
    assert_int_equal(hs_jpeg_encode(&b, &n, rgba, 90), HS_ERR_SHAPE);
    hs_tensor_free(rgba);
    hs_tensor *img = gradient(8, 8, 3);
    assert_int_equal(hs_jpeg_encode(&b, &n, img, 0), HS_ERR_ARG);
    assert_int_equal(hs_jpeg_encode(&b, &n, img, 101), HS_ERR_ARG);
    hs_tensor_free(img);
    int64_t shape[3] = {8, 8, 3};
    hs_tensor *f;
    assert_int_equal(hs_tensor_new(&f, HS_DTYPE_F32, 3, shape), HS_OK);
    assert_int_equal(hs_jpeg_encode(&b, &n, f, 90), HS_ERR_DTYPE);
    hs_tensor_free(f);
}

// Offset of the SOF0 marker's height field in a baseline JPEG from our encoder.
static size_t sof_offset(const unsigned char *p, size_t n) {
    for (size_t i = 2; i + 9 < n; i++)
        if (p[i] == 0xFF && p[i + 1] == 0xC0)
            return i + 5;
    fail_msg("no SOF0 marker");
    return 0;
}

static void test_jpeg_read_rejects_truncated_file(void **state) {
    (void)state;
    hs_tensor *img = gradient(64, 64, 3), *t;
    void *buf;
    size_t n;
    assert_int_equal(hs_jpeg_encode(&buf, &n, img, 90), HS_OK);
    for (size_t cut = 3; cut < n - 2; cut += n / 9 + 1) {
        hs_test_write_bytes(hs_test_tmp_path("cut.jpg"), buf, cut);
        assert_int_equal(hs_image_read(&t, hs_test_tmp_path("cut.jpg")), HS_ERR_FORMAT);
        assert_null(t);
        assert_non_null(strstr(hs_last_error()->msg, "cut.jpg"));
    }
    hs_free(buf);
    hs_tensor_free(img);
}

static void test_jpeg_read_rejects_huge_and_zero_sizes_and_bad_signature(void **state) {
    (void)state;
    hs_tensor *img = gradient(16, 16, 3), *t = NULL;
    void *buf;
    size_t n;
    assert_int_equal(hs_jpeg_encode(&buf, &n, img, 90), HS_OK);
    unsigned char *p = buf;
    size_t k = sof_offset(p, n);
    p[k] = p[k + 2] = 0xFD, p[k + 1] = p[k + 3] = 0xE8;  // 65000 x 65000 (libjpeg's own cap is 65500)
    uint64_t before = hs_alloc_count();
    assert_int_equal(hs_jpeg_decode(&t, buf, n, "huge.jpg"), HS_ERR_FORMAT);
    assert_true(hs_alloc_count() - before < 4);
    assert_non_null(strstr(hs_last_error()->msg, "budget"));
    p[k] = p[k + 1] = 0;                            // height 0
    p[k + 2] = 0, p[k + 3] = 16;
    assert_int_equal(hs_jpeg_decode(&t, buf, n, "zero.jpg"), HS_ERR_FORMAT);
    assert_non_null(strstr(hs_last_error()->msg, "zero.jpg"));
    p[k - 3] = 0x00;                                // corrupt the marker segment length
    assert_int_equal(hs_jpeg_decode(&t, buf, n, "corrupt.jpg"), HS_ERR_FORMAT);
    p[1] = 0x00;
    assert_int_equal(hs_jpeg_decode(&t, buf, n, "sig.jpg"), HS_ERR_FORMAT);
    assert_non_null(strstr(hs_last_error()->msg, "signature"));
    assert_int_equal(hs_jpeg_decode(&t, buf, 0, "empty.jpg"), HS_ERR_FORMAT);
    assert_int_equal(hs_jpeg_read(&t, hs_test_tmp_path("missing.jpg")), HS_ERR_IO);
    hs_free(buf);
    hs_tensor_free(img);
}

static void test_jpeg_decode_survives_corrupt_bytes(void **state) {
    (void)state;
    hs_tensor *img = gradient(32, 32, 3);
    void *buf;
    size_t n;
    assert_int_equal(hs_jpeg_encode(&buf, &n, img, 75), HS_OK);
    hs_test_decode_corrupt_bytes(hs_jpeg_decode, buf, n, 2, 5, 0xA5);
    hs_free(buf);
    hs_tensor_free(img);
}

static void test_jpeg_decode_survives_allocation_failures(void **state) {
    (void)state;
    hs_tensor *img = gradient(16, 24, 3);
    void *buf;
    size_t n;
    assert_int_equal(hs_jpeg_encode(&buf, &n, img, 90), HS_OK);
    hs_tensor_free(hs_test_decode_alloc_faults(hs_jpeg_decode, buf, n));
    hs_free(buf);
    hs_tensor_free(img);
}

static void test_jpeg_decodes_a_blood_cell_image(void **state) {
    (void)state;
    char dir[1024], path[2048];
    snprintf(dir, sizeof dir, "%s/pbc2020_blood_cells/basophil", hs_test_data_dir());
    DIR *d = opendir(dir);
    if (!d)
        skip();
    struct dirent *e;
    path[0] = 0;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".jpg")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            break;
        }
    closedir(d);
    if (!path[0])
        skip();
    hs_tensor *t;
    assert_int_equal(hs_image_read(&t, path), HS_OK);
    assert_int_equal(t->shape[0], 363);
    assert_int_equal(t->shape[1], 360);
    assert_int_equal(t->shape[2], 3);
    hs_image_info info;
    assert_int_equal(hs_image_read_info(&info, path), HS_OK);
    assert_int_equal(info.width, 360);
    assert_int_equal(info.height, 363);
    hs_tensor_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_round_trip_error_shrinks_with_quality),
        cmocka_unit_test(test_jpeg_gray_round_trip_and_info),
        cmocka_unit_test(test_jpeg_encode_rejects_bad_images),
        cmocka_unit_test(test_jpeg_read_rejects_truncated_file),
        cmocka_unit_test(test_jpeg_read_rejects_huge_and_zero_sizes_and_bad_signature),
        cmocka_unit_test(test_jpeg_decode_survives_corrupt_bytes),
        cmocka_unit_test(test_jpeg_decode_survives_allocation_failures),
        cmocka_unit_test(test_jpeg_decodes_a_blood_cell_image),
    };
    return cmocka_run_group_tests(tests, hs_test_tmp_setup, hs_test_tmp_teardown);
}
