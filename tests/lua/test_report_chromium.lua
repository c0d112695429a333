-- tests/lua/test_report_chromium.lua: runs tests/report_chromium.sh (the run report rendered in
-- headless Chromium) with this histops executable, so that scripts/test picks it up. The shell
-- script prints SKIP and succeeds when Chromium is not installed.
-- Run: build/histops tests/lua/test_report_chromium.lua
local hs = require "histops"

local here = debug.getinfo(1, "S").source:sub(2)
local script = (here:match("^(.*)/lua/[^/]*$") or "tests") .. "/report_chromium.sh"
local q = function(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local p = assert(io.popen(("bash %s %s 2>&1"):format(q(script), q(hs.sys.exe()))))
local out = p:read("a")
local ok = p:close()
io.write(out)
if not ok then
  io.stderr:write("test_report_chromium: FAILED\n")
  os.exit(1)
end
print(out:find("SKIP", 1, true) and "test_report_chromium: skipped (no chromium)" or "test_report_chromium: ok")
