// lua/l_graph.c: the hs.graph userdata, the Lua face of core/graph.h: build a graph of ops from
// node ids, compile it, feed inputs, run forward/backward and read values and gradients as
// hs.tensor views into the arena. No math here. Node ids and dims are 1-based as everywhere in
// Lua (negative dims count from the end); attribute names follow PyTorch.
#include <string.h>

#include "graph.h"
#include "l_common.h"

#define LHS_GRAPH "hs.graph"
#define MAX_OP_INPUTS 256

typedef struct {
    hs_graph *g;   // NULL: released
} graph_box;

static hs_graph *check_graph(lua_State *L) {
    graph_box *b = luaL_checkudata(L, 1, LHS_GRAPH);
    if (!b->g)
        luaL_argerror(L, 1, "graph has been released");
    return b->g;
}

// Keep the value at idx alive as long as the graph (params, buffers, class weights).
static void pin_value(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, idx);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    lua_pop(L, 1);
}

// A 1-based node id at arg -> 0-based.
static int32_t check_node(lua_State *L, hs_graph *g, int arg) {
    lua_Integer id = luaL_checkinteger(L, arg);
    int n = hs_graph_num_nodes(g);
    if (id < 1 || id > n)
        luaL_argerror(L, arg, lua_pushfstring(L, "node %d does not exist (graph has %d nodes)", (int)id, n));
    return (int32_t)(id - 1);
}

static int l_new(lua_State *L) {
    graph_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->g = NULL;
    luaL_setmetatable(L, LHS_GRAPH);
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    LHS_CHECK(L, hs_graph_new(&b->g));
    return 1;
}

static int l_release(lua_State *L) {   // __gc and __close
    graph_box *b = luaL_checkudata(L, 1, LHS_GRAPH);
    hs_graph_free(b->g);
    b->g = NULL;
    return 0;
}

