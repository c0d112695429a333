// tests/test_httpd.c: the serving core without a model: the metrics registry and its
// exposition text, label escaping, request-log rotation, request-body parsing limits
// (content types, multipart, truncated images, image count), input statistics, and, when built
// with libmicrohttpd, a live server on an ephemeral loopback port: routes, 4xx errors, the
// bounded queue (503 when full), job round trips, timeouts (504), draining and stop.
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "hs_test.h"
#include "httpd.h"
#include "jpeg_io.h"
#include "metrics.h"
#include "png_io.h"
#include "reqlog.h"

static char *tmpdir(void) {
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/hs_httpd_XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char *dir) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static hs_tensor *test_image(int64_t h, int64_t w, uint8_t base) {
    int64_t shape[3] = {h, w, 3};
    hs_tensor *t = NULL;
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_U8, 3, shape), HS_OK);
    uint8_t *p = t->data;
    for (int64_t i = 0; i < h * w * 3; i++)
        p[i] = (uint8_t)(base + (i % 3) * 20 + (i / 3) % 7);
    return t;
}

static void *png_bytes(size_t *n, int64_t h, int64_t w, uint8_t base) {
    hs_tensor *t = test_image(h, w, base);
    void *buf = NULL;
    assert_int_equal(hs_png_encode(&buf, n, t, -1), HS_OK);
    hs_tensor_free(t);
    return buf;
}

// ---------------------------------------------------------------- metrics

