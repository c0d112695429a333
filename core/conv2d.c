// core/conv2d.c: conv2d and conv_transpose2d on NCHW float32 (see conv2d.h). The fast paths are
// im2col + OpenBLAS sgemm (a 1x1 stride-1 unpadded conv is a plain GEMM on x), a direct loop
// for depthwise convs and, on AVX-512 builds, the direct 3x3 stride-1 kernels of conv3x3.c for
// up to 256 channels (forward, dx and dW; see choose_c3); the *_ref functions are the plain loops
// the tests trust. Not a layer.
// The algorithm is picked per shape: large images run as row tiles and small images as blocks of
// whole images, both on LANES fixed lanes with single-threaded GEMMs on cache-sized columns;
// when there are too few blocks to fill the lanes (batch-1 inference), one wide GEMM, which
// hs_sgemm splits over the pool. A per-channel epilogue (folded eval batchnorm + ReLU) runs on
// each tile.
//
// Letters: N batch, C in channels, H/W in size, Cout out channels, KH/KW kernel, Ho/Wo out size,
// G groups, Cg = C/G, Coutg = Cout/G, P = pixels of the GEMM grid, K = Cg*KH*KW.
//
// Batching: images are processed in blocks of up to T (a function of the shapes only, never of
// the thread count). For small images the columns of the T images sit side by side, (K, T*P),
// so that one GEMM has a useful width; the GEMM result then goes through a (Coutg, T*P) buffer.
// im2col/col2im and the scatters run under hs_parallel_for on (image, channel) planes, each task
// writing its own rows or plane, and every reduction over the batch (dW, dbias) runs in a fixed
// order (GEMM with beta = 1 block after block), so the results do not depend on the threads.
#include "conv2d.h"

#include <limits.h>
#include <string.h>

#include "blas.h"
#include "conv3x3.h"
#include "parallel.h"
#include "tensor.h"

#define BLOCK_TARGET_PIXELS 2048  // aim for GEMMs at least this wide (T*P)
#define BLOCK_MAX_IMAGES 16       // T never exceeds this (bounds the workspace)
#define TASK_FLOATS 32768         // rough work per hs_parallel_for chunk
#define LANES 4                   // tiled forward: fixed number of work lanes (not the thread count)
#define TILE_FLOATS (192 * 1024)  // tiled forward: columns of one tile (~768 KB, stays in L2)

// ---- geometry ----

// The sliding window shared by conv forward (image = x, grid = out) and the transposed conv
// (image = out, grid = x): image row ih = gh*sh - ph + kh*dh for grid row gh.
typedef struct {
    int64_t Hi, Wi, Hg, Wg, KH, KW;
    int64_t sh, sw, ph, pw, dh, dw;
} win;

typedef struct {
    int64_t N, C, H, W, Cout, KH, KW, Ho, Wo, G, Cg, Coutg;
    win im;       // conv: image x, grid out; convt: image out, grid x
    int64_t P;    // grid pixels: conv Ho*Wo, convt H*W
    int64_t K;    // GEMM depth of the columns: conv Cg*KH*KW, convt Coutg*KH*KW
    int64_t T;    // images per block
    int direct;   // conv: 1x1, stride 1, no padding (x is its own column matrix)
    int depthwise;
    int tiled;    // conv forward on large images: tiles of rb output rows, see tile_fwd_lane
    int64_t rb, nblk;
    int imgblk;   // conv on small images: lanes take blocks of tb whole images, see blk_fwd_lane
    int64_t tb, nitems;
    int dwt;      // lanes: dW partials stored transposed, (K, Coutg) per group (see lane_dw_gemm)
    int c3;       // direct 3x3 stride-1 kernels (conv3x3.c) on tiles of c3_nb images x c3_rows rows
    int c3_dw;    // dW: C3_DW_GEMM (im2col + sgemm), C3_DW_CH or C3_DW_PX (conv3x3.h's two kernels)
    int64_t c3_nb, c3_nblk, c3_rows, c3_rows_dx, c3_items;
} geom;

static int64_t ceil_div(int64_t a, int64_t b) {  // b > 0, a any sign
    return a <= 0 ? -((-a) / b) : (a + b - 1) / b;
}

static int64_t block_images(int64_t N, int64_t P) {
    int64_t t = (BLOCK_TARGET_PIXELS + P - 1) / P;
    if (t > BLOCK_MAX_IMAGES)
        t = BLOCK_MAX_IMAGES;
    if (t > N)
        t = N;
    return t < 1 ? 1 : t;
}

static int64_t grain_for(int64_t floats_per_task) {
    int64_t g = TASK_FLOATS / (floats_per_task > 0 ? floats_per_task : 1);
    return g < 1 ? 1 : g;
}

// [lo, hi): grid columns whose image column gw*sw - pw + kw*dw falls inside [0, Wi).
static void col_range(const win *g, int64_t kw, int64_t *lo, int64_t *hi) {
    int64_t off = kw * g->dw - g->pw;
    int64_t l = ceil_div(-off, g->sw), h = ceil_div(g->Wi - off, g->sw);
    if (l < 0)
        l = 0;
    if (h > g->Wg)
        h = g->Wg;
    if (h < l)
        h = l;
    *lo = l;
    *hi = h;
}

// col rows (kh*KW + kw), each holding grid rows [oh0, oh1) (Wg values each), row stride ldc:
// col = unfold(img) restricted to those grid rows.
static void im2col_rows(float *col, int64_t ldc, const float *img, const win *g, int64_t oh0, int64_t oh1) {
    for (int64_t kh = 0; kh < g->KH; kh++) {
        for (int64_t kw = 0; kw < g->KW; kw++) {
            float *row = col + (kh * g->KW + kw) * ldc;
            int64_t lo, hi, off = kw * g->dw - g->pw;
            col_range(g, kw, &lo, &hi);
            for (int64_t oh = oh0; oh < oh1; oh++) {
                float *dst = row + (oh - oh0) * g->Wg;
                int64_t ih = oh * g->sh - g->ph + kh * g->dh;
                if (ih < 0 || ih >= g->Hi) {
                    memset(dst, 0, (size_t)g->Wg * sizeof(float));
                    continue;
                }
                const float *src = img + ih * g->Wi + off;
                if (lo > 0)
                    memset(dst, 0, (size_t)lo * sizeof(float));
                if (g->sw == 1) {
                    memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
                } else {
                    int64_t s = g->sw;
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[ow] = src[ow * s];
                }
                if (hi < g->Wg)
                    memset(dst + hi, 0, (size_t)(g->Wg - hi) * sizeof(float));
            }
        }
    }
}

static void im2col_plane(float *col, int64_t ldc, const float *img, const win *g) {
    im2col_rows(col, ldc, img, g, 0, g->Hg);
}

// img += fold(col) for grid rows [oh0, oh1): the adjoint of im2col_rows.
static void col2im_rows(float *img, const float *col, int64_t ldc, const win *g, int64_t oh0, int64_t oh1) {
    for (int64_t kh = 0; kh < g->KH; kh++) {
        for (int64_t kw = 0; kw < g->KW; kw++) {
            const float *row = col + (kh * g->KW + kw) * ldc;
            int64_t lo, hi, off = kw * g->dw - g->pw;
            col_range(g, kw, &lo, &hi);
            for (int64_t oh = oh0; oh < oh1; oh++) {
                int64_t ih = oh * g->sh - g->ph + kh * g->dh;
                if (ih < 0 || ih >= g->Hi)
                    continue;
                const float *src = row + (oh - oh0) * g->Wg;
                float *dst = img + ih * g->Wi + off;
                if (g->sw == 1) {
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[ow] += src[ow];
                } else {
                    int64_t s = g->sw;
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[ow * s] += src[ow];
                }
            }
        }
    }
}

static void col2im_plane(float *img, const float *col, int64_t ldc, const win *g) {
    col2im_rows(img, col, ldc, g, 0, g->Hg);
}

// ---- parallel plane tasks: task i = (t, c) with t = i / nch, c = i % nch ----

typedef struct {
    const geom *g;
    float *col;             // (rows, ldc)
    int64_t ldc;            // tb * P
    int64_t nch;            // channels per image in the task grid
    int64_t P;              // pixels of one column block (= geometry grid)
    const float *img;       // first plane of the block's first image in this group
    float *img_w;           // writable variant (col2im, scatter)
    int64_t img_stride;     // floats between images
    int64_t plane;          // floats of one image plane
    const float *bias;      // scatter: per-channel bias or NULL
    int add;                // scatter: += instead of =
    int zero;               // col2im: clear the plane first (dx assigned, not added)
} plane_job;

static void im2col_task(void *ctx, int64_t b, int64_t e) {
    const plane_job *j = ctx;
    int64_t kk = j->g->im.KH * j->g->im.KW;
    for (int64_t i = b; i < e; i++) {
        int64_t t = i / j->nch, c = i % j->nch;
        im2col_plane(j->col + c * kk * j->ldc + t * j->P, j->ldc, j->img + t * j->img_stride + c * j->plane, &j->g->im);
    }
}

static void col2im_task(void *ctx, int64_t b, int64_t e) {
    const plane_job *j = ctx;
    int64_t kk = j->g->im.KH * j->g->im.KW;
    for (int64_t i = b; i < e; i++) {
        int64_t t = i / j->nch, c = i % j->nch;
        float *img = j->img_w + t * j->img_stride + c * j->plane;
        if (j->zero)
            memset(img, 0, (size_t)j->plane * sizeof *img);
        col2im_plane(img, j->col + c * kk * j->ldc + t * j->P, j->ldc, &j->g->im);
    }
}

// (nch, tb*P) block buffer <-> per-image planes. gather: col[c][t*P..] = img plane (t, c);
// scatter: plane (t, c) (+)= col[c][t*P..] (+ bias[c]).
static void gather_task(void *ctx, int64_t b, int64_t e) {
    const plane_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        int64_t t = i / j->nch, c = i % j->nch;
        memcpy(j->col + c * j->ldc + t * j->P, j->img + t * j->img_stride + c * j->plane, (size_t)j->P * sizeof(float));
    }
}

