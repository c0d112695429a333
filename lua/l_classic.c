// lua/l_classic.c: hs.classic, the classical baselines (core/feature.h, core/classic.h) for Lua:
//   local X = hs.classic.features(images_u8_NHW3, { "rgb_hist", "hed_hist", "lbp", "glcm", bins = 16,
//                                                   levels = 8, hed_max = {0.3, 0.2, 0.3} })   -- (N,F) f32
//   local names = hs.classic.feature_names(spec)                   -- { "rgb_hist_r_00", ... }
//   local m = hs.classic.fit(X, y_i64_or_table, { classifier = "rbf_svm", C = 1, gamma = "scale",
//                                                 tol =, max_iter =, seed = 1, standardize = true })
//   m:predict(X) -> (N) i64 0-based labels; m:decision(X) / m:proba(X) -> (N,K) f32; m:info() -> table
//   m:state() -> table of tensors and numbers; hs.classic.from_state(state) -> model (for saving)
// No math here: everything is in the core.
#include <string.h>

#include "classic.h"
#include "feature.h"
#include "l_common.h"

#define LHS_CLASSIC "hs.classic_model"

typedef struct {
    hs_classic_model *m;  // NULL: empty or released
} model_box;

// ---- features ----

static void check_spec(lua_State *L, int idx, hs_features_spec *spec) {
    luaL_checktype(L, idx, LUA_TTABLE);
    hs_features_spec_default(spec);
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        const char *name = lua_tostring(L, -1);
        if (!name)
            luaL_argerror(L, idx, lua_pushfstring(L, "feature %d is a %s, expected a name", (int)i, luaL_typename(L, -1)));
        if (hs_features_spec_add(spec, name) != HS_OK)
            luaL_argerror(L, idx, hs_last_error()->msg);
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "bins");
    if (!lua_isnil(L, -1))
        spec->bins = (int)luaL_checkinteger(L, -1);
    lua_getfield(L, idx, "levels");
    if (!lua_isnil(L, -1))
        spec->glcm_levels = (int)luaL_checkinteger(L, -1);
    lua_getfield(L, idx, "hed_max");
    if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, lua_istable(L, -1), idx, "'hed_max' must be a table of 3 numbers");
        for (int c = 0; c < 3; c++) {
            lua_geti(L, -1, c + 1);
            spec->hed_max[c] = (float)luaL_checknumber(L, -1);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 3);
    int64_t F;
    if (hs_features_size(&F, spec) != HS_OK)
        luaL_argerror(L, idx, hs_last_error()->msg);
}

static int l_features(lua_State *L) {
    hs_tensor *images = lhs_checktensor(L, 1);
    hs_features_spec spec;
    check_spec(L, 2, &spec);
    luaL_argcheck(L, images->ndim == 4 || images->ndim == 3, 1, "expected (N,H,W,3) or (H,W,3) u8 images");
    int64_t F, N = images->ndim == 4 ? images->shape[0] : 1;
    hs_features_size(&F, &spec);
    int64_t shape[2] = {N, F};
    hs_tensor **out = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(out, HS_DTYPE_F32, 2, shape));
    if (images->ndim == 4) {
        LHS_CHECK(L, hs_features_batch(*out, images, &spec));
    } else {
        LHS_CHECK(L, hs_features_compute((*out)->data, F, images, &spec));
    }
    return 1;
}

static int l_feature_names(lua_State *L) {
    hs_features_spec spec;
    check_spec(L, 1, &spec);
    int64_t F;
    hs_features_size(&F, &spec);
    lua_createtable(L, (int)F, 0);
    char buf[64];
    for (int64_t j = 0; j < F; j++) {
        LHS_CHECK(L, hs_features_name(buf, sizeof buf, &spec, j));
        lua_pushstring(L, buf);
        lua_rawseti(L, -2, j + 1);
    }
    return 1;
}

// ---- models ----

static model_box *new_box(lua_State *L) {
    model_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->m = NULL;
    luaL_setmetatable(L, LHS_CLASSIC);
    return b;
}

static hs_classic_model *check_model(lua_State *L, int idx) {
    model_box *b = luaL_checkudata(L, idx, LHS_CLASSIC);
    luaL_argcheck(L, b->m != NULL, idx, "model has been released");
    return b->m;
}

// y from an I64/I32 tensor or a table of 0-based integer labels (converted into a new tensor
// left on the stack)
static hs_tensor *check_labels(lua_State *L, int idx) {
    if (lua_istable(L, idx)) {
        lua_Integer n = luaL_len(L, idx);
        luaL_argcheck(L, n >= 1, idx, "empty label table");
        int64_t shape[1] = {n};
        hs_tensor **t = lhs_newtensor(L);
        if (hs_tensor_new(t, HS_DTYPE_I64, 1, shape) != HS_OK)
            lhs_core_error(L);  // raises
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, idx, i);
            int isnum;
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            if (!isnum)
                luaL_argerror(L, idx, lua_pushfstring(L, "label %d is not an integer", (int)i));
            ((int64_t *)(*t)->data)[i - 1] = v;
            lua_pop(L, 1);
        }
        return *t;
    }
    return lhs_checktensor(L, idx);
}

