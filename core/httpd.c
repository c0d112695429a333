// core/httpd.c: the inference server's HTTP side (see httpd.h): libmicrohttpd in
// thread-per-connection mode, so a request thread can simply block on a condition variable
// until the runner answers its job; one server mutex guards the queue, the job states and the
// model info. Also the request-body parser, input statistics and the small client used by
// tests and the load generator. Not the model runner (that is Lua, through lua/l_serve.c).
#include "httpd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "jpeg_io.h"
#include "png_io.h"
#include "reqlog.h"
#include "stain.h"

#ifdef HS_HAVE_MHD
#include <microhttpd.h>
#endif

#define STATS_MAX_PIXELS ((int64_t)1 << 18)

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void hs_httpd_default_opts(hs_httpd_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body = (size_t)16 << 20;
    o->max_images = 16;
    o->max_pixels = HS_HTTPD_DEFAULT_MAX_PIXELS;
    o->queue_capacity = 64;
    o->max_connections = 128;
    o->idle_timeout_s = 30;
    o->request_timeout_ms = 30000;
    o->log_path = NULL;
    o->log_max_bytes = (uint64_t)10 << 20;
    o->log_keep = 5;
}

// ---------------------------------------------------------------- growable string

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = hs_alloc(cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        if (b->len)
            memcpy(np, b->p, b->len);
        hs_free(b->p);
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)k < sizeof tmp) {
        sb_add(b, tmp, (size_t)k);
        return;
    }
    char *big = hs_alloc((size_t)k + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)k);
    hs_free(big);
}

// JSON string literal (quotes included); control characters escaped, bytes >= 0x80 passed as is.
static void sb_json_str(sbuf *b, const char *s) {
    sb_add(b, "\"", 1);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_add(b, e, 2);
        } else if (c < 0x20) {
            sb_printf(b, "\\u%04x", c);
        } else {
            sb_add(b, (const char *)&c, 1);
        }
    }
    sb_add(b, "\"", 1);
}

// ---------------------------------------------------------------- input statistics

hs_status hs_httpd_input_stats_compute(hs_httpd_input_stats *st, const hs_tensor *img) {
    memset(st, 0, sizeof *st);
    if (!img || (img->ndim != 2 && img->ndim != 3))
        return HS_FAIL(HS_ERR_SHAPE, "input stats: image must be (H,W) or (H,W,C)");
    if (img->dtype != HS_DTYPE_U8 && img->dtype != HS_DTYPE_U16)
        return HS_FAIL(HS_ERR_DTYPE, "input stats: image must be U8 or U16, got %s", hs_dtype_name(img->dtype));
    int64_t H = img->shape[0], W = img->shape[1];
    int C = img->ndim == 3 ? (int)img->shape[2] : 1;
    if (H < 1 || W < 1 || C < 1 || C > 4)
        return HS_FAIL(HS_ERR_SHAPE, "input stats: bad image shape %lldx%lldx%d", (long long)H, (long long)W, C);
    st->height = H;
    st->width = W;
    st->channels = C;
    int64_t s = 1;
    while ((H / s) * (W / s) > STATS_MAX_PIXELS || ((H + s - 1) / s) * ((W + s - 1) / s) > STATS_MAX_PIXELS)
        s++;
    int64_t h = (H + s - 1) / s, w = (W + s - 1) / s;
    int64_t shape[3] = {h, w, 3};
    hs_tensor *rgb = NULL, *hed = NULL;
    HS_TRY(hs_tensor_new(&rgb, HS_DTYPE_U8, 3, shape));
    hs_status stt = hs_tensor_new(&hed, HS_DTYPE_F32, 3, shape);
    if (stt != HS_OK) {
        hs_tensor_free(rgb);
        return stt;
    }
    uint8_t *o = rgb->data;
    int64_t cs = img->ndim == 3 ? img->stride[2] : 0;
    double sum[3] = {0, 0, 0};
    for (int64_t y = 0; y < h; y++) {
        for (int64_t x = 0; x < w; x++) {
            int64_t off = y * s * img->stride[0] + x * s * img->stride[1];
            for (int c = 0; c < 3; c++) {
                int src = C >= 3 ? c : 0;  // gray and gray+alpha repeat channel 0
                unsigned v;
                if (img->dtype == HS_DTYPE_U8)
                    v = ((const uint8_t *)img->data)[off + src * cs];
                else
                    v = (((const uint16_t *)img->data)[off + src * cs] + 128u) / 257u;
                *o++ = (uint8_t)v;
                sum[c] += v;
            }
        }
    }
    stt = hs_stain_rgb2hed(hed, rgb);
    if (stt == HS_OK) {
        double od[3] = {0, 0, 0};
        const float *p = hed->data;
        for (int64_t i = 0; i < h * w; i++)
            for (int c = 0; c < 3; c++)
                od[c] += (double)p[3 * i + c];
        for (int c = 0; c < 3; c++) {
            st->intensity[c] = sum[c] / (255.0 * (double)(h * w));
            st->od[c] = od[c] / (double)(h * w);
        }
    }
    hs_tensor_free(rgb);
    hs_tensor_free(hed);
    return stt;
}

// ---------------------------------------------------------------- request bodies

// Does content type ct (parameters allowed) name the media type `want`? Case-insensitive.
static int media_is(const char *ct, const char *want) {
    size_t n = strlen(want);
    if (!ct || strncasecmp(ct, want, n) != 0)
        return 0;
    char c = ct[n];
    return c == 0 || c == ';' || c == ' ' || c == '\t';
}

// Value of parameter `key` in a header value (key=value or key="value"), into out.
static int header_param(const char *h, const char *key, char *out, size_t n) {
    size_t kl = strlen(key);
    for (const char *p = h; p && *p; p++) {
        if ((p == h || p[-1] == ';' || p[-1] == ' ' || p[-1] == '\t') && strncasecmp(p, key, kl) == 0 && p[kl] == '=') {
            const char *v = p + kl + 1;
            size_t len = 0;
            if (*v == '"') {
                v++;
                while (v[len] && v[len] != '"')
                    len++;
            } else {
                while (v[len] && v[len] != ';' && v[len] != ' ' && v[len] != '\t' && v[len] != '\r' && v[len] != '\n')
                    len++;
            }
            if (len + 1 > n)
                return 0;
            memcpy(out, v, len);
            out[len] = 0;
            return 1;
        }
    }
    return 0;
}

static const char *mem_find(const char *hay, size_t hn, const char *needle, size_t nn) {
    if (nn == 0 || hn < nn)
        return NULL;
    const char *end = hay + hn - nn;
    for (const char *p = hay; p <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, nn) == 0)
            return p;
    }
    return NULL;
}

static void free_images(hs_tensor **imgs, int n) {
    for (int i = 0; i < n; i++) {
        hs_tensor_free(imgs[i]);
        imgs[i] = NULL;
    }
}