static void test_metrics_render_exposition_format_with_cumulative_buckets(void **state) {
    (void)state;
    hs_metrics *m = NULL;
    assert_int_equal(hs_metrics_new(&m), HS_OK);
    double b[3] = {0.1, 0.5, 1};
    assert_int_equal(hs_metrics_define(m, "req_total", HS_METRIC_COUNTER, "Requests", NULL, 0), HS_OK);
    assert_int_equal(hs_metrics_define(m, "lat_seconds", HS_METRIC_HISTOGRAM, "Latency", b, 3), HS_OK);
    assert_int_equal(hs_metrics_define(m, "depth", HS_METRIC_GAUGE, "Depth\nof queue", NULL, 0), HS_OK);
    assert_int_equal(hs_metrics_add(m, "req_total", "route=\"/a\"", 2), HS_OK);
    assert_int_equal(hs_metrics_add(m, "req_total", "route=\"/a\"", 1), HS_OK);
    assert_int_equal(hs_metrics_observe(m, "lat_seconds", "", 0.05), HS_OK);
    assert_int_equal(hs_metrics_observe(m, "lat_seconds", "", 0.7), HS_OK);
    assert_int_equal(hs_metrics_observe(m, "lat_seconds", "", 3.0), HS_OK);
    assert_int_equal(hs_metrics_set(m, "depth", "", 4.5), HS_OK);
    char *text = NULL;
    size_t n = 0;
    assert_int_equal(hs_metrics_render(m, &text, &n), HS_OK);
    assert_int_equal(strlen(text), n);
    assert_non_null(strstr(text, "# HELP req_total Requests\n# TYPE req_total counter\nreq_total{route=\"/a\"} 3\n"));
    assert_non_null(strstr(text, "# TYPE lat_seconds histogram\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.1\"} 1\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"0.5\"} 1\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"1\"} 2\n"));
    assert_non_null(strstr(text, "lat_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "lat_seconds_sum 3.75\n"));
    assert_non_null(strstr(text, "lat_seconds_count 3\n"));
    assert_non_null(strstr(text, "# HELP depth Depth\\nof queue\n"));
    assert_non_null(strstr(text, "depth 4.5\n"));
    assert_int_equal(text[n - 1], '\n');
    hs_free(text);
    double v;
    assert_int_equal(hs_metrics_get(m, "lat_seconds", "", &v), HS_OK);
    assert_true(v == 3);
    hs_metrics_free(m);
}

static void test_metrics_reject_bad_names_types_and_decreasing_counters(void **state) {
    (void)state;
    hs_metrics *m = NULL;
    assert_int_equal(hs_metrics_new(&m), HS_OK);
    double bad[2] = {1, 0.5};
    assert_int_equal(hs_metrics_define(m, "9bad", HS_METRIC_COUNTER, "", NULL, 0), HS_ERR_ARG);
    assert_int_equal(hs_metrics_define(m, "h", HS_METRIC_HISTOGRAM, "", bad, 2), HS_ERR_ARG);
    assert_int_equal(hs_metrics_define(m, "c", HS_METRIC_COUNTER, "", NULL, 0), HS_OK);
    assert_int_equal(hs_metrics_define(m, "c", HS_METRIC_COUNTER, "", NULL, 0), HS_OK);
    assert_int_equal(hs_metrics_define(m, "c", HS_METRIC_GAUGE, "", NULL, 0), HS_ERR_ARG);
    assert_int_equal(hs_metrics_add(m, "c", "", -1), HS_ERR_ARG);
    assert_int_equal(hs_metrics_set(m, "c", "", 1), HS_ERR_ARG);
    assert_int_equal(hs_metrics_observe(m, "c", "", 1), HS_ERR_ARG);
    assert_int_equal(hs_metrics_add(m, "undefined", "", 1), HS_ERR_ARG);
    hs_metrics_free(m);
    hs_metrics_free(NULL);
}

static void test_metrics_labels_escape_quotes_backslashes_and_newlines(void **state) {
    (void)state;
    char buf[128];
    const char *kv[4] = {"class", "a\"b\\c\nd", "v", "1"};
    assert_int_equal(hs_metrics_labels(buf, sizeof buf, kv, 2), HS_OK);
    assert_string_equal(buf, "class=\"a\\\"b\\\\c\\nd\",v=\"1\"");
    const char *badk[2] = {"bad-name", "x"};
    assert_int_equal(hs_metrics_labels(buf, sizeof buf, badk, 1), HS_ERR_ARG);
    char tiny[8];
    assert_int_equal(hs_metrics_labels(tiny, sizeof tiny, kv, 2), HS_ERR_ARG);
}

typedef struct {
    hs_metrics *m;
} counter_ctx;

static void *count_many(void *arg) {
    counter_ctx *c = arg;
    for (int i = 0; i < 10000; i++)
        hs_metrics_add(c->m, "n", "", 1);
    return NULL;
}

static void test_metrics_counters_are_exact_under_concurrent_updates(void **state) {
    (void)state;
    hs_metrics *m = NULL;
    assert_int_equal(hs_metrics_new(&m), HS_OK);
    assert_int_equal(hs_metrics_define(m, "n", HS_METRIC_COUNTER, "", NULL, 0), HS_OK);
    counter_ctx c = {m};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, count_many, &c);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    double v;
    assert_int_equal(hs_metrics_get(m, "n", "", &v), HS_OK);
    assert_true(v == 40000);
    hs_metrics_free(m);
}

// ---------------------------------------------------------------- request log

static int64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static void test_reqlog_rotates_by_size_and_keeps_n_files(void **state) {
    (void)state;
    char *dir = tmpdir(), path[128], p1[140], p2[140], p3[140];
    snprintf(path, sizeof path, "%s/req.jsonl", dir);
    snprintf(p1, sizeof p1, "%s.1", path);
    snprintf(p2, sizeof p2, "%s.2", path);
    snprintf(p3, sizeof p3, "%s.3", path);
    hs_reqlog *log = NULL;
    assert_int_equal(hs_reqlog_open(&log, path, 100, 2), HS_OK);
    const char *line = "{\"route\":\"/v1/predict\",\"status\":200}";  // 36 bytes + newline
    for (int i = 0; i < 10; i++)
        assert_int_equal(hs_reqlog_write(log, line, strlen(line)), HS_OK);
    // 2 lines (74 bytes) per file: 10 lines -> 4 rotations, 2 kept
    assert_int_equal(hs_reqlog_rotations(log), 4);
    assert_int_equal(file_size(path), 74);
    assert_int_equal(file_size(p1), 74);
    assert_int_equal(file_size(p2), 74);
    assert_int_equal(file_size(p3), -1);
    assert_int_equal(hs_reqlog_write(log, "a\nb", 3), HS_ERR_ARG);
    hs_reqlog_free(log);
    // reopening appends and continues counting from the file size
    assert_int_equal(hs_reqlog_open(&log, path, 100, 2), HS_OK);
    assert_int_equal(hs_reqlog_write(log, line, strlen(line)), HS_OK);
    assert_int_equal(hs_reqlog_rotations(log), 1);
    hs_reqlog_free(log);
    hs_reqlog_free(NULL);
    assert_int_equal(hs_reqlog_open(&log, "/nonexistent/dir/x.log", 0, 1), HS_ERR_IO);
    assert_null(log);
    rm_rf(dir);
}

// ---------------------------------------------------------------- bodies and statistics

static void test_decode_body_accepts_png_and_rejects_other_content_types(void **state) {
    (void)state;
    size_t n;
    void *png = png_bytes(&n, 8, 6, 10);
    hs_tensor *imgs[4];
    int k = -1;
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 4, "image/png", png, n), HS_OK);
    assert_int_equal(k, 1);
    assert_int_equal(imgs[0]->shape[0], 8);
    assert_int_equal(imgs[0]->shape[1], 6);
    hs_tensor_free(imgs[0]);
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 4, "application/octet-stream", png, n), HS_OK);
    hs_tensor_free(imgs[0]);
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 4, "text/plain", png, n), HS_ERR_UNSUPPORTED);
    assert_int_equal(k, 0);
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 4, "image/png", "garbage", 7), HS_ERR_FORMAT);
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 4, "image/png", png, n / 2), HS_ERR_FORMAT);
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 4, "image/png", png, 0), HS_ERR_ARG);
    hs_free(png);
}

