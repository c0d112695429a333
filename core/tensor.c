// core/tensor.c: tensor container, views and copies. No math here (see tensor_ops.c).
#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "rng.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[HS_DTYPE_COUNT] = {
    [HS_DTYPE_F32] = {"F32", 4}, [HS_DTYPE_F64] = {"F64", 8}, [HS_DTYPE_I64] = {"I64", 8},
    [HS_DTYPE_I32] = {"I32", 4}, [HS_DTYPE_U8] = {"U8", 1},   [HS_DTYPE_U16] = {"U16", 2},
};

size_t hs_dtype_size(hs_dtype dt) { return (unsigned)dt < HS_DTYPE_COUNT ? dtypes[dt].size : 0; }

const char *hs_dtype_name(hs_dtype dt) { return (unsigned)dt < HS_DTYPE_COUNT ? dtypes[dt].name : "?"; }

hs_status hs_dtype_from_name(hs_dtype *dt, const char *name) {
    for (int i = 0; i < HS_DTYPE_COUNT; i++) {
        if (strcmp(dtypes[i].name, name) == 0) {
            *dt = (hs_dtype)i;
            return HS_OK;
        }
    }
    return HS_FAIL(HS_ERR_DTYPE, "unknown dtype '%s'", name);
}

const char *hs_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

const char *hs_tensor_shape_str(const hs_tensor *t, char *buf, size_t n) {
    return hs_shape_str(t->ndim, t->shape, buf, n);
}

static hs_status check_shape(int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > HS_MAX_DIMS)
        return HS_FAIL(HS_ERR_ARG, "tensor: %d dims, at most %d supported", ndim, HS_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return HS_FAIL(HS_ERR_ARG, "tensor: negative size %lld in dim %d", (long long)shape[i], i);
        if (shape[i] > 0 && n > INT64_MAX / 16 / shape[i])
            return HS_FAIL(HS_ERR_ARG, "tensor: shape too large");
        n *= shape[i];
    }
    *numel = n;
    return HS_OK;
}

static void set_contiguous(hs_tensor *t, int ndim, const int64_t *shape) {
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = s;
        s *= shape[i];
    }
}

// Both constructors: zeroed storage through hs_calloc (free of cost for big blocks, which are
// fresh mappings) or uninitialised storage through hs_alloc.
static hs_status tensor_new(hs_tensor **out, hs_dtype dt, int ndim, const int64_t *shape, int zeroed) {
    *out = NULL;
    int64_t numel;
    HS_TRY(check_shape(ndim, shape, &numel));
    if ((unsigned)dt >= HS_DTYPE_COUNT)
        return HS_FAIL(HS_ERR_DTYPE, "tensor: bad dtype %d", (int)dt);
    hs_tensor *t = hs_calloc(1, sizeof *t);
    if (!t)
        return HS_FAIL(HS_ERR_NOMEM, "tensor: out of memory");
    t->dtype = dt;
    set_contiguous(t, ndim, shape);
    size_t nbytes = (size_t)numel * dtypes[dt].size;
    t->storage = zeroed ? hs_calloc(1, nbytes ? nbytes : 1) : hs_alloc(nbytes ? nbytes : 1);
    if (!t->storage) {
        hs_free(t);
        char b[128];
        return HS_FAIL(HS_ERR_NOMEM, "tensor: out of memory allocating %s %s",
                       hs_dtype_name(dt), hs_shape_str(ndim, shape, b, sizeof b));
    }
    t->data = t->storage;
    *out = t;
    return HS_OK;
}

hs_status hs_tensor_new(hs_tensor **out, hs_dtype dt, int ndim, const int64_t *shape) {
    return tensor_new(out, dt, ndim, shape, 1);
}

hs_status hs_tensor_new_uninit(hs_tensor **out, hs_dtype dt, int ndim, const int64_t *shape) {
    return tensor_new(out, dt, ndim, shape, 0);
}

hs_status hs_tensor_from_buffer(hs_tensor **out, hs_dtype dt, int ndim, const int64_t *shape,
                                const void *buf) {
    HS_TRY(hs_tensor_new_uninit(out, dt, ndim, shape));
    memcpy((*out)->data, buf, hs_tensor_nbytes(*out));
    return HS_OK;
}

hs_status hs_tensor_wrap(hs_tensor **out, hs_dtype dt, int ndim, const int64_t *shape, void *data) {
    *out = NULL;
    int64_t numel;
    HS_TRY(check_shape(ndim, shape, &numel));
    if ((unsigned)dt >= HS_DTYPE_COUNT)
        return HS_FAIL(HS_ERR_DTYPE, "tensor: bad dtype %d", (int)dt);
    hs_tensor *t = hs_calloc(1, sizeof *t);
    if (!t)
        return HS_FAIL(HS_ERR_NOMEM, "tensor: out of memory");
    t->dtype = dt;
    set_contiguous(t, ndim, shape);
    t->data = data;
    *out = t;
    return HS_OK;
}

