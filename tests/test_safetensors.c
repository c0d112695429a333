// tests/test_safetensors.c: safetensors round trips of every dtype, the byte layout we write,
// reading a file written by the Python reference generator, and a clear HS_ERR_FORMAT (never a
// crash) for each kind of malformed file. Run under ASan/UBSan in CI.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "hs_test.h"
#include "safetensors.h"
#include "sys.h"

// A little-endian u64 header length followed by the JSON text and data bytes.
static size_t make_file(unsigned char *buf, size_t cap, uint64_t hlen_override, const char *json,
                        const void *data, size_t ndata) {
    size_t hl = strlen(json);
    uint64_t hlen = hlen_override ? hlen_override : hl;
    assert_true(8 + hl + ndata <= cap);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(buf + 8, json, hl);
    if (ndata)
        memcpy(buf + 8 + hl, data, ndata);
    return 8 + hl + ndata;
}

// Fails unless msg contains every word of `words` (separated by '|').
static void expect_words(const char *msg, const char *words) {
    char w[256];
    snprintf(w, sizeof w, "%s", words);
    for (char *tok = strtok(w, "|"); tok; tok = strtok(NULL, "|"))
        if (!strstr(msg, tok))
            fail_msg("message '%s' lacks '%s'", msg, tok);
}

// Both from memory and from a file: expect HS_ERR_FORMAT with every word of `words` (separated
// by '|') in the message, plus the label.
static void expect_format_error(const void *buf, size_t n, const char *words) {
    hs_safetensors *st = (hs_safetensors *)1;
    hs_status s = hs_safetensors_parse(&st, buf, n, "mem.safetensors");
    if (s != HS_ERR_FORMAT)
        fail_msg("parse: status %d, want HS_ERR_FORMAT; message: %s", (int)s, hs_last_error()->msg);
    assert_null(st);
    const char *msg = hs_last_error()->msg;
    assert_non_null(strstr(msg, "mem.safetensors"));
    expect_words(msg, words);

    const char *path = hs_test_tmp_path("bad.safetensors");
    hs_test_write_bytes(path, buf, n);
    st = (hs_safetensors *)1;
    s = hs_safetensors_read(&st, path);
    if (s != HS_ERR_FORMAT)
        fail_msg("read: status %d, want HS_ERR_FORMAT; message: %s", (int)s, hs_last_error()->msg);
    assert_null(st);
    msg = hs_last_error()->msg;
    assert_non_null(strstr(msg, path));
    expect_words(msg, words);
    unlink(path);
}

static const float four[4] = {1, 2, 3, 4};

// expect_format_error on a file made of a `json` header followed by ndata bytes of data.
static void expect_header_error(const char *json, const void *data, size_t ndata, const char *words) {
    unsigned char buf[256];
    expect_format_error(buf, make_file(buf, sizeof buf, 0, json, data, ndata), words);
}