static void scatter_task(void *ctx, int64_t b, int64_t e) {
    const plane_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        int64_t t = i / j->nch, c = i % j->nch;
        const float *src = j->col + c * j->ldc + t * j->P;
        float *dst = j->img_w + t * j->img_stride + c * j->plane;
        float bv = j->bias ? j->bias[c] : 0.0f;
        if (j->add) {
            for (int64_t k = 0; k < j->P; k++)
                dst[k] += src[k];
        } else {
            for (int64_t k = 0; k < j->P; k++)
                dst[k] = src[k] + bv;
        }
    }
}

// Fill each (n, c) plane of `out` with bias[c] (or 0).
typedef struct {
    float *out;
    const float *bias;
    int64_t C, plane;
} fill_job;

static void fill_task(void *ctx, int64_t b, int64_t e) {
    const fill_job *j = ctx;
    for (int64_t i = b; i < e; i++) {
        float v = j->bias ? j->bias[i % j->C] : 0.0f;
        float *o = j->out + i * j->plane;
        for (int64_t k = 0; k < j->plane; k++)
            o[k] = v;
    }
}

static void fill_planes(float *out, const float *bias, int64_t N, int64_t C, int64_t plane) {
    fill_job j = {out, bias, C, plane};
    hs_parallel_for(N * C, grain_for(plane), fill_task, &j);
}

// dbias[c] += sum over n and the plane of dout[n][c]; each channel summed in a fixed order.
typedef struct {
    float *dbias;
    const float *dout;
    int64_t N, C, plane;
} sum_job;

static void sum_task(void *ctx, int64_t b, int64_t e) {
    const sum_job *j = ctx;
    for (int64_t c = b; c < e; c++) {
        double s = 0;
        for (int64_t n = 0; n < j->N; n++) {
            const float *d = j->dout + (n * j->C + c) * j->plane;
            float ps = 0.0f;
            for (int64_t k = 0; k < j->plane; k++)
                ps += d[k];
            s += (double)ps;
        }
        j->dbias[c] += (float)s;
    }
}

static void channel_sums(float *dbias, const float *dout, int64_t N, int64_t C, int64_t plane) {
    sum_job j = {dbias, dout, N, C, plane};
    hs_parallel_for(C, grain_for(N * plane), sum_task, &j);
}

// ---- conv2d: shapes ----

// Direct 3x3 path (conv3x3.c): chosen for 3x3, stride 1, no dilation, one group, padding <= 2 and
// channel counts up to C3_MAX_CH, where im2col + sgemm spends most of its time packing (measured
// per layer shape of the reference CNN and U-Net, 2 threads: forward and dx 1.3-2.5x faster at 8
// to 128 pixels per row). dW: vectorised over output channels (C3_DW_CH) from 16 input channels
// up, 1.2-1.7x im2col + sgemm at 16 to 32 pixels per row and on par at 8; with fewer input
// channels the transposed dout does not pay, and rows of 32+ pixels use the pixel-vectorised
// kernel (C3_DW_PX, 2x sgemm on the 3-channel first layers), narrower ones sgemm. Work items are
// tiles of c3_nb whole images or of c3_rows output rows of one image, aiming at C3_TARGET_VECS
// output vectors of 16 pixels each, with at least 2 LANES items when the shape allows (batch-1
// latency).
#define C3_MAX_CH 256      // forward and dx: channel counts up to this
#define C3_MIN_WO 16       // and output rows of at least one full vector (or 4 / 8 wide, dense)
#define C3_DW_CH_MIN_C 16  // dW vectorised over output channels from this many input channels
#define C3_DW_PX_MIN_WO 32 // else over pixels on rows this wide, else im2col + sgemm
#define C3_TARGET_VECS 128
#define C3_TILE_FLOATS 65536   // and at most about this many input floats (256 KB)
#define C3_MIN_VECS 16
enum { C3_DW_GEMM, C3_DW_CH, C3_DW_PX };

static int c3_enabled = 1;

int hs_conv2d_set_direct(int enable) {
    int old = c3_enabled;
    c3_enabled = enable != 0;
    return old;
}

static void choose_c3(geom *g, hs_conv2d_params p) {
    g->c3 = c3_enabled && hs_conv3x3_available() && g->KH == 3 && g->KW == 3 && p.stride_h == 1 &&
            p.stride_w == 1 && p.dil_h == 1 && p.dil_w == 1 && g->G == 1 && p.pad_h <= 2 && p.pad_w <= 2 &&
            g->C <= C3_MAX_CH && g->Cout <= C3_MAX_CH &&
            (g->Wo >= C3_MIN_WO || (g->Wo >= 4 && hs_conv3x3_dense(g->W, g->Wo, p.pad_w)));
    g->c3_dw = g->C >= C3_DW_CH_MIN_C ? C3_DW_CH : g->Wo >= C3_DW_PX_MIN_WO ? C3_DW_PX : C3_DW_GEMM;
    if (!g->c3)
        return;
    int64_t img_vecs = g->Wo >= 16 ? g->Ho * ((g->Wo + 15) / 16) : (g->Ho * g->Wo + 15) / 16, want = 2 * LANES;
    // fewer vectors per tile with many channels, so that a packed tile stays in L2
    int64_t ch = g->C > g->Cout ? g->C : g->Cout, target = C3_TILE_FLOATS / (16 * ch);
    target = target > C3_TARGET_VECS ? C3_TARGET_VECS : target < C3_MIN_VECS ? C3_MIN_VECS : target;
    if (img_vecs <= target / 2 && g->N >= want) {   // whole images per tile
        int64_t nb = target / img_vecs, most = (g->N + want - 1) / want;
        nb = nb > most ? most : nb;
        g->c3_nb = nb < 1 ? 1 : nb;
        g->c3_nblk = 1;
    } else {
        int64_t nblk = (img_vecs + target - 1) / target;
        if (g->N * nblk < want)
            nblk = (want + g->N - 1) / g->N;
        nblk = nblk > g->Ho ? g->Ho : nblk;
        g->c3_nb = 1;
        g->c3_nblk = nblk;
    }
    g->c3_rows = (g->Ho + g->c3_nblk - 1) / g->c3_nblk;
    g->c3_nblk = (g->Ho + g->c3_rows - 1) / g->c3_rows;
    g->c3_rows_dx = (g->H + g->c3_nblk - 1) / g->c3_nblk;
    g->c3_items = (g->N + g->c3_nb - 1) / g->c3_nb * g->c3_nblk;
}

// Per-lane floats of the direct path: a packed tile (x for the forward and dW, dout for dx), the
// dW's transposed dout chunk and the lane's transposed dW partial (C, 9, ldco); the packed
// weights (flipped for dx) come first, once.
static int64_t c3_dw_chunk_floats(const geom *g) {
    int64_t px = g->Wo > HS_CONV3X3_DW_CHUNK ? g->Wo : HS_CONV3X3_DW_CHUNK;
    return g->c3_dw == C3_DW_CH ? px * hs_conv3x3_dw_ldco(g->Cout) : 0;
}

static int64_t c3_dw_partial_floats(const geom *g) {   // C3_DW_CH: (C, 9, ldco); C3_DW_PX: (Cout, C, 9)
    return g->c3_dw == C3_DW_CH ? g->C * 9 * hs_conv3x3_dw_ldco(g->Cout) : g->c3_dw == C3_DW_PX ? g->Cout * g->C * 9 : 0;
}

static size_t c3_lane_floats(const geom *g) {
    int64_t a = hs_conv3x3_tile_floats(g->C, g->c3_nb, g->c3_rows, g->W, g->Wo, g->im.pw);
    int64_t b = hs_conv3x3_tile_floats(g->Cout, g->c3_nb, g->c3_rows_dx, g->Wo, g->W, 2 - g->im.pw);
    int64_t c = hs_conv3x3_tile_floats_padded(g->C, g->c3_nb, g->c3_rows, g->Wo);
    int64_t m = a > b ? a : b;
    m = m > c ? m : c;
    return (size_t)m + (size_t)c3_dw_chunk_floats(g) + (size_t)c3_dw_partial_floats(g);
}

static size_t c3_ws(const geom *g) {
    return (size_t)(g->Cout * g->C * 9) + (size_t)LANES * c3_lane_floats(g);
}

