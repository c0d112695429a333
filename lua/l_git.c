// lua/l_git.c: the hs.git binding: a git-backed record store (hs.git.open) whose methods map one
// to one onto core/gitstore.h, plus the content-addressed artifact functions. No logic lives
// here: run records, the model registry and their JSON documents are composed in Lua.
// Not-found conditions (no repository, ref, file or artifact) return nil, message like io.open;
// everything else (bad arguments, a ref that moved concurrently) raises.
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "gitstore.h"
#include "l_common.h"
#include "sys.h"

#define LHS_GITSTORE "hs.git.store"
#define LHS_SCRATCH "hs.git.scratch"

typedef struct {
    hs_gitstore *s;  // NULL: empty or closed
} store_box;

// Core-owned results parked in a userdata while they are turned into Lua values, so that a Lua
// error (out of memory) in between cannot leak them: __gc frees whatever is still held.
typedef struct {
    void *text;                  // hs_alloc'd buffer
    hs_gitstore_commit *commits; // hs_gitstore_commits_free'd
    size_t n;
} scratch_box;

static int scratch_release(lua_State *L) {
    scratch_box *b = luaL_checkudata(L, 1, LHS_SCRATCH);
    hs_free(b->text);
    hs_gitstore_commits_free(b->commits, b->n);
    b->text = NULL;
    b->commits = NULL;
    b->n = 0;
    return 0;
}

static scratch_box *new_scratch(lua_State *L) {
    scratch_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, LHS_SCRATCH);
    return b;
}

// nil, message for "not found" (HS_ERR_IO); raise for everything else.
static int fail(lua_State *L) {
    const hs_error *e = hs_last_error();
    if (e->code != HS_ERR_IO)
        return lhs_core_error(L);
    lua_pushnil(L);
    lua_pushstring(L, e->msg);
    return 2;
}

// The result of a core call that hands back an hs_alloc'd buffer: park it in b (so a Lua error
// cannot leak it), then push it as one string and free it; on failure, as fail(). Either way the
// top two stack values are a valid (value, string) or (nil, message) pair for callers returning 2.
static int push_text(lua_State *L, scratch_box *b, hs_status st, void *text, size_t n) {
    b->text = text;
    if (st != HS_OK)
        return fail(L);
    lua_pushlstring(L, text, n);
    hs_free(b->text);
    b->text = NULL;
    return 1;
}

static hs_gitstore *check_store(lua_State *L) {
    store_box *b = luaL_checkudata(L, 1, LHS_GITSTORE);
    if (!b->s)
        luaL_argerror(L, 1, "git store has been closed");
    return b->s;
}

// ---- hs.git.open ----

static int l_open(lua_State *L) {
    const char *path = luaL_optstring(L, 1, ".");
    store_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->s = NULL;
    luaL_setmetatable(L, LHS_GITSTORE);
    if (hs_gitstore_open(&b->s, path) != HS_OK) {
        const hs_error *e = hs_last_error();
        if (e->code == HS_ERR_NOMEM || e->code == HS_ERR_ARG)
            return lhs_core_error(L);
        lua_pushnil(L);
        lua_pushstring(L, e->msg);  // no repository: an expected situation (--no-git)
        return 2;
    }
    return 1;
}

static int l_store_release(lua_State *L) {  // __gc, __close and :close()
    store_box *b = luaL_checkudata(L, 1, LHS_GITSTORE);
    hs_gitstore_free(b->s);
    b->s = NULL;
    return 0;
}

static int l_store_tostring(lua_State *L) {
    store_box *b = luaL_checkudata(L, 1, LHS_GITSTORE);
    if (b->s)
        lua_pushfstring(L, "hs.git.store (%s)", hs_gitstore_gitdir(b->s));
    else
        lua_pushliteral(L, "hs.git.store (closed)");
    return 1;
}

// ---- HEAD and diffs ----

