// lua/l_ihc.c: hs.ihc, the IHC quantification kernels of core/ihc.h for Lua (the friendly API with
// validation and reports is lua/hs/ihc_quant.lua). Option parsing and result tables only.
//   quantify(rgb [, opts]) -> { count, positive, negative, by_intensity = {n1,n2,n3},
//       labelling_index, h_score, threshold, labels = I32 (H,W), nuclei = { {x, y, area, dab_od,
//       nuclear_od, class}, ... } }      (x, y: 1-based centroid column, row)
//   channels(rgb [, opts]) -> nuclear, dab   (F32 (H,W) optical densities)
//   segment(nuclear [, opts]) -> labels, count, threshold
//   measure(labels, count, nuclear, dab [, opts]) -> nuclei
//   fill_holes(mask) -> mask; filter_area(labels, count, min [, max]) -> labels, count
//   expand_labels(labels, radius) -> labels; overlay(rgb, labels, classes [, thickness]) -> rgb
//   class_map(labels, classes) -> U8; defaults() -> opts
// opts: nuclear = "hdab"|"h", sigma, background_sigma, threshold = "otsu"|OD, min_threshold, open_radius, fill_holes,
//       min_distance, min_area, max_area, compartment = "nucleus"|"cell", cell_radius,
//       thresholds = {t1, t2, t3}
#include <string.h>

#include "ihc.h"
#include "l_common.h"

// ---- options ----

static int get_opt(lua_State *L, int idx, const char *key) {
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, idx, key);
}

