// core/graph_ops.c: the op table of the graph: for every op, its shape rule (infer), what it saves
// for backward and the workspaces it needs (plan), and forward/backward side by side. Layer math
// lives in the kernels (act, loss, conv2d, pool, batchnorm, upsample, dropout); the small
// elementwise, broadcasting, reduction and copy ops are done here. Nothing here allocates.
//
// Dimension letters: N batch, C channels/classes, H/W height/width, S spatial positions; reductions
// view a tensor as (outer, D, inner) around the reduced dim.
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "act.h"
#include "batchnorm.h"
#include "blas.h"
#include "conv2d.h"
#include "dropout.h"
#include "graph_impl.h"
#include "loss.h"
#include "parallel.h"
#include "pool.h"
#include "upsample.h"

#define ELEM_GRAIN 16384

static graph_node *IN(const hs_graph *g, const graph_node *n, int i) { return &g->nodes[n->in[i]]; }
static float *VAL(const hs_graph *g, const graph_node *n, int i) { return graph_value_ptr(g, n->in[i]); }
static float *OUT(const hs_graph *g, const graph_node *n) { return graph_buf_ptr(g, n->val_buf); }
static float *DOUT(const hs_graph *g, const graph_node *n) { return graph_grad_ptr(g, (int32_t)(n - g->nodes)); }

static void set_out(graph_node *n, int ndim, const int64_t *shape) {
    n->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        n->shape[i] = shape[i];
}

static hs_status need_f32(const hs_graph *g, graph_node *n, int i) {
    if (IN(g, n, i)->dtype != HS_DTYPE_F32)
        return GRAPH_FAIL(g, n, HS_ERR_DTYPE, "input %d must be F32", i + 1);
    return HS_OK;
}

static hs_status all_f32(const hs_graph *g, graph_node *n) {
    for (int i = 0; i < n->nin; i++)
        HS_TRY(need_f32(g, n, i));
    return HS_OK;
}

static hs_status norm_dim(const hs_graph *g, graph_node *n, int *dim, int ndim, const char *what) {
    int d = *dim < 0 ? *dim + ndim : *dim;
    if (d < 0 || d >= ndim)
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "%s %d out of range for a %d-d input", what, *dim, ndim);
    *dim = d;
    return HS_OK;
}

static int64_t prod(const int64_t *s, int a, int b) {
    int64_t p = 1;
    for (int i = a; i < b; i++)
        p *= s[i];
    return p;
}

// ---- elementwise helpers ----

typedef struct {
    float *out;
    const float *x, *y;
    float alpha;
    int op;
} ew_ctx;

enum { EW_COPY, EW_ACC, EW_ACC_SCALED, EW_ADD_SCALAR, EW_MUL_SCALAR };

static void ew_range(void *vc, int64_t b, int64_t e) {
    const ew_ctx *c = vc;
    float *o = c->out;
    const float *x = c->x, al = c->alpha;
    switch (c->op) {
    case EW_COPY: memcpy(o + b, x + b, (size_t)(e - b) * sizeof *o); break;
    case EW_ACC: for (int64_t i = b; i < e; i++) o[i] += x[i]; break;
    case EW_ACC_SCALED: for (int64_t i = b; i < e; i++) o[i] += al * x[i]; break;
    case EW_ADD_SCALAR: for (int64_t i = b; i < e; i++) o[i] = x[i] + al; break;
    case EW_MUL_SCALAR: for (int64_t i = b; i < e; i++) o[i] = x[i] * al; break;
    }
}

static void ew(int op, float *out, const float *x, float alpha, int64_t n) {
    ew_ctx c = {out, x, NULL, alpha, op};
    hs_parallel_for(n, ELEM_GRAIN, ew_range, &c);
}

// ---- broadcasting binary ops (add, sub, mul, div) ----

typedef struct {
    int nd;
    int64_t shape[HS_MAX_DIMS], sa[HS_MAX_DIMS], sb[HS_MAX_DIMS];
} bcast;

static void bcast_strides(int64_t *st, const graph_node *m, int nd) {
    int off = nd - m->ndim;
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int md = d - off;
        if (md < 0 || m->shape[md] == 1) {
            st[d] = 0;
        } else {
            st[d] = s;
        }
        if (md >= 0)
            s *= m->shape[md];
    }
}

static void bcast_init(bcast *bc, const hs_graph *g, const graph_node *n) {
    bc->nd = n->ndim;
    memcpy(bc->shape, n->shape, sizeof bc->shape);
    bcast_strides(bc->sa, IN(g, n, 0), n->ndim);
    bcast_strides(bc->sb, IN(g, n, 1), n->ndim);
}

static hs_status infer_binary(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *a = IN(g, n, 0), *b = IN(g, n, 1);
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    n->ndim = nd;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t x = da >= 0 ? a->shape[da] : 1, y = db >= 0 ? b->shape[db] : 1;
        if (x != y && x != 1 && y != 1)
            return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "shapes do not broadcast (dim %d: %lld vs %lld)", d, (long long)x,
                              (long long)y);
        n->shape[d] = x == 1 ? y : x;
    }
    return HS_OK;
}

static void plan_binary(const hs_graph *g, const graph_node *n, size_t saved[GRAPH_MAX_SAVED], size_t *fws,
                        size_t *bws) {
    // broadcast inputs reduce their gradient in double (deterministic, no float drift)
    for (int i = 0; i < 2; i++)
        if (IN(g, n, i)->numel != n->numel)
            *bws += (size_t)IN(g, n, i)->numel * sizeof(double);
}

typedef struct {
    const bcast *bc;
    float *out;
    const float *a, *b;
    hs_opkind op;
} bin_ctx;

static float bin_apply(hs_opkind op, float x, float y) {
    switch (op) {
    case HS_OP_ADD: return x + y;
    case HS_OP_SUB: return x - y;
    case HS_OP_MUL: return x * y;
    default: return x / y;
    }
}

static void bin_range(void *vc, int64_t b, int64_t e) {
    const bin_ctx *c = vc;
    const bcast *bc = c->bc;
    int64_t idx[HS_MAX_DIMS], ia = 0, ib = 0, r = b;
    for (int d = bc->nd - 1; d >= 0; d--) {
        idx[d] = r % bc->shape[d];
        r /= bc->shape[d];
        ia += idx[d] * bc->sa[d];
        ib += idx[d] * bc->sb[d];
    }
    for (int64_t i = b; i < e; i++) {
        c->out[i] = bin_apply(c->op, c->a[ia], c->b[ib]);
        for (int d = bc->nd - 1; d >= 0; d--) {
            ia += bc->sa[d];
            ib += bc->sb[d];
            if (++idx[d] < bc->shape[d])
                break;
            ia -= bc->sa[d] * bc->shape[d];
            ib -= bc->sb[d] * bc->shape[d];
            idx[d] = 0;
        }
    }
}

static void same_range(void *vc, int64_t b, int64_t e) {
    const bin_ctx *c = vc;
    for (int64_t i = b; i < e; i++)
        c->out[i] = bin_apply(c->op, c->a[i], c->b[i]);
}

static hs_status fwd_binary(hs_graph *g, graph_node *n) {
    bcast bc;
    bcast_init(&bc, g, n);
    bin_ctx c = {&bc, OUT(g, n), VAL(g, n, 0), VAL(g, n, 1), n->op};
    int same = IN(g, n, 0)->numel == n->numel && IN(g, n, 1)->numel == n->numel;
    hs_parallel_for(n->numel, ELEM_GRAIN, same ? same_range : bin_range, &c);
    return HS_OK;
}

