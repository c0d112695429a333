// core/graph.h: the computation graph of the neural-network core: leaves (inputs, parameters,
// buffers) and ops, shape inference when an op is added, reverse-mode autodiff derived from the
// graph, and a planned memory arena. Not a tensor library (eager ops live in tensor_ops.h) and not
// a layer library (nn modules are Lua, built on this).
//
// Life of a graph:
//   1. build: hs_graph_input / _param / _buffer / _op; every op infers and checks its output
//      shape at once (errors name the op and all input shapes).
//   2. hs_graph_compile(loss, outputs, training): keeps only what the outputs and the loss need,
//      schedules the backward (only for nodes that need a gradient), sizes every activation,
//      gradient, saved-for-backward buffer (argmax, BN mean/rstd, dropout mask, softmax probs)
//      and kernel workspace, and places them all in ONE arena by liveness over the
//      forward+backward timeline (first fit of intervals). One allocation, at compile.
//      It also fuses: batchnorm2d -> relu runs as one fused op (forward and backward), an
//      inference graph folds an eval batchnorm2d (+ relu) into the conv2d before it, and the first
//      op to write a gradient assigns it instead of adding into a zero-filled buffer. Values and
//      gradients are the same as unfused (HISTOPS_NO_FUSE=1 at compile turns fusion off).
//   3. steps: hs_graph_set_input, hs_graph_forward, hs_graph_backward. None of them allocates.
//
// Parameters, their gradients and buffers (BN running stats) are external F32 tensors, borrowed
// for the graph's whole life (the model owns them in flat slabs). Backward ADDS (+=) into
// parameter gradients, as PyTorch does: the caller zeroes them between steps.
// Node ids are 0-based and increase in creation order (a topological order). Dims in attributes
// are 0-based; negative dims count from the end. Results are identical for any thread count.
#ifndef HS_GRAPH_H
#define HS_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef struct hs_graph hs_graph;

// Input layouts: N batch, C channels, H/W height/width; "x" is an op's first input.
typedef enum {
    HS_OP_LINEAR,            // x (..., in), weight (out, in) [, bias (out)] -> (..., out)
    HS_OP_MATMUL,            // a (..., M, K), b (..., K, N) or (K, N) -> (..., M, N)
    HS_OP_ADD,               // a, b broadcast (numpy rules) -> broadcast shape
    HS_OP_SUB,
    HS_OP_MUL,
    HS_OP_DIV,
    HS_OP_ADD_SCALAR,        // x + value
    HS_OP_MUL_SCALAR,        // x * value
    HS_OP_RELU,
    HS_OP_LEAKY_RELU,        // negative_slope
    HS_OP_SIGMOID,
    HS_OP_TANH,
    HS_OP_GELU,              // exact erf form
    HS_OP_SILU,
    HS_OP_SOFTMAX,           // dim (unset: 1 for >= 2-d inputs, else 0)
    HS_OP_LOG_SOFTMAX,
    HS_OP_SUM,               // dim (unset: all elements), keepdim
    HS_OP_MEAN,
    HS_OP_RESHAPE,           // shape (one entry may be -1); copies
    HS_OP_FLATTEN,           // start_dim (default 1), end_dim (default -1)
    HS_OP_CONCAT,            // any number of inputs, dim
    HS_OP_CROSS_ENTROPY,     // logits (N,C[,H,W]), target I64 (N[,H,W]) [, class weight (C)]; label_smoothing -> scalar
    HS_OP_MSE,               // x, target (same shape) -> scalar mean
    HS_OP_BCE_WITH_LOGITS,   // logits, target (same shape); pos_weight -> scalar mean
    HS_OP_DICE_LOSS,         // logits, target (same shape); smooth -> scalar
    HS_OP_CONV2D,            // x (N,C,H,W), weight (Cout,C/groups,KH,KW) [, bias (Cout)]
    HS_OP_CONV_TRANSPOSE2D,  // x (N,C,H,W), weight (C,Cout/groups,KH,KW) [, bias (Cout)]
    HS_OP_MAXPOOL2D,         // x (N,C,H,W); kernel_size, stride (default kernel_size), padding, ceil_mode
    HS_OP_AVGPOOL2D,         // as maxpool2d plus count_include_pad
    HS_OP_GLOBAL_AVGPOOL,    // x (N,C,H,W) -> (N,C)
    HS_OP_BATCHNORM2D,       // x (N,C,H,W) or (N,C), gamma, beta, running_mean, running_var (C); momentum, eps
    HS_OP_DROPOUT,           // x; p, seed (the stream is the graph's step, see hs_graph_set_step)
    HS_OP_UPSAMPLE_NEAREST,  // x (N,C,H,W); integer scale_factor
    HS_OP_UPSAMPLE_BILINEAR, // align_corners = false, as PyTorch
    HS_OP_COUNT
} hs_opkind;

// "linear", "matmul", "add", ... (the names above in lower case; NULL when out of range).
const char *hs_opkind_name(hs_opkind k);
// Parse an op name (also accepts "cat" for concat); HS_ERR_ARG naming the unknown op.
hs_status hs_opkind_from_name(hs_opkind *k, const char *name);

// Op attributes, PyTorch names and defaults (set by hs_op_attrs_init). Each op reads only its own.
typedef struct {
    int kernel_size[2];        // pools (required)
    int stride[2];             // 0: the op's default (1 for convs, kernel_size for pools)
    int padding[2];
    int dilation[2];
    int output_padding[2];
    int groups;
    int ceil_mode, count_include_pad;
    float momentum, eps;       // batchnorm2d: 0.1, 1e-5
    float p;                   // dropout probability: 0.5
    uint64_t seed;             // dropout
    int scale_factor[2];       // upsample (required, integer >= 1)
    int dim, has_dim, keepdim; // softmax, log_softmax, sum, mean, concat
    int start_dim, end_dim;    // flatten: 1, -1
    int shape_ndim;            // reshape
    int64_t shape[HS_MAX_DIMS];
    float negative_slope;      // leaky_relu: 0.01
    float label_smoothing;     // cross_entropy: 0
    float pos_weight;          // bce_with_logits: 1 (none)
    float smooth;              // dice_loss: 1
    float value;               // add_scalar, mul_scalar
} hs_op_attrs;

