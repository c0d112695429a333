// core/httpd.h: the HTTP/1.1 side of the inference service (libmicrohttpd, one thread per
// connection): routing, request validation and size limits, image decoding and input
// statistics, a bounded job queue handed to the (single-threaded) model runner, health,
// readiness, /v1/models and /metrics answered directly, a JSON-lines request log; plus a
// minimal blocking HTTP client and a keep-alive load generator for tests and `histops loadtest`.
// Not the model: the runner pops jobs (hs_httpd_pop), computes, and answers each one
// (hs_httpd_job_respond). The core never prints; errors are hs_status.
//
// Built with libmicrohttpd only when HS_HAVE_MHD is defined (CMake links libmicrohttpd);
// otherwise hs_httpd_start returns HS_ERR_UNSUPPORTED and everything else still works.
//
// Routes answered in C: GET /healthz (200 while the process serves), GET /readyz (200 once a
// model is set and until draining starts, else 503), GET /v1/models (the JSON given to
// hs_httpd_set_model), GET /metrics (metrics.h, HS_METRICS_CONTENT_TYPE). Queued for the
// runner: POST /v1/predict, /v1/segment, /v1/ihc with a body of image/png, image/jpeg,
// application/octet-stream (sniffed) or multipart/form-data (one image per part). Errors are
// JSON {"error": "...", "status": N}: 400 undecodable image, 404 unknown route, 405 wrong
// method, 413 body over max_body or too many images, 415 other content type, 503 queue full
// or draining, 504 no answer within request_timeout_ms.
#ifndef HS_HTTPD_H
#define HS_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "status.h"
#include "tensor.h"

#define HS_HTTPD_MAX_IMAGES 64   // hard ceiling on images per request
#define HS_HTTPD_DEFAULT_MAX_PIXELS ((int64_t)1 << 25)  // per image: 33.5 MP, e.g. 5792x5792
#define HS_HTTPD_MAX_PARAMS 8    // query parameters kept per job

typedef struct hs_httpd hs_httpd;
typedef struct hs_httpd_job hs_httpd_job;

typedef enum { HS_HTTPD_ROUTE_PREDICT = 0, HS_HTTPD_ROUTE_SEGMENT, HS_HTTPD_ROUTE_IHC } hs_httpd_route;

typedef struct {
    const char *host;            // bind address (IPv4 or IPv6 literal), default "127.0.0.1"
    int port;                    // 0: an ephemeral port (see hs_httpd_port)
    size_t max_body;             // bytes per request body, default 16 MiB
    int max_images;              // per request, 1..HS_HTTPD_MAX_IMAGES, default 16
    int64_t max_pixels;          // per image (from its header, before decoding: 413 above it),
                                 // default HS_HTTPD_DEFAULT_MAX_PIXELS
    int queue_capacity;          // jobs waiting for the runner, default 64
    int max_connections;         // concurrent connections (= threads), default 128
    int idle_timeout_s;          // idle keep-alive connections are closed after this, default 30
    int request_timeout_ms;      // a queued request waits this long for its answer, default 30000
    const char *log_path;        // JSON-lines request log; NULL or "" for none
    uint64_t log_max_bytes;      // rotation threshold, default 10 MiB
    int log_keep;                // rotated files kept, default 5
} hs_httpd_opts;

// Per-image input statistics: means over pixels of each RGB channel scaled to [0,1]
// (gray images repeat their one channel, alpha is ignored) and of the Ruifrok-Johnston
// optical densities (hs_stain_rgb2hed: hematoxylin, eosin, DAB). Images over 2^18 pixels are
// subsampled on a regular grid (every s-th row and column, s = ceil(sqrt(H*W / 2^18))).
typedef struct {
    int64_t height, width;
    int channels;
    double intensity[3];
    double od[3];
} hs_httpd_input_stats;

void hs_httpd_default_opts(hs_httpd_opts *o);
// 1 when built with libmicrohttpd (hs_httpd_start can work), else 0.
int hs_httpd_available(void);

// Start listening (threads run until hs_httpd_stop). HS_ERR_ARG for bad options, HS_ERR_IO
// when the address cannot be bound or the log opened, HS_ERR_UNSUPPORTED without libmicrohttpd.
hs_status hs_httpd_start(hs_httpd **out, const hs_httpd_opts *o);
// The bound port (useful with port 0).
int hs_httpd_port(const hs_httpd *s);
// Publish the served model: name/version go to the request log and the histops_model_info
// gauge; models_json (a JSON document) is the body of GET /v1/models. The first call makes
// /readyz return 200; a call with a different version counts a reload. Thread-safe.
hs_status hs_httpd_set_model(hs_httpd *s, const char *name, const char *version, const char *models_json);
// Stop taking new work: requests that arrive from now on get 503 (and /readyz 503); requests
// already being received or queued are still served. Idempotent.
void hs_httpd_drain(hs_httpd *s);
// Requests accepted and not yet answered (being uploaded, queued, or held by the runner).
int hs_httpd_pending(hs_httpd *s);
// The server's metric registry (owned by the server; add runner-side series to it).
hs_metrics *hs_httpd_metrics(hs_httpd *s);

