// lua/l_tensorops.c: `require "hs.tensorops"`: tensor math for Lua. Adds methods to hs.tensor
// (t:add(u), t:sum(2), t:matmul(w), ...) and the arithmetic metamethods + - * / ^ and unary -;
// returns the functions cat, stack, matmul, where. No math here: every op calls core/tensor_ops.
//
// Conventions (Lua side):
// - Dims are 1-based, negative dims count from the end; `dim = nil` in a reduction means all.
// - Operands may be tensor op tensor (numpy broadcasting), tensor op number or number op tensor.
//   Result dtype: comparisons give u8 0/1 masks; otherwise the wider dtype (f64 > f32 > i64 >
//   i32 > u16 > u8); div, pow and non-integer numbers with an integer tensor give f32.
// - Every *index* that comes out is 1-based: t:max(dim) and t:sort(dim) return I64 tensors of
//   1-based positions, t:max() / t:argmax() return a 1-based flat index. index_select takes
//   1-based positions. one_hot takes class *values* 0..C-1 (labels as stored in data files),
//   not positions.
// - No __eq: tensors compare by identity with ==; use t:equal(u) or t:allclose(u, atol, rtol).
// - In-place variants end in _ (add_, sub_, mul_, div_, clamp_, fill_, copy_, zero_,
//   masked_fill_, and every unary op: relu_, exp_, ...); they return the tensor itself.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "l_common.h"
#include "tensor_ops.h"

int luaopen_hs_tensor(lua_State *L);

// ---- helpers ----

// Push a new tensor of the given dtype/shape and return it (raises on failure).
static hs_tensor *push_new(lua_State *L, hs_dtype dt, int nd, const int64_t *shape) {
    hs_tensor **slot = lhs_newtensor(L);
    if (hs_tensor_new(slot, dt, nd, shape) != HS_OK)
        lhs_core_error(L);
    return *slot;
}

// Tensor at idx, or NULL when it is not a tensor (a released tensor raises).
static hs_tensor *opt_tensor(lua_State *L, int idx) {
    if (luaL_testudata(L, idx, LHS_TENSOR))
        return lhs_checktensor(L, idx);
    return NULL;
}

static int is_float_dt(hs_dtype dt) { return dt == HS_DTYPE_F32 || dt == HS_DTYPE_F64; }

// dtype of `tensor op number`
static hs_dtype scalar_result_dtype(lua_State *L, hs_binop op, hs_dtype tdt, int num_idx) {
    if (op >= HS_BINOP_EQ)
        return HS_DTYPE_U8;
    if (is_float_dt(tdt))
        return tdt;
    if (op == HS_BINOP_DIV || op == HS_BINOP_POW || !lua_isinteger(L, num_idx))
        return HS_DTYPE_F32;
    return tdt;
}

// Value at idx as a tensor: a tensor as is, a number as a new 0-d tensor (pushed; stays on the
// stack until the function returns). For where() operands.
static hs_tensor *as_tensor(lua_State *L, int idx, hs_dtype num_dt) {
    hs_tensor *t = opt_tensor(L, idx);
    if (t)
        return t;
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_typeerror(L, idx, "hs.tensor or number");
    double v = lua_tonumber(L, idx);
    hs_tensor *s = push_new(L, lua_isinteger(L, idx) ? num_dt : HS_DTYPE_F32, 0, NULL);
    hs_tensor_set_flat(s, 0, v);
    return s;
}

