// tests/fuzz/fuzz_safetensors.c: libFuzzer target for the safetensors reader from memory
// (hs_safetensors_parse: the path of hs.load, checkpoints, registry weights and the reference
// cases). Checks, besides "no crash, no sanitizer report": every accessor agrees with the parsed
// header (sorted unique names, find, byte sizes within the input, metadata lookups), taking a
// tensor out works, failures carry a message naming the source, and nothing leaks.
// Not a writer test (tests/test_safetensors.c round-trips hs_safetensors_write).
#include <string.h>

#include "alloc.h"
#include "fuzz.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int64_t live = hs_alloc_live();
    hs_safetensors *st = NULL;
    hs_status s = hs_safetensors_parse(&st, data, size, "fuzz.safetensors");
    if (s != HS_OK) {
        FUZZ_CHECK(st == NULL, "failed parse left an object");
        FUZZ_CHECK(strstr(hs_last_error()->msg, "fuzz.safetensors") != NULL, "message does not name the source: %s",
                   hs_last_error()->msg);
        FUZZ_CHECK(hs_alloc_live() == live, "failed parse leaked %lld blocks", (long long)(hs_alloc_live() - live));
        return 0;
    }
    int n = hs_safetensors_count(st);
    FUZZ_CHECK(n >= 0, "count %d", n);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const char *name = hs_safetensors_name(st, i);
        FUZZ_CHECK(name != NULL, "tensor %d has no name", i);
        FUZZ_CHECK(strcmp(name, "__metadata__") != 0, "__metadata__ parsed as a tensor");
        if (i > 0)
            FUZZ_CHECK(strcmp(hs_safetensors_name(st, i - 1), name) < 0, "names not sorted/unique at %d", i);
        FUZZ_CHECK(hs_safetensors_find(st, name) == i, "find('%s') != %d", name, i);
        const hs_tensor *t = hs_safetensors_tensor(st, i);
        FUZZ_CHECK(t != NULL && t->ndim >= 0 && t->ndim <= HS_MAX_DIMS, "bad tensor %d", i);
        FUZZ_CHECK(hs_tensor_is_contiguous(t), "tensor %d not contiguous", i);
        size_t nb = hs_tensor_nbytes(t);
        FUZZ_CHECK(nb <= size, "tensor '%s' claims %zu bytes from a %zu-byte input", name, nb, size);
        total += nb;
        if (nb > 0) {  // touch every byte: ASan catches storage smaller than claimed
            const volatile unsigned char *p = t->data;
            unsigned acc = 0;
            for (size_t k = 0; k < nb; k++)
                acc += p[k];
            (void)acc;
        }
    }
    FUZZ_CHECK(total <= size, "tensors hold %zu bytes, input has %zu", total, size);
    FUZZ_CHECK(hs_safetensors_find(st, "\x01 no such tensor") == -1, "found a name that is not there");
    int nm = hs_safetensors_meta_count(st);
    for (int i = 0; i < nm; i++) {
        const char *k = hs_safetensors_meta_key(st, i), *v = hs_safetensors_meta_value(st, i);
        FUZZ_CHECK(k != NULL && v != NULL, "metadata %d incomplete", i);
        const char *got = hs_safetensors_meta_get(st, k);
        FUZZ_CHECK(got != NULL, "meta_get('%s') missing", k);
    }
    if (n > 0) {  // move the first tensor out: the container must forget it
        hs_tensor *t = hs_safetensors_take(st, 0);
        FUZZ_CHECK(t != NULL && hs_safetensors_tensor(st, 0) == NULL && hs_safetensors_take(st, 0) == NULL,
                   "take did not move the tensor out");
        hs_tensor_free(t);
    }
    hs_safetensors_free(st);
    FUZZ_CHECK(hs_alloc_live() == live, "parse leaked %lld blocks", (long long)(hs_alloc_live() - live));
    return 0;
}
