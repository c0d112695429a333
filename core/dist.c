// core/dist.c: the MPI wrapper behind core/dist.h. With HS_HAVE_MPI it talks to MPI_COMM_WORLD
// (errors returned, never MPI's default abort-on-error); without it only the one-rank paths
// exist. It holds no training logic: the runner decides what to reduce and when.
#include "dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef HS_HAVE_MPI
#include <mpi.h>
#endif

static int started;    // MPI_Init done by us and not yet finalized
static int finalized;  // MPI_Finalize done (MPI cannot be started again)
static int world_rank = 0, world_size = 1;

#define NO_MPI_MSG "histops was built without MPI (install libopenmpi-dev and rerun scripts/setup)"

// Largest count per MPI call: MPI counts are int.
#define CHUNK ((int64_t)1 << 30)

int hs_dist_available(void) {
#ifdef HS_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int hs_dist_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL ||
           getenv("PMIX_RANK") != NULL;
}

int hs_dist_initialized(void) { return started; }
int hs_dist_rank(void) { return world_rank; }
int hs_dist_size(void) { return world_size; }

#ifdef HS_HAVE_MPI
static hs_status mpi_fail(const char *file, int line, const char *what, int rc) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS)
        strcpy(s, "unknown MPI error");
    return hs_fail_at(HS_ERR_IO, file, line, "%s failed on rank %d of %d: %s", what, world_rank,
                      world_size, s);
}
#define MPI_TRY(what, call)                                      \
    do {                                                         \
        int mpi_rc_ = (call);                                    \
        if (mpi_rc_ != MPI_SUCCESS)                              \
            return mpi_fail(__FILE__, __LINE__, what, mpi_rc_);  \
    } while (0)
#endif

hs_status hs_dist_init(int *rank, int *size) {
    if (finalized)
        return HS_FAIL(HS_ERR_STATE, "MPI was already finalized; it cannot be started again");
    if (!started && hs_dist_launched()) {
#ifdef HS_HAVE_MPI
        int already = 0, provided = 0;
        MPI_Initialized(&already);
        if (already)
            return HS_FAIL(HS_ERR_STATE, "MPI was initialised outside histops");
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return HS_FAIL(HS_ERR_IO, "MPI_Init_thread failed");
        started = 1;
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        if (provided < MPI_THREAD_FUNNELED)
            return HS_FAIL(HS_ERR_UNSUPPORTED, "MPI provides thread level %d, histops needs "
                           "MPI_THREAD_FUNNELED", provided);
        MPI_TRY("MPI_Comm_rank", MPI_Comm_rank(MPI_COMM_WORLD, &world_rank));
        MPI_TRY("MPI_Comm_size", MPI_Comm_size(MPI_COMM_WORLD, &world_size));
#else
        return HS_FAIL(HS_ERR_STATE, NO_MPI_MSG);
#endif
    }
    if (rank)
        *rank = world_rank;
    if (size)
        *size = world_size;
    return HS_OK;
}

static hs_status check_root(int root) {
    if (root < 0 || root >= world_size)
        return HS_FAIL(HS_ERR_ARG, "root rank %d out of range (world size %d)", root, world_size);
    return HS_OK;
}

hs_status hs_dist_barrier(void) {
    if (!started)
        return HS_OK;
#ifdef HS_HAVE_MPI
    MPI_TRY("MPI_Barrier", MPI_Barrier(MPI_COMM_WORLD));
#endif
    return HS_OK;
}

hs_status hs_dist_bcast_size(uint64_t *n, int root) {
    HS_TRY(check_root(root));
    if (!started)
        return HS_OK;
#ifdef HS_HAVE_MPI
    MPI_TRY("MPI_Bcast", MPI_Bcast(n, 1, MPI_UINT64_T, root, MPI_COMM_WORLD));
#endif
    return HS_OK;
}

hs_status hs_dist_bcast(void *buf, uint64_t n, int root) {
    HS_TRY(check_root(root));
    if (!started || n == 0)
        return HS_OK;
#ifdef HS_HAVE_MPI
    for (uint64_t off = 0; off < n; off += (uint64_t)CHUNK) {
        uint64_t c = n - off < (uint64_t)CHUNK ? n - off : (uint64_t)CHUNK;
        MPI_TRY("MPI_Bcast", MPI_Bcast((char *)buf + off, (int)c, MPI_BYTE, root, MPI_COMM_WORLD));
    }
#endif
    return HS_OK;
}

