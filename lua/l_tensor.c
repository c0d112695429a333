// lua/l_tensor.c: the hs.tensor userdata: creation, views, element access, conversion to and
// from Lua tables, __tostring. Arithmetic and math methods are added by l_tensorops.c.
// Dims and indices are 1-based as everywhere in Lua; negative dims count from the end.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "l_common.h"

// ---- shared helpers (declared in l_common.h) ----

hs_tensor **lhs_newtensor(lua_State *L) {
    lhs_tensor_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->t = NULL;
    luaL_setmetatable(L, LHS_TENSOR);
    return &b->t;
}

void lhs_pushtensor(lua_State *L, hs_tensor *t) {
    // lua_newuserdatauv may raise on OOM; protect t by freeing in a protected call would need a
    // closure, so preallocate first and accept the (tiny) window only for Lua OOM.
    hs_tensor **slot = lhs_newtensor(L);
    *slot = t;
}

hs_tensor *lhs_totensor(lua_State *L, int idx) {
    lhs_tensor_box *b = luaL_testudata(L, idx, LHS_TENSOR);
    return b ? b->t : NULL;
}

hs_tensor *lhs_checktensor(lua_State *L, int idx) {
    lhs_tensor_box *b = luaL_checkudata(L, idx, LHS_TENSOR);
    if (!b->t)
        luaL_argerror(L, idx, "tensor has been released");
    return b->t;
}

void lhs_pin(lua_State *L, int base_idx) {
    base_idx = lua_absindex(L, base_idx);
    lua_pushvalue(L, base_idx);
    lua_setiuservalue(L, -2, 1);
}

int lhs_core_error(lua_State *L) {
    const hs_error *e = hs_last_error();
    return luaL_error(L, "%s [%s:%d]", e->msg, e->file, e->line);
}

int lhs_checkshape(lua_State *L, int idx, int64_t shape[HS_MAX_DIMS]) {
    int nd = 0;
    if (lua_istable(L, idx)) {
        lua_Integer n = luaL_len(L, idx);
        luaL_argcheck(L, n <= HS_MAX_DIMS, idx, "too many dimensions");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, idx, i);
            int isnum;
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            lua_pop(L, 1);
            if (!isnum || v < -1)
                return luaL_argerror(L, idx, "shape entries must be non-negative integers");
            shape[nd++] = v;
        }
        return nd;
    }
    int top = lua_gettop(L);
    for (int i = idx; i <= top && lua_type(L, i) == LUA_TNUMBER; i++) {
        luaL_argcheck(L, nd < HS_MAX_DIMS, i, "too many dimensions");
        lua_Integer v = luaL_checkinteger(L, i);
        luaL_argcheck(L, v >= -1, i, "size must be non-negative");
        shape[nd++] = v;
    }
    return nd;
}

int lhs_checkdim(lua_State *L, int arg, int ndim) {
    lua_Integer d = luaL_checkinteger(L, arg);
    if (d < 0)
        d += ndim + 1;
    if (d < 1 || d > ndim)
        luaL_error(L, "bad argument #%d (dim %d out of range for a %d-d tensor)", arg, (int)lua_tointeger(L, arg),
                   ndim);
    return (int)d - 1;
}

hs_dtype lhs_checkdtype(lua_State *L, int idx, hs_dtype def) {
    if (lua_isnoneornil(L, idx))
        return def;
    const char *name = luaL_checkstring(L, idx);
    static const char *const lower[] = {"f32", "f64", "i64", "i32", "u8", "u16", NULL};
    static const char *const alias[] = {"float32", "float64", "int64", "int32", "uint8", "uint16", NULL};
    for (int i = 0; lower[i]; i++)
        if (strcmp(name, lower[i]) == 0 || strcmp(name, alias[i]) == 0)
            return (hs_dtype)i;
    hs_dtype dt;
    if (hs_dtype_from_name(&dt, name) == HS_OK)
        return dt;
    luaL_argerror(L, idx, lua_pushfstring(L, "unknown dtype '%s' (f32, f64, i64, i32, u8, u16)", name));
    return def;
}

