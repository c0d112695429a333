// lua/l_io.c: the hs.io module: safetensors save/load of named tensors plus string metadata,
// and compare(), the elementwise check behind the reference runner. Thin glue over
// core/safetensors.h: no format knowledge lives here.
//   hs.io.save(path, {name = tensor, ...} [, {key = "value", ...}])      raises on error
//   hs.io.load(path)        -> tensors, metadata | nil, message  (missing or corrupt file)
//   hs.io.load_bytes(bytes [, label]) -> the same, from a string holding a whole file
//   hs.io.compare(got, want [, atol [, rtol]])
//                           -> max_abs, max_rel, n_bad, first_bad (1-based or nil), got_v, want_v
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "l_common.h"
#include "safetensors.h"

#define ST_GUARD "hs.io.safetensors"

typedef struct {
    hs_safetensors *st;  // NULL: nothing to free
} st_guard;

static int guard_gc(lua_State *L) {
    st_guard *g = luaL_checkudata(L, 1, ST_GUARD);
    hs_safetensors_free(g->st);
    g->st = NULL;
    return 0;
}

// Push an empty guard: whatever it holds is freed by the GC even if an error unwinds the call.
static st_guard *new_guard(lua_State *L) {
    st_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->st = NULL;
    luaL_setmetatable(L, ST_GUARD);
    return g;
}

typedef struct {
    const char *key, *value;
    size_t klen;
} kv;

static int cmp_kv(const void *a, const void *b) {
    const kv *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int l_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int has_meta = !lua_isnoneornil(L, 3);
    if (has_meta)
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    // tensors: arrays live in userdata so an error anywhere leaves nothing to free
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_error(L, "bad argument #2 to 'save' (tensor names must be strings, got a %s key)",
                              luaL_typename(L, -2));
        size_t len;
        const char *name = lua_tolstring(L, -2, &len);
        if (strlen(name) != len)
            return luaL_error(L, "bad argument #2 to 'save' (tensor name '%s...' contains a zero byte)", name);
        if (!lhs_totensor(L, -1))
            return luaL_error(L, "bad argument #2 to 'save' (entry '%s' is a %s, expected a live hs.tensor)",
                              lua_tostring(L, -2), luaL_typename(L, -1));
        n++;
        lua_pop(L, 1);
    }
    const char **names = lua_newuserdatauv(L, sizeof *names * (size_t)(n ? n : 1), 0);       // 4
    const hs_tensor **ts = lua_newuserdatauv(L, sizeof *ts * (size_t)(n ? n : 1), 0);        // 5
    int i = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        names[i] = lua_tostring(L, -2);  // kept alive by the table, which we do not modify
        ts[i] = lhs_totensor(L, -1);
        i++;
        lua_pop(L, 1);
    }
    // metadata: string keys, string or number values (numbers are converted, held in table 7)
    int nmeta = 0;
    if (has_meta) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            nmeta++;
            lua_pop(L, 1);
        }
    }
    kv *pairs = lua_newuserdatauv(L, sizeof *pairs * (size_t)(nmeta ? nmeta : 1), 0);      // 6
    lua_createtable(L, nmeta, 0);                                                          // 7
    i = 0;
    if (has_meta) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "bad argument #3 to 'save' (metadata keys must be strings, got a %s key)",
                                  luaL_typename(L, -2));
            int t = lua_type(L, -1);
            if (t != LUA_TSTRING && t != LUA_TNUMBER)
                return luaL_error(L, "bad argument #3 to 'save' (metadata '%s' is a %s, expected a string)",
                                  lua_tostring(L, -2), luaL_typename(L, -1));
            size_t vlen;
            lua_pushvalue(L, -1);
            pairs[i].value = lua_tolstring(L, -1, &vlen);  // converts the copy, not the table's value
            lua_rawseti(L, 7, i + 1);
            pairs[i].key = lua_tolstring(L, -2, &pairs[i].klen);
            if (strlen(pairs[i].key) != pairs[i].klen || strlen(pairs[i].value) != vlen)
                return luaL_error(L, "bad argument #3 to 'save' (metadata '%s' contains a zero byte)", pairs[i].key);
            i++;
            lua_pop(L, 1);
        }
    }
    qsort(pairs, (size_t)nmeta, sizeof *pairs, cmp_kv);  // sorted: files are reproducible
    const char **keys = lua_newuserdatauv(L, sizeof *keys * (size_t)(nmeta ? nmeta : 1), 0);
    const char **values = lua_newuserdatauv(L, sizeof *values * (size_t)(nmeta ? nmeta : 1), 0);
    for (i = 0; i < nmeta; i++) {
        keys[i] = pairs[i].key;
        values[i] = pairs[i].value;
    }
    LHS_CHECK(L, hs_safetensors_write(path, n, names, ts, nmeta, keys, values));
    return 0;
}

