// core/loader.c: cache filling, batch assembly with augmentation, and a one-thread prefetcher.
#include "loader.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "geometry.h"
#include "parallel.h"
#include "png_io.h"
#include "rng.h"

// ---------------------------------------------------------------- cache
typedef struct {
    hs_tensor *cache;
    const char *const *paths;
    int *failed;
    char *errors;
    size_t errlen;
} fill_ctx;

static hs_status fill_one(hs_tensor *slot, const char *path) {
    hs_tensor *img = NULL, *conv = NULL;
    hs_status s = hs_image_read(&img, path);
    if (s != HS_OK)
        return s;
    int64_t C = slot->shape[2];
    int64_t ic = img->ndim == 3 ? img->shape[2] : 1;
    if (img->dtype != HS_DTYPE_U8) {
        hs_tensor_free(img);
        return HS_FAIL(HS_ERR_FORMAT, "%s: %s images are not supported by the loader (8-bit only)", path,
                       hs_dtype_name(img->dtype));
    }
    // channel conversion into an (h,w,C) u8 image: gray -> replicate, RGB(A) -> gray (BT.601) or drop alpha
    int64_t shape[3] = {img->shape[0], img->shape[1], C};
    s = hs_tensor_new(&conv, HS_DTYPE_U8, 3, shape);
    if (s != HS_OK) {
        hs_tensor_free(img);
        return s;
    }
    const uint8_t *src = img->data;
    uint8_t *dst = conv->data;
    int64_t npx = shape[0] * shape[1];
    for (int64_t p = 0; p < npx; p++) {
        const uint8_t *q = src + p * ic;
        for (int64_t c = 0; c < C; c++) {
            uint8_t v;
            if (ic >= 3 && C == 1)
                v = (uint8_t)((q[0] * 4899 + q[1] * 9617 + q[2] * 1868 + 8192) >> 14);
            else if (ic >= 3)
                v = q[c < 3 ? c : 2];
            else
                v = q[0];
            dst[p * C + c] = v;
        }
    }
    hs_tensor_free(img);
    hs_interp interp = (shape[0] >= slot->shape[0] && shape[1] >= slot->shape[1]) ? HS_INTERP_AREA : HS_INTERP_BILINEAR;
    if (shape[0] == slot->shape[0] && shape[1] == slot->shape[1])
        s = hs_tensor_copy(slot, conv);
    else
        s = hs_geometry_resize(slot, conv, interp);
    hs_tensor_free(conv);
    return s;
}

static void fill_range(void *vctx, int64_t b, int64_t e) {
    fill_ctx *ctx = vctx;
    for (int64_t i = b; i < e; i++) {
        hs_tensor slot;
        hs_tensor *c = ctx->cache;
        slot.dtype = HS_DTYPE_U8;
        slot.ndim = 3;
        for (int d = 0; d < 3; d++) {
            slot.shape[d] = c->shape[d + 1];
            slot.stride[d] = c->stride[d + 1];
        }
        slot.data = (uint8_t *)c->data + i * c->stride[0];
        slot.storage = NULL;
        hs_status s = fill_one(&slot, ctx->paths[i]);
        if (s != HS_OK) {
            memset(slot.data, 0, (size_t)(c->stride[0]));
            ctx->failed[i] = 1;
            if (ctx->errors) {
                const hs_error *err = hs_last_error();
                snprintf(ctx->errors + (size_t)i * ctx->errlen, ctx->errlen, "%s", err->msg);
            }
        } else {
            ctx->failed[i] = 0;
        }
    }
}

hs_status hs_loader_fill_cache(hs_tensor *cache, const char *const *paths, int64_t n, int *failed, char *errors,
                               size_t errlen, int64_t *nfailed) {
    char a[64];
    if (cache->dtype != HS_DTYPE_U8 || cache->ndim != 4 || !hs_tensor_is_contiguous(cache) || cache->shape[0] != n ||
        (cache->shape[3] != 1 && cache->shape[3] != 3))
        return HS_FAIL(HS_ERR_SHAPE, "loader: cache must be a contiguous (N=%lld,H,W,1|3) u8 tensor, got %s %s",
                       (long long)n, hs_dtype_name(cache->dtype), hs_tensor_shape_str(cache, a, sizeof a));
    fill_ctx ctx = {cache, paths, failed, errors, errlen};
    hs_parallel_for(n, 1, fill_range, &ctx);
    int64_t nf = 0;
    for (int64_t i = 0; i < n; i++)
        nf += failed[i] != 0;
    *nfailed = nf;
    return HS_OK;
}

