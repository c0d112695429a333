// core/graph.c: graph construction, compile (pruning, backward schedule, liveness, arena plan)
// and the forward/backward drivers. The per-op shape rules and kernels calls are in graph_ops.c.
// Nothing here allocates after hs_graph_compile.
#include "graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "graph_impl.h"
#include "parallel.h"

#define ALIGN 64

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t align_up(size_t n) { return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1); }

hs_status hs_graph_new(hs_graph **out) {
    *out = hs_calloc(1, sizeof **out);
    if (!*out)
        return HS_FAIL(HS_ERR_NOMEM, "graph: out of memory");
    (*out)->loss = -1;
    return HS_OK;
}

void hs_graph_free(hs_graph *g) {
    if (!g)
        return;
    for (int i = 0; i < g->n; i++)
        hs_free(g->nodes[i].in);
    hs_free(g->nodes);
    hs_free(g->bufs);
    hs_free(g->arena);
    hs_free(g->fwd_order);
    hs_free(g->bwd_order);
    hs_free(g->zero_list);
    hs_free(g->input_set);
    hs_free(g->prof);
    hs_free(g);
}

// Grow an array of elem-sized records to hold at least need (doubling), through hs_alloc.
static hs_status grow(void **arr, int *cap, int need, size_t elem) {
    if (need <= *cap)
        return HS_OK;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *p = hs_alloc((size_t)nc * elem);
    if (!p)
        return HS_FAIL(HS_ERR_NOMEM, "graph: out of memory");
    if (*arr)
        memcpy(p, *arr, (size_t)*cap * elem);
    hs_free(*arr);
    *arr = p;
    *cap = nc;
    return HS_OK;
}

static hs_status check_building(const hs_graph *g, const char *what) {
    if (!g)
        return HS_FAIL(HS_ERR_ARG, "graph %s: NULL graph", what);
    if (g->compiled)
        return HS_FAIL(HS_ERR_STATE, "graph %s: the graph is already compiled; build a new graph", what);
    return HS_OK;
}

static hs_status check_node(const hs_graph *g, int32_t id, const char *what) {
    if (!g)
        return HS_FAIL(HS_ERR_ARG, "graph %s: NULL graph", what);
    if (id < 0 || id >= g->n)
        return HS_FAIL(HS_ERR_ARG, "graph %s: node %d does not exist (graph has %d nodes)", what, (int)id, g->n);
    return HS_OK;
}

// Append a zeroed node; *id receives its index.
static hs_status new_node(hs_graph *g, int32_t *id, hs_node_kind kind) {
    HS_TRY(grow((void **)&g->nodes, &g->cap, g->n + 1, sizeof *g->nodes));
    graph_node *n = &g->nodes[g->n];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    hs_op_attrs_init(&n->a);
    n->val_buf = n->grad_buf = n->fws_buf = n->bws_buf = -1;
    n->alias = -1;
    n->fuse_bn = -1;
    for (int i = 0; i < GRAPH_MAX_SAVED; i++)
        n->save_buf[i] = -1;
    for (int i = 0; i < GRAPH_MAX_SCRATCH; i++)
        n->scratch_buf[i] = -1;
    *id = g->n;
    return HS_OK;
}

static void set_shape(graph_node *n, int ndim, const int64_t *shape) {
    n->ndim = ndim;
    n->numel = 1;
    for (int i = 0; i < ndim; i++) {
        n->shape[i] = shape[i];
        n->numel *= shape[i];
    }
}

static hs_status check_leaf_shape(const char *what, int ndim, const int64_t *shape) {
    char s[160];
    if (ndim < 0 || ndim > HS_MAX_DIMS || (ndim > 0 && !shape))
        return HS_FAIL(HS_ERR_ARG, "graph %s: %d dims (0..%d supported)", what, ndim, HS_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return HS_FAIL(HS_ERR_SHAPE, "graph %s: shape %s has a size < 1", what, hs_shape_str(ndim, shape, s, sizeof s));
        if (n > INT64_MAX / 16 / shape[i])
            return HS_FAIL(HS_ERR_SHAPE, "graph %s: shape %s is too large", what, hs_shape_str(ndim, shape, s, sizeof s));
        n *= shape[i];
    }
    return HS_OK;
}

hs_status hs_graph_input(hs_graph *g, int32_t *node, hs_dtype dt, int ndim, const int64_t *shape) {
    HS_TRY(check_building(g, "input"));
    if (dt != HS_DTYPE_F32 && dt != HS_DTYPE_I64)
        return HS_FAIL(HS_ERR_DTYPE, "graph input: dtype %s not supported (F32 data or I64 class targets)",
                       hs_dtype_name(dt));
    HS_TRY(check_leaf_shape("input", ndim, shape));
    int32_t id;
    HS_TRY(new_node(g, &id, HS_NODE_INPUT));
    graph_node *n = &g->nodes[id];
    n->dtype = dt;
    set_shape(n, ndim, shape);
    g->n++;
    *node = id;
    return HS_OK;
}

hs_status hs_graph_require_grad(hs_graph *g, int32_t node) {
    HS_TRY(check_building(g, "require_grad"));
    HS_TRY(check_node(g, node, "require_grad"));
    graph_node *n = &g->nodes[node];
    if (n->kind != HS_NODE_INPUT || n->dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_ARG, "graph require_grad: node %d is not an F32 input", (int)node);
    n->requires_grad = 1;
    return HS_OK;
}

