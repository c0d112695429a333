// tests/test_sha256.c: SHA-256 against the FIPS 180-2 / NIST example vectors, and streaming in
// odd-sized pieces giving the same digest as one shot.
#include <string.h>

#include "hs_test.h"
#include "sha256.h"

static void expect_hex(const uint8_t d[HS_SHA256_DIGEST_SIZE], const char *want) {
    char hex[HS_SHA256_HEX_SIZE];
    assert_string_equal(hs_sha256_hex(hex, d), want);
}

static void test_sha256_empty_string_matches_standard_vector(void **state) {
    (void)state;
    uint8_t d[32];
    hs_sha256_digest(d, NULL, 0);
    expect_hex(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_sha256_abc_matches_standard_vector(void **state) {
    (void)state;
    uint8_t d[32];
    hs_sha256_digest(d, "abc", 3);
    expect_hex(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_448_bit_message_matches_standard_vector(void **state) {
    (void)state;
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_int_equal(strlen(m) * 8, 448);
    uint8_t d[32];
    hs_sha256_digest(d, m, strlen(m));
    expect_hex(d, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_million_a_streamed_matches_standard_vector(void **state) {
    (void)state;
    char chunk[1000];
    memset(chunk, 'a', sizeof chunk);
    hs_sha256 ctx;
    hs_sha256_init(&ctx);
    for (int i = 0; i < 1000; i++)
        hs_sha256_update(&ctx, chunk, sizeof chunk);
    uint8_t d[32];
    hs_sha256_final(d, &ctx);
    expect_hex(d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_sha256_streaming_in_odd_pieces_equals_one_shot(void **state) {
    (void)state;
    uint8_t msg[1031];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 131u + 7u);
    // every message length around the 55/56/64-byte padding boundaries, fed in pieces of 1..70
    for (size_t len = 0; len <= 200; len++) {
        uint8_t one[32], streamed[32];
        hs_sha256_digest(one, msg, len);
        for (size_t piece = 1; piece <= 70; piece += 23) {
            hs_sha256 ctx;
            hs_sha256_init(&ctx);
            for (size_t off = 0; off < len; off += piece)
                hs_sha256_update(&ctx, msg + off, len - off < piece ? len - off : piece);
            hs_sha256_update(&ctx, NULL, 0);
            hs_sha256_final(streamed, &ctx);
            assert_memory_equal(one, streamed, 32);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_empty_string_matches_standard_vector),
        cmocka_unit_test(test_sha256_abc_matches_standard_vector),
        cmocka_unit_test(test_sha256_448_bit_message_matches_standard_vector),
        cmocka_unit_test(test_sha256_million_a_streamed_matches_standard_vector),
        cmocka_unit_test(test_sha256_streaming_in_odd_pieces_equals_one_shot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
