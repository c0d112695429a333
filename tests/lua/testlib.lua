-- tests/lua/testlib.lua: small helpers shared by the Lua tests (tests/lua/test_*.lua); not a test
-- itself and not a framework: every test keeps its own plain asserts. Load it with
--   local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
-- which works from any working directory with an absolute or relative script path.
--   T.exe                       the histops executable running the test
--   T.here, T.top               absolute paths of tests/lua and of the source tree
--   T.q(s)                      s quoted for the shell
--   T.capture(cmd)              run cmd in a shell -> stdout, ok (true on exit 0), exit code
--   T.sh(cmd)                   run cmd, raise "command failed: cmd" unless it exits 0
--   T.read(path)                whole file as a string, or nil and a message (hs.sys.read_file)
--   T.write(path, text)         atomic write (hs.sys.write_file_atomic), raises on failure
--   T.exists(path)              true when path can be opened for reading
--   T.tmpdir(tag)               a new directory /tmp/hs-test-TAG-XXXXXX (absolute path)
--   T.GIT_ENV                   env prefix giving the git tool an identity on any machine
--   T.git_repo(dir, file, text) git init -b main in dir with one commit of file (default a.txt)
--   T.check_error(pat, f, ...)  f(...) must raise an error whose text matches pat; returns it
--   T.plain(s)                  s with Lua pattern magic characters escaped
local hs = require "histops"

local T = {}

function T.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function T.capture(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok, code
end

function T.sh(cmd) assert(os.execute(cmd), "command failed: " .. cmd) end

T.read = hs.sys.read_file

function T.write(path, text) assert(hs.sys.write_file_atomic(path, text)) end

function T.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

function T.plain(s) return (s:gsub("%p", "%%%0")) end

function T.check_error(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching '" .. pattern .. "'")
  assert(tostring(err):find(pattern), ("error '%s' does not match '%s'"):format(tostring(err), pattern))
  return err
end

function T.tmpdir(tag)
  local out, ok = T.capture("mktemp -d /tmp/hs-test-" .. tag .. "-XXXXXX")
  assert(ok, "mktemp failed")
  return (out:gsub("%s+$", ""))
end

T.GIT_ENV = "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.org GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.org "

function T.git_repo(dir, file, text)
  file = file or "a.txt"
  T.sh(("set -e; git init -q -b main %s; cd %s; printf %%s %s > %s; git add %s; %s git commit -q -m first")
    :format(T.q(dir), T.q(dir), T.q(text or "hello\n"), T.q(file), T.q(file), T.GIT_ENV))
end

T.exe = hs.sys.exe()
-- this file's own folder, absolute: dofile gives its path as the chunk's source ("@path")
T.here = debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$") or "."
if T.here:sub(1, 1) ~= "/" then
  T.here = (T.capture("pwd"):gsub("%s+$", "")) .. "/" .. T.here
end
T.top = T.here:match("^(.*)/tests/lua$") or (T.here .. "/../..")

return T