static hs_status check_conv(geom *g, const char *op, const int64_t xs[4], const int64_t w[4], hs_conv2d_params p) {
    char a[96], b[96];
    if (!xs || !w)
        return HS_FAIL(HS_ERR_ARG, "%s: NULL shape", op);
    hs_shape_str(4, xs, a, sizeof a);
    hs_shape_str(4, w, b, sizeof b);
    for (int i = 0; i < 4; i++)
        if (xs[i] <= 0 || w[i] <= 0)
            return HS_FAIL(HS_ERR_SHAPE, "%s: x %s and weight %s must have positive sizes", op, a, b);
    if (p.stride_h < 1 || p.stride_w < 1 || p.dil_h < 1 || p.dil_w < 1 || p.pad_h < 0 || p.pad_w < 0 || p.groups < 1)
        return HS_FAIL(HS_ERR_ARG, "%s: bad params stride %dx%d pad %dx%d dilation %dx%d groups %d (x %s, weight %s)",
                       op, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h, p.dil_w, p.groups, a, b);
    int64_t G = p.groups;
    if (xs[1] % G != 0 || w[0] % G != 0)
        return HS_FAIL(HS_ERR_SHAPE, "%s: x %s has %lld channels and weight %s %lld out channels, not divisible by groups %d",
                       op, a, (long long)xs[1], b, (long long)w[0], p.groups);
    if (w[1] != xs[1] / G)
        return HS_FAIL(HS_ERR_SHAPE, "%s: weight %s wants %lld input channels per group, x %s has %lld/%d", op, b,
                       (long long)w[1], a, (long long)xs[1], p.groups);
    int64_t ekh = (int64_t)p.dil_h * (w[2] - 1) + 1, ekw = (int64_t)p.dil_w * (w[3] - 1) + 1;
    int64_t hp = xs[2] + 2 * (int64_t)p.pad_h, wp = xs[3] + 2 * (int64_t)p.pad_w;
    if (ekh > hp || ekw > wp)
        return HS_FAIL(HS_ERR_SHAPE, "%s: kernel %lldx%lld (dilated) larger than padded input %lldx%lld (x %s, weight %s)",
                       op, (long long)ekh, (long long)ekw, (long long)hp, (long long)wp, a, b);
    g->N = xs[0];
    g->C = xs[1];
    g->H = xs[2];
    g->W = xs[3];
    g->Cout = w[0];
    g->KH = w[2];
    g->KW = w[3];
    g->Ho = (hp - ekh) / p.stride_h + 1;
    g->Wo = (wp - ekw) / p.stride_w + 1;
    g->G = G;
    g->Cg = g->C / G;
    g->Coutg = g->Cout / G;
    g->im = (win){g->H, g->W, g->Ho, g->Wo, g->KH, g->KW, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h, p.dil_w};
    g->P = g->Ho * g->Wo;
    g->K = g->Cg * g->KH * g->KW;
    g->T = block_images(g->N, g->P);
    g->direct = g->KH == 1 && g->KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
    g->depthwise = G > 1 && G == g->C && g->Cout == g->C;
    g->tiled = !g->depthwise && g->T == 1;
    g->rb = TILE_FLOATS / g->K / g->Wo;
    g->rb = g->rb < 1 ? 1 : g->rb > g->Ho ? g->Ho : g->rb;
    g->nblk = (g->Ho + g->rb - 1) / g->rb;
    // Small images: blocks of tb images whose columns (K, tb*P) fill about one tile; used when
    // there are enough blocks to keep every lane busy (else one wide multi-threaded GEMM is better).
    int64_t target = TILE_FLOATS / g->K;
    g->tb = (target + g->P - 1) / g->P;
    g->tb = g->tb < 1 ? 1 : g->tb > g->N ? g->N : g->tb;
    g->nitems = (g->N + g->tb - 1) / g->tb;
    // Lanes take items round-robin, so a lane's load is ceil(nitems / LANES) * tb images: shrink
    // tb (to no less than half) when that evens the lanes out, e.g. 32 images: 16 x 2, not 11 x 3.
    // Only for shapes that have enough items already: too few (8 images in 3 blocks) run faster as
    // one wide multi-threaded GEMM than as 4 blocks of 2 on the lanes (measured).
    for (int64_t t = g->tb - 1; g->nitems >= LANES && t >= 1 && 2 * t >= g->tb; t--) {
        int64_t items = (g->N + t - 1) / t, best = (g->nitems + LANES - 1) / LANES * g->tb;
        if ((items + LANES - 1) / LANES * t < best) {
            g->tb = t;
            g->nitems = items;
        }
    }
    g->imgblk = !g->depthwise && !g->tiled && g->nitems >= LANES;
    g->dwt = g->Coutg < 128;
    choose_c3(g, p);
    if (g->P > INT_MAX / BLOCK_MAX_IMAGES || g->K > INT_MAX || g->Cout > INT_MAX || g->H * g->W > INT_MAX)
        return HS_FAIL(HS_ERR_SHAPE, "%s: x %s with weight %s is too large", op, a, b);
    return HS_OK;
}

hs_status hs_conv2d_out_shape(int64_t out[4], const int64_t x[4], const int64_t w[4], hs_conv2d_params p) {
    geom g = {0};
    if (!out)
        return HS_FAIL(HS_ERR_ARG, "conv2d: NULL output shape");
    HS_TRY(check_conv(&g, "conv2d", x, w, p));
    out[0] = g.N;
    out[1] = g.Cout;
    out[2] = g.Ho;
    out[3] = g.Wo;
    return HS_OK;
}

// Per-lane scratch of the image-block mode: columns (K, tb*P), a (Coutg, tb*P) GEMM result or
// gathered dout, and a (Cout, K) dW partial.
static size_t blk_lane_floats(const geom *g) {
    size_t ld = (size_t)(g->tb * g->P);
    return (size_t)g->K * ld + (size_t)g->Coutg * ld + (size_t)g->Cout * (size_t)g->K;
}

static size_t conv_ws(const geom *g) {
    if (g->c3) {
        geom h = *g;   // the im2col + sgemm dW of shapes whose dW is not direct
        h.c3 = 0;
        size_t a = c3_ws(g), b = g->c3_dw != C3_DW_GEMM ? 0 : conv_ws(&h);
        return a > b ? a : b;
    }
    if (g->depthwise)
        return 0;
    size_t cols = g->tiled ? 0 : (size_t)g->K * (size_t)(g->T * g->P);
    size_t tmp = g->T > 1 ? (size_t)g->Coutg * (size_t)(g->T * g->P) : 0;
    size_t tiles = g->tiled ? (size_t)LANES * ((size_t)g->K * (size_t)(g->rb * g->Wo) + (size_t)g->Cout * (size_t)g->K) : 0;
    if (g->imgblk)
        tiles = (size_t)LANES * blk_lane_floats(g);
    return cols + tmp > tiles ? cols + tmp : tiles;
}

size_t hs_conv2d_workspace_size(const int64_t x[4], const int64_t w[4], hs_conv2d_params p) {
    geom g = {0};
    if (check_conv(&g, "conv2d", x, w, p) != HS_OK) {
        hs_clear_error();
        return 0;
    }
    return conv_ws(&g);
}

static hs_status check_ws(const char *op, const geom *g, size_t need, const float *ws) {
    (void)g;
    if (need > 0 && !ws)
        return HS_FAIL(HS_ERR_ARG, "%s: needs a workspace of %zu floats, got NULL", op, need);
    return HS_OK;
}

// ---- conv2d: depthwise direct loops (G == C == Cout) ----

typedef struct {
    const geom *g;
    float *out;
    const float *x, *w, *bias, *dout;
    float *dx, *dw;
    int assign;
} dw_job;

static void dw_forward_task(void *ctx, int64_t b, int64_t e) {
    const dw_job *j = ctx;
    const geom *g = j->g;
    const win *m = &g->im;
    for (int64_t i = b; i < e; i++) {
        int64_t c = i % g->C;
        float *o = j->out + i * g->P;
        const float *xp = j->x + i * g->H * g->W;
        const float *wc = j->w + c * g->KH * g->KW;
        float bv = j->bias ? j->bias[c] : 0.0f;
        for (int64_t k = 0; k < g->P; k++)
            o[k] = bv;
        for (int64_t kh = 0; kh < g->KH; kh++) {
            for (int64_t kw = 0; kw < g->KW; kw++) {
                float wv = wc[kh * g->KW + kw];
                int64_t lo, hi, off = kw * m->dw - m->pw;
                col_range(m, kw, &lo, &hi);
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    int64_t ih = oh * m->sh - m->ph + kh * m->dh;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    const float *src = xp + ih * g->W + off;
                    float *dst = o + oh * g->Wo;
                    if (m->sw == 1) {
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] += wv * src[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] += wv * src[ow * m->sw];
                    }
                }
            }
        }
    }
}

static void dw_backward_dx_task(void *ctx, int64_t b, int64_t e) {
    const dw_job *j = ctx;
    const geom *g = j->g;
    const win *m = &g->im;
    for (int64_t i = b; i < e; i++) {
        int64_t c = i % g->C;
        const float *d = j->dout + i * g->P;
        float *dxp = j->dx + i * g->H * g->W;
        const float *wc = j->w + c * g->KH * g->KW;
        if (j->assign)
            memset(dxp, 0, (size_t)(g->H * g->W) * sizeof *dxp);
        for (int64_t kh = 0; kh < g->KH; kh++) {
            for (int64_t kw = 0; kw < g->KW; kw++) {
                float wv = wc[kh * g->KW + kw];
                int64_t lo, hi, off = kw * m->dw - m->pw;
                col_range(m, kw, &lo, &hi);
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    int64_t ih = oh * m->sh - m->ph + kh * m->dh;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    const float *src = d + oh * g->Wo;
                    float *dst = dxp + ih * g->W + off;
                    if (m->sw == 1) {
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow] += wv * src[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++)
                            dst[ow * m->sw] += wv * src[ow];
                    }
                }
            }
        }
    }
}

static void dw_backward_dw_task(void *ctx, int64_t b, int64_t e) {  // items: channels
    const dw_job *j = ctx;
    const geom *g = j->g;
    const win *m = &g->im;
    for (int64_t c = b; c < e; c++) {
        for (int64_t kh = 0; kh < g->KH; kh++) {
            for (int64_t kw = 0; kw < g->KW; kw++) {
                int64_t lo, hi, off = kw * m->dw - m->pw;
                col_range(m, kw, &lo, &hi);
                double s = 0;
                for (int64_t n = 0; n < g->N; n++) {
                    const float *d = j->dout + (n * g->C + c) * g->P;
                    const float *xp = j->x + (n * g->C + c) * g->H * g->W;
                    for (int64_t oh = 0; oh < g->Ho; oh++) {
                        int64_t ih = oh * m->sh - m->ph + kh * m->dh;
                        if (ih < 0 || ih >= g->H)
                            continue;
                        const float *src = xp + ih * g->W + off;
                        const float *dr = d + oh * g->Wo;
                        float rs = 0.0f;
                        for (int64_t ow = lo; ow < hi; ow++)
                            rs += dr[ow] * src[ow * m->sw];
                        s += (double)rs;
                    }
                }
                j->dw[c * g->KH * g->KW + kh * g->KW + kw] += (float)s;
            }
        }
    }
}

// ---- conv2d: tiled forward ----
// Large images: the output is cut into tiles of rb rows of one image; LANES fixed lanes take the
// tiles round-robin (lane l: tiles l, l+LANES, ...), each with its own column buffer that stays in
// cache between im2col and a single-threaded GEMM. Tiles write disjoint outputs, so the result is
// the same for any thread count.

typedef struct {
    const geom *g;
    float *out;
    const float *x, *w, *bias;
    float *ws;
    const hs_conv2d_epilogue *ep;   // NULL: none
} tile_job;

