// core/tensor_ops.c: eager tensor math (see tensor_ops.h for the contract). Everything runs on
// one strided N-d iterator (`iter`): operands are broadcast to the output shape with stride 0,
// adjacent dims that are contiguous for every operand are merged, and the innermost dim is
// handed to a kernel as (pointers, byte strides, length). Kernels compute in double so that
// the contiguous F32 fast paths and the generic path agree bit for bit.
#include "tensor_ops.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "blas.h"
#include "parallel.h"

#define MAX_OPS 4
#define PAR_MIN 65536   // elements (or element-visits) below which loops stay on one thread
#define PAR_GRAIN 16384 // elements per parallel chunk for elementwise loops

// ---- element load/store (the conversions of hs_tensor_copy) ----

static inline double ld(hs_dtype dt, const char *p) {
    switch (dt) {
    case HS_DTYPE_F32: return (double)*(const float *)p;
    case HS_DTYPE_F64: return *(const double *)p;
    case HS_DTYPE_I64: return (double)*(const int64_t *)p;
    case HS_DTYPE_I32: return *(const int32_t *)p;
    case HS_DTYPE_U8: return *(const uint8_t *)p;
    case HS_DTYPE_U16: return *(const uint16_t *)p;
    default: return 0;
    }
}

static inline double round_sat(double v, double lo, double hi) {
    if (isnan(v))
        return 0;
    v = nearbyint(v);
    return v < lo ? lo : v > hi ? hi : v;
}

static inline void st(hs_dtype dt, char *p, double v) {
    switch (dt) {
    case HS_DTYPE_F32: *(float *)p = (float)v; break;
    case HS_DTYPE_F64: *(double *)p = v; break;
    // 9223372036854774784 is the largest double below 2^63 (2^63 itself overflows int64_t)
    case HS_DTYPE_I64: *(int64_t *)p = (int64_t)round_sat(v, -9223372036854775808.0, 9223372036854774784.0); break;
    case HS_DTYPE_I32: *(int32_t *)p = (int32_t)round_sat(v, -2147483648.0, 2147483647.0); break;
    case HS_DTYPE_U8: *(uint8_t *)p = (uint8_t)round_sat(v, 0, 255); break;
    case HS_DTYPE_U16: *(uint16_t *)p = (uint16_t)round_sat(v, 0, 65535); break;
    default: break;
    }
}

static int is_float(hs_dtype dt) { return dt == HS_DTYPE_F32 || dt == HS_DTYPE_F64; }

// ---- the N-d iterator ----

typedef struct {
    int ndim;                            // >= 1 after iter_init
    int nops;
    int64_t n;                           // elements of the iteration space
    int64_t shape[HS_MAX_DIMS];
    int64_t st[MAX_OPS][HS_MAX_DIMS];    // byte strides, 0 on broadcast dims
    char *base[MAX_OPS];
} iter;

// kernel over one innermost segment: p[k] points at element 0 of operand k, s[k] its byte stride
typedef void (*seg_fn)(void *ctx, char *const *p, const int64_t *s, int64_t n);

// ops[k] broadcast (right-aligned) to (ndim, shape); the caller has checked compatibility.
static void iter_init(iter *it, int ndim, const int64_t *shape, const hs_tensor *const *ops, int nops) {
    int64_t sh[HS_MAX_DIMS], str[MAX_OPS][HS_MAX_DIMS];
    it->nops = nops;
    it->n = 1;
    for (int d = 0; d < ndim; d++)
        it->n *= shape[d];
    for (int k = 0; k < nops; k++) {
        const hs_tensor *t = ops[k];
        size_t es = hs_dtype_size(t->dtype);
        int off = ndim - t->ndim;
        for (int d = 0; d < ndim; d++) {
            int td = d - off;
            str[k][d] = (td < 0 || t->shape[td] == 1) ? 0 : t->stride[td] * (int64_t)es;
        }
        it->base[k] = t->data;
    }
    // drop size-1 dims, then merge d into the following kept dim when every operand allows it
    int nd = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1)
            continue;
        sh[nd] = shape[d];
        for (int k = 0; k < nops; k++)
            it->st[k][nd] = str[k][d];
        nd++;
    }
    int m = 0;  // merged dims written so far
    for (int d = 0; d < nd; d++) {
        if (m > 0) {
            int ok = 1;
            for (int k = 0; k < nops && ok; k++)
                ok = it->st[k][m - 1] == it->st[k][d] * sh[d];
            if (ok) {
                it->shape[m - 1] *= sh[d];
                for (int k = 0; k < nops; k++)
                    it->st[k][m - 1] = it->st[k][d];
                continue;
            }
        }
        it->shape[m] = sh[d];
        for (int k = 0; k < nops; k++)
            it->st[k][m] = it->st[k][d];
        m++;
    }
    if (m == 0) {
        it->shape[0] = 1;
        for (int k = 0; k < nops; k++)
            it->st[k][0] = 0;
        m = 1;
    }
    it->ndim = m;
}

// Visit the elements [b, e) of the row-major iteration space, one inner segment at a time.
static void iter_range(const iter *it, int64_t b, int64_t e, seg_fn fn, void *ctx) {
    int nd = it->ndim, last = nd - 1;
    int64_t idx[HS_MAX_DIMS];
    int64_t r = b;
    for (int d = last; d >= 0; d--) {
        idx[d] = r % it->shape[d];
        r /= it->shape[d];
    }
    char *p[MAX_OPS];
    int64_t s[MAX_OPS];
    for (int k = 0; k < it->nops; k++)
        s[k] = it->st[k][last];
    int64_t pos = b;
    while (pos < e) {
        for (int k = 0; k < it->nops; k++) {
            int64_t off = 0;
            for (int d = 0; d < nd; d++)
                off += idx[d] * it->st[k][d];
            p[k] = it->base[k] + off;
        }
        int64_t len = it->shape[last] - idx[last];
        if (len > e - pos)
            len = e - pos;
        fn(ctx, p, s, len);
        pos += len;
        idx[last] += len;
        for (int d = last; d > 0 && idx[d] >= it->shape[d]; d--) {
            idx[d] = 0;
            idx[d - 1]++;
        }
    }
}

typedef struct {
    const iter *it;
    seg_fn fn;
    void *ctx;
} par_job;

static void par_range(void *vj, int64_t b, int64_t e) {
    const par_job *j = vj;
    iter_range(j->it, b, e, j->fn, j->ctx);
}

// Run fn over the whole space; split into fixed chunks of `grain` elements when the work
// (elements * cost) is large. Each element is computed independently, so the split never
// changes a result.
static void iter_run(const iter *it, seg_fn fn, void *ctx, int64_t cost, int64_t grain) {
    if (it->n * cost >= PAR_MIN && it->n > grain) {
        par_job j = {it, fn, ctx};
        hs_parallel_for(it->n, grain, par_range, &j);
    } else {
        iter_range(it, 0, it->n, fn, ctx);
    }
}

// ---- shape helpers ----

static hs_status broadcast2(const char *name, int *ndim, int64_t *shape, const hs_tensor *a,
                            const hs_tensor *b) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char x[128], y[128];
            return HS_FAIL(HS_ERR_SHAPE, "%s: shapes %s and %s do not broadcast (size %lld vs %lld)", name,
                           hs_tensor_shape_str(a, x, sizeof x), hs_tensor_shape_str(b, y, sizeof y), (long long)sa,
                           (long long)sb);
        }
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = nd;
    return HS_OK;
}

hs_status hs_broadcast_shape(int *ndim, int64_t shape[HS_MAX_DIMS], const hs_tensor *a, const hs_tensor *b) {
    return broadcast2("broadcast", ndim, shape, a, b);
}

static int shape_is(const hs_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim)
        return 0;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != shape[d])
            return 0;
    return 1;
}

static hs_status check_out(const char *name, const hs_tensor *out, int ndim, const int64_t *shape) {
    if (shape_is(out, ndim, shape))
        return HS_OK;
    char x[128], y[128];
    return HS_FAIL(HS_ERR_SHAPE, "%s: out is %s, want %s", name, hs_tensor_shape_str(out, x, sizeof x),
                   hs_shape_str(ndim, shape, y, sizeof y));
}

static hs_status check_dtype(const char *name, const hs_tensor *t) {
    if ((unsigned)t->dtype >= HS_DTYPE_COUNT)
        return HS_FAIL(HS_ERR_DTYPE, "%s: bad dtype %d", name, (int)t->dtype);
    return HS_OK;
}