// Width x height declared by a PNG (IHDR) or JPEG (SOF) header, 0 when neither can be read (the
// decoder then reports what is wrong). PNG sizes are 32-bit, so the product is taken in 64-bit
// unsigned (exact) and saturated (tests/fuzz/regress/httpd/png_ihdr_product_overflows_int64).
static int64_t declared_pixels(const void *buf, size_t n, const char *label) {
    const unsigned char *b = buf;
    hs_image_format fmt = hs_image_sniff(buf, n);   // the decoder's own dispatch
    if (fmt == HS_IMAGE_FORMAT_PNG && n >= 24 && memcmp(b + 12, "IHDR", 4) == 0) {
        uint32_t w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
        uint32_t h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
        uint64_t px = (uint64_t)w * h;
        return px > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)px;
    }
    hs_image_info info;
    if (fmt == HS_IMAGE_FORMAT_JPEG && hs_jpeg_decode_info(&info, buf, n, label) == HS_OK)
        return info.width * info.height;
    return 0;
}

// Decode one image; 16-bit images are scaled to U8 so that everything downstream sees U8.
static hs_status decode_one(hs_tensor **out, const void *buf, size_t n, const char *label, int64_t max_pixels) {
    *out = NULL;
    hs_tensor *img = NULL;
    int64_t px = declared_pixels(buf, n, label);
    if (px > max_pixels)
        return HS_FAIL(HS_ERR_ARG, "%s: an image of %lld pixels exceeds the limit of %lld pixels per image "
                       "(histops serve --max-pixels)", label, (long long)px, (long long)max_pixels);
    HS_TRY(hs_image_decode(&img, buf, n, label));
    if (img->dtype == HS_DTYPE_U16) {
        hs_tensor *u8 = NULL;
        hs_status st = hs_tensor_new(&u8, HS_DTYPE_U8, img->ndim, img->shape);
        if (st != HS_OK) {
            hs_tensor_free(img);
            return st;
        }
        const uint16_t *s = img->data;
        uint8_t *d = u8->data;
        int64_t k = hs_tensor_numel(img);
        for (int64_t i = 0; i < k; i++)
            d[i] = (uint8_t)((s[i] + 128u) / 257u);
        hs_tensor_free(img);
        img = u8;
    }
    *out = img;
    return HS_OK;
}

hs_status hs_httpd_decode_body(hs_tensor **imgs, char (*names)[128], int *n, int max, const char *content_type,
                               const void *body, size_t len) {
    return hs_httpd_decode_body_limited(imgs, names, n, max, HS_HTTPD_DEFAULT_MAX_PIXELS, content_type, body, len);
}

hs_status hs_httpd_decode_body_limited(hs_tensor **imgs, char (*names)[128], int *n, int max, int64_t max_pixels,
                                       const char *content_type, const void *body, size_t len) {
    *n = 0;
    if (max < 1 || max > HS_HTTPD_MAX_IMAGES)
        return HS_FAIL(HS_ERR_ARG, "max images must be in 1..%d", HS_HTTPD_MAX_IMAGES);
    if (max_pixels < 1)
        return HS_FAIL(HS_ERR_ARG, "max pixels must be >= 1, got %lld", (long long)max_pixels);
    const char *ct = content_type ? content_type : "";
    if (media_is(ct, "image/png") || media_is(ct, "image/jpeg") || media_is(ct, "image/jpg") ||
        media_is(ct, "application/octet-stream")) {
        if (len == 0)
            return HS_FAIL(HS_ERR_ARG, "empty request body: expected an image");
        HS_TRY(decode_one(&imgs[0], body, len, "request body", max_pixels));
        if (names)
            names[0][0] = 0;
        *n = 1;
        return HS_OK;
    }
    if (!media_is(ct, "multipart/form-data"))
        return HS_FAIL(HS_ERR_UNSUPPORTED,
                       "unsupported content type '%.100s' (image/png, image/jpeg, application/octet-stream or "
                       "multipart/form-data)",
                       ct);
    char boundary[200], delim[208];
    if (!header_param(ct, "boundary", boundary, sizeof boundary) || !boundary[0])
        return HS_FAIL(HS_ERR_FORMAT, "multipart/form-data without a boundary");
    int dl = snprintf(delim, sizeof delim, "--%s", boundary);
    if (len == 0 || !body)  // the server passes NULL for a request without a body
        return HS_FAIL(HS_ERR_ARG, "empty request body: expected multipart/form-data parts");
    const char *p = body, *end = (const char *)body + len;
    const char *first = mem_find(p, len, delim, (size_t)dl);
    if (!first)
        return HS_FAIL(HS_ERR_FORMAT, "multipart body does not contain its boundary");
    p = first + dl;
    char crlf_delim[212];
    int cdl = snprintf(crlf_delim, sizeof crlf_delim, "\r\n--%s", boundary);
    int count = 0;
    for (;;) {
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            break;  // closing delimiter
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
            free_images(imgs, count);
            return HS_FAIL(HS_ERR_FORMAT, "malformed multipart body (bad delimiter line)");
        }
        p += 2;
        const char *hend = mem_find(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend) {
            free_images(imgs, count);
            return HS_FAIL(HS_ERR_FORMAT, "malformed multipart body (part headers not terminated)");
        }
        // part headers: Content-Disposition (filename), Content-Type
        char filename[128] = "", pct[128] = "";
        int has_file = 0;
        for (const char *h = p; h < hend;) {
            const char *eol = mem_find(h, (size_t)(hend - h) + 2, "\r\n", 2);
            size_t hl = (size_t)(eol - h);
            char line[512];
            if (hl >= sizeof line)
                hl = sizeof line - 1;
            memcpy(line, h, hl);
            line[hl] = 0;
            if (strncasecmp(line, "content-disposition:", 20) == 0) {
                if (header_param(line + 20, "filename", filename, sizeof filename))
                    has_file = 1;
            } else if (strncasecmp(line, "content-type:", 13) == 0) {
                const char *v = line + 13;
                while (*v == ' ' || *v == '\t')
                    v++;
                snprintf(pct, sizeof pct, "%.127s", v);
            }
            h = eol + 2;
        }
        const char *data = hend + 4;
        const char *next = mem_find(data, (size_t)(end - data), crlf_delim, (size_t)cdl);
        if (!next) {
            free_images(imgs, count);
            return HS_FAIL(HS_ERR_FORMAT, "malformed multipart body (part %d not terminated)", count + 1);
        }
        int is_image = has_file || media_is(pct, "image/png") || media_is(pct, "image/jpeg") ||
                       media_is(pct, "application/octet-stream");
        if (is_image) {
            if (count >= max) {
                free_images(imgs, count);
                return HS_FAIL(HS_ERR_ARG, "too many images in one request (at most %d)", max);
            }
            char label[160];
            snprintf(label, sizeof label, "part %d%s%.100s", count + 1, filename[0] ? " " : "", filename);
            hs_status st = decode_one(&imgs[count], data, (size_t)(next - data), label, max_pixels);
            if (st != HS_OK) {
                free_images(imgs, count);
                return st;
            }
            if (names)
                snprintf(names[count], 128, "%s", filename);
            count++;
        }
        p = next + cdl;
    }
    if (count == 0)
        return HS_FAIL(HS_ERR_ARG, "multipart body holds no image part");
    *n = count;
    return HS_OK;
}

