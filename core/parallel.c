// core/parallel.c: persistent pthread pool behind hs_parallel_for. Workers pull chunk indices
// from an atomic counter; the caller thread works too and waits for the last chunk.
#include "parallel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_work = PTHREAD_COND_INITIALIZER, cv_done = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t submit_mu = PTHREAD_MUTEX_INITIALIZER;  // one job at a time
static atomic_int n_threads;     // requested (0: not yet decided)
static int n_started = 0;      // workers running
static uint64_t generation = 0;
static _Thread_local int in_parallel = 0;

static struct {
    hs_range_fn fn;
    void *ctx;
    int64_t n, grain, nchunks;
    atomic_int_fast64_t next;
    atomic_int_fast64_t done;
    int active_workers;  // workers allowed in this job
} job;

static void run_chunks(void) {
    in_parallel = 1;
    for (;;) {
        int64_t c = atomic_fetch_add(&job.next, 1);
        if (c >= job.nchunks)
            break;
        int64_t b = c * job.grain, e = b + job.grain < job.n ? b + job.grain : job.n;
        job.fn(job.ctx, b, e);
        if (atomic_fetch_add(&job.done, 1) + 1 == job.nchunks) {
            pthread_mutex_lock(&mu);
            pthread_cond_broadcast(&cv_done);
            pthread_mutex_unlock(&mu);
        }
    }
    in_parallel = 0;
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (generation == seen)
            pthread_cond_wait(&cv_work, &mu);
        seen = generation;
        if (id >= job.active_workers)
            continue;
        pthread_mutex_unlock(&mu);
        run_chunks();
        pthread_mutex_lock(&mu);
    }
    return NULL;
}

static int default_threads(void) {
    const char *e = getenv("HISTOPS_THREADS");
    int n = e ? atoi(e) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
}

hs_status hs_set_num_threads(int n) {
    if (n < 1 || n > MAX_THREADS)
        return HS_FAIL(HS_ERR_ARG, "set_num_threads: %d is out of range 1..%d", n, MAX_THREADS);
    atomic_store(&n_threads, n);
    return HS_OK;
}

// Lock-free: called from inside running jobs (nested hs_parallel_for), where submit_mu is held.
int hs_get_num_threads(void) {
    int n = atomic_load(&n_threads);
    if (n == 0) {
        int expected = 0;
        n = default_threads();
        if (!atomic_compare_exchange_strong(&n_threads, &expected, n))
            n = expected;
    }
    return n;
}

void hs_parallel_for(int64_t n, int64_t grain, hs_range_fn fn, void *ctx) {
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t nchunks = (n + grain - 1) / grain;
    int nt = in_parallel ? 1 : hs_get_num_threads();  // nested calls run serially in the calling chunk
    if (nt <= 1 || nchunks == 1) {
        for (int64_t b = 0; b < n; b += grain)
            fn(ctx, b, b + grain < n ? b + grain : n);
        return;
    }
    pthread_mutex_lock(&submit_mu);
    pthread_mutex_lock(&mu);
    while (n_started < nt - 1) {  // start workers lazily; they live for the process
        pthread_t th;
        if (pthread_create(&th, NULL, worker, (void *)(intptr_t)n_started) != 0)
            break;
        pthread_detach(th);
        n_started++;
    }
    job.fn = fn;
    job.ctx = ctx;
    job.n = n;
    job.grain = grain;
    job.nchunks = nchunks;
    atomic_store(&job.next, 0);
    atomic_store(&job.done, 0);
    job.active_workers = nt - 1 < n_started ? nt - 1 : n_started;
    generation++;
    pthread_cond_broadcast(&cv_work);
    pthread_mutex_unlock(&mu);
    run_chunks();
    pthread_mutex_lock(&mu);
    while (atomic_load(&job.done) < nchunks)
        pthread_cond_wait(&cv_done, &mu);
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&submit_mu);
}
