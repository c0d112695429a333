// tests/hs_test.c: implementation of the shared test helpers (hs_test.h).
#include "hs_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

void hs_expect_close_at(const float *got, const float *want, size_t n, double atol, double rtol,
                        const char *file, int line) {
    size_t bad = n, nbad = 0;
    double maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], err = fabs(g - w);
        int ok = (isnan(g) && isnan(w)) || err <= atol + rtol * fabs(w);
        if (!isnan(err) && err > maxerr)
            maxerr = err;
        if (!ok) {
            if (bad == n)
                bad = i;
            nbad++;
        }
    }
    if (bad != n) {
        print_error("%s:%d: %zu of %zu values differ; first at [%zu]: got %.9g want %.9g; max abs err %.3g "
                    "(atol %g, rtol %g)\n",
                    file, line, nbad, n, bad, (double)got[bad], (double)want[bad], maxerr, atol, rtol);
        _fail(file, line);
    }
}

double hs_numeric_grad(double (*loss)(void *), void *ctx, float *x, size_t i, float eps) {
    float saved = x[i];
    x[i] = saved + eps;
    double up = loss(ctx);
    x[i] = saved - eps;
    double down = loss(ctx);
    x[i] = saved;
    return (up - down) / (2.0 * (double)eps);
}

const char *hs_test_data_dir(void) {
    const char *d = getenv("HISTOPS_DATA");
    return d && *d ? d : HS_DATA_DEFAULT;
}