// A few kilobytes of compressed zeros can declare gigabytes of pixels: the server refuses an image
// whose header is over its per-image pixel limit before decoding it (PNG IHDR, JPEG SOF).
static void test_decode_body_refuses_images_over_the_pixel_limit_before_decoding(void **state) {
    (void)state;
    size_t n, nj;
    void *png = png_bytes(&n, 8, 6, 10);   // 48 pixels
    hs_tensor *imgs[4], *t = test_image(8, 6, 10);
    void *jpg = NULL;
    assert_int_equal(hs_jpeg_encode(&jpg, &nj, t, 90), HS_OK);
    hs_tensor_free(t);
    int k = -1;
    assert_int_equal(hs_httpd_decode_body_limited(imgs, NULL, &k, 4, 47, "image/png", png, n), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "48 pixels exceeds the limit of 47"));
    assert_int_equal(k, 0);
    assert_int_equal(hs_httpd_decode_body_limited(imgs, NULL, &k, 4, 47, "image/jpeg", jpg, nj), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "exceeds the limit"));
    assert_int_equal(hs_httpd_decode_body_limited(imgs, NULL, &k, 4, 48, "image/png", png, n), HS_OK);
    assert_int_equal(k, 1);
    hs_tensor_free(imgs[0]);
    assert_int_equal(hs_httpd_decode_body_limited(imgs, NULL, &k, 4, 48, "image/jpeg", jpg, nj), HS_OK);
    hs_tensor_free(imgs[0]);
    // a PNG header claiming 100000 x 100000 pixels (its CRC need not even be right)
    unsigned char *big = hs_alloc(n);
    memcpy(big, png, n);
    const unsigned char dim[4] = {0x00, 0x01, 0x86, 0xa0};   // 100000, big-endian
    memcpy(big + 16, dim, 4);
    memcpy(big + 20, dim, 4);
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 4, "image/png", big, n), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "10000000000 pixels exceeds the limit"));
    hs_free(big);
    hs_free(jpg);
    hs_free(png);
}

