-- tests/lua/test_git.lua: the hs.git binding in throw-away repositories made with the git tool:
-- open/head in the usual repository states, write/read/list/log, compare-and-swap errors,
-- dirty state and diffs, artifacts, argument errors and closing. Run: build/histops tests/lua/test_git.lua
local hs = require "histops"
local git = hs.git
assert(git, "hs.git binding missing")

local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error

local sh = T.sh
-- stdout without trailing newlines; the command must succeed
local function capture(cmd)
  local out, ok = T.capture(cmd)
  assert(ok, "command failed: " .. cmd)
  return (out:gsub("\n+$", ""))
end

-- identity for the git tool's own commits, whatever the machine's configuration
local env = T.GIT_ENV
local tmp = T.tmpdir("git")
local repo = tmp .. "/repo"
T.git_repo(repo, "a.txt", "hello\n")

local ok_all, err_all = pcall(function()
  -- outside any repository: nil, message (like io.open)
  sh("mkdir " .. tmp .. "/plain")
  local none, msg = git.open(tmp .. "/plain")
  assert(none == nil and msg:find("not inside a git repository", 1, true) and msg:find("git init", 1, true), msg)
  local none2, msg2 = git.open(tmp .. "/missing")
  assert(none2 == nil and msg2:find("missing", 1, true), msg2)

  local s = assert(git.open(repo))
  assert(tostring(s):find("hs.git.store", 1, true))
  local h = s:head()
  assert(h.branch == "main" and not h.detached and not h.unborn and #h.commit == 40)
  assert(h.commit == capture("git -C " .. repo .. " rev-parse HEAD"))
  assert(h.workdir:find("/repo$"), h.workdir)
  assert(h.gitdir:find("/repo/.git$"), h.gitdir)

  -- write / read / list / log
  local ref = "refs/histops/runs/r1"
  local id1 = s:write(ref, { ["run.json"] = '{"lr":0.1}', ["logs/m.csv"] = "step,loss\n1,0.5\n" }, "start", false)
  assert(type(id1) == "string" and #id1 == 40)
  assert(s:read(ref, "run.json") == '{"lr":0.1}')
  assert(s:read(ref, "logs/m.csv") == "step,loss\n1,0.5\n")
  assert(capture("git -C " .. repo .. " show " .. ref .. ":logs/m.csv") == "step,loss\n1,0.5")
  local data, err = s:read(ref, "nope")
  assert(data == nil and err:find("no file 'nope'", 1, true), err)
  data, err = s:read("refs/histops/runs/none", "run.json")
  assert(data == nil and err:find("refs/histops/runs/none", 1, true), err)
  local bin = "a\0b\255"
  local id2 = s:write(ref, { ["run.json"] = '{"lr":0.2}', bin = bin }, "update", id1)
  assert(s:read(ref, "bin") == bin)
  assert(s:read(id1, "run.json") == '{"lr":0.1}')
  local id3 = s:write(ref, { extra = "x" }, "append", nil, { keep = true })  -- nil: whatever it is
  assert(s:read(ref, "run.json") == '{"lr":0.2}' and s:read(ref, "extra") == "x")
  s:write(ref, { extra = false }, "remove", id3, { keep = true })
  assert(s:read(ref, "extra") == nil)

  local log = s:log(ref)
  assert(#log == 4 and log[4].id == id1 and log[3].id == id2 and log[2].id == id3)
  assert(log[1].message == "remove" and log[4].message == "start")
  assert(math.type(log[1].time) == "integer" and math.abs(log[1].time - os.time()) < 120)
  assert(type(log[1].author) == "string" and type(log[1].email) == "string")
  assert(#s:log(ref, 2) == 2)

  s:write("refs/histops/runs/r0", { ["run.json"] = "{}" }, "other run")
  s:write("refs/histops/models/m/versions/1", { ["model.json"] = "{}" }, "v1")
  local runs = s:list("refs/histops/runs/")
  assert(#runs == 2 and runs[1].ref == "refs/histops/runs/r0" and runs[2].ref == ref, #runs)
  assert(runs[2].id == s:resolve(ref) and runs[1].message == "other run")
  assert(#s:list() == 3)  -- default prefix: all of refs/histops/
  check_error("prefix", s.list, s, "refs/histops/*")

  -- compare-and-swap: a stale expected id raises and leaves the ref alone
  local cur = s:resolve(ref)
  check_error("moved concurrently %(expected " .. id1, s.write, s, ref, { f = "1" }, "stale", id1)
  check_error("moved concurrently %(expected no ref", s.write, s, ref, { f = "1" }, "exists", false)
  assert(s:resolve(ref) == cur)

  -- alias moves keep history: each promotion is a commit on top of the previous one
  local alias = "refs/histops/models/m/aliases/prod"
  local a1 = s:write(alias, { ["alias.json"] = '{"version":1}' }, "promote v1: first", false)
  local a2 = s:write(alias, { ["alias.json"] = '{"version":2}' }, "promote v2: better dice", a1)
  local hist = s:log(alias)
  assert(#hist == 2 and hist[1].id == a2 and hist[2].id == a1 and hist[1].message == "promote v2: better dice")

  -- resolve / history / is_ancestor / diff on the branch
  sh(("cd %s && printf 'hello\\nworld\\n' > a.txt && %s git commit -q -am second"):format(repo, env))
  local c2 = s:resolve("main")
  assert(s:resolve("HEAD~1") == h.commit)
  local none3, rmsg = s:resolve("no-such-thing")
  assert(none3 == nil and rmsg:find("no-such-thing", 1, true), rmsg)
  local bh = s:history("main")
  assert(#bh == 2 and bh[1].id == c2 and bh[2].id == h.commit and bh[1].message == "second\n")
  assert(s:is_ancestor(h.commit, c2) == true and s:is_ancestor(c2, h.commit) == false)
  local patch = s:diff(h.commit, c2)
  assert(patch:find("+world", 1, true), patch)
  local np, dmsg = s:diff(h.commit, "nope")
  assert(np == nil and dmsg:find("nope", 1, true))

  -- dirty: tracked changes only
  local dirty, text = s:dirty()
  assert(dirty == false and text == "")
  sh("printf 'u\\n' > " .. repo .. "/untracked.txt")
  assert(s:dirty() == false)
  sh("printf 'changed\\n' > " .. repo .. "/a.txt")
  dirty, text = s:dirty()
  assert(dirty == true and text:find("+changed", 1, true) and text:find("--- a/a.txt", 1, true), text)
  assert(not text:find("untracked", 1, true))

  -- delete with an expected id
  check_error("moved concurrently", s.delete, s, alias, a1)
  assert(s:delete(alias, a2) == true)
  local nd, delmsg = s:delete(alias)
  assert(nd == nil and delmsg:find("does not exist", 1, true))

  -- argument errors
  check_error("outside refs/histops/", s.write, s, "refs/heads/main", { f = "1" }, "m")
  check_error("invalid file path", s.write, s, "refs/histops/runs/x", { ["../up"] = "1" }, "m")
  check_error("content must be a string", s.write, s, "refs/histops/runs/x", { f = 1 }, "m")
  check_error("paths", s.write, s, "refs/histops/runs/x", { "positional" }, "m")
  check_error("not a 40%-digit hex", s.write, s, "refs/histops/runs/x", { f = "1" }, "m", "abc")
  check_error("bad argument #3", s.write, s, "refs/histops/runs/x", nil, "m")
  check_error("removal needs", s.write, s, "refs/histops/runs/x", { f = false }, "m")

  -- artifacts: the repository's folder and explicit folders
  local adir = s:artifact_dir()
  assert(adir == h.gitdir .. "/histops/artifacts", adir)
  local sha = s:artifact_put(nil, "weights")
  assert(sha == capture("printf weights | sha256sum | cut -d' ' -f1"))
  local path = assert(git.artifact_path(adir, sha))
  assert(path == adir .. "/sha256/" .. sha:sub(1, 2) .. "/" .. sha:sub(3))
  assert(git.artifact_verify(adir, sha) == true)
  local other = tmp .. "/store"
  local f = assert(io.open(tmp .. "/w.bin", "wb"))
  f:write("weights")
  f:close()
  assert(git.artifact_put(other, tmp .. "/w.bin") == sha)
  assert(git.artifact_put(other, nil, "weights") == sha)  -- idempotent
  assert(capture("find " .. other .. " -type f | wc -l") == "1")
  local missing = string.rep("0", 64)
  local np2, amsg = git.artifact_path(other, missing)
  assert(np2 == nil and amsg:find("not found", 1, true))
  local nv, vmsg = git.artifact_verify(other, missing)
  assert(nv == nil and vmsg:find("not found", 1, true))
  sh(("chmod u+w %s/sha256/%s/%s && printf 'weightz' > %s/sha256/%s/%s"):format(other, sha:sub(1, 2), sha:sub(3),
    other, sha:sub(1, 2), sha:sub(3)))
  local nc, cmsg = git.artifact_verify(other, sha)
  assert(nc == nil and cmsg:find("corrupt", 1, true), cmsg)
  local nf, fmsg = git.artifact_put(other, tmp .. "/does-not-exist")
  assert(nf == nil and fmsg:find("does-not-exist", 1, true))
  check_error("one of the two", git.artifact_put, other, tmp .. "/w.bin", "both")
  check_error("one of the two", git.artifact_put, other)
  check_error("SHA%-256", git.artifact_path, other, "xyz")

  -- unborn HEAD, detached HEAD, linked worktree
  local fresh = tmp .. "/fresh"
  sh("git init -q -b trunk " .. fresh)
  do
    local u <close> = assert(git.open(fresh))
    local uh = u:head()
    assert(uh.unborn and uh.branch == "trunk" and uh.commit == "")
    local nr, umsg = u:resolve("HEAD")
    assert(nr == nil and umsg:find("no commits yet", 1, true), umsg)
    assert(#u:write("refs/histops/runs/u", { ["run.json"] = "{}" }, "m", false) == 40)
    assert(u:head().unborn)
  end
  sh(("cd %s && git checkout -q -- a.txt && git checkout -q --detach"):format(repo))
  local dh = s:head()
  assert(dh.detached and dh.branch == "" and dh.commit == c2)
  sh(("git -C %s worktree add -q -b side %s/wt main"):format(repo, tmp))
  local w = assert(git.open(tmp .. "/wt"))
  assert(w:head().branch == "side" and w:head().gitdir == h.gitdir)
  assert(w:read(ref, "run.json") == '{"lr":0.2}')
  assert(w:artifact_dir() == adir)
  w:close()
  check_error("closed", w.head, w)
  w:close()  -- idempotent

  s:close()
  check_error("closed", s.read, s, ref, "run.json")
end)

os.execute("rm -rf " .. tmp)
if not ok_all then error(err_all, 0) end
print("test_git.lua: ok")