static int push_number(lua_State *L, hs_dtype dt, double v) {
    if (is_float_dt(dt))
        lua_pushnumber(L, v);
    else
        lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

// ---- binary ops: upvalue 1 = hs_binop, upvalue 2 = in-place flag ----

static int l_binary(lua_State *L) {
    hs_binop op = (hs_binop)lua_tointeger(L, lua_upvalueindex(1));
    int inplace = lua_toboolean(L, lua_upvalueindex(2));
    hs_tensor *a = opt_tensor(L, 1), *b = opt_tensor(L, 2), *out;
    if (inplace)
        a = lhs_checktensor(L, 1);
    if (a && b) {
        if (inplace) {
            out = a;
        } else {
            int nd;
            int64_t sh[HS_MAX_DIMS];
            if (hs_broadcast_shape(&nd, sh, a, b) != HS_OK) {
                // let the op itself report the mismatch (its message names the op); it fails
                // in the broadcast check, before writing anything
                hs_tensor_binary(a, op, a, b);
                return lhs_core_error(L);
            }
            out = push_new(L, hs_binop_result_dtype(op, a->dtype, b->dtype), nd, sh);
        }
        LHS_CHECK(L, hs_tensor_binary(out, op, a, b));
    } else if (a) {
        if (lua_type(L, 2) != LUA_TNUMBER)
            return luaL_typeerror(L, 2, "hs.tensor or number");
        out = inplace ? a : push_new(L, scalar_result_dtype(L, op, a->dtype, 2), a->ndim, a->shape);
        LHS_CHECK(L, hs_tensor_binary_scalar(out, op, a, lua_tonumber(L, 2), 0));
    } else if (b) {
        if (lua_type(L, 1) != LUA_TNUMBER)
            return luaL_typeerror(L, 1, "hs.tensor or number");
        out = push_new(L, scalar_result_dtype(L, op, b->dtype, 1), b->ndim, b->shape);
        LHS_CHECK(L, hs_tensor_binary_scalar(out, op, b, lua_tonumber(L, 1), 1));
    } else {
        return luaL_typeerror(L, lua_type(L, 1) == LUA_TNUMBER ? 2 : 1, "hs.tensor");
    }
    if (inplace)
        lua_settop(L, 1);
    return 1;
}

// ---- unary ops: upvalue 1 = hs_unop, upvalue 2 = in-place flag ----

static hs_dtype unary_result_dtype(hs_unop op, hs_dtype dt) {
    if (is_float_dt(dt))
        return dt;
    switch (op) {
    case HS_UNOP_NEG:
    case HS_UNOP_SIGN:  // unsigned inputs need a signed result
        return dt == HS_DTYPE_U8 || dt == HS_DTYPE_U16 ? HS_DTYPE_I64 : dt;
    case HS_UNOP_ABS:
    case HS_UNOP_SQUARE:
    case HS_UNOP_RELU:
    case HS_UNOP_FLOOR:
    case HS_UNOP_CEIL:
    case HS_UNOP_ROUND: return dt;  // integers stay integers (square saturates, as stores do)
    default: return HS_DTYPE_F32;
    }
}

static int l_unm(lua_State *L) {  // __unm(a, a): same as a:neg()
    hs_tensor *a = lhs_checktensor(L, 1);
    hs_tensor *out = push_new(L, unary_result_dtype(HS_UNOP_NEG, a->dtype), a->ndim, a->shape);
    LHS_CHECK(L, hs_tensor_unary(out, HS_UNOP_NEG, a));
    return 1;
}

static int l_unary(lua_State *L) {
    hs_unop op = (hs_unop)lua_tointeger(L, lua_upvalueindex(1));
    int inplace = lua_toboolean(L, lua_upvalueindex(2));
    hs_tensor *a = lhs_checktensor(L, 1);
    hs_tensor *out = inplace ? a : push_new(L, unary_result_dtype(op, a->dtype), a->ndim, a->shape);
    LHS_CHECK(L, hs_tensor_unary(out, op, a));
    if (inplace)
        lua_settop(L, 1);
    return 1;
}

static int clamp(lua_State *L, int inplace) {
    hs_tensor *a = lhs_checktensor(L, 1);
    double lo = luaL_optnumber(L, 2, -INFINITY), hi = luaL_optnumber(L, 3, INFINITY);
    luaL_argcheck(L, !(lo > hi), 3, "clamp: hi must be >= lo");
    hs_tensor *out = inplace ? a : push_new(L, a->dtype, a->ndim, a->shape);
    LHS_CHECK(L, hs_tensor_clamp(out, a, lo, hi));
    if (inplace)
        lua_settop(L, 1);
    return 1;
}
static int l_clamp(lua_State *L) { return clamp(L, 0); }
static int l_clamp_(lua_State *L) { return clamp(L, 1); }

static int l_zero_(lua_State *L) {
    LHS_CHECK(L, hs_tensor_fill(lhs_checktensor(L, 1), 0));
    lua_settop(L, 1);
    return 1;
}

// where(mask, a, b): a, b tensors or numbers
static int where3(lua_State *L, int mi, int ai, int bi) {
    lua_settop(L, 3);  // temporaries go above the arguments
    hs_tensor *m = lhs_checktensor(L, mi);
    hs_tensor *ta = opt_tensor(L, ai), *tb = opt_tensor(L, bi);
    hs_dtype base = ta ? ta->dtype : tb ? tb->dtype : HS_DTYPE_F32;
    hs_tensor *a = as_tensor(L, ai, base), *b = as_tensor(L, bi, base);
    hs_dtype dt = hs_binop_result_dtype(HS_BINOP_ADD, a->dtype, b->dtype);
    if (!ta && !tb)
        dt = HS_DTYPE_F32;
    int nd, nd2;
    int64_t sh[HS_MAX_DIMS], sh2[HS_MAX_DIMS];
    LHS_CHECK(L, hs_broadcast_shape(&nd, sh, a, b));
    hs_tensor *ab = push_new(L, HS_DTYPE_U8, nd, sh);  // shape carrier for the 3-way broadcast
    LHS_CHECK(L, hs_broadcast_shape(&nd2, sh2, m, ab));
    hs_tensor *out = push_new(L, dt, nd2, sh2);
    LHS_CHECK(L, hs_tensor_where(out, m, a, b));
    return 1;
}
static int l_where_fn(lua_State *L) { return where3(L, 1, 2, 3); }
static int l_where_method(lua_State *L) { return where3(L, 2, 1, 3); }  // x:where(mask, y)

static int masked_fill(lua_State *L, int inplace) {
    hs_tensor *t = lhs_checktensor(L, 1), *m = lhs_checktensor(L, 2);
    double v = luaL_checknumber(L, 3);
    hs_tensor *out = inplace ? t : push_new(L, t->dtype, t->ndim, t->shape);
    LHS_CHECK(L, hs_tensor_masked_fill(out, t, m, v));
    if (inplace)
        lua_settop(L, 1);
    return 1;
}
static int l_masked_fill(lua_State *L) { return masked_fill(L, 0); }
static int l_masked_fill_(lua_State *L) { return masked_fill(L, 1); }

static int l_equal(lua_State *L) {
    hs_tensor *a = lhs_checktensor(L, 1), *b = lhs_checktensor(L, 2);
    int r;
    LHS_CHECK(L, hs_tensor_equal(&r, a, b));
    lua_pushboolean(L, r);
    return 1;
}

static int l_allclose(lua_State *L) {
    hs_tensor *a = lhs_checktensor(L, 1), *b = lhs_checktensor(L, 2);
    double atol = luaL_optnumber(L, 3, 1e-8), rtol = luaL_optnumber(L, 4, 1e-5);
    luaL_argcheck(L, atol >= 0, 3, "atol must be >= 0");
    luaL_argcheck(L, rtol >= 0, 4, "rtol must be >= 0");
    int r;
    LHS_CHECK(L, hs_tensor_allclose(&r, a, b, atol, rtol));
    lua_pushboolean(L, r);
    return 1;
}

// ---- reductions ----

typedef enum { R_SUM, R_MEAN, R_PROD, R_VAR, R_STD } red_op;

// Optional dim at arg: -1 (all) when nil, else 0-based.
static int opt_dim(lua_State *L, int arg, const hs_tensor *t) {
    if (lua_isnoneornil(L, arg))
        return -1;
    return lhs_checkdim(L, arg, t->ndim);
}

// sum/mean/prod(dim, keepdim); var/std(dim, unbiased, keepdim); upvalue 1 = red_op
static int l_reduce(lua_State *L) {
    red_op op = (red_op)lua_tointeger(L, lua_upvalueindex(1));
    hs_tensor *t = lhs_checktensor(L, 1);
    int dim = opt_dim(L, 2, t), unbiased = 1, keep_arg = 3;
    if (op == R_VAR || op == R_STD) {
        unbiased = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
        keep_arg = 4;
    }
    int keepdim = lua_toboolean(L, keep_arg);
    hs_dtype dt = t->dtype;
    if (!is_float_dt(dt))
        dt = (op == R_SUM || op == R_PROD) ? HS_DTYPE_I64 : HS_DTYPE_F32;
    int nd;
    int64_t sh[HS_MAX_DIMS];
    LHS_CHECK(L, hs_reduce_shape(&nd, sh, t, dim, keepdim));
    hs_tensor *out = push_new(L, dt, nd, sh);
    switch (op) {
    case R_SUM: LHS_CHECK(L, hs_tensor_sum(out, t, dim, keepdim)); break;
    case R_MEAN: LHS_CHECK(L, hs_tensor_mean(out, t, dim, keepdim)); break;
    case R_PROD: LHS_CHECK(L, hs_tensor_prod(out, t, dim, keepdim)); break;
    case R_VAR: LHS_CHECK(L, hs_tensor_var(out, t, dim, unbiased, keepdim)); break;
    case R_STD: LHS_CHECK(L, hs_tensor_std(out, t, dim, unbiased, keepdim)); break;
    }
    return 1;
}

// max/min: t:max() -> value, flat index; t:max(dim, keepdim) -> values, indices (1-based);
// t:max(other) -> elementwise maximum. upvalue 1: 1 for max, 0 for min.
static int l_maxmin(lua_State *L) {
    int is_max = (int)lua_tointeger(L, lua_upvalueindex(1));
    hs_tensor *t = lhs_checktensor(L, 1);
    if (luaL_testudata(L, 2, LHS_TENSOR)) {  // t:max(u) == t:maximum(u)
        hs_tensor *u = lhs_checktensor(L, 2);
        hs_binop op = is_max ? HS_BINOP_MAXIMUM : HS_BINOP_MINIMUM;
        int nd;
        int64_t sh[HS_MAX_DIMS];
        LHS_CHECK(L, hs_broadcast_shape(&nd, sh, t, u));
        hs_tensor *out = push_new(L, hs_binop_result_dtype(op, t->dtype, u->dtype), nd, sh);
        LHS_CHECK(L, hs_tensor_binary(out, op, t, u));
        return 1;
    }
    int dim = opt_dim(L, 2, t), keepdim = lua_toboolean(L, 3);
    int nd;
    int64_t sh[HS_MAX_DIMS];
    LHS_CHECK(L, hs_reduce_shape(&nd, sh, t, dim, keepdim));
    if (dim < 0) {  // plain numbers
        double v;
        int64_t i;
        hs_tensor vt, it;
        memset(&vt, 0, sizeof vt);
        vt.dtype = HS_DTYPE_F64;
        vt.data = &v;
        it = vt;
        it.dtype = HS_DTYPE_I64;
        it.data = &i;
        LHS_CHECK(L, is_max ? hs_tensor_max(&vt, &it, t, -1, 0) : hs_tensor_min(&vt, &it, t, -1, 0));
        push_number(L, t->dtype, v);
        lua_pushinteger(L, i + 1);
        return 2;
    }
    hs_tensor *vals = push_new(L, t->dtype, nd, sh);
    hs_tensor *idx = push_new(L, HS_DTYPE_I64, nd, sh);
    LHS_CHECK(L, is_max ? hs_tensor_max(vals, idx, t, dim, keepdim) : hs_tensor_min(vals, idx, t, dim, keepdim));
    LHS_CHECK(L, hs_tensor_binary_scalar(idx, HS_BINOP_ADD, idx, 1, 0));
    return 2;
}

// argmax/argmin(dim, keepdim): 1-based; without dim a flat 1-based integer. upvalue 1: is_max
static int l_argmaxmin(lua_State *L) {
    int is_max = (int)lua_tointeger(L, lua_upvalueindex(1));
    hs_tensor *t = lhs_checktensor(L, 1);
    int dim = opt_dim(L, 2, t), keepdim = lua_toboolean(L, 3);
    if (dim < 0) {
        int64_t i;
        hs_tensor it;
        memset(&it, 0, sizeof it);
        it.dtype = HS_DTYPE_I64;
        it.data = &i;
        LHS_CHECK(L, is_max ? hs_tensor_argmax(&it, t, -1, 0) : hs_tensor_argmin(&it, t, -1, 0));
        lua_pushinteger(L, i + 1);
        return 1;
    }
    int nd;
    int64_t sh[HS_MAX_DIMS];
    LHS_CHECK(L, hs_reduce_shape(&nd, sh, t, dim, keepdim));
    hs_tensor *idx = push_new(L, HS_DTYPE_I64, nd, sh);
    LHS_CHECK(L, is_max ? hs_tensor_argmax(idx, t, dim, keepdim) : hs_tensor_argmin(idx, t, dim, keepdim));
    LHS_CHECK(L, hs_tensor_binary_scalar(idx, HS_BINOP_ADD, idx, 1, 0));
    return 1;
}

static int l_cumsum(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int dim = lua_isnoneornil(L, 2) && t->ndim == 1 ? 0 : lhs_checkdim(L, 2, t->ndim);
    hs_tensor *out = push_new(L, is_float_dt(t->dtype) ? t->dtype : HS_DTYPE_I64, t->ndim, t->shape);
    LHS_CHECK(L, hs_tensor_cumsum(out, t, dim));
    return 1;
}

// sort(dim = -1, descending = false) -> values, indices (1-based)
static int sort_impl(lua_State *L, hs_tensor *t, int dim, int desc) {
    int64_t nw = hs_tensor_sort_workspace_size(t, dim);
    // scratch as a userdata kept on the stack: the GC frees it even if an error is raised
    int64_t *work = lua_newuserdatauv(L, (size_t)(nw > 0 ? nw : 1) * sizeof *work, 0);
    int wi = lua_gettop(L);
    hs_tensor *vals = push_new(L, t->dtype, t->ndim, t->shape);
    hs_tensor *idx = push_new(L, HS_DTYPE_I64, t->ndim, t->shape);
    LHS_CHECK(L, hs_tensor_sort(vals, idx, t, dim, desc, work));
    LHS_CHECK(L, hs_tensor_binary_scalar(idx, HS_BINOP_ADD, idx, 1, 0));
    lua_remove(L, wi);
    return 2;
}

static int l_sort(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    luaL_argcheck(L, t->ndim > 0, 1, "cannot sort a 0-d tensor");
    int dim = lua_isnoneornil(L, 2) ? t->ndim - 1 : lhs_checkdim(L, 2, t->ndim);
    return sort_impl(L, t, dim, lua_toboolean(L, 3));
}

// topk(k, dim = -1, largest = true) -> values, indices (1-based), sorted
static int l_topk(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    luaL_argcheck(L, t->ndim > 0, 1, "cannot take topk of a 0-d tensor");
    lua_Integer k = luaL_checkinteger(L, 2);
    int dim = lua_isnoneornil(L, 3) ? t->ndim - 1 : lhs_checkdim(L, 3, t->ndim);
    int largest = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
    luaL_argcheck(L, k >= 0 && k <= t->shape[dim], 2, "k out of range for the dim size");
    int top = lua_gettop(L);
    sort_impl(L, t, dim, largest);
    for (int i = 0; i < 2; i++) {  // narrow copies of the sorted values / indices
        hs_tensor *full = lhs_checktensor(L, top + 1 + i), v;
        LHS_CHECK(L, hs_tensor_view_narrow(&v, full, dim, 0, k));
        hs_tensor *o = push_new(L, v.dtype, v.ndim, v.shape);
        LHS_CHECK(L, hs_tensor_copy(o, &v));
    }
    return 2;
}

static int l_histc(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    lua_Integer bins = luaL_optinteger(L, 2, 100);
    double lo = luaL_optnumber(L, 3, 0), hi = luaL_optnumber(L, 4, 0);
    luaL_argcheck(L, bins >= 1, 2, "bins must be >= 1");
    luaL_argcheck(L, lo <= hi, 4, "hi must be >= lo");
    int64_t sh[1] = {bins};
    hs_tensor *out = push_new(L, HS_DTYPE_F32, 1, sh);
    LHS_CHECK(L, hs_tensor_histc(out, t, lo, hi));
    return 1;
}

// ---- matmul, joins, gathers ----

static int l_matmul(lua_State *L) {
    hs_tensor *a = lhs_checktensor(L, 1), *b = lhs_checktensor(L, 2);
    int nd;
    int64_t sh[HS_MAX_DIMS];
    LHS_CHECK(L, hs_matmul_shape(&nd, sh, a, b));
    hs_tensor *out = push_new(L, hs_binop_result_dtype(HS_BINOP_ADD, a->dtype, b->dtype), nd, sh);
    LHS_CHECK(L, hs_tensor_matmul(out, a, b));
    return 1;
}

// The tensors of the list at arg 1 into a pointer array owned by a userdata left on the stack.
static const hs_tensor **check_list(lua_State *L, int *n) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer len = luaL_len(L, 1);
    luaL_argcheck(L, len >= 1, 1, "empty list of tensors");
    luaL_argcheck(L, len <= 1 << 20, 1, "too many tensors");
    const hs_tensor **ts = lua_newuserdatauv(L, (size_t)len * sizeof *ts, 0);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_geti(L, 1, i);
        hs_tensor *t = lhs_totensor(L, -1);
        if (!t) {
            luaL_argerror(L, 1, lua_pushfstring(L, "element %d is not a live hs.tensor", (int)i));
            return NULL;
        }
        ts[i - 1] = t;  // the list table keeps it alive
        lua_pop(L, 1);
    }
    *n = (int)len;
    return ts;
}

