// core/alloc.c: counting, fault-injectable aligned allocator. Small blocks come from the C
// heap (aligned_alloc); blocks of HS_ALLOC_BIG bytes or more are mapped directly, 2 MB aligned
// and marked for transparent huge pages, as numpy does for its large arrays. On this kind of
// machine (THP "madvise" mode) that halves the cost of the first touch of a 48 MB image, and a
// fresh mapping is already zero, so hs_calloc skips its memset there. Not a pool allocator:
// freed big blocks go back to the kernel, except up to four of at most 32 MB that wait for an
// allocation of the same size (what glibc's adaptive mmap threshold does for such blocks).
#include "alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

static atomic_uint_fast64_t n_allocs;
static atomic_uint_fast64_t fail_countdown;  // 0: no injection
static atomic_uint_fast64_t n_injected, n_frees;

static int injected_failure(void) {
    uint_fast64_t c = atomic_load(&fail_countdown);
    while (c > 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &c, c - 1)) {
            if (c == 1)
                atomic_fetch_add(&n_injected, 1);
            return c == 1;
        }
    }
    return 0;
}

// ---- the registry of mapped blocks ----
// hs_free must tell a mapped block from a heap block without reading memory it does not own
// (a header before a heap block would be out of bounds for ASan), so mapped blocks (always 2 MB
// aligned) are recorded in an open-addressing table keyed by address: a free of a 2 MB aligned
// pointer looks it up, every other free goes straight to free(). Linear probing with
// backward-shift deletion; the table itself lives on the C heap and is never counted.

typedef struct {
    uintptr_t addr;  // 0: empty slot
    size_t len;      // mapped length (a multiple of HUGE_PAGE)
} big_block;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static big_block *reg;
static size_t reg_cap, reg_used;  // cap: 0 or a power of two

static size_t reg_slot(uintptr_t addr) {
    return (size_t)(((uint64_t)(addr >> 21) * 0x9E3779B97F4A7C15ull) >> 20) & (reg_cap - 1);
}

static void reg_put(big_block b) {  // caller guarantees a free slot
    size_t i = reg_slot(b.addr);
    while (reg[i].addr)
        i = (i + 1) & (reg_cap - 1);
    reg[i] = b;
    reg_used++;
}

// Record a mapped block; 0 when the table cannot grow.
static int reg_add(uintptr_t addr, size_t len) {
    int ok = 1;
    pthread_mutex_lock(&reg_lock);
    if (2 * (reg_used + 1) > reg_cap) {  // keep the load at most 1/2
        size_t old_cap = reg_cap, cap = reg_cap ? 2 * reg_cap : 64;
        big_block *old = reg, *t = calloc(cap, sizeof *t);
        if (!t) {
            ok = 0;
        } else {
            reg = t, reg_cap = cap, reg_used = 0;
            for (size_t i = 0; i < old_cap; i++)
                if (old[i].addr)
                    reg_put(old[i]);
            free(old);
        }
    }
    if (ok)
        reg_put((big_block){addr, len});
    pthread_mutex_unlock(&reg_lock);
    return ok;
}

