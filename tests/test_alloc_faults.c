// tests/test_alloc_faults.c: allocation-failure injection across the core (the SQLite/Lua ltests
// technique): each operation — tensor constructors and views, safetensors read/write, PNG/JPEG
// encode/decode/read, the batch loader, a small CNN graph (build, compile, one training step),
// the HTTP server start, the image-processing path of IHC quantification — is run with its Nth
// hs_alloc failing, for N = 1, 2, ... until it runs without reaching the injected failure. At
// every N the call must return an error that says it ran out of memory ("out of memory",
// "cannot allocate ..."), must not crash, and must leave no hs_alloc block behind
// (hs_alloc_live; under the ASan build LeakSanitizer checks the rest). Not a test of the
// out-of-memory paths of libpng/libjpeg/OpenBLAS/libgit2: they use their own allocators.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "alloc.h"
#include "graph.h"
#include "hs_test.h"
#include "httpd.h"
#include "ihc.h"
#include "jpeg_io.h"
#include "loader.h"
#include "png_io.h"
#include "geometry.h"
#include "safetensors.h"
#include "segment.h"
#include "stain.h"
#include "status.h"
#include "sys.h"
#include "tensor.h"

typedef hs_status (*fault_op)(void *ctx);

// Run op with its nth allocation failing for n = 1, 2, ... until a run never reaches the
// injected failure; that run must succeed. Every run must free all it allocated, and every run
// that reached the failure must report an error that says it ran out of memory.
static void run_with_faults(const char *what, fault_op op, void *ctx) {
    // one plain run first: the operation works at all, and anything created once per process
    // (thread pools, lazily built tables) exists before blocks are counted
    hs_status s0 = op(ctx);
    if (s0 != HS_OK)
        fail_msg("%s: fails without fault injection: %s", what, hs_last_error()->msg);
    for (uint64_t n = 1; n < 100000; n++) {
        int64_t live = hs_alloc_live();
        uint64_t injected = hs_alloc_injected();
        hs_alloc_fail_after(n);
        hs_status s = op(ctx);
        hs_alloc_fail_after(0);
        int hit = hs_alloc_injected() != injected;
        int64_t leaked = hs_alloc_live() - live;
        if (leaked != 0)
            fail_msg("%s: %lld block(s) leaked when allocation %llu failed (status %d: %s)", what,
                     (long long)leaked, (unsigned long long)n, (int)s, s ? hs_last_error()->msg : "ok");
        if (!hit) {
            if (s != HS_OK)
                fail_msg("%s: failed with no injected failure (n = %llu): %s", what, (unsigned long long)n,
                         hs_last_error()->msg);
            print_message("  %s: clean error at each of the first %llu allocations\n", what,
                          (unsigned long long)(n - 1));
            return;
        }
        if (s == HS_OK)
            fail_msg("%s: allocation %llu failed but the call reported success", what, (unsigned long long)n);
        const char *msg = hs_last_error()->msg;
        if (!strstr(msg, "memory") && !strstr(msg, "allocate"))
            fail_msg("%s: allocation %llu failed; the message does not say so: '%s'", what, (unsigned long long)n, msg);
    }
    fail_msg("%s: never succeeded", what);
}

static char tmp_root[64];

static const char *tmp_path(char *buf, size_t n, const char *name) {
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/hs_alloc_faults_XXXXXX");
        assert_non_null(mkdtemp(tmp_root));
    }
    snprintf(buf, n, "%s/%s", tmp_root, name);
    return buf;
}

// an (h,w,c) u8 test image with a gradient, so encoders have something to compress
static hs_tensor *test_image(int64_t h, int64_t w, int64_t c) {
    int64_t shape[3] = {h, w, c};
    hs_tensor *t = NULL;
    assert_int_equal(hs_tensor_new(&t, HS_DTYPE_U8, 3, shape), HS_OK);
    uint8_t *p = t->data;
    for (int64_t i = 0; i < h * w * c; i++)
        p[i] = (uint8_t)((i * 7 + i / (w * c) * 13) & 0xff);
    return t;
}

// ---- tensors ----