static hs_dtype list_dtype(const hs_tensor **ts, int n) {
    hs_dtype dt = ts[0]->dtype;
    for (int i = 1; i < n; i++)
        dt = hs_binop_result_dtype(HS_BINOP_ADD, dt, ts[i]->dtype);
    return dt;
}

static int l_cat(lua_State *L) {
    int n;
    lua_settop(L, 2);  // temporaries go above the arguments
    const hs_tensor **ts = check_list(L, &n);
    const hs_tensor *t0 = ts[0];
    luaL_argcheck(L, t0->ndim > 0, 1, "cannot concatenate 0-d tensors");
    int dim = lua_isnoneornil(L, 2) ? 0 : lhs_checkdim(L, 2, t0->ndim);
    int64_t sh[HS_MAX_DIMS];
    memcpy(sh, t0->shape, sizeof sh);
    sh[dim] = 0;
    for (int i = 0; i < n; i++)
        sh[dim] += ts[i]->ndim > dim ? ts[i]->shape[dim] : 0;
    hs_tensor *out = push_new(L, list_dtype(ts, n), t0->ndim, sh);
    LHS_CHECK(L, hs_tensor_concat(out, ts, n, dim));
    return 1;
}

static int l_stack(lua_State *L) {
    int n;
    lua_settop(L, 2);
    const hs_tensor **ts = check_list(L, &n);
    const hs_tensor *t0 = ts[0];
    luaL_argcheck(L, t0->ndim < HS_MAX_DIMS, 1, "tensors have too many dims to stack");
    int dim = lua_isnoneornil(L, 2) ? 0 : lhs_checkdim(L, 2, t0->ndim + 1);
    int64_t sh[HS_MAX_DIMS];
    for (int d = 0, k = 0; d <= t0->ndim; d++)
        sh[d] = d == dim ? n : t0->shape[k++];
    hs_tensor *out = push_new(L, list_dtype(ts, n), t0->ndim + 1, sh);
    LHS_CHECK(L, hs_tensor_stack(out, ts, n, dim));
    return 1;
}