// g:input(shape [, dtype] [, {requires_grad = true}])
static int l_input(lua_State *L) {
    hs_graph *g = check_graph(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    int64_t shape[HS_MAX_DIMS];
    int nd = lhs_checkshape(L, 2, shape);
    int opts = 0;
    hs_dtype dt = HS_DTYPE_F32;
    if (lua_istable(L, 3))
        opts = 3;
    else {
        dt = lhs_checkdtype(L, 3, HS_DTYPE_F32);
        if (lua_istable(L, 4))
            opts = 4;
        else
            luaL_argcheck(L, lua_isnoneornil(L, 4), 4, "options table expected");
    }
    int32_t id;
    LHS_CHECK(L, hs_graph_input(g, &id, dt, nd, shape));
    if (opts) {
        lua_getfield(L, opts, "requires_grad");
        int rg = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (rg)
            LHS_CHECK(L, hs_graph_require_grad(g, id));
    }
    lua_pushinteger(L, id + 1);
    return 1;
}

// g:param(value [, grad])
static int l_param(lua_State *L) {
    hs_graph *g = check_graph(L);
    hs_tensor *v = lhs_checktensor(L, 2);
    hs_tensor *gr = lua_isnoneornil(L, 3) ? NULL : lhs_checktensor(L, 3);
    int32_t id;
    LHS_CHECK(L, hs_graph_param(g, &id, v, gr));
    pin_value(L, 2);
    if (gr)
        pin_value(L, 3);
    lua_pushinteger(L, id + 1);
    return 1;
}

static int l_buffer(lua_State *L) {
    hs_graph *g = check_graph(L);
    hs_tensor *v = lhs_checktensor(L, 2);
    int32_t id;
    LHS_CHECK(L, hs_graph_buffer(g, &id, v));
    pin_value(L, 2);
    lua_pushinteger(L, id + 1);
    return 1;
}

// ---- attributes ----

static void attr_pair(lua_State *L, int idx, const char *key, int out[2]) {
    if (lua_istable(L, idx)) {
        luaL_argcheck(L, luaL_len(L, idx) == 2, 4, lua_pushfstring(L, "attribute '%s' must be a number or a pair", key));
        for (int i = 0; i < 2; i++) {
            lua_geti(L, idx, i + 1);
            int isnum;
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            if (!isnum)
                luaL_argerror(L, 4, lua_pushfstring(L, "attribute '%s' must hold integers", key));
            out[i] = (int)v;
            lua_pop(L, 1);
        }
        return;
    }
    int isnum;
    lua_Integer v = lua_tointegerx(L, idx, &isnum);
    if (!isnum)
        luaL_argerror(L, 4, lua_pushfstring(L, "attribute '%s' must be an integer or a pair", key));
    out[0] = out[1] = (int)v;
}

static lua_Integer attr_int(lua_State *L, int idx, const char *key) {
    int isnum;
    lua_Integer v = lua_tointegerx(L, idx, &isnum);
    if (!isnum)
        luaL_argerror(L, 4, lua_pushfstring(L, "attribute '%s' must be an integer", key));
    return v;
}

static float attr_float(lua_State *L, int idx, const char *key) {
    hs_tensor *t = lhs_totensor(L, idx);
    if (t && hs_tensor_numel(t) == 1)
        return (float)hs_tensor_get_flat(t, 0);
    int isnum;
    lua_Number v = lua_tonumberx(L, idx, &isnum);
    if (!isnum)
        luaL_argerror(L, 4, lua_pushfstring(L, "attribute '%s' must be a number", key));
    return (float)v;
}

static int attr_bool(lua_State *L, int idx) {
    if (lua_isnumber(L, idx))
        return lua_tonumber(L, idx) != 0;
    return lua_toboolean(L, idx);
}

// Lua dims are 1-based (negative from the end); core dims are 0-based (negative from the end).
static int attr_dim(lua_State *L, int idx, const char *key) {
    lua_Integer d = attr_int(L, idx, key);
    if (d == 0)
        luaL_argerror(L, 4, lua_pushfstring(L, "attribute '%s' is 1-based: 0 is not a dim", key));
    return (int)(d > 0 ? d - 1 : d);
}

// Parse the attrs table at idx; a class weight tensor (cross_entropy) is returned via *weight_idx.
static void parse_attrs(lua_State *L, int idx, hs_op_attrs *a, int *weight_idx) {
    *weight_idx = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int v = lua_gettop(L);
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, 4, "attribute names must be strings");
        const char *k = lua_tostring(L, -2);
        if (!strcmp(k, "stride")) attr_pair(L, v, k, a->stride);
        else if (!strcmp(k, "padding")) attr_pair(L, v, k, a->padding);
        else if (!strcmp(k, "dilation")) attr_pair(L, v, k, a->dilation);
        else if (!strcmp(k, "output_padding")) attr_pair(L, v, k, a->output_padding);
        else if (!strcmp(k, "kernel_size")) attr_pair(L, v, k, a->kernel_size);
        else if (!strcmp(k, "scale_factor")) attr_pair(L, v, k, a->scale_factor);
        else if (!strcmp(k, "groups")) a->groups = (int)attr_int(L, v, k);
        else if (!strcmp(k, "seed")) a->seed = (uint64_t)attr_int(L, v, k);
        else if (!strcmp(k, "ceil_mode")) a->ceil_mode = attr_bool(L, v);
        else if (!strcmp(k, "count_include_pad")) a->count_include_pad = attr_bool(L, v);
        else if (!strcmp(k, "keepdim")) a->keepdim = attr_bool(L, v);
        else if (!strcmp(k, "momentum")) a->momentum = attr_float(L, v, k);
        else if (!strcmp(k, "eps")) a->eps = attr_float(L, v, k);
        else if (!strcmp(k, "p")) a->p = attr_float(L, v, k);
        else if (!strcmp(k, "negative_slope")) a->negative_slope = attr_float(L, v, k);
        else if (!strcmp(k, "label_smoothing")) a->label_smoothing = attr_float(L, v, k);
        else if (!strcmp(k, "pos_weight")) a->pos_weight = attr_float(L, v, k);
        else if (!strcmp(k, "smooth")) a->smooth = attr_float(L, v, k);
        else if (!strcmp(k, "value")) a->value = attr_float(L, v, k);
        else if (!strcmp(k, "dim")) {
            a->dim = attr_dim(L, v, k);
            a->has_dim = 1;
        } else if (!strcmp(k, "start_dim")) a->start_dim = attr_dim(L, v, k);
        else if (!strcmp(k, "end_dim")) a->end_dim = attr_dim(L, v, k);
        else if (!strcmp(k, "shape")) {
            luaL_argcheck(L, lua_istable(L, v), 4, "attribute 'shape' must be a table");
            a->shape_ndim = lhs_checkshape(L, v, a->shape);
        } else if (!strcmp(k, "weight")) {
            lhs_checktensor(L, v);
            *weight_idx = v;   // stays on the stack: keep it there (the loop pops only v)
            lua_pushvalue(L, -2);   // key for the next lua_next, above the kept value
            continue;
        } else
            luaL_argerror(L, 4, lua_pushfstring(L, "unknown attribute '%s'", k));
        lua_settop(L, v - 1);
    }
}

