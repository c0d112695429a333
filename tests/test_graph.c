// tests/test_graph.c: the computation graph: every op's backward against finite differences
// through the graph, an MLP end to end, broadcasting backward, arena reuse, no allocation after
// the first step, bit-identical results for 1 and 2 threads, shape errors and misuse.
// Layer values against PyTorch are checked by lua/hs/ref/torch_layers.lua (check-ref), not here.
#include "hs_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "blas.h"
#include "graph.h"
#include "parallel.h"
#include "rng.h"
#include "tensor.h"

// ---- a generic one-op harness: leaves, one op, loss = sum(out * R) ----

enum { LX = 1, LW, LT, LF, LB, LV, LM };   // leaf roles, see leaf_spec

typedef struct {
    int role;         // LX input with grad, LW param with grad, LT I64 target (< tmax), LF F32 input without
                      // grad, LB buffer, LV positive buffer (variance), LM F32 input in {0,1}
    int ndim;
    int64_t shape[4];
} leaf_spec;

typedef struct {
    const char *name;
    hs_opkind op;
    int nleaf;
    leaf_spec leaf[5];
    int training;
    int64_t tmax;
    void (*attrs)(hs_op_attrs *a);
} op_case;

typedef struct {
    const op_case *c;
    hs_graph *g;
    int32_t id[5], out;
    hs_tensor *host[5], *grad[5], *R;
} harness;

static float rnd_away_from_zero(float v) { return fabsf(v) < 0.05f ? v + copysignf(0.1f, v) : v; }

static void harness_init(harness *h, const op_case *c, uint64_t seed) {
    memset(h, 0, sizeof *h);
    h->c = c;
    assert_int_equal(hs_graph_new(&h->g), HS_OK);
    for (int i = 0; i < c->nleaf; i++) {
        const leaf_spec *l = &c->leaf[i];
        hs_dtype dt = l->role == LT ? HS_DTYPE_I64 : HS_DTYPE_F32;
        assert_int_equal(hs_tensor_new(&h->host[i], dt, l->ndim, l->shape), HS_OK);
        hs_tensor *t = h->host[i];
        int64_t n = hs_tensor_numel(t);
        if (l->role == LT) {
            for (int64_t k = 0; k < n; k++)
                ((int64_t *)t->data)[k] = (int64_t)(hs_rng_u64(seed, (uint64_t)i, (uint64_t)k) % (uint64_t)c->tmax);
        } else if (l->role == LV) {
            assert_int_equal(hs_tensor_rand_uniform(t, seed + (uint64_t)i, 0.5, 1.5), HS_OK);
        } else if (l->role == LM) {
            assert_int_equal(hs_tensor_rand_uniform(t, seed + (uint64_t)i, 0, 1), HS_OK);
            for (int64_t k = 0; k < n; k++)
                ((float *)t->data)[k] = ((float *)t->data)[k] > 0.6f ? 1.0f : 0.0f;
        } else {
            assert_int_equal(hs_tensor_rand_normal(t, seed + (uint64_t)i, 0, 1), HS_OK);
            for (int64_t k = 0; k < n; k++)
                ((float *)t->data)[k] = rnd_away_from_zero(((float *)t->data)[k]);
        }
        switch (l->role) {
        case LX:
        case LT:
        case LF:
        case LM:
            assert_int_equal(hs_graph_input(h->g, &h->id[i], dt, l->ndim, l->shape), HS_OK);
            if (l->role == LX)
                assert_int_equal(hs_graph_require_grad(h->g, h->id[i]), HS_OK);
            break;
        case LW:
            assert_int_equal(hs_tensor_new(&h->grad[i], HS_DTYPE_F32, l->ndim, l->shape), HS_OK);
            assert_int_equal(hs_graph_param(h->g, &h->id[i], t, h->grad[i]), HS_OK);
            break;
        default:
            assert_int_equal(hs_graph_buffer(h->g, &h->id[i], t), HS_OK);
            break;
        }
    }
    hs_op_attrs a;
    hs_op_attrs_init(&a);
    if (c->attrs)
        c->attrs(&a);
    hs_status s = hs_graph_op(h->g, &h->out, c->op, h->id, c->nleaf, &a);
    if (s != HS_OK)
        print_error("%s: %s\n", c->name, hs_last_error()->msg);
    assert_int_equal(s, HS_OK);
    assert_int_equal(hs_graph_compile(h->g, h->out, &h->out, 1, c->training), HS_OK);
    hs_graph_node_info info;
    assert_int_equal(hs_graph_node(h->g, h->out, &info), HS_OK);
    assert_int_equal(hs_tensor_new(&h->R, HS_DTYPE_F32, info.ndim, info.shape), HS_OK);
    assert_int_equal(hs_tensor_rand_normal(h->R, seed + 100, 0, 1), HS_OK);
}

static void harness_free(harness *h) {
    for (int i = 0; i < 5; i++) {
        hs_tensor_free(h->host[i]);
        hs_tensor_free(h->grad[i]);
    }
    hs_tensor_free(h->R);
    hs_graph_free(h->g);
}

static void harness_set_inputs(harness *h) {
    for (int i = 0; i < h->c->nleaf; i++) {
        int r = h->c->leaf[i].role;
        if (r == LX || r == LT || r == LF || r == LM)
            assert_int_equal(hs_graph_set_input(h->g, h->id[i], h->host[i]), HS_OK);
    }
}

static double harness_loss(void *ctx) {
    harness *h = ctx;
    harness_set_inputs(h);
    assert_int_equal(hs_graph_forward(h->g), HS_OK);
    hs_tensor v;
    assert_int_equal(hs_graph_value(h->g, h->out, &v), HS_OK);
    double s = 0;
    const float *o = v.data, *r = h->R->data;
    for (int64_t k = 0; k < hs_tensor_numel(&v); k++)
        s += (double)o[k] * (double)r[k];
    return s;
}

// Backward of the graph vs central differences of sum(out * R) for every differentiable leaf.
static void check_op_case(const op_case *c) {
    harness h;
    harness_init(&h, c, 42);
    harness_set_inputs(&h);
    assert_int_equal(hs_graph_forward(h.g), HS_OK);
    assert_int_equal(hs_graph_backward(h.g, h.R), HS_OK);
    for (int i = 0; i < c->nleaf; i++) {
        int r = c->leaf[i].role;
        if (r != LX && r != LW)
            continue;
        hs_tensor gv;
        assert_int_equal(hs_graph_grad(h.g, h.id[i], &gv), HS_OK);
        int64_t n = hs_tensor_numel(&gv);
        float got[512], want[512];
        assert_true(n <= 512);
        memcpy(got, gv.data, (size_t)n * sizeof *got);
        for (int64_t k = 0; k < n; k++)
            want[k] = (float)hs_numeric_grad(harness_loss, &h, (float *)h.host[i]->data, (size_t)k, 1e-2f);
        print_message("  %-22s leaf %d: %lld values\n", c->name, i + 1, (long long)n);
        hs_expect_close(got, want, (size_t)n, 2e-3, 2e-2);
    }
    harness_free(&h);
}