static hs_status op_tensor_constructors_and_views(void *ctx) {
    (void)ctx;
    int64_t shape[3] = {4, 5, 6}, flat[2] = {20, 6};
    hs_tensor *a = NULL, *b = NULL, *c = NULL, *v1 = NULL, *v2 = NULL, *v3 = NULL, *v4 = NULL, *r = NULL, *ar = NULL,
              *cc = NULL;
    hs_status s = hs_tensor_new(&a, HS_DTYPE_F32, 3, shape);
    if (s == HS_OK) s = hs_tensor_new_uninit(&b, HS_DTYPE_U8, 3, shape);
    if (s == HS_OK) s = hs_tensor_clone(&c, a);
    if (s == HS_OK) s = hs_tensor_narrow(&v1, a, 1, 1, 3);
    if (s == HS_OK) s = hs_tensor_select(&v2, a, 0, 2);
    if (s == HS_OK) s = hs_tensor_transpose(&v3, a, 0, 2);
    if (s == HS_OK) s = hs_tensor_reshape(&r, a, 2, flat);
    if (s == HS_OK) s = hs_tensor_clone(&cc, v3);  // a strided source: gathered into a new block
    if (s == HS_OK) {
        int perm[3] = {2, 0, 1};
        s = hs_tensor_permute(&v4, a, perm);
    }
    if (s == HS_OK) s = hs_tensor_arange(&ar, HS_DTYPE_I64, 0, 100, 1);
    hs_tensor *all[] = {a, b, c, v1, v2, v3, v4, r, ar, cc};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        hs_tensor_free(all[i]);
    return s;
}

static void test_tensor_constructors_and_views_fail_cleanly_at_every_allocation(void **state) {
    (void)state;
    run_with_faults("tensor constructors and views", op_tensor_constructors_and_views, NULL);
}

// ---- safetensors ----

typedef struct {
    char path[256];
    hs_tensor *w, *b;
} st_ctx;

static hs_status op_safetensors_write(void *vctx) {
    st_ctx *c = vctx;
    const char *names[2] = {"conv.weight", "conv.bias"};
    const hs_tensor *ts[2] = {c->w, c->b};
    const char *keys[2] = {"format", "note"}, *vals[2] = {"histops-model-1", "fault test"};
    return hs_safetensors_write(c->path, 2, names, ts, 2, keys, vals);
}

static hs_status op_safetensors_read(void *vctx) {
    st_ctx *c = vctx;
    hs_safetensors *st = NULL;
    hs_status s = hs_safetensors_read(&st, c->path);
    if (s == HS_OK && (hs_safetensors_count(st) != 2 || !hs_safetensors_meta_get(st, "note")))
        s = HS_FAIL(HS_ERR_FORMAT, "read back the wrong contents");  // not a memory error: fails the test
    hs_safetensors_free(st);
    return s;
}

static void test_safetensors_write_and_read_fail_cleanly_at_every_allocation(void **state) {
    (void)state;
    st_ctx c;
    tmp_path(c.path, sizeof c.path, "model.safetensors");
    int64_t ws[4] = {4, 3, 3, 3}, bs[1] = {4};
    assert_int_equal(hs_tensor_new(&c.w, HS_DTYPE_F32, 4, ws), HS_OK);
    assert_int_equal(hs_tensor_new(&c.b, HS_DTYPE_F32, 1, bs), HS_OK);
    hs_tensor *tw = NULL;  // a transposed (non-contiguous) weight is written through a copy
    assert_int_equal(hs_tensor_transpose(&tw, c.w, 0, 1), HS_OK);
    run_with_faults("safetensors write", op_safetensors_write, &c);
    run_with_faults("safetensors read", op_safetensors_read, &c);
    hs_tensor *orig = c.w;
    c.w = tw;
    run_with_faults("safetensors write of a strided view", op_safetensors_write, &c);
    c.w = orig;
    // a failed write leaves the previous file intact and no temporary file behind
    char **names;
    int n;
    assert_int_equal(hs_sys_listdir(&names, &n, tmp_root), HS_OK);
    for (int i = 0; i < n; i++)
        assert_null(strstr(names[i], ".tmp."));
    hs_free(names);
    hs_tensor_free(tw);
    hs_tensor_free(c.w);
    hs_tensor_free(c.b);
}

