// lua/l_loader.c: hs.loader, the decoding cache and the prefetching batch loader (core/loader.h).
//   local cache, failures = hs.loader.fill_cache(paths, {height = 64, width = 64, channels = 3})
//   local L = hs.loader.new(cache, labels_i64_or_nil, {out = {56, 56}, hflip = true, rot90 = true,
//       brightness = 0.1, contrast = 0.1, hed_sigma = 0.05, mean = {...}, std = {...}, seed = 1},
//       {batch = 32, shuffle = true, drop_last = true, training = true, masks = mask_cache})
//   (option shard = {rank, size}: data-parallel rows of every global batch, see core/loader.h)
//   L:start_epoch(e); local n = L:next(x, y)   -- n == 0 at the end of the epoch
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "l_common.h"
#include "loader.h"

#define LHS_LOADER "hs.loader"

typedef struct {
    hs_loader *l;
} loader_box;

static int l_fill_cache(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 1);
    luaL_argcheck(L, n >= 1, 1, "empty list of paths");
    lua_getfield(L, 2, "height");
    lua_getfield(L, 2, "width");
    lua_getfield(L, 2, "channels");
    lua_Integer h = luaL_checkinteger(L, -3), w = luaL_checkinteger(L, -2), c = luaL_optinteger(L, -1, 3);
    lua_pop(L, 3);
    luaL_argcheck(L, h >= 1 && w >= 1 && h <= 8192 && w <= 8192, 2, "height and width must be in 1..8192");
    luaL_argcheck(L, c == 1 || c == 3, 2, "channels must be 1 or 3");
    // paths are kept alive in the table at index 1 for the duration of the call
    const char **paths = lua_newuserdatauv(L, sizeof(char *) * (size_t)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        paths[i - 1] = lua_tostring(L, -1);
        if (!paths[i - 1])
            return luaL_error(L, "fill_cache: path %d is a %s, expected a string", (int)i, luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    const size_t errlen = 300;
    int *failed = lua_newuserdatauv(L, sizeof(int) * (size_t)n, 0);
    char *errors = lua_newuserdatauv(L, errlen * (size_t)n, 0);
    int64_t shape[4] = {n, h, w, c};
    hs_tensor **cache = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(cache, HS_DTYPE_U8, 4, shape));
    int64_t nfailed = 0;
    LHS_CHECK(L, hs_loader_fill_cache(*cache, paths, n, failed, errors, errlen, &nfailed));
    lua_createtable(L, (int)nfailed, 0);
    int k = 0;
    for (lua_Integer i = 0; i < n; i++) {
        if (!failed[i])
            continue;
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, i + 1);
        lua_setfield(L, -2, "index");
        lua_pushstring(L, paths[i]);
        lua_setfield(L, -2, "path");
        lua_pushstring(L, errors + (size_t)i * errlen);
        lua_setfield(L, -2, "message");
        lua_rawseti(L, -2, ++k);
    }
    return 2;
}

