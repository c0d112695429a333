// lua/l_synth.c: hs.synth, the synthetic IHC tile generator (core/synth.h) for Lua:
//   local rgb, labels, truth = hs.synth.ihc{ width = 256, height = 256, nuclei = 40, seed = 1,
//       positive_fraction = 0.4, radius = {6, 10}, intensity_mix = {1, 1, 1}, noise = 0.03 }
// truth = { count =, positive =, negative =, by_intensity = {n1, n2, n3}, labelling_index = %,
//           h_score =, nuclei = { {x=, y=, rx=, ry=, positive=, intensity=}, ... } }
#include <stdlib.h>

#include "alloc.h"
#include "l_common.h"
#include "synth.h"

static float opt_number(lua_State *L, int t, const char *k, float def) {
    lua_getfield(L, t, k);
    float v = lua_isnil(L, -1) ? def : (float)luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return v;
}

static void opt_numbers(lua_State *L, int t, const char *k, float *out, int n) {
    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, lua_istable(L, -1), 1, lua_pushfstring(L, "'%s' must be a table of %d numbers", k, n));
        for (int i = 0; i < n; i++) {
            lua_geti(L, -1, i + 1);
            out[i] = (float)luaL_checknumber(L, -1);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
}

static int l_ihc(lua_State *L) {
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    hs_synth_params p;
    hs_synth_defaults(&p);
    int64_t W = (int64_t)opt_number(L, 1, "width", 256), H = (int64_t)opt_number(L, 1, "height", 256);
    p.n_nuclei = (int)opt_number(L, 1, "nuclei", (float)p.n_nuclei);
    float radius[2] = {p.radius_min, p.radius_max};
    opt_numbers(L, 1, "radius", radius, 2);
    p.radius_min = radius[0];
    p.radius_max = radius[1];
    p.positive_fraction = opt_number(L, 1, "positive_fraction", p.positive_fraction);
    opt_numbers(L, 1, "intensity_mix", p.intensity_mix, 3);
    opt_numbers(L, 1, "dab_od", p.dab_od, 3);
    p.hema_od = opt_number(L, 1, "hema_od", p.hema_od);
    p.noise = opt_number(L, 1, "noise", p.noise);
    p.background_od = opt_number(L, 1, "background_od", p.background_od);
    p.min_gap = (int)opt_number(L, 1, "min_gap", (float)p.min_gap);
    lua_getfield(L, 1, "seed");
    p.seed = (uint64_t)luaL_optinteger(L, -1, 1);
    lua_pop(L, 1);
    luaL_argcheck(L, p.n_nuclei >= 0 && p.n_nuclei <= 100000, 1, "'nuclei' must be in 0..100000");

    int64_t shape[3] = {H, W, 3};
    hs_tensor **rgb = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(rgb, HS_DTYPE_U8, 3, shape));
    hs_tensor **lab = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(lab, HS_DTYPE_I32, 2, shape));
    hs_synth_nucleus *nuc = lua_newuserdatauv(L, sizeof *nuc * (size_t)(p.n_nuclei + 1), 0);  // GC-owned scratch
    int count = 0;
    LHS_CHECK(L, hs_synth_ihc(*rgb, *lab, nuc, p.n_nuclei, &count, &p));

    int pos = 0, by[3] = {0, 0, 0};
    lua_createtable(L, 0, 8);
    lua_createtable(L, count, 0);
    for (int i = 0; i < count; i++) {
        lua_createtable(L, 0, 6);
        lua_pushnumber(L, nuc[i].cx);
        lua_setfield(L, -2, "x");
        lua_pushnumber(L, nuc[i].cy);
        lua_setfield(L, -2, "y");
        lua_pushnumber(L, nuc[i].rx);
        lua_setfield(L, -2, "rx");
        lua_pushnumber(L, nuc[i].ry);
        lua_setfield(L, -2, "ry");
        lua_pushboolean(L, nuc[i].positive);
        lua_setfield(L, -2, "positive");
        lua_pushinteger(L, nuc[i].intensity);
        lua_setfield(L, -2, "intensity");
        lua_rawseti(L, -2, i + 1);
        if (nuc[i].positive) {
            pos++;
            by[nuc[i].intensity - 1]++;
        }
    }
    lua_setfield(L, -2, "nuclei");
    lua_pushinteger(L, count);
    lua_setfield(L, -2, "count");
    lua_pushinteger(L, pos);
    lua_setfield(L, -2, "positive");
    lua_pushinteger(L, count - pos);
    lua_setfield(L, -2, "negative");
    lua_createtable(L, 3, 0);
    for (int i = 0; i < 3; i++) {
        lua_pushinteger(L, by[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "by_intensity");
    lua_pushnumber(L, count ? 100.0 * pos / count : 0.0);
    lua_setfield(L, -2, "labelling_index");
    lua_pushnumber(L, count ? (100.0 * (1 * by[0] + 2 * by[1] + 3 * by[2])) / count : 0.0);
    lua_setfield(L, -2, "h_score");
    lua_remove(L, -2);  // the scratch nuclei array, kept on the stack while in use
    return 3;
}

static const luaL_Reg funcs[] = {{"ihc", l_ihc}, {NULL, NULL}};

int luaopen_hs_synth(lua_State *L);
int luaopen_hs_synth(lua_State *L) {
    luaL_newlib(L, funcs);
    return 1;
}