// A view of t with dim d removed (no allocation).
static hs_tensor drop_dim(const hs_tensor *t, int d) {
    hs_tensor v = *t;
    v.storage = NULL;
    for (int i = d; i < t->ndim - 1; i++) {
        v.shape[i] = t->shape[i + 1];
        v.stride[i] = t->stride[i + 1];
    }
    v.ndim = t->ndim - 1;
    return v;
}

// ---- copy through the iterator (used by concat, stack, index_select, matmul) ----

typedef struct {
    hs_dtype od, id;
} copy_ctx;

static void copy_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    const copy_ctx *c = vc;
    size_t es = hs_dtype_size(c->od);
    if (c->od == c->id && s[0] == (int64_t)es && s[1] == (int64_t)es) {
        memcpy(p[0], p[1], (size_t)n * es);
        return;
    }
    if (c->od == c->id && c->od == HS_DTYPE_F32) {
        float *o = (float *)p[0];
        const float *a = (const float *)p[1];
        int64_t so = s[0] / 4, sa = s[1] / 4;
        for (int64_t i = 0; i < n; i++)
            o[i * so] = a[i * sa];
        return;
    }
    for (int64_t i = 0; i < n; i++)
        st(c->od, p[0] + i * s[0], ld(c->id, p[1] + i * s[1]));
}

// dst = src (same shape, checked by the caller; src may broadcast).
static void copy_into(hs_tensor *dst, const hs_tensor *src) {
    iter it;
    const hs_tensor *ops[2] = {dst, src};
    iter_init(&it, dst->ndim, dst->shape, ops, 2);
    copy_ctx c = {dst->dtype, src->dtype};
    iter_run(&it, copy_seg, &c, 1, PAR_GRAIN);
}

// ---- binary ops ----

static const char *const binop_names[HS_BINOP_COUNT] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                                        "eq",  "ne",  "lt",  "le",  "gt",  "ge"};

const char *hs_binop_name(hs_binop op) { return (unsigned)op < HS_BINOP_COUNT ? binop_names[op] : "?"; }

static int dtype_rank(hs_dtype dt) {
    switch (dt) {
    case HS_DTYPE_U8: return 0;
    case HS_DTYPE_U16: return 1;
    case HS_DTYPE_I32: return 2;
    case HS_DTYPE_I64: return 3;
    case HS_DTYPE_F32: return 4;
    case HS_DTYPE_F64: return 5;
    default: return 4;
    }
}

hs_dtype hs_binop_result_dtype(hs_binop op, hs_dtype a, hs_dtype b) {
    if (op >= HS_BINOP_EQ)
        return HS_DTYPE_U8;
    hs_dtype w = dtype_rank(a) >= dtype_rank(b) ? a : b;
    if ((op == HS_BINOP_DIV || op == HS_BINOP_POW) && !is_float(w))
        return HS_DTYPE_F32;
    return w;
}

static inline double binop_apply(hs_binop op, double a, double b) {
    switch (op) {
    case HS_BINOP_ADD: return a + b;
    case HS_BINOP_SUB: return a - b;
    case HS_BINOP_MUL: return a * b;
    case HS_BINOP_DIV: return a / b;
    case HS_BINOP_POW: return pow(a, b);
    case HS_BINOP_MAXIMUM: return isnan(a) ? a : isnan(b) ? b : a > b ? a : b;
    case HS_BINOP_MINIMUM: return isnan(a) ? a : isnan(b) ? b : a < b ? a : b;
    case HS_BINOP_EQ: return a == b;
    case HS_BINOP_NE: return a != b;
    case HS_BINOP_LT: return a < b;
    case HS_BINOP_LE: return a <= b;
    case HS_BINOP_GT: return a > b;
    case HS_BINOP_GE: return a >= b;
    default: return NAN;
    }
}

typedef struct {
    hs_binop op;
    hs_dtype od, ad, bd;
} bin_ctx;

// All-F32 segment. +,-,*,/ on floats equal the double result rounded to float (double has more
// than 2*24+2 bits), so these loops stay in float and vectorise; the rest goes through double.
static void binary_f32(hs_binop op, float *o, int64_t so, const float *a, int64_t sa, const float *b, int64_t sb,
                       int64_t n) {
    switch (op) {
    case HS_BINOP_ADD:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = a[i * sa] + b[i * sb];
        return;
    case HS_BINOP_SUB:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = a[i * sa] - b[i * sb];
        return;
    case HS_BINOP_MUL:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = a[i * sa] * b[i * sb];
        return;
    case HS_BINOP_DIV:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = a[i * sa] / b[i * sb];
        return;
    default:
        for (int64_t i = 0; i < n; i++)
            o[i * so] = (float)binop_apply(op, (double)a[i * sa], (double)b[i * sb]);
        return;
    }
}

static void binary_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    const bin_ctx *c = vc;
    if (c->ad == HS_DTYPE_F32 && c->bd == HS_DTYPE_F32) {
        const float *a = (const float *)p[1], *b = (const float *)p[2];
        int64_t sa = s[1] / 4, sb = s[2] / 4;
        if (c->od == HS_DTYPE_F32) {
            float *o = (float *)p[0];
            int64_t so = s[0] / 4;
            if (so == 1 && sa == 1 && sb == 1)
                binary_f32(c->op, o, 1, a, 1, b, 1, n);  // unit strides: lets the compiler vectorise
            else if (so == 1 && sa == 1 && sb == 0)
                binary_f32(c->op, o, 1, a, 1, b, 0, n);
            else
                binary_f32(c->op, o, so, a, sa, b, sb, n);
            return;
        }
        if (c->od == HS_DTYPE_U8) {  // comparison masks
            uint8_t *o = (uint8_t *)p[0];
            for (int64_t i = 0; i < n; i++)
                o[i * s[0]] = (uint8_t)round_sat(binop_apply(c->op, (double)a[i * sa], (double)b[i * sb]), 0, 255);
            return;
        }
    }
    for (int64_t i = 0; i < n; i++)
        st(c->od, p[0] + i * s[0], binop_apply(c->op, ld(c->ad, p[1] + i * s[1]), ld(c->bd, p[2] + i * s[2])));
}

static hs_status run_binary(hs_tensor *out, hs_binop op, const hs_tensor *a, const hs_tensor *b) {
    const char *name = hs_binop_name(op);
    if ((unsigned)op >= HS_BINOP_COUNT)
        return HS_FAIL(HS_ERR_ARG, "binary: unknown op %d", (int)op);
    HS_TRY(check_dtype(name, out));
    HS_TRY(check_dtype(name, a));
    HS_TRY(check_dtype(name, b));
    int nd;
    int64_t sh[HS_MAX_DIMS];
    HS_TRY(broadcast2(name, &nd, sh, a, b));
    HS_TRY(check_out(name, out, nd, sh));
    iter it;
    const hs_tensor *ops[3] = {out, a, b};
    iter_init(&it, nd, sh, ops, 3);
    bin_ctx c = {op, out->dtype, a->dtype, b->dtype};
    iter_run(&it, binary_seg, &c, op == HS_BINOP_POW ? 8 : 1, PAR_GRAIN);
    return HS_OK;
}

hs_status hs_tensor_binary(hs_tensor *out, hs_binop op, const hs_tensor *a, const hs_tensor *b) {
    return run_binary(out, op, a, b);
}

hs_status hs_tensor_binary_scalar(hs_tensor *out, hs_binop op, const hs_tensor *a, double s, int scalar_first) {
    // the scalar becomes a 0-d tensor on the stack (broadcasts with stride 0)
    float sf = (float)s;
    hs_tensor sc;
    memset(&sc, 0, sizeof sc);
    sc.ndim = 0;
    if (a->dtype == HS_DTYPE_F32) {
        sc.dtype = HS_DTYPE_F32;
        sc.data = &sf;
    } else {
        sc.dtype = HS_DTYPE_F64;
        sc.data = &s;
    }
    return scalar_first ? run_binary(out, op, &sc, a) : run_binary(out, op, a, &sc);
}

// where: ops = out, mask, a, b
typedef struct {
    hs_dtype od, md, ad, bd;
} where_ctx;

static void where_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    const where_ctx *c = vc;
    if (c->od == HS_DTYPE_F32 && c->md == HS_DTYPE_U8 && c->ad == HS_DTYPE_F32 && c->bd == HS_DTYPE_F32) {
        float *o = (float *)p[0];
        const uint8_t *m = (const uint8_t *)p[1];
        const float *a = (const float *)p[2], *b = (const float *)p[3];
        int64_t so = s[0] / 4, sa = s[2] / 4, sb = s[3] / 4;
        for (int64_t i = 0; i < n; i++)
            o[i * so] = m[i * s[1]] ? a[i * sa] : b[i * sb];
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double m = ld(c->md, p[1] + i * s[1]);
        st(c->od, p[0] + i * s[0], m != 0 ? ld(c->ad, p[2] + i * s[2]) : ld(c->bd, p[3] + i * s[3]));
    }
}

