// lua/l_optim.c: the hs.optim module: low-level optimizer steps on flat float32 parameter slabs
// (torch.optim semantics, core/optim.c) and gradient-norm clipping. No math here and no optimizer
// objects: the Lua training code owns the slabs (params, grads, moments) and the step counter.
//
//   optim.sgd_step(w, g, buf, {lr=, momentum=0, dampening=0, weight_decay=0, nesterov=false}, step) -> w
//   optim.adam_step(w, g, m, v, {lr=1e-3, betas={0.9,0.999}, eps=1e-8, weight_decay=0, decoupled=false}, step) -> w
//   optim.clip_grad_norm(g | {g1, g2, ...}, max_norm) -> total norm (before clipping)
//   optim.grad_norm(g | {g1, g2, ...}) -> total 2-norm
// w, g and the state slabs are contiguous F32 tensors of one shape; step is 1-based.
#include <math.h>

#include "l_common.h"
#include "optim.h"

// A contiguous F32 tensor at idx (the parameter/state slabs).
static hs_tensor *check_slab(lua_State *L, int idx) {
    hs_tensor *t = lhs_checktensor(L, idx);
    if (t->dtype != HS_DTYPE_F32)
        luaL_argerror(L, idx, lua_pushfstring(L, "F32 tensor expected, got %s", hs_dtype_name(t->dtype)));
    if (!hs_tensor_is_contiguous(t))
        luaL_argerror(L, idx, "tensor must be contiguous (use :contiguous())");
    return t;
}

// Slab at idx with the same shape as w (argument 1).
static hs_tensor *check_like(lua_State *L, int idx, const hs_tensor *w, const char *name) {
    hs_tensor *t = check_slab(L, idx);
    if (!hs_tensor_same_shape(t, w)) {
        char a[160], b[160];
        luaL_argerror(L, idx, lua_pushfstring(L, "%s has shape %s, w has shape %s", name,
                                              hs_tensor_shape_str(t, a, sizeof a), hs_tensor_shape_str(w, b, sizeof b)));
    }
    return t;
}

static int64_t check_step(lua_State *L, int idx) {
    lua_Integer step = luaL_checkinteger(L, idx);
    luaL_argcheck(L, step >= 1, idx, "step must be >= 1 (1-based)");
    return (int64_t)step;
}

static int l_sgd_step(lua_State *L) {
    static const char *const keys[] = {"lr", "momentum", "dampening", "weight_decay", "nesterov", NULL};
    hs_tensor *w = check_slab(L, 1), *g = check_like(L, 2, w, "g");
    luaL_checktype(L, 4, LUA_TTABLE);
    lhs_checkoptkeys(L, 4, keys);
    hs_sgd_params p = {.lr = (float)lhs_optnumber_strict(L, 4, "lr", 0, 1),
                       .momentum = (float)lhs_optnumber_strict(L, 4, "momentum", 0, 0),
                       .dampening = (float)lhs_optnumber_strict(L, 4, "dampening", 0, 0),
                       .weight_decay = (float)lhs_optnumber_strict(L, 4, "weight_decay", 0, 0),
                       .nesterov = lhs_optboolean_strict(L, 4, "nesterov", 0)};
    int64_t step = check_step(L, 5);
    float *buf = NULL;
    if (!lua_isnil(L, 3))
        buf = check_like(L, 3, w, "buf")->data;
    else if (p.momentum != 0.0f)
        luaL_argerror(L, 3, "momentum buffer (a tensor shaped like w) required when momentum ~= 0");
    LHS_CHECK(L, hs_sgd_step(w->data, g->data, buf, hs_tensor_numel(w), &p, step));
    lua_settop(L, 1);
    return 1;
}