static int l_head(lua_State *L) {
    hs_gitstore *s = check_store(L);
    hs_gitstore_head_info h;
    LHS_CHECK(L, hs_gitstore_head(s, &h));
    lua_createtable(L, 0, 7);
    lua_pushstring(L, h.commit);
    lua_setfield(L, -2, "commit");
    lua_pushstring(L, h.branch);
    lua_setfield(L, -2, "branch");
    lua_pushboolean(L, h.detached);
    lua_setfield(L, -2, "detached");
    lua_pushboolean(L, h.unborn);
    lua_setfield(L, -2, "unborn");
    lua_pushboolean(L, h.bare);
    lua_setfield(L, -2, "bare");
    lua_pushstring(L, hs_gitstore_workdir(s));
    lua_setfield(L, -2, "workdir");
    lua_pushstring(L, hs_gitstore_gitdir(s));
    lua_setfield(L, -2, "gitdir");
    return 1;
}

static int l_dirty(lua_State *L) {
    hs_gitstore *s = check_store(L);
    scratch_box *b = new_scratch(L);
    int dirty = 0;
    size_t n = 0;
    char *text = NULL;
    hs_status st = hs_gitstore_dirty(s, &dirty, &text, &n);
    lua_pushboolean(L, dirty);
    push_text(L, b, st, text, n);  // dirty, text; or (on failure) nil, message above it
    return 2;
}

static int l_diff(lua_State *L) {
    hs_gitstore *s = check_store(L);
    const char *a = luaL_checkstring(L, 2), *bb = luaL_checkstring(L, 3);
    scratch_box *b = new_scratch(L);
    size_t n = 0;
    char *text = NULL;
    hs_status st = hs_gitstore_diff_commits(s, &text, &n, a, bb);  // before text and n are read
    return push_text(L, b, st, text, n);
}

// ---- records ----

// :write(ref, {["path/in/tree"] = string | false, ...}, message [, expected_old [, {keep=bool}]])
// expected_old: nil or "" = whatever the ref is (append to its history), false = the ref must not
// exist yet, hex = the ref must point there. false as a file value removes it (needs keep=true).
static int l_write(lua_State *L) {
    hs_gitstore *s = check_store(L);
    const char *ref = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    const char *message = luaL_checkstring(L, 4);
    const char *expected = "";
    if (lua_type(L, 5) == LUA_TBOOLEAN) {
        luaL_argcheck(L, !lua_toboolean(L, 5), 5, "expected false (must not exist), nil or a commit id");
        expected = NULL;
    } else if (!lua_isnoneornil(L, 5)) {
        expected = luaL_checkstring(L, 5);
    }
    unsigned flags = 0;
    if (!lua_isnoneornil(L, 6)) {
        luaL_checktype(L, 6, LUA_TTABLE);
        lua_getfield(L, 6, "keep");
        if (lua_toboolean(L, -1))
            flags |= HS_GITSTORE_KEEP_TREE;
        lua_pop(L, 1);
    }
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return luaL_argerror(L, 3, "file table keys must be paths (strings)");
        int t = lua_type(L, -1);
        if (t != LUA_TSTRING && !(t == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
            return luaL_argerror(L, 3, lua_pushfstring(L, "file '%s': content must be a string (or false to remove), got %s",
                                                       lua_tostring(L, -2), luaL_typename(L, -1)));
        luaL_argcheck(L, n < (1 << 28), 3, "too many files");
        n++;
        lua_pop(L, 1);
    }
    // argument arrays live in Lua memory (collected even if an error is raised); the strings they
    // point into stay alive because table 3 holds them
    size_t count = (size_t)(n > 0 ? n : 1);
    const char **paths = lua_newuserdatauv(L, count * sizeof *paths, 0);
    const void **contents = lua_newuserdatauv(L, count * sizeof *contents, 0);
    size_t *sizes = lua_newuserdatauv(L, count * sizeof *sizes, 0);
    int i = 0;
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        paths[i] = lua_tostring(L, -2);
        if (lua_type(L, -1) == LUA_TSTRING) {
            contents[i] = lua_tolstring(L, -1, &sizes[i]);
        } else {
            contents[i] = NULL;
            sizes[i] = 0;
        }
        i++;
        lua_pop(L, 1);
    }
    char id[HS_GITSTORE_ID_SIZE];
    LHS_CHECK(L, hs_gitstore_write(s, id, ref, n, paths, contents, sizes, message, expected, flags));
    lua_pushstring(L, id);
    return 1;
}

