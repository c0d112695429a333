// core/jpeg_io.h: JPEG decoding/encoding with libjpeg(-turbo). The only file that includes
// jpeglib.h is jpeg_io.c. Not the format dispatcher (hs_image_* in png_io.h).
//
// Decoded images are (H,W,1) U8 for grayscale files and (H,W,3) U8 RGB for everything else
// (YCbCr, RGB, and CMYK/YCCK converted the way OpenCV does: R = C*K/255 on Adobe-inverted data).
// Truncated files (libjpeg's "premature end of JPEG file") are an error, not a grey-filled image.
#ifndef HS_JPEG_IO_H
#define HS_JPEG_IO_H

#include <stddef.h>

#include "png_io.h"
#include "status.h"
#include "tensor.h"

// Decode a JPEG held in memory; *out new (H,W,C) U8, NULL on failure. HS_ERR_FORMAT on any
// malformed input and on images over HS_IMAGE_MAX_PIXELS (checked before allocating pixels).
hs_status hs_jpeg_decode(hs_tensor **out, const void *buf, size_t n, const char *label);
hs_status hs_jpeg_read(hs_tensor **out, const char *path);
// Header only (size, channels 1 or 3, bit depth 8).
hs_status hs_jpeg_decode_info(hs_image_info *info, const void *buf, size_t n, const char *label);
hs_status hs_jpeg_read_info(hs_image_info *info, const char *path);
// Encode img ((H,W), (H,W,1) or (H,W,3) U8, any strides) at quality 1..100 (-1: 95) into a new
// hs_alloc'ed buffer (*buf, *n; caller hs_free()s it). 4:2:0 chroma subsampling, as OpenCV.
hs_status hs_jpeg_encode(void **buf, size_t *n, const hs_tensor *img, int quality);
// Write img to path atomically (see hs_image_write_file).
hs_status hs_jpeg_write(const char *path, const hs_tensor *img, int quality);

#endif