static size_t build_multipart(char *out, size_t cap, const char *boundary, void **parts, size_t *sizes, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(out + len, cap - len,
                                "--%s\r\nContent-Disposition: form-data; name=\"f%d\"; filename=\"img%d.png\"\r\n"
                                "Content-Type: image/png\r\n\r\n",
                                boundary, i, i);
        memcpy(out + len, parts[i], sizes[i]);
        len += sizes[i];
        len += (size_t)snprintf(out + len, cap - len, "\r\n");
    }
    len += (size_t)snprintf(out + len, cap - len, "--%s--\r\n", boundary);
    return len;
}

static void test_decode_body_splits_multipart_and_enforces_the_image_limit(void **state) {
    (void)state;
    void *parts[3];
    size_t sizes[3];
    for (int i = 0; i < 3; i++)
        parts[i] = png_bytes(&sizes[i], 4 + i, 5, (uint8_t)(30 * i));
    char *body = hs_alloc(65536);
    size_t len = build_multipart(body, 65536, "XyZ123", parts, sizes, 3);
    hs_tensor *imgs[8];
    char names[8][128];
    int k = 0;
    assert_int_equal(hs_httpd_decode_body(imgs, names, &k, 8, "multipart/form-data; boundary=XyZ123", body, len), HS_OK);
    assert_int_equal(k, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(imgs[i]->shape[0], 4 + i);
        char want[16];
        snprintf(want, sizeof want, "img%d.png", i);
        assert_string_equal(names[i], want);
        hs_tensor_free(imgs[i]);
    }
    // quoted boundary
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 8, "multipart/form-data; boundary=\"XyZ123\"", body, len), HS_OK);
    for (int i = 0; i < k; i++)
        hs_tensor_free(imgs[i]);
    // too many images, missing boundary, truncated body: nothing leaks (ASan checks)
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 2, "multipart/form-data; boundary=XyZ123", body, len), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "too many"));
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 8, "multipart/form-data", body, len), HS_ERR_FORMAT);
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 8, "multipart/form-data; boundary=XyZ123", body, len / 2), HS_ERR_FORMAT);
    assert_int_equal(hs_httpd_decode_body(imgs, NULL, &k, 8, "multipart/form-data; boundary=other", body, len), HS_ERR_FORMAT);
    hs_free(body);
    for (int i = 0; i < 3; i++)
        hs_free(parts[i]);
}

static void test_input_stats_match_a_hand_computed_gray_image(void **state) {
    (void)state;
    int64_t shape[3] = {4, 4, 1};
    hs_tensor *g = NULL;
    assert_int_equal(hs_tensor_new(&g, HS_DTYPE_U8, 3, shape), HS_OK);
    memset(g->data, 255, 16);  // white: intensity 1, optical density 0
    hs_httpd_input_stats st;
    assert_int_equal(hs_httpd_input_stats_compute(&st, g), HS_OK);
    for (int c = 0; c < 3; c++) {
        assert_true(fabs(st.intensity[c] - 1.0) < 1e-12);
        assert_true(fabs(st.od[c]) < 1e-6);
    }
    assert_int_equal(st.channels, 1);
    memset(g->data, 51, 16);
    assert_int_equal(hs_httpd_input_stats_compute(&st, g), HS_OK);
    assert_true(fabs(st.intensity[0] - 0.2) < 1e-12);
    assert_true(st.od[0] > 0.01);  // darker: hematoxylin density grows
    hs_tensor_free(g);
    // a large image is subsampled but stays close to the full mean of a smooth image
    hs_tensor *big = test_image(1200, 1000, 40);
    assert_int_equal(hs_httpd_input_stats_compute(&st, big), HS_OK);
    assert_int_equal(st.height, 1200);
    assert_true(st.intensity[0] > 0.1 && st.intensity[0] < 0.3);
    hs_tensor_free(big);
}

// ---------------------------------------------------------------- live server

typedef struct {
    int port;
    const char *path, *ctype;
    const void *body;
    size_t n;
    hs_httpd_response r;
    hs_status st;
} call_ctx;