static void a_leaky(hs_op_attrs *a) { a->negative_slope = 0.1f; }
static void a_dim1(hs_op_attrs *a) { a->dim = 1; a->has_dim = 1; }
static void a_dim_last_keep(hs_op_attrs *a) { a->dim = -1; a->has_dim = 1; a->keepdim = 1; }
static void a_reshape(hs_op_attrs *a) { a->shape_ndim = 2; a->shape[0] = -1; a->shape[1] = 6; }
static void a_scalar(hs_op_attrs *a) { a->value = -1.5f; }
static void a_conv(hs_op_attrs *a) { a->stride[0] = 2; a->stride[1] = 1; a->padding[0] = a->padding[1] = 1; }
static void a_convt(hs_op_attrs *a) {
    a->stride[0] = a->stride[1] = 2;
    a->padding[0] = a->padding[1] = 1;
    a->output_padding[0] = a->output_padding[1] = 1;
}
static void a_pool(hs_op_attrs *a) { a->kernel_size[0] = a->kernel_size[1] = 2; }
static void a_pool3(hs_op_attrs *a) {
    a->kernel_size[0] = a->kernel_size[1] = 3;
    a->stride[0] = a->stride[1] = 2;
    a->padding[0] = a->padding[1] = 1;
}
static void a_up(hs_op_attrs *a) { a->scale_factor[0] = 2; a->scale_factor[1] = 3; }
static void a_ce(hs_op_attrs *a) { a->label_smoothing = 0.1f; }
static void a_bce(hs_op_attrs *a) { a->pos_weight = 2.0f; }
static void a_drop(hs_op_attrs *a) { a->p = 0.3f; a->seed = 7; }

#define L1(r, a) {r, 1, {a}}
#define L2(r, a, b) {r, 2, {a, b}}
#define L3(r, a, b, c) {r, 3, {a, b, c}}
#define L4(r, a, b, c, d) {r, 4, {a, b, c, d}}

static const op_case op_cases[] = {
    {"linear", HS_OP_LINEAR, 3, {L2(LX, 3, 4), L2(LW, 5, 4), L1(LW, 5)}, 0, 0, NULL},
    {"linear_3d_nobias", HS_OP_LINEAR, 2, {L3(LX, 2, 3, 4), L2(LW, 5, 4)}, 0, 0, NULL},
    {"matmul", HS_OP_MATMUL, 2, {L2(LX, 3, 4), L2(LX, 4, 2)}, 0, 0, NULL},
    {"matmul_batched", HS_OP_MATMUL, 2, {L3(LX, 2, 3, 4), L3(LX, 2, 4, 2)}, 0, 0, NULL},
    {"matmul_shared_b", HS_OP_MATMUL, 2, {L3(LX, 2, 3, 4), L2(LW, 4, 2)}, 0, 0, NULL},
    {"add", HS_OP_ADD, 2, {L2(LX, 3, 4), L2(LX, 3, 4)}, 0, 0, NULL},
    {"sub_bcast", HS_OP_SUB, 2, {L3(LX, 2, 3, 4), L2(LW, 3, 1)}, 0, 0, NULL},
    {"mul_bcast", HS_OP_MUL, 2, {L2(LX, 1, 4), L3(LX, 2, 3, 1)}, 0, 0, NULL},
    {"div_bcast", HS_OP_DIV, 2, {L3(LX, 2, 3, 4), L1(LW, 4)}, 0, 0, NULL},
    {"add_scalar", HS_OP_ADD_SCALAR, 1, {L2(LX, 3, 4)}, 0, 0, a_scalar},
    {"mul_scalar", HS_OP_MUL_SCALAR, 1, {L2(LX, 3, 4)}, 0, 0, a_scalar},
    {"relu", HS_OP_RELU, 1, {L2(LX, 3, 4)}, 0, 0, NULL},
    {"leaky_relu", HS_OP_LEAKY_RELU, 1, {L2(LX, 3, 4)}, 0, 0, a_leaky},
    {"sigmoid", HS_OP_SIGMOID, 1, {L2(LX, 3, 4)}, 0, 0, NULL},
    {"tanh", HS_OP_TANH, 1, {L2(LX, 3, 4)}, 0, 0, NULL},
    {"gelu", HS_OP_GELU, 1, {L2(LX, 3, 4)}, 0, 0, NULL},
    {"silu", HS_OP_SILU, 1, {L2(LX, 3, 4)}, 0, 0, NULL},
    {"softmax_dim1", HS_OP_SOFTMAX, 1, {L3(LX, 2, 4, 3)}, 0, 0, a_dim1},
    {"log_softmax_dim1", HS_OP_LOG_SOFTMAX, 1, {L3(LX, 2, 4, 3)}, 0, 0, a_dim1},
    {"sum_all", HS_OP_SUM, 1, {L3(LX, 2, 4, 3)}, 0, 0, NULL},
    {"mean_last_keepdim", HS_OP_MEAN, 1, {L3(LX, 2, 4, 3)}, 0, 0, a_dim_last_keep},
    {"reshape", HS_OP_RESHAPE, 1, {L3(LX, 2, 3, 4)}, 0, 0, a_reshape},
    {"flatten", HS_OP_FLATTEN, 1, {L4(LX, 2, 3, 2, 2)}, 0, 0, NULL},
    {"concat_dim1", HS_OP_CONCAT, 3, {L3(LX, 2, 1, 3), L3(LX, 2, 2, 3), L3(LW, 2, 3, 3)}, 0, 0, a_dim1},
    {"cross_entropy_spatial", HS_OP_CROSS_ENTROPY, 3, {L4(LX, 2, 4, 2, 3), L3(LT, 2, 2, 3), L1(LB, 4)}, 0, 4, a_ce},
    {"mse", HS_OP_MSE, 2, {L2(LX, 3, 4), L2(LF, 3, 4)}, 0, 0, NULL},
    {"bce_with_logits", HS_OP_BCE_WITH_LOGITS, 2, {L2(LX, 3, 4), L2(LM, 3, 4)}, 0, 0, a_bce},
    {"dice_loss", HS_OP_DICE_LOSS, 2, {L2(LX, 3, 4), L2(LM, 3, 4)}, 0, 0, NULL},
    {"conv2d_s2x1_p1", HS_OP_CONV2D, 3, {L4(LX, 2, 3, 5, 4), L4(LW, 4, 3, 3, 3), L1(LW, 4)}, 0, 0, a_conv},
    {"conv2d_frozen_x_nobias", HS_OP_CONV2D, 2, {L4(LF, 1, 2, 4, 4), L4(LW, 3, 2, 3, 3)}, 0, 0, NULL},
    {"conv_transpose2d", HS_OP_CONV_TRANSPOSE2D, 3, {L4(LX, 2, 3, 3, 3), L4(LW, 3, 2, 3, 3), L1(LW, 2)}, 0, 0, a_convt},
    {"maxpool2d_k2", HS_OP_MAXPOOL2D, 1, {L4(LX, 2, 2, 4, 4)}, 0, 0, a_pool},
    {"avgpool2d_k3_s2_p1", HS_OP_AVGPOOL2D, 1, {L4(LX, 2, 2, 5, 5)}, 0, 0, a_pool3},
    {"global_avgpool", HS_OP_GLOBAL_AVGPOOL, 1, {L4(LX, 2, 3, 3, 2)}, 0, 0, NULL},
    {"batchnorm2d_train", HS_OP_BATCHNORM2D, 5, {L4(LX, 3, 2, 3, 2), L1(LW, 2), L1(LW, 2), L1(LB, 2), L1(LV, 2)}, 1, 0, NULL},
    {"batchnorm2d_eval", HS_OP_BATCHNORM2D, 5, {L4(LX, 3, 2, 3, 2), L1(LW, 2), L1(LW, 2), L1(LB, 2), L1(LV, 2)}, 0, 0, NULL},
    {"batchnorm1d_train", HS_OP_BATCHNORM2D, 5, {L2(LX, 4, 3), L1(LW, 3), L1(LW, 3), L1(LB, 3), L1(LV, 3)}, 1, 0, NULL},
    {"dropout_train", HS_OP_DROPOUT, 1, {L2(LX, 6, 5)}, 1, 0, a_drop},
    {"dropout_eval", HS_OP_DROPOUT, 1, {L2(LX, 6, 5)}, 0, 0, a_drop},
    {"upsample_nearest", HS_OP_UPSAMPLE_NEAREST, 1, {L4(LX, 1, 2, 2, 3)}, 0, 0, a_up},
    {"upsample_bilinear", HS_OP_UPSAMPLE_BILINEAR, 1, {L4(LX, 1, 2, 2, 3)}, 0, 0, a_up},
};

