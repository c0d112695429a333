// tests/fuzz/fuzz_records.c: libFuzzer target for the parsers of run and registry records read
// back from git (lua/hs/runs.lua: commit-message summaries, run.json; lua/hs/registry.lua:
// version.json, alias.json; both through hs.json), driven by tests/fuzz/lua/records.lua over an
// in-memory store that serves the fuzzed records. Input: sections separated by "\n--8<--\n"
// (summary line, run.json, version.json, alias.json). Not a libgit2 test (test_gitstore.c).
#include "fuzz.h"
#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536)
        return 0;
    fuzz_lua_run("records", data, size);
    return 0;
}