// Turn a read/parse status into Lua results: environmental failures are nil, message.
static int push_loaded(lua_State *L, hs_status s, st_guard *g) {
    if (s == HS_ERR_IO || s == HS_ERR_FORMAT) {
        lua_pushnil(L);
        lua_pushstring(L, hs_last_error()->msg);
        return 2;
    }
    if (s != HS_OK)
        return lhs_core_error(L);
    hs_safetensors *st = g->st;
    int n = hs_safetensors_count(st), nmeta = hs_safetensors_meta_count(st);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        hs_tensor **slot = lhs_newtensor(L);
        *slot = hs_safetensors_take(st, i);
        lua_setfield(L, -2, hs_safetensors_name(st, i));
    }
    lua_createtable(L, 0, nmeta);
    for (int i = 0; i < nmeta; i++) {
        lua_pushstring(L, hs_safetensors_meta_value(st, i));
        lua_setfield(L, -2, hs_safetensors_meta_key(st, i));
    }
    return 2;
}

static int l_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    st_guard *g = new_guard(L);
    hs_status s = hs_safetensors_read(&g->st, path);
    return push_loaded(L, s, g);
}

static int l_load_bytes(lua_State *L) {
    size_t n;
    const char *bytes = luaL_checklstring(L, 1, &n);
    const char *label = luaL_optstring(L, 2, "<string>");
    st_guard *g = new_guard(L);
    hs_status s = hs_safetensors_parse(&g->st, bytes, n, label);
    return push_loaded(L, s, g);
}

static void push_value(lua_State *L, const hs_tensor *t, double v) {
    if ((t->dtype == HS_DTYPE_F32 || t->dtype == HS_DTYPE_F64) || v != floor(v) || fabs(v) > 9.0e15)
        lua_pushnumber(L, v);
    else
        lua_pushinteger(L, (lua_Integer)v);
}

// Element i of a contiguous tensor as double (the common case, ~30x faster than the strided
// hs_tensor_get_flat); strided tensors take the general path.
static double elem(const hs_tensor *t, int contiguous, int64_t i) {
    if (!contiguous)
        return hs_tensor_get_flat(t, i);
    switch (t->dtype) {
    case HS_DTYPE_F32: return (double)((const float *)t->data)[i];
    case HS_DTYPE_F64: return ((const double *)t->data)[i];
    case HS_DTYPE_I64: return (double)((const int64_t *)t->data)[i];
    case HS_DTYPE_I32: return (double)((const int32_t *)t->data)[i];
    case HS_DTYPE_U8: return (double)((const uint8_t *)t->data)[i];
    case HS_DTYPE_U16: return (double)((const uint16_t *)t->data)[i];
    default: return hs_tensor_get_flat(t, i);
    }
}

// Elementwise |got - want| <= atol + rtol*|want| in row-major order, as double. NaN matches only
// NaN; equal infinities match. max_rel is taken over elements whose want is non-zero.
static int l_compare(lua_State *L) {
    const hs_tensor *got = lhs_checktensor(L, 1), *want = lhs_checktensor(L, 2);
    double atol = luaL_optnumber(L, 3, 0), rtol = luaL_optnumber(L, 4, 0);
    luaL_argcheck(L, atol >= 0, 3, "atol must be >= 0");
    luaL_argcheck(L, rtol >= 0, 4, "rtol must be >= 0");
    int64_t n = hs_tensor_numel(got);
    if (n != hs_tensor_numel(want)) {
        char a[160], b[160];
        return luaL_error(L, "compare: got %s %s has %d elements, want %s %s has %d", hs_dtype_name(got->dtype),
                          hs_tensor_shape_str(got, a, sizeof a), (int)n, hs_dtype_name(want->dtype),
                          hs_tensor_shape_str(want, b, sizeof b), (int)hs_tensor_numel(want));
    }
    double max_abs = 0, max_rel = 0, bad_g = 0, bad_w = 0;
    int64_t n_bad = 0, first = -1;
    int gc = hs_tensor_is_contiguous(got), wc = hs_tensor_is_contiguous(want);
    for (int64_t i = 0; i < n; i++) {
        double g = elem(got, gc, i), w = elem(want, wc, i);
        double d;
        int ok;
        if (g == w || (isnan(g) && isnan(w))) {
            d = 0;
            ok = 1;
        } else {
            d = fabs(g - w);  // NaN against a number, or an infinity mismatch: +inf or NaN
            if (isnan(d))
                d = HUGE_VAL;
            ok = d <= atol + rtol * fabs(w);
        }
        if (d > max_abs)
            max_abs = d;
        if (w != 0 && !isnan(w) && d / fabs(w) > max_rel)
            max_rel = d / fabs(w);
        if (!ok) {
            if (first < 0) {
                first = i;
                bad_g = g;
                bad_w = w;
            }
            n_bad++;
        }
    }
    lua_pushnumber(L, max_abs);
    lua_pushnumber(L, max_rel);
    lua_pushinteger(L, n_bad);
    if (first < 0) {
        lua_pushnil(L);
        return 4;
    }
    lua_pushinteger(L, first + 1);
    push_value(L, got, bad_g);
    push_value(L, want, bad_w);
    return 6;
}

static const luaL_Reg funcs[] = {{"save", l_save},
                                 {"load", l_load},
                                 {"load_bytes", l_load_bytes},
                                 {"compare", l_compare},
                                 {NULL, NULL}};

int luaopen_hs_io(lua_State *L);
int luaopen_hs_io(lua_State *L) {
    lua_getglobal(L, "require");  // loaded tensors need hs.tensor's metatable to exist
    lua_pushliteral(L, "hs.tensor");
    lua_call(L, 1, 0);
    if (luaL_newmetatable(L, ST_GUARD)) {
        lua_pushcfunction(L, guard_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
