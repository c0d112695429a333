// tests/fuzz/fuzz_lua.h: an embedded Lua 5.4 with the histops modules for the fuzz targets that
// exercise Lua code (set_override, records). Not the histops host (lua/main.c).
#ifndef HS_FUZZ_LUA_H
#define HS_FUZZ_LUA_H

#include <stddef.h>
#include <stdint.h>

// Run the harness tests/fuzz/lua/<name>.lua (a chunk returning function(input)) on the input.
// The state is created on first use and kept. An error escaping the harness function is a
// broken invariant: it is printed and the process aborts.
void fuzz_lua_run(const char *name, const uint8_t *data, size_t size);

#endif