// o[0..n) = act(o * scale + shift) for output channel co (the fused eval-mode batchnorm + ReLU).
static void epilogue_row(float *o, int64_t n, const hs_conv2d_epilogue *ep, int64_t co) {
    float sc = ep->scale ? ep->scale[co] : 1.0f, sh = ep->shift ? ep->shift[co] : 0.0f;
    if (ep->relu) {
        for (int64_t k = 0; k < n; k++) {
            float v = o[k] * sc + sh;
            o[k] = v > 0.0f ? v : 0.0f;
        }
    } else {
        for (int64_t k = 0; k < n; k++)
            o[k] = o[k] * sc + sh;
    }
}

typedef struct {
    float *out;
    const hs_conv2d_epilogue *ep;
    int64_t C, plane;
} ep_job;

static void epilogue_task(void *ctx, int64_t b, int64_t e) {
    const ep_job *j = ctx;
    for (int64_t i = b; i < e; i++)
        epilogue_row(j->out + i * j->plane, j->plane, j->ep, i % j->C);
}

static void tile_fwd_lane(void *ctx, int64_t b, int64_t e) {
    const tile_job *j = ctx;
    const geom *g = j->g;
    int64_t HW = g->H * g->W, KK = g->KH * g->KW, P = g->P;
    for (int64_t lane = b; lane < e; lane++) {
        float *col = j->ws ? j->ws + lane * g->K * g->rb * g->Wo : NULL;
        for (int64_t item = lane; item < g->N * g->nblk; item += LANES) {
            int64_t n = item / g->nblk, oh0 = (item % g->nblk) * g->rb;
            int64_t oh1 = oh0 + g->rb < g->Ho ? oh0 + g->rb : g->Ho, np = (oh1 - oh0) * g->Wo;
            for (int64_t gi = 0; gi < g->G; gi++) {
                const float *xg = j->x + (n * g->C + gi * g->Cg) * HW;
                const float *B = col;
                int64_t ldb = np;
                if (g->direct) {
                    B = xg + oh0 * g->Wo;
                    ldb = P;
                } else {
                    for (int64_t c = 0; c < g->Cg; c++)
                        im2col_rows(col + c * KK * np, np, xg + c * HW, &g->im, oh0, oh1);
                }
                float *o = j->out + (n * g->Cout + gi * g->Coutg) * P + oh0 * g->Wo;
                if (j->bias)
                    for (int64_t co = 0; co < g->Coutg; co++) {
                        float bv = j->bias[gi * g->Coutg + co];
                        for (int64_t k = 0; k < np; k++)
                            o[co * P + k] = bv;
                    }
                hs_sgemm(0, 0, (int)g->Coutg, (int)np, (int)g->K, 1.0f, j->w + gi * g->Coutg * g->K, (int)g->K, B,
                         (int)ldb, j->bias ? 1.0f : 0.0f, o, (int)P);
                if (j->ep)   // while the tile is in cache
                    for (int64_t co = 0; co < g->Coutg; co++)
                        epilogue_row(o + co * P, np, j->ep, gi * g->Coutg + co);
            }
        }
    }
}

// A lane's dW partial for group gi += dout_g (Coutg, np; row stride ldd) cols^T (cols (K, np), row
// stride ldc). With few output channels OpenBLAS runs the transposed product dW^T (K, Coutg) +=
// cols dout_g^T ~1.5x faster (measured: 16-64 channels; no gain from 128 up), so the partial is
// kept transposed then (g->dwt) and add_lane_dw transposes it back.
static void lane_dw_gemm(float *dwl, const geom *g, int64_t gi, const float *D, int64_t ldd, const float *cols,
                         int64_t ldc, int64_t np) {
    float *dst = dwl + gi * g->Coutg * g->K;
    if (g->dwt)
        hs_sgemm(0, 1, (int)g->K, (int)g->Coutg, (int)np, 1.0f, cols, (int)ldc, D, (int)ldd, 1.0f, dst, (int)g->Coutg);
    else
        hs_sgemm(0, 1, (int)g->Coutg, (int)g->K, (int)np, 1.0f, D, (int)ldd, cols, (int)ldc, 1.0f, dst, (int)g->K);
}

// dw (Cout, K) += a lane's partial (layout as lane_dw_gemm). The transposed case walks blocks of
// 16 k so that both the reads and the writes stay within a few cache lines.
static void add_lane_dw(float *dw, const float *dwl, const geom *g) {
    if (!g->dwt) {
        for (int64_t i = 0; i < g->Cout * g->K; i++)
            dw[i] += dwl[i];
        return;
    }
    for (int64_t gi = 0; gi < g->G; gi++) {
        float *dwg = dw + gi * g->Coutg * g->K;
        const float *pt = dwl + gi * g->Coutg * g->K;   // (K, Coutg)
        for (int64_t k0 = 0; k0 < g->K; k0 += 16) {
            int64_t k1 = k0 + 16 < g->K ? k0 + 16 : g->K;
            for (int64_t co = 0; co < g->Coutg; co++)
                for (int64_t k = k0; k < k1; k++)
                    dwg[co * g->K + k] += pt[k * g->Coutg + co];
        }
    }
}

// Backward on the same tiles, but a lane owns whole images (lane l: images l, l+LANES, ...) so
// that col2im of neighbouring tiles, which overlap in dx, runs in one fixed order. Each lane sums
// its own dW partial (after its column buffer in ws); the partials are added in lane order.
typedef struct {
    const geom *g;
    float *dx;
    const float *dout, *x, *w;
    float *ws;
    int assign;
} tile_bwd_job;

static void tile_bwd_lane(void *ctx, int64_t b, int64_t e) {
    const tile_bwd_job *j = ctx;
    const geom *g = j->g;
    int64_t HW = g->H * g->W, KK = g->KH * g->KW, P = g->P;
    size_t lane_floats = (size_t)g->K * (size_t)(g->rb * g->Wo) + (size_t)g->Cout * (size_t)g->K;
    for (int64_t lane = b; lane < e; lane++) {
        float *col = j->ws + (size_t)lane * lane_floats;
        float *dwl = col + g->K * g->rb * g->Wo;   // (Cout, K) dW partial, see lane_dw_gemm
        memset(dwl, 0, (size_t)(g->Cout * g->K) * sizeof(float));
        for (int64_t n = lane; n < g->N; n += LANES) {
            if (j->dx && j->assign)
                memset(j->dx + n * g->C * HW, 0, (size_t)(g->C * HW) * sizeof(float));
            for (int64_t blk = 0; blk < g->nblk; blk++) {
                int64_t oh0 = blk * g->rb, oh1 = oh0 + g->rb < g->Ho ? oh0 + g->rb : g->Ho, np = (oh1 - oh0) * g->Wo;
                for (int64_t gi = 0; gi < g->G; gi++) {
                    const float *xg = j->x + (n * g->C + gi * g->Cg) * HW;
                    const float *D = j->dout + (n * g->Cout + gi * g->Coutg) * P + oh0 * g->Wo;
                    const float *wg = j->w + gi * g->Coutg * g->K;
                    const float *B = col;
                    int64_t ldb = np;
                    if (g->direct) {
                        B = xg + oh0 * g->Wo;
                        ldb = P;
                    } else {
                        for (int64_t c = 0; c < g->Cg; c++)
                            im2col_rows(col + c * KK * np, np, xg + c * HW, &g->im, oh0, oh1);
                    }
                    lane_dw_gemm(dwl, g, gi, D, P, B, ldb, np);
                    if (!j->dx)
                        continue;
                    float *dxg = j->dx + (n * g->C + gi * g->Cg) * HW;
                    if (g->direct) {
                        hs_sgemm(1, 0, (int)g->Cg, (int)np, (int)g->Coutg, 1.0f, wg, (int)g->K, D, (int)P, 1.0f,
                                 dxg + oh0 * g->Wo, (int)P);
                    } else {
                        hs_sgemm(1, 0, (int)g->K, (int)np, (int)g->Coutg, 1.0f, wg, (int)g->K, D, (int)P, 0.0f, col,
                                 (int)np);
                        for (int64_t c = 0; c < g->Cg; c++)
                            col2im_rows(dxg + c * HW, col + c * KK * np, np, &g->im, oh0, oh1);
                    }
                }
            }
        }
    }
}

// ---- conv2d: image-block lanes ----
// Small images: item i = images [i*tb, i*tb + tb) and LANES fixed lanes take the items round-robin
// (lane l: items l, l+LANES, ...), each doing im2col, a single-threaded GEMM and the scatter in its
// own scratch, so no step waits for another and the columns stay in cache. Items write disjoint
// outputs; the backward sums dW per lane and adds the lane partials in lane order, so the results
// do not depend on the thread count.

static void blk_fwd_lane(void *ctx, int64_t b, int64_t e) {
    const tile_job *j = ctx;
    const geom *g = j->g;
    int64_t HW = g->H * g->W, KK = g->KH * g->KW, P = g->P;
    for (int64_t lane = b; lane < e; lane++) {
        float *col = j->ws + (size_t)lane * blk_lane_floats(g);
        float *tmp = col + g->K * g->tb * P;
        for (int64_t item = lane; item < g->nitems; item += LANES) {
            int64_t n0 = item * g->tb, nb = g->N - n0 < g->tb ? g->N - n0 : g->tb, ld = nb * P;
            for (int64_t gi = 0; gi < g->G; gi++) {
                for (int64_t t = 0; t < nb; t++)
                    for (int64_t c = 0; c < g->Cg; c++) {
                        const float *img = j->x + ((n0 + t) * g->C + gi * g->Cg + c) * HW;
                        if (g->direct)
                            memcpy(col + c * ld + t * P, img, (size_t)P * sizeof(float));
                        else
                            im2col_plane(col + c * KK * ld + t * P, ld, img, &g->im);
                    }
                // one image: the GEMM writes its output planes in place (ld == P), no copy
                float *res = nb > 1 ? tmp : j->out + (n0 * g->Cout + gi * g->Coutg) * P;
                hs_sgemm(0, 0, (int)g->Coutg, (int)ld, (int)g->K, 1.0f, j->w + gi * g->Coutg * g->K, (int)g->K, col,
                         (int)ld, 0.0f, res, (int)ld);
                for (int64_t t = 0; t < nb; t++)
                    for (int64_t co = 0; co < g->Coutg; co++) {
                        const float *src = res + co * ld + t * P;
                        float *dst = j->out + ((n0 + t) * g->Cout + gi * g->Coutg + co) * P;
                        if (j->bias) {
                            float bv = j->bias[gi * g->Coutg + co];
                            for (int64_t k = 0; k < P; k++)
                                dst[k] = src[k] + bv;
                        } else if (src != dst) {
                            memcpy(dst, src, (size_t)P * sizeof(float));
                        }
                        if (j->ep)
                            epilogue_row(dst, P, j->ep, gi * g->Coutg + co);
                    }
            }
        }
    }
}

