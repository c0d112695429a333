-- tests/readme_examples.lua README.md: runs every ```lua block of the README, each in a fresh
-- histops process from the repository root, and fails if one raises an error. A block whose
-- first line is "-- expect: TEXT" must also print TEXT. Keeps the README true.
local readme = assert(arg[1], "usage: histops tests/readme_examples.lua README.md")
local f = assert(io.open(readme))
local text = f:read("a")
f:close()
local exe = require("histops").sys.exe()   -- the binary under test (build/, build-asan/, ...)
local n, failed = 0, 0
for block in text:gmatch("```lua\n(.-)```") do
  n = n + 1
  local tmp = os.tmpname()
  local out = assert(io.open(tmp, "w"))
  out:write(block)
  out:close()
  local p = io.popen(("'%s' %s 2>&1; echo \"exit=$?\""):format(exe, tmp))
  local output = p:read("a")
  p:close()
  os.remove(tmp)
  local expect = block:match("^%-%- expect: ([^\n]+)")
  local ok = output:match("exit=0%s*$") and (not expect or output:find(expect, 1, true))
  if not ok then
    failed = failed + 1
    io.stderr:write(("README example %d failed:\n%s\n--- output:\n%s\n"):format(n, block, output))
  end
end
print(("%d README examples, %d failed"):format(n, failed))
if n == 0 then io.stderr:write("no ```lua examples found in " .. readme .. "\n") os.exit(1) end
os.exit(failed == 0 and 0 or 1)
