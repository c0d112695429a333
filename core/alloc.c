// core/alloc.c: counting, fault-injectable aligned allocator.
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t n_allocs;
static atomic_uint_fast64_t fail_countdown;  // 0: no injection

static int injected_failure(void) {
    uint_fast64_t c = atomic_load(&fail_countdown);
    while (c > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &c, c - 1))
            return c == 1;
    }
    return 0;
}

void *hs_alloc(size_t nbytes) {
    if (injected_failure())
        return NULL;
    if (nbytes == 0)
        nbytes = 1;
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    if (rounded < nbytes)
        return NULL;
    void *p = aligned_alloc(64, rounded);
    if (p)
        atomic_fetch_add(&n_allocs, 1);
    return p;
}

void *hs_calloc(size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = hs_alloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void hs_free(void *p) { free(p); }

uint64_t hs_alloc_count(void) { return atomic_load(&n_allocs); }

void hs_alloc_fail_after(uint64_t n) { atomic_store(&fail_countdown, n); }