static void *call_thread(void *arg) {
    call_ctx *c = arg;
    char headers[128];
    snprintf(headers, sizeof headers, "Content-Type: %s\r\n", c->ctype);
    c->st = hs_httpd_fetch(&c->r, "127.0.0.1", c->port, "POST", c->path, headers, c->body, c->n, 10000);
    return NULL;
}

// Start n concurrent POSTs of the PNG body to /v1/predict on port, one thread each (c[i], th[i]);
// the caller joins them.
static void start_predict_calls(call_ctx *c, pthread_t *th, int n, int port, const void *png, size_t npng) {
    for (int i = 0; i < n; i++) {
        c[i] = (call_ctx){port, "/v1/predict", "image/png", png, npng, {0}, HS_OK};
        pthread_create(&th[i], NULL, call_thread, &c[i]);
    }
}

// The one job a single waiting request makes, popped as soon as it is queued (up to ~5 s).
static hs_httpd_job *pop_one_job(hs_httpd *s) {
    hs_httpd_job *jobs[1];
    int k = 0;
    for (int tries = 0; k == 0 && tries < 50; tries++)
        assert_int_equal(hs_httpd_pop(s, jobs, 1, &k, 100, 0), HS_OK);
    assert_int_equal(k, 1);
    return jobs[0];
}

static hs_httpd *start(int queue, int timeout_ms, const char *log) {
    hs_httpd_opts o;
    hs_httpd_default_opts(&o);
    o.port = 0;
    o.queue_capacity = queue;
    o.request_timeout_ms = timeout_ms;
    o.max_body = 64 * 1024;
    o.max_images = 2;
    o.log_path = log;
    hs_httpd *s = NULL;
    assert_int_equal(hs_httpd_start(&s, &o), HS_OK);
    assert_true(hs_httpd_port(s) > 0);
    return s;
}

static void get(hs_httpd_response *r, int port, const char *path) {
    assert_int_equal(hs_httpd_fetch(r, "127.0.0.1", port, "GET", path, "", NULL, 0, 5000), HS_OK);
}

static void test_server_answers_health_routes_and_4xx_with_json_errors(void **state) {
    (void)state;
    if (!hs_httpd_available())
        skip();
    char *dir = tmpdir(), log[128];
    snprintf(log, sizeof log, "%s/req.jsonl", dir);
    hs_httpd *s = start(4, 2000, log);
    int port = hs_httpd_port(s);
    hs_httpd_response r;
    get(&r, port, "/healthz");
    assert_int_equal(r.status, 200);
    hs_httpd_response_free(&r);
    get(&r, port, "/readyz");
    assert_int_equal(r.status, 503);  // no model yet
    hs_httpd_response_free(&r);
    assert_int_equal(hs_httpd_set_model(s, "m", "v1", "{\"models\":[]}"), HS_OK);
    get(&r, port, "/readyz");
    assert_int_equal(r.status, 200);
    hs_httpd_response_free(&r);
    get(&r, port, "/v1/models");
    assert_string_equal(r.body, "{\"models\":[]}");
    hs_httpd_response_free(&r);
    get(&r, port, "/nope");
    assert_int_equal(r.status, 404);
    assert_string_equal(r.content_type, "application/json");
    assert_non_null(strstr(r.body, "\"error\""));
    hs_httpd_response_free(&r);
    get(&r, port, "/v1/predict");
    assert_int_equal(r.status, 405);
    hs_httpd_response_free(&r);
    assert_int_equal(hs_httpd_fetch(&r, "127.0.0.1", port, "POST", "/v1/predict", "Content-Type: text/plain\r\n", "x", 1, 5000), HS_OK);
    assert_int_equal(r.status, 415);
    hs_httpd_response_free(&r);
    assert_int_equal(hs_httpd_fetch(&r, "127.0.0.1", port, "POST", "/v1/predict", "Content-Type: image/png\r\n", "garbage", 7, 5000), HS_OK);
    assert_int_equal(r.status, 400);
    hs_httpd_response_free(&r);
    char *big = hs_calloc(1, 100 * 1024);
    assert_int_equal(hs_httpd_fetch(&r, "127.0.0.1", port, "POST", "/v1/predict", "Content-Type: image/png\r\n", big, 100 * 1024, 5000), HS_OK);
    assert_int_equal(r.status, 413);
    hs_httpd_response_free(&r);
    hs_free(big);
    get(&r, port, "/metrics");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, HS_METRICS_CONTENT_TYPE);
    assert_non_null(strstr(r.body, "histops_http_requests_total{route=\"/v1/predict\",status=\"413\"} 1\n"));
    assert_non_null(strstr(r.body, "histops_model_info{name=\"m\",version=\"v1\"} 1\n"));
    hs_httpd_response_free(&r);
    hs_httpd_stop(s);
    // one JSON line per request
    char *text = NULL;
    size_t n = 0;
    FILE *f = fopen(log, "rb");
    assert_non_null(f);
    text = hs_alloc(65536);
    n = fread(text, 1, 65535, f);
    fclose(f);
    text[n] = 0;
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text[i] == '\n';
    assert_int_equal(lines, 10);
    assert_non_null(strstr(text, "\"route\":\"/v1/predict\",\"status\":413"));
    hs_free(text);
    rm_rf(dir);
}