// index_select(dim, index): index is a table or tensor of 1-based positions (negative from end)
static int l_index_select(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int dim = lhs_checkdim(L, 2, t->ndim);
    int64_t size = t->shape[dim], n;
    hs_tensor *src = opt_tensor(L, 3);
    if (src) {
        luaL_argcheck(L, src->ndim <= 1, 3, "index must be 1-D");
        n = hs_tensor_numel(src);
    } else {
        luaL_checktype(L, 3, LUA_TTABLE);
        n = (int64_t)luaL_len(L, 3);
    }
    hs_tensor *idx = push_new(L, HS_DTYPE_I64, 1, &n);
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (src) {
            v = hs_tensor_get_flat(src, i);
        } else {
            lua_geti(L, 3, i + 1);
            int ok;
            v = (double)lua_tointegerx(L, -1, &ok);
            lua_pop(L, 1);
            luaL_argcheck(L, ok, 3, "index entries must be integers");
        }
        if (v < 0)
            v += (double)size + 1;
        if (!(v >= 1 && v <= (double)size) || v != floor(v))
            return luaL_error(L, "index_select: index %f out of range for dim %d of size %d", v, dim + 1, (int)size);
        ((int64_t *)idx->data)[i] = (int64_t)v - 1;
    }
    int64_t sh[HS_MAX_DIMS];
    memcpy(sh, t->shape, sizeof sh);
    sh[dim] = n;
    hs_tensor *out = push_new(L, t->dtype, t->ndim, sh);
    LHS_CHECK(L, hs_tensor_index_select(out, t, dim, idx));
    return 1;
}

