// core/blas.c: cblas wrapper; the only file that includes cblas.h. OpenBLAS always runs on one
// thread here: histops parallelises with its own pool (parallel.h), which also splits large
// products below. (OpenBLAS's own workers spin for a long while after each threaded call,
// taking cores from the pool's threads: ~5% of a training step on two cores.)
#include "blas.h"

#include <cblas.h>
#include <pthread.h>

#include "parallel.h"

#define SPLIT_MACS (1 << 21)   // products with more multiply-adds than this are split in blocks
#define MAX_BLOCKS 16

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void single_threaded(void) {
    openblas_set_num_threads(1);
}

typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc, rows, bs;   // rows: split M (else N) in blocks of bs
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_job;

static void gemm_block(void *ctx, int64_t b, int64_t e) {
    const gemm_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        int lo = (int)i * j->bs, n = j->bs;
        int dim = j->rows ? j->M : j->N;
        n = lo + n <= dim ? n : dim - lo;
        if (j->rows)   // rows [lo, lo + n) of C and of op(A)
            cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, n, j->N,
                        j->K, j->alpha, j->A + (j->ta ? (int64_t)lo : (int64_t)lo * j->lda), j->lda, j->B, j->ldb,
                        j->beta, j->C + (int64_t)lo * j->ldc, j->ldc);
        else   // columns [lo, lo + n) of C and of op(B)
            cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans, j->M, n,
                        j->K, j->alpha, j->A, j->lda, j->B + (j->tb ? (int64_t)lo * j->ldb : (int64_t)lo), j->ldb,
                        j->beta, j->C + lo, j->ldc);
    }
}

void hs_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0)
        return;
    pthread_once(&once, single_threaded);
    double macs = (double)M * (double)N * (double)(K > 0 ? K : 1);
    int rows = M >= N, dim = rows ? M : N;
    // blocks of a size fixed by the shape alone (never by the thread count): deterministic
    int nb = macs <= SPLIT_MACS ? 1 : (int)(macs / SPLIT_MACS < MAX_BLOCKS ? macs / SPLIT_MACS : MAX_BLOCKS);
    int bs = (dim + nb - 1) / nb;
    bs = (bs + 15) / 16 * 16;
    if (nb <= 1 || bs >= dim) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                    lda, B, ldb, beta, C, ldc);
        return;
    }
    gemm_job j = {ta, tb, M, N, K, lda, ldb, ldc, rows, bs, alpha, beta, A, B, C};
    hs_parallel_for((dim + bs - 1) / bs, 1, gemm_block, &j);
}

int hs_blas_get_threads(void) {
    pthread_once(&once, single_threaded);
    return openblas_get_num_threads();
}

const char *hs_blas_version(void) { return openblas_get_config(); }
