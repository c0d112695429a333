// core/png_io.h: PNG decoding/encoding (libpng) and the format-sniffing image entry points
// (hs_image_read/decode/write/read_info, which dispatch to png_io or jpeg_io by signature or
// file extension). Not image processing: colour and contrast live in color.h and contrast.h.
//
// Images are plain tensors: (H,W,C) with C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; dtype U8, or
// U16 for 16-bit PNGs. Writers also accept a 2-D (H,W) tensor as a gray image.
// Decoders refuse images over HS_IMAGE_MAX_PIXELS before allocating anything for the pixels,
// and report every malformed input as HS_ERR_FORMAT (HS_ERR_IO when the file cannot be read)
// with the path or label in the message; they never print.
#ifndef HS_PNG_IO_H
#define HS_PNG_IO_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

#define HS_IMAGE_MAX_PIXELS ((int64_t)1 << 28)  // pixel budget of every decoder

typedef enum { HS_IMAGE_FORMAT_UNKNOWN = 0, HS_IMAGE_FORMAT_PNG, HS_IMAGE_FORMAT_JPEG } hs_image_format;

typedef struct {
    int64_t width, height;
    int channels;        // channels a decode would return (palette -> 3 or 4, tRNS adds alpha)
    int bit_depth;       // 8 or 16: bits per sample a decode would return
    hs_image_format format;
} hs_image_info;

// ---- PNG ----
// Decode a PNG held in memory. *out: new (H,W,C) U8 (bit depth <= 8, palettes expanded to RGB,
// tRNS to an alpha channel) or U16 (16-bit files); NULL on failure. `label` names the source in
// messages (a path, "request body", ...). HS_ERR_FORMAT on any malformed input.
hs_status hs_png_decode(hs_tensor **out, const void *buf, size_t n, const char *label);
// Read a PNG file (HS_ERR_IO when it cannot be opened/read; else as hs_png_decode).
hs_status hs_png_read(hs_tensor **out, const char *path);
// Header only: size, channels and bit depth after the decode transforms above.
hs_status hs_png_read_info(hs_image_info *info, const char *path);
// Encode img ((H,W) or (H,W,C), C in 1..4, U8 or U16, any strides) as PNG into a new buffer
// allocated with hs_alloc (*buf, *n; the caller hs_free()s it). level: zlib level 0..9, or -1
// for the default (3).
hs_status hs_png_encode(void **buf, size_t *n, const hs_tensor *img, int level);
// Write img to path atomically (temporary file in the same directory, then rename).
hs_status hs_png_write(const char *path, const hs_tensor *img, int level);

// ---- any supported format ----
// Format from the first bytes (PNG or JPEG signature), HS_IMAGE_FORMAT_UNKNOWN otherwise.
hs_image_format hs_image_sniff(const void *buf, size_t n);
// Decode PNG or JPEG from memory by signature (HS_ERR_FORMAT naming `label` when neither).
hs_status hs_image_decode(hs_tensor **out, const void *buf, size_t n, const char *label);
// Read a PNG or JPEG file (sniffed by content, not extension).
hs_status hs_image_read(hs_tensor **out, const char *path);
hs_status hs_image_read_info(hs_image_info *info, const char *path);
// Write by the extension of path (.png, .jpg/.jpeg; case-insensitive), atomically. quality
// (1..100) applies to JPEG, where -1 means 95; PNG ignores it.
hs_status hs_image_write(const char *path, const hs_tensor *img, int quality);

// Read a whole file into a new hs_alloc'ed buffer (for the decoders; caller hs_free()s *buf).
hs_status hs_image_read_file(void **buf, size_t *n, const char *path);
// Write n bytes to path atomically: path.tmpXXXXXX in the same directory, then rename().
hs_status hs_image_write_file(const char *path, const void *buf, size_t n);

// Version strings of the codecs underneath ("1.6.39", "2.1.5").
const char *hs_png_version(void);
const char *hs_jpeg_version(void);

#endif