// ---------------------------------------------------------------- client

void hs_httpd_response_free(hs_httpd_response *r) {
    if (!r)
        return;
    hs_free(r->body);
    r->body = NULL;
    r->n = 0;
}

static int connect_to(const char *host, int port, int timeout_ms) {
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, ports, &hints, &res) != 0 || !res)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

// Read one response from fd. keep: the connection stays usable (body read by Content-Length).
// Returns 0 and fills status/content type/body, or -1 on a connection failure.
static int read_response(int fd, hs_httpd_response *r, int *server_closes) {
    sbuf b = {0};
    char tmp[16384];
    size_t hdr_end = 0;
    long long clen = -1;
    *server_closes = 0;
    for (;;) {
        if (hdr_end == 0 && b.len >= 4) {
            const char *e = mem_find(b.p, b.len, "\r\n\r\n", 4);
            if (e) {
                hdr_end = (size_t)(e - b.p) + 4;
                int status = 0;
                if (sscanf(b.p, "HTTP/%*d.%*d %d", &status) != 1)
                    goto fail;
                r->status = status;
                for (const char *l = strstr(b.p, "\r\n"); l && l < e; l = strstr(l + 2, "\r\n")) {
                    const char *h = l + 2;
                    if (strncasecmp(h, "content-length:", 15) == 0)
                        clen = atoll(h + 15);
                    else if (strncasecmp(h, "content-type:", 13) == 0) {
                        const char *v = h + 13;
                        while (*v == ' ')
                            v++;
                        size_t k = strcspn(v, "\r\n");
                        if (k >= sizeof r->content_type)
                            k = sizeof r->content_type - 1;
                        memcpy(r->content_type, v, k);
                        r->content_type[k] = 0;
                    } else if (strncasecmp(h, "connection:", 11) == 0 && strstr(h, "close") && strstr(h, "close") < e)
                        *server_closes = 1;
                }
            }
        }
        if (hdr_end && clen >= 0 && b.len >= hdr_end + (size_t)clen)
            break;
        ssize_t k = recv(fd, tmp, sizeof tmp, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            goto fail;
        if (k == 0) {
            if (!hdr_end)
                goto fail;
            *server_closes = 1;
            if (clen < 0)
                clen = (long long)(b.len - hdr_end);
            if (b.len < hdr_end + (size_t)clen)
                goto fail;
            break;
        }
        sb_add(&b, tmp, (size_t)k);
        if (b.failed)
            goto fail;
    }
    r->n = (size_t)clen;
    r->body = hs_alloc(r->n + 1);
    if (!r->body)
        goto fail;
    memcpy(r->body, b.p + hdr_end, r->n);
    r->body[r->n] = 0;
    hs_free(b.p);
    return 0;
fail:
    hs_free(b.p);
    return -1;
}

static int send_request(int fd, const char *host, int port, const char *method, const char *path, const char *headers,
                        const void *body, size_t n, int close_conn) {
    char head[2048];
    int k = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: %s\r\nContent-Length: %zu\r\n%s\r\n",
                     method, path, host, port, close_conn ? "close" : "keep-alive", n, headers ? headers : "");
    if (k < 0 || (size_t)k >= sizeof head)
        return -1;
    if (send_all(fd, head, (size_t)k) != 0)
        return -1;
    return n ? send_all(fd, body, n) : 0;
}

hs_status hs_httpd_fetch(hs_httpd_response *r, const char *host, int port, const char *method, const char *path,
                         const char *headers, const void *body, size_t n, int timeout_ms) {
    memset(r, 0, sizeof *r);
    int fd = connect_to(host, port, timeout_ms > 0 ? timeout_ms : 30000);
    if (fd < 0)
        return HS_FAIL(HS_ERR_IO, "http: cannot connect to %s:%d: %s", host, port, strerror(errno));
    int closes;
    if (send_request(fd, host, port, method, path, headers, body, n, 1) != 0) {
        // the server may answer (e.g. 413) and close before reading the whole body: try reading
        if (read_response(fd, r, &closes) == 0) {
            close(fd);
            return HS_OK;
        }
        close(fd);
        return HS_FAIL(HS_ERR_IO, "http: sending %s %s failed: %s", method, path, strerror(errno));
    }
    int rc = read_response(fd, r, &closes);
    close(fd);
    if (rc != 0)
        return HS_FAIL(HS_ERR_IO, "http: no valid response to %s %s", method, path);
    return HS_OK;
}

typedef struct {
    const char *host, *path, *ctype;
    const void *body;
    size_t n;
    int port, timeout_ms;
    int64_t requests;
    atomic_llong next, done;
    atomic_llong ok, http_errors, failures;
    double *lat;
} load_ctx;

