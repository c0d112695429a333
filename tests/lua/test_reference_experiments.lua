-- tests/lua/test_reference_experiments.lua: every reference experiment in experiments/ runs end to
-- end in a shortened form (a few images, one short epoch) so that each path — folder JPEG data,
-- the SVM baseline, segmentation pairs, mask inversion, gray input, U-Net — is exercised in CI.
-- The full runs and their figures are in the README; here only "runs and writes its results".
local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local exe = require("histops").sys.exe()   -- the binary under test (build/, build-asan/, ...)
local data = os.getenv("HISTOPS_DATA") or "../shared/data"
local exists = T.exists
local tmp = T.tmpdir("refexp")

local cases = {
  { "blood_cells", "pbc2020_blood_cells", { "data.limit_per_class=6", "train.batch=8" } },
  { "kather_tissue", "kather2016_crc_tiles", { "data.limit_per_class=8", "train.batch=8" } },
  { "nuclei_unet", "dsb2018_nuclei", { "data.limit=14", "data.cache_size={128,128}", "train.batch=4",
    "input.size={64,64}" } },
  { "em_membranes", "isbi2012_em_membranes", { "data.limit=8", "data.cache_size={128,128}", "train.batch=4",
    "input.size={64,64}" } },
}
local failed = 0
for _, c in ipairs(cases) do
  local name, folder, sets = c[1], c[2], c[3]
  if not exists(data .. "/" .. folder .. "/README.md") then
    print(("SKIP %s: no data set %s/%s"):format(name, data, folder))
  else
    local args = { "--set train.epochs=1", "--set train.steps_per_epoch=2", "--set eval.bootstrap=20" }
    for _, s in ipairs(sets) do args[#args + 1] = "--set '" .. s .. "'" end
    local cmd = ("%s run experiments/%s.lua %s --no-git --quiet --out %s > %s/%s.log 2>&1"):format(exe, name,
      table.concat(args, " "), tmp, tmp, name)
    local ok = os.execute(cmd)
    local p = io.popen(("ls %s/%s/*/metrics.json 2>/dev/null"):format(tmp, name))
    local metrics = p:read("l")
    p:close()
    if ok and metrics then
      print(("ok   %s"):format(name))
    else
      failed = failed + 1
      local f = io.open(("%s/%s.log"):format(tmp, name))
      print(("FAIL %s: %s\n%s"):format(name, cmd, f and f:read("a") or ""))
      if f then f:close() end
    end
  end
end
os.execute("rm -rf " .. tmp)
assert(failed == 0, failed .. " reference experiment(s) failed")
print("test_reference_experiments: ok")