static void blk_bwd_lane(void *ctx, int64_t b, int64_t e) {
    const tile_bwd_job *j = ctx;
    const geom *g = j->g;
    int64_t HW = g->H * g->W, KK = g->KH * g->KW, P = g->P;
    for (int64_t lane = b; lane < e; lane++) {
        float *col = j->ws + (size_t)lane * blk_lane_floats(g);
        float *dd = col + g->K * g->tb * P;             // (Coutg, ld) gathered dout
        float *dwl = dd + g->Coutg * g->tb * P;         // (Cout, K) dW partial, see lane_dw_gemm
        memset(dwl, 0, (size_t)(g->Cout * g->K) * sizeof(float));
        for (int64_t item = lane; item < g->nitems; item += LANES) {
            int64_t n0 = item * g->tb, nb = g->N - n0 < g->tb ? g->N - n0 : g->tb, ld = nb * P;
            for (int64_t gi = 0; gi < g->G; gi++) {
                for (int64_t t = 0; t < nb; t++) {
                    for (int64_t c = 0; c < g->Cg; c++) {
                        const float *img = j->x + ((n0 + t) * g->C + gi * g->Cg + c) * HW;
                        if (g->direct)
                            memcpy(col + c * ld + t * P, img, (size_t)P * sizeof(float));
                        else
                            im2col_plane(col + c * KK * ld + t * P, ld, img, &g->im);
                    }
                    if (nb > 1)
                        for (int64_t co = 0; co < g->Coutg; co++)
                            memcpy(dd + co * ld + t * P, j->dout + ((n0 + t) * g->Cout + gi * g->Coutg + co) * P,
                                   (size_t)P * sizeof(float));
                }
                // one image: its dout planes already are the (Coutg, P) matrix
                const float *D = nb > 1 ? dd : j->dout + (n0 * g->Cout + gi * g->Coutg) * P;
                lane_dw_gemm(dwl, g, gi, D, ld, col, ld, ld);   // dW_g += dout_g cols^T
                if (!j->dx)
                    continue;
                // cols (K, ld) = W_g^T dout_g, folded back into the dx planes
                hs_sgemm(1, 0, (int)g->K, (int)ld, (int)g->Coutg, 1.0f, j->w + gi * g->Coutg * g->K, (int)g->K, D,
                         (int)ld, 0.0f, col, (int)ld);
                for (int64_t t = 0; t < nb; t++)
                    for (int64_t c = 0; c < g->Cg; c++) {
                        float *img = j->dx + ((n0 + t) * g->C + gi * g->Cg + c) * HW;
                        const float *src = col + c * KK * ld + t * P;
                        if (g->direct) {
                            if (j->assign)
                                memcpy(img, src, (size_t)P * sizeof(float));
                            else
                                for (int64_t k = 0; k < P; k++)
                                    img[k] += src[k];
                            continue;
                        }
                        if (j->assign)
                            memset(img, 0, (size_t)HW * sizeof(float));
                        col2im_plane(img, src, ld, &g->im);
                    }
            }
        }
    }
}

// ---- conv2d: direct 3x3 lanes ----
// Item i = image block i / c3_nblk (c3_nb images), row block i % c3_nblk; LANES fixed lanes take
// the items round-robin, pack the item's input rows into their own tile buffer and run the
// conv3x3 kernels on it. Forward and dx write disjoint rows (dx is computed in gather form, as a
// 3x3 convolution of dout with the flipped, transposed weights and padding 2 - pad), and each
// lane sums its own dW partial, added in lane order afterwards: no result depends on the threads.

typedef struct {
    const geom *g;
    float *out, *dx, *dw;               // forward: out; backward: dx (NULL: skip), dw
    const float *x, *w, *bias, *dout;   // packed weights (hs_conv3x3_pack_weights); backward: flipped
    float *ws;                          // lane l at ws + l * c3_lane_floats
    const hs_conv2d_epilogue *ep;
    int assign;
} c3_job;

// Item `item`: images [n0, n0 + nb), row block blk = output rows [oh0, oh0 + rows).
static void c3_item(const geom *g, int64_t item, int64_t *n0, int64_t *nb, int64_t *blk, int64_t *oh0,
                    int64_t *rows) {
    int64_t ib = item / g->c3_nblk;
    *blk = item % g->c3_nblk;
    *n0 = ib * g->c3_nb;
    *nb = g->N - *n0 < g->c3_nb ? g->N - *n0 : g->c3_nb;
    *oh0 = *blk * g->c3_rows;
    *rows = g->Ho - *oh0 < g->c3_rows ? g->Ho - *oh0 : g->c3_rows;
}

static void c3_fwd_lane(void *ctx, int64_t b, int64_t e) {
    const c3_job *j = ctx;
    const geom *g = j->g;
    int64_t HW = g->H * g->W, P = g->P;
    for (int64_t lane = b; lane < e; lane++) {
        float *buf = j->ws + (size_t)lane * c3_lane_floats(g);
        for (int64_t item = lane; item < g->c3_items; item += LANES) {
            int64_t n0, nb, blk, oh0, rows;
            c3_item(g, item, &n0, &nb, &blk, &oh0, &rows);
            hs_conv3x3_tile t = hs_conv3x3_pack(buf, j->x + n0 * g->C * HW, g->C * HW, nb, g->C, g->H, g->W,
                                                oh0 - g->im.ph, rows, g->im.pw, g->Wo);
            hs_conv3x3_dst d = {j->out + n0 * g->Cout * P + oh0 * g->Wo, g->Cout * P, P};
            hs_conv3x3_fwd(d, &t, j->w, j->bias, g->Cout, j->ep ? j->ep->scale : NULL, j->ep ? j->ep->shift : NULL,
                           j->ep ? j->ep->relu : 0, 0);
        }
    }
}

static void c3_bwd_lane(void *ctx, int64_t b, int64_t e) {
    const c3_job *j = ctx;
    const geom *g = j->g;
    int64_t HW = g->H * g->W, P = g->P;
    for (int64_t lane = b; lane < e; lane++) {
        float *buf = j->ws + (size_t)lane * c3_lane_floats(g);
        float *dwl = buf + c3_lane_floats(g) - c3_dw_partial_floats(g), *chunk = dwl - c3_dw_chunk_floats(g);
        memset(dwl, 0, (size_t)c3_dw_partial_floats(g) * sizeof *dwl);
        for (int64_t item = lane; item < g->c3_items; item += LANES) {
            int64_t n0, nb, blk, oh0, rows;   // dW over output rows [oh0, oh0 + rows)
            c3_item(g, item, &n0, &nb, &blk, &oh0, &rows);
            const float *x0 = j->x + n0 * g->C * HW, *d0 = j->dout + n0 * g->Cout * P + oh0 * g->Wo;
            if (g->c3_dw == C3_DW_CH) {
                hs_conv3x3_tile t = hs_conv3x3_pack_padded(buf, x0, g->C * HW, nb, g->C, g->H, g->W, oh0 - g->im.ph,
                                                           rows, g->im.pw, g->Wo);
                hs_conv3x3_dw(dwl, &t, d0, g->Cout * P, P, g->Cout, chunk);
            } else if (g->c3_dw == C3_DW_PX) {
                hs_conv3x3_tile t = hs_conv3x3_pack(buf, x0, g->C * HW, nb, g->C, g->H, g->W, oh0 - g->im.ph, rows,
                                                    g->im.pw, g->Wo);
                hs_conv3x3_dw_px(dwl, &t, d0, g->Cout * P, P, g->Cout);
            }
            // dx over input rows [ih0, ih0 + rows_dx): conv3x3 of dout padded by 2 - pad
            int64_t ih0 = blk * g->c3_rows_dx;
            if (!j->dx || ih0 >= g->H)
                continue;
            int64_t rdx = g->H - ih0 < g->c3_rows_dx ? g->H - ih0 : g->c3_rows_dx;
            hs_conv3x3_tile td = hs_conv3x3_pack(buf, j->dout + n0 * g->Cout * P, g->Cout * P, nb, g->Cout, g->Ho,
                                                 g->Wo, ih0 - (2 - g->im.ph), rdx, 2 - g->im.pw, g->W);
            hs_conv3x3_dst dd = {j->dx + n0 * g->C * HW + ih0 * g->W, g->C * HW, HW};
            hs_conv3x3_fwd(dd, &td, j->w, NULL, g->C, NULL, NULL, 0, !j->assign);
        }
    }
}

// hs_conv3x3_pack_weights in groups of 8 output channels on the thread pool.
typedef struct {
    float *dst;
    const float *w;
    int64_t O, I;
    int flip;
} pack_w_job;

static void pack_w_task(void *ctx, int64_t b, int64_t e) {
    const pack_w_job *j = ctx;
    hs_conv3x3_pack_weights(j->dst, j->w, j->O, j->I, j->flip, b, e);
}

static void pack_weights(float *dst, const float *w, int64_t O, int64_t I, int flip) {
    pack_w_job j = {dst, w, O, I, flip};
    hs_parallel_for((O + 7) / 8, grain_for(8 * I * 9), pack_w_task, &j);
}

