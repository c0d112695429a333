// core/parallel.h: a small persistent thread pool, the only threads of the kernels (OpenBLAS runs
// single-threaded inside its tasks, see blas.h).
// Work is split into static, contiguous chunks that depend only on n and the grain (never on
// the thread count), so any per-chunk reduction done in chunk order is deterministic.
#ifndef HS_PARALLEL_H
#define HS_PARALLEL_H

#include <stdint.h>

#include "status.h"

// fn(ctx, begin, end) processes items [begin, end). Chunks have `grain` items (last may be
// shorter); chunks run concurrently on up to hs_get_num_threads() threads. Never allocates
// after the pool is started; nested calls run serially.
typedef void (*hs_range_fn)(void *ctx, int64_t begin, int64_t end);
void hs_parallel_for(int64_t n, int64_t grain, hs_range_fn fn, void *ctx);

// Threads used by hs_parallel_for (default: HISTOPS_THREADS or the number of CPUs, max 64).
hs_status hs_set_num_threads(int n);
int hs_get_num_threads(void);

#endif