// pushes the field (or nil when idx holds no table) and returns its type
static int opt_field(lua_State *L, int idx, const char *key) {
    if (!lua_istable(L, idx)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, idx, key);
}

lua_Number lhs_optnumber(lua_State *L, int idx, const char *key, lua_Number def) {
    idx = lua_absindex(L, idx);
    lua_Number v = def;
    if (opt_field(L, idx, key) != LUA_TNIL) {
        int ok;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "bad option '%s' (number expected, got %s)", key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

lua_Integer lhs_optinteger(lua_State *L, int idx, const char *key, lua_Integer def) {
    idx = lua_absindex(L, idx);
    lua_Integer v = def;
    if (opt_field(L, idx, key) != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok)
            luaL_error(L, "bad option '%s' (integer expected, got %s)", key, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

int lhs_optboolean(lua_State *L, int idx, const char *key, int def) {
    idx = lua_absindex(L, idx);
    int v = opt_field(L, idx, key) == LUA_TNIL ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void lhs_optnumbers(lua_State *L, int idx, const char *key, float *out, int min, int max) {
    idx = lua_absindex(L, idx);
    if (opt_field(L, idx, key) != LUA_TNIL) {
        int ok = lua_istable(L, -1);
        for (int i = 0; ok && i < max; i++) {
            int t = lua_geti(L, -1, i + 1);
            if (t == LUA_TNIL)
                ok = i >= min;
            else
                out[i] = (float)lua_tonumberx(L, -1, &ok);
            lua_pop(L, 1);
        }
        if (!ok) {
            if (min == max)
                luaL_error(L, "bad option '%s' (a table of %d numbers expected)", key, max);
            luaL_error(L, "bad option '%s' (a table of %d to %d numbers expected)", key, min, max);
        }
    }
    lua_pop(L, 1);
}

void lhs_tensor_add_methods(lua_State *L, const luaL_Reg *methods) {
    luaL_getmetatable(L, LHS_TENSOR);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, methods, 0);
    lua_pop(L, 2);
}

// ---- constructors ----

static int new_filled(lua_State *L, double value, int dtype_arg_from_end) {
    int64_t shape[HS_MAX_DIMS];
    int nd = lhs_checkshape(L, 1, shape);
    hs_dtype dt = HS_DTYPE_F32;
    if (lua_type(L, lua_gettop(L)) == LUA_TSTRING)
        dt = lhs_checkdtype(L, lua_gettop(L), HS_DTYPE_F32);
    (void)dtype_arg_from_end;
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(slot, dt, nd, shape));
    if (value != 0)
        hs_tensor_fill(*slot, value);
    return 1;
}

static int l_zeros(lua_State *L) { return new_filled(L, 0, 0); }
static int l_ones(lua_State *L) { return new_filled(L, 1, 0); }

static int l_full(lua_State *L) {
    // full(shape_table, value [, dtype])
    luaL_checktype(L, 1, LUA_TTABLE);
    double v = luaL_checknumber(L, 2);
    int64_t shape[HS_MAX_DIMS];
    int nd = lhs_checkshape(L, 1, shape);
    hs_dtype dt = lhs_checkdtype(L, 3, HS_DTYPE_F32);
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(slot, dt, nd, shape));
    hs_tensor_fill(*slot, v);
    return 1;
}

static int l_arange(lua_State *L) {
    double a = luaL_checknumber(L, 1), b, step = 1;
    hs_dtype dt = HS_DTYPE_F32;
    int n = lua_gettop(L);
    if (n >= 1 && lua_type(L, n) == LUA_TSTRING) {
        dt = lhs_checkdtype(L, n, HS_DTYPE_F32);
        n--;
    }
    if (n == 1) {
        b = a;
        a = 0;
    } else {
        b = luaL_checknumber(L, 2);
        if (n >= 3)
            step = luaL_checknumber(L, 3);
    }
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_arange(slot, dt, a, b, step));
    return 1;
}

static int l_rand(lua_State *L, int normal) {
    // rand(shape, {seed=, lo=, hi=} | seed) ; randn(shape, seed)
    int64_t shape[HS_MAX_DIMS];
    luaL_checktype(L, 1, LUA_TTABLE);
    int nd = lhs_checkshape(L, 1, shape);
    lua_Integer seed = 0;
    double a = normal ? 0 : 0, b = 1;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "seed");
        seed = luaL_optinteger(L, -1, 0);
        lua_getfield(L, 2, normal ? "mean" : "lo");
        a = luaL_optnumber(L, -1, 0);
        lua_getfield(L, 2, normal ? "std" : "hi");
        b = luaL_optnumber(L, -1, 1);
        lua_pop(L, 3);
    } else {
        seed = luaL_optinteger(L, 2, 0);
    }
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(slot, HS_DTYPE_F32, nd, shape));
    if (normal)
        LHS_CHECK(L, hs_tensor_rand_normal(*slot, (uint64_t)seed, a, b));
    else
        LHS_CHECK(L, hs_tensor_rand_uniform(*slot, (uint64_t)seed, a, b));
    return 1;
}
static int l_rand_uniform(lua_State *L) { return l_rand(L, 0); }
static int l_rand_normal(lua_State *L) { return l_rand(L, 1); }

