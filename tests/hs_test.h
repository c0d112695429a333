// tests/hs_test.h: helpers shared by the cmocka tests: array comparison with a useful report,
// and the finite-difference gradient helper of the house style.
#ifndef HS_TEST_H
#define HS_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

// Fails the current test when any |got-want| > atol + rtol*|want| (or a NaN mismatch), printing
// the first bad index, both values and the max error.
void hs_expect_close_at(const float *got, const float *want, size_t n, double atol, double rtol,
                        const char *file, int line);
#define hs_expect_close(got, want, n, atol, rtol) hs_expect_close_at((got), (want), (n), (atol), (rtol), __FILE__, __LINE__)

// Central difference of loss() w.r.t. x[i].
double hs_numeric_grad(double (*loss)(void *), void *ctx, float *x, size_t i, float eps);

// Directory of the shared data/reference (HISTOPS_DATA or ../shared/data next to the source).
const char *hs_test_data_dir(void);

#endif