hs_status hs_tensor_where(hs_tensor *out, const hs_tensor *mask, const hs_tensor *a, const hs_tensor *b) {
    HS_TRY(check_dtype("where", out));
    HS_TRY(check_dtype("where", mask));
    HS_TRY(check_dtype("where", a));
    HS_TRY(check_dtype("where", b));
    int nd, nd2;
    int64_t sh[HS_MAX_DIMS], sh2[HS_MAX_DIMS];
    HS_TRY(broadcast2("where", &nd, sh, a, b));
    hs_tensor ab;  // a shape-only stand-in for the broadcast of a and b
    memset(&ab, 0, sizeof ab);
    ab.ndim = nd;
    memcpy(ab.shape, sh, sizeof sh);
    HS_TRY(broadcast2("where", &nd2, sh2, mask, &ab));
    HS_TRY(check_out("where", out, nd2, sh2));
    iter it;
    const hs_tensor *ops[4] = {out, mask, a, b};
    iter_init(&it, nd2, sh2, ops, 4);
    where_ctx c = {out->dtype, mask->dtype, a->dtype, b->dtype};
    iter_run(&it, where_seg, &c, 1, PAR_GRAIN);
    return HS_OK;
}

typedef struct {
    hs_dtype od, td, md;
    double value;
} mfill_ctx;

static void mfill_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    const mfill_ctx *c = vc;
    for (int64_t i = 0; i < n; i++) {
        double m = ld(c->md, p[2] + i * s[2]);
        st(c->od, p[0] + i * s[0], m != 0 ? c->value : ld(c->td, p[1] + i * s[1]));
    }
}

hs_status hs_tensor_masked_fill(hs_tensor *out, const hs_tensor *t, const hs_tensor *mask, double value) {
    HS_TRY(check_dtype("masked_fill", out));
    HS_TRY(check_dtype("masked_fill", t));
    HS_TRY(check_dtype("masked_fill", mask));
    int nd;
    int64_t sh[HS_MAX_DIMS];
    HS_TRY(broadcast2("masked_fill", &nd, sh, t, mask));
    if (!shape_is(t, nd, sh)) {
        char x[128], y[128];
        return HS_FAIL(HS_ERR_SHAPE, "masked_fill: mask %s does not broadcast to tensor %s",
                       hs_tensor_shape_str(mask, x, sizeof x), hs_tensor_shape_str(t, y, sizeof y));
    }
    HS_TRY(check_out("masked_fill", out, t->ndim, t->shape));
    iter it;
    const hs_tensor *ops[3] = {out, t, mask};
    iter_init(&it, t->ndim, t->shape, ops, 3);
    mfill_ctx c = {out->dtype, t->dtype, mask->dtype, value};
    iter_run(&it, mfill_seg, &c, 1, PAR_GRAIN);
    return HS_OK;
}

// ---- unary ops ----

static const char *const unop_names[HS_UNOP_COUNT] = {"neg",  "abs",     "exp",  "log",   "sqrt", "square",
                                                      "sin",  "cos",     "tanh", "sigmoid", "relu", "floor",
                                                      "ceil", "round",   "sign", "log1p", "expm1"};

const char *hs_unop_name(hs_unop op) { return (unsigned)op < HS_UNOP_COUNT ? unop_names[op] : "?"; }

static inline double unop_apply(hs_unop op, double x) {
    switch (op) {
    case HS_UNOP_NEG: return -x;
    case HS_UNOP_ABS: return fabs(x);
    case HS_UNOP_EXP: return exp(x);
    case HS_UNOP_LOG: return log(x);
    case HS_UNOP_SQRT: return sqrt(x);
    case HS_UNOP_SQUARE: return x * x;
    case HS_UNOP_SIN: return sin(x);
    case HS_UNOP_COS: return cos(x);
    case HS_UNOP_TANH: return tanh(x);
    case HS_UNOP_SIGMOID: {  // never exp of a large positive number
        if (x >= 0)
            return 1.0 / (1.0 + exp(-x));
        double e = exp(x);
        return e / (1.0 + e);
    }
    case HS_UNOP_RELU: return x > 0 ? x : isnan(x) ? x : 0.0;
    case HS_UNOP_FLOOR: return floor(x);
    case HS_UNOP_CEIL: return ceil(x);
    case HS_UNOP_ROUND: return nearbyint(x);
    case HS_UNOP_SIGN: return x > 0 ? 1.0 : x < 0 ? -1.0 : x == 0 ? 0.0 : x;
    case HS_UNOP_LOG1P: return log1p(x);
    case HS_UNOP_EXPM1: return expm1(x);
    default: return NAN;
    }
}

typedef struct {
    hs_unop op;  // HS_UNOP_COUNT: clamp
    hs_dtype od, ad;
    double lo, hi;
} un_ctx;

static inline double clamp_apply(double x, double lo, double hi) {
    if (isnan(x))
        return x;
    return x < lo ? lo : x > hi ? hi : x;
}

static void unary_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    const un_ctx *c = vc;
    if (c->od == HS_DTYPE_F32 && c->ad == HS_DTYPE_F32) {
        float *o = (float *)p[0];
        const float *a = (const float *)p[1];
        int64_t so = s[0] / 4, sa = s[1] / 4;
        if (c->op == HS_UNOP_COUNT) {
            for (int64_t i = 0; i < n; i++)
                o[i * so] = (float)clamp_apply((double)a[i * sa], c->lo, c->hi);
        } else if (so == 1 && sa == 1) {
            for (int64_t i = 0; i < n; i++)
                o[i] = (float)unop_apply(c->op, (double)a[i]);
        } else {
            for (int64_t i = 0; i < n; i++)
                o[i * so] = (float)unop_apply(c->op, (double)a[i * sa]);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double x = ld(c->ad, p[1] + i * s[1]);
        st(c->od, p[0] + i * s[0], c->op == HS_UNOP_COUNT ? clamp_apply(x, c->lo, c->hi) : unop_apply(c->op, x));
    }
}

static hs_status run_unary(const char *name, hs_tensor *out, const hs_tensor *a, un_ctx *c) {
    HS_TRY(check_dtype(name, out));
    HS_TRY(check_dtype(name, a));
    HS_TRY(check_out(name, out, a->ndim, a->shape));
    iter it;
    const hs_tensor *ops[2] = {out, a};
    iter_init(&it, a->ndim, a->shape, ops, 2);
    c->od = out->dtype;
    c->ad = a->dtype;
    int cheap = c->op == HS_UNOP_COUNT || c->op == HS_UNOP_NEG || c->op == HS_UNOP_ABS || c->op == HS_UNOP_SQUARE ||
                c->op == HS_UNOP_RELU;
    iter_run(&it, unary_seg, c, cheap ? 1 : 8, PAR_GRAIN);
    return HS_OK;
}

hs_status hs_tensor_unary(hs_tensor *out, hs_unop op, const hs_tensor *a) {
    if ((unsigned)op >= HS_UNOP_COUNT)
        return HS_FAIL(HS_ERR_ARG, "unary: unknown op %d", (int)op);
    un_ctx c = {op, HS_DTYPE_F32, HS_DTYPE_F32, 0, 0};
    return run_unary(hs_unop_name(op), out, a, &c);
}

hs_status hs_tensor_clamp(hs_tensor *out, const hs_tensor *a, double lo, double hi) {
    if (isnan(lo) || isnan(hi) || lo > hi)
        return HS_FAIL(HS_ERR_ARG, "clamp: need lo <= hi, got %g, %g", lo, hi);
    un_ctx c = {HS_UNOP_COUNT, HS_DTYPE_F32, HS_DTYPE_F32, lo, hi};
    return run_unary("clamp", out, a, &c);
}

// ---- comparisons of whole tensors ----

typedef struct {
    hs_dtype ad, bd;
    double atol, rtol;
    int exact;
    int ok;
} close_ctx;

static void close_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    close_ctx *c = vc;
    for (int64_t i = 0; i < n && c->ok; i++) {
        double a = ld(c->ad, p[0] + i * s[0]), b = ld(c->bd, p[1] + i * s[1]);
        if (c->exact ? !(a == b) : !(fabs(a - b) <= c->atol + c->rtol * fabs(b)))
            c->ok = 0;
    }
}