// ---- images ----

// One image format's entry points, its encoded test image and that image as a file. The decode
// and read functions differ on purpose: PNG through hs_png_decode and the hs_image_read dispatcher,
// JPEG through the hs_image_decode dispatcher and hs_jpeg_read, so all four paths are covered.
typedef struct {
    const char *name;
    const hs_tensor *img;
    hs_status (*encode)(void **buf, size_t *n, const hs_tensor *img, int param);
    int param;  // PNG compression level or JPEG quality
    hs_status (*decode)(hs_tensor **out, const void *buf, size_t n, const char *label);
    hs_status (*read)(hs_tensor **out, const char *path);
    void *buf;
    size_t n;
    char path[256];
} img_ctx;

static hs_status op_image_encode(void *vctx) {
    img_ctx *c = vctx;
    void *buf = NULL;
    size_t n = 0;
    hs_status s = c->encode(&buf, &n, c->img, c->param);
    hs_free(buf);
    return s;
}

static hs_status op_image_decode(void *vctx) {
    img_ctx *c = vctx;
    hs_tensor *t = NULL;
    hs_status s = c->decode(&t, c->buf, c->n, c->path);
    hs_tensor_free(t);
    return s;
}

static hs_status op_image_read(void *vctx) {
    img_ctx *c = vctx;
    hs_tensor *t = NULL;
    hs_status s = c->read(&t, c->path);
    hs_tensor_free(t);
    return s;
}

static void test_png_and_jpeg_encode_decode_read_fail_cleanly_at_every_allocation(void **state) {
    (void)state;
    hs_tensor *img = test_image(24, 32, 3);
    img_ctx fmts[2] = {
        {.name = "png", .img = img, .encode = hs_png_encode, .param = 1, .decode = hs_png_decode,
         .read = hs_image_read},
        {.name = "jpeg", .img = img, .encode = hs_jpeg_encode, .param = 90, .decode = hs_image_decode,
         .read = hs_jpeg_read},
    };
    for (int i = 0; i < 2; i++) {
        img_ctx *c = &fmts[i];
        char what[64];
        assert_int_equal(c->encode(&c->buf, &c->n, img, c->param), HS_OK);
        tmp_path(c->path, sizeof c->path, i == 0 ? "img.png" : "img.jpg");
        assert_int_equal(hs_sys_write_file_atomic(c->path, c->buf, c->n), HS_OK);
        snprintf(what, sizeof what, "%s encode", c->name);
        run_with_faults(what, op_image_encode, c);
        snprintf(what, sizeof what, "%s decode", c->name);
        run_with_faults(what, op_image_decode, c);
        snprintf(what, sizeof what, "%s read", c->name);
        run_with_faults(what, op_image_read, c);
        hs_free(c->buf);
    }
    hs_tensor_free(img);
}

// ---- the batch loader ----

#define LOADER_N 6

typedef struct {
    char paths[LOADER_N][256];
    const char *ptrs[LOADER_N];
} loader_ctx;