static int l_new(lua_State *L) {
    hs_tensor *cache = lhs_checktensor(L, 1);
    hs_tensor *labels = lua_isnoneornil(L, 2) ? NULL : lhs_checktensor(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    hs_batch_spec s;
    float out[2] = {0, 0};
    lhs_optnumbers(L, 3, "out", out, 0, 2);
    luaL_argcheck(L, out[0] >= 1 && out[1] >= 1, 3, "'out' = {height, width} is required");
    hs_batch_spec_init(&s, (int)out[0], (int)out[1]);
    s.hflip = lhs_optboolean(L, 3, "hflip", 0);
    s.vflip = lhs_optboolean(L, 3, "vflip", 0);
    s.rot90 = lhs_optboolean(L, 3, "rot90", 0);
    s.brightness = (float)lhs_optnumber(L, 3, "brightness", 0);
    s.contrast = (float)lhs_optnumber(L, 3, "contrast", 0);
    s.hed_sigma = (float)lhs_optnumber(L, 3, "hed_sigma", 0);
    s.invert_mask = lhs_optboolean(L, 3, "invert_mask", 0);
    lhs_optnumbers(L, 3, "mean", s.mean, 0, 4);
    lhs_optnumbers(L, 3, "std", s.std, 0, 4);
    lua_getfield(L, 3, "seed");
    s.seed = (uint64_t)luaL_optinteger(L, -1, 1);
    lua_pop(L, 1);
    lua_getfield(L, 4, "batch");
    lua_Integer batch = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 4, "masks");
    hs_tensor *masks = lua_isnil(L, -1) ? NULL : lhs_checktensor(L, -1);
    lua_pop(L, 1);
    int shuffle = lhs_optboolean(L, 4, "shuffle", 0), drop_last = lhs_optboolean(L, 4, "drop_last", 0);
    int training = lhs_optboolean(L, 4, "training", 0);
    float shard[2] = {0, 1};  // data-parallel {rank, size}: rows of every global batch (loader.h)
    lhs_optnumbers(L, 4, "shard", shard, 2, 2);

    loader_box *b = lua_newuserdatauv(L, sizeof *b, 3);  // user values pin cache, labels, masks
    b->l = NULL;
    luaL_setmetatable(L, LHS_LOADER);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 2);
    lua_getfield(L, 4, "masks");
    lua_setiuservalue(L, -2, 3);
    LHS_CHECK(L, hs_loader_new_shard(&b->l, cache, labels, masks, &s, batch, shuffle, drop_last, training,
                                     (int)shard[0], (int)shard[1]));
    return 1;
}

static hs_loader *check_loader(lua_State *L) {
    loader_box *b = luaL_checkudata(L, 1, LHS_LOADER);
    if (!b->l)
        luaL_argerror(L, 1, "loader has been released");
    return b->l;
}

static int l_start_epoch(lua_State *L) {
    hs_loader *l = check_loader(L);
    lua_Integer e = luaL_checkinteger(L, 2);
    luaL_argcheck(L, e >= 0, 2, "epoch must be >= 0");
    LHS_CHECK(L, hs_loader_start_epoch(l, (uint64_t)e));
    return 0;
}

static int l_next(lua_State *L) {
    hs_loader *l = check_loader(L);
    hs_tensor *x = lhs_checktensor(L, 2);
    hs_tensor *y = lua_isnoneornil(L, 3) ? NULL : lhs_checktensor(L, 3);
    int64_t count = 0;
    int64_t *idx = NULL;
    if (lua_istable(L, 4))
        idx = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)x->shape[0], 0);
    LHS_CHECK(L, hs_loader_next(l, x, y, idx, &count));
    if (idx) {
        for (int64_t i = 0; i < count; i++) {
            lua_pushinteger(L, idx[i] + 1);
            lua_rawseti(L, 4, i + 1);
        }
        lua_pop(L, 1);
    }
    lua_pushinteger(L, count);
    return 1;
}

static int l_num_batches(lua_State *L) {
    lua_pushinteger(L, hs_loader_num_batches(check_loader(L)));
    return 1;
}

static int l_release(lua_State *L) {
    loader_box *b = luaL_checkudata(L, 1, LHS_LOADER);
    hs_loader_free(b->l);
    b->l = NULL;
    return 0;
}

static const luaL_Reg methods[] = {{"start_epoch", l_start_epoch}, {"next", l_next}, {"num_batches", l_num_batches},
                                   {"release", l_release}, {NULL, NULL}};
static const luaL_Reg funcs[] = {{"fill_cache", l_fill_cache}, {"new", l_new}, {NULL, NULL}};

int luaopen_hs_loader(lua_State *L);
int luaopen_hs_loader(lua_State *L) {
    if (luaL_newmetatable(L, LHS_LOADER)) {
        lua_pushcfunction(L, l_release);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_release);
        lua_setfield(L, -2, "__close");
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