hs_status hs_tensor_equal(int *result, const hs_tensor *a, const hs_tensor *b) {
    HS_TRY(check_dtype("equal", a));
    HS_TRY(check_dtype("equal", b));
    *result = hs_tensor_same_shape(a, b);
    if (!*result)
        return HS_OK;
    iter it;
    const hs_tensor *ops[2] = {a, b};
    iter_init(&it, a->ndim, a->shape, ops, 2);
    close_ctx c = {a->dtype, b->dtype, 0, 0, 1, 1};
    iter_range(&it, 0, it.n, close_seg, &c);
    *result = c.ok;
    return HS_OK;
}

hs_status hs_tensor_allclose(int *result, const hs_tensor *a, const hs_tensor *b, double atol, double rtol) {
    HS_TRY(check_dtype("allclose", a));
    HS_TRY(check_dtype("allclose", b));
    if (!(atol >= 0) || !(rtol >= 0))
        return HS_FAIL(HS_ERR_ARG, "allclose: tolerances must be >= 0, got atol %g, rtol %g", atol, rtol);
    int nd;
    int64_t sh[HS_MAX_DIMS];
    HS_TRY(broadcast2("allclose", &nd, sh, a, b));
    iter it;
    const hs_tensor *ops[2] = {a, b};
    iter_init(&it, nd, sh, ops, 2);
    close_ctx c = {a->dtype, b->dtype, atol, rtol, 0, 1};
    iter_range(&it, 0, it.n, close_seg, &c);
    *result = c.ok;
    return HS_OK;
}

// ---- reductions ----

typedef enum { RED_SUM, RED_PROD, RED_MEAN, RED_VAR, RED_STD, RED_MAX, RED_MIN } red_kind;

static const char *const red_names[] = {"sum", "prod", "mean", "var", "std", "max", "min"};

// max/min order with NaN as the extreme (so it propagates); strict, so ties keep the first.
static inline int better(red_kind k, double x, double best) {
    if (isnan(x))
        return !isnan(best);
    return k == RED_MAX ? x > best : x < best;
}

hs_status hs_reduce_shape(int *ndim, int64_t shape[HS_MAX_DIMS], const hs_tensor *t, int dim, int keepdim) {
    char x[128];
    if (dim < -1 || dim >= t->ndim)
        return HS_FAIL(HS_ERR_ARG, "reduce: dim %d out of range for %s", dim, hs_tensor_shape_str(t, x, sizeof x));
    int nd = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (d == dim || dim == -1) {
            if (keepdim)
                shape[nd++] = 1;
        } else {
            shape[nd++] = t->shape[d];
        }
    }
    *ndim = nd;
    return HS_OK;
}

static hs_status check_reduce_out(const char *name, const hs_tensor *out, const hs_tensor *t, int dim, int keepdim) {
    char x[128], y[128];
    HS_TRY(check_dtype(name, out));
    if (dim < -1 || dim >= t->ndim)
        return HS_FAIL(HS_ERR_ARG, "%s: dim %d out of range for %s", name, dim, hs_tensor_shape_str(t, x, sizeof x));
    if (dim == -1) {
        if (hs_tensor_numel(out) != 1)
            return HS_FAIL(HS_ERR_SHAPE, "%s: out is %s, want one element (all dims of %s)", name,
                           hs_tensor_shape_str(out, x, sizeof x), hs_tensor_shape_str(t, y, sizeof y));
        return HS_OK;
    }
    int nd;
    int64_t sh[HS_MAX_DIMS];
    HS_TRY(hs_reduce_shape(&nd, sh, t, dim, keepdim));
    if (!shape_is(out, nd, sh)) {
        char z[128];
        return HS_FAIL(HS_ERR_SHAPE, "%s: out is %s, want %s (dim %d of %s%s)", name,
                       hs_tensor_shape_str(out, x, sizeof x), hs_shape_str(nd, sh, z, sizeof z), dim,
                       hs_tensor_shape_str(t, y, sizeof y), keepdim ? ", keepdim" : "");
    }
    return HS_OK;
}

// -- all elements: fixed chunks of the flattened tensor, combined in chunk order --

#define MAX_CHUNKS 1024
#define MIN_CHUNK 32768

typedef struct {
    red_kind kind;   // RED_SUM (also for mean), RED_PROD, RED_VAR (squared deviations), RED_MAX/MIN
    hs_dtype dt;
    double mean;
    double acc;
    int64_t pos, best_i;
} flat_acc;

static void flat_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    flat_acc *a = vc;
    const char *q = p[0];
    int64_t sq = s[0];
    switch (a->kind) {
    case RED_SUM:
        if (a->dt == HS_DTYPE_F32) {
            double acc = a->acc;
            for (int64_t i = 0; i < n; i++)
                acc += (double)*(const float *)(q + i * sq);
            a->acc = acc;
        } else {
            for (int64_t i = 0; i < n; i++)
                a->acc += ld(a->dt, q + i * sq);
        }
        break;
    case RED_PROD:
        for (int64_t i = 0; i < n; i++)
            a->acc *= ld(a->dt, q + i * sq);
        break;
    case RED_VAR:
        for (int64_t i = 0; i < n; i++) {
            double d = ld(a->dt, q + i * sq) - a->mean;
            a->acc += d * d;
        }
        break;
    default:  // max / min
        for (int64_t i = 0; i < n; i++) {
            double x = ld(a->dt, q + i * sq);
            if (a->best_i < 0 || better(a->kind, x, a->acc)) {
                a->acc = x;
                a->best_i = a->pos + i;
            }
        }
        break;
    }
    a->pos += n;
}

typedef struct {
    const iter *it;
    red_kind kind;
    hs_dtype dt;
    double mean;
    int64_t n, g;
    double part[MAX_CHUNKS];
    int64_t part_i[MAX_CHUNKS];
} flat_job;

static void flat_chunks(void *vj, int64_t cb, int64_t ce) {
    flat_job *j = vj;
    for (int64_t c = cb; c < ce; c++) {
        int64_t b = c * j->g, e = b + j->g < j->n ? b + j->g : j->n;
        flat_acc a = {j->kind, j->dt, j->mean, j->kind == RED_PROD ? 1.0 : 0.0, b, -1};
        iter_range(j->it, b, e, flat_seg, &a);
        j->part[c] = a.acc;
        j->part_i[c] = a.best_i;
    }
}

// One pass over all of t: returns the combined accumulator (and the best flat index).
static double flat_pass(flat_job *j, red_kind kind, double mean, int64_t *best_i) {
    j->kind = kind;
    j->mean = mean;
    int64_t nch = (j->n + j->g - 1) / j->g;
    if (j->n >= PAR_MIN && nch > 1)
        hs_parallel_for(nch, 1, flat_chunks, j);
    else
        flat_chunks(j, 0, nch);
    double acc = kind == RED_PROD ? 1.0 : 0.0;
    int64_t bi = -1;
    for (int64_t c = 0; c < nch; c++) {
        if (kind == RED_MAX || kind == RED_MIN) {
            if (bi < 0 || better(kind, j->part[c], acc)) {
                acc = j->part[c];
                bi = j->part_i[c];
            }
        } else if (kind == RED_PROD) {
            acc *= j->part[c];
        } else {
            acc += j->part[c];
        }
    }
    if (best_i)
        *best_i = bi;
    return acc;
}

static hs_status reduce_all(hs_tensor *vals, hs_tensor *idx, const hs_tensor *t, red_kind kind, int unbiased) {
    flat_job jb, *j = &jb;  // ~16 KB of partials on the stack, never on the heap
    iter it;
    const hs_tensor *ops[1] = {t};
    iter_init(&it, t->ndim, t->shape, ops, 1);
    j->it = &it;
    j->dt = t->dtype;
    j->n = hs_tensor_numel(t);
    j->g = (j->n + MAX_CHUNKS - 1) / MAX_CHUNKS;
    if (j->g < MIN_CHUNK)
        j->g = MIN_CHUNK;
    double n = (double)j->n, v;
    int64_t bi = -1;
    if ((kind == RED_MAX || kind == RED_MIN) && j->n == 0)
        return HS_FAIL(HS_ERR_ARG, "%s: cannot reduce an empty tensor", red_names[kind]);
    switch (kind) {
    case RED_SUM: v = flat_pass(j, RED_SUM, 0, NULL); break;
    case RED_PROD: v = flat_pass(j, RED_PROD, 0, NULL); break;
    case RED_MEAN: v = flat_pass(j, RED_SUM, 0, NULL) / n; break;
    case RED_VAR:
    case RED_STD: {
        double m = flat_pass(j, RED_SUM, 0, NULL) / n;
        v = flat_pass(j, RED_VAR, m, NULL) / (n - (unbiased ? 1 : 0));
        if (kind == RED_STD)
            v = sqrt(v);
        break;
    }
    default: v = flat_pass(j, kind, 0, &bi); break;
    }
    if (vals)
        st(vals->dtype, vals->data, v);
    if (idx)
        st(idx->dtype, idx->data, (double)bi);
    return HS_OK;
}