// fill the cache from files, open a shuffling, augmenting loader, take the first batch
static hs_status op_loader_open_and_first_batch(void *vctx) {
    loader_ctx *c = vctx;
    int64_t cs[4] = {LOADER_N, 16, 16, 3}, ls[1] = {LOADER_N}, xs[4] = {2, 3, 12, 12}, ys[1] = {2};
    hs_tensor *cache = NULL, *labels = NULL, *x = NULL, *y = NULL;
    hs_loader *l = NULL;
    int failed[LOADER_N];
    char errors[LOADER_N][256];
    int64_t nfailed = 0, count = 0, idx[2];
    hs_status s = hs_tensor_new(&cache, HS_DTYPE_U8, 4, cs);
    if (s == HS_OK) s = hs_tensor_new(&labels, HS_DTYPE_I64, 1, ls);
    if (s == HS_OK) s = hs_tensor_new(&x, HS_DTYPE_F32, 4, xs);
    if (s == HS_OK) s = hs_tensor_new(&y, HS_DTYPE_I64, 1, ys);
    if (s == HS_OK) s = hs_loader_fill_cache(cache, c->ptrs, LOADER_N, failed, &errors[0][0], 256, &nfailed);
    if (s == HS_OK && nfailed > 0) {  // a file that could not be decoded: its message is the error
        for (int i = 0; i < LOADER_N; i++)
            if (failed[i]) {
                s = HS_FAIL(HS_ERR_IO, "%s", errors[i]);
                break;
            }
    }
    hs_batch_spec spec;
    hs_batch_spec_init(&spec, 12, 12);
    spec.hflip = spec.vflip = spec.rot90 = 1;
    spec.brightness = 0.1f;
    spec.hed_sigma = 0.05f;
    spec.seed = 3;
    if (s == HS_OK) s = hs_loader_new(&l, cache, labels, NULL, &spec, 2, 1, 1, 1);
    if (s == HS_OK) s = hs_loader_start_epoch(l, 1);
    if (s == HS_OK) s = hs_loader_next(l, x, y, idx, &count);
    if (s == HS_OK && count != 2)
        s = HS_FAIL(HS_ERR_STATE, "first batch has %lld items", (long long)count);
    hs_loader_free(l);
    hs_tensor_free(cache);
    hs_tensor_free(labels);
    hs_tensor_free(x);
    hs_tensor_free(y);
    return s;
}

static void test_loader_open_and_first_batch_fail_cleanly_at_every_allocation(void **state) {
    (void)state;
    loader_ctx c;
    for (int i = 0; i < LOADER_N; i++) {
        hs_tensor *img = test_image(20 + i, 18, 3);
        char name[32];
        snprintf(name, sizeof name, "tile%d.%s", i, i % 2 ? "jpg" : "png");
        tmp_path(c.paths[i], sizeof c.paths[i], name);
        assert_int_equal(hs_image_write(c.paths[i], img, 90), HS_OK);
        c.ptrs[i] = c.paths[i];
        hs_tensor_free(img);
    }
    run_with_faults("loader fill_cache + new + first batch", op_loader_open_and_first_batch, &c);
}

// ---- a small CNN graph: conv-BN-ReLU-maxpool, conv-ReLU, global pool, linear, cross-entropy ----

typedef struct {
    hs_tensor *t[9];   // conv1 w,b; bn gamma,beta,rmean,rvar; conv2 w; fc w,b
    hs_tensor *g[9];   // gradients (NULL for BN running stats)
    hs_tensor *x, *y;
} cnn_ctx;