static void test_graph_every_op_backward_matches_finite_differences(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof op_cases / sizeof op_cases[0]; i++)
        check_op_case(&op_cases[i]);
}

// ---- an MLP: x -> linear -> tanh -> linear -> gelu -> linear -> cross_entropy ----

typedef struct {
    hs_graph *g;
    int32_t x, t, loss, logits;
    hs_tensor *w[6], *dw[6], *xv, *tv;
} mlp;

static void mlp_build(mlp *m, int keep_all) {
    static const int64_t shapes[6][2] = {{6, 4}, {6, 1}, {5, 6}, {5, 1}, {3, 5}, {3, 1}};
    memset(m, 0, sizeof *m);
    assert_int_equal(hs_graph_new(&m->g), HS_OK);
    int64_t xs[2] = {4, 4}, ts[1] = {4};
    assert_int_equal(hs_graph_input(m->g, &m->x, HS_DTYPE_F32, 2, xs), HS_OK);
    assert_int_equal(hs_graph_require_grad(m->g, m->x), HS_OK);
    assert_int_equal(hs_graph_input(m->g, &m->t, HS_DTYPE_I64, 1, ts), HS_OK);
    int32_t p[6];
    for (int i = 0; i < 6; i++) {
        int nd = shapes[i][1] == 1 ? 1 : 2;
        assert_int_equal(hs_tensor_new(&m->w[i], HS_DTYPE_F32, nd, shapes[i]), HS_OK);
        assert_int_equal(hs_tensor_new(&m->dw[i], HS_DTYPE_F32, nd, shapes[i]), HS_OK);
        assert_int_equal(hs_tensor_rand_normal(m->w[i], 10 + (uint64_t)i, 0, 0.5), HS_OK);
        assert_int_equal(hs_graph_param(m->g, &p[i], m->w[i], m->dw[i]), HS_OK);
    }
    int32_t h = m->x;
    hs_opkind acts[2] = {HS_OP_TANH, HS_OP_GELU};
    for (int l = 0; l < 3; l++) {
        int32_t in[3] = {h, p[2 * l], p[2 * l + 1]};
        assert_int_equal(hs_graph_op(m->g, &h, HS_OP_LINEAR, in, 3, NULL), HS_OK);
        if (l < 2)
            assert_int_equal(hs_graph_op(m->g, &h, acts[l], &h, 1, NULL), HS_OK);
    }
    m->logits = h;
    int32_t in[2] = {h, m->t};
    assert_int_equal(hs_graph_op(m->g, &m->loss, HS_OP_CROSS_ENTROPY, in, 2, NULL), HS_OK);
    assert_int_equal(hs_graph_keep_all(m->g, keep_all), HS_OK);
    assert_int_equal(hs_graph_compile(m->g, m->loss, &m->logits, 1, 1), HS_OK);
    assert_int_equal(hs_tensor_new(&m->xv, HS_DTYPE_F32, 2, xs), HS_OK);
    assert_int_equal(hs_tensor_rand_normal(m->xv, 3, 0, 1), HS_OK);
    assert_int_equal(hs_tensor_new(&m->tv, HS_DTYPE_I64, 1, ts), HS_OK);
    int64_t *tv = m->tv->data;
    tv[0] = 2, tv[1] = 0, tv[2] = 1, tv[3] = 2;
}

static void mlp_free(mlp *m) {
    for (int i = 0; i < 6; i++) {
        hs_tensor_free(m->w[i]);
        hs_tensor_free(m->dw[i]);
    }
    hs_tensor_free(m->xv);
    hs_tensor_free(m->tv);
    hs_graph_free(m->g);
}

static double mlp_loss(void *ctx) {
    mlp *m = ctx;
    assert_int_equal(hs_graph_set_input(m->g, m->x, m->xv), HS_OK);
    assert_int_equal(hs_graph_set_input(m->g, m->t, m->tv), HS_OK);
    assert_int_equal(hs_graph_forward(m->g), HS_OK);
    hs_tensor v;
    assert_int_equal(hs_graph_value(m->g, m->loss, &v), HS_OK);
    return (double)((float *)v.data)[0];
}

static void test_graph_mlp_gradients_match_finite_differences(void **state) {
    (void)state;
    mlp m;
    mlp_build(&m, 0);
    mlp_loss(&m);
    assert_int_equal(hs_graph_backward(m.g, NULL), HS_OK);
    for (int i = 0; i < 6; i++) {
        int64_t n = hs_tensor_numel(m.w[i]);
        float want[64];
        for (int64_t k = 0; k < n; k++)
            want[k] = (float)hs_numeric_grad(mlp_loss, &m, (float *)m.w[i]->data, (size_t)k, 1e-2f);
        hs_expect_close(m.dw[i]->data, want, (size_t)n, 1e-3, 1e-2);
    }
    hs_tensor dx;
    assert_int_equal(hs_graph_grad(m.g, m.x, &dx), HS_OK);
    float got[16], want[16];
    memcpy(got, dx.data, sizeof got);
    for (int k = 0; k < 16; k++)
        want[k] = (float)hs_numeric_grad(mlp_loss, &m, (float *)m.xv->data, (size_t)k, 1e-2f);
    hs_expect_close(got, want, 16, 1e-3, 1e-2);
    mlp_free(&m);
}

static void test_graph_param_grads_accumulate_across_backwards(void **state) {
    (void)state;
    mlp m;
    mlp_build(&m, 0);
    mlp_loss(&m);
    assert_int_equal(hs_graph_backward(m.g, NULL), HS_OK);
    float once[24];
    memcpy(once, m.dw[0]->data, sizeof once);
    mlp_loss(&m);
    assert_int_equal(hs_graph_backward(m.g, NULL), HS_OK);
    float twice[24];
    for (int k = 0; k < 24; k++)
        twice[k] = 2 * once[k];
    hs_expect_close(m.dw[0]->data, twice, 24, 0, 1e-6);
    mlp_free(&m);
}