// -- along one dim: every output element reduces its row in order r = 0..R-1 --

#define BLK 64

typedef struct {
    red_kind kind;
    hs_dtype dt, vdt, idt;
    int64_t R, sd;   // reduced length and its byte stride in t
    int unbiased;
    int vk, ik;      // operand slots of values / indices (-1: absent); t is slot 0
} red_ctx;

// acc[j] over rows j < nb starting at tp + j*s0; r-loop innermost when the reduced dim is the
// smaller stride (cache friendly), else j innermost. Same per-element order either way.
static void accumulate(const red_ctx *c, red_kind kind, const char *tp, int64_t s0, int64_t nb, double *acc,
                       int64_t *bi, const double *mean) {
    int64_t R = c->R, sd = c->sd;
    hs_dtype dt = c->dt;
    for (int64_t j = 0; j < nb; j++) {
        acc[j] = kind == RED_PROD ? 1.0 : 0.0;
        bi[j] = -1;
    }
    int r_inner = (sd < 0 ? -sd : sd) <= (s0 < 0 ? -s0 : s0);
    if (kind == RED_SUM && dt == HS_DTYPE_F32) {  // the common case, without the per-element switch
        if (r_inner) {
            for (int64_t j = 0; j < nb; j++) {
                const char *q = tp + j * s0;
                double a = 0;
                for (int64_t r = 0; r < R; r++)
                    a += (double)*(const float *)(q + r * sd);
                acc[j] = a;
            }
        } else {
            for (int64_t r = 0; r < R; r++) {
                const char *q = tp + r * sd;
                for (int64_t j = 0; j < nb; j++)
                    acc[j] += (double)*(const float *)(q + j * s0);
            }
        }
        return;
    }
    for (int64_t outer = 0; outer < (r_inner ? nb : R); outer++) {
        for (int64_t inner = 0; inner < (r_inner ? R : nb); inner++) {
            int64_t j = r_inner ? outer : inner, r = r_inner ? inner : outer;
            const char *q = tp + j * s0 + r * sd;
            double x = dt == HS_DTYPE_F32 ? (double)*(const float *)q : ld(dt, q);
            switch (kind) {
            case RED_SUM: acc[j] += x; break;
            case RED_PROD: acc[j] *= x; break;
            case RED_VAR: {
                double d = x - mean[j];
                acc[j] += d * d;
                break;
            }
            default:
                if (bi[j] < 0 || better(kind, x, acc[j])) {
                    acc[j] = x;
                    bi[j] = r;
                }
                break;
            }
        }
    }
}

static void reduce_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    const red_ctx *c = vc;
    double acc[BLK], mean[BLK];
    int64_t bi[BLK];
    double R = (double)c->R;
    for (int64_t j0 = 0; j0 < n; j0 += BLK) {
        int64_t nb = n - j0 < BLK ? n - j0 : BLK;
        const char *tp = p[0] + j0 * s[0];
        switch (c->kind) {
        case RED_SUM:
        case RED_PROD: accumulate(c, c->kind, tp, s[0], nb, acc, bi, NULL); break;
        case RED_MEAN:
            accumulate(c, RED_SUM, tp, s[0], nb, acc, bi, NULL);
            for (int64_t j = 0; j < nb; j++)
                acc[j] /= R;
            break;
        case RED_VAR:
        case RED_STD:
            accumulate(c, RED_SUM, tp, s[0], nb, mean, bi, NULL);
            for (int64_t j = 0; j < nb; j++)
                mean[j] /= R;
            accumulate(c, RED_VAR, tp, s[0], nb, acc, bi, mean);
            for (int64_t j = 0; j < nb; j++) {
                acc[j] /= R - (c->unbiased ? 1 : 0);
                if (c->kind == RED_STD)
                    acc[j] = sqrt(acc[j]);
            }
            break;
        default: accumulate(c, c->kind, tp, s[0], nb, acc, bi, NULL); break;
        }
        for (int64_t j = 0; j < nb; j++) {
            if (c->vk >= 0)
                st(c->vdt, p[c->vk] + (j0 + j) * s[c->vk], acc[j]);
            if (c->ik >= 0)
                st(c->idt, p[c->ik] + (j0 + j) * s[c->ik], (double)bi[j]);
        }
    }
}

static hs_status reduce(const char *name, hs_tensor *vals, hs_tensor *idx, const hs_tensor *t, int dim,
                        int keepdim, red_kind kind, int unbiased) {
    if (!vals && !idx)
        return HS_FAIL(HS_ERR_ARG, "%s: no output given", name);
    HS_TRY(check_dtype(name, t));
    if (vals)
        HS_TRY(check_reduce_out(name, vals, t, dim, keepdim));
    if (idx)
        HS_TRY(check_reduce_out(name, idx, t, dim, keepdim));
    // one output element (all dims, or every other dim of size 1): the chunked flat engine, so
    // that t:sum(1) of a vector equals t:sum()
    int64_t nout = 1;
    for (int d = 0; d < t->ndim; d++)
        nout *= d == dim ? 1 : t->shape[d];
    if (dim == -1 || (nout == 1 && t->shape[dim] > 0))
        return reduce_all(vals, idx, t, kind, unbiased);
    if (t->shape[dim] == 0 && hs_tensor_numel(vals ? vals : idx) > 0 && (kind == RED_MAX || kind == RED_MIN)) {
        char x[128];
        return HS_FAIL(HS_ERR_ARG, "%s: cannot reduce dim %d of size 0 in %s", name, dim,
                       hs_tensor_shape_str(t, x, sizeof x));
    }
    hs_tensor tv = drop_dim(t, dim), vv, iv;
    const hs_tensor *ops[3] = {&tv, NULL, NULL};
    int nops = 1;
    red_ctx c = {kind, t->dtype, HS_DTYPE_F32, HS_DTYPE_I64, t->shape[dim],
                 t->stride[dim] * (int64_t)hs_dtype_size(t->dtype), unbiased, -1, -1};
    if (vals) {
        vv = keepdim ? drop_dim(vals, dim) : *vals;
        c.vdt = vals->dtype;
        c.vk = nops;
        ops[nops++] = &vv;
    }
    if (idx) {
        iv = keepdim ? drop_dim(idx, dim) : *idx;
        c.idt = idx->dtype;
        c.ik = nops;
        ops[nops++] = &iv;
    }
    iter it;
    iter_init(&it, tv.ndim, tv.shape, ops, nops);
    int64_t grain = c.R > 0 ? (PAR_GRAIN * 2 + c.R - 1) / c.R : PAR_GRAIN;
    iter_run(&it, reduce_seg, &c, c.R > 0 ? c.R : 1, grain < 1 ? 1 : grain);
    return HS_OK;
}

hs_status hs_tensor_sum(hs_tensor *out, const hs_tensor *t, int dim, int keepdim) {
    return reduce("sum", out, NULL, t, dim, keepdim, RED_SUM, 0);
}
hs_status hs_tensor_mean(hs_tensor *out, const hs_tensor *t, int dim, int keepdim) {
    return reduce("mean", out, NULL, t, dim, keepdim, RED_MEAN, 0);
}
hs_status hs_tensor_prod(hs_tensor *out, const hs_tensor *t, int dim, int keepdim) {
    return reduce("prod", out, NULL, t, dim, keepdim, RED_PROD, 0);
}
hs_status hs_tensor_var(hs_tensor *out, const hs_tensor *t, int dim, int unbiased, int keepdim) {
    return reduce("var", out, NULL, t, dim, keepdim, RED_VAR, unbiased);
}
hs_status hs_tensor_std(hs_tensor *out, const hs_tensor *t, int dim, int unbiased, int keepdim) {
    return reduce("std", out, NULL, t, dim, keepdim, RED_STD, unbiased);
}
hs_status hs_tensor_max(hs_tensor *values, hs_tensor *indices, const hs_tensor *t, int dim, int keepdim) {
    return reduce("max", values, indices, t, dim, keepdim, RED_MAX, 0);
}
hs_status hs_tensor_min(hs_tensor *values, hs_tensor *indices, const hs_tensor *t, int dim, int keepdim) {
    return reduce("min", values, indices, t, dim, keepdim, RED_MIN, 0);
}
hs_status hs_tensor_argmax(hs_tensor *indices, const hs_tensor *t, int dim, int keepdim) {
    if (!indices)
        return HS_FAIL(HS_ERR_ARG, "argmax: no output given");
    return reduce("argmax", NULL, indices, t, dim, keepdim, RED_MAX, 0);
}
hs_status hs_tensor_argmin(hs_tensor *indices, const hs_tensor *t, int dim, int keepdim) {
    if (!indices)
        return HS_FAIL(HS_ERR_ARG, "argmin: no output given");
    return reduce("argmin", NULL, indices, t, dim, keepdim, RED_MIN, 0);
}