static hs_status check_ext(const char *what, const hs_tensor *t, const char *role) {
    if (!t)
        return HS_FAIL(HS_ERR_ARG, "graph %s: %s tensor is NULL", what, role);
    if (t->dtype != HS_DTYPE_F32 || !hs_tensor_is_contiguous(t))
        return HS_FAIL(HS_ERR_DTYPE, "graph %s: %s must be a contiguous F32 tensor (got %s%s)", what, role,
                       hs_dtype_name(t->dtype), hs_tensor_is_contiguous(t) ? "" : ", not contiguous");
    return check_leaf_shape(what, t->ndim, t->shape);
}

hs_status hs_graph_param(hs_graph *g, int32_t *node, hs_tensor *value, hs_tensor *grad) {
    char a[160], b[160];
    HS_TRY(check_building(g, "param"));
    HS_TRY(check_ext("param", value, "value"));
    if (grad) {
        HS_TRY(check_ext("param", grad, "grad"));
        if (!hs_tensor_same_shape(value, grad))
            return HS_FAIL(HS_ERR_SHAPE, "graph param: grad %s does not match value %s",
                           hs_tensor_shape_str(grad, a, sizeof a), hs_tensor_shape_str(value, b, sizeof b));
    }
    int32_t id;
    HS_TRY(new_node(g, &id, HS_NODE_PARAM));
    graph_node *n = &g->nodes[id];
    n->dtype = HS_DTYPE_F32;
    set_shape(n, value->ndim, value->shape);
    n->ext = value;
    n->ext_grad = grad;
    g->n++;
    *node = id;
    return HS_OK;
}

hs_status hs_graph_buffer(hs_graph *g, int32_t *node, hs_tensor *value) {
    HS_TRY(check_building(g, "buffer"));
    HS_TRY(check_ext("buffer", value, "value"));
    int32_t id;
    HS_TRY(new_node(g, &id, HS_NODE_BUFFER));
    graph_node *n = &g->nodes[id];
    n->dtype = HS_DTYPE_F32;
    set_shape(n, value->ndim, value->shape);
    n->ext = value;
    g->n++;
    *node = id;
    return HS_OK;
}