static void test_safetensors_round_trips_every_dtype(void **state) {
    (void)state;
    hs_tensor *ts[HS_DTYPE_COUNT + 2];
    const char *names[HS_DTYPE_COUNT + 2] = {"f32", "f64", "i64", "i32", "u8", "u16", "scalar", "empty"};
    int64_t shape[3] = {2, 3, 5};
    for (int d = 0; d < HS_DTYPE_COUNT; d++) {
        assert_int_equal(hs_tensor_new(&ts[d], (hs_dtype)d, 3, shape), HS_OK);
        unsigned char *p = ts[d]->data;
        for (size_t i = 0; i < hs_tensor_nbytes(ts[d]); i++)  // every byte distinct-ish, incl. NaN patterns
            p[i] = (unsigned char)(i * 37u + (unsigned)d * 11u + 1u);
    }
    assert_int_equal(hs_tensor_new(&ts[HS_DTYPE_COUNT], HS_DTYPE_F64, 0, NULL), HS_OK);
    hs_tensor_set_flat(ts[HS_DTYPE_COUNT], 0, -2.5);
    int64_t zshape[2] = {0, 4};
    assert_int_equal(hs_tensor_new(&ts[HS_DTYPE_COUNT + 1], HS_DTYPE_F32, 2, zshape), HS_OK);
    const char *keys[2] = {"op", "quote\"d\n"}, *values[2] = {"round_trip", "va\\lue \"x\"\t\x01"};
    const char *path = hs_test_tmp_path("rt.safetensors");
    assert_int_equal(hs_safetensors_write(path, HS_DTYPE_COUNT + 2, names, (const hs_tensor *const *)ts, 2, keys,
                                          values),
                     HS_OK);
    hs_safetensors *st;
    assert_int_equal(hs_safetensors_read(&st, path), HS_OK);
    assert_int_equal(hs_safetensors_count(st), HS_DTYPE_COUNT + 2);
    for (int i = 1; i < hs_safetensors_count(st); i++)  // listed in sorted order
        assert_true(strcmp(hs_safetensors_name(st, i - 1), hs_safetensors_name(st, i)) < 0);
    for (int d = 0; d < HS_DTYPE_COUNT + 2; d++) {
        int k = hs_safetensors_find(st, names[d]);
        assert_true(k >= 0);
        const hs_tensor *t = hs_safetensors_tensor(st, k);
        assert_int_equal(t->dtype, ts[d]->dtype);
        assert_int_equal(t->ndim, ts[d]->ndim);
        assert_true(hs_tensor_same_shape(t, ts[d]));
        assert_int_equal(hs_tensor_nbytes(t), hs_tensor_nbytes(ts[d]));
        if (hs_tensor_nbytes(t))
            assert_memory_equal(t->data, ts[d]->data, hs_tensor_nbytes(t));
    }
    assert_int_equal(hs_safetensors_find(st, "absent"), -1);
    assert_int_equal(hs_safetensors_meta_count(st), 2);
    assert_string_equal(hs_safetensors_meta_key(st, 1), keys[1]);
    assert_string_equal(hs_safetensors_meta_get(st, "quote\"d\n"), values[1]);
    assert_string_equal(hs_safetensors_meta_get(st, "op"), "round_trip");
    assert_null(hs_safetensors_meta_get(st, "nope"));
    // take moves ownership out
    hs_tensor *taken = hs_safetensors_take(st, 0);
    assert_non_null(taken);
    assert_null(hs_safetensors_tensor(st, 0));
    hs_tensor_free(taken);
    hs_safetensors_free(st);
    for (int d = 0; d < HS_DTYPE_COUNT + 2; d++)
        hs_tensor_free(ts[d]);
}

static void test_safetensors_writes_strided_tensor_contiguously(void **state) {
    (void)state;
    hs_tensor *a, *at;
    int64_t shape[2] = {2, 3};
    assert_int_equal(hs_tensor_arange(&a, HS_DTYPE_F32, 0, 6, 1), HS_OK);
    hs_tensor *a2;
    assert_int_equal(hs_tensor_reshape(&a2, a, 2, shape), HS_OK);
    assert_int_equal(hs_tensor_transpose(&at, a2, 0, 1), HS_OK);
    const char *names[1] = {"t"};
    const hs_tensor *ts[1] = {at};
    const char *path = hs_test_tmp_path("strided.safetensors");
    assert_int_equal(hs_safetensors_write(path, 1, names, ts, 0, NULL, NULL), HS_OK);
    hs_safetensors *st;
    assert_int_equal(hs_safetensors_read(&st, path), HS_OK);
    const hs_tensor *t = hs_safetensors_tensor(st, 0);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[1], 2);
    const float want[6] = {0, 3, 1, 4, 2, 5};
    hs_expect_close((const float *)t->data, want, 6, 0, 0);
    hs_safetensors_free(st);
    hs_tensor_free(at);
    hs_tensor_free(a2);
    hs_tensor_free(a);
}

static void test_safetensors_written_layout_matches_the_format(void **state) {
    (void)state;
    hs_tensor *b, *a;
    int64_t s4[1] = {4}, s1[1] = {1};
    assert_int_equal(hs_tensor_from_buffer(&b, HS_DTYPE_F32, 1, s4, four), HS_OK);
    assert_int_equal(hs_tensor_new(&a, HS_DTYPE_U8, 1, s1), HS_OK);
    ((unsigned char *)a->data)[0] = 200;
    const char *names[2] = {"b", "a"};
    const hs_tensor *ts[2] = {b, a};
    const char *k[1] = {"op"}, *v[1] = {"x"};
    const char *path = hs_test_tmp_path("layout.safetensors");
    assert_int_equal(hs_safetensors_write(path, 2, names, ts, 1, k, v), HS_OK);
    char *buf;
    size_t n;
    assert_int_equal(hs_sys_read_file(&buf, &n, path), HS_OK);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | (unsigned char)buf[i];
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(n, 8 + hlen + 1 + 16);
    const char *want = "{\"__metadata__\":{\"op\":\"x\"},\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[1,17]}}";
    assert_memory_equal(buf + 8, want, strlen(want));
    for (size_t i = 8 + strlen(want); i < 8 + hlen; i++)
        assert_int_equal(buf[i], ' ');
    assert_int_equal((unsigned char)buf[8 + hlen], 200);  // sorted: "a" first
    const unsigned char one_le[4] = {0x00, 0x00, 0x80, 0x3f};  // 1.0f little-endian
    assert_memory_equal(buf + 8 + hlen + 1, one_le, 4);
    hs_free(buf);
    hs_tensor_free(a);
    hs_tensor_free(b);
}