// Nested Lua table -> shape (by walking first elements) then values.
static int table_shape(lua_State *L, int idx, int64_t shape[HS_MAX_DIMS]) {
    int nd = 0;
    lua_pushvalue(L, idx);
    while (lua_istable(L, -1)) {
        if (nd == HS_MAX_DIMS)
            luaL_error(L, "tensor: nested table has more than %d levels", HS_MAX_DIMS);
        shape[nd++] = (int64_t)luaL_len(L, -1);
        if (shape[nd - 1] == 0)
            break;
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    return nd;
}

static void table_fill(lua_State *L, int idx, hs_tensor *t, int dim, int64_t *flat) {
    int64_t n = (int64_t)luaL_len(L, idx);
    if (n != t->shape[dim])
        luaL_error(L, "tensor: ragged nested table (dim %d has %d entries, expected %d)", dim + 1, (int)n,
                   (int)t->shape[dim]);
    for (int64_t i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        if (dim + 1 < t->ndim) {
            if (!lua_istable(L, -1))
                luaL_error(L, "tensor: ragged nested table (expected a table at depth %d)", dim + 2);
            table_fill(L, lua_gettop(L), t, dim + 1, flat);
        } else {
            int isnum;
            double v = lua_tonumberx(L, -1, &isnum);
            if (!isnum) {
                if (lua_isboolean(L, -1))
                    v = lua_toboolean(L, -1);
                else
                    luaL_error(L, "tensor: element %d is a %s, expected a number", (int)(*flat + 1), luaL_typename(L, -1));
            }
            hs_tensor_set_flat(t, (*flat)++, v);
        }
        lua_pop(L, 1);
    }
}

// hs.tensor(table [, dtype]) or hs.tensor(shape..., ) -> zeros
static int l_tensor_call(lua_State *L) {
    lua_remove(L, 1);  // the module table (__call)
    if (lua_istable(L, 1)) {
        int64_t shape[HS_MAX_DIMS];
        int nd = table_shape(L, 1, shape);
        hs_dtype dt = lhs_checkdtype(L, 2, HS_DTYPE_F32);
        hs_tensor **slot = lhs_newtensor(L);
        LHS_CHECK(L, hs_tensor_new(slot, dt, nd, shape));
        int64_t flat = 0;
        if (nd > 0 && shape[0] > 0)
            table_fill(L, 1, *slot, 0, &flat);
        return 1;
    }
    if (lua_type(L, 1) == LUA_TNUMBER)
        return l_zeros(L);
    return luaL_argerror(L, 1, "table of numbers or sizes expected");
}

// ---- methods ----

static int l_shape(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        int d = lhs_checkdim(L, 2, t->ndim);
        lua_pushinteger(L, t->shape[d]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_dim(lua_State *L) {
    lua_pushinteger(L, lhs_checktensor(L, 1)->ndim);
    return 1;
}

static int l_numel(lua_State *L) {
    lua_pushinteger(L, hs_tensor_numel(lhs_checktensor(L, 1)));
    return 1;
}

static int l_dtype(lua_State *L) {
    static const char *const names[] = {"f32", "f64", "i64", "i32", "u8", "u16"};
    lua_pushstring(L, names[lhs_checktensor(L, 1)->dtype]);
    return 1;
}

static int l_is_contiguous(lua_State *L) {
    lua_pushboolean(L, hs_tensor_is_contiguous(lhs_checktensor(L, 1)));
    return 1;
}

static int l_clone(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_clone(slot, t));
    return 1;
}

static int l_contiguous(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    if (hs_tensor_is_contiguous(t)) {
        lua_settop(L, 1);
        return 1;
    }
    return l_clone(L);
}

static int l_astype(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    hs_dtype dt = lhs_checkdtype(L, 2, HS_DTYPE_F32);
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(slot, dt, t->ndim, t->shape));
    LHS_CHECK(L, hs_tensor_copy(*slot, t));
    return 1;
}

static int push_view(lua_State *L, hs_status s, hs_tensor *v) {
    if (s != HS_OK)
        return lhs_core_error(L);
    return 1;
}

static int l_reshape(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int64_t shape[HS_MAX_DIMS];
    int nd = lhs_checkshape(L, 2, shape);
    hs_tensor **slot = lhs_newtensor(L);
    if (!hs_tensor_is_contiguous(t)) {  // like torch.reshape: copy when a view is impossible
        hs_tensor *c;
        LHS_CHECK(L, hs_tensor_clone(&c, t));
        hs_status s = hs_tensor_reshape(slot, c, nd, shape);
        if (s == HS_OK) {
            (*slot)->storage = c->storage;  // the reshaped view takes over the copy's storage
            c->storage = NULL;
        }
        hs_tensor_free(c);
        return push_view(L, s, *slot);
    }
    hs_status s = hs_tensor_reshape(slot, t, nd, shape);
    if (s == HS_OK)
        lhs_pin(L, 1);
    return push_view(L, s, *slot);
}

static int l_narrow(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int d = lhs_checkdim(L, 2, t->ndim);
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    hs_tensor **slot = lhs_newtensor(L);
    hs_status s = hs_tensor_narrow(slot, t, d, start - 1, len);
    if (s == HS_OK)
        lhs_pin(L, 1);
    return push_view(L, s, *slot);
}

static int l_select(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int d = lhs_checkdim(L, 2, t->ndim);
    lua_Integer i = luaL_checkinteger(L, 3);
    if (i < 0)
        i += t->shape[d] + 1;
    hs_tensor **slot = lhs_newtensor(L);
    hs_status s = hs_tensor_select(slot, t, d, i - 1);
    if (s == HS_OK)
        lhs_pin(L, 1);
    return push_view(L, s, *slot);
}

static int l_transpose(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int a = t->ndim >= 2 ? t->ndim - 2 : 0, b = t->ndim - 1;
    if (!lua_isnoneornil(L, 2)) {
        a = lhs_checkdim(L, 2, t->ndim);
        b = lhs_checkdim(L, 3, t->ndim);
    }
    hs_tensor **slot = lhs_newtensor(L);
    hs_status s = hs_tensor_transpose(slot, t, a, b);
    if (s == HS_OK)
        lhs_pin(L, 1);
    return push_view(L, s, *slot);
}

static int l_permute(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int perm[HS_MAX_DIMS];
    int64_t p64[HS_MAX_DIMS];
    int n = lhs_checkshape(L, 2, p64);
    if (n != t->ndim)
        return luaL_error(L, "permute: %d dims given for a %d-d tensor", n, t->ndim);
    for (int i = 0; i < n; i++)
        perm[i] = (int)p64[i] - 1;
    hs_tensor **slot = lhs_newtensor(L);
    hs_status s = hs_tensor_permute(slot, t, perm);
    if (s == HS_OK)
        lhs_pin(L, 1);
    return push_view(L, s, *slot);
}

static int check_index(lua_State *L, hs_tensor *t, int first, int64_t idx[HS_MAX_DIMS]) {
    for (int d = 0; d < t->ndim; d++) {
        lua_Integer i = luaL_checkinteger(L, first + d);
        if (i < 0)
            i += t->shape[d] + 1;
        if (i < 1 || i > t->shape[d])
            return luaL_error(L, "index %d out of range for dim %d of size %d", (int)lua_tointeger(L, first + d), d + 1,
                              (int)t->shape[d]);
        idx[d] = i - 1;
    }
    return 0;
}

static int l_get(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int64_t idx[HS_MAX_DIMS];
    check_index(L, t, 2, idx);
    double v;
    LHS_CHECK(L, hs_tensor_get(t, idx, &v));
    if (t->dtype == HS_DTYPE_F32 || t->dtype == HS_DTYPE_F64)
        lua_pushnumber(L, v);
    else
        lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

static int l_set(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int64_t idx[HS_MAX_DIMS];
    check_index(L, t, 2, idx);
    LHS_CHECK(L, hs_tensor_set(t, idx, luaL_checknumber(L, 2 + t->ndim)));
    lua_settop(L, 1);
    return 1;
}

static int l_item(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    if (hs_tensor_numel(t) != 1)
        return luaL_error(L, "item: tensor has %d elements, expected 1", (int)hs_tensor_numel(t));
    double v = hs_tensor_get_flat(t, 0);
    if (t->dtype == HS_DTYPE_F32 || t->dtype == HS_DTYPE_F64)
        lua_pushnumber(L, v);
    else
        lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

static int l_fill(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    LHS_CHECK(L, hs_tensor_fill(t, luaL_checknumber(L, 2)));
    lua_settop(L, 1);
    return 1;
}

static int l_copy(lua_State *L) {
    hs_tensor *dst = lhs_checktensor(L, 1), *src = lhs_checktensor(L, 2);
    LHS_CHECK(L, hs_tensor_copy(dst, src));
    lua_settop(L, 1);
    return 1;
}

static void push_elem(lua_State *L, const hs_tensor *t, int64_t i) {
    double v = hs_tensor_get_flat(t, i);
    if (t->dtype == HS_DTYPE_F32 || t->dtype == HS_DTYPE_F64)
        lua_pushnumber(L, v);
    else
        lua_pushinteger(L, (lua_Integer)v);
}

static void to_table(lua_State *L, const hs_tensor *t, int dim, int64_t *flat) {
    lua_createtable(L, (int)t->shape[dim], 0);
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        if (dim + 1 < t->ndim)
            to_table(L, t, dim + 1, flat);
        else
            push_elem(L, t, (*flat)++);
        lua_rawseti(L, -2, i + 1);
    }
}

static int l_totable(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    if (t->ndim == 0) {
        push_elem(L, t, 0);
        return 1;
    }
    luaL_argcheck(L, hs_tensor_numel(t) <= 100000000, 1, "tensor too large for a Lua table");
    int64_t flat = 0;
    to_table(L, t, 0, &flat);
    return 1;
}

// flat 1-d table of all elements (row-major)
static int l_tolist(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    int64_t n = hs_tensor_numel(t);
    luaL_argcheck(L, n <= 100000000, 1, "tensor too large for a Lua table");
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        push_elem(L, t, i);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_tostring(lua_State *L) {
    lhs_tensor_box *b = luaL_checkudata(L, 1, LHS_TENSOR);
    if (!b->t) {
        lua_pushliteral(L, "hs.tensor (released)");
        return 1;
    }
    hs_tensor *t = b->t;
    char sh[160];
    luaL_Buffer buf;
    luaL_buffinit(L, &buf);
    lua_pushfstring(L, "hs.tensor %s %s", hs_dtype_name(t->dtype), hs_tensor_shape_str(t, sh, sizeof sh));
    luaL_addvalue(&buf);
    int64_t n = hs_tensor_numel(t), show = n < 8 ? n : 8;
    luaL_addstring(&buf, " {");
    for (int64_t i = 0; i < show; i++) {
        char num[48];
        snprintf(num, sizeof num, i ? ", %.6g" : "%.6g", hs_tensor_get_flat(t, i));
        luaL_addstring(&buf, num);
    }
    luaL_addstring(&buf, n > show ? ", ...}" : "}");
    luaL_pushresult(&buf);
    return 1;
}

static int l_release(lua_State *L) {  // __gc and __close
    lhs_tensor_box *b = luaL_checkudata(L, 1, LHS_TENSOR);
    hs_tensor_free(b->t);
    b->t = NULL;
    return 0;
}

static int l_len(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    lua_pushinteger(L, t->ndim ? t->shape[0] : 1);
    return 1;
}

static int l_istensor(lua_State *L) {
    lua_pushboolean(L, lhs_totensor(L, 1) != NULL);
    return 1;
}

// Raw bytes of a contiguous tensor (for hashing and I/O in Lua).
static int l_bytes(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    luaL_argcheck(L, hs_tensor_is_contiguous(t), 1, "tensor must be contiguous");
    lua_pushlstring(L, t->data, hs_tensor_nbytes(t));
    return 1;
}

static int l_from_bytes(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int64_t shape[HS_MAX_DIMS];
    luaL_checktype(L, 2, LUA_TTABLE);
    int nd = lhs_checkshape(L, 2, shape);
    hs_dtype dt = lhs_checkdtype(L, 3, HS_DTYPE_F32);
    int64_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= shape[i];
    if ((size_t)n * hs_dtype_size(dt) != len)
        return luaL_error(L, "from_bytes: %d bytes do not make a %s tensor of %d elements", (int)len,
                          hs_dtype_name(dt), (int)n);
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_from_buffer(slot, dt, nd, shape, s));
    return 1;
}

static const luaL_Reg methods[] = {
    {"shape", l_shape}, {"size", l_shape}, {"dim", l_dim}, {"numel", l_numel}, {"dtype", l_dtype},
    {"is_contiguous", l_is_contiguous}, {"clone", l_clone}, {"contiguous", l_contiguous},
    {"astype", l_astype}, {"reshape", l_reshape}, {"view", l_reshape}, {"narrow", l_narrow},
    {"select", l_select}, {"transpose", l_transpose}, {"permute", l_permute}, {"get", l_get},
    {"set", l_set}, {"item", l_item}, {"fill", l_fill}, {"copy", l_copy}, {"totable", l_totable},
    {"tolist", l_tolist}, {"bytes", l_bytes}, {"release", l_release}, {NULL, NULL}};

static const luaL_Reg meta[] = {{"__gc", l_release}, {"__close", l_release}, {"__tostring", l_tostring},
                                {"__len", l_len}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"zeros", l_zeros}, {"ones", l_ones}, {"full", l_full}, {"arange", l_arange},
                                 {"rand", l_rand_uniform}, {"randn", l_rand_normal}, {"is_tensor", l_istensor},
                                 {"from_bytes", l_from_bytes}, {NULL, NULL}};

int luaopen_hs_tensor(lua_State *L);
int luaopen_hs_tensor(lua_State *L) {
    if (luaL_newmetatable(L, LHS_TENSOR)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    lua_createtable(L, 0, 1);  // hs.tensor(...) constructs
    lua_pushcfunction(L, l_tensor_call);
    lua_setfield(L, -2, "__call");
    lua_setmetatable(L, -2);
    return 1;
}