hs_status graph_shape_fail_at(const hs_graph *g, const graph_node *n, hs_status code, const char *file, int line,
                              const char *fmt, ...) {
    char why[300], ins[600], s[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    size_t k = 0;
    ins[0] = '\0';
    for (int i = 0; i < n->nin && k < sizeof ins; i++) {
        const graph_node *m = &g->nodes[n->in[i]];
        k += (size_t)snprintf(ins + k, sizeof ins - k, "%s%s%s", i ? ", " : "", hs_shape_str(m->ndim, m->shape, s, sizeof s),
                              m->dtype == HS_DTYPE_F32 ? "" : " I64");
    }
    return hs_fail_at(code, file, line, "%s: %s (inputs: %s)", graph_op(n->op)->name, why, n->nin ? ins : "none");
}

hs_status hs_graph_op(hs_graph *g, int32_t *node, hs_opkind op, const int32_t *inputs, int nin,
                      const hs_op_attrs *attrs) {
    HS_TRY(check_building(g, "op"));
    if ((unsigned)op >= HS_OP_COUNT)
        return HS_FAIL(HS_ERR_ARG, "graph op: unknown op kind %d", (int)op);
    const graph_op_desc *d = graph_op(op);
    if (nin < d->min_in || (d->max_in >= 0 && nin > d->max_in)) {
        if (d->max_in < 0)
            return HS_FAIL(HS_ERR_ARG, "%s: %d inputs given, expected at least %d", d->name, nin, d->min_in);
        if (d->min_in == d->max_in)
            return HS_FAIL(HS_ERR_ARG, "%s: %d inputs given, expected %d", d->name, nin, d->min_in);
        return HS_FAIL(HS_ERR_ARG, "%s: %d inputs given, expected %d to %d", d->name, nin, d->min_in, d->max_in);
    }
    if (nin > 0 && !inputs)
        return HS_FAIL(HS_ERR_ARG, "%s: NULL input list", d->name);
    for (int i = 0; i < nin; i++)
        if (inputs[i] < 0 || inputs[i] >= g->n)
            return HS_FAIL(HS_ERR_ARG, "%s: input %d is node %d, which does not exist (graph has %d nodes)", d->name,
                           i + 1, (int)inputs[i], g->n);
    int32_t id;
    HS_TRY(new_node(g, &id, HS_NODE_OP));
    graph_node *n = &g->nodes[id];
    n->op = op;
    if (attrs)
        n->a = *attrs;
    n->in = hs_alloc((size_t)(nin > 0 ? nin : 1) * sizeof *n->in);
    if (!n->in)
        return HS_FAIL(HS_ERR_NOMEM, "graph op: out of memory");
    if (nin > 0)
        memcpy(n->in, inputs, (size_t)nin * sizeof *inputs);
    n->nin = nin;
    n->dtype = HS_DTYPE_F32;
    hs_status s = d->infer(g, n);
    if (s != HS_OK) {
        hs_free(n->in);
        n->in = NULL;
        return s;
    }
    n->numel = 1;
    for (int i = 0; i < n->ndim; i++)
        n->numel *= n->shape[i];
    g->n++;
    *node = id;
    return HS_OK;
}

int hs_graph_num_nodes(const hs_graph *g) { return g ? g->n : 0; }

hs_status hs_graph_node(const hs_graph *g, int32_t node, hs_graph_node_info *info) {
    HS_TRY(check_node(g, node, "node"));
    const graph_node *n = &g->nodes[node];
    memset(info, 0, sizeof *info);
    info->kind = n->kind;
    info->op = n->op;
    info->dtype = n->dtype;
    info->ndim = n->ndim;
    memcpy(info->shape, n->shape, sizeof n->shape);
    info->nin = n->nin;
    info->inputs = n->in;
    info->needs_grad = n->has_grad;
    return HS_OK;
}

hs_status hs_graph_keep_all(hs_graph *g, int keep) {
    HS_TRY(check_building(g, "keep_all"));
    g->keep_all = keep != 0;
    return HS_OK;
}

// ---- compile ----

static hs_status add_buf(hs_graph *g, int *idx, size_t bytes, int start, int end) {
    HS_TRY(grow((void **)&g->bufs, &g->bufcap, g->nbufs + 1, sizeof *g->bufs));
    graph_buf *b = &g->bufs[g->nbufs];
    b->bytes = align_up(bytes ? bytes : 1);
    b->start = start;
    b->end = end;
    b->off = 0;
    *idx = g->nbufs++;
    return HS_OK;
}

static int cmp_by_size(const void *pa, const void *pb, const graph_buf *bufs) {
    const graph_buf *a = &bufs[*(const int *)pa], *b = &bufs[*(const int *)pb];
    if (a->bytes != b->bytes)
        return a->bytes > b->bytes ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return *(const int *)pa - *(const int *)pb;
}

// qsort has no context argument in C11: a small insertion sort is enough (compile time only).
static void sort_by_size(int *order, int n, const graph_buf *bufs) {
    for (int i = 1; i < n; i++) {
        int v = order[i], j = i - 1;
        while (j >= 0 && cmp_by_size(&order[j], &v, bufs) > 0) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = v;
    }
}

// First fit of intervals: buffers placed largest first, each at the lowest offset where it does
// not overlap (in bytes) any already placed buffer whose live interval intersects its own.
static hs_status place_buffers(hs_graph *g) {
    int nb = g->nbufs;
    int *order = hs_alloc((size_t)(nb ? nb : 1) * sizeof *order);
    int *placed = hs_alloc((size_t)(nb ? nb : 1) * sizeof *placed);
    int *conf = hs_alloc((size_t)(nb ? nb : 1) * sizeof *conf);
    if (!order || !placed || !conf) {
        hs_free(order);
        hs_free(placed);
        hs_free(conf);
        return HS_FAIL(HS_ERR_NOMEM, "graph compile: out of memory");
    }
    for (int i = 0; i < nb; i++)
        order[i] = i;
    sort_by_size(order, nb, g->bufs);
    int np = 0;
    size_t total = 0, naive = 0;
    for (int k = 0; k < nb; k++) {
        graph_buf *b = &g->bufs[order[k]];
        naive += b->bytes;
        int nc = 0;
        for (int j = 0; j < np; j++) {
            const graph_buf *o = &g->bufs[placed[j]];
            if (o->start <= b->end && b->start <= o->end)
                conf[nc++] = placed[j];
        }
        // sort conflicts by offset (insertion sort), then scan the gaps
        for (int i = 1; i < nc; i++) {
            int v = conf[i], j = i - 1;
            while (j >= 0 && g->bufs[conf[j]].off > g->bufs[v].off) {
                conf[j + 1] = conf[j];
                j--;
            }
            conf[j + 1] = v;
        }
        size_t off = 0;
        for (int i = 0; i < nc; i++) {
            const graph_buf *o = &g->bufs[conf[i]];
            if (o->off >= off + b->bytes)
                break;
            if (o->off + o->bytes > off)
                off = o->off + o->bytes;
        }
        b->off = off;
        if (off + b->bytes > total)
            total = off + b->bytes;
        placed[np++] = order[k];
    }
    hs_free(order);
    hs_free(placed);
    hs_free(conf);
    g->arena_bytes = total;
    g->naive_bytes = naive;
    return HS_OK;
}

// The node whose buffers hold id's value and gradient (id itself unless folded into another op).
static int32_t canon(const hs_graph *g, int32_t id) {
    while (g->nodes[id].alias >= 0)   // relu -> batchnorm -> conv2d at most
        id = g->nodes[id].alias;
    return id;
}

static size_t node_bytes(const graph_node *n) { return (size_t)n->numel * hs_dtype_size(n->dtype); }

static hs_status compile_plan(hs_graph *g, int32_t loss, const int32_t *outputs, int nout, int training) {
    const int N = g->n;
    g->training = training != 0;
    g->loss = loss;
    // 1. liveness of nodes: ancestors of the outputs and the loss
    for (int i = 0; i < nout; i++)
        g->nodes[outputs[i]].live = g->nodes[outputs[i]].kept = 1;
    if (loss >= 0)
        g->nodes[loss].live = g->nodes[loss].kept = 1;
    for (int i = N - 1; i >= 0; i--) {
        graph_node *n = &g->nodes[i];
        if (!n->live)
            continue;
        for (int j = 0; j < n->nin; j++)
            g->nodes[n->in[j]].live = 1;
    }
    // 2. which nodes does a gradient reach: trainable leaves and ops over them (differentiable
    // inputs only), restricted to ancestors of the loss
    uint8_t *anc = hs_calloc((size_t)(N ? N : 1), 1);
    if (!anc)
        return HS_FAIL(HS_ERR_NOMEM, "graph compile: out of memory");
    if (loss >= 0) {
        anc[loss] = 1;
        for (int i = N - 1; i >= 0; i--)
            if (anc[i])
                for (int j = 0; j < g->nodes[i].nin; j++)
                    anc[g->nodes[i].in[j]] = 1;
    }
    for (int i = 0; i < N; i++) {
        graph_node *n = &g->nodes[i];
        if (n->kind == HS_NODE_PARAM)
            n->needs_grad = n->ext_grad != NULL;
        else if (n->kind == HS_NODE_INPUT)
            n->needs_grad = n->requires_grad;
        else if (n->kind == HS_NODE_OP) {
            uint32_t dm = graph_op(n->op)->diff_mask;
            for (int j = 0; j < n->nin; j++)
                if (((dm >> (j < 31 ? j : 31)) & 1) && g->nodes[n->in[j]].needs_grad)
                    n->needs_grad = 1;
        }
        n->has_grad = anc[i] && n->needs_grad;
        n->in_bwd = n->has_grad && n->kind == HS_NODE_OP;
    }
    hs_free(anc);
    // 2b. fusion: a batchnorm2d whose only consumer is a relu computes max(0, bn(x)) itself; the
    // relu becomes an alias of it (same value and gradient buffers, no forward or backward of its
    // own). Not with keep_all (the batchnorm's own output would not be visible), not for an eval
    // graph that differentiates through the batchnorm, and not when HISTOPS_NO_FUSE=1.
    const char *nf = getenv("HISTOPS_NO_FUSE");
    if (!g->keep_all && !(nf && nf[0] && strcmp(nf, "0") != 0)) {
        int *uses = hs_calloc((size_t)(N ? N : 1), sizeof *uses);
        if (!uses)
            return HS_FAIL(HS_ERR_NOMEM, "graph compile: out of memory");
        for (int i = 0; i < N; i++)
            if (g->nodes[i].kind == HS_NODE_OP && g->nodes[i].live)
                for (int j = 0; j < g->nodes[i].nin; j++)
                    uses[g->nodes[i].in[j]]++;
        for (int i = 0; i < N; i++) {
            graph_node *r = &g->nodes[i];
            if (r->kind != HS_NODE_OP || !r->live || r->op != HS_OP_RELU)
                continue;
            graph_node *b = &g->nodes[r->in[0]];
            if (b->kind != HS_NODE_OP || b->op != HS_OP_BATCHNORM2D || uses[r->in[0]] != 1 || b->kept || b->fuse_relu ||
                (!g->training && b->in_bwd))
                continue;
            b->fuse_relu = 1;
            b->kept = r->kept;
            r->alias = r->in[0];
            r->in_bwd = 0;
        }
        // an inference graph folds an eval-mode batchnorm (with its ReLU) into the conv2d in
        // front of it: the conv applies the per-channel scale and shift while its tiles are hot
        for (int i = 0; i < N && !g->training; i++) {
            graph_node *b = &g->nodes[i];
            if (b->kind != HS_NODE_OP || !b->live || b->op != HS_OP_BATCHNORM2D || b->in_bwd || b->alias >= 0)
                continue;
            graph_node *c = &g->nodes[b->in[0]];
            if (c->kind != HS_NODE_OP || c->op != HS_OP_CONV2D || c->in_bwd || uses[b->in[0]] != 1 || c->kept ||
                c->alias >= 0 || c->ndim != 4)
                continue;
            c->fuse_bn = i;
            c->kept = b->kept;
            b->alias = b->in[0];
        }
        hs_free(uses);
    }
    // 3. timeline: step 0 = inputs set; forward ops 1..F; seed step; backward ops; end step
    g->fwd_order = hs_alloc((size_t)(N ? N : 1) * sizeof *g->fwd_order);
    g->bwd_order = hs_alloc((size_t)(N ? N : 1) * sizeof *g->bwd_order);
    g->input_set = hs_calloc((size_t)(N ? N : 1), 1);
    if (!g->fwd_order || !g->bwd_order || !g->input_set)
        return HS_FAIL(HS_ERR_NOMEM, "graph compile: out of memory");
    int step = 1;
    for (int i = 0; i < N; i++) {
        graph_node *n = &g->nodes[i];
        if (n->kind == HS_NODE_OP && n->live && n->alias < 0) {
            n->fwd_step = step++;
            g->fwd_order[g->nfwd++] = i;
        }
    }
    g->seed_step = step++;
    for (int i = N - 1; i >= 0; i--) {
        graph_node *n = &g->nodes[i];
        if (n->in_bwd) {
            n->bwd_step = step++;
            g->bwd_order[g->nbwd++] = i;
        }
    }
    g->end_step = step;
    const int END = g->end_step;
    // 4. last use of every value, first accumulation of every gradient (through aliases), and
    // which op writes each gradient first (it may assign instead of add: no zero fill needed)
    int *last = hs_alloc((size_t)(N ? N : 1) * sizeof *last);
    int *first_acc = hs_alloc((size_t)(N ? N : 1) * sizeof *first_acc);
    int *first_w = hs_alloc((size_t)(N ? N : 1) * 2 * sizeof *first_w);   // (node, slot); node -2: shared
    if (!last || !first_acc || !first_w) {
        hs_free(last);
        hs_free(first_acc);
        hs_free(first_w);
        return HS_FAIL(HS_ERR_NOMEM, "graph compile: out of memory");
    }
    for (int i = 0; i < N; i++) {
        last[i] = g->nodes[i].fwd_step;
        first_acc[i] = END;
        first_w[2 * i] = -1;
    }
    for (int i = 0; i < N; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->kind != HS_NODE_OP || !n->live || n->alias >= 0)
            continue;
        const graph_op_desc *d = graph_op(n->op);
        for (int j = 0; j < n->nin; j++) {
            int32_t m = canon(g, n->in[j]);
            if (last[m] < n->fwd_step)
                last[m] = n->fwd_step;
            int jb = j < 31 ? j : 31;
            if (n->in_bwd && ((d->need_in_mask >> jb) & 1) && last[m] < n->bwd_step)
                last[m] = n->bwd_step;
            if (n->in_bwd && ((d->diff_mask >> jb) & 1) && g->nodes[m].has_grad) {
                if (first_acc[m] > n->bwd_step) {
                    first_acc[m] = n->bwd_step;
                    first_w[2 * m] = i;
                    first_w[2 * m + 1] = j;
                } else if (first_acc[m] == n->bwd_step) {
                    first_w[2 * m] = -2;   // the same op reaches it through two slots
                }
            }
        }
        if (n->in_bwd && d->need_out && last[i] < n->bwd_step)   // (a fused ReLU's mask is recomputed)
            last[i] = n->bwd_step;
    }
    if (loss >= 0 && g->nodes[canon(g, loss)].has_grad) {
        first_acc[canon(g, loss)] = g->seed_step;
        first_w[2 * canon(g, loss)] = -1;
    }
    uint8_t *no_zero = hs_calloc((size_t)(N ? N : 1), 1);
    if (!no_zero) {
        hs_free(last);
        hs_free(first_acc);
        hs_free(first_w);
        return HS_FAIL(HS_ERR_NOMEM, "graph compile: out of memory");
    }
    for (int m = 0; m < N; m++) {
        int w = first_w[2 * m], j = first_w[2 * m + 1];
        if (w < 0 || j >= 32 || g->nodes[m].kind == HS_NODE_PARAM)
            continue;
        if ((graph_op_assign_mask(g->nodes[w].op, g->training) >> j) & 1) {
            g->nodes[w].assign |= 1u << j;
            no_zero[m] = 1;
        }
    }
    hs_free(first_w);
    // 5. buffers
    hs_status s = HS_OK;
    for (int i = 0; i < N && s == HS_OK; i++) {
        graph_node *n = &g->nodes[i];
        if (!n->live || n->alias >= 0)
            continue;
        if (n->kind == HS_NODE_INPUT) {
            n->kept = 1;
            s = add_buf(g, &n->val_buf, node_bytes(n), 0, END);
            if (s == HS_OK && n->has_grad)
                s = add_buf(g, &n->grad_buf, node_bytes(n), g->seed_step, END);
            continue;
        }
        if (n->kind != HS_NODE_OP)
            continue;
        int keep = n->kept || g->keep_all;
        s = add_buf(g, &n->val_buf, node_bytes(n), n->fwd_step, keep ? END : last[i]);
        if (s == HS_OK && n->has_grad) {
            int a = first_acc[i] < END ? first_acc[i] : g->seed_step;
            s = add_buf(g, &n->grad_buf, node_bytes(n), g->keep_all ? g->seed_step : a,
                        g->keep_all ? END : n->bwd_step);
        }
        const graph_op_desc *d = graph_op(n->op);
        size_t saved[GRAPH_MAX_SAVED] = {0}, fws = 0, bws = 0;
        if (d->plan)
            d->plan(g, n, saved, &fws, &bws);
        int send = n->in_bwd ? n->bwd_step : n->fwd_step;
        for (int k = 0; k < GRAPH_MAX_SAVED && s == HS_OK; k++)
            if (saved[k])
                s = add_buf(g, &n->save_buf[k], saved[k], n->fwd_step, g->keep_all ? END : send);
        if (s == HS_OK && fws)
            s = add_buf(g, &n->fws_buf, fws, n->fwd_step, n->fwd_step);
        if (s == HS_OK && bws && n->in_bwd)
            s = add_buf(g, &n->bws_buf, bws, n->bwd_step, n->bwd_step);
        if (n->in_bwd)
            for (int j = 0; j < n->nin && j < GRAPH_MAX_SCRATCH && s == HS_OK; j++)
                if (((d->dest_mask >> j) & 1) && !g->nodes[n->in[j]].has_grad)
                    s = add_buf(g, &n->scratch_buf[j], node_bytes(&g->nodes[n->in[j]]), n->bwd_step, n->bwd_step);
    }
    hs_free(last);
    for (int i = 0; i < N; i++) {   // aliases share their target's buffers
        graph_node *n = &g->nodes[i];
        if (n->alias >= 0) {
            n->val_buf = g->nodes[canon(g, i)].val_buf;
            n->grad_buf = g->nodes[canon(g, i)].grad_buf;
        }
    }
    // 6. which arena gradients to zero at which step (scratch destinations are zeroed too: the
    // kernels add into them)
    if (s == HS_OK) {
        int cap = 0;
        for (int i = 0; i < N; i++)
            cap += 1 + GRAPH_MAX_SCRATCH;
        g->zero_list = hs_alloc((size_t)cap * sizeof *g->zero_list);
        if (!g->zero_list)
            s = HS_FAIL(HS_ERR_NOMEM, "graph compile: out of memory");
    }
    if (s == HS_OK) {
        for (int i = 0; i < N; i++) {
            const graph_node *n = &g->nodes[i];
            if (n->grad_buf >= 0 && n->alias < 0 && !no_zero[i])
                g->zero_list[g->nzero++] = n->grad_buf;
            for (int j = 0; j < GRAPH_MAX_SCRATCH; j++)
                if (n->scratch_buf[j] >= 0)
                    g->zero_list[g->nzero++] = n->scratch_buf[j];
        }
        for (int i = 1; i < g->nzero; i++) {   // by start step
            int v = g->zero_list[i], j = i - 1;
            while (j >= 0 && g->bufs[g->zero_list[j]].start > g->bufs[v].start) {
                g->zero_list[j + 1] = g->zero_list[j];
                j--;
            }
            g->zero_list[j + 1] = v;
        }
    }
    hs_free(first_acc);
    hs_free(no_zero);
    if (s != HS_OK)
        return s;
    // 7. one arena for everything
    HS_TRY(place_buffers(g));
    g->arena = hs_calloc(1, g->arena_bytes ? g->arena_bytes : 1);
    if (!g->arena)
        return HS_FAIL(HS_ERR_NOMEM, "graph compile: cannot allocate the %zu-byte arena", g->arena_bytes);
    return HS_OK;
}