// one_hot(num_classes [, dtype]): class values 0..C-1 (default C = max + 1) -> f32 (..., C)
static int l_one_hot(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    luaL_argcheck(L, t->ndim < HS_MAX_DIMS, 1, "too many dims");
    lua_Integer C;
    if (lua_isnoneornil(L, 2)) {
        luaL_argcheck(L, hs_tensor_numel(t) > 0, 2, "num_classes needed for an empty tensor");
        double v;
        hs_tensor vt;
        memset(&vt, 0, sizeof vt);
        vt.dtype = HS_DTYPE_F64;
        vt.data = &v;
        LHS_CHECK(L, hs_tensor_max(&vt, NULL, t, -1, 0));
        C = (lua_Integer)v + 1;
    } else {
        C = luaL_checkinteger(L, 2);
    }
    luaL_argcheck(L, C >= 1, 2, "num_classes must be >= 1");
    hs_dtype dt = lhs_checkdtype(L, 3, HS_DTYPE_F32);
    int64_t sh[HS_MAX_DIMS];
    memcpy(sh, t->shape, sizeof sh);
    sh[t->ndim] = C;
    hs_tensor *out = push_new(L, dt, t->ndim + 1, sh);
    LHS_CHECK(L, hs_tensor_one_hot(out, t));
    return 1;
}

