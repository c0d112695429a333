// core/jpeg_io.c: JPEG through libjpeg-turbo (the only file including jpeglib.h).
// libjpeg reports errors through error_exit, which we override to longjmp back into the
// *_guarded() function that made the call; all state lives in a context struct so that the
// caller frees exactly what it holds afterwards. output_message is silenced: nothing is printed.
#include "jpeg_io.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "alloc.h"

typedef struct {
    struct jpeg_error_mgr pub;  // first: libjpeg hands us a pointer to it
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_jpeg_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

// Warnings are ignored (libjpeg-turbo recovers from most corrupt-data glitches as OpenCV does),
// except running out of data: a truncated file must be an error, not a grey-padded image.
static void on_jpeg_message(j_common_ptr cinfo, int level) {
    if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        jpeg_err *e = (jpeg_err *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "truncated file (premature end of JPEG data)");
        longjmp(e->jmp, 1);
    }
    if (level == -1)
        cinfo->err->num_warnings++;
}

static void on_jpeg_output(j_common_ptr cinfo) { (void)cinfo; }

static void init_err(jpeg_err *e) {
    jpeg_std_error(&e->pub);
    e->pub.error_exit = on_jpeg_error;
    e->pub.emit_message = on_jpeg_message;
    e->pub.output_message = on_jpeg_output;
}

// ---- decoding ----

typedef struct {
    jpeg_err err;
    struct jpeg_decompress_struct cinfo;
    int created;
    const unsigned char *buf;
    size_t n;
    FILE *fp;               // header-only reads from a file
    int header_only;
    hs_status code;
    hs_image_info info;
    hs_tensor *img;         // owned until handed to the caller
    unsigned char *cmyk;    // hs_alloc'ed scanline for CMYK/YCCK conversion
} jpeg_dec;

static int jpeg_decode_guarded(jpeg_dec *d) {
    if (setjmp(d->err.jmp))
        return 1;
    d->cinfo.err = &d->err.pub;
    jpeg_create_decompress(&d->cinfo);
    d->created = 1;
    if (d->fp)
        jpeg_stdio_src(&d->cinfo, d->fp);
    else
        jpeg_mem_src(&d->cinfo, d->buf, (unsigned long)d->n);
    jpeg_read_header(&d->cinfo, TRUE);
    J_COLOR_SPACE in = d->cinfo.jpeg_color_space;
    int cmyk = in == JCS_CMYK || in == JCS_YCCK;
    d->cinfo.out_color_space = in == JCS_GRAYSCALE ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_RGB;
    d->info.width = d->cinfo.image_width;
    d->info.height = d->cinfo.image_height;
    d->info.channels = in == JCS_GRAYSCALE ? 1 : 3;
    d->info.bit_depth = 8;
    d->info.format = HS_IMAGE_FORMAT_JPEG;
    if (d->info.width <= 0 || d->info.height <= 0 || d->info.width * d->info.height > HS_IMAGE_MAX_PIXELS) {
        snprintf(d->err.msg, sizeof d->err.msg, "image of %lldx%lld pixels exceeds the budget of %lld pixels",
                 (long long)d->info.width, (long long)d->info.height, (long long)HS_IMAGE_MAX_PIXELS);
        return 1;
    }
    if (d->header_only)
        return 0;
    jpeg_start_decompress(&d->cinfo);
    int nc = d->cinfo.output_components;
    if ((int64_t)d->cinfo.output_width != d->info.width || (int64_t)d->cinfo.output_height != d->info.height ||
        nc != (cmyk ? 4 : d->info.channels)) {
        snprintf(d->err.msg, sizeof d->err.msg, "unexpected output layout (%d components)", nc);
        return 1;
    }
    int64_t shape[3] = {d->info.height, d->info.width, d->info.channels};
    if (hs_tensor_new(&d->img, HS_DTYPE_U8, 3, shape) != HS_OK ||
        (cmyk && !(d->cmyk = hs_alloc((size_t)d->info.width * 4)))) {
        d->code = HS_ERR_NOMEM;
        snprintf(d->err.msg, sizeof d->err.msg, "out of memory");
        return 1;
    }
    size_t rowbytes = (size_t)d->info.width * (size_t)d->info.channels;
    unsigned char *base = d->img->data;
    while (d->cinfo.output_scanline < d->cinfo.output_height) {
        unsigned char *row = base + (size_t)d->cinfo.output_scanline * rowbytes;
        if (!cmyk) {
            JSAMPROW rows[4];
            int k = 0;
            for (; k < 4 && d->cinfo.output_scanline + (JDIMENSION)k < d->cinfo.output_height; k++)
                rows[k] = row + (size_t)k * rowbytes;
            jpeg_read_scanlines(&d->cinfo, rows, (JDIMENSION)k);
            continue;
        }
        JSAMPROW tmp = d->cmyk;
        jpeg_read_scanlines(&d->cinfo, &tmp, 1);
        // Adobe writes inverted CMYK; as OpenCV: R = C*K/255, G = M*K/255, B = Y*K/255.
        for (int64_t x = 0; x < d->info.width; x++) {
            unsigned k = d->cmyk[4 * x + 3];
            for (int c = 0; c < 3; c++)
                row[3 * x + c] = (unsigned char)((d->cmyk[4 * x + c] * k + 127) / 255);
        }
    }
    jpeg_finish_decompress(&d->cinfo);
    return 0;
}