// ---------------------------------------------------------------- batches
void hs_batch_spec_init(hs_batch_spec *s, int out_h, int out_w) {
    memset(s, 0, sizeof *s);
    s->out_h = out_h;
    s->out_w = out_w;
    for (int c = 0; c < 4; c++)
        s->std[c] = 1;
}

// RNG stream ids for the per-item random choices
enum { R_CROP_Y = 1, R_CROP_X, R_HFLIP, R_VFLIP, R_ROT, R_BRIGHT, R_CONTRAST, R_HED0, R_SHUFFLE = 100 };

static float item_uniform(const hs_batch_spec *s, uint64_t epoch, int64_t item, int what) {
    return hs_rng_uniform(s->seed ^ (epoch * 0x9E3779B97F4A7C15ULL), (uint64_t)what, (uint64_t)item);
}
static float item_normal(const hs_batch_spec *s, uint64_t epoch, int64_t item, int what) {
    return hs_rng_normal(s->seed ^ (epoch * 0x9E3779B97F4A7C15ULL), (uint64_t)what, (uint64_t)item);
}

// H-DAB-E style stain matrix (Ruifrok & Johnston H&E&DAB rows), for OD-space jitter
static const float stains[3][3] = {{0.650f, 0.704f, 0.286f}, {0.072f, 0.990f, 0.105f}, {0.268f, 0.570f, 0.776f}};
static float inv_stains[3][3];
static pthread_once_t inv_once = PTHREAD_ONCE_INIT;
static void compute_inverse(void) {
    const float(*m)[3] = stains;
    float det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int i1 = (j + 1) % 3, i2 = (j + 2) % 3, j1 = (i + 1) % 3, j2 = (i + 2) % 3;
            inv_stains[i][j] = (m[i1][j1] * m[i2][j2] - m[i1][j2] * m[i2][j1]) / det;
        }
}

typedef struct {
    int oy, ox, hflip, vflip, rot;
    float bright, contrast, hed[3];
} item_aug;

static item_aug draw_aug(const hs_batch_spec *s, int64_t H, int64_t W, uint64_t epoch, int64_t item, int training) {
    item_aug a;
    memset(&a, 0, sizeof a);
    a.contrast = 1;
    a.hed[0] = a.hed[1] = a.hed[2] = 1;
    if (!training) {
        a.oy = (int)((H - s->out_h) / 2);
        a.ox = (int)((W - s->out_w) / 2);
        return a;
    }
    a.oy = (int)floorf(item_uniform(s, epoch, item, R_CROP_Y) * (float)(H - s->out_h + 1));
    a.ox = (int)floorf(item_uniform(s, epoch, item, R_CROP_X) * (float)(W - s->out_w + 1));
    a.hflip = s->hflip && item_uniform(s, epoch, item, R_HFLIP) < 0.5f;
    a.vflip = s->vflip && item_uniform(s, epoch, item, R_VFLIP) < 0.5f;
    a.rot = s->rot90 ? (int)floorf(item_uniform(s, epoch, item, R_ROT) * 4.0f) & 3 : 0;
    if (s->brightness > 0)
        a.bright = (2 * item_uniform(s, epoch, item, R_BRIGHT) - 1) * s->brightness * 255.0f;
    if (s->contrast > 0)
        a.contrast = 1 + (2 * item_uniform(s, epoch, item, R_CONTRAST) - 1) * s->contrast;
    if (s->hed_sigma > 0)
        for (int k = 0; k < 3; k++)
            a.hed[k] = fmaxf(0.0f, 1 + s->hed_sigma * item_normal(s, epoch, item, R_HED0 + k));
    return a;
}

// output pixel (y, x) of an h x w crop -> source pixel of the crop after flips/rotation
static void src_coord(const item_aug *a, int h, int w, int y, int x, int *sy, int *sx) {
    int yy = y, xx = x;
    for (int r = 0; r < a->rot; r++) {  // rotate by 90° counter-clockwise r times (square crops)
        int t = yy;
        yy = xx;
        xx = w - 1 - t;
    }
    if (a->hflip)
        xx = w - 1 - xx;
    if (a->vflip)
        yy = h - 1 - yy;
    *sy = a->oy + yy;
    *sx = a->ox + xx;
}

