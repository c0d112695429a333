// core/sys.c: POSIX implementations of core/sys.h. Atomic replace is the classic
// write-temp + fsync + rename + fsync(dir) sequence, so readers see the old or the new file,
// never a torn one. The atomic writer also hosts the test-only fault hooks (an injected full
// disk, SIGKILL at named points) that the crash-safety tests drive through the environment.
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"

// ---- test-only fault hooks (see sys.h) ----
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static long long fault_write_after = -1;  // -1: off
#define KILL_POINTS 4
static struct {
    char name[48];
    long long at;       // kill on this pass (1-based)
    atomic_llong seen;  // passes so far
} kill_points[KILL_POINTS];
static atomic_llong bytes_written;

static void read_hooks(void) {
    const char *f = getenv("HISTOPS_FAULT_WRITE_AFTER");
    if (f && *f) {
        char *end;
        long long v = strtoll(f, &end, 10);
        if (*end == '\0' && v >= 0)
            fault_write_after = v;
    }
    // "<point>:<n>[,<point>:<n>...]"; malformed entries are ignored (test-only)
    const char *k = getenv("HISTOPS_TEST_KILL_AT");
    for (int i = 0; k && *k && i < KILL_POINTS;) {
        size_t len = strcspn(k, ",");
        const char *colon = memchr(k, ':', len);
        if (colon && colon > k && (size_t)(colon - k) < sizeof kill_points[i].name) {
            char num[24];
            size_t nl = len - (size_t)(colon + 1 - k);
            if (nl > 0 && nl < sizeof num) {
                memcpy(num, colon + 1, nl);
                num[nl] = '\0';
                char *end;
                long long n = strtoll(num, &end, 10);
                if (*end == '\0' && n > 0) {
                    memcpy(kill_points[i].name, k, (size_t)(colon - k));
                    kill_points[i].name[colon - k] = '\0';
                    kill_points[i].at = n;
                    i++;
                }
            }
        }
        k += len;
        if (*k == ',')
            k++;
    }
}

// 1 when this pass of `point` is the one HISTOPS_TEST_KILL_AT names
static int kill_due(const char *point) {
    pthread_once(&hooks_once, read_hooks);
    for (int i = 0; i < KILL_POINTS && kill_points[i].name[0]; i++)
        if (strcmp(point, kill_points[i].name) == 0)
            return atomic_fetch_add(&kill_points[i].seen, 1) + 1 == kill_points[i].at;
    return 0;
}

void hs_sys_test_kill_point(const char *point) {
    if (kill_due(point))
        kill(getpid(), SIGKILL);
}

hs_status hs_sys_atomic_open(hs_sys_atomic *a, const char *path) {
    a->fd = -1;
    a->tmp[0] = '\0';
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof a->path)
        return HS_FAIL(HS_ERR_ARG, "cannot write '%s': path empty or too long", path);
    memcpy(a->path, path, len + 1);
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        int e = errno;
        a->tmp[0] = '\0';
        return HS_FAIL(HS_ERR_IO, "cannot create a temporary file for '%s': %s", path, strerror(e));
    }
    // mkstemp uses 0600; give the file the usual 0666 & ~umask like fopen would
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    a->fd = fd;
    return HS_OK;
}