// ---- broadcasting: y = (a * b + c - d) / e with every kind of broadcast, loss = sum(y) ----

static void test_graph_broadcast_backward_reduces_over_broadcast_dims(void **state) {
    (void)state;
    // a (2,3,4) input; b (3,1), c (4), d (1,1,4), e (2,1,1) params
    hs_graph *g;
    assert_int_equal(hs_graph_new(&g), HS_OK);
    int64_t as[3] = {2, 3, 4}, bs[2] = {3, 1}, cs[1] = {4}, ds[3] = {1, 1, 4}, es[3] = {2, 1, 1};
    const int64_t *shp[5] = {as, bs, cs, ds, es};
    int nds[5] = {3, 2, 1, 3, 3};
    hs_tensor *v[5], *gr[5];
    int32_t id[5];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(hs_tensor_new(&v[i], HS_DTYPE_F32, nds[i], shp[i]), HS_OK);
        assert_int_equal(hs_tensor_new(&gr[i], HS_DTYPE_F32, nds[i], shp[i]), HS_OK);
        assert_int_equal(hs_tensor_rand_uniform(v[i], 20 + (uint64_t)i, 0.5, 1.5), HS_OK);
        assert_int_equal(hs_graph_param(g, &id[i], v[i], gr[i]), HS_OK);
    }
    int32_t y, in[2];
    in[0] = id[0], in[1] = id[1];
    assert_int_equal(hs_graph_op(g, &y, HS_OP_MUL, in, 2, NULL), HS_OK);
    in[0] = y, in[1] = id[2];
    assert_int_equal(hs_graph_op(g, &y, HS_OP_ADD, in, 2, NULL), HS_OK);
    in[0] = y, in[1] = id[3];
    assert_int_equal(hs_graph_op(g, &y, HS_OP_SUB, in, 2, NULL), HS_OK);
    in[0] = y, in[1] = id[4];
    assert_int_equal(hs_graph_op(g, &y, HS_OP_DIV, in, 2, NULL), HS_OK);
    hs_graph_node_info info;
    assert_int_equal(hs_graph_node(g, y, &info), HS_OK);
    assert_int_equal(info.ndim, 3);
    assert_int_equal(info.shape[0], 2);
    assert_int_equal(info.shape[2], 4);
    int32_t loss;
    assert_int_equal(hs_graph_op(g, &loss, HS_OP_SUM, &y, 1, NULL), HS_OK);
    assert_int_equal(hs_graph_compile(g, loss, NULL, 0, 1), HS_OK);
    assert_int_equal(hs_graph_forward(g), HS_OK);
    assert_int_equal(hs_graph_backward(g, NULL), HS_OK);
    // closed forms: y = (a*b + c - d)/e
    const float *a = v[0]->data, *b = v[1]->data, *c = v[2]->data, *d = v[3]->data, *e = v[4]->data;
    float wa[24] = {0}, wb[3] = {0}, wc[4] = {0}, wd[4] = {0}, we[2] = {0};
    double sb[3] = {0}, sc[4] = {0}, sd[4] = {0}, se[2] = {0};
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) {
                int k = (n * 3 + i) * 4 + j;
                double inv = 1.0 / (double)e[n], num = (double)a[k] * (double)b[i] + (double)c[j] - (double)d[j];
                wa[k] = (float)((double)b[i] * inv);
                sb[i] += (double)a[k] * inv;
                sc[j] += inv;
                sd[j] -= inv;
                se[n] -= num * inv * inv;
            }
    for (int i = 0; i < 3; i++) wb[i] = (float)sb[i];
    for (int j = 0; j < 4; j++) wc[j] = (float)sc[j], wd[j] = (float)sd[j];
    for (int n = 0; n < 2; n++) we[n] = (float)se[n];
    hs_expect_close(gr[0]->data, wa, 24, 1e-6, 1e-5);
    hs_expect_close(gr[1]->data, wb, 3, 1e-6, 1e-5);
    hs_expect_close(gr[2]->data, wc, 4, 1e-6, 1e-5);
    hs_expect_close(gr[3]->data, wd, 4, 1e-6, 1e-5);
    hs_expect_close(gr[4]->data, we, 2, 1e-6, 1e-5);
    for (int i = 0; i < 5; i++) {
        hs_tensor_free(v[i]);
        hs_tensor_free(gr[i]);
    }
    hs_graph_free(g);
}

// ---- arena planning ----

static hs_graph *deep_chain(int depth, int keep_all, hs_tensor **w, hs_tensor **dw, int32_t *x, int32_t *loss) {
    hs_graph *g;
    assert_int_equal(hs_graph_new(&g), HS_OK);
    int64_t xs[2] = {8, 16};
    assert_int_equal(hs_graph_input(g, x, HS_DTYPE_F32, 2, xs), HS_OK);
    int32_t h = *x;
    int32_t p;
    int64_t ws[2] = {16, 16};
    assert_int_equal(hs_tensor_new(w, HS_DTYPE_F32, 2, ws), HS_OK);
    assert_int_equal(hs_tensor_new(dw, HS_DTYPE_F32, 2, ws), HS_OK);
    assert_int_equal(hs_tensor_rand_normal(*w, 5, 0, 0.3), HS_OK);
    assert_int_equal(hs_graph_param(g, &p, *w, *dw), HS_OK);
    for (int l = 0; l < depth; l++) {
        int32_t in[2] = {h, p};
        assert_int_equal(hs_graph_op(g, &h, HS_OP_LINEAR, in, 2, NULL), HS_OK);
        assert_int_equal(hs_graph_op(g, &h, HS_OP_TANH, &h, 1, NULL), HS_OK);
    }
    assert_int_equal(hs_graph_op(g, loss, HS_OP_MEAN, &h, 1, NULL), HS_OK);
    assert_int_equal(hs_graph_keep_all(g, keep_all), HS_OK);
    assert_int_equal(hs_graph_compile(g, *loss, NULL, 0, 1), HS_OK);
    return g;
}