static void *load_worker(void *arg) {
    load_ctx *c = arg;
    char headers[256];
    snprintf(headers, sizeof headers, "Content-Type: %s\r\n", c->ctype);
    int fd = -1;
    for (;;) {
        long long i = atomic_fetch_add(&c->next, 1);
        if (i >= c->requests)
            break;
        double t0 = mono_now();
        int ok = 0, closes = 1;
        hs_httpd_response r;
        memset(&r, 0, sizeof r);
        for (int attempt = 0; attempt < 2 && !ok; attempt++) {  // one retry on a stale keep-alive
            if (fd < 0)
                fd = connect_to(c->host, c->port, c->timeout_ms);
            if (fd < 0)
                break;
            if (send_request(fd, c->host, c->port, "POST", c->path, headers, c->body, c->n, 0) == 0 &&
                read_response(fd, &r, &closes) == 0)
                ok = 1;
            if (!ok || closes) {
                close(fd);
                fd = -1;
            }
        }
        double dt = mono_now() - t0;
        long long slot = atomic_fetch_add(&c->done, 1);
        if (!ok) {
            atomic_fetch_add(&c->failures, 1);
            c->lat[slot] = NAN;
        } else {
            atomic_fetch_add(r.status >= 200 && r.status < 300 ? &c->ok : &c->http_errors, 1);
            c->lat[slot] = dt;
        }
        hs_httpd_response_free(&r);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

hs_status hs_httpd_loadtest(hs_httpd_load_result *res, double *latencies, const char *host, int port,
                            const char *path, const char *content_type, const void *body, size_t n,
                            int connections, int64_t requests, int timeout_ms) {
    memset(res, 0, sizeof *res);
    if (connections < 1 || connections > 1024)
        return HS_FAIL(HS_ERR_ARG, "loadtest: connections must be in 1..1024, got %d", connections);
    if (requests < 1)
        return HS_FAIL(HS_ERR_ARG, "loadtest: requests must be >= 1");
    load_ctx c;
    memset(&c, 0, sizeof c);
    c.host = host;
    c.path = path;
    c.ctype = content_type;
    c.body = body;
    c.n = n;
    c.port = port;
    c.timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    c.requests = requests;
    c.lat = latencies;
    atomic_init(&c.next, 0);
    atomic_init(&c.done, 0);
    atomic_init(&c.ok, 0);
    atomic_init(&c.http_errors, 0);
    atomic_init(&c.failures, 0);
    pthread_t *th = hs_calloc((size_t)connections, sizeof *th);
    if (!th)
        return HS_FAIL(HS_ERR_NOMEM, "loadtest: out of memory");
    double t0 = mono_now();
    int started = 0;
    for (; started < connections; started++)
        if (pthread_create(&th[started], NULL, load_worker, &c) != 0)
            break;
    if (started == 0) {
        hs_free(th);
        return HS_FAIL(HS_ERR_NOMEM, "loadtest: cannot start threads");
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    hs_free(th);
    res->wall_seconds = mono_now() - t0;
    res->ok = atomic_load(&c.ok);
    res->http_errors = atomic_load(&c.http_errors);
    res->failures = atomic_load(&c.failures);
    return HS_OK;
}

// ---------------------------------------------------------------- server state

enum { JOB_QUEUED = 0, JOB_HELD, JOB_ANSWERED };

struct hs_httpd_job {
    hs_httpd *srv;
    hs_httpd_route route;
    int nimg;
    hs_tensor *img[HS_HTTPD_MAX_IMAGES];
    hs_httpd_input_stats st[HS_HTTPD_MAX_IMAGES];
    char names[HS_HTTPD_MAX_IMAGES][128];
    char params[HS_HTTPD_MAX_PARAMS][2][64];
    int nparams;
    char accept[128];
    char id[24];
    double t_enqueue, t_pop;
    int state, abandoned, refs;
    // the answer
    int status;
    char ctype[128];
    char *body;
    size_t n;
    char *log_fields;
    char extra_header[256];
    hs_httpd_job *next, *prev;  // queue links
};

struct hs_httpd {
    hs_httpd_opts o;
    char host[64];
    void *daemon;  // struct MHD_Daemon *
    int port;
    pthread_mutex_t mu;
    pthread_cond_t cv_queue;  // a job was queued (or stopping)
    pthread_cond_t cv_done;   // some job was answered (or stopping)
    hs_httpd_job *qhead, *qtail;
    int qlen;
    int draining, stopping, pending, refs;
    int incoming;  // model requests being received or decoded (not yet queued or refused)
    char *model_name, *model_version, *models_json;
    hs_metrics *metrics;
    hs_reqlog *log;
    uint64_t next_id;
};

static void job_free(hs_httpd_job *j) {
    if (!j)
        return;
    for (int i = 0; i < j->nimg; i++)
        hs_tensor_free(j->img[i]);
    hs_free(j->body);
    hs_free(j->log_fields);
    hs_free(j);
}

static char *dup_str(const char *s) {
    if (!s)
        s = "";
    size_t n = strlen(s);
    char *d = hs_alloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static void server_destroy(hs_httpd *s) {
    hs_metrics_free(s->metrics);
    hs_reqlog_free(s->log);
    hs_free(s->model_name);
    hs_free(s->model_version);
    hs_free(s->models_json);
    pthread_cond_destroy(&s->cv_queue);
    pthread_cond_destroy(&s->cv_done);
    pthread_mutex_destroy(&s->mu);
    hs_free(s);
}

// Drop one reference to the server (mutex held on entry, released on return).
static void server_unref_unlock(hs_httpd *s) {
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        server_destroy(s);
}

int hs_httpd_port(const hs_httpd *s) {
    return s ? s->port : 0;
}

hs_metrics *hs_httpd_metrics(hs_httpd *s) {
    return s->metrics;
}

hs_status hs_httpd_set_model(hs_httpd *s, const char *name, const char *version, const char *models_json) {
    char *n = dup_str(name), *v = dup_str(version), *mj = dup_str(models_json ? models_json : "{}");
    if (!n || !v || !mj) {
        hs_free(n);
        hs_free(v);
        hs_free(mj);
        return HS_FAIL(HS_ERR_NOMEM, "httpd: out of memory");
    }
    pthread_mutex_lock(&s->mu);
    int reload = s->model_version && strcmp(s->model_version, v) != 0;
    hs_free(s->model_name);
    hs_free(s->model_version);
    hs_free(s->models_json);
    s->model_name = n;
    s->model_version = v;
    s->models_json = mj;
    pthread_mutex_unlock(&s->mu);
    char labels[512];
    const char *kv[4] = {"name", name ? name : "", "version", version ? version : ""};
    HS_TRY(hs_metrics_labels(labels, sizeof labels, kv, 2));
    HS_TRY(hs_metrics_clear(s->metrics, "histops_model_info"));
    HS_TRY(hs_metrics_set(s->metrics, "histops_model_info", labels, 1));
    if (reload)
        HS_TRY(hs_metrics_add(s->metrics, "histops_model_reloads_total", "", 1));
    return HS_OK;
}

void hs_httpd_drain(hs_httpd *s) {
    pthread_mutex_lock(&s->mu);
    s->draining = 1;
    pthread_mutex_unlock(&s->mu);
}

int hs_httpd_pending(hs_httpd *s) {
    pthread_mutex_lock(&s->mu);
    int p = s->pending;
    pthread_mutex_unlock(&s->mu);
    return p;
}

static void deadline_after(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void queue_unlink(hs_httpd *s, hs_httpd_job *j) {
    if (j->prev)
        j->prev->next = j->next;
    else
        s->qhead = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        s->qtail = j->prev;
    j->next = j->prev = NULL;
    s->qlen--;
}

hs_status hs_httpd_pop(hs_httpd *s, hs_httpd_job **jobs, int max, int *n, int wait_ms, int window_ms) {
    *n = 0;
    if (max < 1)
        return HS_FAIL(HS_ERR_ARG, "httpd_pop: max must be >= 1");
    struct timespec dl;
    pthread_mutex_lock(&s->mu);
    deadline_after(&dl, wait_ms > 0 ? wait_ms : 0);
    while (s->qlen == 0 && !s->stopping && wait_ms > 0)
        if (pthread_cond_timedwait(&s->cv_queue, &s->mu, &dl) == ETIMEDOUT)
            break;
    // batch what arrives together: wait for more only while other requests are on their way
    if (s->qlen > 0 && window_ms > 0 && s->qlen < max && s->incoming > 0) {
        deadline_after(&dl, window_ms);
        while (s->qlen < max && s->incoming > 0 && !s->stopping)
            if (pthread_cond_timedwait(&s->cv_queue, &s->mu, &dl) == ETIMEDOUT)
                break;
    }
    double now = mono_now();
    while (s->qlen > 0 && *n < max) {
        hs_httpd_job *j = s->qhead;
        queue_unlink(s, j);
        j->state = JOB_HELD;
        j->refs++;
        s->refs++;  // a held job keeps the server struct alive
        j->t_pop = now;
        jobs[(*n)++] = j;
    }
    if (s->metrics)
        hs_metrics_set(s->metrics, "histops_queue_depth", "", s->qlen);
    pthread_mutex_unlock(&s->mu);
    return HS_OK;
}

hs_httpd_route hs_httpd_job_route(const hs_httpd_job *j) {
    return j->route;
}
int hs_httpd_job_count(const hs_httpd_job *j) {
    return j->nimg;
}
hs_tensor *hs_httpd_job_take_image(hs_httpd_job *j, int i) {
    if (i < 0 || i >= j->nimg)
        return NULL;
    hs_tensor *t = j->img[i];
    j->img[i] = NULL;
    return t;
}
const hs_httpd_input_stats *hs_httpd_job_stats(const hs_httpd_job *j, int i) {
    return i >= 0 && i < j->nimg ? &j->st[i] : NULL;
}
const char *hs_httpd_job_filename(const hs_httpd_job *j, int i) {
    return i >= 0 && i < j->nimg ? j->names[i] : "";
}
const char *hs_httpd_job_param(const hs_httpd_job *j, const char *key) {
    for (int i = 0; i < j->nparams; i++)
        if (strcmp(j->params[i][0], key) == 0)
            return j->params[i][1];
    return NULL;
}
const char *hs_httpd_job_accept(const hs_httpd_job *j) {
    return j->accept;
}
const char *hs_httpd_job_id(const hs_httpd_job *j) {
    return j->id;
}
double hs_httpd_job_queue_seconds(const hs_httpd_job *j) {
    return j->t_pop > 0 ? j->t_pop - j->t_enqueue : 0;
}

hs_status hs_httpd_job_respond(hs_httpd_job *j, int status, const char *content_type, const void *body, size_t n,
                               const char *log_fields, const char *extra_header) {
    hs_httpd *s = j->srv;
    hs_status st = HS_OK;
    char *b = hs_alloc(n + 1), *lf = dup_str(log_fields);
    if (!b || !lf) {
        hs_free(b);
        hs_free(lf);
        b = lf = NULL;
        st = HS_FAIL(HS_ERR_NOMEM, "httpd: out of memory for a response");
        status = 500;
        body = NULL;
        n = 0;
    }
    if (b && n)
        memcpy(b, body, n);
    pthread_mutex_lock(&s->mu);
    if (j->state == JOB_HELD && !j->abandoned) {
        j->status = status;
        snprintf(j->ctype, sizeof j->ctype, "%s", content_type ? content_type : "application/json");
        snprintf(j->extra_header, sizeof j->extra_header, "%s", extra_header ? extra_header : "");
        j->body = b;
        j->n = n;
        j->log_fields = lf;
        b = lf = NULL;
        j->state = JOB_ANSWERED;
        pthread_cond_broadcast(&s->cv_done);
    }
    int last = --j->refs == 0;
    if (last)
        job_free(j);
    hs_free(b);
    hs_free(lf);
    server_unref_unlock(s);
    return st;
}

// ---------------------------------------------------------------- the MHD side
#ifdef HS_HAVE_MHD

enum { R_HEALTHZ = 0, R_READYZ, R_METRICS, R_MODELS, R_PREDICT, R_SEGMENT, R_IHC, R_OTHER, R_COUNT };
static const char *route_path[R_COUNT] = {"/healthz",    "/readyz",     "/metrics", "/v1/models",
                                          "/v1/predict", "/v1/segment", "/v1/ihc",  "other"};

typedef struct {
    double t0, ts;
    int route;
    int is_post;
    char *buf;
    size_t len, cap;
    int too_large, counted_pending, counted_incoming, answered;
    int nimg;
    hs_httpd_input_stats st[HS_HTTPD_MAX_IMAGES];
    char id[24];
} req;

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void iso_time(char *buf, size_t n, double t) {  // n >= 40
    time_t sec = (time_t)t;
    struct tm tm;
    gmtime_r(&sec, &tm);
    unsigned ms = (unsigned)((t - (double)sec) * 1000.0) % 1000u;
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, n, "%.24s.%03uZ", day, ms);
}

// Log line + metrics for a finished request. Called without the mutex.
static void record(hs_httpd *s, req *rq, const char *method, int status, size_t bytes_in, const char *error,
                   const char *log_fields) {
    double lat = mono_now() - rq->t0;
    const char *route = route_path[rq->route];
    char labels[256], code[8];
    snprintf(code, sizeof code, "%d", status);
    const char *kv[4] = {"route", route, "status", code};
    if (hs_metrics_labels(labels, sizeof labels, kv, 2) == HS_OK)
        hs_metrics_add(s->metrics, "histops_http_requests_total", labels, 1);
    if (hs_metrics_labels(labels, sizeof labels, kv, 1) == HS_OK)
        hs_metrics_observe(s->metrics, "histops_http_request_duration_seconds", labels, lat);
    if (!s->log)
        return;
    sbuf b = {0};
    char t[40];
    iso_time(t, sizeof t, rq->ts);
    pthread_mutex_lock(&s->mu);
    char *mname = dup_str(s->model_name), *mver = dup_str(s->model_version);
    pthread_mutex_unlock(&s->mu);
    sb_printf(&b, "{\"time\":\"%s\",\"ts\":%.3f,\"id\":\"%s\",\"method\":", t, rq->ts, rq->id);
    sb_json_str(&b, method);
    sb_printf(&b, ",\"route\":\"%s\",\"status\":%d,\"latency_ms\":%.3f,\"bytes_in\":%zu,\"model\":", route, status,
              lat * 1000.0, bytes_in);
    sb_json_str(&b, mname ? mname : "");
    sb_add(&b, ",\"model_version\":", 17);
    sb_json_str(&b, mver ? mver : "");
    hs_free(mname);
    hs_free(mver);
    if (rq->nimg > 0) {
        sb_printf(&b, ",\"images\":%d,\"input\":[", rq->nimg);
        for (int i = 0; i < rq->nimg; i++) {
            const hs_httpd_input_stats *st = &rq->st[i];
            sb_printf(&b,
                      "%s{\"h\":%lld,\"w\":%lld,\"c\":%d,\"intensity\":[%.6f,%.6f,%.6f],\"od\":[%.6f,%.6f,%.6f]}",
                      i ? "," : "", (long long)st->height, (long long)st->width, st->channels, st->intensity[0],
                      st->intensity[1], st->intensity[2], st->od[0], st->od[1], st->od[2]);
        }
        sb_add(&b, "]", 1);
    }
    if (error) {
        sb_add(&b, ",\"error\":", 9);
        sb_json_str(&b, error);
    }
    if (log_fields && log_fields[0]) {
        sb_add(&b, ",", 1);
        sb_add(&b, log_fields, strlen(log_fields));
    }
    sb_add(&b, "}", 1);
    if (!b.failed) {
        for (size_t i = 0; i < b.len; i++)  // a newline in runner-supplied fields would split the line
            if (b.p[i] == '\n')
                b.p[i] = ' ';
        hs_reqlog_write(s->log, b.p, b.len);
    }
    hs_free(b.p);
}

// The request is queued or refused: it no longer counts as incoming (pop may stop waiting).
static void leave_incoming(hs_httpd *s, req *rq, int locked) {
    if (!rq->counted_incoming)
        return;
    if (!locked)
        pthread_mutex_lock(&s->mu);
    s->incoming--;
    rq->counted_incoming = 0;
    pthread_cond_broadcast(&s->cv_queue);
    if (!locked)
        pthread_mutex_unlock(&s->mu);
}

static enum MHD_Result send_response(struct MHD_Connection *c, hs_httpd *s, req *rq, const char *method, int status,
                                     const char *ctype, const void *body, size_t n, const char *extra_header,
                                     size_t bytes_in, const char *error, const char *log_fields) {
    struct MHD_Response *r = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "X-Request-Id", rq->id);
    if (status == 503)
        MHD_add_response_header(r, "Retry-After", "1");
    if (extra_header && extra_header[0]) {
        char name[128];
        const char *colon = strchr(extra_header, ':');
        if (colon && (size_t)(colon - extra_header) < sizeof name) {
            memcpy(name, extra_header, (size_t)(colon - extra_header));
            name[colon - extra_header] = 0;
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            MHD_add_response_header(r, name, v);
        }
    }
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    rq->answered = 1;
    leave_incoming(s, rq, 0);
    if (rq->counted_pending) {
        pthread_mutex_lock(&s->mu);
        s->pending--;
        pthread_mutex_unlock(&s->mu);
        rq->counted_pending = 0;
    }
    record(s, rq, method, status, bytes_in, error, log_fields);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, hs_httpd *s, req *rq, const char *method, int status,
                                  const char *msg, size_t bytes_in) {
    sbuf b = {0};
    sb_add(&b, "{\"error\":", 9);
    sb_json_str(&b, msg);
    sb_printf(&b, ",\"status\":%d}\n", status);
    enum MHD_Result r = send_response(c, s, rq, method, status, "application/json", b.failed ? "{}" : b.p,
                                      b.failed ? 2 : b.len, NULL, bytes_in, msg, NULL);
    hs_free(b.p);
    return r;
}

static int route_of(const char *url) {
    for (int i = 0; i < R_OTHER; i++)
        if (strcmp(url, route_path[i]) == 0)
            return i;
    return R_OTHER;
}

static enum MHD_Result collect_param(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    hs_httpd_job *j = cls;
    if (j->nparams < HS_HTTPD_MAX_PARAMS && key) {
        snprintf(j->params[j->nparams][0], 64, "%s", key);
        snprintf(j->params[j->nparams][1], 64, "%s", value ? value : "");
        j->nparams++;
    }
    return MHD_YES;
}

// Decode, queue, wait for the runner's answer, respond. The last call of a POST to a model route.
static enum MHD_Result run_job(struct MHD_Connection *c, hs_httpd *s, req *rq, const char *method) {
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    hs_httpd_job *j = hs_calloc(1, sizeof *j);
    if (!j)
        return send_error(c, s, rq, method, 500, "out of memory", rq->len);
    j->srv = s;
    j->route = rq->route == R_PREDICT ? HS_HTTPD_ROUTE_PREDICT
               : rq->route == R_SEGMENT ? HS_HTTPD_ROUTE_SEGMENT
                                        : HS_HTTPD_ROUTE_IHC;
    memcpy(j->id, rq->id, sizeof j->id);
    hs_status st = hs_httpd_decode_body_limited(j->img, j->names, &j->nimg, s->o.max_images, s->o.max_pixels, ct,
                                                rq->buf, rq->len);
    if (st != HS_OK) {
        job_free(j);
        int code = st == HS_ERR_UNSUPPORTED ? 415 : st == HS_ERR_NOMEM ? 500 : 400;
        if (st == HS_ERR_ARG && (strstr(hs_last_error()->msg, "too many") || strstr(hs_last_error()->msg, "exceeds the limit")))
            code = 413;
        return send_error(c, s, rq, method, code, hs_last_error()->msg, rq->len);
    }
    for (int i = 0; i < j->nimg; i++) {
        if (hs_httpd_input_stats_compute(&j->st[i], j->img[i]) != HS_OK) {
            job_free(j);
            return send_error(c, s, rq, method, 400, hs_last_error()->msg, rq->len);
        }
        rq->st[i] = j->st[i];
        static const char *ch[3] = {"r", "g", "b"}, *stain[3] = {"hematoxylin", "eosin", "dab"};
        for (int k = 0; k < 3; k++) {
            char labels[64];
            const char *kv1[2] = {"channel", ch[k]}, *kv2[2] = {"stain", stain[k]};
            if (hs_metrics_labels(labels, sizeof labels, kv1, 1) == HS_OK)
                hs_metrics_observe(s->metrics, "histops_input_intensity", labels, j->st[i].intensity[k]);
            if (hs_metrics_labels(labels, sizeof labels, kv2, 1) == HS_OK)
                hs_metrics_observe(s->metrics, "histops_input_stain_od", labels, j->st[i].od[k]);
        }
    }
    rq->nimg = j->nimg;
    hs_metrics_add(s->metrics, "histops_input_images_total", "", j->nimg);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect_param, j);
    const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    snprintf(j->accept, sizeof j->accept, "%s", acc ? acc : "");
    // the bytes are decoded: free the body now rather than holding it while waiting
    size_t bytes_in = rq->len;
    hs_free(rq->buf);
    rq->buf = NULL;
    rq->len = rq->cap = 0;

    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->qlen >= s->o.queue_capacity) {
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        job_free(j);
        return send_error(c, s, rq, method, 503, stopping ? "server is shutting down" : "queue full, retry later",
                          bytes_in);
    }
    leave_incoming(s, rq, 1);
    j->refs = 1;
    j->state = JOB_QUEUED;
    j->t_enqueue = mono_now();
    j->prev = s->qtail;
    if (s->qtail)
        s->qtail->next = j;
    else
        s->qhead = j;
    s->qtail = j;
    s->qlen++;
    hs_metrics_set(s->metrics, "histops_queue_depth", "", s->qlen);
    pthread_cond_signal(&s->cv_queue);
    struct timespec dl;
    deadline_after(&dl, s->o.request_timeout_ms);
    int timed_out = 0;
    while (j->state != JOB_ANSWERED && !s->stopping)
        if (pthread_cond_timedwait(&s->cv_done, &s->mu, &dl) == ETIMEDOUT) {
            timed_out = j->state != JOB_ANSWERED;
            break;
        }
    if (j->state != JOB_ANSWERED) {
        if (j->state == JOB_QUEUED)
            queue_unlink(s, j);
        j->abandoned = 1;
        int last = --j->refs == 0;
        pthread_mutex_unlock(&s->mu);
        if (last)
            job_free(j);
        return send_error(c, s, rq, method, timed_out ? 504 : 503,
                          timed_out ? "timed out waiting for the model" : "server is shutting down", bytes_in);
    }
    pthread_mutex_unlock(&s->mu);
    // answered: this thread holds the last reference once the runner has released its own
    enum MHD_Result r = send_response(c, s, rq, method, j->status, j->ctype, j->body, j->n, j->extra_header,
                                      bytes_in, j->status >= 400 ? "runner error" : NULL, j->log_fields);
    pthread_mutex_lock(&s->mu);
    int last = --j->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last)
        job_free(j);
    return r;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls) {
    (void)version;
    hs_httpd *s = cls;
    req *rq = *con_cls;
    if (!rq) {
        rq = hs_calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        rq->t0 = mono_now();
        rq->ts = wall_now();
        rq->route = route_of(url);
        rq->is_post = strcmp(method, "POST") == 0;
        pthread_mutex_lock(&s->mu);
        uint64_t id = ++s->next_id;
        pthread_mutex_unlock(&s->mu);
        snprintf(rq->id, sizeof rq->id, "%08llx%04x", (unsigned long long)id, (unsigned)(getpid() & 0xffff));
        int model_route = rq->route == R_PREDICT || rq->route == R_SEGMENT || rq->route == R_IHC;
        int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        if (rq->route == R_OTHER)
            return send_error(c, s, rq, method, 404, "no such route", 0);
        if (model_route && !rq->is_post)
            return send_error(c, s, rq, method, 405, "method not allowed: use POST", 0);
        if (!model_route && !is_get)
            return send_error(c, s, rq, method, 405, "method not allowed: use GET", 0);
        if (!model_route) {
            pthread_mutex_lock(&s->mu);
            int ready = s->models_json != NULL && !s->draining && !s->stopping;
            char *models = dup_str(s->models_json ? s->models_json : "{\"models\":[]}");
            pthread_mutex_unlock(&s->mu);
            enum MHD_Result r;
            if (rq->route == R_HEALTHZ) {
                r = send_response(c, s, rq, method, 200, "application/json", "{\"status\":\"ok\"}\n", 16, NULL, 0,
                                  NULL, NULL);
            } else if (rq->route == R_READYZ) {
                const char *b = ready ? "{\"status\":\"ready\"}\n" : "{\"status\":\"not ready\"}\n";
                r = send_response(c, s, rq, method, ready ? 200 : 503, "application/json", b, strlen(b), NULL, 0,
                                  NULL, NULL);
            } else if (rq->route == R_MODELS) {
                r = models ? send_response(c, s, rq, method, 200, "application/json", models, strlen(models), NULL,
                                           0, NULL, NULL)
                           : send_error(c, s, rq, method, 500, "out of memory", 0);
            } else {
                char *text = NULL;
                size_t n = 0;
                if (hs_metrics_render(s->metrics, &text, &n) == HS_OK) {
                    r = send_response(c, s, rq, method, 200, HS_METRICS_CONTENT_TYPE, text, n, NULL, 0, NULL,
                                      NULL);
                    hs_free(text);
                } else {
                    r = send_error(c, s, rq, method, 500, hs_last_error()->msg, 0);
                }
            }
            hs_free(models);
            return r;
        }
        // POST to a model route: refuse early what can be refused from the headers
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->o.max_body) {
            char msg[96];
            snprintf(msg, sizeof msg, "request body over the limit of %zu bytes", s->o.max_body);
            return send_error(c, s, rq, method, 413, msg, 0);
        }
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        if (!ct || !(media_is(ct, "image/png") || media_is(ct, "image/jpeg") || media_is(ct, "image/jpg") ||
                     media_is(ct, "application/octet-stream") || media_is(ct, "multipart/form-data"))) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "unsupported content type '%.60s' (image/png, image/jpeg, application/octet-stream or "
                     "multipart/form-data)",
                     ct ? ct : "");
            return send_error(c, s, rq, method, 415, msg, 0);
        }
        pthread_mutex_lock(&s->mu);
        int refuse = s->draining || s->stopping;
        if (!refuse) {
            s->pending++;
            s->incoming++;
            rq->counted_pending = 1;
            rq->counted_incoming = 1;
        }
        pthread_mutex_unlock(&s->mu);
        if (refuse)
            return send_error(c, s, rq, method, 503, "server is draining", 0);
        return MHD_YES;
    }
    if (rq->answered) {  // an early answer was queued; swallow the rest of the body
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t k = *upload_data_size;
        *upload_data_size = 0;
        if (rq->too_large)
            return MHD_YES;
        if (rq->len + k > s->o.max_body) {
            rq->too_large = 1;
            hs_free(rq->buf);
            rq->buf = NULL;
            rq->len = rq->cap = 0;
            return MHD_YES;
        }
        if (rq->len + k > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 65536;
            while (cap < rq->len + k)
                cap *= 2;
            char *nb = hs_alloc(cap);
            if (!nb)
                return MHD_NO;
            if (rq->len)
                memcpy(nb, rq->buf, rq->len);
            hs_free(rq->buf);
            rq->buf = nb;
            rq->cap = cap;
        }
        memcpy(rq->buf + rq->len, upload_data, k);
        rq->len += k;
        return MHD_YES;
    }
    if (rq->too_large) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body over the limit of %zu bytes", s->o.max_body);
        return send_error(c, s, rq, method, 413, msg, s->o.max_body);
    }
    return run_job(c, s, rq, method);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    hs_httpd *s = cls;
    req *rq = *con_cls;
    if (!rq)
        return;
    leave_incoming(s, rq, 0);
    if (rq->counted_pending) {  // the client went away before an answer
        pthread_mutex_lock(&s->mu);
        s->pending--;
        pthread_mutex_unlock(&s->mu);
    }
    hs_free(rq->buf);
    hs_free(rq);
    *con_cls = NULL;
}