static hs_status op_graph_build_compile_step(void *vctx) {
    cnn_ctx *c = vctx;
    hs_graph *g = NULL;
    int32_t x, y, id[9], h, loss, logits;
    int64_t xs[4] = {2, 3, 8, 8}, ys[1] = {2};
    hs_status s = hs_graph_new(&g);
    if (s == HS_OK) s = hs_graph_input(g, &x, HS_DTYPE_F32, 4, xs);
    if (s == HS_OK) s = hs_graph_input(g, &y, HS_DTYPE_I64, 1, ys);
    for (int i = 0; i < 9 && s == HS_OK; i++)
        s = (i == 4 || i == 5) ? hs_graph_buffer(g, &id[i], c->t[i]) : hs_graph_param(g, &id[i], c->t[i], c->g[i]);
    hs_op_attrs a;
    if (s == HS_OK) {
        hs_op_attrs_init(&a);
        a.padding[0] = a.padding[1] = 1;
        int32_t in[3] = {x, id[0], id[1]};
        s = hs_graph_op(g, &h, HS_OP_CONV2D, in, 3, &a);
    }
    if (s == HS_OK) {
        int32_t in[5] = {h, id[2], id[3], id[4], id[5]};
        s = hs_graph_op(g, &h, HS_OP_BATCHNORM2D, in, 5, NULL);
    }
    if (s == HS_OK) s = hs_graph_op(g, &h, HS_OP_RELU, &h, 1, NULL);
    if (s == HS_OK) {
        hs_op_attrs_init(&a);
        a.kernel_size[0] = a.kernel_size[1] = 2;
        s = hs_graph_op(g, &h, HS_OP_MAXPOOL2D, &h, 1, &a);
    }
    if (s == HS_OK) {
        hs_op_attrs_init(&a);
        a.padding[0] = a.padding[1] = 1;
        int32_t in[2] = {h, id[6]};
        s = hs_graph_op(g, &h, HS_OP_CONV2D, in, 2, &a);
    }
    if (s == HS_OK) s = hs_graph_op(g, &h, HS_OP_RELU, &h, 1, NULL);
    if (s == HS_OK) s = hs_graph_op(g, &h, HS_OP_GLOBAL_AVGPOOL, &h, 1, NULL);
    if (s == HS_OK) {
        int32_t in[3] = {h, id[7], id[8]};
        s = hs_graph_op(g, &logits, HS_OP_LINEAR, in, 3, NULL);
    }
    if (s == HS_OK) {
        int32_t in[2] = {logits, y};
        s = hs_graph_op(g, &loss, HS_OP_CROSS_ENTROPY, in, 2, NULL);
    }
    if (s == HS_OK) s = hs_graph_compile(g, loss, &logits, 1, 1);
    if (s == HS_OK) s = hs_graph_set_input(g, x, c->x);
    if (s == HS_OK) s = hs_graph_set_input(g, y, c->y);
    if (s == HS_OK) s = hs_graph_forward(g);
    if (s == HS_OK) s = hs_graph_backward(g, NULL);
    hs_graph_free(g);
    return s;
}

static void test_graph_cnn_build_compile_and_step_fail_cleanly_at_every_allocation(void **state) {
    (void)state;
    cnn_ctx c;
    int64_t shapes[9][4] = {{4, 3, 3, 3}, {4}, {4}, {4}, {4}, {4}, {6, 4, 3, 3}, {2, 6}, {2}};
    int nd[9] = {4, 1, 1, 1, 1, 1, 4, 2, 1};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(hs_tensor_new(&c.t[i], HS_DTYPE_F32, nd[i], shapes[i]), HS_OK);
        assert_int_equal(hs_tensor_rand_normal(c.t[i], 10 + (uint64_t)i, 0, 0.3), HS_OK);
        c.g[i] = NULL;
        if (i != 4 && i != 5)
            assert_int_equal(hs_tensor_new(&c.g[i], HS_DTYPE_F32, nd[i], shapes[i]), HS_OK);
    }
    assert_int_equal(hs_tensor_fill(c.t[5], 1.0), HS_OK);  // running variance
    int64_t xs[4] = {2, 3, 8, 8}, ys[1] = {2};
    assert_int_equal(hs_tensor_new(&c.x, HS_DTYPE_F32, 4, xs), HS_OK);
    assert_int_equal(hs_tensor_rand_normal(c.x, 5, 0, 1), HS_OK);
    assert_int_equal(hs_tensor_new(&c.y, HS_DTYPE_I64, 1, ys), HS_OK);
    ((int64_t *)c.y->data)[1] = 1;
    run_with_faults("graph build + compile + one step", op_graph_build_compile_step, &c);
    for (int i = 0; i < 9; i++) {
        hs_tensor_free(c.t[i]);
        hs_tensor_free(c.g[i]);
    }
    hs_tensor_free(c.x);
    hs_tensor_free(c.y);
}

// ---- the HTTP server ----

static hs_status op_httpd_start_stop(void *ctx) {
    (void)ctx;
    hs_httpd_opts o;
    hs_httpd_default_opts(&o);
    o.port = 0;
    o.max_connections = 4;
    hs_httpd *s = NULL;
    hs_status st = hs_httpd_start(&s, &o);
    if (st == HS_OK) st = hs_httpd_set_model(s, "m", "1", "{\"models\":[]}");
    hs_httpd_stop(s);
    return st;
}