typedef struct {
    hs_tensor *x, *mask_out;
    const hs_tensor *cache, *mask_cache;
    const int64_t *idx;
    const hs_batch_spec *s;
    int training;
    uint64_t epoch;
} batch_ctx;

static void make_items(void *vctx, int64_t b0, int64_t b1) {
    batch_ctx *ctx = vctx;
    const hs_batch_spec *s = ctx->s;
    const hs_tensor *cache = ctx->cache;
    int64_t H = cache->shape[1], W = cache->shape[2], C = cache->shape[3];
    int h = s->out_h, w = s->out_w;
    float *xo = ctx->x->data;
    float mean[4], inv_std[4];
    for (int c = 0; c < 4; c++) {
        mean[c] = s->mean[c];
        inv_std[c] = s->std[c] != 0 ? 1.0f / s->std[c] : 1.0f;
    }
    for (int64_t b = b0; b < b1; b++) {
        int64_t item = ctx->idx[b];
        item_aug a = draw_aug(s, H, W, ctx->epoch, item, ctx->training);
        const uint8_t *img = (const uint8_t *)cache->data + item * H * W * C;
        int jitter = ctx->training && C == 3 && (a.hed[0] != 1 || a.hed[1] != 1 || a.hed[2] != 1);
        float mean_px = 0;
        if (a.contrast != 1) {  // contrast around the crop's mean intensity
            double acc = 0;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int64_t c = 0; c < C; c++)
                        acc += img[((a.oy + y) * W + a.ox + x) * C + c];
            mean_px = (float)(acc / ((double)h * w * (double)C));
        }
        float *xb = xo + b * C * h * w;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int sy, sx;
                src_coord(&a, h, w, y, x, &sy, &sx);
                const uint8_t *p = img + (sy * W + sx) * C;
                float v[4];
                for (int64_t c = 0; c < C; c++)
                    v[c] = p[c];
                if (jitter) {
                    float od[3], conc[3];
                    for (int c = 0; c < 3; c++)
                        od[c] = -logf((v[c] + 1.0f) / 256.0f);
                    for (int k = 0; k < 3; k++)
                        conc[k] = (od[0] * inv_stains[0][k] + od[1] * inv_stains[1][k] + od[2] * inv_stains[2][k]) * a.hed[k];
                    for (int c = 0; c < 3; c++) {
                        float o = conc[0] * stains[0][c] + conc[1] * stains[1][c] + conc[2] * stains[2][c];
                        v[c] = 256.0f * expf(-o) - 1.0f;
                    }
                }
                for (int64_t c = 0; c < C; c++) {
                    float t = (v[c] - mean_px) * a.contrast + mean_px + a.bright;
                    t = t < 0 ? 0 : t > 255 ? 255 : t;
                    xb[(c * h + y) * w + x] = (t * (1.0f / 255.0f) - mean[c]) * inv_std[c];
                }
            }
        }
        if (ctx->mask_out) {
            const uint8_t *m = (const uint8_t *)ctx->mask_cache->data + item * H * W;
            float *mo = (float *)ctx->mask_out->data + b * h * w;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    int sy, sx;
                    src_coord(&a, h, w, y, x, &sy, &sx);
                    mo[y * w + x] = (m[sy * W + sx] >= 128) != (s->invert_mask != 0) ? 1.0f : 0.0f;
                }
        }
    }
}