// g:op(name, {inputs...} [, attrs]) -> node id
static int l_op(lua_State *L) {
    hs_graph *g = check_graph(L);
    const char *name = luaL_checkstring(L, 2);
    hs_opkind kind;
    if (hs_opkind_from_name(&kind, name) != HS_OK)
        return luaL_argerror(L, 2, lua_pushfstring(L, "unknown op '%s'", name));
    luaL_checktype(L, 3, LUA_TTABLE);
    int32_t in[MAX_OP_INPUTS + 1];
    lua_Integer nin = luaL_len(L, 3);
    luaL_argcheck(L, nin <= MAX_OP_INPUTS, 3, "too many inputs");
    for (lua_Integer i = 1; i <= nin; i++) {
        lua_geti(L, 3, i);
        int isnum;
        lua_Integer id = lua_tointegerx(L, -1, &isnum);
        lua_pop(L, 1);
        if (!isnum || id < 1 || id > hs_graph_num_nodes(g))
            return luaL_argerror(L, 3, lua_pushfstring(L, "input %d is not a node id of this graph", (int)i));
        in[i - 1] = (int32_t)(id - 1);
    }
    hs_op_attrs a;
    hs_op_attrs_init(&a);
    int weight_idx = 0;
    lua_settop(L, 4);
    if (!lua_isnil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        parse_attrs(L, 4, &a, &weight_idx);
    }
    if (weight_idx) {
        if (kind != HS_OP_CROSS_ENTROPY)
            return luaL_argerror(L, 4, "attribute 'weight' is for cross_entropy only");
        if (nin != 2)
            return luaL_argerror(L, 3, "cross_entropy with a weight attribute takes {logits, target}");
        int32_t wid;
        LHS_CHECK(L, hs_graph_buffer(g, &wid, lhs_checktensor(L, weight_idx)));
        pin_value(L, weight_idx);
        in[nin++] = wid;
    }
    int32_t id;
    LHS_CHECK(L, hs_graph_op(g, &id, kind, in, (int)nin, &a));
    lua_pushinteger(L, id + 1);
    return 1;
}

