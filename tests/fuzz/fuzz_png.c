// tests/fuzz/fuzz_png.c: libFuzzer target for the PNG decoder from memory (hs_png_decode, the
// reader behind hs.image.load/decode and the server's image/png bodies). Checks, besides "no
// crash, no sanitizer report": the decoded tensor is a consistent (H,W,C) U8/U16 image, a lossless
// PNG round trip (encode, decode) gives back the same pixels, and nothing is left allocated.
// Not a JPEG target (fuzz_jpeg.c) and not a file-I/O test.
#include <string.h>

#include "alloc.h"
#include "fuzz.h"
#include "png_io.h"


static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
        uint64_t px = (uint64_t)be32(data + 16) * be32(data + 20);
        if (px > (uint64_t)FUZZ_MAX_PIXELS && px <= (uint64_t)HS_IMAGE_MAX_PIXELS)
            return 0;
    }
    int64_t live = hs_alloc_live();
    hs_tensor *img = NULL;
    hs_status s = hs_png_decode(&img, data, size, "fuzz.png");
    if (s != HS_OK) {
        FUZZ_CHECK(img == NULL, "failed decode left an image");
        FUZZ_CHECK(hs_last_error()->msg[0] != 0, "failure without a message");
        FUZZ_CHECK(strstr(hs_last_error()->msg, "fuzz.png") != NULL, "message does not name the source: %s",
                   hs_last_error()->msg);
        FUZZ_CHECK(hs_alloc_live() == live, "failed decode leaked %lld blocks", (long long)(hs_alloc_live() - live));
        return 0;
    }
    FUZZ_CHECK(img->ndim == 3, "ndim %d", img->ndim);
    FUZZ_CHECK(img->shape[0] > 0 && img->shape[1] > 0 && img->shape[2] >= 1 && img->shape[2] <= 4, "shape %lldx%lldx%lld",
               (long long)img->shape[0], (long long)img->shape[1], (long long)img->shape[2]);
    FUZZ_CHECK(img->dtype == HS_DTYPE_U8 || img->dtype == HS_DTYPE_U16, "dtype %d", (int)img->dtype);
    FUZZ_CHECK(hs_tensor_is_contiguous(img), "decoded image not contiguous");
    FUZZ_CHECK(img->shape[0] * img->shape[1] <= FUZZ_MAX_PIXELS, "decoded more pixels than the header declared");

    // lossless round trip: encode (fastest level) and decode again
    void *png = NULL;
    size_t n = 0;
    s = hs_png_encode(&png, &n, img, 1);
    FUZZ_CHECK(s == HS_OK, "re-encoding a decoded image failed: %s", hs_last_error()->msg);
    hs_tensor *back = NULL;
    s = hs_png_decode(&back, png, n, "round trip");
    FUZZ_CHECK(s == HS_OK, "decoding our own PNG failed: %s", hs_last_error()->msg);
    FUZZ_CHECK(back->dtype == img->dtype && hs_tensor_same_shape(back, img), "round trip changed dtype or shape");
    FUZZ_CHECK(memcmp(back->data, img->data, hs_tensor_nbytes(img)) == 0, "round trip changed pixels");
    hs_tensor_free(back);
    hs_free(png);
    hs_tensor_free(img);
    FUZZ_CHECK(hs_alloc_live() == live, "decode leaked %lld blocks", (long long)(hs_alloc_live() - live));
    return 0;
}