static hs_status op_httpd_decode_body(void *vctx) {
    img_ctx *c = vctx;
    hs_tensor *imgs[2] = {NULL, NULL};
    int n = 0;
    hs_status s = hs_httpd_decode_body(imgs, NULL, &n, 2, "image/png", c->buf, c->n);
    for (int i = 0; i < n; i++)
        hs_tensor_free(imgs[i]);
    return s;
}

static void test_httpd_start_and_body_decoding_fail_cleanly_at_every_allocation(void **state) {
    (void)state;
    if (!hs_httpd_available())
        skip();
    run_with_faults("httpd start + set_model + stop", op_httpd_start_stop, NULL);
    hs_tensor *img = test_image(10, 12, 3);
    img_ctx c = {.img = img};
    assert_int_equal(hs_png_encode(&c.buf, &c.n, img, 1), HS_OK);
    run_with_faults("httpd request body decoding", op_httpd_decode_body, &c);
    hs_free(c.buf);
    hs_tensor_free(img);
}

// ---- image processing on the IHC path: resize, colour deconvolution, Otsu, nuclei splitting ----

static hs_status op_image_pipeline(void *vctx) {
    const hs_tensor *img = vctx;  // (32,40,3) u8
    int64_t small[3] = {16, 20, 3}, hed[3] = {32, 40, 3}, plane[2] = {32, 40};
    hs_tensor *rs = NULL, *od = NULL, *gray = NULL, *mask = NULL, *labels = NULL, *strided = NULL;
    int64_t count = 0;
    double t = 0;
    hs_status s = hs_tensor_new(&rs, HS_DTYPE_U8, 3, small);
    if (s == HS_OK) s = hs_geometry_resize(rs, img, HS_INTERP_AREA);
    if (s == HS_OK) s = hs_geometry_resize(rs, img, HS_INTERP_BILINEAR);
    if (s == HS_OK) s = hs_tensor_transpose(&strided, img, 0, 1);  // a strided source is copied first
    if (s == HS_OK) {
        hs_tensor *rt = NULL;
        int64_t ts[3] = {20, 16, 3};
        s = hs_tensor_new(&rt, HS_DTYPE_U8, 3, ts);
        if (s == HS_OK) s = hs_geometry_resize(rt, strided, HS_INTERP_AREA);
        hs_tensor_free(rt);
    }
    if (s == HS_OK) s = hs_tensor_new(&od, HS_DTYPE_F32, 3, hed);
    if (s == HS_OK) s = hs_stain_rgb2hed(od, img);
    if (s == HS_OK) s = hs_tensor_new(&gray, HS_DTYPE_U8, 2, plane);
    if (s == HS_OK) {  // the first channel as a gray plane
        const uint8_t *p = img->data;
        uint8_t *g = gray->data;
        for (int64_t i = 0; i < 32 * 40; i++)
            g[i] = p[3 * i];
    }
    if (s == HS_OK) s = hs_tensor_new(&mask, HS_DTYPE_U8, 2, plane);
    if (s == HS_OK) s = hs_segment_otsu(mask, &t, gray, 0);
    if (s == HS_OK) s = hs_tensor_new(&labels, HS_DTYPE_I32, 2, plane);
    if (s == HS_OK) s = hs_segment_label(labels, &count, mask, 8);
    if (s == HS_OK) s = hs_segment_split_nuclei(labels, &count, mask, 2);
    // IHC quantification: channels, nuclei, measurements of the cell compartment
    hs_tensor *nuc = NULL, *dab = NULL;
    hs_ihc_params ip;
    hs_ihc_defaults(&ip);
    if (s == HS_OK) s = hs_tensor_new(&nuc, HS_DTYPE_F32, 2, plane);
    if (s == HS_OK) s = hs_tensor_new(&dab, HS_DTYPE_F32, 2, plane);
    if (s == HS_OK) s = hs_ihc_channels(nuc, dab, img, HS_IHC_NUCLEAR_HDAB);
    if (s == HS_OK) s = hs_ihc_segment(labels, &count, NULL, nuc, &ip);
    if (s == HS_OK && count > 0) {
        hs_ihc_nucleus *nuclei = hs_alloc((size_t)count * sizeof *nuclei);
        if (!nuclei)
            s = HS_FAIL(HS_ERR_NOMEM, "test: out of memory");
        else
            s = hs_ihc_measure(nuclei, count, labels, nuc, dab, &ip);
        hs_free(nuclei);
    }
    hs_tensor_free(nuc);
    hs_tensor_free(dab);
    hs_tensor *all[] = {rs, od, gray, mask, labels, strided};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        hs_tensor_free(all[i]);
    return s;
}