// dw (Cout, C*9) += the lanes' partials, added in lane order per element (deterministic). C3_DW_CH
// partials are transposed, (C*9, ldco): items are blocks of 16 of C*9, so that 16 partial rows are
// read along co; C3_DW_PX partials have dw's layout: items are blocks of 16 output channels.
typedef struct {
    const geom *g;
    float *dw;
    const float *lanes;
} c3_dw_sum_job;

static void c3_dw_sum_task(void *ctx, int64_t b, int64_t e) {
    const c3_dw_sum_job *j = ctx;
    const geom *g = j->g;
    size_t lf = c3_lane_floats(g);
    const float *part = j->lanes + lf - (size_t)c3_dw_partial_floats(g);
    int64_t ldco = hs_conv3x3_dw_ldco(g->Cout), CK = g->C * 9;
    if (g->c3_dw == C3_DW_PX) {
        for (int64_t i = b * 16 * CK; i < e * 16 * CK && i < g->Cout * CK; i++) {
            float s = j->dw[i];
            for (int64_t l = 0; l < LANES; l++)
                s += part[(size_t)l * lf + (size_t)i];
            j->dw[i] = s;
        }
        return;
    }
    for (int64_t blk = b; blk < e; blk++) {
        int64_t k0 = blk * 16, k1 = k0 + 16 < CK ? k0 + 16 : CK;
        for (int64_t co = 0; co < g->Cout; co++)
            for (int64_t ck = k0; ck < k1; ck++) {
                float s = j->dw[co * CK + ck];
                for (int64_t l = 0; l < LANES; l++)
                    s += part[(size_t)l * lf + (size_t)(ck * ldco + co)];
                j->dw[co * CK + ck] = s;
            }
    }
}

// ---- conv2d: forward / backward ----

hs_status hs_conv2d_forward(float *out, const float *x, const float *w, const float *bias, const int64_t xs[4],
                            const int64_t ws_[4], hs_conv2d_params p, float *ws) {
    return hs_conv2d_forward_fused(out, x, w, bias, xs, ws_, p, NULL, ws);
}

// The paths without a tile loop apply the epilogue in one more pass over the output.
static void epilogue_pass(float *out, const geom *g, const hs_conv2d_epilogue *ep) {
    if (!ep)
        return;
    ep_job j = {out, ep, g->Cout, g->P};
    hs_parallel_for(g->N * g->Cout, grain_for(g->P), epilogue_task, &j);
}

hs_status hs_conv2d_forward_fused(float *out, const float *x, const float *w, const float *bias, const int64_t xs[4],
                                  const int64_t ws_[4], hs_conv2d_params p, const hs_conv2d_epilogue *ep, float *ws) {
    geom g = {0};
    HS_TRY(check_conv(&g, "conv2d", xs, ws_, p));
    if (!out || !x || !w)
        return HS_FAIL(HS_ERR_ARG, "conv2d: NULL out, x or weight");
    HS_TRY(check_ws("conv2d", &g, conv_ws(&g), ws));
    int64_t HW = g.H * g.W, P = g.P, KK = g.KH * g.KW;
    if (g.depthwise) {
        dw_job j = {&g, out, x, w, bias, NULL, NULL, NULL, 0};
        hs_parallel_for(g.N * g.C, grain_for(P * KK), dw_forward_task, &j);
        epilogue_pass(out, &g, ep);
        return HS_OK;
    }
    if (g.c3) {
        pack_weights(ws, w, g.Cout, g.C, 0);
        c3_job j = {&g, out, NULL, NULL, x, ws, bias, NULL, ws + g.Cout * g.C * 9, ep, 0};
        hs_parallel_for(LANES, 1, c3_fwd_lane, &j);
        return HS_OK;
    }
    if (g.tiled || g.imgblk) {
        tile_job j = {&g, out, x, w, bias, ws, ep};   // (BLAS is single-threaded: blas.h)
        hs_parallel_for(LANES, 1, g.tiled ? tile_fwd_lane : blk_fwd_lane, &j);
        return HS_OK;
    }
    float *col = ws, *tmp = ws ? ws + g.K * g.T * P : NULL;
    for (int64_t n0 = 0; n0 < g.N; n0 += g.T) {
        int64_t tb = g.N - n0 < g.T ? g.N - n0 : g.T, ld = tb * P;
        for (int64_t gi = 0; gi < g.G; gi++) {
            const float *wg = w + gi * g.Coutg * g.K;
            const float *B = col;
            if (g.direct && tb == 1) {
                B = x + (n0 * g.C + gi * g.Cg) * HW;
            } else {
                plane_job j = {&g, col, ld, g.Cg, P, x + (n0 * g.C + gi * g.Cg) * HW, NULL, g.C * HW, HW, NULL, 0, 0};
                hs_parallel_for(tb * g.Cg, grain_for(KK * P), im2col_task, &j);
            }
            const float *bg = bias ? bias + gi * g.Coutg : NULL;
            if (tb == 1) {
                float *o = out + (n0 * g.Cout + gi * g.Coutg) * P;
                if (bg)
                    fill_planes(o, bg, 1, g.Coutg, P);
                hs_sgemm(0, 0, (int)g.Coutg, (int)P, (int)g.K, 1.0f, wg, (int)g.K, B, (int)P, bg ? 1.0f : 0.0f, o, (int)P);
            } else {
                hs_sgemm(0, 0, (int)g.Coutg, (int)ld, (int)g.K, 1.0f, wg, (int)g.K, B, (int)ld, 0.0f, tmp, (int)ld);
                plane_job j = {&g, tmp, ld, g.Coutg, P, NULL, out + (n0 * g.Cout + gi * g.Coutg) * P, g.Cout * P, P, bg, 0, 0};
                hs_parallel_for(tb * g.Coutg, grain_for(P), scatter_task, &j);
            }
        }
    }
    epilogue_pass(out, &g, ep);
    return HS_OK;
}

hs_status hs_conv2d_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x, const float *w,
                             const int64_t xs[4], const int64_t ws_[4], hs_conv2d_params p, float *ws) {
    return hs_conv2d_backward_assign(dx, dw, dbias, dout, x, w, xs, ws_, p, ws, 0);
}

// The im2col + sgemm backward (all shapes but depthwise): dW +=, dx += (or = with assign_dx);
// dx NULL: dW only.
static void gemm_backward(const geom *gp, float *dx, float *dw, const float *dout, const float *x, const float *w,
                          float *ws, int assign_dx) {
    const geom g = *gp;
    int64_t HW = g.H * g.W, P = g.P, KK = g.KH * g.KW;
    if (g.tiled || g.imgblk) {
        tile_bwd_job j = {&g, dx, dout, x, w, ws, assign_dx != 0};
        hs_parallel_for(LANES, 1, g.tiled ? tile_bwd_lane : blk_bwd_lane, &j);
        size_t lane_floats = g.tiled ? (size_t)g.K * (size_t)(g.rb * g.Wo) + (size_t)g.Cout * (size_t)g.K
                                     : blk_lane_floats(&g);
        size_t dw_off = g.tiled ? (size_t)(g.K * g.rb * g.Wo) : (size_t)((g.K + g.Coutg) * g.tb * g.P);
        for (int64_t l = 0; l < LANES; l++)   // fixed order: deterministic
            add_lane_dw(dw, ws + (size_t)l * lane_floats + dw_off, &g);
        return;
    }
    float *col = ws, *tmp = ws ? ws + g.K * g.T * P : NULL;
    for (int64_t n0 = 0; n0 < g.N; n0 += g.T) {
        int64_t tb = g.N - n0 < g.T ? g.N - n0 : g.T, ld = tb * P;
        for (int64_t gi = 0; gi < g.G; gi++) {
            const float *wg = w + gi * g.Coutg * g.K;
            const float *B = col;
            const float *xg = x + (n0 * g.C + gi * g.Cg) * HW;
            if (g.direct && tb == 1) {
                B = xg;
            } else {
                plane_job j = {&g, col, ld, g.Cg, P, xg, NULL, g.C * HW, HW, NULL, 0, 0};
                hs_parallel_for(tb * g.Cg, grain_for(KK * P), im2col_task, &j);
            }
            const float *D = dout + (n0 * g.Cout + gi * g.Coutg) * P;
            if (tb > 1) {
                plane_job j = {&g, tmp, ld, g.Coutg, P, D, NULL, g.Cout * P, P, NULL, 0, 0};
                hs_parallel_for(tb * g.Coutg, grain_for(P), gather_task, &j);
                D = tmp;
            }
            // dW_g (Coutg, K) += dout_g (Coutg, tb*P) x cols^T
            hs_sgemm(0, 1, (int)g.Coutg, (int)g.K, (int)ld, 1.0f, D, (int)ld, B, (int)ld, 1.0f, dw + gi * g.Coutg * g.K,
                     (int)g.K);
            if (!dx)
                continue;
            float *dxg = dx + (n0 * g.C + gi * g.Cg) * HW;
            if (g.direct && tb == 1) {
                hs_sgemm(1, 0, (int)g.Cg, (int)P, (int)g.Coutg, 1.0f, wg, (int)g.K, D, (int)P, assign_dx ? 0.0f : 1.0f,
                         dxg, (int)P);
            } else {
                hs_sgemm(1, 0, (int)g.K, (int)ld, (int)g.Coutg, 1.0f, wg, (int)g.K, D, (int)ld, 0.0f, col, (int)ld);
                plane_job j = {&g, col, ld, g.Cg, P, NULL, dxg, g.C * HW, HW, NULL, 0, assign_dx != 0};
                hs_parallel_for(tb * g.Cg, grain_for(KK * P), col2im_task, &j);
            }
        }
    }
}