static void read_params(lua_State *L, int idx, hs_ihc_params *p) {
    luaL_argcheck(L, lua_isnoneornil(L, idx) || lua_istable(L, idx), idx, "options table expected");
    hs_ihc_defaults(p);
    if (get_opt(L, idx, "nuclear") != LUA_TNIL) {
        const char *s = lua_tostring(L, -1);
        if (s && strcmp(s, "hdab") == 0)
            p->nuclear = HS_IHC_NUCLEAR_HDAB;
        else if (s && strcmp(s, "h") == 0)
            p->nuclear = HS_IHC_NUCLEAR_H;
        else
            luaL_error(L, "bad option 'nuclear' (\"hdab\" or \"h\" expected, got %s)", luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    if (get_opt(L, idx, "compartment") != LUA_TNIL) {
        const char *s = lua_tostring(L, -1);
        if (s && strcmp(s, "nucleus") == 0)
            p->compartment = HS_IHC_NUCLEUS;
        else if (s && strcmp(s, "cell") == 0)
            p->compartment = HS_IHC_CELL;
        else
            luaL_error(L, "bad option 'compartment' (\"nucleus\" or \"cell\" expected, got %s)",
                       luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    int t = get_opt(L, idx, "threshold");
    if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "otsu") == 0)
        p->threshold = 0;
    else if (t != LUA_TNIL) {
        int ok;
        p->threshold = lua_tonumberx(L, -1, &ok);
        if (!ok || !(p->threshold > 0))
            luaL_error(L, "bad option 'threshold' (\"otsu\" or a positive OD expected, got %s)",
                       luaL_tolstring(L, -1, NULL));
    }
    lua_pop(L, 1);
    p->sigma = lhs_optnumber(L, idx, "sigma", p->sigma);
    p->background_sigma = lhs_optnumber(L, idx, "background_sigma", p->background_sigma);
    p->min_threshold = lhs_optnumber(L, idx, "min_threshold", p->min_threshold);
    p->open_radius = (int)lhs_optinteger(L, idx, "open_radius", p->open_radius);
    if (get_opt(L, idx, "fill_holes") != LUA_TNIL)
        p->fill_holes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    p->min_distance = (int)lhs_optinteger(L, idx, "min_distance", p->min_distance);
    p->min_area = lhs_optinteger(L, idx, "min_area", p->min_area);
    p->max_area = lhs_optinteger(L, idx, "max_area", p->max_area);
    p->cell_radius = (int)lhs_optinteger(L, idx, "cell_radius", p->cell_radius);
    if (get_opt(L, idx, "thresholds") != LUA_TNIL) {
        if (!lua_istable(L, -1) || luaL_len(L, -1) != 3)
            luaL_error(L, "bad option 'thresholds' (a table of 3 increasing ODs expected)");
        for (int i = 0; i < 3; i++) {
            lua_geti(L, -1, i + 1);
            int ok;
            p->thresholds[i] = lua_tonumberx(L, -1, &ok);
            if (!ok)
                luaL_error(L, "bad option 'thresholds' (entry %d is not a number)", i + 1);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (hs_ihc_check_params(p) != HS_OK)
        luaL_error(L, "%s", hs_last_error()->msg);
}

static void push_params(lua_State *L, const hs_ihc_params *p) {
    lua_createtable(L, 0, 12);
    lua_pushstring(L, p->nuclear == HS_IHC_NUCLEAR_H ? "h" : "hdab");
    lua_setfield(L, -2, "nuclear");
    lua_pushnumber(L, p->sigma);
    lua_setfield(L, -2, "sigma");
    lua_pushnumber(L, p->background_sigma);
    lua_setfield(L, -2, "background_sigma");
    if (p->threshold > 0)
        lua_pushnumber(L, p->threshold);
    else
        lua_pushstring(L, "otsu");
    lua_setfield(L, -2, "threshold");
    lua_pushnumber(L, p->min_threshold);
    lua_setfield(L, -2, "min_threshold");
    lua_pushinteger(L, p->open_radius);
    lua_setfield(L, -2, "open_radius");
    lua_pushboolean(L, p->fill_holes);
    lua_setfield(L, -2, "fill_holes");
    lua_pushinteger(L, p->min_distance);
    lua_setfield(L, -2, "min_distance");
    lua_pushinteger(L, p->min_area);
    lua_setfield(L, -2, "min_area");
    lua_pushinteger(L, p->max_area);
    lua_setfield(L, -2, "max_area");
    lua_pushstring(L, p->compartment == HS_IHC_CELL ? "cell" : "nucleus");
    lua_setfield(L, -2, "compartment");
    lua_pushinteger(L, p->cell_radius);
    lua_setfield(L, -2, "cell_radius");
    lua_createtable(L, 3, 0);
    for (int i = 0; i < 3; i++) {
        lua_pushnumber(L, p->thresholds[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "thresholds");
}

// ---- helpers ----

static hs_tensor *push_plane(lua_State *L, int64_t H, int64_t W, hs_dtype dt) {
    int64_t shape[2] = {H, W};
    hs_tensor **slot = lhs_newtensor(L);
    if (hs_tensor_new(slot, dt, 2, shape) != HS_OK)
        lhs_core_error(L);
    return *slot;
}

static hs_tensor *check_rgb(lua_State *L, int idx) {
    hs_tensor *t = lhs_checktensor(L, idx);
    luaL_argcheck(L, t->ndim == 3 && t->shape[2] == 3, idx, "expected an (H,W,3) RGB image");
    return t;
}

static hs_tensor *check_labels(lua_State *L, int idx) {
    hs_tensor *t = lhs_checktensor(L, idx);
    luaL_argcheck(L, t->ndim == 2 && t->dtype == HS_DTYPE_I32 && hs_tensor_is_contiguous(t), idx,
                  "expected a contiguous (H,W) i32 label image");
    return t;
}

static void push_nuclei(lua_State *L, const hs_ihc_nucleus *nuc, int64_t count) {
    lua_createtable(L, (int)count, 0);
    for (int64_t k = 0; k < count; k++) {
        lua_createtable(L, 0, 6);
        lua_pushnumber(L, nuc[k].cx + 1);
        lua_setfield(L, -2, "x");
        lua_pushnumber(L, nuc[k].cy + 1);
        lua_setfield(L, -2, "y");
        lua_pushinteger(L, nuc[k].area);
        lua_setfield(L, -2, "area");
        lua_pushnumber(L, nuc[k].dab_od);
        lua_setfield(L, -2, "dab_od");
        lua_pushnumber(L, nuc[k].nuclear_od);
        lua_setfield(L, -2, "nuclear_od");
        lua_pushinteger(L, nuc[k].cls);
        lua_setfield(L, -2, "class");
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
}

// classes: a list of integers 0..3 (one per label) or a list of nuclei tables with .class;
// read into a GC-owned nucleus array pushed on the stack.
static hs_ihc_nucleus *check_classes(lua_State *L, int idx, int64_t *count) {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_Integer n = luaL_len(L, idx);
    luaL_argcheck(L, n >= 0 && n <= 100000000, idx, "too many classes");
    hs_ihc_nucleus *nuc = lua_newuserdatauv(L, sizeof *nuc * (size_t)(n + 1), 0);
    memset(nuc, 0, sizeof *nuc * (size_t)(n + 1));
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "class");
            lua_replace(L, -2);
        }
        int ok;
        lua_Integer c = lua_tointegerx(L, -1, &ok);
        if (!ok || c < 0 || c > 3)
            luaL_argerror(L, idx, lua_pushfstring(L, "class %d must be an integer 0..3", (int)i));
        nuc[i - 1].cls = (int)c;
        lua_pop(L, 1);
    }
    *count = n;
    return nuc;
}

// ---- functions ----

static int l_defaults(lua_State *L) {
    hs_ihc_params p;
    hs_ihc_defaults(&p);
    push_params(L, &p);
    return 1;
}

// check_options(opts) -> normalised options (all fields), or raises naming the bad field.
static int l_check_options(lua_State *L) {
    hs_ihc_params p;
    read_params(L, 1, &p);
    push_params(L, &p);
    return 1;
}

static int l_channels(lua_State *L) {
    hs_tensor *rgb = check_rgb(L, 1);
    hs_ihc_params p;
    read_params(L, 2, &p);
    hs_tensor *nuclear = push_plane(L, rgb->shape[0], rgb->shape[1], HS_DTYPE_F32);
    hs_tensor *dab = push_plane(L, rgb->shape[0], rgb->shape[1], HS_DTYPE_F32);
    LHS_CHECK(L, hs_ihc_channels(nuclear, dab, rgb, p.nuclear));
    return 2;
}

static int l_segment(lua_State *L) {
    hs_tensor *nuclear = lhs_checktensor(L, 1);
    luaL_argcheck(L, nuclear->ndim == 2, 1, "expected an (H,W) f32 nuclear channel");
    hs_ihc_params p;
    read_params(L, 2, &p);
    hs_tensor *labels = push_plane(L, nuclear->shape[0], nuclear->shape[1], HS_DTYPE_I32);
    int64_t count = 0;
    double t = 0;
    LHS_CHECK(L, hs_ihc_segment(labels, &count, &t, nuclear, &p));
    lua_pushinteger(L, count);
    lua_pushnumber(L, t);
    return 3;
}

static int l_measure(lua_State *L) {
    hs_tensor *labels = check_labels(L, 1);
    lua_Integer count = luaL_checkinteger(L, 2);
    luaL_argcheck(L, count >= 0 && count <= 100000000, 2, "count out of range");
    const hs_tensor *nuclear = lua_isnil(L, 3) ? NULL : lhs_checktensor(L, 3);
    hs_tensor *dab = lhs_checktensor(L, 4);
    hs_ihc_params p;
    read_params(L, 5, &p);
    hs_ihc_nucleus *nuc = lua_newuserdatauv(L, sizeof *nuc * (size_t)(count + 1), 0);
    LHS_CHECK(L, hs_ihc_measure(nuc, count, labels, nuclear, dab, &p));
    push_nuclei(L, nuc, count);
    return 1;
}

static int l_quantify(lua_State *L) {
    hs_tensor *rgb = check_rgb(L, 1);
    hs_ihc_params p;
    read_params(L, 2, &p);
    int64_t H = rgb->shape[0], W = rgb->shape[1];
    hs_tensor *nuclear = push_plane(L, H, W, HS_DTYPE_F32);
    hs_tensor *dab = push_plane(L, H, W, HS_DTYPE_F32);
    LHS_CHECK(L, hs_ihc_channels(nuclear, dab, rgb, p.nuclear));
    hs_tensor *labels = push_plane(L, H, W, HS_DTYPE_I32);
    int labels_idx = lua_gettop(L);
    int64_t count = 0;
    double t = 0;
    LHS_CHECK(L, hs_ihc_segment(labels, &count, &t, nuclear, &p));
    hs_ihc_nucleus *nuc = lua_newuserdatauv(L, sizeof *nuc * (size_t)(count + 1), 0);
    LHS_CHECK(L, hs_ihc_measure(nuc, count, labels, nuclear, dab, &p));
    hs_ihc_summary s;
    hs_ihc_summarize(&s, nuc, count);
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, s.count);
    lua_setfield(L, -2, "count");
    lua_pushinteger(L, s.positive);
    lua_setfield(L, -2, "positive");
    lua_pushinteger(L, s.negative);
    lua_setfield(L, -2, "negative");
    lua_createtable(L, 3, 0);
    for (int i = 0; i < 3; i++) {
        lua_pushinteger(L, s.by_class[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "by_intensity");
    lua_pushnumber(L, s.labelling_index);
    lua_setfield(L, -2, "labelling_index");
    lua_pushnumber(L, s.h_score);
    lua_setfield(L, -2, "h_score");
    lua_pushnumber(L, t);
    lua_setfield(L, -2, "threshold");
    push_nuclei(L, nuc, count);
    lua_setfield(L, -2, "nuclei");
    lua_pushvalue(L, labels_idx);
    lua_setfield(L, -2, "labels");
    push_params(L, &p);
    lua_setfield(L, -2, "options");
    return 1;
}

static int l_fill_holes(lua_State *L) {
    hs_tensor *mask = lhs_checktensor(L, 1);
    luaL_argcheck(L, mask->ndim == 2 && mask->dtype == HS_DTYPE_U8, 1, "expected an (H,W) u8 mask");
    hs_tensor *dst = push_plane(L, mask->shape[0], mask->shape[1], HS_DTYPE_U8);
    LHS_CHECK(L, hs_tensor_copy(dst, mask));
    LHS_CHECK(L, hs_ihc_fill_holes(dst, dst));
    return 1;
}

static int l_filter_area(lua_State *L) {
    hs_tensor *labels = check_labels(L, 1);
    lua_Integer count = luaL_checkinteger(L, 2), lo = luaL_checkinteger(L, 3), hi = luaL_optinteger(L, 4, 0);
    hs_tensor *dst = push_plane(L, labels->shape[0], labels->shape[1], HS_DTYPE_I32);
    LHS_CHECK(L, hs_tensor_copy(dst, labels));
    int64_t c = count;
    LHS_CHECK(L, hs_ihc_filter_area(dst, &c, lo, hi));
    lua_pushinteger(L, c);
    return 2;
}

static int l_expand_labels(lua_State *L) {
    hs_tensor *labels = check_labels(L, 1);
    lua_Integer r = luaL_checkinteger(L, 2);
    luaL_argcheck(L, r >= 0 && r <= 256, 2, "radius must be in 0..256");
    hs_tensor *dst = push_plane(L, labels->shape[0], labels->shape[1], HS_DTYPE_I32);
    LHS_CHECK(L, hs_ihc_expand_labels(dst, labels, (int)r));
    return 1;
}

static int l_overlay(lua_State *L) {
    hs_tensor *rgb = check_rgb(L, 1);
    hs_tensor *labels = check_labels(L, 2);
    lua_Integer th = luaL_optinteger(L, 4, 1);
    luaL_argcheck(L, th >= 1 && th <= 64, 4, "thickness must be in 1..64");
    lua_settop(L, 3);
    int64_t count = 0;
    hs_ihc_nucleus *nuc = check_classes(L, 3, &count);
    int64_t shape[3] = {rgb->shape[0], rgb->shape[1], 3};
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(slot, HS_DTYPE_U8, 3, shape));
    LHS_CHECK(L, hs_ihc_overlay(*slot, rgb, labels, nuc, count, (int)th));
    return 1;
}

static int l_class_map(lua_State *L) {
    hs_tensor *labels = check_labels(L, 1);
    lua_settop(L, 2);
    int64_t count = 0;
    hs_ihc_nucleus *nuc = check_classes(L, 2, &count);
    hs_tensor *dst = push_plane(L, labels->shape[0], labels->shape[1], HS_DTYPE_U8);
    LHS_CHECK(L, hs_ihc_class_map(dst, labels, nuc, count));
    return 1;
}

static const luaL_Reg funcs[] = {{"defaults", l_defaults},       {"check_options", l_check_options},
                                 {"channels", l_channels},       {"segment", l_segment},
                                 {"measure", l_measure},         {"quantify", l_quantify},
                                 {"fill_holes", l_fill_holes},   {"filter_area", l_filter_area},
                                 {"expand_labels", l_expand_labels}, {"overlay", l_overlay},
                                 {"class_map", l_class_map},     {NULL, NULL}};

int luaopen_hs_ihc(lua_State *L);
int luaopen_hs_ihc(lua_State *L) {
    luaL_newlib(L, funcs);
    lua_createtable(L, 4, 0);
    for (int c = 0; c < 4; c++) {
        lua_createtable(L, 3, 0);
        for (int k = 0; k < 3; k++) {
            lua_pushinteger(L, hs_ihc_palette[c][k]);
            lua_rawseti(L, -2, k + 1);
        }
        lua_rawseti(L, -2, c + 1);
    }
    lua_setfield(L, -2, "palette");
    return 1;
}