typedef struct {
    float *ga, *gb;
    const float *dout, *a, *b;
    hs_opkind op;
} binb_ctx;

static void binb_same_range(void *vc, int64_t lo, int64_t hi) {
    const binb_ctx *c = vc;
    for (int64_t i = lo; i < hi; i++) {
        float d = c->dout[i];
        switch (c->op) {
        case HS_OP_ADD:
            if (c->ga) c->ga[i] += d;
            if (c->gb) c->gb[i] += d;
            break;
        case HS_OP_SUB:
            if (c->ga) c->ga[i] += d;
            if (c->gb) c->gb[i] -= d;
            break;
        case HS_OP_MUL:
            if (c->ga) c->ga[i] += d * c->b[i];
            if (c->gb) c->gb[i] += d * c->a[i];
            break;
        default:
            if (c->ga) c->ga[i] += d / c->b[i];
            if (c->gb) c->gb[i] -= d * c->a[i] / (c->b[i] * c->b[i]);
            break;
        }
    }
}

static hs_status bwd_binary(hs_graph *g, graph_node *n) {
    float *ga = graph_input_grad(g, n, 0), *gb = graph_input_grad(g, n, 1);
    const float *dout = DOUT(g, n), *a = VAL(g, n, 0), *b = VAL(g, n, 1);
    int64_t na = IN(g, n, 0)->numel, nb = IN(g, n, 1)->numel;
    if (na == n->numel && nb == n->numel) {
        binb_ctx c = {ga, gb, dout, a, b, n->op};
        hs_parallel_for(n->numel, ELEM_GRAIN, binb_same_range, &c);
        return HS_OK;
    }
    // general case: serial walk in row-major order, broadcast inputs accumulated in double
    bcast bc;
    bcast_init(&bc, g, n);
    double *ws = graph_buf_ptr(g, n->bws_buf), *accA = NULL, *accB = NULL;
    if (na != n->numel) {
        accA = ws;
        ws += na;
        memset(accA, 0, (size_t)na * sizeof *accA);
    }
    if (nb != n->numel) {
        accB = ws;
        memset(accB, 0, (size_t)nb * sizeof *accB);
    }
    int64_t idx[HS_MAX_DIMS] = {0}, ia = 0, ib = 0;
    for (int64_t i = 0; i < n->numel; i++) {
        double d = dout[i], da, db;
        switch (n->op) {
        case HS_OP_ADD: da = d; db = d; break;
        case HS_OP_SUB: da = d; db = -d; break;
        case HS_OP_MUL: da = d * (double)b[ib]; db = d * (double)a[ia]; break;
        default: da = d / (double)b[ib]; db = -d * (double)a[ia] / ((double)b[ib] * (double)b[ib]); break;
        }
        if (ga) {
            if (accA) accA[ia] += da;
            else ga[ia] += (float)da;
        }
        if (gb) {
            if (accB) accB[ib] += db;
            else gb[ib] += (float)db;
        }
        for (int dd = bc.nd - 1; dd >= 0; dd--) {
            ia += bc.sa[dd];
            ib += bc.sb[dd];
            if (++idx[dd] < bc.shape[dd])
                break;
            ia -= bc.sa[dd] * bc.shape[dd];
            ib -= bc.sb[dd] * bc.shape[dd];
            idx[dd] = 0;
        }
    }
    if (ga && accA)
        for (int64_t i = 0; i < na; i++)
            ga[i] += (float)accA[i];
    if (gb && accB)
        for (int64_t i = 0; i < nb; i++)
            gb[i] += (float)accB[i];
    return HS_OK;
}

// ---- scalar ops ----

static hs_status infer_same(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    set_out(n, IN(g, n, 0)->ndim, IN(g, n, 0)->shape);
    return HS_OK;
}

static hs_status fwd_scalar(hs_graph *g, graph_node *n) {
    ew(n->op == HS_OP_ADD_SCALAR ? EW_ADD_SCALAR : EW_MUL_SCALAR, OUT(g, n), VAL(g, n, 0), n->a.value, n->numel);
    return HS_OK;
}

static hs_status bwd_scalar(hs_graph *g, graph_node *n) {
    if (n->op == HS_OP_ADD_SCALAR)
        ew(EW_ACC, graph_input_grad(g, n, 0), DOUT(g, n), 1.0f, n->numel);
    else
        ew(EW_ACC_SCALED, graph_input_grad(g, n, 0), DOUT(g, n), n->a.value, n->numel);
    return HS_OK;
}

// ---- activations ----

static hs_act act_of(hs_opkind op) {
    switch (op) {
    case HS_OP_RELU: return HS_ACT_RELU;
    case HS_OP_LEAKY_RELU: return HS_ACT_LEAKY_RELU;
    case HS_OP_SIGMOID: return HS_ACT_SIGMOID;
    case HS_OP_TANH: return HS_ACT_TANH;
    case HS_OP_GELU: return HS_ACT_GELU;
    default: return HS_ACT_SILU;
    }
}

static hs_status infer_act(hs_graph *g, graph_node *n) {
    if (n->op == HS_OP_LEAKY_RELU && !isfinite(n->a.negative_slope))
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "negative_slope must be finite");
    return infer_same(g, n);
}

static hs_status fwd_act(hs_graph *g, graph_node *n) {
    return hs_act_forward(OUT(g, n), VAL(g, n, 0), n->numel, act_of(n->op), n->a.negative_slope);
}

static hs_status bwd_act(hs_graph *g, graph_node *n) {
    int from_out = n->op == HS_OP_SIGMOID || n->op == HS_OP_TANH;
    return hs_act_backward(graph_input_grad(g, n, 0), DOUT(g, n), from_out ? NULL : VAL(g, n, 0),
                           from_out ? OUT(g, n) : NULL, n->numel, act_of(n->op), n->a.negative_slope);
}

// ---- softmax / log_softmax ----

static hs_status infer_softmax(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0);
    if (x->ndim == 0)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "input must have at least 1 dim");
    if (!n->a.has_dim) {
        n->a.dim = x->ndim >= 2 ? 1 : 0;
        n->a.has_dim = 1;
    }
    HS_TRY(norm_dim(g, n, &n->a.dim, x->ndim, "dim"));
    set_out(n, x->ndim, x->shape);
    return HS_OK;
}

static void view3(const graph_node *x, int dim, int64_t *outer, int64_t *D, int64_t *inner) {
    *outer = prod(x->shape, 0, dim);
    *D = x->shape[dim];
    *inner = prod(x->shape, dim + 1, x->ndim);
}

static hs_status fwd_softmax(hs_graph *g, graph_node *n) {
    int64_t o, d, i;
    view3(n, n->a.dim, &o, &d, &i);
    return hs_softmax_forward(OUT(g, n), VAL(g, n, 0), o, d, i, n->op == HS_OP_LOG_SOFTMAX);
}

static hs_status bwd_softmax(hs_graph *g, graph_node *n) {
    int64_t o, d, i;
    view3(n, n->a.dim, &o, &d, &i);
    return hs_softmax_backward(graph_input_grad(g, n, 0), DOUT(g, n), OUT(g, n), o, d, i, n->op == HS_OP_LOG_SOFTMAX);
}