static void reset_plan(hs_graph *g) {
    hs_free(g->bufs);
    hs_free(g->arena);
    hs_free(g->fwd_order);
    hs_free(g->bwd_order);
    hs_free(g->zero_list);
    hs_free(g->input_set);
    hs_free(g->prof);
    g->prof = NULL;
    g->bufs = NULL;
    g->arena = NULL;
    g->fwd_order = g->bwd_order = g->zero_list = NULL;
    g->input_set = NULL;
    g->nbufs = g->bufcap = g->nfwd = g->nbwd = g->nzero = 0;
    g->arena_bytes = g->naive_bytes = 0;
    for (int i = 0; i < g->n; i++) {
        graph_node *n = &g->nodes[i];
        n->live = n->needs_grad = n->has_grad = n->in_bwd = n->kept = 0;
        n->fwd_step = n->bwd_step = 0;
        n->val_buf = n->grad_buf = n->fws_buf = n->bws_buf = -1;
        n->alias = -1;
        n->fuse_bn = -1;
        n->fuse_relu = 0;
        n->assign = 0;
        for (int k = 0; k < GRAPH_MAX_SAVED; k++)
            n->save_buf[k] = -1;
        for (int k = 0; k < GRAPH_MAX_SCRATCH; k++)
            n->scratch_buf[k] = -1;
    }
}