hs_status hs_conv2d_backward_assign(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                    const float *w, const int64_t xs[4], const int64_t ws_[4], hs_conv2d_params p,
                                    float *ws, int assign_dx) {
    geom g = {0};
    HS_TRY(check_conv(&g, "conv2d_backward", xs, ws_, p));
    if (!dw || !dout || !x || !w)
        return HS_FAIL(HS_ERR_ARG, "conv2d_backward: NULL dweight, dout, x or weight");
    HS_TRY(check_ws("conv2d_backward", &g, conv_ws(&g), ws));
    int64_t P = g.P, KK = g.KH * g.KW;
    if (dbias)
        channel_sums(dbias, dout, g.N, g.Cout, P);
    if (g.depthwise) {
        dw_job j = {&g, NULL, x, w, NULL, dout, dx, dw, assign_dx != 0};
        if (dx)
            hs_parallel_for(g.N * g.C, grain_for(P * KK), dw_backward_dx_task, &j);
        hs_parallel_for(g.C, 1, dw_backward_dw_task, &j);
        return HS_OK;
    }
    if (g.c3 && g.c3_dw == C3_DW_GEMM)   // dW by im2col + sgemm (faster there), dx by the direct kernels
        gemm_backward(&g, NULL, dw, dout, x, w, ws, 0);
    if (g.c3) {
        if (!dx && g.c3_dw == C3_DW_GEMM)
            return HS_OK;
        float *wf = ws;   // packed (C, Cout, 3, 3): wf[ci][co][kh][kw] = w[co][ci][2 - kh][2 - kw]
        if (dx)           // only dx reads them (a first layer wants dW alone)
            pack_weights(wf, w, g.C, g.Cout, 1);
        float *lanes = ws + g.Cout * g.C * 9;
        c3_job j = {&g, NULL, dx, dw, x, wf, NULL, dout, lanes, NULL, assign_dx != 0};
        hs_parallel_for(LANES, 1, c3_bwd_lane, &j);
        if (g.c3_dw == C3_DW_GEMM)
            return HS_OK;
        c3_dw_sum_job sj = {&g, dw, lanes};
        hs_parallel_for(g.c3_dw == C3_DW_CH ? (g.C * 9 + 15) / 16 : (g.Cout + 15) / 16, 4, c3_dw_sum_task, &sj);
        return HS_OK;
    }
    gemm_backward(&g, dx, dw, dout, x, w, ws, assign_dx);
    return HS_OK;
}

// ---- conv2d: plain-loop references ----

hs_status hs_conv2d_forward_ref(float *out, const float *x, const float *w, const float *bias, const int64_t xs[4],
                                const int64_t ws_[4], hs_conv2d_params p) {
    geom g = {0};
    HS_TRY(check_conv(&g, "conv2d", xs, ws_, p));
    if (!out || !x || !w)
        return HS_FAIL(HS_ERR_ARG, "conv2d: NULL out, x or weight");
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t co = 0; co < g.Cout; co++) {
            int64_t gi = co / g.Coutg;
            for (int64_t oh = 0; oh < g.Ho; oh++)
                for (int64_t ow = 0; ow < g.Wo; ow++) {
                    double s = bias ? (double)bias[co] : 0.0;
                    for (int64_t ci = 0; ci < g.Cg; ci++)
                        for (int64_t kh = 0; kh < g.KH; kh++)
                            for (int64_t kw = 0; kw < g.KW; kw++) {
                                int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
                                int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
                                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W)
                                    continue;
                                s += (double)x[((n * g.C + gi * g.Cg + ci) * g.H + ih) * g.W + iw] *
                                     (double)w[((co * g.Cg + ci) * g.KH + kh) * g.KW + kw];
                            }
                    out[((n * g.Cout + co) * g.Ho + oh) * g.Wo + ow] = (float)s;
                }
        }
    return HS_OK;
}

hs_status hs_conv2d_backward_ref(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                 const float *w, const int64_t xs[4], const int64_t ws_[4], hs_conv2d_params p) {
    geom g = {0};
    HS_TRY(check_conv(&g, "conv2d_backward", xs, ws_, p));
    if (!dw || !dout || !x || !w)
        return HS_FAIL(HS_ERR_ARG, "conv2d_backward: NULL dweight, dout, x or weight");
    // dbias and dweight: one double sum per element over the batch and the output plane
    for (int64_t co = 0; co < g.Cout; co++) {
        int64_t gi = co / g.Coutg;
        if (dbias) {
            double s = 0;
            for (int64_t n = 0; n < g.N; n++)
                for (int64_t k = 0; k < g.P; k++)
                    s += (double)dout[(n * g.Cout + co) * g.P + k];
            dbias[co] += (float)s;
        }
        for (int64_t ci = 0; ci < g.Cg; ci++)
            for (int64_t kh = 0; kh < g.KH; kh++)
                for (int64_t kw = 0; kw < g.KW; kw++) {
                    double s = 0;
                    for (int64_t n = 0; n < g.N; n++)
                        for (int64_t oh = 0; oh < g.Ho; oh++)
                            for (int64_t ow = 0; ow < g.Wo; ow++) {
                                int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
                                int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
                                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W)
                                    continue;
                                s += (double)dout[((n * g.Cout + co) * g.Ho + oh) * g.Wo + ow] *
                                     (double)x[((n * g.C + gi * g.Cg + ci) * g.H + ih) * g.W + iw];
                            }
                    dw[((co * g.Cg + ci) * g.KH + kh) * g.KW + kw] += (float)s;
                }
    }
    if (!dx)
        return HS_OK;
    // dx: scatter each output gradient back through the window (few terms per element)
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t co = 0; co < g.Cout; co++) {
            int64_t gi = co / g.Coutg;
            for (int64_t oh = 0; oh < g.Ho; oh++)
                for (int64_t ow = 0; ow < g.Wo; ow++) {
                    float d = dout[((n * g.Cout + co) * g.Ho + oh) * g.Wo + ow];
                    for (int64_t ci = 0; ci < g.Cg; ci++)
                        for (int64_t kh = 0; kh < g.KH; kh++)
                            for (int64_t kw = 0; kw < g.KW; kw++) {
                                int64_t ih = oh * p.stride_h - p.pad_h + kh * p.dil_h;
                                int64_t iw = ow * p.stride_w - p.pad_w + kw * p.dil_w;
                                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W)
                                    continue;
                                dx[((n * g.C + gi * g.Cg + ci) * g.H + ih) * g.W + iw] +=
                                    d * w[((co * g.Cg + ci) * g.KH + kh) * g.KW + kw];
                            }
                }
        }
    return HS_OK;
}

// ---- conv_transpose2d ----

static hs_status check_convt(geom *g, const char *op, const int64_t xs[4], const int64_t w[4], hs_convt2d_params p) {
    char a[96], b[96];
    if (!xs || !w)
        return HS_FAIL(HS_ERR_ARG, "%s: NULL shape", op);
    hs_shape_str(4, xs, a, sizeof a);
    hs_shape_str(4, w, b, sizeof b);
    for (int i = 0; i < 4; i++)
        if (xs[i] <= 0 || w[i] <= 0)
            return HS_FAIL(HS_ERR_SHAPE, "%s: x %s and weight %s must have positive sizes", op, a, b);
    if (p.stride_h < 1 || p.stride_w < 1 || p.dil_h < 1 || p.dil_w < 1 || p.pad_h < 0 || p.pad_w < 0 ||
        p.groups < 1 || p.outpad_h < 0 || p.outpad_w < 0)
        return HS_FAIL(HS_ERR_ARG,
                       "%s: bad params stride %dx%d pad %dx%d output_padding %dx%d dilation %dx%d groups %d "
                       "(x %s, weight %s)",
                       op, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.outpad_h, p.outpad_w, p.dil_h, p.dil_w,
                       p.groups, a, b);
    if ((p.outpad_h >= p.stride_h && p.outpad_h >= p.dil_h) || (p.outpad_w >= p.stride_w && p.outpad_w >= p.dil_w))
        return HS_FAIL(HS_ERR_ARG, "%s: output_padding %dx%d must be smaller than stride %dx%d or dilation %dx%d", op,
                       p.outpad_h, p.outpad_w, p.stride_h, p.stride_w, p.dil_h, p.dil_w);
    int64_t G = p.groups;
    if (xs[1] % G != 0)
        return HS_FAIL(HS_ERR_SHAPE, "%s: x %s has %lld channels, not divisible by groups %d (weight %s)", op, a,
                       (long long)xs[1], p.groups, b);
    if (w[0] != xs[1])
        return HS_FAIL(HS_ERR_SHAPE, "%s: weight %s wants %lld input channels, x %s has %lld", op, b, (long long)w[0],
                       a, (long long)xs[1]);
    int64_t Ho = (xs[2] - 1) * p.stride_h - 2 * (int64_t)p.pad_h + (int64_t)p.dil_h * (w[2] - 1) + p.outpad_h + 1;
    int64_t Wo = (xs[3] - 1) * p.stride_w - 2 * (int64_t)p.pad_w + (int64_t)p.dil_w * (w[3] - 1) + p.outpad_w + 1;
    if (Ho < 1 || Wo < 1)
        return HS_FAIL(HS_ERR_SHAPE, "%s: padding %dx%d leaves an empty output %lldx%lld (x %s, weight %s)", op,
                       p.pad_h, p.pad_w, (long long)Ho, (long long)Wo, a, b);
    g->N = xs[0];
    g->C = xs[1];
    g->H = xs[2];
    g->W = xs[3];
    g->G = G;
    g->Cg = g->C / G;
    g->Coutg = w[1];
    g->Cout = w[1] * G;
    g->KH = w[2];
    g->KW = w[3];
    g->Ho = Ho;
    g->Wo = Wo;
    g->im = (win){Ho, Wo, g->H, g->W, g->KH, g->KW, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h, p.dil_w};
    g->P = g->H * g->W;
    g->K = g->Coutg * g->KH * g->KW;
    g->T = block_images(g->N, g->P);
    g->direct = 0;
    g->depthwise = 0;
    if (g->P > INT_MAX / BLOCK_MAX_IMAGES || g->K > INT_MAX || g->C > INT_MAX || Ho * Wo > INT_MAX)
        return HS_FAIL(HS_ERR_SHAPE, "%s: x %s with weight %s is too large", op, a, b);
    return HS_OK;
}

hs_status hs_conv_transpose2d_out_shape(int64_t out[4], const int64_t x[4], const int64_t w[4], hs_convt2d_params p) {
    geom g = {0};
    if (!out)
        return HS_FAIL(HS_ERR_ARG, "conv_transpose2d: NULL output shape");
    HS_TRY(check_convt(&g, "conv_transpose2d", x, w, p));
    out[0] = g.N;
    out[1] = g.Cout;
    out[2] = g.Ho;
    out[3] = g.Wo;
    return HS_OK;
}