// ---- sum / mean ----

static hs_status infer_reduce(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0);
    if (!n->a.has_dim) {
        n->ndim = n->a.keepdim ? x->ndim : 0;
        for (int d = 0; d < n->ndim; d++)
            n->shape[d] = 1;
        return HS_OK;
    }
    HS_TRY(norm_dim(g, n, &n->a.dim, x->ndim, "dim"));
    int k = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d == n->a.dim) {
            if (n->a.keepdim)
                n->shape[k++] = 1;
        } else {
            n->shape[k++] = x->shape[d];
        }
    }
    n->ndim = k;
    return HS_OK;
}

typedef struct {
    float *out;
    const float *x;
    int64_t D, inner;
    double scale;
} red_ctx;

static void red_range(void *vc, int64_t b, int64_t e) {
    const red_ctx *c = vc;
    for (int64_t it = b; it < e; it++) {
        int64_t o = it / c->inner, i = it % c->inner;
        const float *p = c->x + o * c->D * c->inner + i;
        double s = 0;
        for (int64_t d = 0; d < c->D; d++)
            s += (double)p[d * c->inner];
        c->out[it] = (float)(s * c->scale);
    }
}

static void red_back_range(void *vc, int64_t b, int64_t e) {
    const red_ctx *c = vc;   // out = dx (outer, D, inner), x = dout (outer, inner)
    float sc = (float)c->scale;
    for (int64_t it = b; it < e; it++) {
        int64_t o = it / (c->D * c->inner), i = it % c->inner;
        c->out[it] += c->x[o * c->inner + i] * sc;
    }
}

static void reduce_view(const hs_graph *g, const graph_node *n, int64_t *outer, int64_t *D, int64_t *inner) {
    const graph_node *x = IN(g, n, 0);
    if (!n->a.has_dim) {
        *outer = 1;
        *D = x->numel;
        *inner = 1;
    } else {
        view3(x, n->a.dim, outer, D, inner);
    }
}

static hs_status fwd_reduce(hs_graph *g, graph_node *n) {
    int64_t o, D, i;
    reduce_view(g, n, &o, &D, &i);
    red_ctx c = {OUT(g, n), VAL(g, n, 0), D, i, n->op == HS_OP_MEAN ? 1.0 / (double)D : 1.0};
    hs_parallel_for(o * i, D * i > 1024 ? 1 : 64, red_range, &c);
    return HS_OK;
}

static hs_status bwd_reduce(hs_graph *g, graph_node *n) {
    int64_t o, D, i;
    reduce_view(g, n, &o, &D, &i);
    red_ctx c = {graph_input_grad(g, n, 0), DOUT(g, n), D, i, n->op == HS_OP_MEAN ? 1.0 / (double)D : 1.0};
    hs_parallel_for(o * D * i, ELEM_GRAIN, red_back_range, &c);
    return HS_OK;
}

// ---- reshape / flatten (copies; the backward adds the gradient back unchanged) ----

static hs_status infer_reshape(hs_graph *g, graph_node *n) {
    char s[160];
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0);
    int nd = n->a.shape_ndim, infer = -1;
    if (nd < 0 || nd > HS_MAX_DIMS)
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "target shape has %d dims (0..%d)", nd, HS_MAX_DIMS);
    int64_t known = 1;
    for (int d = 0; d < nd; d++) {
        int64_t v = n->a.shape[d];
        if (v == -1) {
            if (infer >= 0)
                return GRAPH_FAIL(g, n, HS_ERR_ARG, "only one dim of the target shape may be -1");
            infer = d;
        } else if (v < 1) {
            return GRAPH_FAIL(g, n, HS_ERR_ARG, "bad size %lld in target shape %s", (long long)v,
                              hs_shape_str(nd, n->a.shape, s, sizeof s));
        } else {
            known *= v;
        }
    }
    int64_t shape[HS_MAX_DIMS];
    memcpy(shape, n->a.shape, sizeof shape);
    if (infer >= 0) {
        if (x->numel % known != 0)
            return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "cannot reshape into %s", hs_shape_str(nd, n->a.shape, s, sizeof s));
        shape[infer] = x->numel / known;
        known = x->numel;
    }
    if (known != x->numel)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "cannot reshape %lld elements into %s", (long long)x->numel,
                          hs_shape_str(nd, n->a.shape, s, sizeof s));
    set_out(n, nd, shape);
    return HS_OK;
}

static hs_status infer_flatten(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0);
    if (x->ndim == 0)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "cannot flatten a 0-d input");
    HS_TRY(norm_dim(g, n, &n->a.start_dim, x->ndim, "start_dim"));
    HS_TRY(norm_dim(g, n, &n->a.end_dim, x->ndim, "end_dim"));
    if (n->a.end_dim < n->a.start_dim)
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "end_dim %d is before start_dim %d", n->a.end_dim, n->a.start_dim);
    int k = 0;
    for (int d = 0; d < n->a.start_dim; d++)
        n->shape[k++] = x->shape[d];
    n->shape[k++] = prod(x->shape, n->a.start_dim, n->a.end_dim + 1);
    for (int d = n->a.end_dim + 1; d < x->ndim; d++)
        n->shape[k++] = x->shape[d];
    n->ndim = k;
    return HS_OK;
}

static hs_status fwd_copy(hs_graph *g, graph_node *n) {
    ew(EW_COPY, OUT(g, n), VAL(g, n, 0), 0, n->numel);
    return HS_OK;
}

static hs_status bwd_copy(hs_graph *g, graph_node *n) {
    ew((n->assign & 1) ? EW_COPY : EW_ACC, graph_input_grad(g, n, 0), DOUT(g, n), 1.0f, n->numel);
    return HS_OK;
}

// ---- concat ----

static hs_status infer_concat(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0);
    if (x->ndim == 0)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "cannot concatenate 0-d inputs");
    if (!n->a.has_dim)
        n->a.dim = 0;
    HS_TRY(norm_dim(g, n, &n->a.dim, x->ndim, "dim"));
    set_out(n, x->ndim, x->shape);
    n->shape[n->a.dim] = 0;
    for (int i = 0; i < n->nin; i++) {
        const graph_node *m = IN(g, n, i);
        if (m->ndim != x->ndim)
            return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "input %d has %d dims, input 1 has %d", i + 1, m->ndim, x->ndim);
        for (int d = 0; d < x->ndim; d++)
            if (d != n->a.dim && m->shape[d] != x->shape[d])
                return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "input %d differs from input 1 in dim %d (%lld vs %lld), only dim %d may differ",
                                  i + 1, d, (long long)m->shape[d], (long long)x->shape[d], n->a.dim);
        n->shape[n->a.dim] += m->shape[n->a.dim];
    }
    return HS_OK;
}

static hs_status concat_run(hs_graph *g, graph_node *n, int backward) {
    int dim = n->a.dim;
    int64_t outer = prod(n->shape, 0, dim), inner = prod(n->shape, dim + 1, n->ndim), Dout = n->shape[dim];
    float *out = backward ? DOUT(g, n) : OUT(g, n);
    int64_t off = 0;
    for (int j = 0; j < n->nin; j++) {
        int64_t Dj = IN(g, n, j)->shape[dim], blk = Dj * inner;
        float *xj = backward ? graph_input_grad(g, n, j) : VAL(g, n, j);
        if (xj) {
            for (int64_t o = 0; o < outer; o++) {
                float *po = out + (o * Dout + off) * inner;
                float *px = xj + o * blk;
                if (backward && j < 32 && ((n->assign >> j) & 1))
                    memcpy(px, po, (size_t)blk * sizeof *po);
                else if (backward)
                    for (int64_t k = 0; k < blk; k++)
                        px[k] += po[k];
                else
                    memcpy(po, px, (size_t)blk * sizeof *po);
            }
        }
        off += Dj;
    }
    return HS_OK;
}