hs_status hs_graph_compile(hs_graph *g, int32_t loss, const int32_t *outputs, int nout, int training) {
    HS_TRY(check_building(g, "compile"));
    if (nout < 0 || (nout > 0 && !outputs))
        return HS_FAIL(HS_ERR_ARG, "graph compile: bad output list (%d outputs)", nout);
    if (loss < -1 || loss >= g->n)
        return HS_FAIL(HS_ERR_ARG, "graph compile: loss node %d does not exist (graph has %d nodes)", (int)loss, g->n);
    if (loss < 0 && nout == 0)
        return HS_FAIL(HS_ERR_ARG, "graph compile: no loss and no outputs: nothing to compute");
    if (loss >= 0 && g->nodes[loss].dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_DTYPE, "graph compile: loss node %d is not F32", (int)loss);
    for (int i = 0; i < nout; i++)
        HS_TRY(check_node(g, outputs[i], "compile (outputs)"));
    hs_status s = compile_plan(g, loss, outputs, nout, training);
    if (s == HS_OK) {
        g->prof = hs_calloc((size_t)(g->n ? g->n : 1) * 2, sizeof *g->prof);
        if (!g->prof)
            s = HS_FAIL(HS_ERR_NOMEM, "graph compile: out of memory");
    }
    if (s != HS_OK) {
        reset_plan(g);
        return s;
    }
    g->compiled = 1;
    g->state = 0;
    const char *e = getenv("HISTOPS_PROFILE");
    g->profile = e && e[0] && strcmp(e, "0") != 0;
    return HS_OK;
}