static hs_status jpeg_decode_run(jpeg_dec *d, const char *label, hs_tensor **out, hs_image_info *info) {
    d->code = HS_ERR_FORMAT;
    init_err(&d->err);
    int failed = jpeg_decode_guarded(d);
    if (d->created)
        jpeg_destroy_decompress(&d->cinfo);
    hs_free(d->cmyk);
    if (failed) {
        hs_tensor_free(d->img);
        return HS_FAIL(d->code, "%s: invalid JPEG: %s", label, d->err.msg);
    }
    if (out)
        *out = d->img;
    if (info)
        *info = d->info;
    return HS_OK;
}

static hs_status check_jpeg_signature(const unsigned char *p, size_t n, const char *label) {
    if (n == 0)
        return HS_FAIL(HS_ERR_FORMAT, "%s: empty file", label);
    if (n < 3 || p[0] != 0xFF || p[1] != 0xD8 || p[2] != 0xFF)
        return HS_FAIL(HS_ERR_FORMAT, "%s: not a JPEG file (bad signature)", label);
    return HS_OK;
}

hs_status hs_jpeg_decode(hs_tensor **out, const void *buf, size_t n, const char *label) {
    *out = NULL;
    label = label ? label : "(memory)";
    HS_TRY(check_jpeg_signature(buf, n, label));
    jpeg_dec *d = hs_calloc(1, sizeof *d);
    if (!d)
        return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory", label);
    d->buf = buf;
    d->n = n;
    hs_status s = jpeg_decode_run(d, label, out, NULL);
    hs_free(d);
    return s;
}

hs_status hs_jpeg_read(hs_tensor **out, const char *path) {
    *out = NULL;
    void *buf;
    size_t n;
    HS_TRY(hs_image_read_file(&buf, &n, path));
    hs_status s = hs_jpeg_decode(out, buf, n, path);
    hs_free(buf);
    return s;
}

hs_status hs_jpeg_decode_info(hs_image_info *info, const void *buf, size_t n, const char *label) {
    memset(info, 0, sizeof *info);
    label = label ? label : "(memory)";
    HS_TRY(check_jpeg_signature(buf, n, label));
    jpeg_dec *d = hs_calloc(1, sizeof *d);
    if (!d)
        return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory", label);
    d->buf = buf;
    d->n = n;
    d->header_only = 1;
    hs_status s = jpeg_decode_run(d, label, NULL, info);
    hs_free(d);
    return s;
}