// Wait up to wait_ms for a first job, then up to window_ms more for others (batching what
// arrives together), returning as soon as max jobs are taken. jobs[0..*n-1] now belong to the
// caller until answered with hs_httpd_job_respond. *n == 0 on timeout.
hs_status hs_httpd_pop(hs_httpd *s, hs_httpd_job **jobs, int max, int *n, int wait_ms, int window_ms);

// Stop: answer every queued or held job 503, close connections, join the threads, close the
// log and free the server. NULL is a no-op. Jobs still held by the runner stay valid until
// they are answered (their answer is then discarded).
void hs_httpd_stop(hs_httpd *s);

// ---- jobs (valid from hs_httpd_pop until hs_httpd_job_respond) ----
hs_httpd_route hs_httpd_job_route(const hs_httpd_job *j);
int hs_httpd_job_count(const hs_httpd_job *j);       // images, >= 1
// Take ownership of image i ((H,W,C) U8 or U16 as decoded); later calls return NULL.
hs_tensor *hs_httpd_job_take_image(hs_httpd_job *j, int i);
const hs_httpd_input_stats *hs_httpd_job_stats(const hs_httpd_job *j, int i);
const char *hs_httpd_job_filename(const hs_httpd_job *j, int i);   // multipart filename or ""
// A query parameter of the request URL (NULL when absent), e.g. "format" in ?format=json.
const char *hs_httpd_job_param(const hs_httpd_job *j, const char *key);
const char *hs_httpd_job_accept(const hs_httpd_job *j);          // Accept header or ""
const char *hs_httpd_job_id(const hs_httpd_job *j);              // request id (hex)
double hs_httpd_job_queue_seconds(const hs_httpd_job *j);        // enqueue -> pop
// Answer the job (body copied) and give it back: the caller must not use j afterwards.
// log_fields: "" or JSON members without braces ("\"prediction\":{...}") appended to the
// request's log line. extra_header: "" or one "Name: value" header. The answer of a job whose
// client already gave up (timeout, shutdown) is discarded; that is not an error.
hs_status hs_httpd_job_respond(hs_httpd_job *j, int status, const char *content_type, const void *body, size_t n,
                               const char *log_fields, const char *extra_header);

// ---- request bodies (used by the server; public for tests) ----
// Decode the images of a request body. content_type as sent (parameters allowed). imgs[0..*n-1]
// are new tensors the caller frees (nothing is left allocated on failure); names (may be NULL)
// receive multipart filenames (up to 127 bytes, "" when absent). HS_ERR_UNSUPPORTED: content
// type not accepted; HS_ERR_FORMAT: malformed multipart or undecodable image; HS_ERR_ARG: no
// image or more than max.
// Images whose header declares more than HS_HTTPD_DEFAULT_MAX_PIXELS pixels are refused before
// anything is allocated for them (HS_ERR_ARG "... exceeds the limit ..."): a few kilobytes of
// compressed zeros can otherwise declare gigabytes. _limited takes the limit (>= 1).
hs_status hs_httpd_decode_body(hs_tensor **imgs, char (*names)[128], int *n, int max, const char *content_type,
                               const void *body, size_t len);
hs_status hs_httpd_decode_body_limited(hs_tensor **imgs, char (*names)[128], int *n, int max, int64_t max_pixels,
                                       const char *content_type, const void *body, size_t len);
hs_status hs_httpd_input_stats_compute(hs_httpd_input_stats *st, const hs_tensor *img);

// ---- client side (tests and load generation; plain blocking sockets) ----
typedef struct {
    int status;                 // HTTP status code
    char content_type[128];
    char *body;                 // hs_alloc'd, NUL-terminated; free with hs_httpd_response_free
    size_t n;
} hs_httpd_response;
void hs_httpd_response_free(hs_httpd_response *r);
// One request on a fresh connection (Connection: close). headers: "" or "Name: v\r\n..." lines.
// HS_ERR_IO when the connection fails or times out (timeout_ms for each send/receive).
hs_status hs_httpd_fetch(hs_httpd_response *r, const char *host, int port, const char *method, const char *path,
                         const char *headers, const void *body, size_t n, int timeout_ms);

typedef struct {
    int64_t ok, http_errors, failures;   // 2xx answers, other statuses, connection failures
    double wall_seconds;
} hs_httpd_load_result;
// `requests` POSTs of body to path over `connections` keep-alive connections (one thread
// each); latencies[i] (seconds, caller-allocated, `requests` entries) in completion order,
// failures included as NaN. HS_ERR_ARG for bad counts.
hs_status hs_httpd_loadtest(hs_httpd_load_result *res, double *latencies, const char *host, int port,
                            const char *path, const char *content_type, const void *body, size_t n,
                            int connections, int64_t requests, int timeout_ms);

#endif