// ---- run ----

void *graph_buf_ptr(const hs_graph *g, int buf) { return buf < 0 ? NULL : g->arena + g->bufs[buf].off; }

void *graph_value_ptr(const hs_graph *g, int32_t id) {
    const graph_node *n = &g->nodes[id];
    if (n->ext)
        return n->ext->data;
    return graph_buf_ptr(g, n->val_buf);
}

float *graph_grad_ptr(const hs_graph *g, int32_t id) {
    const graph_node *n = &g->nodes[id];
    if (!n->has_grad)
        return NULL;
    if (n->kind == HS_NODE_PARAM)
        return n->ext_grad ? n->ext_grad->data : NULL;
    return graph_buf_ptr(g, n->grad_buf);
}

float *graph_input_grad(const hs_graph *g, const graph_node *n, int i) {
    float *p = graph_grad_ptr(g, n->in[i]);
    if (p)
        return p;
    if (i < GRAPH_MAX_SCRATCH)
        return graph_buf_ptr(g, n->scratch_buf[i]);
    return NULL;
}

static hs_status check_compiled(const hs_graph *g, const char *what) {
    if (!g)
        return HS_FAIL(HS_ERR_ARG, "graph %s: NULL graph", what);
    if (!g->compiled)
        return HS_FAIL(HS_ERR_STATE, "graph %s: the graph is not compiled (call compile first)", what);
    return HS_OK;
}