static int l_adam_step(lua_State *L) {
    static const char *const keys[] = {"lr", "betas", "eps", "weight_decay", "decoupled", NULL};
    hs_tensor *w = check_slab(L, 1), *g = check_like(L, 2, w, "g");
    hs_tensor *m = check_like(L, 3, w, "m"), *v = check_like(L, 4, w, "v");
    hs_adam_params p = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    if (!lua_isnil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        lhs_checkoptkeys(L, 5, keys);
        p.lr = (float)lhs_optnumber_strict(L, 5, "lr", 1e-3, 0);
        p.eps = (float)lhs_optnumber_strict(L, 5, "eps", 1e-8, 0);
        p.weight_decay = (float)lhs_optnumber_strict(L, 5, "weight_decay", 0, 0);
        p.decoupled = lhs_optboolean_strict(L, 5, "decoupled", 0);
        if (lua_getfield(L, 5, "betas") != LUA_TNIL) {
            int isnum1, isnum2;
            if (!lua_istable(L, -1))
                luaL_argerror(L, 5, "option 'betas' must be a table {beta1, beta2}");
            lua_geti(L, -1, 1);
            lua_geti(L, -2, 2);
            double b1 = lua_tonumberx(L, -2, &isnum1), b2 = lua_tonumberx(L, -1, &isnum2);
            if (!isnum1 || !isnum2)
                luaL_argerror(L, 5, "option 'betas' must hold two numbers {beta1, beta2}");
            p.beta1 = (float)b1;
            p.beta2 = (float)b2;
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
    int64_t step = check_step(L, 6);
    LHS_CHECK(L, hs_adam_step(w->data, g->data, m->data, v->data, hs_tensor_numel(w), &p, step));
    lua_settop(L, 1);
    return 1;
}

// Argument 1 holds one gradient slab or an array of slabs: their count, and slab i (0-based).
static lua_Integer slab_count(lua_State *L) {
    if (!lua_istable(L, 1)) {
        check_slab(L, 1);
        return 1;
    }
    return luaL_len(L, 1);
}

static hs_tensor *slab_at(lua_State *L, lua_Integer i) {
    if (!lua_istable(L, 1))
        return check_slab(L, 1);
    lua_geti(L, 1, i + 1);
    hs_tensor *t = lhs_totensor(L, -1);
    if (!t || t->dtype != HS_DTYPE_F32 || !hs_tensor_is_contiguous(t))
        luaL_argerror(L, 1, lua_pushfstring(L, "element %d is not a contiguous F32 tensor", (int)(i + 1)));
    lua_pop(L, 1);   // still referenced by the table for the duration of the call
    return t;
}

// 2-norm over all slabs: per-slab norms (deterministic, double) combined in order.
static double total_norm(lua_State *L, lua_Integer n) {
    double sq = 0.0;
    for (lua_Integer i = 0; i < n; i++) {
        hs_tensor *t = slab_at(L, i);
        double nrm;
        if (hs_optim_grad_norm(&nrm, t->data, hs_tensor_numel(t)) != HS_OK)
            lhs_core_error(L);
        sq += nrm * nrm;
    }
    return sqrt(sq);
}

static int l_grad_norm(lua_State *L) {
    lua_pushnumber(L, total_norm(L, slab_count(L)));
    return 1;
}

// torch.nn.utils.clip_grad_norm_: coef = max_norm / (total + 1e-6), applied when < 1.
static int l_clip_grad_norm(lua_State *L) {
    lua_Number max_norm = luaL_checknumber(L, 2);
    luaL_argcheck(L, max_norm >= 0, 2, "max_norm must be >= 0");
    if (!lua_istable(L, 1)) {
        hs_tensor *g = check_slab(L, 1);
        float total;
        LHS_CHECK(L, hs_clip_grad_norm(g->data, hs_tensor_numel(g), (float)max_norm, &total));
        lua_pushnumber(L, (double)total);
        return 1;
    }
    lua_Integer n = slab_count(L);
    double total = total_norm(L, n);
    float coef = (float)(max_norm / (total + 1e-6));
    if (coef < 1.0f)
        for (lua_Integer i = 0; i < n; i++) {
            hs_tensor *t = slab_at(L, i);
            LHS_CHECK(L, hs_optim_scale(t->data, hs_tensor_numel(t), coef));
        }
    lua_pushnumber(L, (double)(float)total);
    return 1;
}

static const luaL_Reg funcs[] = {{"sgd_step", l_sgd_step},
                                 {"adam_step", l_adam_step},
                                 {"clip_grad_norm", l_clip_grad_norm},
                                 {"grad_norm", l_grad_norm},
                                 {NULL, NULL}};

int luaopen_hs_optim(lua_State *L);
int luaopen_hs_optim(lua_State *L) {
    luaL_newlib(L, funcs);
    return 1;
}