// -- cumsum: ops = t row view, out row view --

typedef struct {
    hs_dtype td, od;
    int64_t R, sd, so;  // length, byte strides along dim in t and out
} scan_ctx;

static void cumsum_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    const scan_ctx *c = vc;
    for (int64_t j = 0; j < n; j++) {
        const char *tp = p[0] + j * s[0];
        char *op = p[1] + j * s[1];
        double acc = 0;
        for (int64_t r = 0; r < c->R; r++) {
            acc += ld(c->td, tp + r * c->sd);
            st(c->od, op + r * c->so, acc);
        }
    }
}

hs_status hs_tensor_cumsum(hs_tensor *out, const hs_tensor *t, int dim) {
    char x[128];
    HS_TRY(check_dtype("cumsum", out));
    HS_TRY(check_dtype("cumsum", t));
    if (dim < 0 || dim >= t->ndim)
        return HS_FAIL(HS_ERR_ARG, "cumsum: dim %d out of range for %s", dim, hs_tensor_shape_str(t, x, sizeof x));
    HS_TRY(check_out("cumsum", out, t->ndim, t->shape));
    hs_tensor tv = drop_dim(t, dim), ov = drop_dim(out, dim);
    scan_ctx c = {t->dtype, out->dtype, t->shape[dim], t->stride[dim] * (int64_t)hs_dtype_size(t->dtype),
                  out->stride[dim] * (int64_t)hs_dtype_size(out->dtype)};
    iter it;
    const hs_tensor *ops[2] = {&tv, &ov};
    iter_init(&it, tv.ndim, tv.shape, ops, 2);
    if (c.R > 0)
        iter_run(&it, cumsum_seg, &c, c.R, (PAR_GRAIN + c.R - 1) / c.R);
    return HS_OK;
}

// ---- matmul ----

hs_status hs_matmul_shape(int *ndim, int64_t shape[HS_MAX_DIMS], const hs_tensor *a, const hs_tensor *b) {
    char x[128], y[128];
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3)
        return HS_FAIL(HS_ERR_SHAPE, "matmul: a %s and b %s: operands must be 2-D or 3-D",
                       hs_tensor_shape_str(a, x, sizeof x), hs_tensor_shape_str(b, y, sizeof y));
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], K2 = b->shape[b->ndim - 2],
            N = b->shape[b->ndim - 1];
    if (K != K2)
        return HS_FAIL(HS_ERR_SHAPE, "matmul: a %s and b %s: inner sizes %lld and %lld differ",
                       hs_tensor_shape_str(a, x, sizeof x), hs_tensor_shape_str(b, y, sizeof y), (long long)K,
                       (long long)K2);
    if (a->ndim == 3 && b->ndim == 3 && a->shape[0] != b->shape[0])
        return HS_FAIL(HS_ERR_SHAPE, "matmul: a %s and b %s: batch sizes %lld and %lld differ",
                       hs_tensor_shape_str(a, x, sizeof x), hs_tensor_shape_str(b, y, sizeof y),
                       (long long)a->shape[0], (long long)b->shape[0]);
    int nd = 0;
    if (a->ndim == 3 || b->ndim == 3)
        shape[nd++] = a->ndim == 3 ? a->shape[0] : b->shape[0];
    shape[nd++] = M;
    shape[nd++] = N;
    *ndim = nd;
    return HS_OK;
}

static hs_status check_matmul(const char *name, const hs_tensor *out, const hs_tensor *a, const hs_tensor *b) {
    int nd;
    int64_t sh[HS_MAX_DIMS];
    HS_TRY(check_dtype(name, out));
    HS_TRY(check_dtype(name, a));
    HS_TRY(check_dtype(name, b));
    HS_TRY(hs_matmul_shape(&nd, sh, a, b));
    return check_out(name, out, nd, sh);
}

// Batch stride (elements) of a 2-D or 3-D operand: 0 for a shared 2-D operand.
static int64_t bstride(const hs_tensor *t) { return t->ndim == 3 ? t->stride[0] : 0; }

hs_status hs_tensor_matmul_ref(hs_tensor *out, const hs_tensor *a, const hs_tensor *b) {
    HS_TRY(check_matmul("matmul", out, a, b));
    int64_t B = out->ndim == 3 ? out->shape[0] : 1, M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1],
            N = b->shape[b->ndim - 1];
    size_t ea = hs_dtype_size(a->dtype), eb = hs_dtype_size(b->dtype), eo = hs_dtype_size(out->dtype);
    const int64_t *sa = a->stride + a->ndim - 2, *sb = b->stride + b->ndim - 2, *so = out->stride + out->ndim - 2;
    for (int64_t bt = 0; bt < B; bt++) {
        const char *ab = (const char *)a->data + (size_t)(bt * bstride(a)) * ea;
        const char *bb = (const char *)b->data + (size_t)(bt * bstride(b)) * eb;
        char *ob = (char *)out->data + (size_t)(bt * bstride(out)) * eo;
        for (int64_t m = 0; m < M; m++) {
            for (int64_t n = 0; n < N; n++) {
                double acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += ld(a->dtype, ab + (size_t)(m * sa[0] + k * sa[1]) * ea) *
                           ld(b->dtype, bb + (size_t)(k * sb[0] + n * sb[1]) * eb);
                st(out->dtype, ob + (size_t)(m * so[0] + n * so[1]) * eo, acc);
            }
        }
    }
    return HS_OK;
}

// How BLAS can read a (rows, cols) matrix with element strides (sr, sc): row-major with
// ld >= cols (trans 0), or column-major with ld >= rows (trans 1). 0 if neither.
static int blas_layout(int64_t rows, int64_t cols, int64_t sr, int64_t sc, int *trans, int *lead) {
    if (sc == 1 || cols == 1) {
        int64_t l = rows == 1 ? cols : sr;
        if (l >= cols && l >= 1 && l <= INT_MAX) {
            *trans = 0;
            *lead = (int)l;
            return 1;
        }
    }
    if (sr == 1 || rows == 1) {
        int64_t l = cols == 1 ? rows : sc;
        if (l >= rows && l >= 1 && l <= INT_MAX) {
            *trans = 1;
            *lead = (int)l;
            return 1;
        }
    }
    return 0;
}

// Byte range [lo, hi) an operand can touch (strides are never negative).
static void byte_range(const hs_tensor *t, const char **lo, const char **hi) {
    int64_t last = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) {
            *lo = *hi = t->data;
            return;
        }
        last += (t->shape[d] - 1) * t->stride[d];
    }
    *lo = t->data;
    *hi = (const char *)t->data + (size_t)(last + 1) * hs_dtype_size(t->dtype);
}

static int overlaps(const hs_tensor *x, const hs_tensor *y) {
    const char *xl, *xh, *yl, *yh;
    byte_range(x, &xl, &xh);
    byte_range(y, &yl, &yh);
    return xl < yh && yl < xh;
}

