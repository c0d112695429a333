// tests/test_conv2d.c: conv2d and conv_transpose2d kernels: the fast paths (im2col+GEMM, 1x1
// GEMM, depthwise loops, batched blocks, direct 3x3 AVX-512 kernels) against the plain-loop
// references on many shapes, against PyTorch's reference cases, finite differences, +=
// semantics, thread-count independence and argument errors. Not a benchmark.
#include "hs_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "conv2d.h"
#include "conv3x3.h"
#include "parallel.h"
#include "ref_reader.h"
#include "rng.h"

#define FWD_ATOL 1e-5
#define FWD_RTOL 1e-4
#define GRAD_ATOL 1e-4
#define GRAD_RTOL 1e-3

static float *randn(int64_t n, uint64_t stream, float scale) {
    float *a = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        a[i] = scale * hs_rng_normal(42, stream, (uint64_t)i);
    return a;
}

static float *copy_of(const float *a, int64_t n) {
    float *b = malloc((size_t)n * sizeof(float));
    memcpy(b, a, (size_t)n * sizeof(float));
    return b;
}

static int64_t prod4(const int64_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

// ---- conv2d: fast vs reference ----

typedef struct {
    int64_t N, C, H, W, Cout, KH, KW;
    int s, p, d, g;
} conv_case;

static void run_conv_vs_ref(const conv_case *c, uint64_t seed) {
    int64_t xs[4] = {c->N, c->C, c->H, c->W}, wsh[4] = {c->Cout, c->C / c->g, c->KH, c->KW}, os[4];
    hs_conv2d_params p = {c->s, c->s, c->p, c->p, c->d, c->d, c->g};
    assert_int_equal(hs_conv2d_out_shape(os, xs, wsh, p), HS_OK);
    int64_t nx = prod4(xs), nw = prod4(wsh), no = prod4(os);
    float *x = randn(nx, seed, 1.0f), *w = randn(nw, seed + 1, 0.3f), *b = randn(c->Cout, seed + 2, 1.0f);
    float *dout = randn(no, seed + 3, 1.0f);
    size_t wsz = hs_conv2d_workspace_size(xs, wsh, p);
    float *ws = wsz ? malloc(wsz * sizeof(float)) : NULL;
    float *out = malloc((size_t)no * sizeof(float)), *out_ref = malloc((size_t)no * sizeof(float));
    for (int64_t i = 0; i < no; i++)
        out[i] = NAN;   // forward must assign every element
    assert_int_equal(hs_conv2d_forward(out, x, w, b, xs, wsh, p, ws), HS_OK);
    assert_int_equal(hs_conv2d_forward_ref(out_ref, x, w, b, xs, wsh, p), HS_OK);
    hs_expect_close(out, out_ref, (size_t)no, FWD_ATOL, FWD_RTOL);
    // the fused epilogue (folded eval batchnorm + ReLU) == the same math applied afterwards
    float *sc = randn(c->Cout, seed + 8, 1.0f), *sh = randn(c->Cout, seed + 9, 1.0f);
    hs_conv2d_epilogue ep = {sc, sh, (int)(seed / 10 % 2)};
    float *fused = malloc((size_t)no * sizeof(float));
    assert_int_equal(hs_conv2d_forward_fused(fused, x, w, b, xs, wsh, p, &ep, ws), HS_OK);
    for (int64_t i = 0; i < no; i++) {
        float v = out[i] * sc[(i / (os[2] * os[3])) % c->Cout] + sh[(i / (os[2] * os[3])) % c->Cout];
        out_ref[i] = ep.relu && v < 0.0f ? 0.0f : v;
    }
    hs_expect_close(fused, out_ref, (size_t)no, 1e-6, 1e-6);
    free(sc), free(sh), free(fused);
    // backward accumulates: start both from the same non-zero gradients
    float *dx = randn(nx, seed + 4, 1.0f), *dw = randn(nw, seed + 5, 1.0f), *db = randn(c->Cout, seed + 6, 1.0f);
    float *dx_ref = copy_of(dx, nx), *dw_ref = copy_of(dw, nw), *db_ref = copy_of(db, c->Cout);
    assert_int_equal(hs_conv2d_backward(dx, dw, db, dout, x, w, xs, wsh, p, ws), HS_OK);
    assert_int_equal(hs_conv2d_backward_ref(dx_ref, dw_ref, db_ref, dout, x, w, xs, wsh, p), HS_OK);
    hs_expect_close(dx, dx_ref, (size_t)nx, GRAD_ATOL, GRAD_RTOL);
    hs_expect_close(dw, dw_ref, (size_t)nw, GRAD_ATOL, GRAD_RTOL);
    hs_expect_close(db, db_ref, (size_t)c->Cout, GRAD_ATOL, GRAD_RTOL);
    // NULL dx / dbias are skipped and leave dweight the same
    float *dw2 = randn(nw, seed + 5, 1.0f);
    assert_int_equal(hs_conv2d_backward(NULL, dw2, NULL, dout, x, w, xs, wsh, p, ws), HS_OK);
    hs_expect_close(dw2, dw_ref, (size_t)nw, GRAD_ATOL, GRAD_RTOL);
    free(dw2);
    // assign_dx: dx = the gradient whatever it held before (what the graph's first writer uses)
    float *dxa = randn(nx, seed + 7, 1e3f), *dxz = calloc((size_t)nx, sizeof(float));
    float *dwa = calloc((size_t)nw, sizeof(float)), *dwz = calloc((size_t)nw, sizeof(float));
    assert_int_equal(hs_conv2d_backward_assign(dxa, dwa, NULL, dout, x, w, xs, wsh, p, ws, 1), HS_OK);
    assert_int_equal(hs_conv2d_backward(dxz, dwz, NULL, dout, x, w, xs, wsh, p, ws), HS_OK);
    assert_memory_equal(dxa, dxz, (size_t)nx * sizeof(float));
    assert_memory_equal(dwa, dwz, (size_t)nw * sizeof(float));
    free(dxa), free(dxz), free(dwa), free(dwz);
    free(x), free(w), free(b), free(dout), free(ws), free(out), free(out_ref);
    free(dx), free(dw), free(db), free(dx_ref), free(dw_ref), free(db_ref);
}

static const conv_case conv_cases[] = {
    // N  C   H   W  Cout KH KW  s  p  d  g
    {2, 3, 9, 9, 4, 3, 3, 1, 1, 1, 1},        // plain 3x3 same
    {2, 3, 9, 9, 5, 3, 3, 2, 0, 1, 1},        // stride 2
    {3, 4, 11, 7, 6, 1, 1, 1, 0, 1, 1},       // 1x1 direct GEMM, odd sizes, batched
    {2, 6, 9, 8, 3, 1, 1, 2, 0, 1, 1},        // 1x1 stride 2 (im2col path)
    {2, 2, 9, 9, 3, 3, 3, 1, 2, 2, 1},        // dilation 2
    {1, 3, 13, 10, 2, 5, 5, 1, 2, 1, 1},      // 5x5, non-square
    {2, 4, 7, 9, 6, 3, 3, 1, 1, 1, 2},        // groups 2
    {2, 4, 9, 9, 4, 3, 3, 1, 1, 1, 4},        // depthwise
    {2, 5, 10, 9, 5, 3, 3, 2, 1, 1, 5},       // depthwise stride 2
    {1, 3, 8, 8, 3, 5, 5, 1, 4, 2, 3},        // depthwise dilated, big pad
    {2, 2, 6, 6, 4, 3, 3, 1, 1, 1, 2},        // grouped, channel multiplier 2
    {20, 3, 6, 5, 4, 3, 3, 1, 1, 1, 1},       // many small images: blocks of T and a partial one
    {17, 4, 5, 5, 4, 1, 1, 1, 0, 1, 1},       // 1x1 batched blocks
    {2, 3, 50, 47, 4, 3, 3, 1, 1, 1, 1},      // one image per block (T = 1)
    {1, 2, 3, 3, 2, 3, 3, 1, 0, 1, 1},        // output 1x1
    {2, 3, 7, 7, 2, 7, 7, 2, 3, 1, 1},        // 7x7 stride 2 pad 3
    {2, 1, 5, 6, 1, 2, 2, 3, 1, 1, 1},        // even kernel, stride 3
    {2, 4, 48, 47, 6, 1, 1, 1, 0, 1, 1},      // 1x1 direct GEMM on x (T = 1)
    {2, 4, 48, 47, 6, 1, 1, 1, 0, 1, 2},      // 1x1 direct, groups 2
    {1, 64, 20, 100, 8, 3, 3, 1, 1, 1, 1},    // tiled: several row tiles per image
    {1, 64, 23, 200, 4, 3, 3, 2, 2, 2, 2},    // tiled with stride, dilation and groups
    {5, 16, 50, 50, 4, 3, 3, 1, 1, 1, 1},     // tiled: more images than lanes, uneven
    {1, 200, 12, 90, 3, 1, 1, 1, 0, 1, 1},    // tiled 1x1 direct, several tiles
    {40, 64, 6, 6, 8, 3, 3, 1, 1, 1, 1},      // image-block lanes: 4 blocks of 10 images
    {80, 64, 6, 6, 8, 3, 3, 1, 1, 1, 2},      // image-block lanes, groups, a partial block
    {28, 2000, 4, 4, 5, 1, 1, 1, 0, 1, 1},    // image-block lanes, 1x1 direct
    {30, 128, 5, 5, 6, 3, 3, 2, 1, 1, 1},     // image-block lanes with stride 2
    {2, 4, 46, 46, 256, 3, 3, 1, 1, 1, 2},    // tiled, 128 out channels per group: dW partials untransposed
    {4, 16, 40, 40, 128, 3, 3, 1, 1, 1, 1},   // image-block lanes, 128 out channels: untransposed partials
};

// The direct 3x3 stride-1 kernels (conv3x3.c, AVX-512 builds): odd widths (masked last vector),
// Cin 1/3/5, Cout 1/7/17 (every register-block remainder), padding 0/1/2, batches 1-3, and
// shapes with several row tiles per image and several images per tile; rows of 32+ pixels take
// the direct dW kernel too, narrower ones dW by im2col + sgemm.
static void test_conv2d_direct3x3_matches_reference_on_odd_shapes(void **state) {
    (void)state;
    static const int64_t cins[] = {1, 3, 5}, couts[] = {1, 7, 17}, hws[][2] = {{5, 21}, {17, 19}, {9, 67}};
    uint64_t seed = 700;
    for (int ic = 0; ic < 3; ic++)
        for (int oc = 0; oc < 3; oc++)
            for (int pad = 0; pad < 2; pad++) {
                const int64_t *hw = hws[(ic + oc + pad) % 3];
                conv_case c = {1 + (ic + 2 * oc + pad) % 3, cins[ic], hw[0], hw[1], couts[oc], 3, 3, 1, pad, 1, 1};
                run_conv_vs_ref(&c, seed);
                seed += 10;
            }
    static const conv_case big[] = {
        // N  C   H    W  Cout KH KW s  p  d  g
        {2, 16, 37, 130, 32, 3, 3, 1, 1, 1, 1},   // several row tiles per image, 9 vectors per row; dW
                                                  // over channels, rows wider than one dout chunk
        {1, 32, 61, 47, 16, 3, 3, 1, 0, 1, 1},    // batch 1: row tiles for the lanes, no padding
        {3, 8, 20, 21, 24, 3, 3, 1, 2, 1, 1},     // padding 2 (dx with padding 0)
        {11, 5, 6, 6, 7, 3, 3, 1, 1, 1, 1},       // several whole images per tile, a partial tile
        {2, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1},    // 64 channels, 16 pixels per row; dW blocks of 3 + 1 vectors
        {2, 24, 5, 16, 80, 3, 3, 1, 1, 1, 1},     // dW blocks of 3 + 2 vectors, 2 images per tile
        {2, 48, 8, 20, 40, 3, 3, 1, 1, 1, 1},     // 20 wide; dW over channels: one block of 3 vectors,
                                                  // 8 zero columns
        {3, 1, 5, 64, 1, 3, 3, 1, 2, 1, 1},       // dW over pixels: Cin 1, Cout 1, padding 2, 66 wide
        {1, 5, 6, 70, 7, 3, 3, 1, 0, 1, 1},       // dW over pixels: Cout 7, no padding, 68 wide
        {2, 3, 4, 90, 17, 3, 3, 1, 1, 1, 1},      // dW over pixels: Cin 3, Cout 17
        {3, 5, 8, 8, 17, 3, 3, 1, 1, 1, 1},       // dense layout: 8 wide, a vector spans 2 rows; GEMM dW
        {2, 7, 5, 4, 7, 3, 3, 1, 1, 1, 1},        // dense, 4 wide, 5 rows: a masked last vector
        {1, 16, 8, 8, 9, 3, 3, 1, 1, 1, 1},       // dense, batch 1: row tiles; dW over channels, Cout 9
        {9, 3, 7, 8, 1, 3, 3, 1, 1, 1, 1},        // dense, several images per tile
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        run_conv_vs_ref(&big[i], 900 + 10 * i);
}

// Where the direct path applies, switching it off (im2col + sgemm for every shape) gives the same
// forward and gradients within float rounding: the switch the benchmarks use is safe.
static void test_conv2d_direct3x3_agrees_with_im2col_path(void **state) {
    (void)state;
    if (!hs_conv3x3_available())
        skip();   // built without AVX-512: there is only the im2col path
    static const conv_case cs[] = {
        {2, 16, 37, 130, 32, 3, 3, 1, 1, 1, 1},
        {3, 5, 17, 19, 17, 3, 3, 1, 0, 1, 1},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const conv_case *c = &cs[i];
        int64_t xs[4] = {c->N, c->C, c->H, c->W}, wsh[4] = {c->Cout, c->C, 3, 3}, os[4];
        hs_conv2d_params p = {1, 1, c->p, c->p, 1, 1, 1};
        assert_int_equal(hs_conv2d_out_shape(os, xs, wsh, p), HS_OK);
        int64_t nx = prod4(xs), nw = prod4(wsh), no = prod4(os);
        float *x = randn(nx, 50, 1.0f), *w = randn(nw, 51, 0.3f), *dout = randn(no, 52, 1.0f);
        float *res[2][3];
        for (int direct = 1; direct >= 0; direct--) {
            int was = hs_conv2d_set_direct(direct);
            float *ws = malloc((hs_conv2d_workspace_size(xs, wsh, p) + 1) * sizeof(float));
            res[direct][0] = malloc((size_t)no * sizeof(float));
            res[direct][1] = calloc((size_t)nx, sizeof(float));
            res[direct][2] = calloc((size_t)nw, sizeof(float));
            assert_int_equal(hs_conv2d_forward(res[direct][0], x, w, NULL, xs, wsh, p, ws), HS_OK);
            assert_int_equal(hs_conv2d_backward(res[direct][1], res[direct][2], NULL, dout, x, w, xs, wsh, p, ws), HS_OK);
            hs_conv2d_set_direct(was);
            free(ws);
        }
        hs_expect_close(res[1][0], res[0][0], (size_t)no, FWD_ATOL, FWD_RTOL);
        hs_expect_close(res[1][1], res[0][1], (size_t)nx, GRAD_ATOL, GRAD_RTOL);
        hs_expect_close(res[1][2], res[0][2], (size_t)nw, GRAD_ATOL, GRAD_RTOL);
        for (int d = 0; d < 2; d++)
            for (int k = 0; k < 3; k++)
                free(res[d][k]);
        free(x), free(w), free(dout);
    }
}

static void test_conv2d_matches_reference_loops_on_many_shapes(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        run_conv_vs_ref(&conv_cases[i], 100 + 10 * i);
}

// ---- conv_transpose2d: fast vs reference ----

typedef struct {
    int64_t N, C, H, W, Coutg, KH, KW;
    int s, p, op, d, g;
} convt_case;

static void run_convt_vs_ref(const convt_case *c, uint64_t seed) {
    int64_t xs[4] = {c->N, c->C, c->H, c->W}, wsh[4] = {c->C, c->Coutg, c->KH, c->KW}, os[4];
    hs_convt2d_params p = {c->s, c->s, c->p, c->p, c->op, c->op, c->d, c->d, c->g};
    assert_int_equal(hs_conv_transpose2d_out_shape(os, xs, wsh, p), HS_OK);
    int64_t nx = prod4(xs), nw = prod4(wsh), no = prod4(os), Cout = os[1];
    float *x = randn(nx, seed, 1.0f), *w = randn(nw, seed + 1, 0.3f), *b = randn(Cout, seed + 2, 1.0f);
    float *dout = randn(no, seed + 3, 1.0f);
    size_t wsz = hs_conv_transpose2d_workspace_size(xs, wsh, p);
    float *ws = wsz ? malloc(wsz * sizeof(float)) : NULL;
    float *out = malloc((size_t)no * sizeof(float)), *out_ref = malloc((size_t)no * sizeof(float));
    for (int64_t i = 0; i < no; i++)
        out[i] = NAN;
    assert_int_equal(hs_conv_transpose2d_forward(out, x, w, b, xs, wsh, p, ws), HS_OK);
    assert_int_equal(hs_conv_transpose2d_forward_ref(out_ref, x, w, b, xs, wsh, p), HS_OK);
    hs_expect_close(out, out_ref, (size_t)no, FWD_ATOL, FWD_RTOL);
    float *dx = randn(nx, seed + 4, 1.0f), *dw = randn(nw, seed + 5, 1.0f), *db = randn(Cout, seed + 6, 1.0f);
    float *dx_ref = copy_of(dx, nx), *dw_ref = copy_of(dw, nw), *db_ref = copy_of(db, Cout);
    assert_int_equal(hs_conv_transpose2d_backward(dx, dw, db, dout, x, w, xs, wsh, p, ws), HS_OK);
    assert_int_equal(hs_conv_transpose2d_backward_ref(dx_ref, dw_ref, db_ref, dout, x, w, xs, wsh, p), HS_OK);
    hs_expect_close(dx, dx_ref, (size_t)nx, GRAD_ATOL, GRAD_RTOL);
    hs_expect_close(dw, dw_ref, (size_t)nw, GRAD_ATOL, GRAD_RTOL);
    hs_expect_close(db, db_ref, (size_t)Cout, GRAD_ATOL, GRAD_RTOL);
    float *dxa = randn(nx, seed + 7, 1e3f), *dxz = calloc((size_t)nx, sizeof(float));
    float *dwa = calloc((size_t)nw, sizeof(float)), *dwz = calloc((size_t)nw, sizeof(float));
    assert_int_equal(hs_conv_transpose2d_backward_assign(dxa, dwa, NULL, dout, x, w, xs, wsh, p, ws, 1), HS_OK);
    assert_int_equal(hs_conv_transpose2d_backward(dxz, dwz, NULL, dout, x, w, xs, wsh, p, ws), HS_OK);
    assert_memory_equal(dxa, dxz, (size_t)nx * sizeof(float));
    assert_memory_equal(dwa, dwz, (size_t)nw * sizeof(float));
    free(dxa), free(dxz), free(dwa), free(dwz);
    free(x), free(w), free(b), free(dout), free(ws), free(out), free(out_ref);
    free(dx), free(dw), free(db), free(dx_ref), free(dw_ref), free(db_ref);
}

static const convt_case convt_cases[] = {
    // N  C  H  W Coutg KH KW s  p op d  g
    {2, 4, 5, 5, 3, 2, 2, 2, 0, 0, 1, 1},     // U-Net up-conv
    {2, 3, 5, 5, 2, 3, 3, 2, 1, 1, 1, 1},     // output padding
    {3, 3, 6, 4, 3, 4, 4, 2, 1, 0, 1, 1},     // k4 s2 p1
    {2, 4, 5, 6, 2, 3, 3, 1, 1, 0, 1, 2},     // groups 2, stride 1
    {2, 2, 4, 5, 3, 3, 3, 2, 2, 1, 2, 1},     // dilation 2 with output padding < dilation
    {20, 3, 3, 4, 2, 2, 2, 2, 0, 0, 1, 1},    // many small images: batched blocks
    {1, 2, 50, 45, 2, 2, 2, 2, 0, 0, 1, 1},   // T = 1
    {2, 3, 4, 4, 2, 1, 1, 1, 0, 0, 1, 1},     // 1x1
};

static void test_conv_transpose2d_matches_reference_loops_on_many_shapes(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof convt_cases / sizeof convt_cases[0]; i++)
        run_convt_vs_ref(&convt_cases[i], 500 + 10 * i);
}

// ---- PyTorch reference cases ----

static int n_torch_cases;

static void torch_case(const char *name, void *ctx) {
    int transposed = *(int *)ctx;
    ref_file f;
    if (!ref_open(&f, name))
        fail_msg("cannot read reference case %s", name);
    int64_t xs[8], wsh[8], os[8];
    int nd;
    float *x = ref_tensor(&f, "x", xs, &nd, NULL), *w = ref_tensor(&f, "weight", wsh, &nd, NULL);
    float *b = ref_tensor(&f, "bias", NULL, NULL, NULL), *want = ref_tensor(&f, "out", os, &nd, NULL);
    float *dout = ref_tensor(&f, "dout", NULL, NULL, NULL), *wdx = ref_tensor(&f, "dx", NULL, NULL, NULL);
    float *wdw = ref_tensor(&f, "dweight", NULL, NULL, NULL), *wdb = ref_tensor(&f, "dbias", NULL, NULL, NULL);
    assert_non_null(x), assert_non_null(w), assert_non_null(want), assert_non_null(dout);
    int s = (int)ref_param(&f, "stride", 1), pd = (int)ref_param(&f, "padding", 0);
    int d = (int)ref_param(&f, "dilation", 1), g = (int)ref_param(&f, "groups", 1);
    int op = (int)ref_param(&f, "output_padding", 0);
    int64_t nx = prod4(xs), nw = prod4(wsh), no = prod4(os), Cout = os[1], got_os[4];
    float *out = malloc((size_t)no * sizeof(float));
    float *dx = calloc((size_t)nx, sizeof(float)), *dw = calloc((size_t)nw, sizeof(float));
    float *db = calloc((size_t)Cout, sizeof(float));
    if (!transposed) {
        hs_conv2d_params p = {s, s, pd, pd, d, d, g};
        assert_int_equal(hs_conv2d_out_shape(got_os, xs, wsh, p), HS_OK);
        float *ws = malloc((hs_conv2d_workspace_size(xs, wsh, p) + 1) * sizeof(float));
        assert_int_equal(hs_conv2d_forward(out, x, w, b, xs, wsh, p, ws), HS_OK);
        assert_int_equal(hs_conv2d_backward(dx, dw, db, dout, x, w, xs, wsh, p, ws), HS_OK);
        free(ws);
    } else {
        hs_convt2d_params p = {s, s, pd, pd, op, op, d, d, g};
        assert_int_equal(hs_conv_transpose2d_out_shape(got_os, xs, wsh, p), HS_OK);
        float *ws = malloc((hs_conv_transpose2d_workspace_size(xs, wsh, p) + 1) * sizeof(float));
        assert_int_equal(hs_conv_transpose2d_forward(out, x, w, b, xs, wsh, p, ws), HS_OK);
        assert_int_equal(hs_conv_transpose2d_backward(dx, dw, db, dout, x, w, xs, wsh, p, ws), HS_OK);
        free(ws);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(got_os[i], os[i]);
    hs_expect_close(out, want, (size_t)no, FWD_ATOL, FWD_RTOL);
    hs_expect_close(dx, wdx, (size_t)nx, GRAD_ATOL, GRAD_RTOL);
    hs_expect_close(dw, wdw, (size_t)nw, GRAD_ATOL, GRAD_RTOL);
    hs_expect_close(db, wdb, (size_t)Cout, GRAD_ATOL, GRAD_RTOL);
    free(x), free(w), free(b), free(want), free(dout), free(wdx), free(wdw), free(wdb);
    free(out), free(dx), free(dw), free(db);
    ref_close(&f);
    n_torch_cases++;
}

static void test_conv2d_matches_pytorch_reference_cases(void **state) {
    (void)state;
    int transposed = 0;
    n_torch_cases = 0;
    if (ref_each_case("conv2d_", torch_case, &transposed) == 0)
        skip();
    assert_true(n_torch_cases >= 1);
}

static void test_conv_transpose2d_matches_pytorch_reference_cases(void **state) {
    (void)state;
    int transposed = 1;
    n_torch_cases = 0;
    if (ref_each_case("conv_transpose2d_", torch_case, &transposed) == 0)
        skip();
    assert_true(n_torch_cases >= 1);
}

// ---- finite differences: loss = sum(out * R) ----

typedef struct {
    int transposed;
    int64_t xs[4], wsh[4], no;
    hs_conv2d_params p;
    hs_convt2d_params pt;
    float *x, *w, *b, *R, *out, *ws;
} fd_ctx;

static double fd_loss(void *vctx) {
    fd_ctx *c = vctx;
    if (c->transposed)
        assert_int_equal(hs_conv_transpose2d_forward(c->out, c->x, c->w, c->b, c->xs, c->wsh, c->pt, c->ws), HS_OK);
    else
        assert_int_equal(hs_conv2d_forward(c->out, c->x, c->w, c->b, c->xs, c->wsh, c->p, c->ws), HS_OK);
    double s = 0;
    for (int64_t i = 0; i < c->no; i++)
        s += (double)c->out[i] * (double)c->R[i];
    return s;
}

static void check_fd(fd_ctx *c) {
    int64_t os[4];
    size_t wsz;
    if (c->transposed) {
        assert_int_equal(hs_conv_transpose2d_out_shape(os, c->xs, c->wsh, c->pt), HS_OK);
        wsz = hs_conv_transpose2d_workspace_size(c->xs, c->wsh, c->pt);
    } else {
        assert_int_equal(hs_conv2d_out_shape(os, c->xs, c->wsh, c->p), HS_OK);
        wsz = hs_conv2d_workspace_size(c->xs, c->wsh, c->p);
    }
    int64_t nx = prod4(c->xs), nw = prod4(c->wsh), Cout = os[1];
    c->no = prod4(os);
    c->x = randn(nx, 7, 1.0f), c->w = randn(nw, 8, 0.5f), c->b = randn(Cout, 9, 1.0f), c->R = randn(c->no, 10, 1.0f);
    c->out = malloc((size_t)c->no * sizeof(float));
    c->ws = malloc((wsz + 1) * sizeof(float));
    float *dx = calloc((size_t)nx, sizeof(float)), *dw = calloc((size_t)nw, sizeof(float));
    float *db = calloc((size_t)Cout, sizeof(float));
    float *dx2 = calloc((size_t)nx, sizeof(float)), *dw2 = calloc((size_t)nw, sizeof(float));
    float *db2 = calloc((size_t)Cout, sizeof(float));
    for (int rep = 0; rep < 2; rep++) {
        float *a = rep ? dx2 : dx, *bw = rep ? dw2 : dw, *bb = rep ? db2 : db;
        if (c->transposed)
            assert_int_equal(hs_conv_transpose2d_backward(a, bw, bb, c->R, c->x, c->w, c->xs, c->wsh, c->pt, c->ws), HS_OK);
        else
            assert_int_equal(hs_conv2d_backward(a, bw, bb, c->R, c->x, c->w, c->xs, c->wsh, c->p, c->ws), HS_OK);
    }
    assert_memory_equal(dx, dx2, (size_t)nx * sizeof(float));   // two runs: bit-identical
    assert_memory_equal(dw, dw2, (size_t)nw * sizeof(float));
    assert_memory_equal(db, db2, (size_t)Cout * sizeof(float));
    float *num = malloc((size_t)(nx + nw + Cout) * sizeof(float));
    for (int64_t i = 0; i < nx; i++)
        num[i] = (float)hs_numeric_grad(fd_loss, c, c->x, (size_t)i, 1e-3f);
    hs_expect_close(dx, num, (size_t)nx, 2e-3, 2e-3);
    for (int64_t i = 0; i < nw; i++)
        num[i] = (float)hs_numeric_grad(fd_loss, c, c->w, (size_t)i, 1e-3f);
    hs_expect_close(dw, num, (size_t)nw, 2e-3, 2e-3);
    for (int64_t i = 0; i < Cout; i++)
        num[i] = (float)hs_numeric_grad(fd_loss, c, c->b, (size_t)i, 1e-3f);
    hs_expect_close(db, num, (size_t)Cout, 2e-3, 2e-3);
    free(num), free(dx), free(dw), free(db), free(dx2), free(dw2), free(db2);
    free(c->x), free(c->w), free(c->b), free(c->R), free(c->out), free(c->ws);
}

static void test_conv2d_backward_matches_finite_differences(void **state) {
    (void)state;
    fd_ctx a = {.transposed = 0, .xs = {2, 4, 5, 6}, .wsh = {4, 2, 3, 3}, .p = {2, 1, 1, 1, 2, 1, 2}};   // stride 2x1, dil 2x1, groups 2
    check_fd(&a);
    fd_ctx b = {.transposed = 0, .xs = {2, 3, 5, 5}, .wsh = {3, 1, 3, 3}, .p = {1, 1, 1, 1, 1, 1, 3}};   // depthwise
    check_fd(&b);
    fd_ctx c = {.transposed = 0, .xs = {2, 3, 4, 4}, .wsh = {2, 3, 1, 1}, .p = {1, 1, 0, 0, 1, 1, 1}};   // 1x1 direct
    check_fd(&c);
}

static void test_conv_transpose2d_backward_matches_finite_differences(void **state) {
    (void)state;
    fd_ctx a = {.transposed = 1, .xs = {2, 2, 3, 4}, .wsh = {2, 3, 3, 3}, .pt = {2, 2, 1, 1, 1, 1, 1, 1, 1}};
    check_fd(&a);
    fd_ctx b = {.transposed = 1, .xs = {1, 4, 3, 3}, .wsh = {4, 1, 2, 2}, .pt = {2, 2, 0, 0, 0, 0, 1, 1, 2}};
    check_fd(&b);
}

// ---- thread count independence ----

static void test_conv2d_results_identical_for_one_and_two_threads(void **state) {
    (void)state;
    int saved = hs_get_num_threads();
    struct { int64_t xs[4], wsh[4]; hs_conv2d_params p; } cases[] = {
        {{20, 3, 6, 5}, {4, 3, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},
        {{2, 8, 40, 40}, {8, 8, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},
        {{2, 4, 50, 50}, {5, 4, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},
        {{2, 4, 50, 50}, {5, 4, 1, 1}, {1, 1, 0, 0, 1, 1, 1}},
        {{3, 6, 12, 12}, {6, 1, 3, 3}, {2, 2, 1, 1, 1, 1, 6}},
        {{40, 64, 6, 6}, {8, 64, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},   // image-block lanes
        {{3, 5, 37, 45}, {17, 5, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},   // direct 3x3: row tiles
        {{1, 16, 70, 67}, {7, 16, 3, 3}, {1, 1, 0, 0, 1, 1, 1}},  // direct 3x3: batch 1, no padding, dW over
                                                                  // output channels in rows wider than a chunk
        {{13, 3, 9, 20}, {32, 3, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},   // direct 3x3: images per tile
        {{11, 6, 7, 8}, {5, 6, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},     // direct 3x3, dense 8-wide layout
        {{5, 24, 16, 16}, {40, 24, 3, 3}, {1, 1, 1, 1, 1, 1, 1}}, // dW over output channels, lane partials
        {{9, 16, 8, 8}, {20, 16, 3, 3}, {1, 1, 1, 1, 1, 1, 1}},   // the same on 8-wide rows
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t os[4];
        assert_int_equal(hs_conv2d_out_shape(os, cases[k].xs, cases[k].wsh, cases[k].p), HS_OK);
        int64_t nx = prod4(cases[k].xs), nw = prod4(cases[k].wsh), no = prod4(os);
        float *x = randn(nx, 1, 1.0f), *w = randn(nw, 2, 0.3f), *b = randn(os[1], 3, 1.0f), *dout = randn(no, 4, 1.0f);
        float *ws = malloc((hs_conv2d_workspace_size(cases[k].xs, cases[k].wsh, cases[k].p) + 1) * sizeof(float));
        float *res[2][4];
        for (int t = 0; t < 2; t++) {
            assert_int_equal(hs_set_num_threads(t + 1), HS_OK);
            res[t][0] = malloc((size_t)no * sizeof(float));
            res[t][1] = calloc((size_t)nx, sizeof(float));
            res[t][2] = calloc((size_t)nw, sizeof(float));
            res[t][3] = calloc((size_t)os[1], sizeof(float));
            assert_int_equal(hs_conv2d_forward(res[t][0], x, w, b, cases[k].xs, cases[k].wsh, cases[k].p, ws), HS_OK);
            assert_int_equal(hs_conv2d_backward(res[t][1], res[t][2], res[t][3], dout, x, w, cases[k].xs, cases[k].wsh,
                                                cases[k].p, ws),
                             HS_OK);
        }
        assert_memory_equal(res[0][0], res[1][0], (size_t)no * sizeof(float));
        assert_memory_equal(res[0][1], res[1][1], (size_t)nx * sizeof(float));
        assert_memory_equal(res[0][2], res[1][2], (size_t)nw * sizeof(float));
        assert_memory_equal(res[0][3], res[1][3], (size_t)os[1] * sizeof(float));
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 4; i++)
                free(res[t][i]);
        free(x), free(w), free(b), free(dout), free(ws);
    }
    hs_set_num_threads(saved);
}

static void test_conv_transpose2d_results_identical_for_one_and_two_threads(void **state) {
    (void)state;
    int saved = hs_get_num_threads();
    int64_t xs[4] = {20, 4, 5, 5}, wsh[4] = {4, 3, 2, 2}, os[4];
    hs_convt2d_params p = {2, 2, 0, 0, 0, 0, 1, 1, 1};
    assert_int_equal(hs_conv_transpose2d_out_shape(os, xs, wsh, p), HS_OK);
    int64_t nx = prod4(xs), nw = prod4(wsh), no = prod4(os);
    float *x = randn(nx, 1, 1.0f), *w = randn(nw, 2, 0.3f), *b = randn(os[1], 3, 1.0f), *dout = randn(no, 4, 1.0f);
    float *ws = malloc(hs_conv_transpose2d_workspace_size(xs, wsh, p) * sizeof(float));
    float *res[2][3];
    for (int t = 0; t < 2; t++) {
        assert_int_equal(hs_set_num_threads(t + 1), HS_OK);
        res[t][0] = malloc((size_t)no * sizeof(float));
        res[t][1] = calloc((size_t)nx, sizeof(float));
        res[t][2] = calloc((size_t)nw, sizeof(float));
        assert_int_equal(hs_conv_transpose2d_forward(res[t][0], x, w, b, xs, wsh, p, ws), HS_OK);
        assert_int_equal(hs_conv_transpose2d_backward(res[t][1], res[t][2], NULL, dout, x, w, xs, wsh, p, ws), HS_OK);
    }
    assert_memory_equal(res[0][0], res[1][0], (size_t)no * sizeof(float));
    assert_memory_equal(res[0][1], res[1][1], (size_t)nx * sizeof(float));
    assert_memory_equal(res[0][2], res[1][2], (size_t)nw * sizeof(float));
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 3; i++)
            free(res[t][i]);
    free(x), free(w), free(b), free(dout), free(ws);
    hs_set_num_threads(saved);
}

// ---- argument errors ----

static void expect_msg(const char *a, const char *b) {
    const char *m = hs_last_error()->msg;
    if (a && !strstr(m, a))
        fail_msg("message '%s' lacks '%s'", m, a);
    if (b && !strstr(m, b))
        fail_msg("message '%s' lacks '%s'", m, b);
}

static void test_conv2d_rejects_bad_shapes_and_params_with_both_shapes(void **state) {
    (void)state;
    int64_t os[4];
    hs_conv2d_params p = {1, 1, 0, 0, 1, 1, 2};
    int64_t x3[4] = {1, 3, 8, 8}, w3[4] = {4, 1, 3, 3};
    assert_int_equal(hs_conv2d_out_shape(os, x3, w3, p), HS_ERR_SHAPE);   // 3 channels, groups 2
    expect_msg("[1,3,8,8]", "[4,1,3,3]");
    p.groups = 1;
    int64_t x4[4] = {1, 3, 2, 2}, w4[4] = {4, 3, 3, 3};
    assert_int_equal(hs_conv2d_out_shape(os, x4, w4, p), HS_ERR_SHAPE);   // kernel larger than input
    expect_msg("[1,3,2,2]", "[4,3,3,3]");
    p.pad_h = p.pad_w = 1;
    assert_int_equal(hs_conv2d_out_shape(os, x4, w4, p), HS_OK);          // fits once padded
    assert_int_equal(os[2], 2);
    int64_t x0[4] = {0, 3, 8, 8};
    assert_int_equal(hs_conv2d_out_shape(os, x0, w4, p), HS_ERR_SHAPE);   // zero batch
    expect_msg("[0,3,8,8]", "[4,3,3,3]");
    int64_t w5[4] = {4, 2, 3, 3}, x5[4] = {1, 3, 8, 8};
    assert_int_equal(hs_conv2d_out_shape(os, x5, w5, p), HS_ERR_SHAPE);   // weight channels mismatch
    expect_msg("[1,3,8,8]", "[4,2,3,3]");
    p.stride_h = 0;
    assert_int_equal(hs_conv2d_out_shape(os, x5, w4, p), HS_ERR_ARG);
    p.stride_h = 1;
    assert_int_equal(hs_conv2d_workspace_size(x3, w4, (hs_conv2d_params){1, 1, 0, 0, 1, 1, 5}), 0);
    // forward without the workspace it needs
    float buf[1] = {0};
    assert_int_equal(hs_conv2d_forward(buf, buf, buf, NULL, x5, w4, p, NULL), HS_ERR_ARG);
    assert_int_equal(hs_conv2d_forward(NULL, buf, buf, NULL, x5, w4, p, buf), HS_ERR_ARG);
    assert_int_equal(hs_conv2d_backward(NULL, buf, NULL, buf, buf, buf, x3, w3, (hs_conv2d_params){1, 1, 0, 0, 1, 1, 2},
                                        buf),
                     HS_ERR_SHAPE);
}

static void test_conv_transpose2d_rejects_bad_shapes_and_params(void **state) {
    (void)state;
    int64_t os[4];
    int64_t x[4] = {1, 3, 4, 4}, w[4] = {3, 2, 3, 3};
    hs_convt2d_params p = {2, 2, 1, 1, 2, 2, 1, 1, 1};   // output padding 2 >= stride 2
    assert_int_equal(hs_conv_transpose2d_out_shape(os, x, w, p), HS_ERR_ARG);
    p.outpad_h = p.outpad_w = 1;
    assert_int_equal(hs_conv_transpose2d_out_shape(os, x, w, p), HS_OK);
    assert_int_equal(os[1], 2);
    assert_int_equal(os[2], 8);   // (4-1)*2 - 2 + 2 + 1 + 1
    int64_t wbad[4] = {4, 2, 3, 3};
    assert_int_equal(hs_conv_transpose2d_out_shape(os, x, wbad, p), HS_ERR_SHAPE);
    expect_msg("[1,3,4,4]", "[4,2,3,3]");
    p.groups = 2;
    assert_int_equal(hs_conv_transpose2d_out_shape(os, x, w, p), HS_ERR_SHAPE);
    expect_msg("[1,3,4,4]", "[3,2,3,3]");
    hs_convt2d_params q = {1, 1, 3, 3, 0, 0, 1, 1, 1};   // padding eats the whole output
    int64_t x1[4] = {1, 3, 2, 2};
    assert_int_equal(hs_conv_transpose2d_out_shape(os, x1, w, q), HS_ERR_SHAPE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_matches_reference_loops_on_many_shapes),
        cmocka_unit_test(test_conv2d_direct3x3_matches_reference_on_odd_shapes),
        cmocka_unit_test(test_conv2d_direct3x3_agrees_with_im2col_path),
        cmocka_unit_test(test_conv_transpose2d_matches_reference_loops_on_many_shapes),
        cmocka_unit_test(test_conv2d_matches_pytorch_reference_cases),
        cmocka_unit_test(test_conv_transpose2d_matches_pytorch_reference_cases),
        cmocka_unit_test(test_conv2d_backward_matches_finite_differences),
        cmocka_unit_test(test_conv_transpose2d_backward_matches_finite_differences),
        cmocka_unit_test(test_conv2d_results_identical_for_one_and_two_threads),
        cmocka_unit_test(test_conv_transpose2d_results_identical_for_one_and_two_threads),
        cmocka_unit_test(test_conv2d_rejects_bad_shapes_and_params_with_both_shapes),
        cmocka_unit_test(test_conv_transpose2d_rejects_bad_shapes_and_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
