// core/blas.h: the only door to BLAS (OpenBLAS through cblas). Row-major single precision.
// Not a general linear-algebra library: just what the kernels need.
#ifndef HS_BLAS_H
#define HS_BLAS_H

// C(M,N) = alpha * op(A) * op(B) + beta * C, row-major; op(A) is (M,K), op(B) is (K,N).
// lda/ldb/ldc are the row strides of A, B, C as stored. ta/tb: 0 = as is, 1 = transposed.
// OpenBLAS runs single-threaded; products of more than 2^21 multiply-adds are cut along the
// larger of M and N into at most 16 blocks (sizes fixed by the shape) run on hs_parallel_for,
// so results do not depend on the thread count (called from inside a task: blocks in turn).
void hs_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);
// Threads OpenBLAS uses (always 1, see above), and the OpenBLAS version/config string.
int hs_blas_get_threads(void);
const char *hs_blas_version(void);

#endif