hs_status hs_tensor_matmul(hs_tensor *out, const hs_tensor *a, const hs_tensor *b) {
    HS_TRY(check_matmul("matmul", out, a, b));
    if (a->dtype != HS_DTYPE_F32 || b->dtype != HS_DTYPE_F32 || out->dtype != HS_DTYPE_F32)
        return hs_tensor_matmul_ref(out, a, b);
    int64_t B = out->ndim == 3 ? out->shape[0] : 1, M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1],
            N = b->shape[b->ndim - 1];
    if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
        return HS_FAIL(HS_ERR_ARG, "matmul: sizes %lld x %lld x %lld exceed BLAS's int range", (long long)M,
                       (long long)K, (long long)N);
    if (hs_tensor_numel(out) == 0)
        return HS_OK;
    if (K == 0)
        return hs_tensor_fill(out, 0);
    hs_tensor *ta = NULL, *tb = NULL, *to = NULL;  // temporaries (the documented allocation)
    hs_status s = HS_OK;
    const hs_tensor *A = a, *Bm = b;
    hs_tensor *O = out;
    int tra = 0, trb = 0, tro = 0, lda = 1, ldb = 1, ldc = 1;
    if (!blas_layout(M, K, a->stride[a->ndim - 2], a->stride[a->ndim - 1], &tra, &lda)) {
        if ((s = hs_tensor_clone(&ta, a)) != HS_OK)
            goto done;
        A = ta;
        blas_layout(M, K, A->stride[A->ndim - 2], A->stride[A->ndim - 1], &tra, &lda);
    }
    if (!blas_layout(K, N, b->stride[b->ndim - 2], b->stride[b->ndim - 1], &trb, &ldb)) {
        if ((s = hs_tensor_clone(&tb, b)) != HS_OK)
            goto done;
        Bm = tb;
        blas_layout(K, N, Bm->stride[Bm->ndim - 2], Bm->stride[Bm->ndim - 1], &trb, &ldb);
    }
    if (!blas_layout(M, N, out->stride[out->ndim - 2], out->stride[out->ndim - 1], &tro, &ldc) || tro ||
        overlaps(out, a) || overlaps(out, b)) {
        if ((s = hs_tensor_new(&to, HS_DTYPE_F32, out->ndim, out->shape)) != HS_OK)
            goto done;
        O = to;
        ldc = (int)N;
    }
    {
        const float *ap = A->data, *bp = Bm->data;
        float *op = O->data;
        int64_t sa = bstride(A), sb = bstride(Bm), so = bstride(O);
        if (B > 1 && sb == 0 && !tra && sa == M * lda && so == M * ldc && (B * M) <= INT_MAX) {
            // (B,M,K) rows follow each other: one (B*M,K) x (K,N) product
            hs_sgemm(0, trb, (int)(B * M), (int)N, (int)K, 1.0f, ap, lda, bp, ldb, 0.0f, op, ldc);
        } else {
            for (int64_t bt = 0; bt < B; bt++)
                hs_sgemm(tra, trb, (int)M, (int)N, (int)K, 1.0f, ap + bt * sa, lda, bp + bt * sb, ldb, 0.0f,
                         op + bt * so, ldc);
        }
    }
    if (to)
        copy_into(out, to);
done:
    hs_tensor_free(ta);
    hs_tensor_free(tb);
    hs_tensor_free(to);
    return s;
}

// ---- joining and gathering ----

hs_status hs_tensor_concat(hs_tensor *out, const hs_tensor *const *ins, int n, int dim) {
    char x[128], y[128];
    if (n < 1)
        return HS_FAIL(HS_ERR_ARG, "concat: need at least one tensor, got %d", n);
    HS_TRY(check_dtype("concat", out));
    const hs_tensor *t0 = ins[0];
    if (dim < 0 || dim >= t0->ndim)
        return HS_FAIL(HS_ERR_ARG, "concat: dim %d out of range for %s", dim, hs_tensor_shape_str(t0, x, sizeof x));
    int64_t sh[HS_MAX_DIMS];
    memcpy(sh, t0->shape, sizeof sh);
    sh[dim] = 0;
    for (int i = 0; i < n; i++) {
        const hs_tensor *t = ins[i];
        HS_TRY(check_dtype("concat", t));
        int ok = t->ndim == t0->ndim;
        for (int d = 0; ok && d < t->ndim; d++)
            ok = d == dim || t->shape[d] == t0->shape[d];
        if (!ok)
            return HS_FAIL(HS_ERR_SHAPE, "concat: tensor %d is %s, tensor 1 is %s (must match except in dim %d)", i + 1,
                           hs_tensor_shape_str(t, x, sizeof x), hs_tensor_shape_str(t0, y, sizeof y), dim);
        sh[dim] += t->shape[dim];
    }
    HS_TRY(check_out("concat", out, t0->ndim, sh));
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        hs_tensor v;
        HS_TRY(hs_tensor_view_narrow(&v, out, dim, off, ins[i]->shape[dim]));
        copy_into(&v, ins[i]);
        off += ins[i]->shape[dim];
    }
    return HS_OK;
}

// out with dim removed at position i (no allocation, no checks).
static hs_tensor select_view(const hs_tensor *t, int dim, int64_t i) {
    hs_tensor v = drop_dim(t, dim);
    v.data = (char *)t->data + (size_t)(i * t->stride[dim]) * hs_dtype_size(t->dtype);
    return v;
}

hs_status hs_tensor_stack(hs_tensor *out, const hs_tensor *const *ins, int n, int dim) {
    char x[128], y[128];
    if (n < 1)
        return HS_FAIL(HS_ERR_ARG, "stack: need at least one tensor, got %d", n);
    HS_TRY(check_dtype("stack", out));
    const hs_tensor *t0 = ins[0];
    if (t0->ndim >= HS_MAX_DIMS)
        return HS_FAIL(HS_ERR_ARG, "stack: %d-d tensors cannot gain a dim (max %d)", t0->ndim, HS_MAX_DIMS);
    if (dim < 0 || dim > t0->ndim)
        return HS_FAIL(HS_ERR_ARG, "stack: dim %d out of range for %s", dim, hs_tensor_shape_str(t0, x, sizeof x));
    for (int i = 0; i < n; i++) {
        HS_TRY(check_dtype("stack", ins[i]));
        if (!hs_tensor_same_shape(ins[i], t0))
            return HS_FAIL(HS_ERR_SHAPE, "stack: tensor %d is %s, tensor 1 is %s (all must match)", i + 1,
                           hs_tensor_shape_str(ins[i], x, sizeof x), hs_tensor_shape_str(t0, y, sizeof y));
    }
    int64_t sh[HS_MAX_DIMS];
    for (int d = 0, k = 0; d <= t0->ndim; d++)
        sh[d] = d == dim ? n : t0->shape[k++];
    HS_TRY(check_out("stack", out, t0->ndim + 1, sh));
    for (int i = 0; i < n; i++) {
        hs_tensor v = select_view(out, dim, i);
        copy_into(&v, ins[i]);
    }
    return HS_OK;
}

hs_status hs_tensor_index_select(hs_tensor *out, const hs_tensor *t, int dim, const hs_tensor *index) {
    char x[128], y[128];
    HS_TRY(check_dtype("index_select", out));
    HS_TRY(check_dtype("index_select", t));
    HS_TRY(check_dtype("index_select", index));
    if (dim < 0 || dim >= t->ndim)
        return HS_FAIL(HS_ERR_ARG, "index_select: dim %d out of range for %s", dim,
                       hs_tensor_shape_str(t, x, sizeof x));
    if (index->ndim > 1)
        return HS_FAIL(HS_ERR_SHAPE, "index_select: index must be 1-D, got %s",
                       hs_tensor_shape_str(index, x, sizeof x));
    int64_t ni = hs_tensor_numel(index), sh[HS_MAX_DIMS];
    memcpy(sh, t->shape, sizeof sh);
    sh[dim] = ni;
    HS_TRY(check_out("index_select", out, t->ndim, sh));
    for (int64_t i = 0; i < ni; i++) {  // validate everything before writing anything
        double v = hs_tensor_get_flat(index, i);
        if (!(v >= 0 && v < (double)t->shape[dim]) || v != floor(v))
            return HS_FAIL(HS_ERR_ARG, "index_select: index %g (entry %lld) out of range for dim %d of %s", v,
                           (long long)i, dim, hs_tensor_shape_str(t, y, sizeof y));
    }
    for (int64_t i = 0; i < ni; i++) {
        hs_tensor src = select_view(t, dim, (int64_t)hs_tensor_get_flat(index, i));
        hs_tensor dst = select_view(out, dim, i);
        copy_into(&dst, &src);
    }
    return HS_OK;
}

hs_status hs_tensor_one_hot(hs_tensor *out, const hs_tensor *index) {
    char x[128], y[128];
    HS_TRY(check_dtype("one_hot", out));
    HS_TRY(check_dtype("one_hot", index));
    if (index->ndim >= HS_MAX_DIMS || out->ndim != index->ndim + 1)
        return HS_FAIL(HS_ERR_SHAPE, "one_hot: out is %s, want the index shape %s plus a class dim",
                       hs_tensor_shape_str(out, x, sizeof x), hs_tensor_shape_str(index, y, sizeof y));
    int64_t sh[HS_MAX_DIMS];
    memcpy(sh, index->shape, sizeof sh);
    int64_t C = out->shape[out->ndim - 1];
    sh[index->ndim] = C;
    HS_TRY(check_out("one_hot", out, index->ndim + 1, sh));
    int64_t n = hs_tensor_numel(index);
    for (int64_t i = 0; i < n; i++) {
        double v = hs_tensor_get_flat(index, i);
        if (!(v >= 0 && v < (double)C) || v != floor(v))
            return HS_FAIL(HS_ERR_ARG, "one_hot: class %g (entry %lld) out of range 0..%lld", v, (long long)i,
                           (long long)C - 1);
    }
    HS_TRY(hs_tensor_fill(out, 0));
    for (int64_t i = 0; i < n; i++)
        hs_tensor_set_flat(out, i * C + (int64_t)hs_tensor_get_flat(index, i), 1);
    return HS_OK;
}

