-- lua/hs/cmd/run.lua: `histops run EXPERIMENT.lua [--set key=value ...] [--resume RUN_DIR]
-- [--out DIR] [--register NAME] [--no-git] [--quiet] [--json]`: train and evaluate an experiment, write its run folder.
local M = { help = "train and evaluate an experiment script; writes a run folder (see README)" }

function M.run(args)
  local hs = require "histops"
  local config = require "hs.config"
  local exp = require "hs.experiment"
  local file, overrides, opts = nil, {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--set" then overrides[#overrides + 1] = args[i + 1] or error("--set needs key=value", 0); i = i + 1
    elseif a:match("^%-%-set=") then overrides[#overrides + 1] = a:sub(7)
    elseif a == "--resume" then opts.resume = args[i + 1] or error("--resume needs a run folder", 0); i = i + 1
    elseif a == "--out" then opts.out = args[i + 1] or error("--out needs a folder", 0); i = i + 1
    elseif a == "--quiet" then opts.quiet = true
    elseif a == "--json" then opts.json = true
    elseif a == "--no-git" then opts.no_git = true
    elseif a == "--register" then opts.register = args[i + 1] or error("--register needs a model name", 0); i = i + 1
    elseif a:sub(1, 2) == "--" then io.stderr:write("histops run: unknown option ", a, "\n"); return 2
    elseif not file then file = a
    else io.stderr:write("histops run: unexpected argument ", a, "\n"); return 2 end
    i = i + 1
  end
  if not file then
    io.stderr:write("usage: histops run EXPERIMENT.lua [--set key=value ...] [--resume RUN_DIR] [--out DIR]\n")
    return 2
  end
  local ok, cfg = pcall(config.load, file, overrides)
  if not ok then io.stderr:write("histops run: ", tostring(cfg), "\n"); return 2 end
  opts.overrides = overrides
  -- under mpirun/srun: one model trained data-parallel over the ranks (hs/dist.lua); rank 0 writes
  local dp
  if require("hs.mpi").launched() then
    local okd, d = pcall(require("hs.dist").setup)
    if not okd then io.stderr:write("histops run: ", tostring(d), "\n"); return 2 end
    if d.size > 1 then dp, opts.dist = d, d end
  end
  if not dp then
    local record, run = exp.run(cfg, opts)
    if opts.json then print(hs.json.encode(record.metrics)) end
    return 0, record, run
  end
  local okr, record, run = pcall(exp.run, cfg, opts)
  if not okr then dp:fail(record) end   -- abort the job: the other ranks may wait in a collective
  dp:finish()
  if opts.json and dp.rank == 0 then print(hs.json.encode(record.metrics)) end
  return 0, record, run
end

return M
