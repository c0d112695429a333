// core/tensor.h: N-d strided tensors (float32 plus the integer/byte types of labels, masks and
// images), views sharing storage, creation and copies. Math on tensors lives in tensor_ops.h;
// this file is only the container.
//
// A tensor owns its storage when created by hs_tensor_new/_from_buffer/_copy; views
// (reshape, narrow, select, permute, wrap) never own storage and must not outlive their base.
#ifndef HS_TENSOR_H
#define HS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define HS_MAX_DIMS 8

typedef enum {
    HS_DTYPE_F32 = 0,
    HS_DTYPE_F64,
    HS_DTYPE_I64,
    HS_DTYPE_I32,
    HS_DTYPE_U8,
    HS_DTYPE_U16,
    HS_DTYPE_COUNT
} hs_dtype;

typedef struct hs_tensor {
    hs_dtype dtype;
    int ndim;                        // 0 .. HS_MAX_DIMS (0: a scalar with one element)
    int64_t shape[HS_MAX_DIMS];
    int64_t stride[HS_MAX_DIMS];     // in elements, may be 0 (broadcast) but never negative
    void *data;                      // address of element (0,...,0)
    void *storage;                   // owned allocation; NULL for views
} hs_tensor;

size_t hs_dtype_size(hs_dtype dt);
const char *hs_dtype_name(hs_dtype dt);              // "F32", "U8", ... (safetensors spelling)
hs_status hs_dtype_from_name(hs_dtype *dt, const char *name);

// New contiguous tensor, zero-filled. *out is set to NULL on failure.
hs_status hs_tensor_new(hs_tensor **out, hs_dtype dt, int ndim, const int64_t *shape);
// As hs_tensor_new, but the elements are left uninitialised: for outputs that the caller assigns
// in full right away (kernel results), where zeroing would only cost a pass over the memory.
hs_status hs_tensor_new_uninit(hs_tensor **out, hs_dtype dt, int ndim, const int64_t *shape);
// New contiguous tensor copying nbytes = numel*dtype_size from buf.
hs_status hs_tensor_from_buffer(hs_tensor **out, hs_dtype dt, int ndim, const int64_t *shape,
                                const void *buf);
// Non-owning contiguous view of caller memory (which must outlive the tensor).
hs_status hs_tensor_wrap(hs_tensor **out, hs_dtype dt, int ndim, const int64_t *shape, void *data);
// Contiguous owning copy of src (any strides), same dtype.
hs_status hs_tensor_clone(hs_tensor **out, const hs_tensor *src);
void hs_tensor_free(hs_tensor *t);   // NULL is a no-op; frees storage only if owned

int64_t hs_tensor_numel(const hs_tensor *t);
size_t hs_tensor_nbytes(const hs_tensor *t);         // numel * dtype size
int hs_tensor_is_contiguous(const hs_tensor *t);
int hs_tensor_same_shape(const hs_tensor *a, const hs_tensor *b);
// "[2,3,4]" into buf (always NUL-terminated); returns buf, for error messages.
const char *hs_tensor_shape_str(const hs_tensor *t, char *buf, size_t n);
const char *hs_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

// ---- views (new struct, shared storage; free with hs_tensor_free) ----
// Reshape: numel must match; one dim may be -1. Requires a contiguous source.
hs_status hs_tensor_reshape(hs_tensor **out, const hs_tensor *t, int ndim, const int64_t *shape);
// narrow(dim, start, len): elements start..start+len-1 along dim.
hs_status hs_tensor_narrow(hs_tensor **out, const hs_tensor *t, int dim, int64_t start, int64_t len);
// select(dim, index): removes dim.
hs_status hs_tensor_select(hs_tensor **out, const hs_tensor *t, int dim, int64_t index);
// permute: out dim i is t's dim perm[i].
hs_status hs_tensor_permute(hs_tensor **out, const hs_tensor *t, const int *perm);
hs_status hs_tensor_transpose(hs_tensor **out, const hs_tensor *t, int d0, int d1);
// In-place on a struct (no allocation): same as above, writing into *view.
hs_status hs_tensor_view_narrow(hs_tensor *view, const hs_tensor *t, int dim, int64_t start, int64_t len);
hs_status hs_tensor_view_reshape(hs_tensor *view, const hs_tensor *t, int ndim, const int64_t *shape);

// ---- element access and copies ----
// Copy src into dst elementwise (same shape; any strides; converts dtype, saturating
// float->integer conversions with round-half-to-even like numpy's astype on rint'ed values).
hs_status hs_tensor_copy(hs_tensor *dst, const hs_tensor *src);
hs_status hs_tensor_fill(hs_tensor *t, double value);
// Read/write one element as double; index has t->ndim entries (bounds checked).
hs_status hs_tensor_get(const hs_tensor *t, const int64_t *index, double *value);
hs_status hs_tensor_set(hs_tensor *t, const int64_t *index, double value);
// Element i of t in row-major (logical) order, as double; no bounds check beyond assert.
double hs_tensor_get_flat(const hs_tensor *t, int64_t i);
void hs_tensor_set_flat(hs_tensor *t, int64_t i, double v);

// ---- creation helpers ----
hs_status hs_tensor_arange(hs_tensor **out, hs_dtype dt, double start, double stop, double step);
// Counter-based random fill: element i (row-major) depends only on (seed, i), never on threads.
hs_status hs_tensor_rand_uniform(hs_tensor *t, uint64_t seed, double lo, double hi);
hs_status hs_tensor_rand_normal(hs_tensor *t, uint64_t seed, double mean, double std);

#endif