hs_status hs_tensor_clone(hs_tensor **out, const hs_tensor *src) {
    HS_TRY(hs_tensor_new_uninit(out, src->dtype, src->ndim, src->shape));
    hs_status s = hs_tensor_copy(*out, src);
    if (s != HS_OK) {
        hs_tensor_free(*out);
        *out = NULL;
    }
    return s;
}

void hs_tensor_free(hs_tensor *t) {
    if (!t)
        return;
    hs_free(t->storage);
    hs_free(t);
}

int64_t hs_tensor_numel(const hs_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

size_t hs_tensor_nbytes(const hs_tensor *t) { return (size_t)hs_tensor_numel(t) * dtypes[t->dtype].size; }

int hs_tensor_is_contiguous(const hs_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s)
            return 0;
        s *= t->shape[i];
    }
    return 1;
}

int hs_tensor_same_shape(const hs_tensor *a, const hs_tensor *b) {
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

// ---- views ----

static hs_status new_view(hs_tensor **out, const hs_tensor *t) {
    *out = hs_calloc(1, sizeof **out);
    if (!*out)
        return HS_FAIL(HS_ERR_NOMEM, "tensor view: out of memory");
    **out = *t;
    (*out)->storage = NULL;
    return HS_OK;
}

hs_status hs_tensor_view_reshape(hs_tensor *view, const hs_tensor *t, int ndim, const int64_t *shape) {
    char a[128], b[128];
    if (ndim < 0 || ndim > HS_MAX_DIMS)
        return HS_FAIL(HS_ERR_ARG, "reshape: %d dims, at most %d supported", ndim, HS_MAX_DIMS);
    if (!hs_tensor_is_contiguous(t))
        return HS_FAIL(HS_ERR_ARG, "reshape: tensor %s is not contiguous (call contiguous() first)",
                       hs_tensor_shape_str(t, a, sizeof a));
    int64_t sh[HS_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (shape[i] == -1) {
            if (infer >= 0)
                return HS_FAIL(HS_ERR_ARG, "reshape: only one dimension may be -1");
            infer = i;
        } else if (shape[i] < 0) {
            return HS_FAIL(HS_ERR_ARG, "reshape: negative size %lld", (long long)shape[i]);
        } else {
            known *= shape[i];
        }
    }
    int64_t n = hs_tensor_numel(t);
    if (infer >= 0) {
        if (known == 0 || n % known != 0)
            return HS_FAIL(HS_ERR_SHAPE, "reshape: cannot reshape %s into %s",
                           hs_tensor_shape_str(t, a, sizeof a), hs_shape_str(ndim, shape, b, sizeof b));
        sh[infer] = n / known;
        known = n;
    }
    if (known != n)
        return HS_FAIL(HS_ERR_SHAPE, "reshape: cannot reshape %s (%lld elements) into %s",
                       hs_tensor_shape_str(t, a, sizeof a), (long long)n, hs_shape_str(ndim, shape, b, sizeof b));
    *view = *t;
    view->storage = NULL;
    set_contiguous(view, ndim, sh);
    return HS_OK;
}

hs_status hs_tensor_reshape(hs_tensor **out, const hs_tensor *t, int ndim, const int64_t *shape) {
    HS_TRY(new_view(out, t));
    hs_status s = hs_tensor_view_reshape(*out, t, ndim, shape);
    if (s != HS_OK) {
        hs_free(*out);
        *out = NULL;
    }
    return s;
}

hs_status hs_tensor_view_narrow(hs_tensor *view, const hs_tensor *t, int dim, int64_t start, int64_t len) {
    char a[128];
    if (dim < 0 || dim >= t->ndim)
        return HS_FAIL(HS_ERR_ARG, "narrow: dim %d out of range for %s", dim, hs_tensor_shape_str(t, a, sizeof a));
    if (start < 0 || len < 0 || start + len > t->shape[dim])
        return HS_FAIL(HS_ERR_ARG, "narrow: range [%lld, %lld) out of bounds for dim %d of %s",
                       (long long)start, (long long)(start + len), dim, hs_tensor_shape_str(t, a, sizeof a));
    *view = *t;
    view->storage = NULL;
    view->data = (char *)t->data + (size_t)(start * t->stride[dim]) * dtypes[t->dtype].size;
    view->shape[dim] = len;
    return HS_OK;
}

hs_status hs_tensor_narrow(hs_tensor **out, const hs_tensor *t, int dim, int64_t start, int64_t len) {
    HS_TRY(new_view(out, t));
    hs_status s = hs_tensor_view_narrow(*out, t, dim, start, len);
    if (s != HS_OK) {
        hs_free(*out);
        *out = NULL;
    }
    return s;
}

hs_status hs_tensor_select(hs_tensor **out, const hs_tensor *t, int dim, int64_t index) {
    char a[128];
    *out = NULL;
    if (dim < 0 || dim >= t->ndim)
        return HS_FAIL(HS_ERR_ARG, "select: dim %d out of range for %s", dim, hs_tensor_shape_str(t, a, sizeof a));
    if (index < 0 || index >= t->shape[dim])
        return HS_FAIL(HS_ERR_ARG, "select: index %lld out of bounds for dim %d of %s", (long long)index, dim,
                       hs_tensor_shape_str(t, a, sizeof a));
    HS_TRY(new_view(out, t));
    hs_tensor *v = *out;
    v->data = (char *)t->data + (size_t)(index * t->stride[dim]) * dtypes[t->dtype].size;
    for (int i = dim; i < t->ndim - 1; i++) {
        v->shape[i] = t->shape[i + 1];
        v->stride[i] = t->stride[i + 1];
    }
    v->ndim = t->ndim - 1;
    return HS_OK;
}

hs_status hs_tensor_permute(hs_tensor **out, const hs_tensor *t, const int *perm) {
    *out = NULL;
    int seen[HS_MAX_DIMS] = {0};
    for (int i = 0; i < t->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= t->ndim || seen[perm[i]])
            return HS_FAIL(HS_ERR_ARG, "permute: invalid permutation (entry %d = %d) for %d dims", i, perm[i],
                           t->ndim);
        seen[perm[i]] = 1;
    }
    HS_TRY(new_view(out, t));
    for (int i = 0; i < t->ndim; i++) {
        (*out)->shape[i] = t->shape[perm[i]];
        (*out)->stride[i] = t->stride[perm[i]];
    }
    return HS_OK;
}

