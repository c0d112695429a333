// lua/l_mpi.c: the hs.mpi module: MPI start-up, rank/size and the few collectives that
// data-parallel training and sweeps need (strings and F32 tensors), over core/dist.h. It always
// loads; when histops runs without mpirun (or was built without MPI) the world is one rank and
// every collective is a local no-op or copy. No training logic here (that is lua/hs/dist.lua).
//   available() launched() init() rank() size() barrier() bcast(s, root) gather(s, root)
//   allgather(s) allreduce_sum(t) allreduce_mean(t) allreduce_sum_f64(x) iallreduce_sum(t)
//   wait(req) bcast_tensor(t, root) abort(code, msg) finalize()
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "l_common.h"

#define MPI_SENTINEL "hs.mpi.sentinel"

// Seconds the ranks wait for each other at exit when the script did not call mpi.finalize():
// past it, a rank whose peers failed (or hang in a collective) aborts the job instead of hanging.
#define EXIT_TIMEOUT_DEFAULT 60.0

static int l_available(lua_State *L) {
    lua_pushboolean(L, hs_dist_available());
    return 1;
}

static int l_launched(lua_State *L) {
    lua_pushboolean(L, hs_dist_launched());
    return 1;
}

static int l_init(lua_State *L) {
    int rank = 0, size = 1;
    LHS_CHECK(L, hs_dist_init(&rank, &size));
    lua_pushinteger(L, rank);
    lua_pushinteger(L, size);
    return 2;
}

static int l_rank(lua_State *L) {
    lua_pushinteger(L, hs_dist_rank());
    return 1;
}

static int l_size(lua_State *L) {
    lua_pushinteger(L, hs_dist_size());
    return 1;
}

static int l_barrier(lua_State *L) {
    LHS_CHECK(L, hs_dist_barrier());
    return 0;
}

static int check_root(lua_State *L, int arg) {
    lua_Integer root = luaL_optinteger(L, arg, 0);
    luaL_argcheck(L, root >= 0 && root < hs_dist_size(), arg, "root rank out of range");
    return (int)root;
}

static int l_bcast(lua_State *L) {
    int root = check_root(L, 2);
    int me = hs_dist_rank() == root;
    size_t len = 0;
    const char *s = NULL;
    if (me)
        s = luaL_checklstring(L, 1, &len);  // only the root's argument matters
    uint64_t n = len;
    LHS_CHECK(L, hs_dist_bcast_size(&n, root));
    if (me) {
        LHS_CHECK(L, hs_dist_bcast((void *)s, n, root));  // root's buffer is only read
        lua_pushvalue(L, 1);
        return 1;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)n);
    LHS_CHECK(L, hs_dist_bcast(p, n, root));
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

// Push the concatenation `all` split by sizes as an array of strings.
static void push_split(lua_State *L, const char *all, const uint64_t *sizes, int n) {
    lua_createtable(L, n, 0);
    uint64_t off = 0;
    for (int r = 0; r < n; r++) {
        lua_pushlstring(L, all + off, (size_t)sizes[r]);
        lua_rawseti(L, -2, r + 1);
        off += sizes[r];
    }
}

static int gather_common(lua_State *L, int all) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    int root = all ? 0 : check_root(L, 2);
    int n = hs_dist_size();
    int have = all || hs_dist_rank() == root;
    uint64_t *sizes = lua_newuserdatauv(L, sizeof *sizes * (size_t)n, 0);  // freed by the GC
    if (all)
        LHS_CHECK(L, hs_dist_allgather_sizes(sizes, len));
    else
        LHS_CHECK(L, hs_dist_gather_sizes(sizes, len, root));
    uint64_t total = 0;
    if (have)
        for (int r = 0; r < n; r++)
            total += sizes[r];
    char *recv = have ? lua_newuserdatauv(L, total ? (size_t)total : 1, 0) : NULL;
    if (all)
        LHS_CHECK(L, hs_dist_allgatherv(recv, sizes, s, len));
    else
        LHS_CHECK(L, hs_dist_gatherv(recv, sizes, s, len, root));
    if (!have) {
        lua_pushnil(L);
        return 1;
    }
    push_split(L, recv, sizes, n);
    return 1;
}

static int l_gather(lua_State *L) { return gather_common(L, 0); }
static int l_allgather(lua_State *L) { return gather_common(L, 1); }

static hs_tensor *check_reducible(lua_State *L, int idx) {
    hs_tensor *t = lhs_checktensor(L, idx);
    luaL_argcheck(L, t->dtype == HS_DTYPE_F32 || t->dtype == HS_DTYPE_F64, idx,
                  "F32 or F64 tensor expected");
    luaL_argcheck(L, hs_tensor_is_contiguous(t), idx, "contiguous tensor expected");
    return t;
}

static int reduce(lua_State *L, int mean) {
    hs_tensor *t = check_reducible(L, 1);
    int64_t n = hs_tensor_numel(t);
    if (t->dtype == HS_DTYPE_F32) {
        float *p = t->data;
        LHS_CHECK(L, hs_dist_allreduce_sum_f32(p, n));
        if (mean && hs_dist_size() > 1) {
            float inv = 1.0f / (float)hs_dist_size();
            for (int64_t i = 0; i < n; i++)
                p[i] *= inv;
        }
    } else {
        double *p = t->data;
        LHS_CHECK(L, hs_dist_allreduce_sum_f64(p, n));
        if (mean && hs_dist_size() > 1)
            for (int64_t i = 0; i < n; i++)
                p[i] /= (double)hs_dist_size();
    }
    lua_settop(L, 1);
    return 1;
}

