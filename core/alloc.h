// core/alloc.h: the one allocator of the core. Counts allocations (so tests can prove that a
// training step allocates nothing) and can be told to fail its Nth allocation (fault injection,
// the SQLite/Lua ltests technique). Not a pool allocator.
#ifndef HS_ALLOC_H
#define HS_ALLOC_H

#include <stddef.h>
#include <stdint.h>

// Blocks of at least this many bytes are mapped from the kernel, 2 MB aligned, with transparent
// huge pages requested (madvise), and returned to it by hs_free; smaller ones come from the C
// heap. A few freed big blocks (<= 32 MB) are kept for reuse by an allocation of the same
// size, as glibc keeps such blocks in its heap. Callers need not care, except that either kind
// must be freed with hs_free.
#define HS_ALLOC_BIG ((size_t)2 << 20)

// 64-byte aligned allocation (2 MB aligned when nbytes >= HS_ALLOC_BIG), contents undefined;
// NULL on failure (or on injected failure). hs_free(NULL) is a no-op.
void *hs_alloc(size_t nbytes);
// Zero-filled hs_alloc(n * size) (NULL on overflow). Costs no memset for big blocks (fresh
// mappings are zero), so zeroing a large tensor is paid only where its pages are first touched.
void *hs_calloc(size_t n, size_t size);
void hs_free(void *p);

// Number of successful hs_alloc/hs_calloc calls since start (all threads).
uint64_t hs_alloc_count(void);
// Make the nth allocation from now fail (1 = the next one); 0 disables injection.
void hs_alloc_fail_after(uint64_t n);
// Number of allocations that failed by injection since start (all threads): a fault-injection
// loop compares it before and after an operation to learn whether the failure was reached.
uint64_t hs_alloc_injected(void);
// Blocks currently allocated (successful hs_alloc/hs_calloc minus hs_free of non-NULL): equal
// before and after an operation that frees all it allocates, so tests can detect leaks
// without LeakSanitizer.
int64_t hs_alloc_live(void);

#endif