static int l_fit(lua_State *L) {
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    int opts = 3;
    luaL_checktype(L, opts, LUA_TTABLE);
    hs_tensor *X = lhs_checktensor(L, 1);
    hs_tensor *y = check_labels(L, 2);  // a label table becomes a tensor on top of the stack
    lua_getfield(L, opts, "classifier");
    const char *name = luaL_optstring(L, -1, "logreg");
    hs_classic_kind kind;
    if (hs_classic_kind_from_name(&kind, name) != HS_OK)
        return luaL_argerror(L, opts, hs_last_error()->msg);
    lua_pop(L, 1);
    hs_classic_params p;
    hs_classic_params_default(&p, kind);
    p.C = lhs_optnumber(L, opts, "C", p.C);
    p.tol = lhs_optnumber(L, opts, "tol", p.tol);
    p.max_iter = (int)lhs_optnumber(L, opts, "max_iter", p.max_iter);
    lua_getfield(L, opts, "gamma");
    if (lua_type(L, -1) == LUA_TSTRING) {
        luaL_argcheck(L, strcmp(lua_tostring(L, -1), "scale") == 0, opts, "'gamma' must be a number or \"scale\"");
        p.gamma = 0;
    } else if (!lua_isnil(L, -1)) {
        p.gamma = luaL_checknumber(L, -1);
        luaL_argcheck(L, p.gamma > 0, opts, "'gamma' must be positive (or \"scale\")");
    }
    lua_getfield(L, opts, "seed");
    p.seed = (uint64_t)luaL_optinteger(L, -1, 1);
    lua_getfield(L, opts, "standardize");
    p.standardize = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
    lua_pop(L, 3);
    model_box *b = new_box(L);
    LHS_CHECK(L, hs_classic_fit(&b->m, X, y, &p));
    return 1;
}

static int l_predict(lua_State *L) {
    hs_classic_model *m = check_model(L, 1);
    hs_tensor *X = lhs_checktensor(L, 2);
    luaL_argcheck(L, X->ndim == 2, 2, "expected an (N,F) f32 tensor");
    int64_t shape[1] = {X->shape[0]};
    hs_tensor **out = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(out, HS_DTYPE_I64, 1, shape));
    LHS_CHECK(L, hs_classic_predict(*out, m, X));
    return 1;
}

static int scores(lua_State *L, int proba) {
    hs_classic_model *m = check_model(L, 1);
    hs_tensor *X = lhs_checktensor(L, 2);
    luaL_argcheck(L, X->ndim == 2, 2, "expected an (N,F) f32 tensor");
    int64_t shape[2] = {X->shape[0], m->n_classes};
    hs_tensor **out = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_new(out, HS_DTYPE_F32, 2, shape));
    LHS_CHECK(L, proba ? hs_classic_proba(*out, m, X) : hs_classic_decision(*out, m, X));
    return 1;
}
static int l_decision(lua_State *L) { return scores(L, 0); }
static int l_proba(lua_State *L) { return scores(L, 1); }

static int l_info(lua_State *L) {
    hs_classic_model *m = check_model(L, 1);
    lua_createtable(L, 0, 9);
    lua_pushstring(L, hs_classic_kind_name(m->kind));
    lua_setfield(L, -2, "classifier");
    lua_pushinteger(L, m->n_features);
    lua_setfield(L, -2, "n_features");
    lua_pushinteger(L, m->n_classes);
    lua_setfield(L, -2, "n_classes");
    lua_pushinteger(L, m->iterations);
    lua_setfield(L, -2, "iterations");
    lua_pushboolean(L, m->converged);
    lua_setfield(L, -2, "converged");
    lua_pushnumber(L, m->objective);
    lua_setfield(L, -2, "objective");
    if (m->kind == HS_CLASSIC_RBF_SVM) {
        lua_pushinteger(L, m->n_sv);
        lua_setfield(L, -2, "n_sv");
        lua_pushnumber(L, m->gamma);
        lua_setfield(L, -2, "gamma");
    }
    return 1;
}

static void push_array(lua_State *L, const float *src, int ndim, int64_t d0, int64_t d1, const char *field) {
    int64_t shape[2] = {d0, d1};
    hs_tensor **t = lhs_newtensor(L);
    if (hs_tensor_new(t, HS_DTYPE_F32, ndim, shape) != HS_OK)
        lhs_core_error(L);
    if (src && d0 * (ndim == 2 ? d1 : 1) > 0)
        memcpy((*t)->data, src, hs_tensor_nbytes(*t));
    lua_setfield(L, -2, field);
}

