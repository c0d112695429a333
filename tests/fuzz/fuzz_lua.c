// tests/fuzz/fuzz_lua.c: the embedded Lua state of the Lua-side fuzz targets: opens the standard
// libraries and `histops` exactly as lua/main.c does (luaopen_histops from the hslua objects),
// loads one harness script from tests/fuzz/lua/ and calls it once per input. Not the host.
#include "fuzz_lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

#ifndef FUZZ_LUA_DIR
#define FUZZ_LUA_DIR "tests/fuzz/lua"
#endif

int luaopen_histops(lua_State *L);

static lua_State *state;
static int harness_ref = LUA_NOREF;

static int traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

static void init(const char *name) {
    state = luaL_newstate();
    FUZZ_CHECK(state != NULL, "cannot create a Lua state");
    luaL_openlibs(state);
    luaL_requiref(state, "histops", luaopen_histops, 0);
    lua_pop(state, 1);
    lua_pushstring(state, FUZZ_LUA_DIR);
    lua_setglobal(state, "FUZZ_LUA_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.lua", FUZZ_LUA_DIR, name);
    lua_pushcfunction(state, traceback);
    int st = luaL_loadfile(state, path);
    FUZZ_CHECK(st == LUA_OK, "cannot load %s: %s", path, lua_tostring(state, -1));
    st = lua_pcall(state, 0, 1, -2);
    FUZZ_CHECK(st == LUA_OK && lua_isfunction(state, -1), "%s must return a function: %s", path,
               lua_tostring(state, -1));
    harness_ref = luaL_ref(state, LUA_REGISTRYINDEX);
    lua_settop(state, 0);
}

void fuzz_lua_run(const char *name, const uint8_t *data, size_t size) {
    if (!state)
        init(name);
    lua_settop(state, 0);
    lua_pushcfunction(state, traceback);
    lua_rawgeti(state, LUA_REGISTRYINDEX, harness_ref);
    lua_pushlstring(state, (const char *)data, size);
    int st = lua_pcall(state, 1, 0, 1);
    FUZZ_CHECK(st == LUA_OK, "harness %s: %s", name, lua_tostring(state, -1));
    lua_settop(state, 0);
    // collect now: libFuzzer runs a (slow) leak check after every input that leaves more
    // mallocs than frees, which deferred garbage collection would trigger almost every time
    lua_gc(state, LUA_GCCOLLECT, 0);
}
