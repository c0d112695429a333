// tests/fuzz/replay_main.c: the replay driver linked with each fuzz target in every build (gcc
// included): feeds every file of the given folders (seed corpus, regression inputs) or the given
// files to LLVMFuzzerTestOneInput, in sorted order, so each `ctest` run replays them (CTest
// fuzz_replay_<target>). Not a fuzzer: it generates nothing. Exit 0 only when at least one
// input ran, none crashed (a crash or sanitizer report ends the process non-zero), none took
// longer than HS_FUZZ_REPLAY_SECONDS (default 20: libFuzzer's -timeout=5 with room for a loaded
// machine) and the peak RSS stayed under HS_FUZZ_REPLAY_RSS_MB (default 1024; inputs are tiny,
// so more means an input made the code allocate what it declares rather than what it has).
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "fuzz.h"

static double limit_seconds = 20, limit_rss_mb = 1024;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Returns 0 on success, -1 when the file cannot be read (reported).
static int run_file(const char *path, double *slowest, char *slowest_name, size_t nname) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            fprintf(stderr, "replay: out of memory reading %s\n", path);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        fprintf(stderr, "replay: cannot read %s\n", path);
        return -1;
    }
    // libFuzzer hands over exactly `size` bytes; a heap copy of that size lets ASan see overreads
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    double t0 = now_s();
    LLVMFuzzerTestOneInput(exact, n);
    double dt = now_s() - t0;
    free(exact);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = (double)ru.ru_maxrss / 1024.0;
    if (dt > limit_seconds) {
        fprintf(stderr, "replay: %s took %.1f s (limit %.0f s): a hang\n", path, dt, limit_seconds);
        exit(1);
    }
    if (rss_mb > limit_rss_mb) {
        fprintf(stderr, "replay: peak RSS %.0f MB after %s (limit %.0f MB)\n", rss_mb, path, limit_rss_mb);
        exit(1);
    }
    if (dt > *slowest) {
        *slowest = dt;
        snprintf(slowest_name, nname, "%s", path);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR|FILE...  (replays every input through the fuzz target)\n", argv[0]);
        return 2;
    }
    if (getenv("HS_FUZZ_REPLAY_SECONDS"))
        limit_seconds = atof(getenv("HS_FUZZ_REPLAY_SECONDS"));
    if (getenv("HS_FUZZ_REPLAY_RSS_MB"))
        limit_rss_mb = atof(getenv("HS_FUZZ_REPLAY_RSS_MB"));
    int ran = 0, bad = 0;
    double slowest = 0;
    char slowest_name[1024] = "";
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) {
            // a target without regression inputs yet has no regress/<target> folder
            fprintf(stderr, "replay: %s: %s (skipped)\n", argv[a], strerror(errno));
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            bad += run_file(argv[a], &slowest, slowest_name, sizeof slowest_name) != 0;
            ran++;
            continue;
        }
        DIR *d = opendir(argv[a]);
        if (!d) {
            fprintf(stderr, "replay: cannot open folder %s: %s\n", argv[a], strerror(errno));
            bad++;
            continue;
        }
        char **names = NULL;
        size_t n = 0, cap = 0;
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                char **p = realloc(names, cap * sizeof *names);
                if (!p)
                    abort();
                names = p;
            }
            size_t len = strlen(argv[a]) + strlen(e->d_name) + 2;
            names[n] = malloc(len);
            if (!names[n])
                abort();
            snprintf(names[n], len, "%s/%s", argv[a], e->d_name);
            n++;
        }
        closedir(d);
        if (n > 1)
            qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n; i++) {
            if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
                bad += run_file(names[i], &slowest, slowest_name, sizeof slowest_name) != 0;
                ran++;
            }
            free(names[i]);
        }
        free(names);
    }
    printf("replay: %d inputs, %d unreadable; slowest %.3f s (%s)\n", ran, bad, slowest, slowest_name);
    if (ran == 0) {
        fprintf(stderr, "replay: no inputs found: the seed corpus is missing\n");
        return 1;
    }
    return bad ? 1 : 0;
}