hs_status hs_sys_atomic_write(hs_sys_atomic *a, const void *buf, size_t n) {
    const char *p = buf;
    if (kill_due("atomic-write")) {  // test hook: die with half the buffer in the temp file
        if (write(a->fd, p, n / 2) < 0) {
        }
        kill(getpid(), SIGKILL);
    }
    if (fault_write_after >= 0) {  // test hook: a disk that fills up after fault_write_after bytes
        long long before = atomic_fetch_add(&bytes_written, (long long)n);
        if (before + (long long)n > fault_write_after)
            return HS_FAIL(HS_ERR_IO, "cannot write '%s': %s (injected by HISTOPS_FAULT_WRITE_AFTER=%lld)", a->path,
                           strerror(ENOSPC), fault_write_after);
    }
    while (n > 0) {
        ssize_t w = write(a->fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return HS_FAIL(HS_ERR_IO, "cannot write '%s': %s", a->path, strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
    return HS_OK;
}

void hs_sys_atomic_abort(hs_sys_atomic *a) {
    if (a->fd >= 0)
        close(a->fd);
    if (a->tmp[0])
        unlink(a->tmp);
    a->fd = -1;
    a->tmp[0] = '\0';
}

static void fsync_parent(const char *path) {
    char dir[HS_SYS_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {  // best effort: some file systems refuse fsync on folders
        fsync(fd);
        close(fd);
    }
}

hs_status hs_sys_atomic_commit(hs_sys_atomic *a) {
    if (a->fd < 0)
        return HS_FAIL(HS_ERR_STATE, "atomic write of '%s' is not open", a->path);
    if (fsync(a->fd) != 0) {
        int e = errno;
        hs_sys_atomic_abort(a);
        return HS_FAIL(HS_ERR_IO, "cannot write '%s': fsync: %s", a->path, strerror(e));
    }
    int rc = close(a->fd);
    a->fd = -1;
    if (rc != 0) {
        int e = errno;
        hs_sys_atomic_abort(a);
        return HS_FAIL(HS_ERR_IO, "cannot write '%s': close: %s", a->path, strerror(e));
    }
    if (rename(a->tmp, a->path) != 0) {
        int e = errno;
        hs_sys_atomic_abort(a);
        return HS_FAIL(HS_ERR_IO, "cannot write '%s': rename: %s", a->path, strerror(e));
    }
    a->tmp[0] = '\0';
    fsync_parent(a->path);
    return HS_OK;
}

hs_status hs_sys_write_file_atomic(const char *path, const void *buf, size_t n) {
    hs_sys_atomic a;
    HS_TRY(hs_sys_atomic_open(&a, path));
    hs_status s = hs_sys_atomic_write(&a, buf, n);
    if (s != HS_OK) {
        hs_sys_atomic_abort(&a);
        return s;
    }
    return hs_sys_atomic_commit(&a);
}

hs_status hs_sys_read_file(char **out, size_t *n, const char *path) {
    *out = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return HS_FAIL(HS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return HS_FAIL(HS_ERR_IO, "cannot read '%s': not a regular file", path);
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = hs_alloc(cap);
    if (!buf) {
        close(fd);
        return HS_FAIL(HS_ERR_NOMEM, "cannot read '%s': out of memory for %zu bytes", path, cap);
    }
    for (;;) {  // the size may change while reading (a growing log): read until EOF
        if (len + 1 == cap) {
            char *bigger = hs_alloc(cap * 2);
            if (!bigger) {
                hs_free(buf);
                close(fd);
                return HS_FAIL(HS_ERR_NOMEM, "cannot read '%s': out of memory", path);
            }
            memcpy(bigger, buf, len);
            hs_free(buf);
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            hs_free(buf);
            close(fd);
            return HS_FAIL(HS_ERR_IO, "cannot read '%s': %s", path, strerror(e));
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *n = len;
    return HS_OK;
}

hs_status hs_sys_mkdir_p(const char *path) {
    char buf[HS_SYS_PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return HS_FAIL(HS_ERR_ARG, "mkdir: path empty or too long");
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return HS_FAIL(HS_ERR_IO, "mkdir '%s': %s", buf, strerror(errno));
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return HS_FAIL(HS_ERR_IO, "mkdir '%s': exists and is not a folder", path);
    return HS_OK;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

hs_status hs_sys_listdir(char ***names, int *n, const char *path) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(path);
    if (!d)
        return HS_FAIL(HS_ERR_IO, "cannot list '%s': %s", path, strerror(errno));
    // two passes over a growing text block: collect "name\0name\0...", then build the index
    size_t cap = 4096, len = 0;
    int count = 0;
    char *text = hs_alloc(cap);
    struct dirent *e;
    while (text && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t l = strlen(e->d_name) + 1;
        if (len + l > cap) {
            char *bigger = hs_alloc(cap * 2 + l);
            if (bigger)
                memcpy(bigger, text, len);
            hs_free(text);
            text = bigger;
            cap = cap * 2 + l;
            if (!text)
                break;
        }
        memcpy(text + len, e->d_name, l);
        len += l;
        count++;
    }
    closedir(d);
    if (!text)
        return HS_FAIL(HS_ERR_NOMEM, "cannot list '%s': out of memory", path);
    size_t index = (size_t)count * sizeof(char *);
    char **block = hs_alloc(index + len);
    if (!block) {
        hs_free(text);
        return HS_FAIL(HS_ERR_NOMEM, "cannot list '%s': out of memory", path);
    }
    char *strings = (char *)block + index;
    if (len)
        memcpy(strings, text, len);
    hs_free(text);
    for (int i = 0; i < count; i++) {
        block[i] = strings;
        strings += strlen(strings) + 1;
    }
    qsort(block, (size_t)count, sizeof *block, cmp_names);
    *names = block;
    *n = count;
    return HS_OK;
}

void hs_sys_cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\n")] = '\0';
        snprintf(buf, n, "%s", v);
        break;
    }
    fclose(f);
}
