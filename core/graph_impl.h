// core/graph_impl.h: private to graph.c and graph_ops.c: the node and buffer records and the op
// descriptor table. Not a public header: nothing outside the graph includes it.
#ifndef HS_GRAPH_IMPL_H
#define HS_GRAPH_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"

#define GRAPH_MAX_SAVED 2     // saved-for-backward buffers per op
#define GRAPH_MAX_SCRATCH 3   // throw-away gradient destinations per op (kernels that need one)

typedef struct {
    size_t bytes;
    int start, end;           // inclusive step interval in which the buffer is live
    size_t off;               // byte offset in the arena
} graph_buf;

typedef struct {
    hs_node_kind kind;
    hs_opkind op;
    hs_dtype dtype;
    int ndim;
    int64_t shape[HS_MAX_DIMS];
    int64_t numel;
    int32_t *in;              // hs_alloc'ed, nin ids
    int nin;
    hs_op_attrs a;            // normalised (dims >= 0, defaults resolved)
    hs_tensor *ext, *ext_grad;  // params and buffers (borrowed)
    // ---- compile ----
    uint8_t requires_grad;    // input asked for a gradient
    uint8_t live;             // needed by an output or the loss
    uint8_t needs_grad;       // some trainable leaf is upstream
    uint8_t has_grad;         // a gradient buffer (arena or external) receives dL/dnode
    uint8_t in_bwd;           // op whose backward runs
    uint8_t kept;             // value readable after the step
    int fwd_step, bwd_step;
    int val_buf, grad_buf;    // indices into g->bufs, -1 none
    int save_buf[GRAPH_MAX_SAVED];
    int fws_buf, bws_buf;     // forward / backward workspace
    int scratch_buf[GRAPH_MAX_SCRATCH];  // per input slot, -1 none (slots >= GRAPH_MAX_SCRATCH: none)
    // ---- fusion (compile) ----
    int32_t alias;            // >= 0: this op was folded into node `alias` and shares its buffers
    uint8_t fuse_relu;        // batchnorm2d that also applies the ReLU folded into it
    int32_t fuse_bn;          // conv2d (eval graphs): the batchnorm2d folded into its output, -1 none
    uint32_t assign;          // input slots whose gradient the backward assigns (=): first writer
} graph_node;

struct hs_graph {
    graph_node *nodes;
    int n, cap;
    graph_buf *bufs;
    int nbufs, bufcap;
    unsigned char *arena;
    size_t arena_bytes, naive_bytes;
    int compiled, training, keep_all;
    int32_t loss;
    int32_t *fwd_order, *bwd_order;  // op ids in execution order
    int nfwd, nbwd;
    int32_t *zero_list;              // grad buffers to zero, sorted by start step
    int nzero;
    int seed_step, end_step;
    uint8_t *input_set;              // per node: input filled since compile
    int state;                       // 0 idle, 1 forward done (backward allowed)
    uint64_t step;
    // profiling (hs_graph_set_profile / HISTOPS_PROFILE=1): per node forward and backward seconds
    int profile;
    double *prof;                    // 2 per node: [2i] forward, [2i+1] backward; allocated at compile
    double prof_zero;                // gradient zeroing
    int64_t prof_fwd_runs, prof_bwd_runs;
};

// Per-op description, in graph_ops.c.
typedef struct {
    const char *name;
    int min_in, max_in;       // max_in < 0: any number
    uint32_t diff_mask;       // inputs a gradient flows to
    uint32_t need_in_mask;    // input values the backward reads
    int need_out;             // the backward reads the op's own output
    uint32_t dest_mask;       // inputs whose gradient pointer the kernel cannot take as NULL
    // check inputs and attributes, set n->ndim/shape/dtype (attrs already normalised or not:
    // infer normalises n->a in place)
    hs_status (*infer)(hs_graph *g, graph_node *n);
    // sizes in bytes of the saved-for-backward buffers and workspaces (may be NULL: none)
    void (*plan)(const hs_graph *g, const graph_node *n, size_t saved[GRAPH_MAX_SAVED], size_t *fws, size_t *bws);
    hs_status (*forward)(hs_graph *g, graph_node *n);
    hs_status (*backward)(hs_graph *g, graph_node *n);
} graph_op_desc;

const graph_op_desc *graph_op(hs_opkind k);
// Input slots of op k whose gradient its backward can assign (=) instead of add, when told to
// through graph_node.assign (the graph does so for the first writer of a gradient buffer).
uint32_t graph_op_assign_mask(hs_opkind k, int training);

// Helpers for op implementations (graph.c).
void *graph_value_ptr(const hs_graph *g, int32_t id);
float *graph_grad_ptr(const hs_graph *g, int32_t id);    // NULL when no gradient flows there
// Destination for the gradient of input slot i of n: the input's gradient, else a scratch buffer
// when the op's dest_mask requires one, else NULL.
float *graph_input_grad(const hs_graph *g, const graph_node *n, int i);
void *graph_buf_ptr(const hs_graph *g, int buf);  // NULL for -1
// Record a shape error naming the op and all input shapes.
hs_status graph_shape_fail_at(const hs_graph *g, const graph_node *n, hs_status code, const char *file, int line,
                              const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
#define GRAPH_FAIL(g, n, code, ...) graph_shape_fail_at((g), (n), (code), __FILE__, __LINE__, __VA_ARGS__)

#endif
