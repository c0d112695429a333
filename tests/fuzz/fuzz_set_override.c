// tests/fuzz/fuzz_set_override.c: libFuzzer target for the experiment-override parser of
// `histops run --set key=value` (lua/hs/config.lua: apply_override, parse_value, load with
// overrides, public/flatten of the result), driven by tests/fuzz/lua/set_override.lua, which
// states the invariants (errors are messages naming the offending --set, accepted values land
// where the key says, the resolved config stays JSON-encodable). Input: overrides, one a line.
#include "fuzz.h"
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096)  // a command line, not a document: keeps the quadratic typo suggestion cheap
        return 0;
    fuzz_lua_run("set_override", data, size);
    return 0;
}