static hs_status fwd_concat(hs_graph *g, graph_node *n) { return concat_run(g, n, 0); }
static hs_status bwd_concat(hs_graph *g, graph_node *n) { return concat_run(g, n, 1); }

// ---- linear and matmul (OpenBLAS) ----

static hs_status fits_int(const hs_graph *g, graph_node *n, int64_t v) {
    if (v > INT_MAX)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "size %lld too large for BLAS", (long long)v);
    return HS_OK;
}

static hs_status infer_linear(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0), *w = IN(g, n, 1);
    if (x->ndim < 1 || w->ndim != 2)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "expected x (..., in) and weight (out, in)");
    if (w->shape[1] != x->shape[x->ndim - 1])
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "weight in_features %lld does not match x's last dim %lld",
                          (long long)w->shape[1], (long long)x->shape[x->ndim - 1]);
    if (n->nin == 3) {
        const graph_node *b = IN(g, n, 2);
        if (b->ndim != 1 || b->shape[0] != w->shape[0])
            return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "bias must be (%lld)", (long long)w->shape[0]);
    }
    set_out(n, x->ndim, x->shape);
    n->shape[x->ndim - 1] = w->shape[0];
    HS_TRY(fits_int(g, n, x->numel / x->shape[x->ndim - 1]));
    HS_TRY(fits_int(g, n, w->shape[0]));
    return fits_int(g, n, w->shape[1]);
}

static hs_status fwd_linear(hs_graph *g, graph_node *n) {
    const graph_node *w = IN(g, n, 1);
    int O = (int)w->shape[0], I = (int)w->shape[1], M = (int)(IN(g, n, 0)->numel / I);
    float *out = OUT(g, n);
    hs_sgemm(0, 1, M, O, I, 1.0f, VAL(g, n, 0), I, VAL(g, n, 1), I, 0.0f, out, O);
    if (n->nin == 3) {
        const float *b = VAL(g, n, 2);
        for (int r = 0; r < M; r++)
            for (int j = 0; j < O; j++)
                out[(int64_t)r * O + j] += b[j];
    }
    return HS_OK;
}

static hs_status bwd_linear(hs_graph *g, graph_node *n) {
    const graph_node *w = IN(g, n, 1);
    int O = (int)w->shape[0], I = (int)w->shape[1], M = (int)(IN(g, n, 0)->numel / I);
    const float *dout = DOUT(g, n);
    float *dx = graph_input_grad(g, n, 0), *dw = graph_input_grad(g, n, 1);
    if (dx)
        hs_sgemm(0, 0, M, I, O, 1.0f, dout, O, VAL(g, n, 1), I, 1.0f, dx, I);
    if (dw)
        hs_sgemm(1, 0, O, I, M, 1.0f, dout, O, VAL(g, n, 0), I, 1.0f, dw, I);
    float *db = n->nin == 3 ? graph_input_grad(g, n, 2) : NULL;
    if (db) {
        for (int j = 0; j < O; j++) {   // column sums in double, rows in order: deterministic
            double s = 0;
            for (int r = 0; r < M; r++)
                s += (double)dout[(int64_t)r * O + j];
            db[j] += (float)s;
        }
    }
    return HS_OK;
}

static hs_status infer_matmul(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *a = IN(g, n, 0), *b = IN(g, n, 1);
    if (a->ndim < 2 || b->ndim < 2)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "both inputs need at least 2 dims");
    if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2])
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "inner dims differ (%lld vs %lld)", (long long)a->shape[a->ndim - 1],
                          (long long)b->shape[b->ndim - 2]);
    if (b->ndim > 2) {
        if (b->ndim != a->ndim)
            return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "batched matmul needs equal batch dims (or a 2-d second input)");
        for (int d = 0; d < a->ndim - 2; d++)
            if (a->shape[d] != b->shape[d])
                return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "batch dim %d differs (%lld vs %lld)", d, (long long)a->shape[d],
                                  (long long)b->shape[d]);
    }
    set_out(n, a->ndim, a->shape);
    n->shape[a->ndim - 1] = b->shape[b->ndim - 1];
    HS_TRY(fits_int(g, n, a->shape[a->ndim - 2]));
    HS_TRY(fits_int(g, n, a->shape[a->ndim - 1]));
    return fits_int(g, n, b->shape[b->ndim - 1]);
}

static void mm_dims(const hs_graph *g, const graph_node *n, int *B, int *M, int *K, int *Nn, int *bshared) {
    const graph_node *a = IN(g, n, 0), *b = IN(g, n, 1);
    *M = (int)a->shape[a->ndim - 2];
    *K = (int)a->shape[a->ndim - 1];
    *Nn = (int)b->shape[b->ndim - 1];
    *B = (int)prod(a->shape, 0, a->ndim - 2);
    *bshared = b->ndim == 2;
}

static hs_status fwd_matmul(hs_graph *g, graph_node *n) {
    int B, M, K, Nn, sh;
    mm_dims(g, n, &B, &M, &K, &Nn, &sh);
    const float *a = VAL(g, n, 0), *b = VAL(g, n, 1);
    float *out = OUT(g, n);
    if (sh) {   // one GEMM over all batch rows
        hs_sgemm(0, 0, B * M, Nn, K, 1.0f, a, K, b, Nn, 0.0f, out, Nn);
        return HS_OK;
    }
    for (int i = 0; i < B; i++)
        hs_sgemm(0, 0, M, Nn, K, 1.0f, a + (int64_t)i * M * K, K, b + (int64_t)i * K * Nn, Nn, 0.0f,
                 out + (int64_t)i * M * Nn, Nn);
    return HS_OK;
}

static hs_status bwd_matmul(hs_graph *g, graph_node *n) {
    int B, M, K, Nn, sh;
    mm_dims(g, n, &B, &M, &K, &Nn, &sh);
    const float *a = VAL(g, n, 0), *b = VAL(g, n, 1), *dout = DOUT(g, n);
    float *da = graph_input_grad(g, n, 0), *db = graph_input_grad(g, n, 1);
    if (sh) {
        if (da)
            hs_sgemm(0, 1, B * M, K, Nn, 1.0f, dout, Nn, b, Nn, 1.0f, da, K);
        if (db)
            hs_sgemm(1, 0, K, Nn, B * M, 1.0f, a, K, dout, Nn, 1.0f, db, Nn);
        return HS_OK;
    }
    for (int i = 0; i < B; i++) {
        const float *ai = a + (int64_t)i * M * K, *bi = b + (int64_t)i * K * Nn, *di = dout + (int64_t)i * M * Nn;
        if (da)
            hs_sgemm(0, 1, M, K, Nn, 1.0f, di, Nn, bi, Nn, 1.0f, da + (int64_t)i * M * K, K);
        if (db)
            hs_sgemm(1, 0, K, Nn, M, 1.0f, ai, K, di, Nn, 1.0f, db + (int64_t)i * K * Nn, Nn);
    }
    return HS_OK;
}