static void test_image_processing_fails_cleanly_at_every_allocation(void **state) {
    (void)state;
    hs_tensor *img = test_image(32, 40, 3);
    run_with_faults("resize + rgb2hed + otsu + label + split_nuclei + ihc", op_image_pipeline, img);
    hs_tensor_free(img);
}

// ---- files ----

static hs_status op_sys_read_and_list(void *vctx) {
    const char *path = vctx;
    char *buf = NULL, **names = NULL;
    size_t n = 0;
    int count = 0;
    hs_status s = hs_sys_read_file(&buf, &n, path);
    if (s == HS_OK) s = hs_sys_listdir(&names, &count, tmp_root);
    hs_free(buf);
    hs_free(names);
    return s;
}

static void test_sys_read_file_and_listdir_fail_cleanly_at_every_allocation(void **state) {
    (void)state;
    char path[256];
    tmp_path(path, sizeof path, "text.txt");
    assert_int_equal(hs_sys_write_file_atomic(path, "hello\n", 6), HS_OK);
    run_with_faults("read_file + listdir", op_sys_read_and_list, path);
}

// The counters the driver relies on can fail: an operation that forgets one block when its
// second allocation fails shows up as one live block and one injected failure.
static void *forgotten;

static hs_status op_leaky(void *ctx) {
    (void)ctx;
    void *a = hs_alloc(16);
    if (!a)
        return HS_FAIL(HS_ERR_NOMEM, "leaky: out of memory");
    void *b = hs_alloc(16);
    if (!b) {
        forgotten = a;  // the bug under test: a is not freed (kept here so the test can free it)
        return HS_FAIL(HS_ERR_NOMEM, "leaky: out of memory");
    }
    hs_free(b);
    hs_free(a);
    return HS_OK;
}

static void test_fault_counters_detect_a_leak_on_the_error_path(void **state) {
    (void)state;
    int64_t live = hs_alloc_live();
    uint64_t injected = hs_alloc_injected();
    hs_alloc_fail_after(2);
    hs_status s = op_leaky(NULL);
    hs_alloc_fail_after(0);
    assert_int_equal(s, HS_ERR_NOMEM);
    assert_int_equal(hs_alloc_injected(), injected + 1);
    assert_int_equal(hs_alloc_live(), live + 1);  // what run_with_faults reports as a leak
    hs_free(forgotten);
    assert_int_equal(hs_alloc_live(), live);
    // no injection reached: the count is unchanged and the operation succeeds
    hs_alloc_fail_after(3);
    assert_int_equal(op_leaky(NULL), HS_OK);
    hs_alloc_fail_after(0);
    assert_int_equal(hs_alloc_injected(), injected + 1);
}

static int teardown_all(void **state) {
    (void)state;
    if (tmp_root[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
        if (system(cmd) != 0)
            return -1;
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_constructors_and_views_fail_cleanly_at_every_allocation),
        cmocka_unit_test(test_safetensors_write_and_read_fail_cleanly_at_every_allocation),
        cmocka_unit_test(test_png_and_jpeg_encode_decode_read_fail_cleanly_at_every_allocation),
        cmocka_unit_test(test_loader_open_and_first_batch_fail_cleanly_at_every_allocation),
        cmocka_unit_test(test_graph_cnn_build_compile_and_step_fail_cleanly_at_every_allocation),
        cmocka_unit_test(test_httpd_start_and_body_decoding_fail_cleanly_at_every_allocation),
        cmocka_unit_test(test_image_processing_fails_cleanly_at_every_allocation),
        cmocka_unit_test(test_sys_read_file_and_listdir_fail_cleanly_at_every_allocation),
        cmocka_unit_test(test_fault_counters_detect_a_leak_on_the_error_path),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_all);
}