hs_status hs_graph_set_input(hs_graph *g, int32_t node, const hs_tensor *src) {
    char a[160], b[160];
    HS_TRY(check_compiled(g, "set_input"));
    HS_TRY(check_node(g, node, "set_input"));
    graph_node *n = &g->nodes[node];
    if (n->kind != HS_NODE_INPUT)
        return HS_FAIL(HS_ERR_ARG, "graph set_input: node %d is not an input", (int)node);
    if (!src)
        return HS_FAIL(HS_ERR_ARG, "graph set_input: NULL tensor for node %d", (int)node);
    if (src->dtype != n->dtype)
        return HS_FAIL(HS_ERR_DTYPE, "graph set_input: node %d is %s %s, got a %s tensor", (int)node,
                       hs_dtype_name(n->dtype), hs_shape_str(n->ndim, n->shape, a, sizeof a), hs_dtype_name(src->dtype));
    int same = src->ndim == n->ndim;
    for (int i = 0; same && i < n->ndim; i++)
        same = src->shape[i] == n->shape[i];
    if (!same)
        return HS_FAIL(HS_ERR_SHAPE, "graph set_input: node %d has shape %s, got %s", (int)node,
                       hs_shape_str(n->ndim, n->shape, a, sizeof a), hs_tensor_shape_str(src, b, sizeof b));
    g->state = 0;
    if (!n->live)   // not needed by any output: nothing to store
        return HS_OK;
    hs_tensor dst = {0};
    dst.dtype = n->dtype;
    dst.ndim = n->ndim;
    int64_t st = 1;
    for (int i = n->ndim - 1; i >= 0; i--) {
        dst.shape[i] = n->shape[i];
        dst.stride[i] = st;
        st *= n->shape[i];
    }
    dst.data = graph_buf_ptr(g, n->val_buf);
    HS_TRY(hs_tensor_copy(&dst, src));
    g->input_set[node] = 1;
    return HS_OK;
}

// Re-record a kernel failure with the node named in front, keeping the kernel's file:line.
static hs_status node_fail(const hs_graph *g, int32_t id, const char *phase, hs_status s) {
    char msg[512];
    const hs_error *e = hs_last_error();
    snprintf(msg, sizeof msg, "%s", e->msg);
    const char *file = e->file;
    int line = e->line;
    return hs_fail_at(s, file, line, "%s of node %d (%s): %s", phase, (int)id, graph_op(g->nodes[id].op)->name, msg);
}

hs_status hs_graph_forward(hs_graph *g) {
    HS_TRY(check_compiled(g, "forward"));
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].kind == HS_NODE_INPUT && g->nodes[i].live && !g->input_set[i])
            return HS_FAIL(HS_ERR_STATE, "graph forward: input node %d was never set (call set_input)", i);
    g->state = 0;
    for (int k = 0; k < g->nfwd; k++) {
        graph_node *n = &g->nodes[g->fwd_order[k]];
        double t0 = g->profile ? now_s() : 0.0;
        hs_status s = graph_op(n->op)->forward(g, n);
        if (s != HS_OK)
            return node_fail(g, g->fwd_order[k], "forward", s);
        if (g->profile)
            g->prof[2 * g->fwd_order[k]] += now_s() - t0;
    }
    g->prof_fwd_runs += g->profile;
    g->state = 1;
    return HS_OK;
}

typedef struct {
    unsigned char *p;
    size_t bytes;
} zero_job;

#define ZERO_CHUNK ((size_t)1 << 18)

static void zero_task(void *ctx, int64_t b, int64_t e) {
    const zero_job *z = ctx;
    size_t lo = (size_t)b * ZERO_CHUNK, hi = (size_t)e * ZERO_CHUNK;
    if (hi > z->bytes)
        hi = z->bytes;
    memset(z->p + lo, 0, hi - lo);
}

static void zero_from(hs_graph *g, int *cursor, int step) {
    double t0 = g->profile ? now_s() : 0.0;
    while (*cursor < g->nzero && g->bufs[g->zero_list[*cursor]].start <= step) {
        const graph_buf *b = &g->bufs[g->zero_list[*cursor]];
        zero_job z = {g->arena + b->off, b->bytes};
        hs_parallel_for((int64_t)((b->bytes + ZERO_CHUNK - 1) / ZERO_CHUNK), 1, zero_task, &z);
        (*cursor)++;
    }
    if (g->profile)
        g->prof_zero += now_s() - t0;
}

