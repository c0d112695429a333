// lua/l_common.h: helpers shared by the binding files: the hs.tensor userdata box, argument
// checks and raising core errors. Not a place for math.
#ifndef HS_L_COMMON_H
#define HS_L_COMMON_H

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "status.h"
#include "tensor.h"

#define LHS_TENSOR "hs.tensor"

typedef struct {
    hs_tensor *t;  // NULL: empty or released
} lhs_tensor_box;

// Push a new empty box (metatable set) and return its slot; assign the tensor afterwards so that
// an error in between cannot leak it. User value 1 pins a view's base (see lhs_pin).
hs_tensor **lhs_newtensor(lua_State *L);
// Push t (ownership passes to Lua). If pushing fails, t is freed.
void lhs_pushtensor(lua_State *L, hs_tensor *t);
// The tensor at idx, or a "bad argument" error (also for a released tensor).
hs_tensor *lhs_checktensor(lua_State *L, int idx);
hs_tensor *lhs_totensor(lua_State *L, int idx);  // NULL when not a live tensor
// Make the tensor on top of the stack keep the value at base_idx alive (views).
void lhs_pin(lua_State *L, int base_idx);
// Raise the last core error as a Lua error: "<msg> [core/file.c:line]" (Lua adds file:line).
int lhs_core_error(lua_State *L);
// Check a core status; on failure raise it.
#define LHS_CHECK(L, expr)                   \
    do {                                     \
        if ((expr) != HS_OK)                 \
            return lhs_core_error(L);        \
    } while (0)
// Read a shape from a table of integers or from integer arguments starting at idx.
// Returns ndim; raises an error naming argument idx when malformed.
int lhs_checkshape(lua_State *L, int idx, int64_t shape[HS_MAX_DIMS]);
// Convert a 1-based (negative counts from the end) Lua dim to 0-based; errors when out of range.
int lhs_checkdim(lua_State *L, int arg, int ndim);
hs_dtype lhs_checkdtype(lua_State *L, int idx, hs_dtype def);
// Options tables: field `key` of the table at idx. When idx is nil/none (or not a table) or the
// field is nil, the default is returned; a value of the wrong type raises
// "bad option 'key' (number expected, got string)".
lua_Number lhs_optnumber(lua_State *L, int idx, const char *key, lua_Number def);
lua_Integer lhs_optinteger(lua_State *L, int idx, const char *key, lua_Integer def);
int lhs_optboolean(lua_State *L, int idx, const char *key, int def);  // any non-nil value: truthiness
// Array option: entries 1..max of the table `key` into out[0..max-1]; at least `min` entries must be
// present (absent entries beyond them leave out[] unchanged). Absent option: out[] unchanged.
void lhs_optnumbers(lua_State *L, int idx, const char *key, float *out, int min, int max);
// Register functions into the hs.tensor method table (for other binding files).
void lhs_tensor_add_methods(lua_State *L, const luaL_Reg *methods);

// Strict options tables (the table at idx must be a table; check it with luaL_checktype first).
// Errors are argument errors naming idx, e.g. "bad argument #4 to 'sgd_step' (bad option 'lr'
// (number expected, got nil))". static inline: they are small and header-only.

// Raise "unknown option 'k' (allowed: a, b, ...)" for a key outside `allowed` (NULL-terminated):
// a typo must not silently use a default.
static inline void lhs_checkoptkeys(lua_State *L, int idx, const char *const *allowed) {
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (const char *const *k = allowed; *k && !ok; k++)
                ok = strcmp(lua_tostring(L, -1), *k) == 0;
        if (!ok) {
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *const *k = allowed; *k; k++) {
                luaL_addstring(&b, k == allowed ? "" : ", ");
                luaL_addstring(&b, *k);
            }
            luaL_pushresult(&b);
            luaL_argerror(L, idx, lua_pushfstring(L, "unknown option '%s' (allowed: %s)",
                                                  luaL_tolstring(L, -2, NULL), lua_tostring(L, -1)));
        }
    }
}

// Field `key` (pushed) must be nil or of Lua type `want`; nil is an error when `required`.
static inline int lhs_optfield_typed(lua_State *L, int idx, const char *key, int want, int required) {
    int t = lua_getfield(L, idx, key);
    if ((t != LUA_TNIL && t != want) || (t == LUA_TNIL && required))
        luaL_argerror(L, idx, lua_pushfstring(L, "bad option '%s' (%s expected, got %s)", key,
                                              lua_typename(L, want), luaL_typename(L, -1)));
    return t != LUA_TNIL;
}

// Number option (a Lua number, not a numeric string): def when absent, unless required.
static inline lua_Number lhs_optnumber_strict(lua_State *L, int idx, const char *key, lua_Number def, int required) {
    lua_Number v = lhs_optfield_typed(L, idx, key, LUA_TNUMBER, required) ? lua_tonumber(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

// Boolean option (true/false only): def when absent.
static inline int lhs_optboolean_strict(lua_State *L, int idx, const char *key, int def) {
    int v = lhs_optfield_typed(L, idx, key, LUA_TBOOLEAN, 0) ? lua_toboolean(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

// String option: def when absent. The string stays alive while the options table references it.
static inline const char *lhs_optstring(lua_State *L, int idx, const char *key, const char *def) {
    const char *v = lhs_optfield_typed(L, idx, key, LUA_TSTRING, 0) ? lua_tostring(L, -1) : def;
    lua_pop(L, 1);
    return v;
}

// Integer option in lo..hi: def when absent; anything else raises "bad option 'k' (integer in
// lo..hi expected)".
static inline lua_Integer lhs_optinteger_range(lua_State *L, int idx, const char *key, lua_Integer def,
                                               lua_Integer lo, lua_Integer hi) {
    lua_Integer v = def;
    if (lua_getfield(L, idx, key) != LUA_TNIL) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < lo || v > hi)
            luaL_argerror(L, idx, lua_pushfstring(L, "bad option '%s' (integer in %I..%I expected)", key, lo, hi));
    }
    lua_pop(L, 1);
    return v;
}

#endif