static size_t convt_ws(const geom *g) {
    size_t cols = (size_t)g->K * (size_t)(g->T * g->P);
    size_t tmp = g->T > 1 ? (size_t)g->Cg * (size_t)(g->T * g->P) : 0;
    return cols + tmp;
}

size_t hs_conv_transpose2d_workspace_size(const int64_t x[4], const int64_t w[4], hs_convt2d_params p) {
    geom g = {0};
    if (check_convt(&g, "conv_transpose2d", x, w, p) != HS_OK) {
        hs_clear_error();
        return 0;
    }
    return convt_ws(&g);
}

hs_status hs_conv_transpose2d_forward(float *out, const float *x, const float *w, const float *bias,
                                      const int64_t xs[4], const int64_t ws_[4], hs_convt2d_params p, float *ws) {
    geom g = {0};
    HS_TRY(check_convt(&g, "conv_transpose2d", xs, ws_, p));
    if (!out || !x || !w)
        return HS_FAIL(HS_ERR_ARG, "conv_transpose2d: NULL out, x or weight");
    HS_TRY(check_ws("conv_transpose2d", &g, convt_ws(&g), ws));
    int64_t P = g.P, OP = g.Ho * g.Wo, KK = g.KH * g.KW;
    fill_planes(out, bias, g.N, g.Cout, OP);
    float *col = ws, *tmp = ws + g.K * g.T * P;
    for (int64_t n0 = 0; n0 < g.N; n0 += g.T) {
        int64_t tb = g.N - n0 < g.T ? g.N - n0 : g.T, ld = tb * P;
        for (int64_t gi = 0; gi < g.G; gi++) {
            const float *wg = w + gi * g.Cg * g.K;   // (Cg, K)
            const float *X = x + (n0 * g.C + gi * g.Cg) * P;
            if (tb > 1) {
                plane_job j = {&g, tmp, ld, g.Cg, P, X, NULL, g.C * P, P, NULL, 0, 0};
                hs_parallel_for(tb * g.Cg, grain_for(P), gather_task, &j);
                X = tmp;
            }
            // cols (K, tb*P) = w_g^T x_g
            hs_sgemm(1, 0, (int)g.K, (int)ld, (int)g.Cg, 1.0f, wg, (int)g.K, X, (int)ld, 0.0f, col, (int)ld);
            plane_job j = {&g, col, ld, g.Coutg, P, NULL, out + (n0 * g.Cout + gi * g.Coutg) * OP, g.Cout * OP, OP, NULL, 0, 0};
            hs_parallel_for(tb * g.Coutg, grain_for(KK * P), col2im_task, &j);
        }
    }
    return HS_OK;
}

hs_status hs_conv_transpose2d_backward(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                       const float *w, const int64_t xs[4], const int64_t ws_[4],
                                       hs_convt2d_params p, float *ws) {
    return hs_conv_transpose2d_backward_assign(dx, dw, dbias, dout, x, w, xs, ws_, p, ws, 0);
}

hs_status hs_conv_transpose2d_backward_assign(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                              const float *w, const int64_t xs[4], const int64_t ws_[4],
                                              hs_convt2d_params p, float *ws, int assign_dx) {
    geom g = {0};
    HS_TRY(check_convt(&g, "conv_transpose2d_backward", xs, ws_, p));
    if (!dw || !dout || !x || !w)
        return HS_FAIL(HS_ERR_ARG, "conv_transpose2d_backward: NULL dweight, dout, x or weight");
    HS_TRY(check_ws("conv_transpose2d_backward", &g, convt_ws(&g), ws));
    int64_t P = g.P, OP = g.Ho * g.Wo, KK = g.KH * g.KW;
    if (dbias)
        channel_sums(dbias, dout, g.N, g.Cout, OP);
    float *col = ws, *tmp = ws + g.K * g.T * P;
    for (int64_t n0 = 0; n0 < g.N; n0 += g.T) {
        int64_t tb = g.N - n0 < g.T ? g.N - n0 : g.T, ld = tb * P;
        for (int64_t gi = 0; gi < g.G; gi++) {
            const float *wg = w + gi * g.Cg * g.K;
            plane_job jc = {&g, col, ld, g.Coutg, P, dout + (n0 * g.Cout + gi * g.Coutg) * OP, NULL, g.Cout * OP, OP,
                            NULL, 0, 0};
            hs_parallel_for(tb * g.Coutg, grain_for(KK * P), im2col_task, &jc);
            const float *X = x + (n0 * g.C + gi * g.Cg) * P;
            if (tb > 1) {
                plane_job j = {&g, tmp, ld, g.Cg, P, X, NULL, g.C * P, P, NULL, 0, 0};
                hs_parallel_for(tb * g.Cg, grain_for(P), gather_task, &j);
                X = tmp;
            }
            // dW_g (Cg, K) += x_g (Cg, tb*P) cols^T
            hs_sgemm(0, 1, (int)g.Cg, (int)g.K, (int)ld, 1.0f, X, (int)ld, col, (int)ld, 1.0f, dw + gi * g.Cg * g.K,
                     (int)g.K);
            if (!dx)
                continue;
            float *dxg = dx + (n0 * g.C + gi * g.Cg) * P;
            if (tb == 1) {
                hs_sgemm(0, 0, (int)g.Cg, (int)P, (int)g.K, 1.0f, wg, (int)g.K, col, (int)P, assign_dx ? 0.0f : 1.0f,
                         dxg, (int)P);
            } else {
                hs_sgemm(0, 0, (int)g.Cg, (int)ld, (int)g.K, 1.0f, wg, (int)g.K, col, (int)ld, 0.0f, tmp, (int)ld);
                plane_job j = {&g, tmp, ld, g.Cg, P, NULL, dxg, g.C * P, P, NULL, assign_dx ? 0 : 1, 0};
                hs_parallel_for(tb * g.Cg, grain_for(P), scatter_task, &j);
            }
        }
    }
    return HS_OK;
}

hs_status hs_conv_transpose2d_forward_ref(float *out, const float *x, const float *w, const float *bias,
                                          const int64_t xs[4], const int64_t ws_[4], hs_convt2d_params p) {
    geom g = {0};
    HS_TRY(check_convt(&g, "conv_transpose2d", xs, ws_, p));
    if (!out || !x || !w)
        return HS_FAIL(HS_ERR_ARG, "conv_transpose2d: NULL out, x or weight");
    // gather form: out[n,co,oh,ow] = bias + sum over (ci, kh, kw) with oh = h*s - p + kh*d
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t co = 0; co < g.Cout; co++) {
            int64_t gi = co / g.Coutg, cog = co % g.Coutg;
            for (int64_t oh = 0; oh < g.Ho; oh++)
                for (int64_t ow = 0; ow < g.Wo; ow++) {
                    double s = bias ? (double)bias[co] : 0.0;
                    for (int64_t ci = gi * g.Cg; ci < (gi + 1) * g.Cg; ci++)
                        for (int64_t kh = 0; kh < g.KH; kh++)
                            for (int64_t kw = 0; kw < g.KW; kw++) {
                                int64_t th = oh + p.pad_h - kh * p.dil_h, tw = ow + p.pad_w - kw * p.dil_w;
                                if (th < 0 || tw < 0 || th % p.stride_h || tw % p.stride_w)
                                    continue;
                                int64_t h = th / p.stride_h, wi = tw / p.stride_w;
                                if (h >= g.H || wi >= g.W)
                                    continue;
                                s += (double)x[((n * g.C + ci) * g.H + h) * g.W + wi] *
                                     (double)w[((ci * g.Coutg + cog) * g.KH + kh) * g.KW + kw];
                            }
                    out[((n * g.Cout + co) * g.Ho + oh) * g.Wo + ow] = (float)s;
                }
        }
    return HS_OK;
}

hs_status hs_conv_transpose2d_backward_ref(float *dx, float *dw, float *dbias, const float *dout, const float *x,
                                           const float *w, const int64_t xs[4], const int64_t ws_[4],
                                           hs_convt2d_params p) {
    geom g = {0};
    HS_TRY(check_convt(&g, "conv_transpose2d_backward", xs, ws_, p));
    if (!dw || !dout || !x || !w)
        return HS_FAIL(HS_ERR_ARG, "conv_transpose2d_backward: NULL dweight, dout, x or weight");
    if (dbias)
        for (int64_t n = 0; n < g.N; n++)
            for (int64_t co = 0; co < g.Cout; co++)
                for (int64_t k = 0; k < g.Ho * g.Wo; k++)
                    dbias[co] += dout[(n * g.Cout + co) * g.Ho * g.Wo + k];
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t ci = 0; ci < g.C; ci++) {
            int64_t gi = ci / g.Cg;
            for (int64_t h = 0; h < g.H; h++)
                for (int64_t wi = 0; wi < g.W; wi++) {
                    int64_t xi = ((n * g.C + ci) * g.H + h) * g.W + wi;
                    double sdx = 0;
                    for (int64_t cog = 0; cog < g.Coutg; cog++)
                        for (int64_t kh = 0; kh < g.KH; kh++)
                            for (int64_t kw = 0; kw < g.KW; kw++) {
                                int64_t oh = h * p.stride_h - p.pad_h + kh * p.dil_h;
                                int64_t ow = wi * p.stride_w - p.pad_w + kw * p.dil_w;
                                if (oh < 0 || oh >= g.Ho || ow < 0 || ow >= g.Wo)
                                    continue;
                                float d = dout[((n * g.Cout + gi * g.Coutg + cog) * g.Ho + oh) * g.Wo + ow];
                                int64_t wk = ((ci * g.Coutg + cog) * g.KH + kh) * g.KW + kw;
                                sdx += (double)d * (double)w[wk];
                                dw[wk] += d * x[xi];
                            }
                    if (dx)
                        dx[xi] += (float)sdx;
                }
        }
    return HS_OK;
}