// ---- registration ----

typedef struct {
    const char *name;
    int code;
} named_code;

static const named_code binops[] = {
    {"add", HS_BINOP_ADD}, {"sub", HS_BINOP_SUB}, {"mul", HS_BINOP_MUL}, {"div", HS_BINOP_DIV},
    {"pow", HS_BINOP_POW}, {"maximum", HS_BINOP_MAXIMUM}, {"minimum", HS_BINOP_MINIMUM},
    {"eq", HS_BINOP_EQ},   {"ne", HS_BINOP_NE},   {"lt", HS_BINOP_LT},   {"le", HS_BINOP_LE},
    {"gt", HS_BINOP_GT},   {"ge", HS_BINOP_GE},   {NULL, 0}};

static const char *const unop_method[HS_UNOP_COUNT] = {
    [HS_UNOP_NEG] = "neg",         [HS_UNOP_ABS] = "abs",     [HS_UNOP_EXP] = "exp",     [HS_UNOP_LOG] = "log",
    [HS_UNOP_SQRT] = "sqrt",       [HS_UNOP_SQUARE] = "square", [HS_UNOP_SIN] = "sin",   [HS_UNOP_COS] = "cos",
    [HS_UNOP_TANH] = "tanh",       [HS_UNOP_SIGMOID] = "sigmoid", [HS_UNOP_RELU] = "relu", [HS_UNOP_FLOOR] = "floor",
    [HS_UNOP_CEIL] = "ceil",       [HS_UNOP_ROUND] = "round", [HS_UNOP_SIGN] = "sign",   [HS_UNOP_LOG1P] = "log1p",
    [HS_UNOP_EXPM1] = "expm1"};

