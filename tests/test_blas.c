// tests/test_blas.c: hs_sgemm, the one door to BLAS: every transpose combination agrees with a
// double-precision loop, on products small enough for one call and large enough to be cut into
// blocks along rows or columns; the blocked results are bit-identical for 1, 2 and 3 threads and
// when called from inside a pool task; OpenBLAS itself stays single-threaded.
#include "hs_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "parallel.h"

typedef struct {
    int ta, tb, M, N, K;
} gemm_case;

// C = 0.5 op(A) op(B) + 0.25 C in double, A and B stored with the given transposes.
static void ref_gemm(const gemm_case *c, const float *A, const float *B, const float *C0, double *out) {
    int lda = c->ta ? c->M : c->K, ldb = c->tb ? c->K : c->N;
    for (int i = 0; i < c->M; i++)
        for (int j = 0; j < c->N; j++) {
            double s = 0;
            for (int k = 0; k < c->K; k++) {
                double a = c->ta ? A[k * lda + i] : A[i * lda + k];
                double b = c->tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            out[i * c->N + j] = 0.5 * s + 0.25 * (double)C0[i * c->N + j];
        }
}

static float *filled(size_t n, uint64_t seed) {
    float *p = malloc(n * sizeof *p);
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        p[i] = (float)((double)(s >> 40) / (double)(1u << 24)) - 0.5f;
    }
    return p;
}

static void run(const gemm_case *c, const float *A, const float *B, const float *C0, float *C) {
    memcpy(C, C0, (size_t)c->M * (size_t)c->N * sizeof *C);
    hs_sgemm(c->ta, c->tb, c->M, c->N, c->K, 0.5f, A, c->ta ? c->M : c->K, B, c->tb ? c->K : c->N, 0.25f, C, c->N);
}

typedef struct {
    const gemm_case *c;
    const float *A, *B, *C0;
    float *C;
} nested_ctx;

static void nested_task(void *ctx, int64_t b, int64_t e) {
    const nested_ctx *n = ctx;
    for (int64_t i = b; i < e; i++)
        run(n->c, n->A, n->B, n->C0, n->C);
}

static void test_sgemm_matches_double_loops_and_threads_do_not_change_bits(void **state) {
    (void)state;
    static const gemm_case cs[] = {
        {0, 0, 7, 5, 3}, {1, 0, 9, 4, 6}, {0, 1, 3, 8, 5}, {1, 1, 6, 6, 7},   // one call
        {0, 0, 300, 70, 200}, {1, 0, 300, 70, 200},                           // blocks of rows
        {0, 1, 60, 333, 300}, {1, 1, 60, 333, 300},                           // blocks of columns
    };
    int saved = hs_get_num_threads();
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const gemm_case *c = &cs[i];
        size_t nc = (size_t)c->M * (size_t)c->N;
        float *A = filled((size_t)c->M * (size_t)c->K, 10 + i), *B = filled((size_t)c->K * (size_t)c->N, 20 + i);
        float *C0 = filled(nc, 30 + i), *C[4];
        double *want = malloc(nc * sizeof *want);
        ref_gemm(c, A, B, C0, want);
        for (int t = 0; t < 3; t++) {
            assert_int_equal(hs_set_num_threads(t + 1), HS_OK);
            C[t] = malloc(nc * sizeof(float));
            run(c, A, B, C0, C[t]);
        }
        C[3] = malloc(nc * sizeof(float));   // from inside a pool task: the blocks run in turn
        nested_ctx n = {c, A, B, C0, C[3]};
        hs_parallel_for(1, 1, nested_task, &n);
        for (size_t k = 0; k < nc; k++)
            if (fabs((double)C[0][k] - want[k]) > 1e-5 * (1.0 + fabs(want[k])))
                fail_msg("case %zu (ta %d tb %d %dx%dx%d): C[%zu] = %.9g, want %.9g", i, c->ta, c->tb, c->M, c->N,
                         c->K, k, (double)C[0][k], want[k]);
        for (int t = 1; t < 4; t++)
            assert_memory_equal(C[0], C[t], nc * sizeof(float));
        for (int t = 0; t < 4; t++)
            free(C[t]);
        free(A), free(B), free(C0), free(want);
    }
    hs_set_num_threads(saved);
    assert_int_equal(hs_blas_get_threads(), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgemm_matches_double_loops_and_threads_do_not_change_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