hs_status hs_dist_gather_sizes(uint64_t *sizes, uint64_t mine, int root) {
    HS_TRY(check_root(root));
    if (!started) {
        sizes[0] = mine;
        return HS_OK;
    }
#ifdef HS_HAVE_MPI
    MPI_TRY("MPI_Gather", MPI_Gather(&mine, 1, MPI_UINT64_T, sizes, 1, MPI_UINT64_T, root,
                                     MPI_COMM_WORLD));
#endif
    return HS_OK;
}

hs_status hs_dist_allgather_sizes(uint64_t *sizes, uint64_t mine) {
    if (!started) {
        sizes[0] = mine;
        return HS_OK;
    }
#ifdef HS_HAVE_MPI
    MPI_TRY("MPI_Allgather",
            MPI_Allgather(&mine, 1, MPI_UINT64_T, sizes, 1, MPI_UINT64_T, MPI_COMM_WORLD));
#endif
    return HS_OK;
}

#ifdef HS_HAVE_MPI
// int counts and displacements for the v-collectives; fails when the total does not fit.
static hs_status counts_displs(int *counts, int *displs, const uint64_t *sizes) {
    uint64_t total = 0;
    for (int r = 0; r < world_size; r++) {
        if (total + sizes[r] > (uint64_t)INT_MAX)
            return HS_FAIL(HS_ERR_ARG, "gather: %llu bytes in total exceed the MPI limit of %d",
                           (unsigned long long)(total + sizes[r]), INT_MAX);
        counts[r] = (int)sizes[r];
        displs[r] = (int)total;
        total += sizes[r];
    }
    return HS_OK;
}
#endif

static hs_status gatherv(void *recv, const uint64_t *sizes, const void *send, uint64_t n, int root,
                         int all) {
    if (!started) {
        if (n)
            memcpy(recv, send, n);
        return HS_OK;
    }
#ifdef HS_HAVE_MPI
    if (n > (uint64_t)INT_MAX)
        return HS_FAIL(HS_ERR_ARG, "gather: %llu bytes exceed the MPI limit of %d",
                       (unsigned long long)n, INT_MAX);
    int *counts = NULL, *displs = NULL;
    int have = all || world_rank == root;
    if (have) {
        counts = malloc(sizeof *counts * (size_t)world_size);
        displs = malloc(sizeof *displs * (size_t)world_size);
        if (!counts || !displs) {
            free(counts);
            free(displs);
            return HS_FAIL(HS_ERR_NOMEM, "gather: out of memory for %d counts", world_size);
        }
        hs_status s = counts_displs(counts, displs, sizes);
        if (s != HS_OK) {  // every rank computes the same verdict from the same sizes (all) or
            free(counts);  // root alone fails: the others would hang, so the caller aborts
            free(displs);
            return s;
        }
    }
    int rc = all ? MPI_Allgatherv(send, (int)n, MPI_BYTE, recv, counts, displs, MPI_BYTE,
                                  MPI_COMM_WORLD)
                 : MPI_Gatherv(send, (int)n, MPI_BYTE, recv, counts, displs, MPI_BYTE, root,
                               MPI_COMM_WORLD);
    free(counts);
    free(displs);
    if (rc != MPI_SUCCESS)
        return mpi_fail(__FILE__, __LINE__, all ? "MPI_Allgatherv" : "MPI_Gatherv", rc);
#endif
    return HS_OK;
}

hs_status hs_dist_gatherv(void *recv, const uint64_t *sizes, const void *send, uint64_t n, int root) {
    HS_TRY(check_root(root));
    return gatherv(recv, sizes, send, n, root, 0);
}

hs_status hs_dist_allgatherv(void *recv, const uint64_t *sizes, const void *send, uint64_t n) {
    return gatherv(recv, sizes, send, n, 0, 1);
}