static void test_graph_arena_reuses_memory_on_a_deep_chain(void **state) {
    (void)state;
    hs_tensor *w1, *dw1, *w2, *dw2, *xv;
    int32_t x1, l1, x2, l2;
    hs_graph *g = deep_chain(20, 0, &w1, &dw1, &x1, &l1);
    hs_graph *k = deep_chain(20, 1, &w2, &dw2, &x2, &l2);
    size_t arena = hs_graph_arena_bytes(g), naive = hs_graph_naive_bytes(g);
    print_message("  deep chain (20 x linear+tanh): arena %zu bytes, naive %zu bytes, keep_all arena %zu\n", arena,
                  naive, hs_graph_arena_bytes(k));
    assert_true(arena * 3 < naive);   // activations must live until their backward; the rest is reused
    assert_true(hs_graph_arena_bytes(k) >= naive / 2);
    // reuse changes nothing in the results
    int64_t xs[2] = {8, 16};
    assert_int_equal(hs_tensor_new(&xv, HS_DTYPE_F32, 2, xs), HS_OK);
    assert_int_equal(hs_tensor_rand_normal(xv, 9, 0, 1), HS_OK);
    assert_int_equal(hs_graph_set_input(g, x1, xv), HS_OK);
    assert_int_equal(hs_graph_set_input(k, x2, xv), HS_OK);
    assert_int_equal(hs_graph_forward(g), HS_OK);
    assert_int_equal(hs_graph_forward(k), HS_OK);
    assert_int_equal(hs_graph_backward(g, NULL), HS_OK);
    assert_int_equal(hs_graph_backward(k, NULL), HS_OK);
    hs_tensor v1, v2;
    assert_int_equal(hs_graph_value(g, l1, &v1), HS_OK);
    assert_int_equal(hs_graph_value(k, l2, &v2), HS_OK);
    assert_memory_equal(v1.data, v2.data, sizeof(float));
    assert_memory_equal(dw1->data, dw2->data, 256 * sizeof(float));
    hs_tensor_free(xv);
    hs_tensor_free(w1);
    hs_tensor_free(dw1);
    hs_tensor_free(w2);
    hs_tensor_free(dw2);
    hs_graph_free(g);
    hs_graph_free(k);
}

// ---- a small CNN used for the allocation and thread tests ----

typedef struct {
    hs_graph *g;
    int32_t x, t, loss, logits;
    hs_tensor *p[8], *dp[8], *rm, *rv, *xv, *tv;
} cnn;

static void cnn_build(cnn *m) {
    static const int64_t ps[8][4] = {{8, 3, 3, 3}, {8}, {8}, {8}, {4, 8}, {4}, {8, 8, 3, 3}, {8}};
    static const int pn[8] = {4, 1, 1, 1, 2, 1, 4, 1};
    memset(m, 0, sizeof *m);
    assert_int_equal(hs_graph_new(&m->g), HS_OK);
    int64_t xs[4] = {4, 3, 16, 16}, ts[1] = {4}, cs[1] = {8};
    assert_int_equal(hs_graph_input(m->g, &m->x, HS_DTYPE_F32, 4, xs), HS_OK);
    assert_int_equal(hs_graph_input(m->g, &m->t, HS_DTYPE_I64, 1, ts), HS_OK);
    int32_t id[8], rm, rv;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(hs_tensor_new(&m->p[i], HS_DTYPE_F32, pn[i], ps[i]), HS_OK);
        assert_int_equal(hs_tensor_new(&m->dp[i], HS_DTYPE_F32, pn[i], ps[i]), HS_OK);
        assert_int_equal(hs_tensor_rand_normal(m->p[i], 30 + (uint64_t)i, i == 2 ? 1 : 0, 0.3), HS_OK);
        assert_int_equal(hs_graph_param(m->g, &id[i], m->p[i], m->dp[i]), HS_OK);
    }
    assert_int_equal(hs_tensor_new(&m->rm, HS_DTYPE_F32, 1, cs), HS_OK);
    assert_int_equal(hs_tensor_new(&m->rv, HS_DTYPE_F32, 1, cs), HS_OK);
    assert_int_equal(hs_tensor_fill(m->rv, 1), HS_OK);
    assert_int_equal(hs_graph_buffer(m->g, &rm, m->rm), HS_OK);
    assert_int_equal(hs_graph_buffer(m->g, &rv, m->rv), HS_OK);
    hs_op_attrs a;
    hs_op_attrs_init(&a);
    a.padding[0] = a.padding[1] = 1;
    int32_t h, in[5] = {m->x, id[0], id[1]};
    assert_int_equal(hs_graph_op(m->g, &h, HS_OP_CONV2D, in, 3, &a), HS_OK);
    int32_t bn[5] = {h, id[2], id[3], rm, rv};
    assert_int_equal(hs_graph_op(m->g, &h, HS_OP_BATCHNORM2D, bn, 5, NULL), HS_OK);
    assert_int_equal(hs_graph_op(m->g, &h, HS_OP_RELU, &h, 1, NULL), HS_OK);
    hs_op_attrs pa;
    hs_op_attrs_init(&pa);
    pa.kernel_size[0] = pa.kernel_size[1] = 2;
    assert_int_equal(hs_graph_op(m->g, &h, HS_OP_MAXPOOL2D, &h, 1, &pa), HS_OK);
    int32_t skip = h;
    int32_t c2[3] = {h, id[6], id[7]};
    assert_int_equal(hs_graph_op(m->g, &h, HS_OP_CONV2D, c2, 3, &a), HS_OK);
    assert_int_equal(hs_graph_op(m->g, &h, HS_OP_SILU, &h, 1, NULL), HS_OK);
    int32_t res[2] = {h, skip};
    assert_int_equal(hs_graph_op(m->g, &h, HS_OP_ADD, res, 2, NULL), HS_OK);
    hs_op_attrs da;
    hs_op_attrs_init(&da);
    da.p = 0.2f;
    da.seed = 3;
    assert_int_equal(hs_graph_op(m->g, &h, HS_OP_DROPOUT, &h, 1, &da), HS_OK);
    assert_int_equal(hs_graph_op(m->g, &h, HS_OP_GLOBAL_AVGPOOL, &h, 1, NULL), HS_OK);
    int32_t lin[3] = {h, id[4], id[5]};
    assert_int_equal(hs_graph_op(m->g, &m->logits, HS_OP_LINEAR, lin, 3, NULL), HS_OK);
    int32_t ce[2] = {m->logits, m->t};
    assert_int_equal(hs_graph_op(m->g, &m->loss, HS_OP_CROSS_ENTROPY, ce, 2, NULL), HS_OK);
    assert_int_equal(hs_graph_compile(m->g, m->loss, &m->logits, 1, 1), HS_OK);
    assert_int_equal(hs_tensor_new(&m->xv, HS_DTYPE_F32, 4, xs), HS_OK);
    assert_int_equal(hs_tensor_rand_normal(m->xv, 77, 0, 1), HS_OK);
    assert_int_equal(hs_tensor_new(&m->tv, HS_DTYPE_I64, 1, ts), HS_OK);
    for (int i = 0; i < 4; i++)
        ((int64_t *)m->tv->data)[i] = i % 4;
}

static void cnn_step(cnn *m, uint64_t step) {
    for (int i = 0; i < 8; i++)
        memset(m->dp[i]->data, 0, hs_tensor_nbytes(m->dp[i]));
    hs_graph_set_step(m->g, step);
    assert_int_equal(hs_graph_set_input(m->g, m->x, m->xv), HS_OK);
    assert_int_equal(hs_graph_set_input(m->g, m->t, m->tv), HS_OK);
    assert_int_equal(hs_graph_forward(m->g), HS_OK);
    assert_int_equal(hs_graph_backward(m->g, NULL), HS_OK);
    // a plain SGD update, so every step sees new parameters
    for (int i = 0; i < 8; i++) {
        float *w = m->p[i]->data, *d = m->dp[i]->data;
        for (int64_t k = 0; k < hs_tensor_numel(m->p[i]); k++)
            w[k] -= 0.05f * d[k];
    }
}