static int l_read(lua_State *L) {
    hs_gitstore *s = check_store(L);
    const char *rev = luaL_checkstring(L, 2), *path = luaL_checkstring(L, 3);
    scratch_box *b = new_scratch(L);
    size_t n = 0;
    void *data = NULL;
    hs_status st = hs_gitstore_read(s, &data, &n, rev, path);
    return push_text(L, b, st, data, n);
}

// Park the commits of a list/log call in b, then push them as an array of commit tables (b stays
// on the stack below it until return); on failure, as fail().
static int push_commits(lua_State *L, scratch_box *b, hs_status st, hs_gitstore_commit *commits, size_t n) {
    b->commits = commits;
    b->n = n;
    if (st != HS_OK)
        return fail(L);
    lua_createtable(L, (int)b->n, 0);
    for (size_t i = 0; i < b->n; i++) {
        const hs_gitstore_commit *c = &b->commits[i];
        lua_createtable(L, 0, 7);
        if (c->ref) {
            lua_pushstring(L, c->ref);
            lua_setfield(L, -2, "ref");
        }
        lua_pushstring(L, c->id);
        lua_setfield(L, -2, "id");
        lua_pushinteger(L, (lua_Integer)c->time);
        lua_setfield(L, -2, "time");
        lua_pushinteger(L, c->tz_offset);
        lua_setfield(L, -2, "tz_offset");
        lua_pushstring(L, c->author);
        lua_setfield(L, -2, "author");
        lua_pushstring(L, c->email);
        lua_setfield(L, -2, "email");
        lua_pushstring(L, c->message);
        lua_setfield(L, -2, "message");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int l_list(lua_State *L) {
    hs_gitstore *s = check_store(L);
    const char *prefix = luaL_optstring(L, 2, HS_GITSTORE_REF_PREFIX);
    scratch_box *b = new_scratch(L);
    hs_gitstore_commit *c = NULL;
    size_t n = 0;
    hs_status st = hs_gitstore_list(s, &c, &n, prefix);  // before c and n are read
    return push_commits(L, b, st, c, n);
}

static int l_log(lua_State *L) {
    hs_gitstore *s = check_store(L);
    const char *rev = luaL_checkstring(L, 2);
    lua_Integer max = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, max >= 0 && max <= (1 << 30), 3, "max must be 0 (all) or a positive count");
    scratch_box *b = new_scratch(L);
    hs_gitstore_commit *c = NULL;
    size_t n = 0;
    hs_status st = hs_gitstore_log(s, &c, &n, rev, (int)max);
    return push_commits(L, b, st, c, n);
}

static int l_resolve(lua_State *L) {
    hs_gitstore *s = check_store(L);
    char id[HS_GITSTORE_ID_SIZE];
    if (hs_gitstore_resolve(s, id, luaL_checkstring(L, 2)) != HS_OK)
        return fail(L);
    lua_pushstring(L, id);
    return 1;
}

static int l_is_ancestor(lua_State *L) {
    hs_gitstore *s = check_store(L);
    int yes = 0;
    if (hs_gitstore_is_ancestor(s, &yes, luaL_checkstring(L, 2), luaL_checkstring(L, 3)) != HS_OK)
        return fail(L);
    lua_pushboolean(L, yes);
    return 1;
}

static int l_delete(lua_State *L) {
    hs_gitstore *s = check_store(L);
    const char *ref = luaL_checkstring(L, 2);
    const char *expected = luaL_optstring(L, 3, NULL);
    if (hs_gitstore_delete_ref(s, ref, expected) != HS_OK)
        return fail(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_artifact_dir(lua_State *L) {
    hs_gitstore *s = check_store(L);
    char dir[HS_SYS_PATH_MAX];
    LHS_CHECK(L, hs_gitstore_artifact_dir(s, dir, sizeof dir));
    lua_pushstring(L, dir);
    return 1;
}

// ---- artifacts ----

// put(dir, path_or_nil, content_or_nil) -> sha; nil, message when the source file is unreadable.
static int artifact_put(lua_State *L, const char *dir, int arg) {
    const char *src = luaL_optstring(L, arg, NULL);
    size_t n = 0;
    const char *buf = luaL_optlstring(L, arg + 1, NULL, &n);
    luaL_argcheck(L, (src == NULL) != (buf == NULL), arg, "give a source file path or a content string (one of the two)");
    char sha[65];
    if (hs_artifact_put(sha, dir, src, buf, n) != HS_OK)
        return fail(L);
    lua_pushstring(L, sha);
    return 1;
}

static int l_artifact_put(lua_State *L) { return artifact_put(L, luaL_checkstring(L, 1), 2); }

static int l_store_artifact_put(lua_State *L) {
    hs_gitstore *s = check_store(L);
    char dir[HS_SYS_PATH_MAX];
    LHS_CHECK(L, hs_gitstore_artifact_dir(s, dir, sizeof dir));
    return artifact_put(L, dir, 2);
}

static int l_artifact_path(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1), *sha = luaL_checkstring(L, 2);
    char path[HS_SYS_PATH_MAX];
    if (hs_artifact_path(path, sizeof path, dir, sha) != HS_OK)
        return luaL_argerror(L, 2, hs_last_error()->msg);
    FILE *f = fopen(path, "rb");
    if (!f) {
        lua_pushnil(L);
        lua_pushfstring(L, "artifact %s not found in %s", sha, dir);
        return 2;
    }
    fclose(f);
    lua_pushstring(L, path);
    return 1;
}

static int l_artifact_verify(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1), *sha = luaL_checkstring(L, 2);
    if (hs_artifact_verify(dir, sha) != HS_OK) {
        const hs_error *e = hs_last_error();
        if (e->code == HS_ERR_ARG)
            return luaL_argerror(L, 2, e->msg);
        lua_pushnil(L);
        lua_pushstring(L, e->msg);  // missing or corrupt: the caller decides
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int luaopen_hs_git(lua_State *L);
int luaopen_hs_git(lua_State *L) {
    static const luaL_Reg scratch_meta[] = {{"__gc", scratch_release}, {NULL, NULL}};
    luaL_newmetatable(L, LHS_SCRATCH);
    luaL_setfuncs(L, scratch_meta, 0);
    lua_pop(L, 1);

    static const luaL_Reg methods[] = {
        {"head", l_head},
        {"dirty", l_dirty},
        {"diff", l_diff},
        {"write", l_write},
        {"read", l_read},
        {"list", l_list},
        {"log", l_log},
        {"history", l_log},
        {"resolve", l_resolve},
        {"is_ancestor", l_is_ancestor},
        {"delete", l_delete},
        {"artifact_dir", l_artifact_dir},
        {"artifact_put", l_store_artifact_put},
        {"close", l_store_release},
        {NULL, NULL},
    };
    static const luaL_Reg meta[] = {
        {"__gc", l_store_release},
        {"__close", l_store_release},
        {"__tostring", l_store_tostring},
        {NULL, NULL},
    };
    luaL_newmetatable(L, LHS_GITSTORE);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);

    static const luaL_Reg funcs[] = {
        {"open", l_open},
        {"artifact_put", l_artifact_put},
        {"artifact_path", l_artifact_path},
        {"artifact_verify", l_artifact_verify},
        {NULL, NULL},
    };
    luaL_newlib(L, funcs);
    lua_pushliteral(L, HS_GITSTORE_REF_PREFIX);
    lua_setfield(L, -2, "REF_PREFIX");
    return 1;
}