static void test_server_job_round_trip_batches_concurrent_requests(void **state) {
    (void)state;
    if (!hs_httpd_available())
        skip();
    hs_httpd *s = start(8, 5000, NULL);
    assert_int_equal(hs_httpd_set_model(s, "m", "v1", "{}"), HS_OK);
    size_t n;
    void *png = png_bytes(&n, 6, 7, 90);
    call_ctx c[3];
    pthread_t th[3];
    start_predict_calls(c, th, 3, hs_httpd_port(s), png, n);
    // collect all three (a batch may span several pops)
    int got = 0;
    for (int tries = 0; got < 3 && tries < 100; tries++) {
        hs_httpd_job *jobs[8];
        int k = 0;
        assert_int_equal(hs_httpd_pop(s, jobs, 8, &k, 100, 20), HS_OK);
        for (int i = 0; i < k; i++) {
            assert_int_equal(hs_httpd_job_route(jobs[i]), HS_HTTPD_ROUTE_PREDICT);
            assert_int_equal(hs_httpd_job_count(jobs[i]), 1);
            hs_tensor *img = hs_httpd_job_take_image(jobs[i], 0);
            assert_non_null(img);
            assert_null(hs_httpd_job_take_image(jobs[i], 0));
            assert_int_equal(img->shape[1], 7);
            hs_tensor_free(img);
            const hs_httpd_input_stats *st = hs_httpd_job_stats(jobs[i], 0);
            assert_true(st->intensity[0] > 0.3);
            assert_int_equal(hs_httpd_job_respond(jobs[i], 200, "application/json", "{\"ok\":1}", 8, "\"p\":1", "X-Test: yes"), HS_OK);
        }
        got += k;
    }
    assert_int_equal(got, 3);
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].st, HS_OK);
        assert_int_equal(c[i].r.status, 200);
        assert_string_equal(c[i].r.body, "{\"ok\":1}");
        hs_httpd_response_free(&c[i].r);
    }
    assert_int_equal(hs_httpd_pending(s), 0);
    hs_free(png);
    hs_httpd_stop(s);
}

static void test_server_full_queue_answers_503_and_unanswered_jobs_time_out_504(void **state) {
    (void)state;
    if (!hs_httpd_available())
        skip();
    hs_httpd *s = start(2, 600, NULL);
    size_t n;
    void *png = png_bytes(&n, 5, 5, 10);
    call_ctx c[4];
    pthread_t th[4];
    start_predict_calls(c, th, 4, hs_httpd_port(s), png, n);
    int n503 = 0, n504 = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(c[i].st, HS_OK);
        n503 += c[i].r.status == 503;
        n504 += c[i].r.status == 504;
        hs_httpd_response_free(&c[i].r);
    }
    assert_int_equal(n503, 2);  // queue of 2, nobody popping
    assert_int_equal(n504, 2);
    // the server keeps serving afterwards
    hs_httpd_response r;
    get(&r, hs_httpd_port(s), "/healthz");
    assert_int_equal(r.status, 200);
    hs_httpd_response_free(&r);
    hs_free(png);
    hs_httpd_stop(s);
}