// Remove addr from the table; its mapped length, or 0 when it is not a mapped block.
static size_t reg_remove(uintptr_t addr) {
    size_t len = 0;
    pthread_mutex_lock(&reg_lock);
    if (reg_cap) {
        size_t i = reg_slot(addr);
        while (reg[i].addr && reg[i].addr != addr)
            i = (i + 1) & (reg_cap - 1);
        if (reg[i].addr) {
            len = reg[i].len;
            // Backward shift: move later members of the probe run into the hole when their
            // home slot does not lie cyclically in (hole, j].
            size_t hole = i, j = i;
            for (;;) {
                j = (j + 1) & (reg_cap - 1);
                if (!reg[j].addr)
                    break;
                size_t home = reg_slot(reg[j].addr);
                int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
                if (!stays) {
                    reg[hole] = reg[j];
                    hole = j;
                }
            }
            reg[hole].addr = 0;
            reg_used--;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return len;
}

// A fresh zero-filled mapping of at least nbytes, 2 MB aligned, THP requested; NULL on failure.
static void *big_alloc(size_t nbytes) {
    if (nbytes > SIZE_MAX - 2 * HUGE_PAGE)
        return NULL;
    size_t len = (nbytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), total = len + HUGE_PAGE;
    char *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)base + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (a > base)  // trim to the aligned part, so that every 2 MB of it can be one huge page
        munmap(base, (size_t)(a - base));
    if (a + len < base + total)
        munmap(a + len, (size_t)(base + total - (a + len)));
#ifdef MADV_HUGEPAGE
    madvise(a, len, MADV_HUGEPAGE);  // advice only: failure just means small pages
#endif
    if (!reg_add((uintptr_t)a, len)) {
        munmap(a, len);
        return NULL;
    }
    return a;
}

// ---- a few freed big blocks kept for reuse ----
// glibc raises its mmap threshold to the size of a freed mapping (up to 32 MB), so a program
// that allocates and frees images of one size keeps reusing the same heap memory without page
// faults; numpy's arrays get that for free. These few slots do the same for the mapped blocks
// here: freed blocks of at most KEEP_MAX bytes wait in LRU order for an allocation of exactly
// their (2 MB rounded) length; anything else goes back to the kernel. The bound is above glibc's
// 32 MB so that a float RGB 2048x2048 tile (48 MB), the usual whole-tile working size, is reused
// too: at most KEEP_SLOTS * KEEP_MAX = 256 MB of freed memory stays mapped.
#define KEEP_SLOTS 4
#define KEEP_MAX ((size_t)64 << 20)

static big_block kept[KEEP_SLOTS];  // kept[0] most recent; addr 0: empty (guarded by reg_lock)

// A kept block of exactly len bytes, registered again as live; NULL when there is none.
static void *take_kept(size_t len) {
    big_block b = {0, 0};
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < KEEP_SLOTS; i++) {
        if (kept[i].addr && kept[i].len == len) {
            b = kept[i];
            for (int k = i; k + 1 < KEEP_SLOTS; k++)
                kept[k] = kept[k + 1];
            kept[KEEP_SLOTS - 1].addr = 0;
            break;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    if (b.addr && !reg_add(b.addr, b.len)) {
        munmap((void *)b.addr, b.len);
        b.addr = 0;
    }
    return (void *)b.addr;
}

// Keep a freed (already unregistered) block; returns the block to unmap instead (the least
// recently freed one, or this one when it is too big), addr 0 when none.
static big_block keep(uintptr_t addr, size_t len) {
    if (len > KEEP_MAX)
        return (big_block){addr, len};
    pthread_mutex_lock(&reg_lock);
    big_block evict = kept[KEEP_SLOTS - 1];
    for (int k = KEEP_SLOTS - 1; k > 0; k--)
        kept[k] = kept[k - 1];
    kept[0] = (big_block){addr, len};
    pthread_mutex_unlock(&reg_lock);
    return evict;
}

// *zeroed: whether the block is known to be zero (a fresh mapping).
static void *alloc_block(size_t nbytes, int *zeroed) {
    *zeroed = 0;
    if (injected_failure())
        return NULL;
    if (nbytes == 0)
        nbytes = 1;
    void *p;
    if (nbytes >= HS_ALLOC_BIG) {
        p = nbytes <= KEEP_MAX ? take_kept((nbytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)) : NULL;
        if (!p) {
            p = big_alloc(nbytes);
            *zeroed = 1;
        }
    } else {
        size_t rounded = (nbytes + 63) & ~(size_t)63;
        p = aligned_alloc(64, rounded);
    }
    if (p)
        atomic_fetch_add(&n_allocs, 1);
    return p;
}

void *hs_alloc(size_t nbytes) {
    int zeroed;
    return alloc_block(nbytes, &zeroed);
}

void *hs_calloc(size_t n, size_t size) {
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    size_t nbytes = n * size;
    int zeroed;
    void *p = alloc_block(nbytes, &zeroed);
    if (p && !zeroed)  // fresh mappings are already zero
        memset(p, 0, nbytes);
    return p;
}

void hs_free(void *p) {
    if (!p)
        return;
    atomic_fetch_add(&n_frees, 1);
    if (((uintptr_t)p & (HUGE_PAGE - 1)) == 0) {
        size_t len = reg_remove((uintptr_t)p);
        if (len) {
            big_block b = keep((uintptr_t)p, len);
            if (b.addr)
                munmap((void *)b.addr, b.len);
            return;
        }
    }
    free(p);
}

uint64_t hs_alloc_count(void) { return atomic_load(&n_allocs); }

void hs_alloc_fail_after(uint64_t n) { atomic_store(&fail_countdown, n); }

uint64_t hs_alloc_injected(void) { return atomic_load(&n_injected); }

int64_t hs_alloc_live(void) { return (int64_t)(atomic_load(&n_allocs) - atomic_load(&n_frees)); }
