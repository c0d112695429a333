// tests/fuzz/fuzz_httpd.c: libFuzzer target for the request-body decoding of `histops serve`
// (hs_httpd_decode_body: content type with parameters, multipart/form-data parts and their
// headers, raw image/png, image/jpeg and application/octet-stream bodies) and the per-image
// input statistics computed on every decoded image. Input: the Content-Type header value up to
// the first '\n', then the body. Not the HTTP layer itself (fuzz_httpd_wire.c sends raw
// requests to a live server).
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "fuzz.h"
#include "httpd.h"

#define MAX_IMAGES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fuzz_declares_big_image(data, size))
        return 0;
    const uint8_t *nl = memchr(data, '\n', size < 512 ? size : 512);
    size_t ctn = nl ? (size_t)(nl - data) : 0;
    char ct[513];
    memcpy(ct, data, ctn);
    ct[ctn] = 0;
    const uint8_t *body = nl ? nl + 1 : data;
    size_t len = size - (size_t)(body - data);
    // the server hands over its own heap copy; so do we (ASan sees reads past the body)
    int64_t live = hs_alloc_live();
    uint8_t *copy = hs_alloc(len ? len : 1);
    FUZZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, body, len);
    hs_tensor *imgs[MAX_IMAGES];
    char names[MAX_IMAGES][128];
    int n = -1;
    // an empty body reaches the decoder as NULL, as the server's is when nothing was uploaded
    hs_status s = hs_httpd_decode_body(imgs, names, &n, MAX_IMAGES, nl ? ct : NULL, len ? copy : NULL, len);
    if (s != HS_OK) {
        FUZZ_CHECK(n == 0, "failure reported %d images", n);
        FUZZ_CHECK(hs_last_error()->msg[0] != 0, "failure without a message");
        FUZZ_CHECK(s == HS_ERR_UNSUPPORTED || s == HS_ERR_FORMAT || s == HS_ERR_ARG, "unexpected status %s: %s",
                   hs_status_name(s), hs_last_error()->msg);
        hs_free(copy);
        FUZZ_CHECK(hs_alloc_live() == live, "failed decode leaked %lld blocks", (long long)(hs_alloc_live() - live));
        return 0;
    }
    FUZZ_CHECK(n >= 1 && n <= MAX_IMAGES, "%d images", n);
    for (int i = 0; i < n; i++) {
        FUZZ_CHECK(imgs[i] && imgs[i]->ndim == 3, "image %d malformed", i);
        FUZZ_CHECK(memchr(names[i], 0, sizeof names[i]) != NULL, "filename %d not terminated", i);
        hs_httpd_input_stats st;
        s = hs_httpd_input_stats_compute(&st, imgs[i]);
        FUZZ_CHECK(s == HS_OK, "stats of a decoded image failed: %s", hs_last_error()->msg);
        FUZZ_CHECK(st.height == imgs[i]->shape[0] && st.width == imgs[i]->shape[1], "stats size");
        for (int k = 0; k < 3; k++) {
            FUZZ_CHECK(st.intensity[k] >= 0 && st.intensity[k] <= 1, "intensity[%d] = %g", k, st.intensity[k]);
            FUZZ_CHECK(isfinite(st.od[k]), "od[%d] = %g", k, st.od[k]);
        }
        hs_tensor_free(imgs[i]);
    }
    hs_free(copy);
    FUZZ_CHECK(hs_alloc_live() == live, "decode leaked %lld blocks", (long long)(hs_alloc_live() - live));
    return 0;
}