static hs_status check_batch(const hs_tensor *x, const hs_tensor *mask_out, const hs_tensor *cache,
                             const hs_tensor *mask_cache, int64_t b, const hs_batch_spec *s) {
    char a[64], c[64];
    if (cache->dtype != HS_DTYPE_U8 || cache->ndim != 4 || !hs_tensor_is_contiguous(cache))
        return HS_FAIL(HS_ERR_SHAPE, "loader: cache must be a contiguous (N,H,W,C) u8 tensor, got %s",
                       hs_tensor_shape_str(cache, a, sizeof a));
    int64_t H = cache->shape[1], W = cache->shape[2], C = cache->shape[3];
    if (s->out_h < 1 || s->out_w < 1 || s->out_h > H || s->out_w > W)
        return HS_FAIL(HS_ERR_ARG, "loader: output size %dx%d does not fit in cached images of %lldx%lld", s->out_w,
                       s->out_h, (long long)W, (long long)H);
    if (s->rot90 && s->out_h != s->out_w)
        return HS_FAIL(HS_ERR_ARG, "loader: rot90 augmentation needs a square output, got %dx%d", s->out_w, s->out_h);
    if (C > 4)
        return HS_FAIL(HS_ERR_SHAPE, "loader: at most 4 channels, got %lld", (long long)C);
    if (x->dtype != HS_DTYPE_F32 || x->ndim != 4 || !hs_tensor_is_contiguous(x) || x->shape[0] < b ||
        x->shape[1] != C || x->shape[2] != s->out_h || x->shape[3] != s->out_w)
        return HS_FAIL(HS_ERR_SHAPE, "loader: batch tensor %s, want f32 [>=%lld,%lld,%d,%d]",
                       hs_tensor_shape_str(x, a, sizeof a), (long long)b, (long long)C, s->out_h, s->out_w);
    if (mask_out) {
        if (!mask_cache || mask_cache->dtype != HS_DTYPE_U8 || mask_cache->ndim != 4 || mask_cache->shape[0] != cache->shape[0] ||
            mask_cache->shape[1] != H || mask_cache->shape[2] != W || mask_cache->shape[3] != 1 ||
            !hs_tensor_is_contiguous(mask_cache))
            return HS_FAIL(HS_ERR_SHAPE, "loader: mask cache must be u8 (N,H,W,1) matching the image cache %s",
                           hs_tensor_shape_str(cache, a, sizeof a));
        if (mask_out->dtype != HS_DTYPE_F32 || mask_out->ndim != 4 || !hs_tensor_is_contiguous(mask_out) ||
            mask_out->shape[0] < b || mask_out->shape[1] != 1 || mask_out->shape[2] != s->out_h ||
            mask_out->shape[3] != s->out_w)
            return HS_FAIL(HS_ERR_SHAPE, "loader: mask batch %s, want f32 [>=%lld,1,%d,%d]",
                           hs_tensor_shape_str(mask_out, c, sizeof c), (long long)b, s->out_h, s->out_w);
    }
    return HS_OK;
}

hs_status hs_loader_make_batch(hs_tensor *x, hs_tensor *mask_out, const hs_tensor *cache, const hs_tensor *mask_cache,
                               const int64_t *idx, int64_t b, const hs_batch_spec *s, int training, uint64_t epoch) {
    HS_TRY(check_batch(x, mask_out, cache, mask_cache, b, s));
    for (int64_t i = 0; i < b; i++)
        if (idx[i] < 0 || idx[i] >= cache->shape[0])
            return HS_FAIL(HS_ERR_ARG, "loader: item index %lld out of range 0..%lld", (long long)idx[i],
                           (long long)cache->shape[0] - 1);
    pthread_once(&inv_once, compute_inverse);
    batch_ctx ctx = {x, mask_out, cache, mask_cache, idx, s, training, epoch};
    make_items(&ctx, 0, b);  // the prefetch thread overlaps this with training; items are independent
    return HS_OK;
}

// ---------------------------------------------------------------- prefetching loader
struct hs_loader {
    const hs_tensor *cache, *labels, *mask_cache;
    hs_batch_spec spec;
    int64_t n, batch, nbatches;
    int64_t local, offset;       // data-parallel shard: rows [offset, offset+local) of each batch
    int shuffle, drop_last, training;
    uint64_t epoch;
    int64_t *order;              // (n) item order of this epoch
    hs_tensor *buf_x, *buf_m;    // prefetched batch
    int64_t buf_idx_start, buf_count;  // which batch is in the buffer
    int64_t next_batch;          // batch to hand out next
    hs_status buf_status;
    char buf_msg[512];
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int want;                    // batch index the worker should prepare (-1: none)
    int ready;                   // buffer holds batch `want`
    int quit, started;
};

