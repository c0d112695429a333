// lua/l_synth.c: hs.synth, the synthetic IHC tile generator (core/synth.h) for Lua:
//   local rgb, labels, truth = hs.synth.ihc{ width = 256, height = 256, nuclei = 40, seed = 1,
//       positive_fraction = 0.4, radius = {6, 10}, intensity_mix = {1, 1, 1}, noise = 0.03,
//       dab_od = {0.18, 0.45, 0.85}, hema_od = 0.55, background_od = 0.04, min_gap = 2,
//       texture = 0, eosin_od = 0 }
// `nuclei` is a count, or a list of nuclei to render exactly: { {x=, y=, r= | rx=, ry=, angle=,
// positive=, intensity=}, ... } (x, y 1-based pixel coordinates: pixel (1,1) is centred on (1,1);
// intensity 1..3 makes a nucleus positive; positive without intensity means 2+).
// truth = { count =, positive =, negative =, by_intensity = {n1, n2, n3}, labelling_index = %,
//           h_score =, nuclei = { {x=, y=, rx=, ry=, angle=, positive=, intensity=}, ... } }
// Parsing and result tables only; the rendering is core/synth.c.
#include <stdlib.h>

#include "l_common.h"
#include "synth.h"


// The nucleus table on top of the stack -> *c (entry i for messages).
static void read_nucleus(lua_State *L, int i, hs_synth_nucleus *c) {
    if (!lua_istable(L, -1))
        luaL_error(L, "bad option 'nuclei' (entry %d: table expected, got %s)", i, luaL_typename(L, -1));
    int t = lua_gettop(L);
    lua_getfield(L, t, "x");
    lua_getfield(L, t, "y");
    if (!lua_isnumber(L, -2) || !lua_isnumber(L, -1))
        luaL_error(L, "bad option 'nuclei' (entry %d needs numbers x and y)", i);
    c->cx = (float)lua_tonumber(L, -2) - 0.5f;
    c->cy = (float)lua_tonumber(L, -1) - 0.5f;
    lua_pop(L, 2);
    float r = (float)lhs_optnumber(L, t, "r", 8);
    c->rx = (float)lhs_optnumber(L, t, "rx", r);
    c->ry = (float)lhs_optnumber(L, t, "ry", r);
    c->angle = (float)lhs_optnumber(L, t, "angle", 0);
    lua_getfield(L, t, "positive");
    int has_pos = !lua_isnil(L, -1), pos = lua_toboolean(L, -1);
    lua_pop(L, 1);
    c->intensity = (int)lhs_optnumber(L, t, "intensity", has_pos && pos ? 2 : 0);
    if (!has_pos)
        pos = c->intensity > 0;
    c->positive = pos;
    if (!pos && c->intensity != 0)
        luaL_error(L, "bad option 'nuclei' (entry %d: positive=false with intensity %d)", i, c->intensity);
}

static void push_truth(lua_State *L, const hs_synth_nucleus *nuc, int count) {
    int pos = 0, by[3] = {0, 0, 0};
    lua_createtable(L, 0, 8);
    lua_createtable(L, count, 0);
    for (int i = 0; i < count; i++) {
        lua_createtable(L, 0, 7);
        lua_pushnumber(L, (double)nuc[i].cx + 0.5);
        lua_setfield(L, -2, "x");
        lua_pushnumber(L, (double)nuc[i].cy + 0.5);
        lua_setfield(L, -2, "y");
        lua_pushnumber(L, nuc[i].rx);
        lua_setfield(L, -2, "rx");
        lua_pushnumber(L, nuc[i].ry);
        lua_setfield(L, -2, "ry");
        lua_pushnumber(L, nuc[i].angle);
        lua_setfield(L, -2, "angle");
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
}

static int l_ihc(lua_State *L) {
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    hs_synth_params p;
    hs_synth_defaults(&p);
    float w = (float)lhs_optnumber(L, 1, "width", 256), h = (float)lhs_optnumber(L, 1, "height", 256);
    luaL_argcheck(L, w >= 8 && w <= 16384 && h >= 8 && h <= 16384, 1, "'width' and 'height' must be in 8..16384");
    int64_t W = (int64_t)w, H = (int64_t)h;
    float radius[2] = {p.radius_min, p.radius_max};
    lhs_optnumbers(L, 1, "radius", radius, 2, 2);
    p.radius_min = radius[0];
    p.radius_max = radius[1];
    p.positive_fraction = (float)lhs_optnumber(L, 1, "positive_fraction", p.positive_fraction);
    lhs_optnumbers(L, 1, "intensity_mix", p.intensity_mix, 3, 3);
    lhs_optnumbers(L, 1, "dab_od", p.dab_od, 3, 3);
    p.hema_od = (float)lhs_optnumber(L, 1, "hema_od", p.hema_od);
    p.noise = (float)lhs_optnumber(L, 1, "noise", p.noise);
    p.background_od = (float)lhs_optnumber(L, 1, "background_od", p.background_od);
    p.min_gap = (int)lhs_optnumber(L, 1, "min_gap", (float)p.min_gap);
    p.texture = (float)lhs_optnumber(L, 1, "texture", p.texture);
    p.eosin_od = (float)lhs_optnumber(L, 1, "eosin_od", p.eosin_od);
    lua_getfield(L, 1, "seed");
    if (!lua_isnil(L, -1) && !lua_isinteger(L, -1))
        luaL_error(L, "bad option 'seed' (integer expected, got %s)", luaL_typename(L, -1));
    p.seed = (uint64_t)luaL_optinteger(L, -1, 1);
    lua_pop(L, 1);

    hs_synth_nucleus *given = NULL;
    int capacity;
    lua_getfield(L, 1, "nuclei");
    if (lua_istable(L, -1)) {
        lua_Integer n = luaL_len(L, -1);
        luaL_argcheck(L, n <= 100000, 1, "'nuclei' list longer than 100000");
        given = lua_newuserdatauv(L, sizeof *given * (size_t)(n + 1), 0);  // GC-owned
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -2, i);
            read_nucleus(L, (int)i, &given[i - 1]);
            lua_pop(L, 1);
        }
        // the list and the scratch stay on the stack (below the results) while in use
        p.given = given;
        p.n_given = (int)n;
        capacity = (int)n;
    } else {
        luaL_argcheck(L, lua_isnil(L, -1) || lua_isinteger(L, -1), 1, "'nuclei' must be a count or a list of nuclei");
        lua_Integer n = luaL_optinteger(L, -1, p.n_nuclei);
        luaL_argcheck(L, n >= 0 && n <= 100000, 1, "'nuclei' must be in 0..100000");
        p.n_nuclei = (int)n;
        capacity = p.n_nuclei;
        lua_pop(L, 1);
    }

    int64_t shape[3] = {H, W, 3};
    hs_tensor **rgb = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(rgb, HS_DTYPE_U8, 3, shape));
    hs_tensor **lab = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(lab, HS_DTYPE_I32, 2, shape));
    hs_synth_nucleus *nuc = lua_newuserdatauv(L, sizeof *nuc * (size_t)(capacity + 1), 0);  // GC-owned scratch
    int count = 0;
    LHS_CHECK(L, hs_synth_ihc(*rgb, *lab, nuc, capacity, &count, &p));
    push_truth(L, nuc, count);
    lua_remove(L, -2);  // the scratch nuclei array, kept on the stack while in use
    return 3;
}

static const luaL_Reg funcs[] = {{"ihc", l_ihc}, {NULL, NULL}};

int luaopen_hs_synth(lua_State *L);
int luaopen_hs_synth(lua_State *L) {
    luaL_newlib(L, funcs);
    return 1;
}