static void test_safetensors_reads_file_written_by_python_generator(void **state) {
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/../reference/torch/linear.safetensors", hs_test_data_dir());
    if (access(path, R_OK) != 0)
        skip();
    hs_safetensors *st;
    if (hs_safetensors_read(&st, path) != HS_OK)
        fail_msg("%s", hs_last_error()->msg);
    const char *want[8] = {"bias", "dbias", "dout", "dweight", "dx", "out", "weight", "x"};
    assert_int_equal(hs_safetensors_count(st), 8);
    for (int i = 0; i < 8; i++)
        assert_string_equal(hs_safetensors_name(st, i), want[i]);
    const hs_tensor *w = hs_safetensors_tensor(st, hs_safetensors_find(st, "weight"));
    assert_int_equal(w->dtype, HS_DTYPE_F32);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 6);
    assert_int_equal(w->shape[1], 10);
    const hs_tensor *x = hs_safetensors_tensor(st, hs_safetensors_find(st, "x"));
    assert_int_equal(x->shape[0], 4);
    assert_int_equal(x->shape[1], 10);
    assert_string_equal(hs_safetensors_meta_get(st, "op"), "linear");
    assert_string_equal(hs_safetensors_meta_get(st, "params"), "{\"in_features\": 10, \"out_features\": 6}");
    assert_non_null(strstr(hs_safetensors_meta_get(st, "generator"), "PyTorch"));
    // out = x W^T + b, recomputed in double: proves the data bytes were read in the right place
    const hs_tensor *b = hs_safetensors_tensor(st, hs_safetensors_find(st, "bias"));
    const hs_tensor *out = hs_safetensors_tensor(st, hs_safetensors_find(st, "out"));
    float got[24];
    for (int i = 0; i < 4; i++)
        for (int o = 0; o < 6; o++) {
            double acc = ((const float *)b->data)[o];
            for (int k = 0; k < 10; k++)
                acc += (double)((const float *)x->data)[i * 10 + k] * (double)((const float *)w->data)[o * 10 + k];
            got[i * 6 + o] = (float)acc;
        }
    hs_expect_close(got, (const float *)out->data, 24, 1e-5, 1e-4);
    hs_safetensors_free(st);
}

static void test_safetensors_rejects_truncated_header(void **state) {
    (void)state;
    unsigned char buf[64] = {5, 0, 0};
    expect_format_error(buf, 3, "too short");
    size_t n = make_file(buf, sizeof buf, 400, "{}", NULL, 0);  // claims 400 header bytes
    expect_format_error(buf, n, "header length 400|truncated");
}

static void test_safetensors_rejects_absurd_header_length(void **state) {
    (void)state;
    unsigned char buf[64];
    size_t n = make_file(buf, sizeof buf, (uint64_t)1 << 60, "{}", NULL, 0);
    expect_format_error(buf, n, "absurd");
    n = make_file(buf, sizeof buf, UINT64_MAX, "{}", NULL, 0);
    expect_format_error(buf, n, "absurd");
}

static void test_safetensors_rejects_bad_json(void **state) {
    (void)state;
    expect_header_error("{\"a\":{\"dtype\":\"F32\",", NULL, 0, "not valid JSON");
    expect_header_error("[1,2]   ", NULL, 0, "not a JSON object");
    expect_header_error("{} xx   ", NULL, 0, "unexpected bytes");
    expect_header_error("{\"a\":3}", NULL, 0, "'a'|not an object");
}

static void test_safetensors_rejects_missing_or_unknown_dtype(void **state) {
    (void)state;
    expect_header_error("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", four, 4, "'w'|no dtype");
    expect_header_error("{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                        four, 4, "'w'|F16|not supported");
    expect_header_error("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}",
                        four, 4, "'w'|dtype is not a string");
}

static void test_safetensors_rejects_bad_shape(void **state) {
    (void)state;
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
                        four, 4, "'w'|shape entry 0");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
                        four, 4, "'w'|shape entry 0");
    expect_header_error("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                        four, 1, "'w'|9 dims");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", four, 4, "'w'|shape missing");
    // a shape whose element count overflows 64 bits must not wrap around to a small size
    expect_header_error("{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,0.5],\"data_offsets\":[0,0]}}",
                        NULL, 0, "'w'|shape entry 2");
    expect_header_error("{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}}",
                        NULL, 0, "'w'|needs");
}

