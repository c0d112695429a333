// core/loader.h: the data loader: decode a list of image files into a u8 cache (in parallel),
// then assemble training/evaluation batches from it — random crop, flips, 90° rotations,
// brightness/contrast and HED-space stain jitter, normalisation to (B,C,h,w) float — in a
// background thread that prefetches the next batch while the model trains. Every random choice
// for item i of epoch e comes from the counter-based RNG keyed by (seed, e, i), so batches are
// identical for a seed whatever the thread count. Not a file-format or data-set layer (that is
// hs/data.lua). Dimension letters: N items, B batch, H/W cache size, h/w output size, C channels.
#ifndef HS_LOADER_H
#define HS_LOADER_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

// Decode paths[i] (PNG or JPEG), convert to C channels (gray <-> RGB, alpha dropped) and resize
// (area when shrinking, bilinear when enlarging) into cache[i]: cache (N,H,W,C) u8. A file that
// cannot be read leaves its slot zeroed, sets failed[i] = 1 and writes the message into
// errors + i*errlen (if errors != NULL). *nfailed receives the count. Runs on hs_parallel_for.
hs_status hs_loader_fill_cache(hs_tensor *cache, const char *const *paths, int64_t n, int *failed, char *errors,
                               size_t errlen, int64_t *nfailed);

typedef struct {
    int out_h, out_w;          // output size (<= cache size): random crop (training) or centre crop
    int hflip, vflip, rot90;   // random flips / rotations by multiples of 90° (training; rot90 needs h == w)
    float brightness;          // add U(-b, b) * 255 (training)
    float contrast;            // scale around the mean by U(1-c, 1+c) (training)
    float hed_sigma;           // HED stain jitter: per-stain OD scale N(1, sigma) (training, RGB only)
    float mean[4], std[4];     // normalisation of v/255 per channel (std 0 -> 1)
    int invert_mask;           // masks: foreground where the mask is < 128 instead of >= 128
    uint64_t seed;
} hs_batch_spec;

void hs_batch_spec_init(hs_batch_spec *s, int out_h, int out_w);

// Assemble one batch from items idx[0..b-1] of the cache: x (b,C,h,w) F32; if mask_cache (N,H,W,1)
// is given, mask_out (b,1,h,w) F32 receives the matching mask (geometric augmentation only,
// values v/255 rounded to 0/1). training = 0: centre crop, no augmentation.
hs_status hs_loader_make_batch(hs_tensor *x, hs_tensor *mask_out, const hs_tensor *cache, const hs_tensor *mask_cache,
                               const int64_t *idx, int64_t b, const hs_batch_spec *s, int training, uint64_t epoch);

// Prefetching loader over a cache (borrowed for the loader's life), labels I64 (N) or NULL,
// mask_cache or NULL.
typedef struct hs_loader hs_loader;
hs_status hs_loader_new(hs_loader **out, const hs_tensor *cache, const hs_tensor *labels, const hs_tensor *mask_cache,
                        const hs_batch_spec *s, int64_t batch, int shuffle, int drop_last, int training);
// Data-parallel shard of that loader: `batch` is the GLOBAL batch B and must be divisible by
// shard_size P; the loader hands out rows [r*B/P, (r+1)*B/P) (r = shard_rank) of every global
// batch — same item order and per-item augmentation as the unsharded loader, so P shards together
// are exactly its batches. Batch tensors are (B/P, ...). shard_rank 0, shard_size 1: hs_loader_new.
hs_status hs_loader_new_shard(hs_loader **out, const hs_tensor *cache, const hs_tensor *labels,
                              const hs_tensor *mask_cache, const hs_batch_spec *s, int64_t batch, int shuffle,
                              int drop_last, int training, int shard_rank, int shard_size);
void hs_loader_free(hs_loader *l);
int64_t hs_loader_num_batches(const hs_loader *l);
// Start epoch e: shuffle (seeded by (seed, e)) and prefetch the first batch in the background.
hs_status hs_loader_start_epoch(hs_loader *l, uint64_t epoch);
// Copy the next batch into x (batch,C,h,w) F32 and y (labels: (batch) I64; masks: (batch,1,h,w)
// F32; NULL to skip), *count = items in it (0 at the end of the epoch; the last batch may be
// short unless drop_last), and start preparing the one after. idx_out (batch) receives the item
// indices (may be NULL).
hs_status hs_loader_next(hs_loader *l, hs_tensor *x, hs_tensor *y, int64_t *idx_out, int64_t *count);

#endif