static void push_shape(lua_State *L, int ndim, const int64_t *shape) {
    lua_createtable(L, ndim, 0);
    for (int i = 0; i < ndim; i++) {
        lua_pushinteger(L, shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int l_shape(lua_State *L) {
    hs_graph *g = check_graph(L);
    hs_graph_node_info info;
    LHS_CHECK(L, hs_graph_node(g, check_node(L, g, 2), &info));
    push_shape(L, info.ndim, info.shape);
    return 1;
}

static const char *kind_name(const hs_graph_node_info *info) {
    switch (info->kind) {
    case HS_NODE_INPUT: return "input";
    case HS_NODE_PARAM: return "param";
    case HS_NODE_BUFFER: return "buffer";
    default: return hs_opkind_name(info->op);
    }
}

// g:nodes() -> { {id=, kind="input"|"param"|"buffer"|"op", op=, shape=, dtype=, inputs=, needs_grad=}, ... }
static int l_nodes(lua_State *L) {
    hs_graph *g = check_graph(L);
    int n = hs_graph_num_nodes(g);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        hs_graph_node_info info;
        LHS_CHECK(L, hs_graph_node(g, i, &info));
        lua_createtable(L, 0, 7);
        lua_pushinteger(L, i + 1);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, info.kind == HS_NODE_OP ? "op" : kind_name(&info));
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, kind_name(&info));
        lua_setfield(L, -2, "op");
        push_shape(L, info.ndim, info.shape);
        lua_setfield(L, -2, "shape");
        lua_pushstring(L, info.dtype == HS_DTYPE_I64 ? "i64" : "f32");
        lua_setfield(L, -2, "dtype");
        lua_createtable(L, info.nin, 0);
        for (int j = 0; j < info.nin; j++) {
            lua_pushinteger(L, info.inputs[j] + 1);
            lua_rawseti(L, -2, j + 1);
        }
        lua_setfield(L, -2, "inputs");
        lua_pushboolean(L, info.needs_grad);
        lua_setfield(L, -2, "needs_grad");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

// g:compile{ loss = id, outputs = {ids}, training = bool (default: loss given), keep_all = bool }
static int l_compile(lua_State *L) {
    hs_graph *g = check_graph(L);
    lua_settop(L, 2);
    if (lua_isnil(L, 2)) {
        lua_newtable(L);
        lua_replace(L, 2);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    int32_t loss = -1;
    lua_getfield(L, 2, "loss");
    if (!lua_isnil(L, -1)) {
        int isnum;
        lua_Integer id = lua_tointegerx(L, -1, &isnum);
        if (!isnum || id < 1 || id > hs_graph_num_nodes(g))
            return luaL_argerror(L, 2, "'loss' is not a node id of this graph");
        loss = (int32_t)(id - 1);
    }
    lua_pop(L, 1);
    int32_t outs[MAX_OP_INPUTS];
    int nout = 0;
    lua_getfield(L, 2, "outputs");
    if (!lua_isnil(L, -1)) {
        luaL_argcheck(L, lua_istable(L, -1), 2, "'outputs' must be a table of node ids");
        lua_Integer n = luaL_len(L, -1);
        luaL_argcheck(L, n <= MAX_OP_INPUTS, 2, "too many outputs");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            int isnum;
            lua_Integer id = lua_tointegerx(L, -1, &isnum);
            lua_pop(L, 1);
            if (!isnum || id < 1 || id > hs_graph_num_nodes(g))
                return luaL_argerror(L, 2, lua_pushfstring(L, "outputs[%d] is not a node id of this graph", (int)i));
            outs[nout++] = (int32_t)(id - 1);
        }
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "training");
    int training = lua_isnil(L, -1) ? loss >= 0 : lua_toboolean(L, -1);
    lua_getfield(L, 2, "keep_all");
    int keep = lua_toboolean(L, -1);
    lua_pop(L, 2);
    if (keep)
        LHS_CHECK(L, hs_graph_keep_all(g, 1));
    LHS_CHECK(L, hs_graph_compile(g, loss, outs, nout, training));
    lua_settop(L, 1);
    return 1;
}

static int l_set(lua_State *L) {
    hs_graph *g = check_graph(L);
    int32_t id = check_node(L, g, 2);
    LHS_CHECK(L, hs_graph_set_input(g, id, lhs_checktensor(L, 3)));
    lua_settop(L, 1);
    return 1;
}

static int l_forward(lua_State *L) {
    LHS_CHECK(L, hs_graph_forward(check_graph(L)));
    lua_settop(L, 1);
    return 1;
}

static int l_backward(lua_State *L) {
    hs_graph *g = check_graph(L);
    const hs_tensor *dout = lua_isnoneornil(L, 2) ? NULL : lhs_checktensor(L, 2);
    LHS_CHECK(L, hs_graph_backward(g, dout));
    lua_settop(L, 1);
    return 1;
}

// A tensor view of arena memory (or a param's tensor); pins the graph.
static int push_view(lua_State *L, const hs_tensor *v) {
    hs_tensor **slot = lhs_newtensor(L);
    LHS_CHECK(L, hs_tensor_wrap(slot, v->dtype, v->ndim, v->shape, v->data));
    lhs_pin(L, 1);
    return 1;
}

static int l_value(lua_State *L) {
    hs_graph *g = check_graph(L);
    hs_tensor v;
    LHS_CHECK(L, hs_graph_value(g, check_node(L, g, 2), &v));
    return push_view(L, &v);
}

static int l_grad(lua_State *L) {
    hs_graph *g = check_graph(L);
    hs_tensor v;
    LHS_CHECK(L, hs_graph_grad(g, check_node(L, g, 2), &v));
    return push_view(L, &v);
}

static int l_set_step(lua_State *L) {
    hs_graph *g = check_graph(L);
    lua_Integer s = luaL_checkinteger(L, 2);
    luaL_argcheck(L, s >= 0, 2, "step must be >= 0");
    hs_graph_set_step(g, (uint64_t)s);
    lua_settop(L, 1);
    return 1;
}

static int l_arena_bytes(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)hs_graph_arena_bytes(check_graph(L)));
    return 1;
}

