// tests/fuzz/fuzz_jpeg.c: libFuzzer target for the JPEG decoder from memory through the
// format-sniffing entry point (hs_image_decode -> hs_jpeg_decode) and the header reader
// (hs_jpeg_decode_info). Checks, besides "no crash, no sanitizer report": header and full decode
// agree on size and channels, the image re-encodes and decodes to the same shape, and nothing
// is left allocated. Not a PNG target (fuzz_png.c).
#include <string.h>

#include "alloc.h"
#include "fuzz.h"
#include "jpeg_io.h"
#include "png_io.h"

#define FUZZ_REENCODE_PIXELS ((int64_t)1 << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int64_t live = hs_alloc_live();
    hs_image_info info;
    memset(&info, 0, sizeof info);
    hs_status hs = hs_jpeg_decode_info(&info, data, size, "fuzz.jpg");
    FUZZ_CHECK(hs_alloc_live() == live, "header read leaked");
    if (hs == HS_OK) {
        int64_t px = info.width * info.height;
        if (px > FUZZ_MAX_PIXELS && px <= HS_IMAGE_MAX_PIXELS)
            return 0;
    }
    hs_tensor *img = NULL;
    hs_status s = hs_image_decode(&img, data, size, "fuzz.jpg");
    if (s != HS_OK) {
        FUZZ_CHECK(img == NULL, "failed decode left an image");
        FUZZ_CHECK(strstr(hs_last_error()->msg, "fuzz.jpg") != NULL, "message does not name the source: %s",
                   hs_last_error()->msg);
        FUZZ_CHECK(hs_alloc_live() == live, "failed decode leaked %lld blocks", (long long)(hs_alloc_live() - live));
        return 0;
    }
    FUZZ_CHECK(img->ndim == 3 && img->shape[0] > 0 && img->shape[1] > 0, "bad decoded shape");
    if (hs_image_sniff(data, size) == HS_IMAGE_FORMAT_JPEG) {
        FUZZ_CHECK(hs == HS_OK, "decoded a JPEG whose header read failed");
        FUZZ_CHECK(img->dtype == HS_DTYPE_U8 && (img->shape[2] == 1 || img->shape[2] == 3), "JPEG gave %lld channels",
                   (long long)img->shape[2]);
        FUZZ_CHECK(img->shape[0] == info.height && img->shape[1] == info.width && img->shape[2] == info.channels,
                   "header says %lldx%lldx%d, decode gave %lldx%lldx%lld", (long long)info.height,
                   (long long)info.width, info.channels, (long long)img->shape[0], (long long)img->shape[1],
                   (long long)img->shape[2]);
        if (img->shape[0] * img->shape[1] <= FUZZ_REENCODE_PIXELS) {
            void *jpg = NULL;
            size_t n = 0;
            s = hs_jpeg_encode(&jpg, &n, img, 75);
            FUZZ_CHECK(s == HS_OK, "re-encoding a decoded JPEG failed: %s", hs_last_error()->msg);
            hs_tensor *back = NULL;
            s = hs_jpeg_decode(&back, jpg, n, "round trip");
            FUZZ_CHECK(s == HS_OK, "decoding our own JPEG failed: %s", hs_last_error()->msg);
            FUZZ_CHECK(hs_tensor_same_shape(back, img), "JPEG round trip changed the shape");
            hs_tensor_free(back);
            hs_free(jpg);
        }
    }
    hs_tensor_free(img);
    FUZZ_CHECK(hs_alloc_live() == live, "decode leaked %lld blocks", (long long)(hs_alloc_live() - live));
    return 0;
}
