// tests/test_png_io.c: PNG decoding/encoding and the format-sniffing hs_image_* entry points:
// round trips (8/16-bit, gray, gray+alpha, RGB, RGBA), a hand-made palette+tRNS file, and
// hostile input (truncated, wrong signature, corrupt bytes, absurd or zero sizes, missing files,
// allocation failures). Files are written to a fresh temporary directory.
#include "hs_test.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "png_io.h"
#include "tensor.h"

static hs_tensor *pattern(hs_dtype dt, int ndim, int64_t h, int64_t w, int64_t c) {
    int64_t shape[3] = {h, w, c};
    hs_tensor *t;
    assert_int_equal(hs_tensor_new(&t, dt, ndim, shape), HS_OK);
    int64_t n = hs_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        hs_tensor_set_flat(t, i, dt == HS_DTYPE_U16 ? (double)((i * 2654435761u) % 65536) : (double)((i * 37 + 11) % 256));
    return t;
}

static void assert_same_pixels(const hs_tensor *a, const hs_tensor *b) {
    assert_int_equal(hs_tensor_numel(a), hs_tensor_numel(b));
    assert_int_equal(a->dtype, b->dtype);
    for (int64_t i = 0; i < hs_tensor_numel(a); i++)
        if (hs_tensor_get_flat(a, i) != hs_tensor_get_flat(b, i))
            fail_msg("pixel %lld differs: %g vs %g", (long long)i, hs_tensor_get_flat(a, i), hs_tensor_get_flat(b, i));
}

static void test_png_round_trips_8bit_gray_gray_alpha_rgb_rgba(void **state) {
    (void)state;
    for (int c = 1; c <= 4; c++) {
        hs_tensor *img = pattern(HS_DTYPE_U8, 3, 7, 13, c), *back;
        assert_int_equal(hs_png_write(hs_test_tmp_path("a.png"), img, -1), HS_OK);
        assert_int_equal(hs_image_read(&back, hs_test_tmp_path("a.png")), HS_OK);
        assert_int_equal(back->ndim, 3);
        assert_int_equal(back->shape[0], 7);
        assert_int_equal(back->shape[1], 13);
        assert_int_equal(back->shape[2], c);
        assert_same_pixels(img, back);
        hs_tensor_free(back);
        hs_tensor_free(img);
    }
}

static void test_png_round_trips_16bit_and_2d_gray(void **state) {
    (void)state;
    hs_tensor *img = pattern(HS_DTYPE_U16, 3, 5, 9, 3), *back;
    assert_int_equal(hs_png_write(hs_test_tmp_path("b.png"), img, 9), HS_OK);
    assert_int_equal(hs_png_read(&back, hs_test_tmp_path("b.png")), HS_OK);
    assert_int_equal(back->dtype, HS_DTYPE_U16);
    assert_same_pixels(img, back);
    hs_image_info info;
    assert_int_equal(hs_image_read_info(&info, hs_test_tmp_path("b.png")), HS_OK);
    assert_int_equal(info.width, 9);
    assert_int_equal(info.height, 5);
    assert_int_equal(info.channels, 3);
    assert_int_equal(info.bit_depth, 16);
    assert_int_equal(info.format, HS_IMAGE_FORMAT_PNG);
    hs_tensor_free(back);
    hs_tensor_free(img);
    img = pattern(HS_DTYPE_U8, 2, 4, 6, 1);  // (H,W) gray
    assert_int_equal(hs_png_write(hs_test_tmp_path("g.png"), img, 0), HS_OK);
    assert_int_equal(hs_png_read(&back, hs_test_tmp_path("g.png")), HS_OK);
    assert_int_equal(back->shape[2], 1);
    assert_same_pixels(img, back);
    hs_tensor_free(back);
    hs_tensor_free(img);
}

static void test_png_encode_accepts_strided_views(void **state) {
    (void)state;
    hs_tensor *img = pattern(HS_DTYPE_U8, 3, 10, 10, 3), *crop, *back;
    assert_int_equal(hs_tensor_narrow(&crop, img, 1, 2, 5), HS_OK);
    void *buf;
    size_t n;
    assert_int_equal(hs_png_encode(&buf, &n, crop, -1), HS_OK);
    assert_int_equal(hs_image_decode(&back, buf, n, "mem"), HS_OK);
    assert_same_pixels(crop, back);
    hs_free(buf);
    hs_tensor_free(back);
    hs_tensor_free(crop);
    hs_tensor_free(img);
}

