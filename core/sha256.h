// core/sha256.h: SHA-256 (FIPS 180-4), streaming and one-shot, for content hashes of data
// files, checkpoints and run records. Not a general crypto library: no HMAC, no other digests.
#ifndef HS_SHA256_H
#define HS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define HS_SHA256_DIGEST_SIZE 32
#define HS_SHA256_HEX_SIZE 65   // 64 hex digits + NUL

typedef struct {
    uint32_t state[8];
    uint64_t nbytes;            // total bytes absorbed so far
    uint8_t block[64];          // pending partial block
    size_t nblock;              // bytes used in block
} hs_sha256;

// Streaming use: init, any number of updates (n may be 0; data may be NULL when n == 0), final.
// After final the context must be re-initialised before reuse. These cannot fail.
void hs_sha256_init(hs_sha256 *ctx);
void hs_sha256_update(hs_sha256 *ctx, const void *data, size_t n);
void hs_sha256_final(uint8_t digest[HS_SHA256_DIGEST_SIZE], hs_sha256 *ctx);

// One-shot digest of n bytes.
void hs_sha256_digest(uint8_t digest[HS_SHA256_DIGEST_SIZE], const void *data, size_t n);
// Lower-case hex of a digest into hex (HS_SHA256_HEX_SIZE bytes, NUL-terminated); returns hex.
char *hs_sha256_hex(char hex[HS_SHA256_HEX_SIZE], const uint8_t digest[HS_SHA256_DIGEST_SIZE]);

#endif