static int l_allreduce_sum(lua_State *L) { return reduce(L, 0); }
static int l_allreduce_mean(lua_State *L) { return reduce(L, 1); }

// bcast_tensor(t, root) -> t: root's contents into every rank's t (same dtype and shape everywhere).
static int l_bcast_tensor(lua_State *L) {
    hs_tensor *t = lhs_checktensor(L, 1);
    luaL_argcheck(L, hs_tensor_is_contiguous(t), 1, "contiguous tensor expected");
    int root = check_root(L, 2);
    LHS_CHECK(L, hs_dist_bcast(t->data, hs_tensor_nbytes(t), root));
    lua_settop(L, 1);
    return 1;
}

static int l_allreduce_sum_f64(lua_State *L) {
    double x = (double)luaL_checknumber(L, 1);
    LHS_CHECK(L, hs_dist_allreduce_sum_f64(&x, 1));
    lua_pushnumber(L, (lua_Number)x);
    return 1;
}

// Request req's slot in the registry's pending table: the value at stack index idx (pinning it),
// or nil (idx 0) to release it.
static void set_pending(lua_State *L, int req, int idx) {
    lua_getfield(L, LUA_REGISTRYINDEX, MPI_SENTINEL ".pending");
    if (idx)
        lua_pushvalue(L, idx);
    else
        lua_pushnil(L);
    lua_rawseti(L, -2, (lua_Integer)req + 1);
    lua_pop(L, 1);
}

// iallreduce_sum(t) -> request: starts an in-place sum of an F32 tensor; the tensor is pinned
// in the registry until wait(request) so the garbage collector cannot free the buffer MPI uses.
static int l_iallreduce_sum(lua_State *L) {
    hs_tensor *t = check_reducible(L, 1);
    luaL_argcheck(L, t->dtype == HS_DTYPE_F32, 1, "F32 tensor expected");
    int req;
    LHS_CHECK(L, hs_dist_iallreduce_sum_f32(&req, t->data, hs_tensor_numel(t)));
    if (req >= 0)
        set_pending(L, req, 1);
    lua_pushinteger(L, req);
    return 1;
}

static int l_wait(lua_State *L) {
    lua_Integer req = luaL_checkinteger(L, 1);
    luaL_argcheck(L, req >= -1 && req < HS_DIST_MAX_REQUESTS, 1, "not a request");
    LHS_CHECK(L, hs_dist_wait((int)req));
    if (req >= 0)
        set_pending(L, (int)req, 0);
    return 0;
}

static int l_abort(lua_State *L) {
    lua_Integer code = luaL_optinteger(L, 1, 1);
    const char *msg = luaL_optstring(L, 2, NULL);
    if (msg)
        fprintf(stderr, "histops: rank %d of %d: %s\n", hs_dist_rank(), hs_dist_size(), msg);
    fflush(stdout);
    fflush(stderr);
    if (hs_dist_abort((int)code) != HS_OK)
        exit((int)code);  // MPI not running: nobody waits on us, a plain exit is the abort
    return 0;
}

static int l_finalize(lua_State *L) {
    LHS_CHECK(L, hs_dist_finalize(0));
    return 0;
}

// At lua_close: finalize, but never hang on peers that failed (see EXIT_TIMEOUT_DEFAULT).
static int sentinel_gc(lua_State *L) {
    if (!hs_dist_initialized())
        return 0;
    const char *env = getenv("HISTOPS_MPI_EXIT_TIMEOUT");
    double timeout = env ? atof(env) : EXIT_TIMEOUT_DEFAULT;
    if (timeout <= 0)
        timeout = EXIT_TIMEOUT_DEFAULT;
    if (hs_dist_finalize(timeout) != HS_OK) {
        fprintf(stderr, "histops: %s; aborting the MPI job\n", hs_last_error()->msg);
        fflush(stderr);
        hs_dist_abort(1);
    }
    return 0;
}

static const luaL_Reg funcs[] = {
    {"available", l_available},
    {"launched", l_launched},
    {"init", l_init},
    {"rank", l_rank},
    {"size", l_size},
    {"barrier", l_barrier},
    {"bcast", l_bcast},
    {"gather", l_gather},
    {"allgather", l_allgather},
    {"allreduce_sum", l_allreduce_sum},
    {"allreduce_mean", l_allreduce_mean},
    {"allreduce_sum_f64", l_allreduce_sum_f64},
    {"bcast_tensor", l_bcast_tensor},
    {"iallreduce_sum", l_iallreduce_sum},
    {"wait", l_wait},
    {"abort", l_abort},
    {"finalize", l_finalize},
    {NULL, NULL},
};

int luaopen_hs_mpi(lua_State *L);
int luaopen_hs_mpi(lua_State *L) {
    // one sentinel per Lua state, kept in the registry: its __gc runs at lua_close
    if (lua_getfield(L, LUA_REGISTRYINDEX, MPI_SENTINEL) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newuserdatauv(L, 1, 0);
        if (luaL_newmetatable(L, MPI_SENTINEL)) {
            lua_pushcfunction(L, sentinel_gc);
            lua_setfield(L, -2, "__gc");
        }
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, MPI_SENTINEL);
        lua_newtable(L);
        lua_setfield(L, LUA_REGISTRYINDEX, MPI_SENTINEL ".pending");
    } else {
        lua_pop(L, 1);
    }
    luaL_newlib(L, funcs);
    return 1;
}