typedef struct {
    hs_dtype dt, od;
    double lo, hi, scale;
    int64_t bins, so;
    char *o;
} hist_ctx;

static void hist_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    hist_ctx *c = vc;
    for (int64_t i = 0; i < n; i++) {
        double x = ld(c->dt, p[0] + i * s[0]);
        if (!(x >= c->lo && x <= c->hi))
            continue;
        int64_t b = (int64_t)((x - c->lo) * c->scale);
        if (b >= c->bins)
            b = c->bins - 1;
        char *q = c->o + b * c->so;
        st(c->od, q, ld(c->od, q) + 1);
    }
}

hs_status hs_tensor_histc(hs_tensor *out, const hs_tensor *t, double lo, double hi) {
    char x[128];
    HS_TRY(check_dtype("histc", out));
    HS_TRY(check_dtype("histc", t));
    if (out->ndim != 1 || out->shape[0] < 1)
        return HS_FAIL(HS_ERR_SHAPE, "histc: out must be 1-D with at least one bin, got %s",
                       hs_tensor_shape_str(out, x, sizeof x));
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return HS_FAIL(HS_ERR_ARG, "histc: need finite lo <= hi, got %g, %g", lo, hi);
    if (lo == hi && hs_tensor_numel(t) > 0) {
        double mn, mx;
        hs_tensor vmn, vmx;  // 0-d F64 views of the two locals
        memset(&vmn, 0, sizeof vmn);
        vmn.dtype = HS_DTYPE_F64;
        vmx = vmn;
        vmn.data = &mn;
        vmx.data = &mx;
        HS_TRY(reduce_all(&vmn, NULL, t, RED_MIN, 0));
        HS_TRY(reduce_all(&vmx, NULL, t, RED_MAX, 0));
        lo = mn;
        hi = mx;
    }
    if (lo == hi) {
        lo -= 1;
        hi += 1;
    }
    HS_TRY(hs_tensor_fill(out, 0));
    hist_ctx c = {t->dtype, out->dtype, lo, hi, (double)out->shape[0] / (hi - lo), out->shape[0],
                  out->stride[0] * (int64_t)hs_dtype_size(out->dtype), out->data};
    iter it;
    const hs_tensor *ops[1] = {t};
    iter_init(&it, t->ndim, t->shape, ops, 1);
    iter_range(&it, 0, it.n, hist_seg, &c);  // serial: bins are shared
    return HS_OK;
}

// ---- sort ----

int64_t hs_tensor_sort_workspace_size(const hs_tensor *t, int dim) {
    return dim >= 0 && dim < t->ndim ? 2 * t->shape[dim] : 0;
}

typedef struct {
    hs_dtype dt, vdt, idt;
    int64_t R, sd, svd, sid;  // byte strides along dim in t, values, indices
    int desc;
    int vk, ik;
    int64_t *work;
} sort_ctx;

// a goes before b (strictly): NaN counts as the largest value, as in torch.sort
static inline int before(int desc, double a, double b) {
    if (desc)
        return isnan(a) ? !isnan(b) : a > b;
    return isnan(b) ? !isnan(a) : a < b;
}

static void sort_row(const sort_ctx *c, const char *tp, char *vp, char *ip) {
    int64_t R = c->R, *idx = c->work, *tmp = c->work + R;
    for (int64_t i = 0; i < R; i++)
        idx[i] = i;
    // bottom-up merge sort on positions: stable, O(R log R), no allocation
    for (int64_t w = 1; w < R; w *= 2) {
        for (int64_t lo = 0; lo < R; lo += 2 * w) {
            int64_t mid = lo + w < R ? lo + w : R, hi = lo + 2 * w < R ? lo + 2 * w : R;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                double a = ld(c->dt, tp + idx[i] * c->sd), b = ld(c->dt, tp + idx[j] * c->sd);
                tmp[k++] = before(c->desc, b, a) ? idx[j++] : idx[i++];
            }
            while (i < mid)
                tmp[k++] = idx[i++];
            while (j < hi)
                tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, (size_t)R * sizeof *idx);
    }
    for (int64_t r = 0; r < R; r++) {
        if (vp)
            st(c->vdt, vp + r * c->svd, ld(c->dt, tp + idx[r] * c->sd));
        if (ip)
            st(c->idt, ip + r * c->sid, (double)idx[r]);
    }
}

static void sort_seg(void *vc, char *const *p, const int64_t *s, int64_t n) {
    const sort_ctx *c = vc;
    for (int64_t j = 0; j < n; j++)
        sort_row(c, p[0] + j * s[0], c->vk >= 0 ? p[c->vk] + j * s[c->vk] : NULL,
                 c->ik >= 0 ? p[c->ik] + j * s[c->ik] : NULL);
}

hs_status hs_tensor_sort(hs_tensor *values, hs_tensor *indices, const hs_tensor *t, int dim, int descending,
                         int64_t *work) {
    char x[128];
    if (!values && !indices)
        return HS_FAIL(HS_ERR_ARG, "sort: no output given");
    HS_TRY(check_dtype("sort", t));
    if (dim < 0 || dim >= t->ndim)
        return HS_FAIL(HS_ERR_ARG, "sort: dim %d out of range for %s", dim, hs_tensor_shape_str(t, x, sizeof x));
    if (!work && t->shape[dim] > 0)
        return HS_FAIL(HS_ERR_ARG, "sort: no workspace given");
    // rows are read through the permutation while being written, so no output may alias t
    if (values) {
        HS_TRY(check_dtype("sort", values));
        HS_TRY(check_out("sort", values, t->ndim, t->shape));
        if (overlaps(values, t))
            return HS_FAIL(HS_ERR_ARG, "sort: values must not overlap the input");
    }
    if (indices) {
        HS_TRY(check_dtype("sort", indices));
        HS_TRY(check_out("sort", indices, t->ndim, t->shape));
        if (overlaps(indices, t))
            return HS_FAIL(HS_ERR_ARG, "sort: indices must not overlap the input");
    }
    hs_tensor tv = drop_dim(t, dim), vv, iv;
    sort_ctx c = {t->dtype, HS_DTYPE_F32, HS_DTYPE_I64, t->shape[dim],
                  t->stride[dim] * (int64_t)hs_dtype_size(t->dtype), 0, 0, descending, -1, -1, work};
    const hs_tensor *ops[3] = {&tv, NULL, NULL};
    int nops = 1;
    if (values) {
        vv = drop_dim(values, dim);
        c.vdt = values->dtype;
        c.svd = values->stride[dim] * (int64_t)hs_dtype_size(values->dtype);
        c.vk = nops;
        ops[nops++] = &vv;
    }
    if (indices) {
        iv = drop_dim(indices, dim);
        c.idt = indices->dtype;
        c.sid = indices->stride[dim] * (int64_t)hs_dtype_size(indices->dtype);
        c.ik = nops;
        ops[nops++] = &iv;
    }
    iter it;
    iter_init(&it, tv.ndim, tv.shape, ops, nops);
    if (c.R > 0)
        iter_range(&it, 0, it.n, sort_seg, &c);  // serial: one workspace
    return HS_OK;
}

// ---- percentiles (quickselect) ----

static void swapf(float *a, int64_t i, int64_t j) {
    float t = a[i];
    a[i] = a[j];
    a[j] = t;
}

static float select_kth(float *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        int64_t mid = lo + (hi - lo) / 2;  // median of three as pivot
        if (a[mid] < a[lo]) swapf(a, mid, lo);
        if (a[hi] < a[lo]) swapf(a, hi, lo);
        if (a[hi] < a[mid]) swapf(a, hi, mid);
        float p = a[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i <= j) {
                swapf(a, i, j);
                i++;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return a[k];
}

double hs_percentile_f32(float *a, int64_t n, double q) {
    double pos = q / 100.0 * (double)(n - 1);
    int64_t k = (int64_t)floor(pos);
    if (k >= n - 1)
        k = n - 1;
    if (k < 0)
        k = 0;
    double frac = pos - (double)k, lo = select_kth(a, n, k);
    if (frac <= 0 || k + 1 >= n)
        return lo;
    float next = a[k + 1];  // after selection everything right of k is >= a[k]: take the minimum
    for (int64_t i = k + 2; i < n; i++)
        if (a[i] < next)
            next = a[i];
    return lo + frac * ((double)next - lo);
}