static void test_server_drain_refuses_new_work_but_answers_held_jobs(void **state) {
    (void)state;
    if (!hs_httpd_available())
        skip();
    hs_httpd *s = start(4, 5000, NULL);
    assert_int_equal(hs_httpd_set_model(s, "m", "v1", "{}"), HS_OK);
    size_t n;
    void *png = png_bytes(&n, 5, 5, 10);
    call_ctx c;
    pthread_t th;
    start_predict_calls(&c, &th, 1, hs_httpd_port(s), png, n);
    hs_httpd_job *job = pop_one_job(s);
    hs_httpd_drain(s);
    assert_int_equal(hs_httpd_pending(s), 1);
    hs_httpd_response r;
    get(&r, hs_httpd_port(s), "/readyz");
    assert_int_equal(r.status, 503);
    hs_httpd_response_free(&r);
    call_ctx c2 = {hs_httpd_port(s), "/v1/predict", "image/png", png, n, {0}, HS_OK};
    call_thread(&c2);
    assert_int_equal(c2.r.status, 503);
    hs_httpd_response_free(&c2.r);
    assert_int_equal(hs_httpd_job_respond(job, 200, "application/json", "{}", 2, "", ""), HS_OK);
    pthread_join(th, NULL);
    assert_int_equal(c.r.status, 200);
    hs_httpd_response_free(&c.r);
    assert_int_equal(hs_httpd_pending(s), 0);
    hs_free(png);
    hs_httpd_stop(s);
}

static void test_server_stop_with_a_held_job_frees_everything_after_its_answer(void **state) {
    (void)state;
    if (!hs_httpd_available())
        skip();
    hs_httpd *s = start(4, 5000, NULL);
    size_t n;
    void *png = png_bytes(&n, 5, 5, 10);
    call_ctx c;
    pthread_t th;
    start_predict_calls(&c, &th, 1, hs_httpd_port(s), png, n);
    hs_httpd_job *job = pop_one_job(s);
    hs_httpd_stop(s);  // the waiting client gets 503; the job stays valid
    pthread_join(th, NULL);
    assert_int_equal(c.r.status, 503);
    hs_httpd_response_free(&c.r);
    assert_int_equal(hs_httpd_job_respond(job, 200, "application/json", "{}", 2, "", ""), HS_OK);  // discarded
    hs_free(png);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_render_exposition_format_with_cumulative_buckets),
        cmocka_unit_test(test_metrics_reject_bad_names_types_and_decreasing_counters),
        cmocka_unit_test(test_metrics_labels_escape_quotes_backslashes_and_newlines),
        cmocka_unit_test(test_metrics_counters_are_exact_under_concurrent_updates),
        cmocka_unit_test(test_reqlog_rotates_by_size_and_keeps_n_files),
        cmocka_unit_test(test_decode_body_accepts_png_and_rejects_other_content_types),
        cmocka_unit_test(test_decode_body_refuses_images_over_the_pixel_limit_before_decoding),
        cmocka_unit_test(test_decode_body_splits_multipart_and_enforces_the_image_limit),
        cmocka_unit_test(test_input_stats_match_a_hand_computed_gray_image),
        cmocka_unit_test(test_server_answers_health_routes_and_4xx_with_json_errors),
        cmocka_unit_test(test_server_job_round_trip_batches_concurrent_requests),
        cmocka_unit_test(test_server_full_queue_answers_503_and_unanswered_jobs_time_out_504),
        cmocka_unit_test(test_server_drain_refuses_new_work_but_answers_held_jobs),
        cmocka_unit_test(test_server_stop_with_a_held_job_frees_everything_after_its_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