static void cnn_free(cnn *m) {
    for (int i = 0; i < 8; i++) {
        hs_tensor_free(m->p[i]);
        hs_tensor_free(m->dp[i]);
    }
    hs_tensor_free(m->rm);
    hs_tensor_free(m->rv);
    hs_tensor_free(m->xv);
    hs_tensor_free(m->tv);
    hs_graph_free(m->g);
}

static void test_graph_training_steps_allocate_nothing_after_the_first(void **state) {
    (void)state;
    cnn m;
    cnn_build(&m);
    cnn_step(&m, 0);
    uint64_t before = hs_alloc_count();
    for (uint64_t s = 1; s <= 3; s++)
        cnn_step(&m, s);
    assert_int_equal(hs_alloc_count(), before);
    print_message("  cnn: arena %zu bytes, naive %zu bytes\n", hs_graph_arena_bytes(m.g), hs_graph_naive_bytes(m.g));
    assert_true(hs_graph_arena_bytes(m.g) < hs_graph_naive_bytes(m.g));
    cnn_free(&m);
}

static void run_cnn_with_threads(int nt, float *loss, float *grads, float *rstats) {
    assert_int_equal(hs_set_num_threads(nt), HS_OK);
    cnn m;
    cnn_build(&m);
    for (uint64_t s = 0; s < 3; s++)
        cnn_step(&m, s);
    hs_tensor v;
    assert_int_equal(hs_graph_value(m.g, m.loss, &v), HS_OK);
    *loss = ((float *)v.data)[0];
    size_t off = 0;
    for (int i = 0; i < 8; i++) {
        memcpy(grads + off, m.dp[i]->data, hs_tensor_nbytes(m.dp[i]));
        off += (size_t)hs_tensor_numel(m.dp[i]);
    }
    memcpy(rstats, m.rm->data, 8 * sizeof(float));
    memcpy(rstats + 8, m.rv->data, 8 * sizeof(float));
    cnn_free(&m);
}

static void test_graph_results_are_bit_identical_for_1_and_2_threads(void **state) {
    (void)state;
    static float g1[2000], g2[2000];
    float l1, l2, r1[16], r2[16];
    run_cnn_with_threads(1, &l1, g1, r1);
    run_cnn_with_threads(2, &l2, g2, r2);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(g1, g2, sizeof g1);
    assert_memory_equal(r1, r2, sizeof r1);
    assert_true(isfinite(l1));
}

// ---- fusion and profiling ----

// Runs the small CNN for 3 steps with profiling on; returns loss, grads, running stats and the
// relu node's forward time (0 when the relu was folded into the batchnorm).
static double run_cnn_profiled(float *loss, float *grads, float *rstats) {
    cnn m;
    cnn_build(&m);
    assert_int_equal(hs_graph_set_profile(m.g, 1), HS_OK);
    for (uint64_t s = 0; s < 3; s++)
        cnn_step(&m, s);
    hs_tensor v;
    assert_int_equal(hs_graph_value(m.g, m.loss, &v), HS_OK);
    *loss = ((float *)v.data)[0];
    size_t off = 0;
    for (int i = 0; i < 8; i++) {
        memcpy(grads + off, m.dp[i]->data, hs_tensor_nbytes(m.dp[i]));
        off += (size_t)hs_tensor_numel(m.dp[i]);
    }
    memcpy(rstats, m.rm->data, 8 * sizeof(float));
    memcpy(rstats + 8, m.rv->data, 8 * sizeof(float));
    double relu_fwd = -1, conv_fwd = 0, f, b, zero;
    int64_t fr, br;
    for (int32_t i = 0; i < hs_graph_num_nodes(m.g); i++) {
        hs_graph_node_info info;
        assert_int_equal(hs_graph_node(m.g, i, &info), HS_OK);
        if (info.kind != HS_NODE_OP)
            continue;
        assert_int_equal(hs_graph_profile_node(m.g, i, &f, &b), HS_OK);
        if (info.op == HS_OP_RELU)
            relu_fwd = f;
        if (info.op == HS_OP_CONV2D)
            conv_fwd += f + b;
    }
    hs_graph_profile_totals(m.g, &zero, &fr, &br);
    assert_int_equal(fr, 3);
    assert_int_equal(br, 3);
    assert_true(conv_fwd > 0.0);
    hs_graph_profile_reset(m.g);
    hs_graph_profile_totals(m.g, &zero, &fr, &br);
    assert_int_equal(fr, 0);
    cnn_free(&m);
    return relu_fwd;
}

// conv -> batchnorm -> relu is compiled into conv -> fused batchnorm+relu (and gradients are
// assigned by their first writer instead of zero-filled): same loss, gradients and running
// statistics as the unfused graph (HISTOPS_NO_FUSE=1).
static void test_graph_fused_batchnorm_relu_matches_unfused_graph(void **state) {
    (void)state;
    static float g1[2000], g2[2000];
    float l1, l2, r1[16], r2[16];
    double relu_fused = run_cnn_profiled(&l1, g1, r1);
    setenv("HISTOPS_NO_FUSE", "1", 1);
    double relu_plain = run_cnn_profiled(&l2, g2, r2);
    unsetenv("HISTOPS_NO_FUSE");
    assert_true(relu_fused == 0.0);   // folded away: never ran
    assert_true(relu_plain > 0.0);
    hs_expect_close(&l1, &l2, 1, 1e-6, 1e-6);
    hs_expect_close(g1, g2, 2000, 1e-6, 1e-5);
    hs_expect_close(r1, r2, 16, 1e-6, 1e-6);
}