// ---- losses (scalar outputs) ----

static hs_status infer_ce(hs_graph *g, graph_node *n) {
    HS_TRY(need_f32(g, n, 0));
    const graph_node *x = IN(g, n, 0), *t = IN(g, n, 1);
    if (x->ndim < 2)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "logits must be (N,C) or (N,C,H,W...)");
    if (t->dtype != HS_DTYPE_I64)
        return GRAPH_FAIL(g, n, HS_ERR_DTYPE, "target must be I64 class indices");
    int ok = t->ndim == x->ndim - 1 && t->shape[0] == x->shape[0];
    for (int d = 1; ok && d < t->ndim; d++)
        ok = t->shape[d] == x->shape[d + 1];
    if (!ok)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "target must be the logits shape without dim 1 (C)");
    if (n->nin == 3) {
        HS_TRY(need_f32(g, n, 2));
        const graph_node *w = IN(g, n, 2);
        if (w->numel != x->shape[1] || w->ndim != 1)
            return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "class weight must be (%lld)", (long long)x->shape[1]);
    }
    if (!(n->a.label_smoothing >= 0.0f && n->a.label_smoothing <= 1.0f))
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "label_smoothing %g outside [0, 1]", (double)n->a.label_smoothing);
    n->ndim = 0;
    return HS_OK;
}

static void plan_ce(const hs_graph *g, const graph_node *n, size_t saved[GRAPH_MAX_SAVED], size_t *fws, size_t *bws) {
    saved[0] = (size_t)IN(g, n, 0)->numel * sizeof(float);
}

static void ce_dims(const hs_graph *g, const graph_node *n, int64_t *N, int64_t *C, int64_t *S) {
    const graph_node *x = IN(g, n, 0);
    *N = x->shape[0];
    *C = x->shape[1];
    *S = prod(x->shape, 2, x->ndim);
}

static hs_status fwd_ce(hs_graph *g, graph_node *n) {
    int64_t N, C, S;
    ce_dims(g, n, &N, &C, &S);
    return hs_cross_entropy_forward(OUT(g, n), graph_buf_ptr(g, n->save_buf[0]), VAL(g, n, 0),
                                    graph_value_ptr(g, n->in[1]), n->nin == 3 ? VAL(g, n, 2) : NULL, N, C, S,
                                    n->a.label_smoothing);
}

static hs_status bwd_ce(hs_graph *g, graph_node *n) {
    int64_t N, C, S;
    ce_dims(g, n, &N, &C, &S);
    return hs_cross_entropy_backward(graph_input_grad(g, n, 0), DOUT(g, n)[0], graph_buf_ptr(g, n->save_buf[0]),
                                     graph_value_ptr(g, n->in[1]), n->nin == 3 ? VAL(g, n, 2) : NULL, N, C, S,
                                     n->a.label_smoothing);
}

static hs_status infer_pair_loss(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0), *t = IN(g, n, 1);
    int same = x->ndim == t->ndim;
    for (int d = 0; same && d < x->ndim; d++)
        same = x->shape[d] == t->shape[d];
    if (!same)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "input and target shapes differ");
    if (n->op == HS_OP_BCE_WITH_LOGITS && !(n->a.pos_weight >= 0.0f && isfinite(n->a.pos_weight)))
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "pos_weight %g must be finite and >= 0", (double)n->a.pos_weight);
    if (n->op == HS_OP_DICE_LOSS && !(n->a.smooth >= 0.0f && isfinite(n->a.smooth)))
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "smooth %g must be finite and >= 0", (double)n->a.smooth);
    n->ndim = 0;
    return HS_OK;
}

static hs_status fwd_pair_loss(hs_graph *g, graph_node *n) {
    const float *x = VAL(g, n, 0), *t = VAL(g, n, 1);
    int64_t k = IN(g, n, 0)->numel;
    switch (n->op) {
    case HS_OP_MSE: return hs_mse_forward(OUT(g, n), x, t, k);
    case HS_OP_BCE_WITH_LOGITS: return hs_bce_logits_forward(OUT(g, n), x, t, k, n->a.pos_weight);
    default: return hs_dice_logits_forward(OUT(g, n), x, t, k, n->a.smooth);
    }
}

static hs_status bwd_pair_loss(hs_graph *g, graph_node *n) {
    const float *x = VAL(g, n, 0), *t = VAL(g, n, 1);
    float *dx = graph_input_grad(g, n, 0), d = DOUT(g, n)[0];
    int64_t k = IN(g, n, 0)->numel;
    switch (n->op) {
    case HS_OP_MSE: return hs_mse_backward(dx, d, x, t, k);
    case HS_OP_BCE_WITH_LOGITS: return hs_bce_logits_backward(dx, d, x, t, k, n->a.pos_weight);
    default: return hs_dice_logits_backward(dx, d, x, t, k, n->a.smooth);
    }
}

// ---- conv2d / conv_transpose2d ----

static int pair0(int v, int def) { return v > 0 ? v : def; }

static hs_conv2d_params conv_params(const hs_op_attrs *a) {
    hs_conv2d_params p = {pair0(a->stride[0], 1), pair0(a->stride[1], 1), a->padding[0], a->padding[1],
                          a->dilation[0], a->dilation[1], a->groups};
    return p;
}

static hs_convt2d_params convt_params(const hs_op_attrs *a) {
    hs_convt2d_params p = {pair0(a->stride[0], 1), pair0(a->stride[1], 1), a->padding[0], a->padding[1],
                           a->output_padding[0], a->output_padding[1], a->dilation[0], a->dilation[1], a->groups};
    return p;
}

// Wrap a kernel's own shape-check failure so the message also lists every input shape.
static hs_status kernel_shape_fail(const hs_graph *g, graph_node *n) {
    char msg[512];
    hs_status code = hs_last_error()->code;
    const char *m = hs_last_error()->msg, *name = graph_op(n->op)->name;
    size_t k = strlen(name);
    if (strncmp(m, name, k) == 0 && m[k] == ':' && m[k + 1] == ' ')   // the kernel already names the op
        m += k + 2;
    snprintf(msg, sizeof msg, "%s", m);
    return GRAPH_FAIL(g, n, code == HS_OK ? HS_ERR_SHAPE : code, "%s", msg);
}

static hs_status infer_conv(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0), *w = IN(g, n, 1);
    if (x->ndim != 4 || w->ndim != 4)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "x must be (N,C,H,W) and weight 4-d");
    int64_t out[4];
    hs_status s;
    int64_t cout;
    if (n->op == HS_OP_CONV2D) {
        s = hs_conv2d_out_shape(out, x->shape, w->shape, conv_params(&n->a));
        cout = w->shape[0];
    } else {
        s = hs_conv_transpose2d_out_shape(out, x->shape, w->shape, convt_params(&n->a));
        cout = w->shape[1] * (n->a.groups > 0 ? n->a.groups : 1);
    }
    if (s != HS_OK)
        return kernel_shape_fail(g, n);
    if (n->nin == 3) {
        const graph_node *b = IN(g, n, 2);
        if (b->ndim != 1 || b->shape[0] != cout)
            return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "bias must be (%lld)", (long long)cout);
    }
    set_out(n, 4, out);
    return HS_OK;
}