static int l_state(lua_State *L) {
    hs_classic_model *m = check_model(L, 1);
    int64_t F = m->n_features, K = m->n_classes;
    lua_createtable(L, 0, 8);
    lua_pushstring(L, hs_classic_kind_name(m->kind));
    lua_setfield(L, -2, "classifier");
    push_array(L, m->mean, 1, F, 0, "mean");
    push_array(L, m->scale, 1, F, 0, "scale");
    if (m->kind == HS_CLASSIC_RBF_SVM) {
        lua_pushnumber(L, m->gamma);
        lua_setfield(L, -2, "gamma");
        push_array(L, m->sv, 2, m->n_sv, F, "sv");
        push_array(L, m->coef, 2, K * (K - 1) / 2, m->n_sv, "coef");
        push_array(L, m->rho, 1, K * (K - 1) / 2, 0, "rho");
    } else {
        push_array(L, m->weight, 2, K, F, "weight");
        push_array(L, m->bias, 1, K, 0, "bias");
    }
    return 1;
}

// Copy a field tensor of the state table into dst (n floats), checking its element count.
static void read_array(lua_State *L, int t, const char *field, float *dst, int64_t n) {
    lua_getfield(L, t, field);
    hs_tensor *src = lhs_totensor(L, -1);
    if (!src)
        luaL_argerror(L, t, lua_pushfstring(L, "state.%s must be a tensor", field));
    if (hs_tensor_numel(src) != n)
        luaL_argerror(L, t, lua_pushfstring(L, "state.%s has %d values, expected %d", field, (int)hs_tensor_numel(src), (int)n));
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)hs_tensor_get_flat(src, i);
    lua_pop(L, 1);
}

static int64_t field_dim(lua_State *L, int t, const char *field, int d) {
    lua_getfield(L, t, field);
    hs_tensor *src = lhs_totensor(L, -1);
    if (!src || src->ndim <= d)
        luaL_argerror(L, t, lua_pushfstring(L, "state.%s must be a tensor with at least %d dims", field, d + 1));
    int64_t v = src->shape[d];
    lua_pop(L, 1);
    return v;
}

static int l_from_state(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "classifier");
    hs_classic_kind kind;
    if (hs_classic_kind_from_name(&kind, luaL_optstring(L, -1, "?")) != HS_OK)
        return luaL_argerror(L, 1, hs_last_error()->msg);
    lua_pop(L, 1);
    int64_t F = field_dim(L, 1, "mean", 0), K, S = 0;
    if (kind == HS_CLASSIC_RBF_SVM) {
        int64_t P = field_dim(L, 1, "rho", 0);
        K = 2;
        while (K * (K - 1) / 2 < P)
            K++;
        luaL_argcheck(L, K * (K - 1) / 2 == P, 1, "state.rho must have K(K-1)/2 entries");
        S = field_dim(L, 1, "sv", 0);
    } else {
        K = field_dim(L, 1, "bias", 0);
    }
    model_box *b = new_box(L);
    LHS_CHECK(L, hs_classic_model_new(&b->m, kind, F, K, S));
    hs_classic_model *m = b->m;
    read_array(L, 1, "mean", m->mean, F);
    read_array(L, 1, "scale", m->scale, F);
    if (kind == HS_CLASSIC_RBF_SVM) {
        m->gamma = lhs_optnumber(L, 1, "gamma", 0);
        luaL_argcheck(L, m->gamma > 0, 1, "state.gamma must be positive");
        read_array(L, 1, "sv", m->sv, S * F);
        read_array(L, 1, "coef", m->coef, S * K * (K - 1) / 2);
        read_array(L, 1, "rho", m->rho, K * (K - 1) / 2);
    } else {
        read_array(L, 1, "weight", m->weight, K * F);
        read_array(L, 1, "bias", m->bias, K);
    }
    m->converged = 1;
    return 1;
}

static int l_release(lua_State *L) {
    model_box *b = luaL_checkudata(L, 1, LHS_CLASSIC);
    hs_classic_model_free(b->m);
    b->m = NULL;
    return 0;
}

static int l_tostring(lua_State *L) {
    model_box *b = luaL_checkudata(L, 1, LHS_CLASSIC);
    if (!b->m)
        lua_pushstring(L, "hs.classic_model (released)");
    else
        lua_pushfstring(L, "hs.classic_model %s (F=%d, K=%d)", hs_classic_kind_name(b->m->kind), (int)b->m->n_features,
                        (int)b->m->n_classes);
    return 1;
}

static const luaL_Reg methods[] = {{"predict", l_predict}, {"decision", l_decision}, {"proba", l_proba},
                                   {"info", l_info},       {"state", l_state},       {"release", l_release},
                                   {NULL, NULL}};
static const luaL_Reg meta[] = {{"__gc", l_release}, {"__close", l_release}, {"__tostring", l_tostring}, {NULL, NULL}};
static const luaL_Reg funcs[] = {{"features", l_features},     {"feature_names", l_feature_names},
                                 {"fit", l_fit},               {"from_state", l_from_state},
                                 {NULL, NULL}};

int luaopen_hs_classic(lua_State *L);
int luaopen_hs_classic(lua_State *L) {
    if (luaL_newmetatable(L, LHS_CLASSIC)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