hs_status hs_graph_backward(hs_graph *g, const hs_tensor *dout) {
    char a[160], b[160];
    HS_TRY(check_compiled(g, "backward"));
    if (g->loss < 0)
        return HS_FAIL(HS_ERR_STATE, "graph backward: compiled without a loss (inference graph)");
    if (g->state != 1)
        return HS_FAIL(HS_ERR_STATE, "graph backward: no forward since the last backward or set_input");
    const graph_node *L = &g->nodes[g->loss];
    if (dout) {
        int same = dout->ndim == L->ndim;
        for (int i = 0; same && i < L->ndim; i++)
            same = dout->shape[i] == L->shape[i];
        if (!same && !(hs_tensor_numel(dout) == 1 && L->numel == 1))
            return HS_FAIL(HS_ERR_SHAPE, "graph backward: dout %s does not match the loss node %d shape %s",
                           hs_tensor_shape_str(dout, a, sizeof a), (int)g->loss, hs_shape_str(L->ndim, L->shape, b, sizeof b));
        if (dout->dtype != HS_DTYPE_F32)
            return HS_FAIL(HS_ERR_DTYPE, "graph backward: dout must be F32, got %s", hs_dtype_name(dout->dtype));
    } else if (L->numel != 1) {
        return HS_FAIL(HS_ERR_ARG, "graph backward: the loss node %d has shape %s; pass dout", (int)g->loss,
                       hs_shape_str(L->ndim, L->shape, a, sizeof a));
    }
    g->state = 0;
    if (!L->has_grad)   // nothing trainable upstream of the loss
        return HS_OK;
    int cursor = 0;
    zero_from(g, &cursor, g->seed_step);
    float *seed = graph_grad_ptr(g, g->loss);
    if (dout) {
        hs_tensor dst = {0};
        dst.dtype = HS_DTYPE_F32;
        dst.ndim = dout->ndim;
        int64_t st = 1;
        for (int i = dout->ndim - 1; i >= 0; i--) {
            dst.shape[i] = dout->shape[i];
            dst.stride[i] = st;
            st *= dout->shape[i];
        }
        dst.data = seed;
        HS_TRY(hs_tensor_copy(&dst, dout));
    } else {
        seed[0] = 1.0f;
    }
    for (int k = 0; k < g->nbwd; k++) {
        graph_node *n = &g->nodes[g->bwd_order[k]];
        zero_from(g, &cursor, n->bwd_step);
        double t0 = g->profile ? now_s() : 0.0;
        hs_status s = graph_op(n->op)->backward(g, n);
        if (s != HS_OK)
            return node_fail(g, g->bwd_order[k], "backward", s);
        if (g->profile)
            g->prof[2 * g->bwd_order[k] + 1] += now_s() - t0;
    }
    g->prof_bwd_runs += g->profile;
    return HS_OK;
}

static void fill_view(hs_tensor *view, const graph_node *n, void *data) {
    memset(view, 0, sizeof *view);
    view->dtype = n->dtype;
    view->ndim = n->ndim;
    int64_t st = 1;
    for (int i = n->ndim - 1; i >= 0; i--) {
        view->shape[i] = n->shape[i];
        view->stride[i] = st;
        st *= n->shape[i];
    }
    view->data = data;
}

hs_status hs_graph_value(const hs_graph *g, int32_t node, hs_tensor *view) {
    HS_TRY(check_node(g, node, "value"));
    const graph_node *n = &g->nodes[node];
    if (n->ext) {
        fill_view(view, n, n->ext->data);
        return HS_OK;
    }
    HS_TRY(check_compiled(g, "value"));
    if (!n->live)
        return HS_FAIL(HS_ERR_STATE, "graph value: node %d is not needed by any output or the loss, so never computed",
                       (int)node);
    if (!n->kept && !g->keep_all)
        return HS_FAIL(HS_ERR_STATE,
                       "graph value: node %d is an intermediate whose memory is reused; list it in the outputs", (int)node);
    fill_view(view, n, graph_buf_ptr(g, n->val_buf));
    return HS_OK;
}

hs_status hs_graph_grad(const hs_graph *g, int32_t node, hs_tensor *view) {
    HS_TRY(check_node(g, node, "grad"));
    const graph_node *n = &g->nodes[node];
    if (n->kind == HS_NODE_PARAM && n->ext_grad) {
        fill_view(view, n, n->ext_grad->data);
        return HS_OK;
    }
    HS_TRY(check_compiled(g, "grad"));
    if (!n->has_grad)
        return HS_FAIL(HS_ERR_STATE, "graph grad: no gradient flows to node %d (frozen, not upstream of the loss, "
                       "or an input without require_grad)", (int)node);
    if (n->kind != HS_NODE_INPUT && !g->keep_all)
        return HS_FAIL(HS_ERR_STATE,
                       "graph grad: node %d is an intermediate whose gradient memory is reused (compile with keep_all)",
                       (int)node);
    fill_view(view, n, graph_buf_ptr(g, n->grad_buf));
    return HS_OK;
}

void hs_graph_set_step(hs_graph *g, uint64_t step) {
    if (g)
        g->step = step;
}

size_t hs_graph_arena_bytes(const hs_graph *g) { return g ? g->arena_bytes : 0; }
size_t hs_graph_naive_bytes(const hs_graph *g) { return g ? g->naive_bytes : 0; }

// ---- profiling ----

void hs_graph_profile_reset(hs_graph *g) {
    if (!g || !g->prof)
        return;
    memset(g->prof, 0, (size_t)g->n * 2 * sizeof *g->prof);
    g->prof_zero = 0.0;
    g->prof_fwd_runs = g->prof_bwd_runs = 0;
}

hs_status hs_graph_set_profile(hs_graph *g, int on) {
    HS_TRY(check_compiled(g, "set_profile"));
    if (on && !g->profile)
        hs_graph_profile_reset(g);
    g->profile = on != 0;
    return HS_OK;
}

hs_status hs_graph_profile_node(const hs_graph *g, int32_t node, double *fwd_s, double *bwd_s) {
    HS_TRY(check_node(g, node, "profile"));
    HS_TRY(check_compiled(g, "profile"));
    *fwd_s = g->prof[2 * node];
    *bwd_s = g->prof[2 * node + 1];
    return HS_OK;
}

void hs_graph_profile_totals(const hs_graph *g, double *zero_s, int64_t *fwd_runs, int64_t *bwd_runs) {
    *zero_s = g ? g->prof_zero : 0.0;
    *fwd_runs = g ? g->prof_fwd_runs : 0;
    *bwd_runs = g ? g->prof_bwd_runs : 0;
}
