// core/png_io.c: PNG through libpng (the only file including png.h), plus the format-sniffing
// hs_image_* entry points and the whole-file/atomic-write helpers they share with jpeg_io.c.
// libpng reports errors by longjmp: every libpng call sits in a *_guarded() function whose only
// state lives in a context struct, so after the jump the caller frees exactly what it holds.
#include "png_io.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "jpeg_io.h"

#define MAX_FILE_BYTES ((int64_t)1 << 32)  // no legitimate image file within budget is larger

// ---- files ----

hs_status hs_image_read_file(void **buf, size_t *n, const char *path) {
    *buf = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return HS_FAIL(HS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return HS_FAIL(HS_ERR_IO, "cannot read %s: not a regular file", path);
    }
    if ((int64_t)st.st_size > MAX_FILE_BYTES) {
        fclose(f);
        return HS_FAIL(HS_ERR_FORMAT, "%s: file too large (%lld bytes)", path, (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    unsigned char *p = hs_alloc(size ? size : 1);
    if (!p) {
        fclose(f);
        return HS_FAIL(HS_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size);
    }
    size_t got = fread(p, 1, size, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != size) {
        hs_free(p);
        return HS_FAIL(HS_ERR_IO, "cannot read %s (%zu of %zu bytes)", path, got, size);
    }
    *buf = p;
    *n = size;
    return HS_OK;
}

hs_status hs_image_write_file(const char *path, const void *buf, size_t n) {
    size_t len = strlen(path);
    char *tmp = hs_alloc(len + 16);
    if (!tmp)
        return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, len + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        hs_status s = HS_FAIL(HS_ERR_IO, "cannot create %s: %s", path, strerror(errno));
        hs_free(tmp);
        return s;
    }
    (void)fchmod(fd, 0644);  // mkstemp makes 0600; images are meant to be shared
    const unsigned char *p = buf;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            hs_free(tmp);
            return HS_FAIL(HS_ERR_IO, "cannot write %s: %s", path, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        hs_free(tmp);
        return HS_FAIL(HS_ERR_IO, "cannot write %s: %s", path, strerror(e));
    }
    hs_free(tmp);
    return HS_OK;
}

// ---- PNG decoding ----

typedef struct {
    const unsigned char *buf;  // memory source, or
    FILE *fp;                  // file source (header-only reads)
    size_t n, pos;
    const char *label;
    jmp_buf jmp;
    hs_status code;
    char msg[256];
    png_structp png;
    png_infop info;
    int header_only;
    hs_image_info hinfo;
    hs_tensor *img;        // owned until handed to the caller
    png_bytep *rows;       // hs_alloc'ed row pointers
} png_dec;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_dec *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jmp, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;  // warnings (bad ancillary chunks, ...) are not fatal and never printed
    (void)msg;
}

static void png_read_source(png_structp png, png_bytep out, size_t len) {
    png_dec *c = png_get_io_ptr(png);
    if (c->fp) {
        if (fread(out, 1, len, c->fp) != len)
            png_error(png, "truncated file (unexpected end of data)");
        return;
    }
    if (len > c->n - c->pos)
        png_error(png, "truncated file (unexpected end of data)");
    memcpy(out, c->buf + c->pos, len);
    c->pos += len;
}

// All libpng calls of a decode; returns 0 on success, else c->code/c->msg describe the error.
static int png_decode_guarded(png_dec *c) {
    if (setjmp(c->jmp))
        return 1;
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_png_error, on_png_warning);
    if (!c->png || !(c->info = png_create_info_struct(c->png))) {
        c->code = HS_ERR_NOMEM;
        snprintf(c->msg, sizeof c->msg, "out of memory");
        return 1;
    }
    png_set_read_fn(c->png, c, png_read_source);
    // libpng allocates (and clears) an ancillary chunk's declared length before reading it: a
    // 467-byte file declaring a 1.7 GB zTXt took 1.7 GB and 4 s (found by tests/fuzz/fuzz_png).
    // (this libpng's chunk_malloc_max does not cover text chunks). We use no text, ICC, EXIF or
    // palette-suggestion data: skip those chunks (read in small pieces, never buffered whole)
    // and unknown ones; cap the rest. IDAT is streamed and unaffected.
    static const png_byte skip[] = {'t', 'E', 'X', 't', 0, 'z', 'T', 'X', 't', 0, 'i', 'T', 'X', 't', 0,
                                    'i', 'C', 'C', 'P', 0, 's', 'P', 'L', 'T', 0, 'e', 'X', 'I', 'f', 0};
    png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(c->png, PNG_HANDLE_CHUNK_NEVER, skip, (int)(sizeof skip / 5));
    png_set_chunk_malloc_max(c->png, (png_alloc_size_t)8 << 20);
    png_set_chunk_cache_max(c->png, 128);
    png_read_info(c->png, c->info);
    int color = png_get_color_type(c->png, c->info), depth = png_get_bit_depth(c->png, c->info);
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(c->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(c->png);
    if (png_get_valid(c->png, c->info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(c->png);
    if (depth == 16) {
        const uint16_t one = 1;
        if (*(const unsigned char *)&one)  // PNG samples are big-endian
            png_set_swap(c->png);
    }
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    c->hinfo.width = png_get_image_width(c->png, c->info);
    c->hinfo.height = png_get_image_height(c->png, c->info);
    c->hinfo.channels = png_get_channels(c->png, c->info);
    c->hinfo.bit_depth = png_get_bit_depth(c->png, c->info);
    c->hinfo.format = HS_IMAGE_FORMAT_PNG;
    if (c->hinfo.width <= 0 || c->hinfo.height <= 0 || c->hinfo.width * c->hinfo.height > HS_IMAGE_MAX_PIXELS) {
        snprintf(c->msg, sizeof c->msg, "image of %lldx%lld pixels exceeds the budget of %lld pixels",
                 (long long)c->hinfo.width, (long long)c->hinfo.height, (long long)HS_IMAGE_MAX_PIXELS);
        return 1;
    }
    if (c->hinfo.channels < 1 || c->hinfo.channels > 4 || (c->hinfo.bit_depth != 8 && c->hinfo.bit_depth != 16)) {
        snprintf(c->msg, sizeof c->msg, "unsupported layout (%d channels of %d bits)", c->hinfo.channels,
                 c->hinfo.bit_depth);
        return 1;
    }
    if (c->header_only)
        return 0;
    int64_t shape[3] = {c->hinfo.height, c->hinfo.width, c->hinfo.channels};
    if (hs_tensor_new(&c->img, c->hinfo.bit_depth == 16 ? HS_DTYPE_U16 : HS_DTYPE_U8, 3, shape) != HS_OK ||
        !(c->rows = hs_alloc((size_t)c->hinfo.height * sizeof *c->rows))) {
        c->code = HS_ERR_NOMEM;
        snprintf(c->msg, sizeof c->msg, "out of memory for %lldx%lld pixels", (long long)c->hinfo.width,
                 (long long)c->hinfo.height);
        return 1;
    }
    size_t rowbytes = (size_t)c->hinfo.width * (size_t)c->hinfo.channels * (size_t)(c->hinfo.bit_depth / 8);
    if (png_get_rowbytes(c->png, c->info) != rowbytes) {
        snprintf(c->msg, sizeof c->msg, "unexpected row size %zu (want %zu)",
                 (size_t)png_get_rowbytes(c->png, c->info), rowbytes);
        return 1;
    }
    for (int64_t y = 0; y < c->hinfo.height; y++)
        c->rows[y] = (png_bytep)c->img->data + (size_t)y * rowbytes;
    png_read_image(c->png, c->rows);
    png_read_end(c->png, NULL);
    return 0;
}

// Runs the guarded decode and cleans up; *out and *info receive the results.
static hs_status png_decode_run(png_dec *c, hs_tensor **out, hs_image_info *info) {
    c->code = HS_ERR_FORMAT;
    int failed = png_decode_guarded(c);
    if (c->png)
        png_destroy_read_struct(&c->png, c->info ? &c->info : NULL, NULL);
    hs_free(c->rows);
    if (failed) {
        hs_tensor_free(c->img);
        return HS_FAIL(c->code, "%s: invalid PNG: %s", c->label, c->msg);
    }
    if (out)
        *out = c->img;
    if (info)
        *info = c->hinfo;
    return HS_OK;
}

static hs_status check_png_signature(const unsigned char *p, size_t n, const char *label) {
    if (n == 0)
        return HS_FAIL(HS_ERR_FORMAT, "%s: empty file", label);
    if (n < 8 || png_sig_cmp(p, 0, 8) != 0)
        return HS_FAIL(HS_ERR_FORMAT, "%s: not a PNG file (bad signature)", label);
    return HS_OK;
}

hs_status hs_png_decode(hs_tensor **out, const void *buf, size_t n, const char *label) {
    *out = NULL;
    label = label ? label : "(memory)";
    HS_TRY(check_png_signature(buf, n, label));
    png_dec c;
    memset(&c, 0, sizeof c);
    c.buf = buf;
    c.n = n;
    c.label = label;
    return png_decode_run(&c, out, NULL);
}

hs_status hs_png_read(hs_tensor **out, const char *path) {
    *out = NULL;
    void *buf;
    size_t n;
    HS_TRY(hs_image_read_file(&buf, &n, path));
    hs_status s = hs_png_decode(out, buf, n, path);
    hs_free(buf);
    return s;
}

hs_status hs_png_read_info(hs_image_info *info, const char *path) {
    memset(info, 0, sizeof *info);
    FILE *f = fopen(path, "rb");
    if (!f)
        return HS_FAIL(HS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char sig[8];
    size_t got = fread(sig, 1, 8, f);
    hs_status s = check_png_signature(sig, got, path);
    if (s != HS_OK) {
        fclose(f);
        return s;
    }
    rewind(f);
    png_dec c;
    memset(&c, 0, sizeof c);
    c.fp = f;
    c.label = path;
    c.header_only = 1;
    s = png_decode_run(&c, NULL, info);
    fclose(f);
    return s;
}

// ---- PNG encoding ----

typedef struct {
    jmp_buf jmp;
    char msg[256];
    hs_status code;
    png_structp png;
    png_infop info;
    const hs_tensor *img;   // contiguous (H,W,C) view of the caller's image
    int64_t h, w;
    int c, depth, level;
    unsigned char *out;     // hs_alloc'ed, grows
    size_t len, cap;
} png_enc;

static void on_png_enc_error(png_structp png, png_const_charp msg) {
    png_enc *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    longjmp(e->jmp, 1);
}

static void png_write_sink(png_structp png, png_bytep data, size_t len) {
    png_enc *e = png_get_io_ptr(png);
    if (len > e->cap - e->len) {
        size_t cap = e->cap * 2 > e->len + len ? e->cap * 2 : e->len + len + 4096;
        unsigned char *p = hs_alloc(cap);
        if (!p) {
            e->code = HS_ERR_NOMEM;
            png_error(png, "out of memory");
        }
        if (e->len)
            memcpy(p, e->out, e->len);
        hs_free(e->out);
        e->out = p;
        e->cap = cap;
    }
    memcpy(e->out + e->len, data, len);
    e->len += len;
}

static void png_flush_sink(png_structp png) { (void)png; }

static int png_encode_guarded(png_enc *e) {
    if (setjmp(e->jmp))
        return 1;
    e->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, e, on_png_enc_error, on_png_warning);
    if (!e->png || !(e->info = png_create_info_struct(e->png))) {
        e->code = HS_ERR_NOMEM;
        snprintf(e->msg, sizeof e->msg, "out of memory");
        return 1;
    }
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_write_fn(e->png, e, png_write_sink, png_flush_sink);
    png_set_IHDR(e->png, e->info, (png_uint_32)e->w, (png_uint_32)e->h, e->depth, types[e->c], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(e->png, e->level);
    png_write_info(e->png, e->info);
    if (e->depth == 16) {
        const uint16_t one = 1;
        if (*(const unsigned char *)&one)
            png_set_swap(e->png);
    }
    size_t rowbytes = (size_t)e->w * (size_t)e->c * (size_t)(e->depth / 8);
    for (int64_t y = 0; y < e->h; y++)
        png_write_row(e->png, (png_const_bytep)e->img->data + (size_t)y * rowbytes);
    png_write_end(e->png, NULL);
    return 0;
}

// Shape check shared by the encoders: (H,W) or (H,W,C), C in 1..max_c, non-empty, within budget.
static hs_status check_writable(const hs_tensor *img, int max_c, const char *what) {
    char sh[96];
    if (img->ndim != 2 && img->ndim != 3)
        return HS_FAIL(HS_ERR_SHAPE, "%s: expected an (H,W) or (H,W,C) image, got %s", what,
                       hs_tensor_shape_str(img, sh, sizeof sh));
    int64_t c = img->ndim == 3 ? img->shape[2] : 1;
    if (c < 1 || c > max_c)
        return HS_FAIL(HS_ERR_SHAPE, "%s: expected 1..%d channels, got %s", what, max_c,
                       hs_tensor_shape_str(img, sh, sizeof sh));
    if (img->shape[0] < 1 || img->shape[1] < 1 || img->shape[0] * img->shape[1] > HS_IMAGE_MAX_PIXELS ||
        img->shape[0] > 0x7fffffff || img->shape[1] > 0x7fffffff)
        return HS_FAIL(HS_ERR_SHAPE, "%s: cannot encode an image of size %s", what,
                       hs_tensor_shape_str(img, sh, sizeof sh));
    return HS_OK;
}

hs_status hs_png_encode(void **buf, size_t *n, const hs_tensor *img, int level) {
    *buf = NULL;
    *n = 0;
    HS_TRY(check_writable(img, 4, "png_encode"));
    if (img->dtype != HS_DTYPE_U8 && img->dtype != HS_DTYPE_U16)
        return HS_FAIL(HS_ERR_DTYPE, "png_encode: expected a U8 or U16 image, got %s", hs_dtype_name(img->dtype));
    if (level < -1 || level > 9)
        return HS_FAIL(HS_ERR_ARG, "png_encode: compression level %d not in 0..9", level);
    hs_tensor *copy = NULL;
    if (!hs_tensor_is_contiguous(img)) {
        HS_TRY(hs_tensor_clone(&copy, img));
        img = copy;
    }
    png_enc e;
    memset(&e, 0, sizeof e);
    e.code = HS_ERR_FORMAT;
    e.img = img;
    e.h = img->shape[0];
    e.w = img->shape[1];
    e.c = img->ndim == 3 ? (int)img->shape[2] : 1;
    e.depth = img->dtype == HS_DTYPE_U16 ? 16 : 8;
    e.level = level < 0 ? 3 : level;
    e.cap = hs_tensor_nbytes(img) / 4 + 4096;
    e.out = hs_alloc(e.cap);
    int failed = !e.out;
    if (failed) {
        e.code = HS_ERR_NOMEM;
        snprintf(e.msg, sizeof e.msg, "out of memory");
    } else {
        failed = png_encode_guarded(&e);
    }
    if (e.png)
        png_destroy_write_struct(&e.png, e.info ? &e.info : NULL);
    hs_tensor_free(copy);
    if (failed) {
        hs_free(e.out);
        return HS_FAIL(e.code, "png_encode: %s", e.msg);
    }
    *buf = e.out;
    *n = e.len;
    return HS_OK;
}

hs_status hs_png_write(const char *path, const hs_tensor *img, int level) {
    void *buf;
    size_t n;
    HS_TRY(hs_png_encode(&buf, &n, img, level));
    hs_status s = hs_image_write_file(path, buf, n);
    hs_free(buf);
    return s;
}

// ---- format dispatch ----

hs_image_format hs_image_sniff(const void *buf, size_t n) {
    const unsigned char *p = buf;
    if (n >= 8 && png_sig_cmp(p, 0, 8) == 0)
        return HS_IMAGE_FORMAT_PNG;
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF)
        return HS_IMAGE_FORMAT_JPEG;
    return HS_IMAGE_FORMAT_UNKNOWN;
}

hs_status hs_image_decode(hs_tensor **out, const void *buf, size_t n, const char *label) {
    *out = NULL;
    label = label ? label : "(memory)";
    switch (hs_image_sniff(buf, n)) {
    case HS_IMAGE_FORMAT_PNG:
        return hs_png_decode(out, buf, n, label);
    case HS_IMAGE_FORMAT_JPEG:
        return hs_jpeg_decode(out, buf, n, label);
    default:
        if (n == 0)
            return HS_FAIL(HS_ERR_FORMAT, "%s: empty file", label);
        return HS_FAIL(HS_ERR_FORMAT, "%s: not a PNG or JPEG image (unknown signature)", label);
    }
}

hs_status hs_image_read(hs_tensor **out, const char *path) {
    *out = NULL;
    void *buf;
    size_t n;
    HS_TRY(hs_image_read_file(&buf, &n, path));
    hs_status s = hs_image_decode(out, buf, n, path);
    hs_free(buf);
    return s;
}

hs_status hs_image_read_info(hs_image_info *info, const char *path) {
    memset(info, 0, sizeof *info);
    FILE *f = fopen(path, "rb");
    if (!f)
        return HS_FAIL(HS_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char sig[8];
    size_t got = fread(sig, 1, sizeof sig, f);
    fclose(f);
    switch (hs_image_sniff(sig, got)) {
    case HS_IMAGE_FORMAT_PNG:
        return hs_png_read_info(info, path);
    case HS_IMAGE_FORMAT_JPEG:
        return hs_jpeg_read_info(info, path);
    default:
        if (got == 0)
            return HS_FAIL(HS_ERR_FORMAT, "%s: empty file", path);
        return HS_FAIL(HS_ERR_FORMAT, "%s: not a PNG or JPEG image (unknown signature)", path);
    }
}

static int has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), k = strlen(ext);
    return n > k && strcasecmp(path + n - k, ext) == 0;
}

hs_status hs_image_write(const char *path, const hs_tensor *img, int quality) {
    if (has_ext(path, ".png"))
        return hs_png_write(path, img, -1);
    if (has_ext(path, ".jpg") || has_ext(path, ".jpeg"))
        return hs_jpeg_write(path, img, quality);
    return HS_FAIL(HS_ERR_ARG, "%s: unknown image extension (expected .png, .jpg or .jpeg)", path);
}

const char *hs_png_version(void) { return png_get_libpng_ver(NULL); }
