// core/blas.h: the only door to BLAS (OpenBLAS through cblas). Row-major single precision.
// Not a general linear-algebra library: just what the kernels need.
#ifndef HS_BLAS_H
#define HS_BLAS_H

// C(M,N) = alpha * op(A) * op(B) + beta * C, row-major; op(A) is (M,K), op(B) is (K,N).
// lda/ldb/ldc are the row strides of A, B, C as stored. ta/tb: 0 = as is, 1 = transposed.
void hs_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);
// Threads OpenBLAS may use (>= 1), and the OpenBLAS version/config string.
void hs_blas_set_threads(int n);
int hs_blas_get_threads(void);
const char *hs_blas_version(void);

#endif