static void test_safetensors_rejects_offsets_out_of_range_or_overlapping(void **state) {
    (void)state;
    float eight[8] = {0};
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                        eight, 8, "'w'|out of range");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}",
                        eight, 4, "'w'|end before begin");
    expect_header_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                        eight, 12, "'b'|overlap|'a'");
    expect_header_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                        eight, 12, "'b'|gap");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", eight, 8, "trailing");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
                        eight, 4, "'w'|data_offsets missing");
}

static void test_safetensors_rejects_wrong_byte_size(void **state) {
    (void)state;
    float eight[8] = {0};
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}",
                        eight, 12, "'w'|span 12 bytes|[2,2] needs 16");
}

static void test_safetensors_rejects_truncated_data(void **state) {
    (void)state;
    unsigned char buf[256];
    float eight[8] = {0};
    size_t n = make_file(buf, sizeof buf, 0, "{\"w\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", eight, 32);
    expect_format_error(buf, n - 5, "'w'|out of range|truncated");
}

static void test_safetensors_rejects_non_string_metadata_and_duplicates(void **state) {
    (void)state;
    expect_header_error("{\"__metadata__\":{\"epoch\":3}}", NULL, 0, "metadata 'epoch' is not a string");
    expect_header_error("{\"__metadata__\":[]}", NULL, 0, "__metadata__ is not an object");
    expect_header_error("{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0, "duplicate __metadata__");
    expect_header_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                        four, 8, "'w'|duplicate name");
}

static void test_safetensors_every_truncation_of_a_valid_file_fails_cleanly(void **state) {
    (void)state;
    hs_tensor *t;
    int64_t s4[1] = {4};
    assert_int_equal(hs_tensor_from_buffer(&t, HS_DTYPE_F32, 1, s4, four), HS_OK);
    const char *names[1] = {"t"}, *k[1] = {"op"}, *v[1] = {"cut"};
    const hs_tensor *ts[1] = {t};
    const char *path = hs_test_tmp_path("cut.safetensors");
    assert_int_equal(hs_safetensors_write(path, 1, names, ts, 1, k, v), HS_OK);
    char *buf;
    size_t n;
    assert_int_equal(hs_sys_read_file(&buf, &n, path), HS_OK);
    hs_safetensors *st;
    assert_int_equal(hs_safetensors_parse(&st, buf, n, "cut"), HS_OK);
    hs_safetensors_free(st);
    for (size_t len = 0; len < n; len++) {
        assert_int_equal(hs_safetensors_parse(&st, buf, len, "cut"), HS_ERR_FORMAT);
        assert_null(st);
    }
    // flipping any single byte of the header either still parses or fails with HS_ERR_FORMAT
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (char)(1 << bit);
            hs_status s = hs_safetensors_parse(&st, buf, n, "flip");
            assert_true(s == HS_OK || s == HS_ERR_FORMAT);
            hs_safetensors_free(st);
            buf[i] ^= (char)(1 << bit);
        }
    }
    hs_free(buf);
    hs_tensor_free(t);
}

static void test_safetensors_read_reports_missing_file_as_io_error(void **state) {
    (void)state;
    hs_safetensors *st;
    assert_int_equal(hs_safetensors_read(&st, hs_test_tmp_path("does_not_exist.safetensors")), HS_ERR_IO);
    assert_null(st);
    assert_non_null(strstr(hs_last_error()->msg, "does_not_exist.safetensors"));
    assert_int_equal(hs_safetensors_read(&st, hs_test_tmp_dir()), HS_ERR_IO);  // a folder
}

