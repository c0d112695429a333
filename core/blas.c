// core/blas.c: cblas wrapper; the only file that includes cblas.h.
#include "blas.h"

#include <cblas.h>

void hs_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0)
        return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                lda, B, ldb, beta, C, ldc);
}

void hs_blas_set_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

int hs_blas_get_threads(void) { return openblas_get_num_threads(); }

const char *hs_blas_version(void) { return openblas_get_config(); }