hs_status hs_tensor_transpose(hs_tensor **out, const hs_tensor *t, int d0, int d1) {
    *out = NULL;
    if (d0 < 0 || d0 >= t->ndim || d1 < 0 || d1 >= t->ndim)
        return HS_FAIL(HS_ERR_ARG, "transpose: dims %d,%d out of range for %d dims", d0, d1, t->ndim);
    int perm[HS_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
        perm[i] = i;
    perm[d0] = d1;
    perm[d1] = d0;
    return hs_tensor_permute(out, t, perm);
}

// ---- element access ----

static double load(hs_dtype dt, const char *p) {
    switch (dt) {
    case HS_DTYPE_F32: return *(const float *)p;
    case HS_DTYPE_F64: return *(const double *)p;
    case HS_DTYPE_I64: return (double)*(const int64_t *)p;
    case HS_DTYPE_I32: return *(const int32_t *)p;
    case HS_DTYPE_U8: return *(const uint8_t *)p;
    case HS_DTYPE_U16: return *(const uint16_t *)p;
    default: return 0;
    }
}

static double clamp_round(double v, double lo, double hi) {
    if (isnan(v))
        return 0;
    v = nearbyint(v);
    return v < lo ? lo : v > hi ? hi : v;
}

static void store(hs_dtype dt, char *p, double v) {
    switch (dt) {
    case HS_DTYPE_F32: *(float *)p = (float)v; break;
    case HS_DTYPE_F64: *(double *)p = v; break;
    case HS_DTYPE_I64: *(int64_t *)p = (int64_t)clamp_round(v, -9.2233720368547748e18, 9.2233720368547748e18); break;
    case HS_DTYPE_I32: *(int32_t *)p = (int32_t)clamp_round(v, -2147483648.0, 2147483647.0); break;
    case HS_DTYPE_U8: *(uint8_t *)p = (uint8_t)clamp_round(v, 0, 255); break;
    case HS_DTYPE_U16: *(uint16_t *)p = (uint16_t)clamp_round(v, 0, 65535); break;
    default: break;
    }
}

static size_t flat_offset(const hs_tensor *t, int64_t i) {
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->stride[d];
        i /= n;
    }
    return (size_t)off * dtypes[t->dtype].size;
}

double hs_tensor_get_flat(const hs_tensor *t, int64_t i) {
    return load(t->dtype, (const char *)t->data + flat_offset(t, i));
}

void hs_tensor_set_flat(hs_tensor *t, int64_t i, double v) { store(t->dtype, (char *)t->data + flat_offset(t, i), v); }