static void test_safetensors_write_is_atomic_and_rejects_bad_arguments(void **state) {
    (void)state;
    hs_tensor *t;
    int64_t s4[1] = {4};
    assert_int_equal(hs_tensor_from_buffer(&t, HS_DTYPE_F32, 1, s4, four), HS_OK);
    const hs_tensor *ts[2] = {t, t};
    const char *dup[2] = {"x", "x"}, *meta[1] = {"__metadata__"};
    char path[512];  // hs_test_tmp_path's buffer is reused below
    snprintf(path, sizeof path, "%s", hs_test_tmp_path("atomic.safetensors"));
    assert_int_equal(hs_safetensors_write(path, 2, dup, ts, 0, NULL, NULL), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "duplicate tensor name 'x'"));
    assert_int_equal(hs_safetensors_write(path, 1, meta, ts, 0, NULL, NULL), HS_ERR_ARG);
    assert_int_equal(access(path, F_OK), -1);  // nothing written
    // into a missing folder: HS_ERR_IO and no temp file anywhere
    assert_int_equal(hs_safetensors_write(hs_test_tmp_path("no/such/dir/x.safetensors"), 1, dup, ts, 0, NULL, NULL), HS_ERR_IO);
    // overwrite an existing file: the new content replaces the old, no temp file left behind
    hs_test_write_bytes(path, "old", 3);
    assert_int_equal(hs_safetensors_write(path, 1, dup, ts, 0, NULL, NULL), HS_OK);
    hs_safetensors *st;
    assert_int_equal(hs_safetensors_read(&st, path), HS_OK);
    assert_int_equal(hs_safetensors_count(st), 1);
    hs_safetensors_free(st);
    char **names;
    int n;
    assert_int_equal(hs_sys_listdir(&names, &n, hs_test_tmp_dir()), HS_OK);
    for (int i = 0; i < n; i++)
        assert_null(strstr(names[i], ".tmp."));
    hs_free(names);
    unlink(path);
    hs_tensor_free(t);
}

static void test_safetensors_read_survives_every_allocation_failure(void **state) {
    (void)state;
    hs_tensor *t;
    int64_t s4[1] = {4};
    assert_int_equal(hs_tensor_from_buffer(&t, HS_DTYPE_F32, 1, s4, four), HS_OK);
    const char *names[2] = {"a", "b"}, *k[2] = {"op", "z"}, *v[2] = {"fault", "y"};
    const hs_tensor *ts[2] = {t, t};
    const char *path = hs_test_tmp_path("fault.safetensors");
    assert_int_equal(hs_safetensors_write(path, 2, names, ts, 2, k, v), HS_OK);
    for (uint64_t nth = 1;; nth++) {  // fail the 1st, 2nd, ... allocation until the read succeeds
        hs_safetensors *st;
        hs_alloc_fail_after(nth);
        hs_status s = hs_safetensors_read(&st, path);
        hs_alloc_fail_after(0);
        if (s == HS_OK) {
            assert_int_equal(hs_safetensors_count(st), 2);
            hs_safetensors_free(st);
            assert_true(nth > 5);
            break;
        }
        assert_int_equal(s, HS_ERR_NOMEM);
        assert_null(st);
        assert_true(nth < 100);
    }
    for (uint64_t nth = 1;; nth++) {
        hs_alloc_fail_after(nth);
        hs_status s = hs_safetensors_write(path, 2, names, ts, 2, k, v);
        hs_alloc_fail_after(0);
        if (s == HS_OK)
            break;
        assert_int_equal(s, HS_ERR_NOMEM);
        assert_true(nth < 100);
    }
    unlink(path);
    hs_tensor_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_safetensors_round_trips_every_dtype),
        cmocka_unit_test(test_safetensors_writes_strided_tensor_contiguously),
        cmocka_unit_test(test_safetensors_written_layout_matches_the_format),
        cmocka_unit_test(test_safetensors_reads_file_written_by_python_generator),
        cmocka_unit_test(test_safetensors_rejects_truncated_header),
        cmocka_unit_test(test_safetensors_rejects_absurd_header_length),
        cmocka_unit_test(test_safetensors_rejects_bad_json),
        cmocka_unit_test(test_safetensors_rejects_missing_or_unknown_dtype),
        cmocka_unit_test(test_safetensors_rejects_bad_shape),
        cmocka_unit_test(test_safetensors_rejects_offsets_out_of_range_or_overlapping),
        cmocka_unit_test(test_safetensors_rejects_wrong_byte_size),
        cmocka_unit_test(test_safetensors_rejects_truncated_data),
        cmocka_unit_test(test_safetensors_rejects_non_string_metadata_and_duplicates),
        cmocka_unit_test(test_safetensors_every_truncation_of_a_valid_file_fails_cleanly),
        cmocka_unit_test(test_safetensors_read_reports_missing_file_as_io_error),
        cmocka_unit_test(test_safetensors_write_is_atomic_and_rejects_bad_arguments),
        cmocka_unit_test(test_safetensors_read_survives_every_allocation_failure),
    };
    return cmocka_run_group_tests(tests, hs_test_tmp_setup, hs_test_tmp_teardown);
}