// ---- a hand-made PNG: CRC-32 and stored (uncompressed) deflate blocks ----

static uint32_t crc32_of(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static size_t put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
    return 4;
}

static size_t chunk(unsigned char *out, const char *type, const unsigned char *data, uint32_t len) {
    size_t k = put32(out, len);
    memcpy(out + k, type, 4);
    if (len)
        memcpy(out + k + 4, data, len);
    k += 4 + len;
    k += put32(out + k, crc32_of(out + 4, 4 + len));
    return k;
}

// PNG of the given IHDR fields whose IDAT holds `raw` (filter bytes included) as a stored block.
static size_t make_png(unsigned char *out, uint32_t w, uint32_t h, int depth, int color, const unsigned char *plte,
                       uint32_t plte_len, const unsigned char *trns, uint32_t trns_len, const unsigned char *raw,
                       uint32_t raw_len) {
    static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    size_t k = 0;
    memcpy(out, sig, 8);
    k = 8;
    unsigned char ihdr[13];
    put32(ihdr, w);
    put32(ihdr + 4, h);
    ihdr[8] = (unsigned char)depth, ihdr[9] = (unsigned char)color, ihdr[10] = ihdr[11] = ihdr[12] = 0;
    k += chunk(out + k, "IHDR", ihdr, 13);
    if (plte)
        k += chunk(out + k, "PLTE", plte, plte_len);
    if (trns)
        k += chunk(out + k, "tRNS", trns, trns_len);
    if (raw) {
        unsigned char z[1024];
        size_t m = 0;
        z[m++] = 0x78, z[m++] = 0x01;                               // zlib header
        z[m++] = 0x01;                                             // final stored block
        z[m++] = (unsigned char)raw_len, z[m++] = (unsigned char)(raw_len >> 8);
        z[m++] = (unsigned char)~raw_len, z[m++] = (unsigned char)(~raw_len >> 8);
        memcpy(z + m, raw, raw_len);
        m += raw_len;
        uint32_t a = 1, b = 0;                                     // Adler-32
        for (uint32_t i = 0; i < raw_len; i++)
            a = (a + raw[i]) % 65521, b = (b + a) % 65521;
        m += put32(z + m, (b << 16) | a);
        k += chunk(out + k, "IDAT", z, (uint32_t)m);
    }
    k += chunk(out + k, "IEND", NULL, 0);
    return k;
}

static void test_png_read_expands_palette_and_trns(void **state) {
    (void)state;
    const unsigned char plte[9] = {255, 0, 0, 0, 255, 0, 0, 0, 255};
    const unsigned char raw[2 * 3] = {0, 0, 1, 0, 2, 1};  // 2x2, filter byte 0 per row
    unsigned char png[512];
    size_t n = make_png(png, 2, 2, 8, 3, plte, 9, NULL, 0, raw, sizeof raw);
    hs_tensor *t;
    assert_int_equal(hs_png_decode(&t, png, n, "palette"), HS_OK);
    assert_int_equal(t->shape[2], 3);
    const uint8_t want[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 255, 0};
    assert_memory_equal(t->data, want, 12);
    hs_tensor_free(t);
    const unsigned char trns[2] = {128, 255};  // entry 0 half transparent -> RGBA
    n = make_png(png, 2, 2, 8, 3, plte, 9, trns, 2, raw, sizeof raw);
    assert_int_equal(hs_png_decode(&t, png, n, "palette+trns"), HS_OK);
    assert_int_equal(t->shape[2], 4);
    const uint8_t want4[16] = {255, 0, 0, 128, 0, 255, 0, 255, 0, 0, 255, 255, 0, 255, 0, 255};
    assert_memory_equal(t->data, want4, 16);
    hs_tensor_free(t);
    const unsigned char gray1[2 * 2] = {0, 0x80, 0, 0x40};  // 1-bit gray 2x2: 1 0 / 0 1
    n = make_png(png, 2, 2, 1, 0, NULL, 0, NULL, 0, gray1, sizeof gray1);
    assert_int_equal(hs_png_decode(&t, png, n, "gray1"), HS_OK);
    const uint8_t wantg[4] = {255, 0, 0, 255};
    assert_memory_equal(t->data, wantg, 4);
    hs_tensor_free(t);
}