static void *prefetch_main(void *arg) {
    hs_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && (l->want < 0 || l->ready))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit)
            break;
        int64_t bi = l->want;
        uint64_t epoch = l->epoch;
        pthread_mutex_unlock(&l->mu);
        int64_t gstart = bi * l->batch, gcnt = l->n - gstart < l->batch ? l->n - gstart : l->batch;
        int64_t start = gstart + l->offset, cnt = gcnt - l->offset;  // this shard's rows
        cnt = cnt < 0 ? 0 : cnt > l->local ? l->local : cnt;
        hs_status s = cnt == 0 ? HS_OK
                               : hs_loader_make_batch(l->buf_x, l->buf_m, l->cache, l->mask_cache, l->order + start,
                                                      cnt, &l->spec, l->training, epoch);
        pthread_mutex_lock(&l->mu);
        l->buf_status = s;
        if (s != HS_OK)
            snprintf(l->buf_msg, sizeof l->buf_msg, "%s", hs_last_error()->msg);
        l->buf_idx_start = start;
        l->buf_count = cnt;
        l->ready = 1;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

hs_status hs_loader_new(hs_loader **out, const hs_tensor *cache, const hs_tensor *labels, const hs_tensor *mask_cache,
                        const hs_batch_spec *s, int64_t batch, int shuffle, int drop_last, int training) {
    return hs_loader_new_shard(out, cache, labels, mask_cache, s, batch, shuffle, drop_last, training, 0, 1);
}

hs_status hs_loader_new_shard(hs_loader **out, const hs_tensor *cache, const hs_tensor *labels,
                              const hs_tensor *mask_cache, const hs_batch_spec *s, int64_t batch, int shuffle,
                              int drop_last, int training, int shard_rank, int shard_size) {
    *out = NULL;
    if (batch < 1)
        return HS_FAIL(HS_ERR_ARG, "loader: batch size must be >= 1, got %lld", (long long)batch);
    if (shard_size < 1 || shard_rank < 0 || shard_rank >= shard_size)
        return HS_FAIL(HS_ERR_ARG, "loader: shard %d of %d is out of range", shard_rank, shard_size);
    if (batch % shard_size != 0)
        return HS_FAIL(HS_ERR_ARG, "loader: global batch %lld is not divisible by %d data-parallel ranks "
                       "(set train.batch to a multiple of %d)", (long long)batch, shard_size, shard_size);
    if (cache->ndim != 4 || cache->shape[0] < 1)
        return HS_FAIL(HS_ERR_SHAPE, "loader: empty or malformed cache");
    int64_t n = cache->shape[0], C = cache->shape[3];
    if (labels && (labels->dtype != HS_DTYPE_I64 || labels->ndim != 1 || labels->shape[0] != n ||
                   !hs_tensor_is_contiguous(labels)))
        return HS_FAIL(HS_ERR_SHAPE, "loader: labels must be contiguous i64 (%lld)", (long long)n);
    hs_loader *l = hs_calloc(1, sizeof *l);
    if (!l)
        return HS_FAIL(HS_ERR_NOMEM, "loader: out of memory");
    l->cache = cache;
    l->labels = labels;
    l->mask_cache = mask_cache;
    l->spec = *s;
    l->n = n;
    l->batch = batch;
    l->local = batch / shard_size;
    l->offset = (int64_t)shard_rank * l->local;
    l->shuffle = shuffle;
    l->drop_last = drop_last;
    l->training = training;
    l->nbatches = drop_last ? n / batch : (n + batch - 1) / batch;
    l->want = -1;
    int64_t xs[4] = {l->local, C, s->out_h, s->out_w}, ms[4] = {l->local, 1, s->out_h, s->out_w};
    l->order = hs_alloc(sizeof(int64_t) * (size_t)n);
    hs_status st = l->order ? HS_OK : HS_FAIL(HS_ERR_NOMEM, "loader: out of memory");
    if (st == HS_OK)
        st = hs_tensor_new(&l->buf_x, HS_DTYPE_F32, 4, xs);
    if (st == HS_OK && mask_cache)
        st = hs_tensor_new(&l->buf_m, HS_DTYPE_F32, 4, ms);
    if (st == HS_OK)
        st = check_batch(l->buf_x, l->buf_m, cache, mask_cache, l->local, s);
    if (st == HS_OK) {
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        if (pthread_create(&l->th, NULL, prefetch_main, l) != 0) {
            pthread_mutex_destroy(&l->mu);
            pthread_cond_destroy(&l->cv);
            st = HS_FAIL(HS_ERR_STATE, "loader: cannot start the prefetch thread");
        } else {
            l->started = 1;
        }
    }
    if (st != HS_OK) {
        hs_loader_free(l);
        return st;
    }
    pthread_once(&inv_once, compute_inverse);
    for (int64_t i = 0; i < n; i++)
        l->order[i] = i;
    *out = l;
    return HS_OK;
}