// t[name] = closure(fn, code, flag)
static void set_closure(lua_State *L, int tbl, const char *name, lua_CFunction fn, int code, int flag) {
    lua_pushinteger(L, code);
    lua_pushboolean(L, flag);
    lua_pushcclosure(L, fn, 2);
    lua_setfield(L, tbl, name);
}

static const luaL_Reg methods[] = {
    {"clamp", l_clamp},         {"clamp_", l_clamp_},     {"zero_", l_zero_},         {"where", l_where_method},
    {"masked_fill", l_masked_fill}, {"masked_fill_", l_masked_fill_}, {"equal", l_equal}, {"allclose", l_allclose},
    {"cumsum", l_cumsum},       {"sort", l_sort},         {"topk", l_topk},           {"histc", l_histc},
    {"matmul", l_matmul},       {"index_select", l_index_select}, {"one_hot", l_one_hot}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"cat", l_cat},         {"concat", l_cat}, {"stack", l_stack},
                                 {"matmul", l_matmul},   {"where", l_where_fn}, {NULL, NULL}};

int luaopen_hs_tensorops(lua_State *L);
int luaopen_hs_tensorops(lua_State *L) {
    luaL_getmetatable(L, LHS_TENSOR);
    int have = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (!have) {  // the metatable is created by hs.tensor
        luaL_requiref(L, "hs.tensor", luaopen_hs_tensor, 0);
        lua_pop(L, 1);
    }
    lhs_tensor_add_methods(L, methods);
    luaL_getmetatable(L, LHS_TENSOR);
    int mt = lua_gettop(L);
    lua_getfield(L, mt, "__index");
    int ix = lua_gettop(L);
    for (int i = 0; binops[i].name; i++) {
        char nm[32];
        set_closure(L, ix, binops[i].name, l_binary, binops[i].code, 0);
        if (binops[i].code <= HS_BINOP_DIV) {
            snprintf(nm, sizeof nm, "%s_", binops[i].name);
            set_closure(L, ix, nm, l_binary, binops[i].code, 1);
        }
    }
    set_closure(L, ix, "pow_", l_binary, HS_BINOP_POW, 1);
    for (int op = 0; op < HS_UNOP_COUNT; op++) {
        char nm[32];
        set_closure(L, ix, unop_method[op], l_unary, op, 0);
        snprintf(nm, sizeof nm, "%s_", unop_method[op]);
        set_closure(L, ix, nm, l_unary, op, 1);
    }
    static const struct {
        const char *name;
        red_op op;
    } reds[] = {{"sum", R_SUM}, {"mean", R_MEAN}, {"prod", R_PROD}, {"var", R_VAR}, {"std", R_STD}};
    for (size_t i = 0; i < sizeof reds / sizeof reds[0]; i++)
        set_closure(L, ix, reds[i].name, l_reduce, reds[i].op, 0);
    set_closure(L, ix, "max", l_maxmin, 1, 0);
    set_closure(L, ix, "min", l_maxmin, 0, 0);
    set_closure(L, ix, "argmax", l_argmaxmin, 1, 0);
    set_closure(L, ix, "argmin", l_argmaxmin, 0, 0);
    // aliases of the container's own in-place methods
    lua_getfield(L, ix, "fill");
    lua_setfield(L, ix, "fill_");
    lua_getfield(L, ix, "copy");
    lua_setfield(L, ix, "copy_");
    // arithmetic metamethods (no __eq: == stays identity)
    set_closure(L, mt, "__add", l_binary, HS_BINOP_ADD, 0);
    set_closure(L, mt, "__sub", l_binary, HS_BINOP_SUB, 0);
    set_closure(L, mt, "__mul", l_binary, HS_BINOP_MUL, 0);
    set_closure(L, mt, "__div", l_binary, HS_BINOP_DIV, 0);
    set_closure(L, mt, "__pow", l_binary, HS_BINOP_POW, 0);
    lua_pushcfunction(L, l_unm);
    lua_setfield(L, mt, "__unm");
    lua_pop(L, 2);
    luaL_newlib(L, funcs);
    return 1;
}