void hs_op_attrs_init(hs_op_attrs *a);

// ---- building ----
hs_status hs_graph_new(hs_graph **out);   // *out = NULL on failure
void hs_graph_free(hs_graph *g);          // NULL is a no-op; never frees params or buffers

// A data leaf, filled by hs_graph_set_input before each forward. dtype F32 (data) or I64 (class
// targets). Inputs get no gradient unless hs_graph_require_grad is called (before compile).
hs_status hs_graph_input(hs_graph *g, int32_t *node, hs_dtype dt, int ndim, const int64_t *shape);
hs_status hs_graph_require_grad(hs_graph *g, int32_t node);
// A trainable parameter: value and grad (same shape, contiguous F32) are borrowed for the graph's
// life. grad NULL: frozen. Backward adds (+=) into grad.
hs_status hs_graph_param(hs_graph *g, int32_t *node, hs_tensor *value, hs_tensor *grad);
// Non-trainable state (contiguous F32, borrowed), e.g. BN running stats, updated in place by
// training forwards; also class weights for cross_entropy.
hs_status hs_graph_buffer(hs_graph *g, int32_t *node, hs_tensor *value);
// Add an op over existing nodes (attrs NULL: defaults). The output shape is inferred and checked:
// HS_ERR_SHAPE / HS_ERR_DTYPE / HS_ERR_ARG with a message naming the op and all input shapes.
hs_status hs_graph_op(hs_graph *g, int32_t *node, hs_opkind op, const int32_t *inputs, int nin,
                      const hs_op_attrs *attrs);

// ---- introspection ----
typedef enum { HS_NODE_INPUT, HS_NODE_PARAM, HS_NODE_BUFFER, HS_NODE_OP } hs_node_kind;
typedef struct {
    hs_node_kind kind;
    hs_opkind op;              // for HS_NODE_OP
    hs_dtype dtype;
    int ndim;
    int64_t shape[HS_MAX_DIMS];
    int nin;
    const int32_t *inputs;     // nin ids, owned by the graph
    int needs_grad;            // after compile: a gradient flows to this node
} hs_graph_node_info;

int hs_graph_num_nodes(const hs_graph *g);
hs_status hs_graph_node(const hs_graph *g, int32_t node, hs_graph_node_info *info);

// ---- compile and run ----
// Keep every buffer alive for the whole step (no reuse): for debugging; call before compile.
hs_status hs_graph_keep_all(hs_graph *g, int keep);
// loss: the node backward starts from (-1: inference graph, no backward). outputs: nodes whose
// values stay readable after forward and backward (the loss always does). training: batchnorm
// uses batch statistics and updates its running stats; dropout is active. May be called once.
// HS_ERR_NOMEM when the arena cannot be allocated.
hs_status hs_graph_compile(hs_graph *g, int32_t loss, const int32_t *outputs, int nout, int training);
// Copy src (same shape and dtype, any strides) into an input node. Does not allocate.
hs_status hs_graph_set_input(hs_graph *g, int32_t node, const hs_tensor *src);
// Run the forward. HS_ERR_STATE before compile or while an input was never set.
hs_status hs_graph_forward(hs_graph *g);
// Run the backward of the last forward: the loss gradient is dout (same shape as the loss node),
// or 1 when dout is NULL and the loss has one element. Adds (+=) into parameter gradients.
// HS_ERR_STATE without a loss, or when no forward ran since the last backward or set_input.
hs_status hs_graph_backward(hs_graph *g, const hs_tensor *dout);
// Views (no allocation, never owning) of a node's value / gradient: arena memory for inputs and
// ops, the external tensor for params and buffers. Valid until the next run overwrites them.
// Values are kept for inputs, outputs, the loss, params and buffers; gradients for inputs that
// require grad and params. Others are reused memory: HS_ERR_STATE (compile with keep_all to see).
hs_status hs_graph_value(const hs_graph *g, int32_t node, hs_tensor *view);
hs_status hs_graph_grad(const hs_graph *g, int32_t node, hs_tensor *view);
// Dropout masks depend on (seed, node, step): set a new step for each training iteration.
void hs_graph_set_step(hs_graph *g, uint64_t step);
// Profiling: while on, forward and backward add each op's wall time (and backward the time spent
// zeroing gradient buffers) to per-node counters. Also switched on at compile when the environment
// has HISTOPS_PROFILE=1. Turning it on (or hs_graph_profile_reset) clears the counters. Neither
// allocates after compile. HS_ERR_STATE before compile.
hs_status hs_graph_set_profile(hs_graph *g, int on);
void hs_graph_profile_reset(hs_graph *g);
// Seconds spent in node's forward and backward since the counters were cleared (0 for leaves and
// when profiling is off), and how many forward / backward runs were counted.
hs_status hs_graph_profile_node(const hs_graph *g, int32_t node, double *fwd_s, double *bwd_s);
void hs_graph_profile_totals(const hs_graph *g, double *zero_s, int64_t *fwd_runs, int64_t *bwd_runs);
// Arena size after compile, and the sum of every planned buffer (what no reuse would need).
size_t hs_graph_arena_bytes(const hs_graph *g);
size_t hs_graph_naive_bytes(const hs_graph *g);

#endif