void hs_loader_free(hs_loader *l) {
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->th, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    hs_tensor_free(l->buf_x);
    hs_tensor_free(l->buf_m);
    hs_free(l->order);
    hs_free(l);
}

int64_t hs_loader_num_batches(const hs_loader *l) { return l->nbatches; }

static void request(hs_loader *l, int64_t bi) {  // mu held
    l->want = bi < l->nbatches ? (int)bi : -1;
    l->ready = 0;
    pthread_cond_broadcast(&l->cv);
}

hs_status hs_loader_start_epoch(hs_loader *l, uint64_t epoch) {
    pthread_mutex_lock(&l->mu);
    while (l->want >= 0 && !l->ready)  // let an in-flight batch finish before reshuffling
        pthread_cond_wait(&l->cv, &l->mu);
    l->epoch = epoch;
    for (int64_t i = 0; i < l->n; i++)
        l->order[i] = i;
    if (l->shuffle) {  // Fisher-Yates from the counter RNG keyed by (seed, epoch)
        for (int64_t i = l->n - 1; i > 0; i--) {
            uint64_t r = hs_rng_u64(l->spec.seed, R_SHUFFLE + epoch, (uint64_t)i);
            int64_t j = (int64_t)(r % (uint64_t)(i + 1));
            int64_t t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->next_batch = 0;
    request(l, 0);
    pthread_mutex_unlock(&l->mu);
    return HS_OK;
}

hs_status hs_loader_next(hs_loader *l, hs_tensor *x, hs_tensor *y, int64_t *idx_out, int64_t *count) {
    char a[64];
    *count = 0;
    pthread_mutex_lock(&l->mu);
    if (l->next_batch >= l->nbatches || l->want < 0) {
        pthread_mutex_unlock(&l->mu);
        return HS_OK;
    }
    while (!l->ready)
        pthread_cond_wait(&l->cv, &l->mu);
    hs_status s = l->buf_status;
    if (s != HS_OK) {
        pthread_mutex_unlock(&l->mu);
        return HS_FAIL(s, "%s", l->buf_msg);
    }
    int64_t cnt = l->buf_count, start = l->buf_idx_start;
    if (!hs_tensor_same_shape(x, l->buf_x) || x->dtype != HS_DTYPE_F32 || !hs_tensor_is_contiguous(x)) {
        pthread_mutex_unlock(&l->mu);
        return HS_FAIL(HS_ERR_SHAPE, "loader: batch tensor %s does not match the loader's %s",
                       hs_tensor_shape_str(x, a, sizeof a), hs_tensor_shape_str(l->buf_x, a + 32, 32));
    }
    memcpy(x->data, l->buf_x->data, hs_tensor_nbytes(x));
    if (y && l->buf_m) {
        if (!hs_tensor_same_shape(y, l->buf_m) || y->dtype != HS_DTYPE_F32) {
            pthread_mutex_unlock(&l->mu);
            return HS_FAIL(HS_ERR_SHAPE, "loader: mask batch tensor %s does not match the loader's",
                           hs_tensor_shape_str(y, a, sizeof a));
        }
        memcpy(y->data, l->buf_m->data, hs_tensor_nbytes(y));
    } else if (y && l->labels) {
        if (y->dtype != HS_DTYPE_I64 || y->ndim != 1 || y->shape[0] != l->local) {
            pthread_mutex_unlock(&l->mu);
            return HS_FAIL(HS_ERR_SHAPE, "loader: label batch must be i64 (%lld), got %s", (long long)l->local,
                           hs_tensor_shape_str(y, a, sizeof a));
        }
        int64_t *yy = y->data;
        const int64_t *lab = l->labels->data;
        for (int64_t i = 0; i < l->local; i++)
            yy[i] = i < cnt ? lab[l->order[start + i]] : 0;
    }
    if (idx_out)
        for (int64_t i = 0; i < cnt; i++)
            idx_out[i] = l->order[start + i];
    *count = cnt;
    l->next_batch++;
    request(l, l->next_batch);
    pthread_mutex_unlock(&l->mu);
    return HS_OK;
}