hs_status hs_jpeg_read_info(hs_image_info *info, const char *path) {
    memset(info, 0, sizeof *info);
    FILE *f = fopen(path, "rb");
    if (!f)
        return HS_FAIL(HS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char sig[3];
    size_t got = fread(sig, 1, 3, f);
    hs_status s = check_jpeg_signature(sig, got, path);
    jpeg_dec *d = NULL;
    if (s == HS_OK && !(d = hs_calloc(1, sizeof *d)))
        s = HS_FAIL(HS_ERR_NOMEM, "%s: out of memory", path);
    if (s == HS_OK) {
        rewind(f);
        d->fp = f;
        d->header_only = 1;
        s = jpeg_decode_run(d, path, NULL, info);
    }
    hs_free(d);
    fclose(f);
    return s;
}

// ---- encoding ----

typedef struct {
    jpeg_err err;
    struct jpeg_compress_struct cinfo;
    int created;
    const hs_tensor *img;    // contiguous
    int64_t h, w;
    int c, quality;
    unsigned char *out;      // malloc'ed by libjpeg's memory destination
    unsigned long len;
} jpeg_enc;

static int jpeg_encode_guarded(jpeg_enc *e) {
    if (setjmp(e->err.jmp))
        return 1;
    e->cinfo.err = &e->err.pub;
    jpeg_create_compress(&e->cinfo);
    e->created = 1;
    jpeg_mem_dest(&e->cinfo, &e->out, &e->len);
    e->cinfo.image_width = (JDIMENSION)e->w;
    e->cinfo.image_height = (JDIMENSION)e->h;
    e->cinfo.input_components = e->c;
    e->cinfo.in_color_space = e->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&e->cinfo);
    jpeg_set_quality(&e->cinfo, e->quality, TRUE);
    jpeg_start_compress(&e->cinfo, TRUE);
    size_t rowbytes = (size_t)e->w * (size_t)e->c;
    while (e->cinfo.next_scanline < e->cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)e->img->data + (size_t)e->cinfo.next_scanline * rowbytes;
        jpeg_write_scanlines(&e->cinfo, &row, 1);
    }
    jpeg_finish_compress(&e->cinfo);
    return 0;
}

hs_status hs_jpeg_encode(void **buf, size_t *n, const hs_tensor *img, int quality) {
    *buf = NULL;
    *n = 0;
    char sh[96];
    if (img->ndim != 2 && !(img->ndim == 3 && (img->shape[2] == 1 || img->shape[2] == 3)))
        return HS_FAIL(HS_ERR_SHAPE, "jpeg_encode: expected an (H,W), (H,W,1) or (H,W,3) image, got %s",
                       hs_tensor_shape_str(img, sh, sizeof sh));
    if (img->shape[0] < 1 || img->shape[1] < 1 || img->shape[0] > 65500 || img->shape[1] > 65500)
        return HS_FAIL(HS_ERR_SHAPE, "jpeg_encode: cannot encode an image of size %s (1..65500 per side)",
                       hs_tensor_shape_str(img, sh, sizeof sh));
    if (img->dtype != HS_DTYPE_U8)
        return HS_FAIL(HS_ERR_DTYPE, "jpeg_encode: expected a U8 image, got %s", hs_dtype_name(img->dtype));
    if (quality == -1)
        quality = 95;
    if (quality < 1 || quality > 100)
        return HS_FAIL(HS_ERR_ARG, "jpeg_encode: quality %d not in 1..100", quality);
    hs_tensor *copy = NULL;
    if (!hs_tensor_is_contiguous(img)) {
        HS_TRY(hs_tensor_clone(&copy, img));
        img = copy;
    }
    jpeg_enc *e = hs_calloc(1, sizeof *e);
    if (!e) {
        hs_tensor_free(copy);
        return HS_FAIL(HS_ERR_NOMEM, "jpeg_encode: out of memory");
    }
    init_err(&e->err);
    e->img = img;
    e->h = img->shape[0];
    e->w = img->shape[1];
    e->c = img->ndim == 3 ? (int)img->shape[2] : 1;
    e->quality = quality;
    int failed = jpeg_encode_guarded(e);
    if (e->created)
        jpeg_destroy_compress(&e->cinfo);
    hs_tensor_free(copy);
    hs_status s = HS_OK;
    if (failed) {
        s = HS_FAIL(HS_ERR_FORMAT, "jpeg_encode: %s", e->err.msg);
    } else if (!(*buf = hs_alloc(e->len ? e->len : 1))) {
        s = HS_FAIL(HS_ERR_NOMEM, "jpeg_encode: out of memory");
    } else {
        memcpy(*buf, e->out, e->len);
        *n = e->len;
    }
    free(e->out);  // allocated by libjpeg's memory destination with malloc
    hs_free(e);
    return s;
}

hs_status hs_jpeg_write(const char *path, const hs_tensor *img, int quality) {
    void *buf;
    size_t n;
    HS_TRY(hs_jpeg_encode(&buf, &n, img, quality));
    hs_status s = hs_image_write_file(path, buf, n);
    hs_free(buf);
    return s;
}

#define HS_STR2(x) #x
#define HS_STR(x) HS_STR2(x)
const char *hs_jpeg_version(void) {
#ifdef LIBJPEG_TURBO_VERSION
    return "libjpeg-turbo " HS_STR(LIBJPEG_TURBO_VERSION);
#else
    return "libjpeg " HS_STR(JPEG_LIB_VERSION);
#endif
}