static void plan_conv(const hs_graph *g, const graph_node *n, size_t saved[GRAPH_MAX_SAVED], size_t *fws, size_t *bws) {
    const graph_node *x = IN(g, n, 0), *w = IN(g, n, 1);
    size_t f = n->op == HS_OP_CONV2D ? hs_conv2d_workspace_size(x->shape, w->shape, conv_params(&n->a))
                                     : hs_conv_transpose2d_workspace_size(x->shape, w->shape, convt_params(&n->a));
    *fws = *bws = f * sizeof(float);
    if (n->fuse_bn >= 0)   // the folded batchnorm's scale and shift follow the conv workspace
        *fws += 2 * (size_t)n->shape[1] * sizeof(float);
}

static hs_status fwd_conv(hs_graph *g, graph_node *n) {
    const graph_node *x = IN(g, n, 0), *w = IN(g, n, 1);
    const float *b = n->nin == 3 ? VAL(g, n, 2) : NULL;
    float *ws = graph_buf_ptr(g, n->fws_buf);
    if (n->op == HS_OP_CONV2D && n->fuse_bn >= 0) {
        // eval batchnorm as hs_batchnorm2d_forward_eval computes it: y = x * scale + shift
        const graph_node *bn = &g->nodes[n->fuse_bn];
        int64_t C = n->shape[1];
        float *scale = ws + hs_conv2d_workspace_size(x->shape, w->shape, conv_params(&n->a)), *shift = scale + C;
        const float *gm = VAL(g, bn, 1), *bt = VAL(g, bn, 2), *rm = VAL(g, bn, 3), *rv = VAL(g, bn, 4);
        for (int64_t c = 0; c < C; c++) {
            double rstd = 1.0 / sqrt((double)rv[c] + (double)bn->a.eps);
            scale[c] = (float)(rstd * (double)gm[c]);
            shift[c] = (float)((double)bt[c] - (double)rm[c] * rstd * (double)gm[c]);
        }
        hs_conv2d_epilogue ep = {scale, shift, bn->fuse_relu};
        return hs_conv2d_forward_fused(OUT(g, n), VAL(g, n, 0), VAL(g, n, 1), b, x->shape, w->shape,
                                       conv_params(&n->a), &ep, ws);
    }
    if (n->op == HS_OP_CONV2D)
        return hs_conv2d_forward(OUT(g, n), VAL(g, n, 0), VAL(g, n, 1), b, x->shape, w->shape, conv_params(&n->a), ws);
    return hs_conv_transpose2d_forward(OUT(g, n), VAL(g, n, 0), VAL(g, n, 1), b, x->shape, w->shape,
                                       convt_params(&n->a), ws);
}

static hs_status bwd_conv(hs_graph *g, graph_node *n) {
    const graph_node *x = IN(g, n, 0), *w = IN(g, n, 1);
    float *dx = graph_input_grad(g, n, 0), *dw = graph_input_grad(g, n, 1);
    float *db = n->nin == 3 ? graph_input_grad(g, n, 2) : NULL;
    float *ws = graph_buf_ptr(g, n->bws_buf);
    int assign = (int)(n->assign & 1);
    if (n->op == HS_OP_CONV2D)
        return hs_conv2d_backward_assign(dx, dw, db, DOUT(g, n), VAL(g, n, 0), VAL(g, n, 1), x->shape, w->shape,
                                         conv_params(&n->a), ws, assign);
    return hs_conv_transpose2d_backward_assign(dx, dw, db, DOUT(g, n), VAL(g, n, 0), VAL(g, n, 1), x->shape, w->shape,
                                               convt_params(&n->a), ws, assign);
}

// ---- pooling ----

static hs_pool2d_params pool_params(const hs_op_attrs *a) {
    hs_pool2d_params p = {a->kernel_size[0], a->kernel_size[1], pair0(a->stride[0], a->kernel_size[0]),
                          pair0(a->stride[1], a->kernel_size[1]), a->padding[0], a->padding[1], a->ceil_mode,
                          a->count_include_pad};
    return p;
}

static hs_status infer_pool(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0);
    if (x->ndim != 4)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "x must be (N,C,H,W)");
    if (n->a.kernel_size[0] < 1 || n->a.kernel_size[1] < 1)
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "kernel_size %dx%d must be given and >= 1", n->a.kernel_size[0],
                          n->a.kernel_size[1]);
    int64_t out[4];
    if (hs_pool2d_out_shape(out, x->shape, pool_params(&n->a)) != HS_OK)
        return kernel_shape_fail(g, n);
    set_out(n, 4, out);
    return HS_OK;
}

static void plan_maxpool(const hs_graph *g, const graph_node *n, size_t saved[GRAPH_MAX_SAVED], size_t *fws,
                         size_t *bws) {
    saved[0] = (size_t)n->numel * sizeof(int32_t);
}

static hs_status fwd_maxpool(hs_graph *g, graph_node *n) {
    return hs_maxpool2d_forward(OUT(g, n), graph_buf_ptr(g, n->save_buf[0]), VAL(g, n, 0), IN(g, n, 0)->shape,
                                pool_params(&n->a));
}

static hs_status bwd_maxpool(hs_graph *g, graph_node *n) {
    return hs_maxpool2d_backward_assign(graph_input_grad(g, n, 0), DOUT(g, n), graph_buf_ptr(g, n->save_buf[0]),
                                        IN(g, n, 0)->shape, pool_params(&n->a), (int)(n->assign & 1));
}

static hs_status fwd_avgpool(hs_graph *g, graph_node *n) {
    return hs_avgpool2d_forward(OUT(g, n), VAL(g, n, 0), IN(g, n, 0)->shape, pool_params(&n->a));
}

static hs_status bwd_avgpool(hs_graph *g, graph_node *n) {
    return hs_avgpool2d_backward(graph_input_grad(g, n, 0), DOUT(g, n), IN(g, n, 0)->shape, pool_params(&n->a));
}

static hs_status infer_gap(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0);
    if (x->ndim != 4)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "x must be (N,C,H,W)");
    set_out(n, 2, x->shape);
    return HS_OK;
}

static hs_status fwd_gap(hs_graph *g, graph_node *n) {
    return hs_global_avgpool_forward(OUT(g, n), VAL(g, n, 0), IN(g, n, 0)->shape);
}

static hs_status bwd_gap(hs_graph *g, graph_node *n) {
    return hs_global_avgpool_backward(graph_input_grad(g, n, 0), DOUT(g, n), IN(g, n, 0)->shape);
}

// ---- batchnorm2d: inputs x, gamma, beta, running_mean, running_var ----

static void bn_shape(const graph_node *x, int64_t xs[4]) {
    xs[0] = x->shape[0];
    xs[1] = x->shape[1];
    xs[2] = x->ndim == 4 ? x->shape[2] : 1;
    xs[3] = x->ndim == 4 ? x->shape[3] : 1;
}