// In-place sum over ranks of n floats (f64 = 0) or doubles (f64 = 1), in chunks of at most CHUNK
// elements because MPI counts are int.
static hs_status allreduce_sum(void *buf, int64_t n, int f64) {
    if (n < 0)
        return HS_FAIL(HS_ERR_ARG, "allreduce: negative count %lld", (long long)n);
    if (!started || n == 0)
        return HS_OK;
#ifdef HS_HAVE_MPI
    size_t elsize = f64 ? sizeof(double) : sizeof(float);
    for (int64_t off = 0; off < n; off += CHUNK) {
        int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        MPI_TRY("MPI_Allreduce", MPI_Allreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * elsize, c,
                                               f64 ? MPI_DOUBLE : MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
    }
#else
    (void)buf;
    (void)f64;
#endif
    return HS_OK;
}

hs_status hs_dist_allreduce_sum_f32(float *buf, int64_t n) {
    return allreduce_sum(buf, n, 0);
}

hs_status hs_dist_allreduce_sum_f64(double *buf, int64_t n) {
    return allreduce_sum(buf, n, 1);
}

#ifdef HS_HAVE_MPI
static MPI_Request requests[HS_DIST_MAX_REQUESTS];
static int requests_ready;
#endif

hs_status hs_dist_iallreduce_sum_f32(int *request, float *buf, int64_t n) {
    *request = -1;  // -1: already complete
    if (n < 0 || n >= INT_MAX)
        return HS_FAIL(HS_ERR_ARG, "iallreduce: count %lld out of range [0, %d)", (long long)n,
                       INT_MAX);
    if (!started)
        return HS_OK;
#ifdef HS_HAVE_MPI
    if (!requests_ready) {
        for (int i = 0; i < HS_DIST_MAX_REQUESTS; i++)
            requests[i] = MPI_REQUEST_NULL;
        requests_ready = 1;
    }
    int slot = -1;
    for (int i = 0; i < HS_DIST_MAX_REQUESTS && slot < 0; i++)
        if (requests[i] == MPI_REQUEST_NULL)
            slot = i;
    if (slot < 0)
        return HS_FAIL(HS_ERR_STATE, "iallreduce: more than %d requests outstanding",
                       HS_DIST_MAX_REQUESTS);
    MPI_TRY("MPI_Iallreduce", MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM,
                                             MPI_COMM_WORLD, &requests[slot]));
    *request = slot;
#endif
    return HS_OK;
}

hs_status hs_dist_wait(int request) {
    if (request == -1)
        return HS_OK;
    if (request < 0 || request >= HS_DIST_MAX_REQUESTS)
        return HS_FAIL(HS_ERR_ARG, "wait: request %d out of range", request);
#ifdef HS_HAVE_MPI
    if (!started || !requests_ready || requests[request] == MPI_REQUEST_NULL)
        return HS_FAIL(HS_ERR_STATE, "wait: request %d is not outstanding", request);
    MPI_TRY("MPI_Wait", MPI_Wait(&requests[request], MPI_STATUS_IGNORE));
    return HS_OK;
#else
    return HS_FAIL(HS_ERR_STATE, "wait: request %d is not outstanding", request);
#endif
}

void hs_dist_progress(void) {
#ifdef HS_HAVE_MPI
    if (!started || !requests_ready)
        return;
    int flag = 0;
    // MPI_Testall would complete (and free) finished requests that a later hs_dist_wait still
    // names; MPI_Testsome/any would too. A probe on the communicator drives progress instead.
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
#endif
}

hs_status hs_dist_abort(int code) {
#ifdef HS_HAVE_MPI
    if (started) {
        MPI_Abort(MPI_COMM_WORLD, code);
        return HS_OK;  // not reached
    }
#endif
    (void)code;
    return HS_FAIL(HS_ERR_STATE, "abort: MPI is not running");
}

hs_status hs_dist_finalize(double timeout_s) {
    if (!started)
        return HS_OK;
#ifdef HS_HAVE_MPI
    if (timeout_s > 0 && world_size > 1) {
        MPI_Request req;
        MPI_TRY("MPI_Ibarrier", MPI_Ibarrier(MPI_COMM_WORLD, &req));
        struct timespec t0, now, nap = {0, 1000000};  // poll every millisecond
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) {
            int done = 0;
            MPI_TRY("MPI_Test", MPI_Test(&req, &done, MPI_STATUS_IGNORE));
            if (done)
                break;
            clock_gettime(CLOCK_MONOTONIC, &now);
            double waited = (double)(now.tv_sec - t0.tv_sec) + 1e-9 * (double)(now.tv_nsec - t0.tv_nsec);
            if (waited > timeout_s)
                return HS_FAIL(HS_ERR_STATE, "rank %d: the other ranks did not reach the end "
                               "within %.0f s (one of them failed or is stuck)", world_rank,
                               timeout_s);
            nanosleep(&nap, NULL);
        }
    }
    MPI_TRY("MPI_Finalize", MPI_Finalize());
#endif
    started = 0;
    finalized = 1;
    world_rank = 0;
    world_size = 1;
    return HS_OK;
}