static void test_png_read_rejects_huge_header_before_allocating(void **state) {
    (void)state;
    unsigned char png[512];
    const unsigned char raw[4] = {0, 1, 2, 3};  // an IDAT is needed to reach the size check
    size_t n = make_png(png, 100000, 100000, 8, 2, NULL, 0, NULL, 0, raw, 4);
    hs_test_write_bytes(hs_test_tmp_path("huge.png"), png, n);
    hs_tensor *t = (hs_tensor *)1;
    uint64_t before = hs_alloc_count();
    assert_int_equal(hs_image_read(&t, hs_test_tmp_path("huge.png")), HS_ERR_FORMAT);
    assert_null(t);
    assert_true(hs_alloc_count() - before < 10);  // the file buffer only
    assert_non_null(strstr(hs_last_error()->msg, "huge.png"));
    assert_non_null(strstr(hs_last_error()->msg, "budget"));
    hs_image_info info;
    assert_int_equal(hs_image_read_info(&info, hs_test_tmp_path("huge.png")), HS_ERR_FORMAT);
}

static void test_png_read_rejects_zero_size_and_empty_file(void **state) {
    (void)state;
    unsigned char png[512];
    const unsigned char raw[1] = {0};
    size_t n = make_png(png, 0, 1, 8, 0, NULL, 0, NULL, 0, raw, 1);
    hs_tensor *t;
    assert_int_equal(hs_png_decode(&t, png, n, "zero.png"), HS_ERR_FORMAT);
    assert_non_null(strstr(hs_last_error()->msg, "zero.png"));
    hs_test_write_bytes(hs_test_tmp_path("empty.png"), "", 0);
    assert_int_equal(hs_image_read(&t, hs_test_tmp_path("empty.png")), HS_ERR_FORMAT);
    assert_non_null(strstr(hs_last_error()->msg, "empty"));
}

static void test_png_read_rejects_truncated_file(void **state) {
    (void)state;
    hs_tensor *img = pattern(HS_DTYPE_U8, 3, 32, 32, 3), *t;
    void *buf;
    size_t n;
    assert_int_equal(hs_png_encode(&buf, &n, img, -1), HS_OK);
    for (size_t cut = 8; cut < n; cut += n / 7 + 1) {
        hs_test_write_bytes(hs_test_tmp_path("cut.png"), buf, cut);
        assert_int_equal(hs_png_read(&t, hs_test_tmp_path("cut.png")), HS_ERR_FORMAT);
        assert_null(t);
        assert_non_null(strstr(hs_last_error()->msg, "cut.png"));
    }
    hs_free(buf);
    hs_tensor_free(img);
}

static void test_png_read_rejects_wrong_signature_and_missing_file(void **state) {
    (void)state;
    hs_tensor *t;
    hs_test_write_bytes(hs_test_tmp_path("text.png"), "hello, I am not an image", 24);
    assert_int_equal(hs_png_read(&t, hs_test_tmp_path("text.png")), HS_ERR_FORMAT);
    assert_non_null(strstr(hs_last_error()->msg, "signature"));
    assert_int_equal(hs_image_read(&t, hs_test_tmp_path("text.png")), HS_ERR_FORMAT);
    assert_int_equal(hs_image_read(&t, hs_test_tmp_path("missing.png")), HS_ERR_IO);
    assert_non_null(strstr(hs_last_error()->msg, "missing.png"));
    assert_int_equal(hs_image_read(&t, hs_test_tmp_dir()), HS_ERR_IO);  // a directory
}

static void test_png_decode_survives_corrupt_bytes(void **state) {
    (void)state;
    hs_tensor *img = pattern(HS_DTYPE_U8, 3, 16, 16, 3);
    void *buf;
    size_t n;
    assert_int_equal(hs_png_encode(&buf, &n, img, -1), HS_OK);
    hs_test_decode_corrupt_bytes(hs_png_decode, buf, n, 8, 3, 0x5A);  // every third byte in turn
    hs_free(buf);
    hs_tensor_free(img);
}