// An inference graph x -> conv -> bn -> relu -> maxpool -> conv -> bn; returns the batchnorms'
// summed forward time (0 when both were folded into their convs) and fills out (2,4,5,5).
static double run_eval_cnn(float *out) {
    hs_graph *g;
    assert_int_equal(hs_graph_new(&g), HS_OK);
    int64_t xs[4] = {2, 3, 10, 10}, ws1[4] = {6, 3, 3, 3}, ws2[4] = {4, 6, 3, 3}, c6[1] = {6}, c4[1] = {4};
    hs_tensor *t[12];
    const int64_t *shapes[12] = {ws1, c6, c6, c6, c6, c6, ws2, c4, c4, c4, c4, xs};
    const int nd[12] = {4, 1, 1, 1, 1, 1, 4, 1, 1, 1, 1, 4};
    for (int i = 0; i < 12; i++) {
        assert_int_equal(hs_tensor_new(&t[i], HS_DTYPE_F32, nd[i], shapes[i]), HS_OK);
        assert_int_equal(hs_tensor_rand_normal(t[i], 90 + (uint64_t)i, 0, 0.5), HS_OK);
    }
    for (int i = 0; i < hs_tensor_numel(t[5]); i++)   // running variances > 0
        ((float *)t[5]->data)[i] = 0.5f + fabsf(((float *)t[5]->data)[i]);
    for (int i = 0; i < hs_tensor_numel(t[10]); i++)
        ((float *)t[10]->data)[i] = 0.5f + fabsf(((float *)t[10]->data)[i]);
    int32_t x, id[11], h, bn1, bn2;
    assert_int_equal(hs_graph_input(g, &x, HS_DTYPE_F32, 4, xs), HS_OK);
    for (int i = 0; i < 11; i++) {
        int buffer = i == 4 || i == 5 || i == 9 || i == 10;
        if (buffer)
            assert_int_equal(hs_graph_buffer(g, &id[i], t[i]), HS_OK);
        else
            assert_int_equal(hs_graph_param(g, &id[i], t[i], NULL), HS_OK);
    }
    hs_op_attrs a, pa;
    hs_op_attrs_init(&a);
    a.padding[0] = a.padding[1] = 1;
    hs_op_attrs_init(&pa);
    pa.kernel_size[0] = pa.kernel_size[1] = 2;
    int32_t c1[2] = {x, id[0]};
    assert_int_equal(hs_graph_op(g, &h, HS_OP_CONV2D, c1, 2, &a), HS_OK);
    int32_t b1[5] = {h, id[1], id[2], id[3], id[4]};
    assert_int_equal(hs_graph_op(g, &bn1, HS_OP_BATCHNORM2D, b1, 5, NULL), HS_OK);
    assert_int_equal(hs_graph_op(g, &h, HS_OP_RELU, &bn1, 1, NULL), HS_OK);
    assert_int_equal(hs_graph_op(g, &h, HS_OP_MAXPOOL2D, &h, 1, &pa), HS_OK);
    int32_t c2[2] = {h, id[6]};
    assert_int_equal(hs_graph_op(g, &h, HS_OP_CONV2D, c2, 2, &a), HS_OK);
    int32_t b2[5] = {h, id[7], id[8], id[9], id[10]};
    assert_int_equal(hs_graph_op(g, &bn2, HS_OP_BATCHNORM2D, b2, 5, NULL), HS_OK);
    assert_int_equal(hs_graph_compile(g, -1, &bn2, 1, 0), HS_OK);
    assert_int_equal(hs_graph_set_profile(g, 1), HS_OK);
    assert_int_equal(hs_graph_set_input(g, x, t[11]), HS_OK);
    assert_int_equal(hs_graph_forward(g), HS_OK);
    hs_tensor v;
    assert_int_equal(hs_graph_value(g, bn2, &v), HS_OK);
    memcpy(out, v.data, 2 * 4 * 5 * 5 * sizeof(float));
    double f1, f2, b;
    assert_int_equal(hs_graph_profile_node(g, bn1, &f1, &b), HS_OK);
    assert_int_equal(hs_graph_profile_node(g, bn2, &f2, &b), HS_OK);
    for (int i = 0; i < 12; i++)
        hs_tensor_free(t[i]);
    hs_graph_free(g);
    return f1 + f2;
}

// Inference graphs fold eval batchnorm (+ relu) into the conv before it: same values.
static void test_graph_eval_conv_batchnorm_relu_folding_matches_unfused_graph(void **state) {
    (void)state;
    float a[200], b[200];
    double bn_fused = run_eval_cnn(a);
    setenv("HISTOPS_NO_FUSE", "1", 1);
    double bn_plain = run_eval_cnn(b);
    unsetenv("HISTOPS_NO_FUSE");
    assert_true(bn_fused == 0.0);
    assert_true(bn_plain > 0.0);
    hs_expect_close(a, b, 200, 1e-6, 1e-5);
}

static void test_graph_profile_requires_a_compiled_graph(void **state) {
    (void)state;
    hs_graph *g;
    assert_int_equal(hs_graph_new(&g), HS_OK);
    assert_int_equal(hs_graph_set_profile(g, 1), HS_ERR_STATE);
    hs_graph_free(g);
}

// ---- errors ----

static void test_graph_shape_errors_name_the_op_and_every_input_shape(void **state) {
    (void)state;
    hs_graph *g;
    assert_int_equal(hs_graph_new(&g), HS_OK);
    int64_t xs[2] = {4, 3}, ws[2] = {5, 4};
    int32_t x, w, y;
    hs_tensor *wt;
    assert_int_equal(hs_tensor_new(&wt, HS_DTYPE_F32, 2, ws), HS_OK);
    assert_int_equal(hs_graph_input(g, &x, HS_DTYPE_F32, 2, xs), HS_OK);
    assert_int_equal(hs_graph_param(g, &w, wt, NULL), HS_OK);
    int32_t in[2] = {x, w};
    assert_int_equal(hs_graph_op(g, &y, HS_OP_LINEAR, in, 2, NULL), HS_ERR_SHAPE);
    const char *msg = hs_last_error()->msg;
    print_message("  %s\n", msg);
    assert_non_null(strstr(msg, "linear"));
    assert_non_null(strstr(msg, "[4,3]"));
    assert_non_null(strstr(msg, "[5,4]"));
    assert_int_equal(hs_graph_num_nodes(g), 2);   // the failed op left nothing behind
    // broadcasting mismatch
    assert_int_equal(hs_graph_op(g, &y, HS_OP_ADD, in, 2, NULL), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "add"));
    assert_non_null(strstr(hs_last_error()->msg, "broadcast"));
    // conv2d: the kernel's own check, wrapped with the input shapes
    int64_t x4[4] = {1, 3, 8, 8}, w4[4] = {2, 4, 3, 3};
    hs_tensor *cw;
    assert_int_equal(hs_tensor_new(&cw, HS_DTYPE_F32, 4, w4), HS_OK);
    int32_t cx, cwn, cy;
    assert_int_equal(hs_graph_input(g, &cx, HS_DTYPE_F32, 4, x4), HS_OK);
    assert_int_equal(hs_graph_param(g, &cwn, cw, NULL), HS_OK);
    int32_t cin[2] = {cx, cwn};
    assert_int_equal(hs_graph_op(g, &cy, HS_OP_CONV2D, cin, 2, NULL), HS_ERR_SHAPE);
    print_message("  %s\n", hs_last_error()->msg);
    assert_non_null(strstr(hs_last_error()->msg, "conv2d"));
    assert_non_null(strstr(hs_last_error()->msg, "[1,3,8,8], [2,4,3,3]"));
    // wrong input count and unknown ids
    assert_int_equal(hs_graph_op(g, &y, HS_OP_RELU, in, 2, NULL), HS_ERR_ARG);
    assert_non_null(strstr(hs_last_error()->msg, "relu"));
    int32_t bad = 99;
    assert_int_equal(hs_graph_op(g, &y, HS_OP_RELU, &bad, 1, NULL), HS_ERR_ARG);
    // cross_entropy with F32 targets
    int32_t ce[2] = {x, x};
    assert_int_equal(hs_graph_op(g, &y, HS_OP_CROSS_ENTROPY, ce, 2, NULL), HS_ERR_DTYPE);
    assert_non_null(strstr(hs_last_error()->msg, "I64"));
    hs_tensor_free(wt);
    hs_tensor_free(cw);
    hs_graph_free(g);
}