int hs_httpd_available(void) {
    return 1;
}

static hs_status define_metrics(hs_metrics *m) {
    static const double lat[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    static const double inten[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0};
    static const double od[] = {0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5};
    static const double batch[] = {1, 2, 4, 8, 16, 32, 64};
    HS_TRY(hs_metrics_define(m, "histops_http_requests_total", HS_METRIC_COUNTER, "HTTP requests by route and status", NULL, 0));
    HS_TRY(hs_metrics_define(m, "histops_http_request_duration_seconds", HS_METRIC_HISTOGRAM,
                             "Request latency from first byte to response, by route", lat, (int)(sizeof lat / sizeof *lat)));
    HS_TRY(hs_metrics_define(m, "histops_queue_depth", HS_METRIC_GAUGE, "Jobs waiting for the model runner", NULL, 0));
    HS_TRY(hs_metrics_define(m, "histops_queue_capacity", HS_METRIC_GAUGE, "Capacity of the job queue", NULL, 0));
    HS_TRY(hs_metrics_define(m, "histops_input_images_total", HS_METRIC_COUNTER, "Images received on model routes", NULL, 0));
    HS_TRY(hs_metrics_define(m, "histops_input_intensity", HS_METRIC_HISTOGRAM,
                             "Per-image mean intensity of each RGB channel in [0,1]", inten, (int)(sizeof inten / sizeof *inten)));
    HS_TRY(hs_metrics_define(m, "histops_input_stain_od", HS_METRIC_HISTOGRAM,
                             "Per-image mean optical density of each stain (Ruifrok-Johnston HED)", od, (int)(sizeof od / sizeof *od)));
    HS_TRY(hs_metrics_define(m, "histops_predictions_total", HS_METRIC_COUNTER, "Predictions by class", NULL, 0));
    HS_TRY(hs_metrics_define(m, "histops_batch_size", HS_METRIC_HISTOGRAM, "Images per model batch", batch,
                             (int)(sizeof batch / sizeof *batch)));
    HS_TRY(hs_metrics_define(m, "histops_inference_seconds", HS_METRIC_HISTOGRAM, "Model time per batch", lat,
                             (int)(sizeof lat / sizeof *lat)));
    HS_TRY(hs_metrics_define(m, "histops_model_info", HS_METRIC_GAUGE, "The served model (value 1)", NULL, 0));
    HS_TRY(hs_metrics_define(m, "histops_model_reloads_total", HS_METRIC_COUNTER, "Model version changes", NULL, 0));
    HS_TRY(hs_metrics_add(m, "histops_model_reloads_total", "", 0));
    HS_TRY(hs_metrics_add(m, "histops_input_images_total", "", 0));
    HS_TRY(hs_metrics_set(m, "histops_queue_depth", "", 0));
    return HS_OK;
}

hs_status hs_httpd_start(hs_httpd **out, const hs_httpd_opts *o) {
    *out = NULL;
    hs_httpd_opts d;
    hs_httpd_default_opts(&d);
    if (!o)
        o = &d;
    if (o->port < 0 || o->port > 65535)
        return HS_FAIL(HS_ERR_ARG, "httpd: port %d out of range", o->port);
    if (o->max_images < 1 || o->max_images > HS_HTTPD_MAX_IMAGES || o->queue_capacity < 1 ||
        o->max_connections < 1 || o->max_body < 1 || o->request_timeout_ms < 1 || o->idle_timeout_s < 1 ||
        o->max_pixels < 1 || o->max_pixels > HS_IMAGE_MAX_PIXELS)
        return HS_FAIL(HS_ERR_ARG, "httpd: max_images (1..%d), max_pixels (1..%lld), queue_capacity, max_connections, "
                                   "max_body and timeouts must be positive", HS_HTTPD_MAX_IMAGES,
                       (long long)HS_IMAGE_MAX_PIXELS);
    const char *host = o->host && o->host[0] ? o->host : "127.0.0.1";
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof a4);
    memset(&a6, 0, sizeof a6);
    int v6 = 0;
    if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)o->port);
    } else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)o->port);
        v6 = 1;
    } else if (strcmp(host, "localhost") == 0) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)o->port);
        a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        return HS_FAIL(HS_ERR_ARG, "httpd: host must be an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1), got '%s'", host);
    }
    hs_httpd *s = hs_calloc(1, sizeof *s);
    if (!s)
        return HS_FAIL(HS_ERR_NOMEM, "httpd: out of memory");
    s->o = *o;
    snprintf(s->host, sizeof s->host, "%s", host);
    s->o.host = s->host;
    s->o.log_path = NULL;
    s->refs = 1;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_queue, &ca);
    pthread_cond_init(&s->cv_done, &ca);
    pthread_condattr_destroy(&ca);
    hs_status st = hs_metrics_new(&s->metrics);
    if (st == HS_OK)
        st = define_metrics(s->metrics);
    if (st == HS_OK)
        st = hs_metrics_set(s->metrics, "histops_queue_capacity", "", o->queue_capacity);
    if (st == HS_OK && o->log_path && o->log_path[0])
        st = hs_reqlog_open(&s->log, o->log_path, o->log_max_bytes, o->log_keep);
    if (st != HS_OK) {
        server_destroy(s);
        return st;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     (v6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *dmn = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR,
        v6 ? (struct sockaddr *)&a6 : (struct sockaddr *)&a4, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->idle_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
    if (!dmn) {
        int e = errno;
        server_destroy(s);
        return HS_FAIL(HS_ERR_IO, "httpd: cannot listen on %s port %d: %s", host, o->port,
                       e ? strerror(e) : "libmicrohttpd refused to start");
    }
    s->daemon = dmn;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(dmn, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? (int)info->port : o->port;
    *out = s;
    return HS_OK;
}

void hs_httpd_stop(hs_httpd *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    s->draining = 1;
    pthread_cond_broadcast(&s->cv_queue);
    pthread_cond_broadcast(&s->cv_done);  // waiting request threads answer 503 and leave
    pthread_mutex_unlock(&s->mu);
    // let them send those answers before the connections are closed (at most ~2 s)
    for (int i = 0; i < 400 && hs_httpd_pending(s) > 0; i++) {
        struct timespec ts = {0, 5000000L};
        nanosleep(&ts, NULL);
    }
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    pthread_mutex_lock(&s->mu);
    server_unref_unlock(s);  // freed now, or when the last held job is answered
}

#else  // !HS_HAVE_MHD

int hs_httpd_available(void) {
    return 0;
}

hs_status hs_httpd_start(hs_httpd **out, const hs_httpd_opts *o) {
    (void)o;
    *out = NULL;
    return HS_FAIL(HS_ERR_UNSUPPORTED, "httpd: histops was built without libmicrohttpd (define HS_HAVE_MHD and "
                                       "link libmicrohttpd)");
}

void hs_httpd_stop(hs_httpd *s) {
    (void)s;
}

#endif
