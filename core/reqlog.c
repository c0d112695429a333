// core/reqlog.c: the rotating request log of reqlog.h. The current size is tracked in memory
// (initialised from fstat) rather than re-read per line; another process appending to the
// same file only makes rotation happen a little late, never loses lines.
#include "reqlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"

struct hs_reqlog {
    pthread_mutex_t mu;
    int fd;
    uint64_t size, max_bytes, rotations;
    int keep;
    char *path;
};

static hs_status open_fd(hs_reqlog *l) {
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (l->fd < 0)
        return HS_FAIL(HS_ERR_IO, "reqlog: cannot open %s: %s", l->path, strerror(errno));
    struct stat st;
    l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return HS_OK;
}

hs_status hs_reqlog_open(hs_reqlog **out, const char *path, uint64_t max_bytes, int keep) {
    *out = NULL;
    if (!path || !*path)
        return HS_FAIL(HS_ERR_ARG, "reqlog: empty path");
    if (keep < 0 || keep > 99)
        return HS_FAIL(HS_ERR_ARG, "reqlog: keep must be in 0..99, got %d", keep);
    hs_reqlog *l = hs_calloc(1, sizeof *l);
    size_t n = strlen(path);
    char *p = hs_alloc(n + 1);
    if (!l || !p) {
        hs_free(l);
        hs_free(p);
        return HS_FAIL(HS_ERR_NOMEM, "reqlog: out of memory");
    }
    memcpy(p, path, n + 1);
    l->path = p;
    l->max_bytes = max_bytes;
    l->keep = keep;
    if (pthread_mutex_init(&l->mu, NULL) != 0) {
        hs_free(p);
        hs_free(l);
        return HS_FAIL(HS_ERR_NOMEM, "reqlog: cannot create mutex");
    }
    hs_status st = open_fd(l);
    if (st != HS_OK) {
        pthread_mutex_destroy(&l->mu);
        hs_free(p);
        hs_free(l);
        return st;
    }
    *out = l;
    return HS_OK;
}

void hs_reqlog_free(hs_reqlog *l) {
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    pthread_mutex_destroy(&l->mu);
    hs_free(l->path);
    hs_free(l);
}

// PATH.(keep-1) -> PATH.keep, ..., PATH -> PATH.1, then reopen PATH. Mutex held.
static hs_status rotate(hs_reqlog *l) {
    size_t n = strlen(l->path) + 8;
    char from[4200], to[4200];
    if (n > sizeof from)
        return HS_FAIL(HS_ERR_ARG, "reqlog: path too long to rotate");
    close(l->fd);
    l->fd = -1;
    if (l->keep == 0) {
        if (unlink(l->path) != 0 && errno != ENOENT)
            return HS_FAIL(HS_ERR_IO, "reqlog: cannot remove %s: %s", l->path, strerror(errno));
    } else {
        for (int i = l->keep - 1; i >= 0; i--) {
            if (i == 0)
                snprintf(from, sizeof from, "%s", l->path);
            else
                snprintf(from, sizeof from, "%s.%d", l->path, i);
            snprintf(to, sizeof to, "%s.%d", l->path, i + 1);
            if (rename(from, to) != 0 && errno != ENOENT)
                return HS_FAIL(HS_ERR_IO, "reqlog: cannot rename %s to %s: %s", from, to, strerror(errno));
        }
    }
    l->rotations++;
    return open_fd(l);
}

hs_status hs_reqlog_write(hs_reqlog *l, const char *line, size_t n) {
    if (memchr(line, '\n', n))
        return HS_FAIL(HS_ERR_ARG, "reqlog: a log line must not contain a newline");
    char stackbuf[2048];
    char *buf = n + 1 <= sizeof stackbuf ? stackbuf : hs_alloc(n + 1);
    if (!buf)
        return HS_FAIL(HS_ERR_NOMEM, "reqlog: out of memory");
    memcpy(buf, line, n);
    buf[n] = '\n';
    hs_status st = HS_OK;
    pthread_mutex_lock(&l->mu);
    if (l->fd < 0)
        st = open_fd(l);
    if (st == HS_OK && l->max_bytes > 0 && l->size > 0 && l->size + n + 1 > l->max_bytes)
        st = rotate(l);
    if (st == HS_OK) {
        size_t off = 0;
        while (off < n + 1) {
            ssize_t w = write(l->fd, buf + off, n + 1 - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                st = HS_FAIL(HS_ERR_IO, "reqlog: write to %s failed: %s", l->path, strerror(errno));
                break;
            }
            off += (size_t)w;
        }
        l->size += off;
    }
    pthread_mutex_unlock(&l->mu);
    if (buf != stackbuf)
        hs_free(buf);
    return st;
}

uint64_t hs_reqlog_rotations(const hs_reqlog *l) {
    return l ? l->rotations : 0;
}
