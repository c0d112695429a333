// core/dist.h: a thin wrapper over MPI for data-parallel training and sweeps: start-up, rank and
// size, byte broadcasts/gathers and float all-reductions (blocking and nonblocking). It is not a
// communication framework: one communicator (MPI_COMM_WORLD), no topology, no tags.
//
// Built with MPI only when HS_HAVE_MPI is defined. Without it, and whenever MPI is not started
// (a process not launched by mpirun/srun), the world has one rank and every collective is a
// local no-op or copy; functions that would need a real MPI return HS_ERR_STATE "built without
// MPI". MPI_Init is done only here (MPI_THREAD_FUNNELED: only the calling thread talks to MPI).
// No public type here exposes an MPI type.
#ifndef HS_DIST_H
#define HS_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

// 1 when compiled with MPI support.
int hs_dist_available(void);
// 1 when this process was started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMI_SIZE or
// PMIX_RANK set). Reads the environment only; does not start MPI.
int hs_dist_launched(void);
// Start MPI if launched (idempotent) and report rank and size (0, 1 when not launched).
// HS_ERR_STATE when launched but built without MPI, or when MPI was already finalized.
hs_status hs_dist_init(int *rank, int *size);
int hs_dist_initialized(void);   // 1 between a successful MPI start and finalize
int hs_dist_rank(void);          // 0 before init / when not launched
int hs_dist_size(void);          // 1 before init / when not launched

hs_status hs_dist_barrier(void);
// Broadcast a byte count, then n bytes, from root. buf: n bytes on every rank (root's content is
// sent, the others' overwritten). Any n (sent in chunks below INT_MAX).
hs_status hs_dist_bcast_size(uint64_t *n, int root);
hs_status hs_dist_bcast(void *buf, uint64_t n, int root);
// Gather every rank's byte count: sizes has hs_dist_size() entries (on every rank for the
// all-variant, on root only otherwise; may be NULL elsewhere).
hs_status hs_dist_gather_sizes(uint64_t *sizes, uint64_t mine, int root);
hs_status hs_dist_allgather_sizes(uint64_t *sizes, uint64_t mine);
// Concatenate every rank's bytes in rank order into recv (sum of sizes bytes; on root only for
// gatherv). The total must be below INT_MAX bytes (HS_ERR_ARG otherwise).
hs_status hs_dist_gatherv(void *recv, const uint64_t *sizes, const void *send, uint64_t n, int root);
hs_status hs_dist_allgatherv(void *recv, const uint64_t *sizes, const void *send, uint64_t n);

// In-place sums over all ranks: buf[i] = sum over ranks of buf[i]. (n) elements, any n.
hs_status hs_dist_allreduce_sum_f32(float *buf, int64_t n);
hs_status hs_dist_allreduce_sum_f64(double *buf, int64_t n);

// Nonblocking in-place sum of float buf[0..n) (n < INT_MAX), to overlap communication with
// computation. buf must not be touched until hs_dist_wait returns. A request handle is an index
// into a small table (at most HS_DIST_MAX_REQUESTS outstanding); size 1: completes at once.
#define HS_DIST_MAX_REQUESTS 256
hs_status hs_dist_iallreduce_sum_f32(int *request, float *buf, int64_t n);
hs_status hs_dist_wait(int request);
// Drive MPI progress of outstanding requests (MPI_Testall); cheap, call between kernels.
void hs_dist_progress(void);

// Terminate every rank of the job with `code` (MPI_Abort). Only for a failure the caller has
// already reported; returns HS_ERR_STATE when MPI is not running (the caller then exits itself).
hs_status hs_dist_abort(int code);
// Finalize MPI (idempotent; no-op if never started). With timeout_s > 0 the ranks first meet in
// a nonblocking barrier polled for at most timeout_s seconds: HS_ERR_STATE if some rank never
// arrives (then MPI is not finalized and the caller should hs_dist_abort instead of hanging).
hs_status hs_dist_finalize(double timeout_s);

#endif