static hs_status infer_bn(hs_graph *g, graph_node *n) {
    static const char *const names[] = {"x", "gamma", "beta", "running_mean", "running_var"};
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0);
    if (x->ndim != 4 && x->ndim != 2)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "x must be (N,C,H,W) or (N,C)");
    for (int i = 1; i < 5; i++) {
        const graph_node *m = IN(g, n, i);
        if (m->ndim != 1 || m->shape[0] != x->shape[1])
            return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "%s must be (%lld)", names[i], (long long)x->shape[1]);
    }
    for (int i = 3; i < 5; i++)
        if (IN(g, n, i)->kind != HS_NODE_BUFFER && IN(g, n, i)->kind != HS_NODE_PARAM)
            return GRAPH_FAIL(g, n, HS_ERR_ARG, "%s must be a buffer node (updated in place in training)", names[i]);
    if (!(n->a.eps > 0.0f) || !(n->a.momentum >= 0.0f && n->a.momentum <= 1.0f))
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "need eps > 0 and momentum in [0, 1] (got %g, %g)", (double)n->a.eps,
                          (double)n->a.momentum);
    set_out(n, x->ndim, x->shape);
    return HS_OK;
}

static void plan_bn(const hs_graph *g, const graph_node *n, size_t saved[GRAPH_MAX_SAVED], size_t *fws, size_t *bws) {
    if (g->training)
        saved[0] = saved[1] = (size_t)IN(g, n, 0)->shape[1] * sizeof(float);
}

static hs_status fwd_bn(hs_graph *g, graph_node *n) {
    int64_t xs[4];
    bn_shape(IN(g, n, 0), xs);
    if (g->training)
        return (n->fuse_relu ? hs_batchnorm2d_relu_forward_train : hs_batchnorm2d_forward_train)(
            OUT(g, n), graph_buf_ptr(g, n->save_buf[0]), graph_buf_ptr(g, n->save_buf[1]), VAL(g, n, 3), VAL(g, n, 4),
            VAL(g, n, 0), VAL(g, n, 1), VAL(g, n, 2), xs, n->a.momentum, n->a.eps);
    return (n->fuse_relu ? hs_batchnorm2d_relu_forward_eval : hs_batchnorm2d_forward_eval)(
        OUT(g, n), VAL(g, n, 0), VAL(g, n, 1), VAL(g, n, 2), VAL(g, n, 3), VAL(g, n, 4), xs, n->a.eps);
}

static hs_status bwd_bn(hs_graph *g, graph_node *n) {
    int64_t xs[4];
    bn_shape(IN(g, n, 0), xs);
    float *dx = graph_input_grad(g, n, 0), *dgam = graph_input_grad(g, n, 1), *dbet = graph_input_grad(g, n, 2);
    if (g->training)   // fused: DOUT is the gradient of the ReLU's output (its mask recomputed from x)
        return hs_batchnorm2d_relu_backward_train(dx, dgam, dbet, DOUT(g, n), VAL(g, n, 0), VAL(g, n, 1), VAL(g, n, 2),
                                                  graph_buf_ptr(g, n->save_buf[0]), graph_buf_ptr(g, n->save_buf[1]),
                                                  xs, n->fuse_relu, (int)(n->assign & 1));
    return hs_batchnorm2d_backward_eval(dx, dgam, dbet, DOUT(g, n), VAL(g, n, 0), VAL(g, n, 1), VAL(g, n, 3),
                                        VAL(g, n, 4), xs, n->a.eps);
}

// ---- dropout ----

static hs_status infer_dropout(hs_graph *g, graph_node *n) {
    if (!(n->a.p >= 0.0f && n->a.p < 1.0f))
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "p %g must be in [0, 1)", (double)n->a.p);
    return infer_same(g, n);
}

static void plan_dropout(const hs_graph *g, const graph_node *n, size_t saved[GRAPH_MAX_SAVED], size_t *fws,
                         size_t *bws) {
    if (g->training)
        saved[0] = (size_t)n->numel;
}

static hs_status fwd_dropout(hs_graph *g, graph_node *n) {
    if (!g->training)
        return fwd_copy(g, n);
    // distinct masks for distinct dropout nodes sharing a seed; the step is the stream
    uint64_t seed = n->a.seed + (uint64_t)(n - g->nodes) * 0x9e3779b97f4a7c15ULL;
    return hs_dropout_forward(OUT(g, n), graph_buf_ptr(g, n->save_buf[0]), VAL(g, n, 0), n->numel, n->a.p, seed, g->step);
}

static hs_status bwd_dropout(hs_graph *g, graph_node *n) {
    if (!g->training)
        return bwd_copy(g, n);
    return hs_dropout_backward(graph_input_grad(g, n, 0), DOUT(g, n), graph_buf_ptr(g, n->save_buf[0]), n->numel, n->a.p);
}

// ---- upsample ----

static hs_status infer_upsample(hs_graph *g, graph_node *n) {
    HS_TRY(all_f32(g, n));
    const graph_node *x = IN(g, n, 0);
    if (x->ndim != 4)
        return GRAPH_FAIL(g, n, HS_ERR_SHAPE, "x must be (N,C,H,W)");
    if (n->a.scale_factor[0] < 1 || n->a.scale_factor[1] < 1)
        return GRAPH_FAIL(g, n, HS_ERR_ARG, "scale_factor %dx%d must be given, integer >= 1", n->a.scale_factor[0],
                          n->a.scale_factor[1]);
    set_out(n, 4, x->shape);
    n->shape[2] *= n->a.scale_factor[0];
    n->shape[3] *= n->a.scale_factor[1];
    return HS_OK;
}

static hs_status fwd_upsample(hs_graph *g, graph_node *n) {
    const int64_t *xs = IN(g, n, 0)->shape;
    if (n->op == HS_OP_UPSAMPLE_NEAREST)
        return hs_upsample_nearest_forward(OUT(g, n), VAL(g, n, 0), xs, n->a.scale_factor[0], n->a.scale_factor[1]);
    return hs_upsample_bilinear_forward(OUT(g, n), VAL(g, n, 0), xs, n->a.scale_factor[0], n->a.scale_factor[1]);
}

static hs_status bwd_upsample(hs_graph *g, graph_node *n) {
    const int64_t *xs = IN(g, n, 0)->shape;
    if (n->op == HS_OP_UPSAMPLE_NEAREST)
        return hs_upsample_nearest_backward(graph_input_grad(g, n, 0), DOUT(g, n), xs, n->a.scale_factor[0],
                                            n->a.scale_factor[1]);
    return hs_upsample_bilinear_backward(graph_input_grad(g, n, 0), DOUT(g, n), xs, n->a.scale_factor[0],
                                         n->a.scale_factor[1]);
}

// ---- the table ----

#define ALL 0xffffffffu