static void test_graph_misuse_is_reported_as_state_or_shape_errors(void **state) {
    (void)state;
    hs_graph *g;
    assert_int_equal(hs_graph_new(&g), HS_OK);
    int64_t xs[2] = {2, 3};
    int32_t x, h, y, loss;
    assert_int_equal(hs_graph_input(g, &x, HS_DTYPE_F32, 2, xs), HS_OK);
    assert_int_equal(hs_graph_require_grad(g, x), HS_OK);
    assert_int_equal(hs_graph_op(g, &h, HS_OP_TANH, &x, 1, NULL), HS_OK);
    assert_int_equal(hs_graph_op(g, &y, HS_OP_SIGMOID, &h, 1, NULL), HS_OK);
    assert_int_equal(hs_graph_op(g, &loss, HS_OP_SUM, &y, 1, NULL), HS_OK);
    assert_int_equal(hs_graph_forward(g), HS_ERR_STATE);
    assert_non_null(strstr(hs_last_error()->msg, "compile"));
    assert_int_equal(hs_graph_backward(g, NULL), HS_ERR_STATE);
    assert_int_equal(hs_graph_compile(g, 42, NULL, 0, 1), HS_ERR_ARG);
    assert_int_equal(hs_graph_compile(g, loss, &y, 1, 1), HS_OK);
    assert_int_equal(hs_graph_compile(g, loss, &y, 1, 1), HS_ERR_STATE);
    int32_t z;
    assert_int_equal(hs_graph_op(g, &z, HS_OP_RELU, &x, 1, NULL), HS_ERR_STATE);
    assert_int_equal(hs_graph_forward(g), HS_ERR_STATE);    // input never set
    assert_non_null(strstr(hs_last_error()->msg, "never set"));
    hs_tensor *wrong, *right, *wrong_dt;
    int64_t ws[2] = {3, 2};
    assert_int_equal(hs_tensor_new(&wrong, HS_DTYPE_F32, 2, ws), HS_OK);
    assert_int_equal(hs_tensor_new(&right, HS_DTYPE_F32, 2, xs), HS_OK);
    assert_int_equal(hs_tensor_new(&wrong_dt, HS_DTYPE_I64, 2, xs), HS_OK);
    assert_int_equal(hs_graph_set_input(g, x, wrong), HS_ERR_SHAPE);
    assert_non_null(strstr(hs_last_error()->msg, "[2,3]"));
    assert_non_null(strstr(hs_last_error()->msg, "[3,2]"));
    assert_int_equal(hs_graph_set_input(g, x, wrong_dt), HS_ERR_DTYPE);
    assert_int_equal(hs_graph_set_input(g, h, right), HS_ERR_ARG);   // not an input
    assert_int_equal(hs_graph_set_input(g, x, right), HS_OK);
    assert_int_equal(hs_graph_backward(g, NULL), HS_ERR_STATE);     // no forward yet
    assert_int_equal(hs_graph_forward(g), HS_OK);
    hs_tensor v;
    assert_int_equal(hs_graph_value(g, h, &v), HS_ERR_STATE);       // intermediate: memory reused
    assert_int_equal(hs_graph_value(g, y, &v), HS_OK);
    assert_int_equal(hs_graph_backward(g, wrong), HS_ERR_SHAPE);    // dout must match the loss
    assert_int_equal(hs_graph_backward(g, NULL), HS_OK);
    assert_int_equal(hs_graph_backward(g, NULL), HS_ERR_STATE);     // twice without a forward
    assert_int_equal(hs_graph_grad(g, x, &v), HS_OK);
    assert_int_equal(hs_graph_grad(g, h, &v), HS_ERR_STATE);
    assert_int_equal(hs_graph_value(g, 1000, &v), HS_ERR_ARG);
    // an inference graph has no backward
    hs_graph *inf;
    assert_int_equal(hs_graph_new(&inf), HS_OK);
    assert_int_equal(hs_graph_input(inf, &x, HS_DTYPE_F32, 2, xs), HS_OK);
    assert_int_equal(hs_graph_op(inf, &y, HS_OP_RELU, &x, 1, NULL), HS_OK);
    assert_int_equal(hs_graph_compile(inf, -1, &y, 1, 0), HS_OK);
    assert_int_equal(hs_graph_set_input(inf, x, right), HS_OK);
    assert_int_equal(hs_graph_forward(inf), HS_OK);
    assert_int_equal(hs_graph_backward(inf, NULL), HS_ERR_STATE);
    assert_int_equal(hs_graph_grad(inf, x, &v), HS_ERR_STATE);
    hs_graph_free(inf);
    hs_tensor_free(wrong);
    hs_tensor_free(right);
    hs_tensor_free(wrong_dt);
    hs_graph_free(g);
    hs_graph_free(NULL);
}

static void test_graph_build_and_compile_survive_every_allocation_failure(void **state) {
    (void)state;
    for (uint64_t n = 1; n < 1000; n++) {
        hs_alloc_fail_after(n);
        hs_graph *g = NULL;
        hs_status s = hs_graph_new(&g);
        int64_t xs[2] = {2, 3};
        int32_t x, y, l;
        if (s == HS_OK) s = hs_graph_input(g, &x, HS_DTYPE_F32, 2, xs);
        if (s == HS_OK) s = hs_graph_require_grad(g, x);
        if (s == HS_OK) s = hs_graph_op(g, &y, HS_OP_GELU, &x, 1, NULL);
        if (s == HS_OK) s = hs_graph_op(g, &l, HS_OP_MEAN, &y, 1, NULL);
        if (s == HS_OK) s = hs_graph_compile(g, l, &y, 1, 1);
        hs_alloc_fail_after(0);
        if (s != HS_OK) {
            assert_int_equal(s, HS_ERR_NOMEM);
            hs_graph_free(g);
            continue;
        }
        hs_tensor *xv;
        assert_int_equal(hs_tensor_new(&xv, HS_DTYPE_F32, 2, xs), HS_OK);
        assert_int_equal(hs_graph_set_input(g, x, xv), HS_OK);
        assert_int_equal(hs_graph_forward(g), HS_OK);
        assert_int_equal(hs_graph_backward(g, NULL), HS_OK);
        hs_tensor_free(xv);
        hs_graph_free(g);
        print_message("  succeeded once allocation %llu no longer failed\n", (unsigned long long)n);
        return;
    }
    fail_msg("graph construction never succeeded");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_every_op_backward_matches_finite_differences),
        cmocka_unit_test(test_graph_mlp_gradients_match_finite_differences),
        cmocka_unit_test(test_graph_param_grads_accumulate_across_backwards),
        cmocka_unit_test(test_graph_broadcast_backward_reduces_over_broadcast_dims),
        cmocka_unit_test(test_graph_arena_reuses_memory_on_a_deep_chain),
        cmocka_unit_test(test_graph_training_steps_allocate_nothing_after_the_first),
        cmocka_unit_test(test_graph_results_are_bit_identical_for_1_and_2_threads),
        cmocka_unit_test(test_graph_fused_batchnorm_relu_matches_unfused_graph),
        cmocka_unit_test(test_graph_profile_requires_a_compiled_graph),
        cmocka_unit_test(test_graph_eval_conv_batchnorm_relu_folding_matches_unfused_graph),
        cmocka_unit_test(test_graph_shape_errors_name_the_op_and_every_input_shape),
        cmocka_unit_test(test_graph_misuse_is_reported_as_state_or_shape_errors),
        cmocka_unit_test(test_graph_build_and_compile_survive_every_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
