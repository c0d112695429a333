// lua/l_proc.c: the hs.proc module: start child processes without blocking and reap them, for
// running sweep trials in parallel (`histops sweep --jobs N`). Glue over POSIX posix_spawn and
// waitpid; no shell is involved (argv is passed as is). Not a job scheduler: the caller decides
// how many children run at once. Failures of the environment return nil, message.
//   spawn(argv, {env = {NAME = value | false}, stdout = path, stderr = path, cwd = path}) -> pid
//   wait([pid [, nohang]]) -> pid, "exit" | "signal", code   (nil when nohang and none ended;
//                                                             nil, message when there is no child)
//   kill(pid, signal) -> true | nil, message   (signal: number or "TERM", "KILL", "INT", "HUP")
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "l_common.h"

extern char **environ;

// The spawn file actions must be released even when a Lua error is raised before the spawn: a
// userdata whose __gc destroys them (argv/envp are Lua userdata, collected anyway).
typedef struct {
    posix_spawn_file_actions_t fa;
    int fa_init;
} spawn_box;

static int spawn_box_gc(lua_State *L) {
    spawn_box *b = lua_touserdata(L, 1);
    if (b && b->fa_init) {
        posix_spawn_file_actions_destroy(&b->fa);
        b->fa_init = 0;
    }
    return 0;
}

// Redirect fd to path (created/truncated) when field `key` of the options table is a string.
static void add_redirect(lua_State *L, int opts, const char *key, int fd, spawn_box *b) {
    if (lua_isnoneornil(L, opts))
        return;
    lua_getfield(L, opts, key);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "bad option '%s' to 'spawn' (file path expected, got %s)", key, luaL_typename(L, -1));
        // the string stays referenced by the options table until spawn returns
        posix_spawn_file_actions_addopen(&b->fa, fd, lua_tostring(L, -1), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
    lua_pop(L, 1);
}

static int l_spawn(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);  // slot 2 is the options table or nil, whatever is pushed later
    int opts = 2;
    if (!lua_isnoneornil(L, opts))
        luaL_checktype(L, opts, LUA_TTABLE);
    lua_Integer argc = luaL_len(L, 1);
    luaL_argcheck(L, argc >= 1 && argc < (1 << 20), 1, "argv must be a non-empty array of strings");
    // argv: Lua-owned memory, strings pinned by table 1
    const char **argv = lua_newuserdatauv(L, (size_t)(argc + 1) * sizeof *argv, 0);
    for (lua_Integer i = 1; i <= argc; i++) {
        lua_geti(L, 1, i);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            return luaL_error(L, "bad argument #1 to 'spawn' (argv[%d] must be a string, got %s)", (int)i,
                              luaL_typename(L, -1));
        lua_tostring(L, -1);   // a number becomes a string in place...
        lua_rawseti(L, 1, i);  // ...stored back, so table 1 pins it
        lua_geti(L, 1, i);
        argv[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    argv[argc] = NULL;
    // environment: the current one with the given names replaced (false removes a name)
    lua_newtable(L);  // name -> "NAME=value" or false
    int envt = lua_gettop(L);
    size_t nenv = 0;
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        lua_pushlstring(L, *e, (size_t)(eq - *e));
        lua_pushstring(L, *e);
        lua_rawset(L, envt);
    }
    if (!lua_isnoneornil(L, opts)) {
        lua_getfield(L, opts, "env");
        if (!lua_isnil(L, -1)) {
            if (!lua_istable(L, -1))
                return luaL_error(L, "bad option 'env' to 'spawn' (table expected, got %s)", luaL_typename(L, -1));
            lua_pushnil(L);
            while (lua_next(L, -2)) {
                if (lua_type(L, -2) != LUA_TSTRING)
                    return luaL_error(L, "bad option 'env' to 'spawn' (names must be strings)");
                lua_pushvalue(L, -2);
                if (lua_type(L, -2) == LUA_TBOOLEAN && !lua_toboolean(L, -2)) {
                    lua_pushnil(L);
                } else {
                    if (lua_type(L, -2) != LUA_TSTRING && lua_type(L, -2) != LUA_TNUMBER)
                        return luaL_error(L, "bad option 'env' to 'spawn' (value of %s must be a string or false)",
                                          lua_tostring(L, -1));
                    lua_pushfstring(L, "%s=%s", lua_tostring(L, -1), lua_tostring(L, -2));
                }
                lua_rawset(L, envt);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, envt)) {
        nenv++;
        lua_pop(L, 1);
    }
    const char **envp = lua_newuserdatauv(L, (nenv + 1) * sizeof *envp, 0);
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, envt)) {
        envp[k++] = lua_tostring(L, -1);  // pinned by envt
        lua_pop(L, 1);
    }
    envp[k] = NULL;
    spawn_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->fa_init = 0;
    lua_newtable(L);
    lua_pushcfunction(L, spawn_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    if (posix_spawn_file_actions_init(&b->fa) != 0)
        return luaL_error(L, "spawn: out of memory");
    b->fa_init = 1;
    add_redirect(L, opts, "stdout", 1, b);
    add_redirect(L, opts, "stderr", 2, b);
    if (!lua_isnoneornil(L, opts)) {
        lua_getfield(L, opts, "cwd");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TSTRING)
                return luaL_error(L, "bad option 'cwd' to 'spawn' (string expected, got %s)", luaL_typename(L, -1));
            posix_spawn_file_actions_addchdir_np(&b->fa, lua_tostring(L, -1));
        }
        lua_pop(L, 1);
    }
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &b->fa, NULL, (char *const *)argv, (char *const *)envp);
    posix_spawn_file_actions_destroy(&b->fa);
    b->fa_init = 0;
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot start %s: %s", argv[0], strerror(rc));
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)pid);
    return 1;
}

static int l_wait(lua_State *L) {
    pid_t pid = (pid_t)luaL_optinteger(L, 1, -1);
    int nohang = lua_toboolean(L, 2);
    int st = 0;
    pid_t r;
    do {
        r = waitpid(pid, &st, nohang ? WNOHANG : 0);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        lua_pushnil(L);
        return 1;
    }
    if (r < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "wait: %s", strerror(errno));
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)r);
    if (WIFSIGNALED(st)) {
        lua_pushliteral(L, "signal");
        lua_pushinteger(L, WTERMSIG(st));
    } else {
        lua_pushliteral(L, "exit");
        lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
    return 3;
}

static int l_kill(lua_State *L) {
    lua_Integer pid = luaL_checkinteger(L, 1);
    luaL_argcheck(L, pid > 0, 1, "pid must be positive (no process groups)");
    int sig;
    if (lua_type(L, 2) == LUA_TSTRING) {
        static const char *const names[] = {"TERM", "KILL", "INT", "HUP", "STOP", "CONT", NULL};
        static const int sigs[] = {SIGTERM, SIGKILL, SIGINT, SIGHUP, SIGSTOP, SIGCONT};
        sig = sigs[luaL_checkoption(L, 2, NULL, names)];
    } else {
        sig = (int)luaL_optinteger(L, 2, SIGTERM);
    }
    if (kill((pid_t)pid, sig) != 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "kill %d: %s", (int)pid, strerror(errno));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int luaopen_hs_proc(lua_State *L);
int luaopen_hs_proc(lua_State *L) {
    static const luaL_Reg funcs[] = {{"spawn", l_spawn}, {"wait", l_wait}, {"kill", l_kill}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