static const graph_op_desc ops[HS_OP_COUNT] = {
    //                         name              in     diff  need_in out dest  infer            plan          forward       backward
    [HS_OP_LINEAR] =          {"linear",          2, 3, 0x7,  0x3,    0,  0,    infer_linear,    NULL,         fwd_linear,   bwd_linear},
    [HS_OP_MATMUL] =          {"matmul",          2, 2, 0x3,  0x3,    0,  0,    infer_matmul,    NULL,         fwd_matmul,   bwd_matmul},
    [HS_OP_ADD] =             {"add",             2, 2, 0x3,  0x0,    0,  0,    infer_binary,    plan_binary,  fwd_binary,   bwd_binary},
    [HS_OP_SUB] =             {"sub",             2, 2, 0x3,  0x0,    0,  0,    infer_binary,    plan_binary,  fwd_binary,   bwd_binary},
    [HS_OP_MUL] =             {"mul",             2, 2, 0x3,  0x3,    0,  0,    infer_binary,    plan_binary,  fwd_binary,   bwd_binary},
    [HS_OP_DIV] =             {"div",             2, 2, 0x3,  0x3,    0,  0,    infer_binary,    plan_binary,  fwd_binary,   bwd_binary},
    [HS_OP_ADD_SCALAR] =      {"add_scalar",      1, 1, 0x1,  0x0,    0,  0,    infer_same,      NULL,         fwd_scalar,   bwd_scalar},
    [HS_OP_MUL_SCALAR] =      {"mul_scalar",      1, 1, 0x1,  0x0,    0,  0,    infer_same,      NULL,         fwd_scalar,   bwd_scalar},
    [HS_OP_RELU] =            {"relu",            1, 1, 0x1,  0x1,    0,  0,    infer_act,       NULL,         fwd_act,      bwd_act},
    [HS_OP_LEAKY_RELU] =      {"leaky_relu",      1, 1, 0x1,  0x1,    0,  0,    infer_act,       NULL,         fwd_act,      bwd_act},
    [HS_OP_SIGMOID] =         {"sigmoid",         1, 1, 0x1,  0x0,    1,  0,    infer_act,       NULL,         fwd_act,      bwd_act},
    [HS_OP_TANH] =            {"tanh",            1, 1, 0x1,  0x0,    1,  0,    infer_act,       NULL,         fwd_act,      bwd_act},
    [HS_OP_GELU] =            {"gelu",            1, 1, 0x1,  0x1,    0,  0,    infer_act,       NULL,         fwd_act,      bwd_act},
    [HS_OP_SILU] =            {"silu",            1, 1, 0x1,  0x1,    0,  0,    infer_act,       NULL,         fwd_act,      bwd_act},
    [HS_OP_SOFTMAX] =         {"softmax",         1, 1, 0x1,  0x0,    1,  0,    infer_softmax,   NULL,         fwd_softmax,  bwd_softmax},
    [HS_OP_LOG_SOFTMAX] =     {"log_softmax",     1, 1, 0x1,  0x0,    1,  0,    infer_softmax,   NULL,         fwd_softmax,  bwd_softmax},
    [HS_OP_SUM] =             {"sum",             1, 1, 0x1,  0x0,    0,  0,    infer_reduce,    NULL,         fwd_reduce,   bwd_reduce},
    [HS_OP_MEAN] =            {"mean",            1, 1, 0x1,  0x0,    0,  0,    infer_reduce,    NULL,         fwd_reduce,   bwd_reduce},
    [HS_OP_RESHAPE] =         {"reshape",         1, 1, 0x1,  0x0,    0,  0,    infer_reshape,   NULL,         fwd_copy,     bwd_copy},
    [HS_OP_FLATTEN] =         {"flatten",         1, 1, 0x1,  0x0,    0,  0,    infer_flatten,   NULL,         fwd_copy,     bwd_copy},
    [HS_OP_CONCAT] =          {"concat",          1, -1, ALL, 0x0,    0,  0,    infer_concat,    NULL,         fwd_concat,   bwd_concat},
    [HS_OP_CROSS_ENTROPY] =   {"cross_entropy",   2, 3, 0x1,  0x6,    0,  0,    infer_ce,        plan_ce,      fwd_ce,       bwd_ce},
    [HS_OP_MSE] =             {"mse",             2, 2, 0x1,  0x3,    0,  0,    infer_pair_loss, NULL,         fwd_pair_loss, bwd_pair_loss},
    [HS_OP_BCE_WITH_LOGITS] = {"bce_with_logits", 2, 2, 0x1,  0x3,    0,  0,    infer_pair_loss, NULL,         fwd_pair_loss, bwd_pair_loss},
    [HS_OP_DICE_LOSS] =       {"dice_loss",       2, 2, 0x1,  0x3,    0,  0,    infer_pair_loss, NULL,         fwd_pair_loss, bwd_pair_loss},
    [HS_OP_CONV2D] =          {"conv2d",          2, 3, 0x7,  0x3,    0,  0x2,  infer_conv,      plan_conv,    fwd_conv,     bwd_conv},
    [HS_OP_CONV_TRANSPOSE2D] = {"conv_transpose2d", 2, 3, 0x7, 0x3,   0,  0x2,  infer_conv,      plan_conv,    fwd_conv,     bwd_conv},
    [HS_OP_MAXPOOL2D] =       {"maxpool2d",       1, 1, 0x1,  0x0,    0,  0,    infer_pool,      plan_maxpool, fwd_maxpool,  bwd_maxpool},
    [HS_OP_AVGPOOL2D] =       {"avgpool2d",       1, 1, 0x1,  0x0,    0,  0,    infer_pool,      NULL,         fwd_avgpool,  bwd_avgpool},
    [HS_OP_GLOBAL_AVGPOOL] =  {"global_avgpool",  1, 1, 0x1,  0x0,    0,  0,    infer_gap,       NULL,         fwd_gap,      bwd_gap},
    [HS_OP_BATCHNORM2D] =     {"batchnorm2d",     5, 5, 0x7,  0x1b,   0,  0x0,  infer_bn,        plan_bn,      fwd_bn,       bwd_bn},
    [HS_OP_DROPOUT] =         {"dropout",         1, 1, 0x1,  0x0,    0,  0,    infer_dropout,   plan_dropout, fwd_dropout,  bwd_dropout},
    [HS_OP_UPSAMPLE_NEAREST] = {"upsample_nearest", 1, 1, 0x1, 0x0,   0,  0,    infer_upsample,  NULL,         fwd_upsample, bwd_upsample},
    [HS_OP_UPSAMPLE_BILINEAR] = {"upsample_bilinear", 1, 1, 0x1, 0x0, 0,  0,    infer_upsample,  NULL,         fwd_upsample, bwd_upsample},
};

const graph_op_desc *graph_op(hs_opkind k) { return &ops[k]; }

uint32_t graph_op_assign_mask(hs_opkind k, int training) {
    switch (k) {
    case HS_OP_RESHAPE:
    case HS_OP_FLATTEN:
    case HS_OP_MAXPOOL2D:
    case HS_OP_CONV2D:
    case HS_OP_CONV_TRANSPOSE2D:
        return 0x1;
    case HS_OP_BATCHNORM2D:
        return training ? 0x1 : 0x0;
    case HS_OP_CONCAT:
        return ALL;
    default:
        return 0;
    }
}

const char *hs_opkind_name(hs_opkind k) { return (unsigned)k < HS_OP_COUNT ? ops[k].name : NULL; }

hs_status hs_opkind_from_name(hs_opkind *k, const char *name) {
    if (name && strcmp(name, "cat") == 0)
        name = "concat";
    for (int i = 0; name && i < HS_OP_COUNT; i++) {
        if (strcmp(ops[i].name, name) == 0) {
            *k = (hs_opkind)i;
            return HS_OK;
        }
    }
    return HS_FAIL(HS_ERR_ARG, "unknown op '%s'", name ? name : "(null)");
}

void hs_op_attrs_init(hs_op_attrs *a) {
    memset(a, 0, sizeof *a);
    a->dilation[0] = a->dilation[1] = 1;
    a->groups = 1;
    a->count_include_pad = 1;
    a->momentum = 0.1f;
    a->eps = 1e-5f;
    a->p = 0.5f;
    a->start_dim = 1;
    a->end_dim = -1;
    a->negative_slope = 0.01f;
    a->pos_weight = 1.0f;
    a->smooth = 1.0f;
}