static void test_png_decode_survives_allocation_failures(void **state) {
    (void)state;
    hs_tensor *img = pattern(HS_DTYPE_U8, 3, 8, 8, 4);
    void *buf;
    size_t n;
    assert_int_equal(hs_png_encode(&buf, &n, img, -1), HS_OK);
    hs_tensor *t = hs_test_decode_alloc_faults(hs_png_decode, buf, n);
    assert_same_pixels(img, t);
    hs_tensor_free(t);
    for (uint64_t k = 1;; k++) {
        void *b2;
        size_t n2;
        hs_alloc_fail_after(k);
        hs_status s = hs_png_encode(&b2, &n2, img, -1);
        hs_alloc_fail_after(0);
        if (s == HS_OK) {
            hs_free(b2);
            break;
        }
        assert_int_equal(s, HS_ERR_NOMEM);
    }
    hs_free(buf);
    hs_tensor_free(img);
}

static void test_png_write_is_atomic_and_reports_io_errors(void **state) {
    (void)state;
    hs_tensor *img = pattern(HS_DTYPE_U8, 3, 4, 4, 3);
    assert_int_equal(hs_image_write(hs_test_tmp_path("atomic.PNG"), img, -1), HS_OK);
    DIR *d = opendir(hs_test_tmp_dir());
    struct dirent *e;
    while ((e = readdir(d)))
        assert_null(strstr(e->d_name, ".tmp"));
    closedir(d);
    assert_int_equal(hs_png_write("/nonexistent-dir/x.png", img, -1), HS_ERR_IO);
    assert_non_null(strstr(hs_last_error()->msg, "/nonexistent-dir/x.png"));
    assert_int_equal(hs_image_write(hs_test_tmp_path("x.bmp"), img, -1), HS_ERR_ARG);
    hs_tensor *f;
    int64_t shape[3] = {2, 2, 3};
    assert_int_equal(hs_tensor_new(&f, HS_DTYPE_F32, 3, shape), HS_OK);
    assert_int_equal(hs_png_write(hs_test_tmp_path("f.png"), f, -1), HS_ERR_DTYPE);
    hs_tensor_free(f);
    int64_t bad[3] = {2, 2, 5};
    assert_int_equal(hs_tensor_new(&f, HS_DTYPE_U8, 3, bad), HS_OK);
    assert_int_equal(hs_png_write(hs_test_tmp_path("f.png"), f, -1), HS_ERR_SHAPE);
    hs_tensor_free(f);
    hs_tensor_free(img);
}

static void test_png_decodes_the_ihc_sample(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/skimage_microscopy_samples/ihc.png", hs_test_data_dir());
    if (access(path, R_OK) != 0)
        skip();
    hs_tensor *t;
    assert_int_equal(hs_image_read(&t, path), HS_OK);
    assert_int_equal(t->shape[0], 512);
    assert_int_equal(t->shape[1], 512);
    assert_int_equal(t->shape[2], 3);
    assert_int_equal(t->dtype, HS_DTYPE_U8);
    const uint8_t first[3] = {156, 118, 81};  // PIL: np.asarray(Image.open(...))[0, 0]
    assert_memory_equal(t->data, first, 3);
    hs_tensor_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_round_trips_8bit_gray_gray_alpha_rgb_rgba),
        cmocka_unit_test(test_png_round_trips_16bit_and_2d_gray),
        cmocka_unit_test(test_png_encode_accepts_strided_views),
        cmocka_unit_test(test_png_read_expands_palette_and_trns),
        cmocka_unit_test(test_png_read_rejects_huge_header_before_allocating),
        cmocka_unit_test(test_png_read_rejects_zero_size_and_empty_file),
        cmocka_unit_test(test_png_read_rejects_truncated_file),
        cmocka_unit_test(test_png_read_rejects_wrong_signature_and_missing_file),
        cmocka_unit_test(test_png_decode_survives_corrupt_bytes),
        cmocka_unit_test(test_png_decode_survives_allocation_failures),
        cmocka_unit_test(test_png_write_is_atomic_and_reports_io_errors),
        cmocka_unit_test(test_png_decodes_the_ihc_sample),
    };
    return cmocka_run_group_tests(tests, hs_test_tmp_setup, hs_test_tmp_teardown);
}