static hs_status index_offset(const hs_tensor *t, const int64_t *index, size_t *off) {
    int64_t o = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d])
            return HS_FAIL(HS_ERR_ARG, "index %lld out of bounds for dim %d of size %lld", (long long)index[d], d,
                           (long long)t->shape[d]);
        o += index[d] * t->stride[d];
    }
    *off = (size_t)o * dtypes[t->dtype].size;
    return HS_OK;
}

hs_status hs_tensor_get(const hs_tensor *t, const int64_t *index, double *value) {
    size_t off = 0;
    HS_TRY(index_offset(t, index, &off));
    *value = load(t->dtype, (const char *)t->data + off);
    return HS_OK;
}

hs_status hs_tensor_set(hs_tensor *t, const int64_t *index, double value) {
    size_t off = 0;
    HS_TRY(index_offset(t, index, &off));
    store(t->dtype, (char *)t->data + off, value);
    return HS_OK;
}

// Walk all elements of dst/src in row-major order with an index counter (no allocation).
hs_status hs_tensor_copy(hs_tensor *dst, const hs_tensor *src) {
    char a[128], b[128];
    if (hs_tensor_numel(dst) != hs_tensor_numel(src) || !hs_tensor_same_shape(dst, src))
        return HS_FAIL(HS_ERR_SHAPE, "copy: destination %s, source %s", hs_tensor_shape_str(dst, a, sizeof a),
                       hs_tensor_shape_str(src, b, sizeof b));
    int64_t n = hs_tensor_numel(src);
    if (dst->dtype == src->dtype && hs_tensor_is_contiguous(dst) && hs_tensor_is_contiguous(src)) {
        memmove(dst->data, src->data, (size_t)n * dtypes[src->dtype].size);
        return HS_OK;
    }
    int64_t idx[HS_MAX_DIMS] = {0};
    const size_t ds = dtypes[dst->dtype].size, ss = dtypes[src->dtype].size;
    int nd = src->ndim;
    for (int64_t i = 0; i < n; i++) {
        int64_t od = 0, os = 0;
        for (int d = 0; d < nd; d++) {
            od += idx[d] * dst->stride[d];
            os += idx[d] * src->stride[d];
        }
        const char *sp = (const char *)src->data + (size_t)os * ss;
        char *dp = (char *)dst->data + (size_t)od * ds;
        if (dst->dtype == src->dtype)
            memcpy(dp, sp, ds);
        else
            store(dst->dtype, dp, load(src->dtype, sp));
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < src->shape[d])
                break;
            idx[d] = 0;
        }
    }
    return HS_OK;
}

hs_status hs_tensor_fill(hs_tensor *t, double value) {
    int64_t n = hs_tensor_numel(t);
    if (t->dtype == HS_DTYPE_F32 && hs_tensor_is_contiguous(t)) {
        float *p = t->data, v = (float)value;
        for (int64_t i = 0; i < n; i++)
            p[i] = v;
        return HS_OK;
    }
    for (int64_t i = 0; i < n; i++)
        hs_tensor_set_flat(t, i, value);
    return HS_OK;
}

hs_status hs_tensor_arange(hs_tensor **out, hs_dtype dt, double start, double stop, double step) {
    *out = NULL;
    if (step == 0 || isnan(step) || isnan(start) || isnan(stop))
        return HS_FAIL(HS_ERR_ARG, "arange: step must be non-zero and bounds finite");
    double cnt = ceil((stop - start) / step);
    if (cnt < 0)
        cnt = 0;
    if (cnt > 1e10)
        return HS_FAIL(HS_ERR_ARG, "arange: %g elements is too many", cnt);
    int64_t n = (int64_t)cnt;
    HS_TRY(hs_tensor_new(out, dt, 1, &n));
    for (int64_t i = 0; i < n; i++)
        hs_tensor_set_flat(*out, i, start + (double)i * step);
    return HS_OK;
}

hs_status hs_tensor_rand_uniform(hs_tensor *t, uint64_t seed, double lo, double hi) {
    if (!(hi >= lo))
        return HS_FAIL(HS_ERR_ARG, "rand_uniform: need lo <= hi, got %g, %g", lo, hi);
    int64_t n = hs_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        hs_tensor_set_flat(t, i, lo + (hi - lo) * (double)hs_rng_uniform(seed, 0, (uint64_t)i));
    return HS_OK;
}

hs_status hs_tensor_rand_normal(hs_tensor *t, uint64_t seed, double mean, double std) {
    if (!(std >= 0))
        return HS_FAIL(HS_ERR_ARG, "rand_normal: std must be >= 0, got %g", std);
    int64_t n = hs_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        hs_tensor_set_flat(t, i, mean + std * (double)hs_rng_normal(seed, 1, (uint64_t)i));
    return HS_OK;
}
