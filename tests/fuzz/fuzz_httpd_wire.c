// tests/fuzz/fuzz_httpd_wire.c: libFuzzer target for the HTTP side of `histops serve` as a
// client sees it: a real server (hs_httpd_start on 127.0.0.1, an ephemeral port, request log
// with rotation, a runner thread answering every job) receives each input as raw bytes on a
// fresh TCP connection. Covers routing, methods, query parameters, headers, Content-Length
// limits, body accumulation, decoding, queueing and the request log. The connection is
// half-closed after sending and the answer read with a deadline, so one execution is bounded.
// Not the body decoder alone (fuzz_httpd.c is faster for that).
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "fuzz.h"
#include "httpd.h"

#define DEADLINE_MS 3000

static hs_httpd *srv;
static int srv_port;

static void *runner(void *arg) {
    (void)arg;
    for (;;) {
        hs_httpd_job *jobs[4];
        int n = 0;
        if (hs_httpd_pop(srv, jobs, 4, &n, 100, 0) != HS_OK)
            continue;
        for (int i = 0; i < n; i++) {
            hs_httpd_job *j = jobs[i];
            char body[512];
            int k = hs_httpd_job_count(j);
            const char *fmt = hs_httpd_job_param(j, "format");
            int len = snprintf(body, sizeof body, "{\"route\":%d,\"images\":%d,\"format\":%d,\"accept\":%zu,\"id\":\"%s\"}",
                               (int)hs_httpd_job_route(j), k, fmt != NULL, strlen(hs_httpd_job_accept(j)),
                               hs_httpd_job_id(j));
            for (int m = 0; m < k; m++) {
                FUZZ_CHECK(hs_httpd_job_stats(j, m) != NULL && hs_httpd_job_filename(j, m) != NULL, "job %d", m);
                hs_tensor_free(hs_httpd_job_take_image(j, m));
            }
            (void)hs_httpd_job_queue_seconds(j);
            hs_httpd_job_respond(j, 200, "application/json", body, (size_t)len, "\"fuzz\":true", "");
        }
    }
    return NULL;
}

static void start_server(void) {
    hs_httpd_opts o;
    hs_httpd_default_opts(&o);
    o.port = 0;
    o.max_body = 1 << 20;
    o.max_images = 4;
    o.queue_capacity = 8;
    o.max_connections = 16;
    o.idle_timeout_s = 2;
    o.request_timeout_ms = 2000;
    o.log_path = "fuzz_httpd_wire.log";  // in the working folder (scripts/fuzz: a temporary one)
    o.log_max_bytes = 1 << 20;
    o.log_keep = 1;
    FUZZ_CHECK(hs_httpd_start(&srv, &o) == HS_OK, "cannot start the server: %s", hs_last_error()->msg);
    srv_port = hs_httpd_port(srv);
    FUZZ_CHECK(hs_httpd_set_model(srv, "fuzz", "1", "{\"models\":[{\"name\":\"fuzz\"}]}") == HS_OK, "set_model");
    pthread_t t;
    FUZZ_CHECK(pthread_create(&t, NULL, runner, NULL) == 0, "runner thread");
    pthread_detach(t);
}

static long ms_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)((t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000);
}

// first bytes of the answer (the status line)
static void keep_head(char *head, size_t *got, const char *buf, size_t n) {
    size_t k = 16 - *got < n ? 16 - *got : n;
    memcpy(head + *got, buf, k);
    *got += k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!srv)
        start_server();
    if (fuzz_declares_big_image(data, size))
        return 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)srv_port);
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        // a signal (libFuzzer's timers) may interrupt connect; the connection then completes
        // asynchronously: wait for it
        FUZZ_CHECK(errno == EINTR, "connect: %s", strerror(errno));
        struct pollfd p = {fd, POLLOUT, 0};
        int err = 0;
        socklen_t el = sizeof err;
        while (poll(&p, 1, DEADLINE_MS) < 0 && errno == EINTR)
            ;
        FUZZ_CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0, "connect: %s", strerror(err));
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t off = 0, got = 0;
    char buf[4096], head[16];
    int closed = 0;
    // send everything (the server may answer, e.g. 413, and close before reading it all)
    while (off < size && !closed) {
        struct pollfd p = {fd, POLLOUT | POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {  // (EINTR: the loop polls again)
            if (p.revents & POLLIN) {
                ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
                    closed = 1;
                else
                    keep_head(head, &got, buf, (size_t)r);
            }
            if (!closed && (p.revents & POLLOUT)) {
                ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0 && errno != EAGAIN && errno != EINTR)
                    closed = 1;
                else if (w > 0)
                    off += (size_t)w;
            }
            if (p.revents & (POLLERR | POLLHUP))
                closed = 1;
        }
        FUZZ_CHECK(ms_since(&t0) < DEADLINE_MS, "server did not take %zu bytes within %d ms", size, DEADLINE_MS);
    }
    shutdown(fd, SHUT_WR);
    // read until the server closes; a server that neither answers nor closes is a hang
    while (!closed) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 100);
        if (r > 0) {
            ssize_t k = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (k < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (k <= 0)
                break;
            keep_head(head, &got, buf, (size_t)k);
        }
        FUZZ_CHECK(ms_since(&t0) < DEADLINE_MS, "no answer and no close within %d ms", DEADLINE_MS);
    }
    close(fd);
    // whatever came back is HTTP, and never a 500 (only out-of-memory answers 500)
    if (getenv("HS_FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz_httpd_wire: %zu bytes sent, answer %.12s\n", off, got ? head : "(none)");
    if (got > 0) {
        FUZZ_CHECK(got >= 12 && memcmp(head, "HTTP/1.", 7) == 0, "answer is not HTTP: %.*s", (int)got, head);
        FUZZ_CHECK(memcmp(head + 9, "500", 3) != 0, "server answered 500");
    }
    return 0;
}
