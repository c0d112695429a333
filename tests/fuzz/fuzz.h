// tests/fuzz/fuzz.h: what every fuzz target in tests/fuzz/ shares: the libFuzzer entry point
// (built into a libFuzzer binary with -DHS_FUZZ=ON, and into a replay driver, replay_main.c,
// in every build) and the harness's own invariant check. Not part of the core or the binding.
#ifndef HS_FUZZ_H
#define HS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// A broken harness invariant (decoded shape inconsistent, round trip differs, ...): a crash
// is how a fuzz target reports a finding, so this aborts (test code, never the core).
#define FUZZ_CHECK(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

// Pixel budget of one fuzz execution. The decoders accept up to HS_IMAGE_MAX_PIXELS (2^28) by
// design, so a 40-byte input could make every execution allocate gigabytes; inputs declaring
// more than this but no more than the decoders' budget are skipped (those over the budget are
// still fed: they must fail cleanly).
#define FUZZ_MAX_PIXELS ((int64_t)1 << 20)

// 1 when some PNG IHDR or JPEG SOF marker anywhere in data declares an image of more than
// FUZZ_MAX_PIXELS and at most 2^28 pixels (cheap scan; used where images are embedded in
// request bodies).
static inline int fuzz_declares_big_image(const uint8_t *data, size_t size) {
    for (size_t i = 0; i + 12 <= size; i++) {
        uint64_t w = 0, h = 0;
        int found = 0;
        if (data[i] == 'I' && data[i + 1] == 'H' && data[i + 2] == 'D' && data[i + 3] == 'R') {
            const uint8_t *p = data + i + 4;
            w = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
            h = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
            found = 1;
        } else if (data[i] == 0xFF && data[i + 1] >= 0xC0 && data[i + 1] <= 0xCF && data[i + 1] != 0xC4 &&
                   data[i + 1] != 0xC8 && data[i + 1] != 0xCC) {
            const uint8_t *p = data + i + 5;  // FF Cn, length(2), precision(1), height(2), width(2)
            h = (uint64_t)(p[0] << 8 | p[1]);
            w = (uint64_t)(p[2] << 8 | p[3]);
            found = 1;
        }
        if (found && w * h > (uint64_t)FUZZ_MAX_PIXELS && w * h <= ((uint64_t)1 << 28))
            return 1;
    }
    return 0;
}

#endif