static int l_naive_bytes(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)hs_graph_naive_bytes(check_graph(L)));
    return 1;
}

// g:profile(on) switches per-op timing on (clearing the counters) or off; g:profile() returns
// { fwd_runs=, bwd_runs=, zero_ms=, ops = { {id=, op=, shape=, fwd_ms=, bwd_ms=}, ... } } with the
// op times in milliseconds per run, ops in execution order (only ops that ran).
static int l_profile(lua_State *L) {
    hs_graph *g = check_graph(L);
    if (!lua_isnoneornil(L, 2)) {
        LHS_CHECK(L, hs_graph_set_profile(g, lua_toboolean(L, 2)));
        lua_settop(L, 1);
        return 1;
    }
    double zero;
    int64_t fr, br;
    hs_graph_profile_totals(g, &zero, &fr, &br);
    double fdiv = fr > 0 ? (double)fr : 1.0, bdiv = br > 0 ? (double)br : 1.0;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)fr);
    lua_setfield(L, -2, "fwd_runs");
    lua_pushinteger(L, (lua_Integer)br);
    lua_setfield(L, -2, "bwd_runs");
    lua_pushnumber(L, zero * 1e3 / bdiv);
    lua_setfield(L, -2, "zero_ms");
    lua_newtable(L);
    int n = hs_graph_num_nodes(g), k = 0;
    for (int i = 0; i < n; i++) {
        hs_graph_node_info info;
        double f, b;
        LHS_CHECK(L, hs_graph_node(g, i, &info));
        if (info.kind != HS_NODE_OP)
            continue;
        LHS_CHECK(L, hs_graph_profile_node(g, i, &f, &b));
        if (f == 0.0 && b == 0.0)
            continue;
        lua_createtable(L, 0, 5);
        lua_pushinteger(L, i + 1);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, hs_opkind_name(info.op));
        lua_setfield(L, -2, "op");
        push_shape(L, info.ndim, info.shape);
        lua_setfield(L, -2, "shape");
        lua_pushnumber(L, f * 1e3 / fdiv);
        lua_setfield(L, -2, "fwd_ms");
        lua_pushnumber(L, b * 1e3 / bdiv);
        lua_setfield(L, -2, "bwd_ms");
        lua_rawseti(L, -2, ++k);
    }
    lua_setfield(L, -2, "ops");
    return 1;
}

static int l_num_nodes(lua_State *L) {
    lua_pushinteger(L, hs_graph_num_nodes(check_graph(L)));
    return 1;
}

static int l_tostring(lua_State *L) {
    graph_box *b = luaL_checkudata(L, 1, LHS_GRAPH);
    if (!b->g)
        lua_pushliteral(L, "hs.graph (released)");
    else if (hs_graph_arena_bytes(b->g))
        lua_pushfstring(L, "hs.graph (%d nodes, compiled, arena %d bytes)", hs_graph_num_nodes(b->g),
                        (int)hs_graph_arena_bytes(b->g));
    else
        lua_pushfstring(L, "hs.graph (%d nodes)", hs_graph_num_nodes(b->g));
    return 1;
}

static const luaL_Reg methods[] = {
    {"input", l_input}, {"param", l_param}, {"buffer", l_buffer}, {"op", l_op}, {"shape", l_shape},
    {"nodes", l_nodes}, {"num_nodes", l_num_nodes}, {"compile", l_compile}, {"set", l_set},
    {"forward", l_forward}, {"backward", l_backward}, {"value", l_value}, {"grad", l_grad},
    {"set_step", l_set_step}, {"arena_bytes", l_arena_bytes}, {"naive_bytes", l_naive_bytes},
    {"profile", l_profile}, {"release", l_release}, {NULL, NULL}};

static const luaL_Reg meta[] = {{"__gc", l_release}, {"__close", l_release}, {"__tostring", l_tostring},
                                {"__len", l_num_nodes}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"new", l_new}, {NULL, NULL}};

int luaopen_hs_graph(lua_State *L);
int luaopen_hs_graph(lua_State *L) {
    if (luaL_newmetatable(L, LHS_GRAPH)) {
        luaL_setfuncs(L, meta, 0);
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    return 1;
}
