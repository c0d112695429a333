-- lua/hs/dist.lua: data-parallel training for the experiment runner (`mpirun -np N histops run
-- EXPERIMENT.lua`): who writes (rank 0), sharded batches, gradient averaging, batch-norm running
-- statistics, decisions broadcast from rank 0. The runner (hs/experiment.lua) calls the methods
-- below at a few hooks; with one process every method is a cheap no-op. Not an MPI binding (that
-- is hs.mpi, lua/l_mpi.c) and not a sweep scheduler (hs/sweep).
--
-- Policy (README "Data-parallel training"):
--   * global batch B, P ranks: B % P == 0, rank r trains on rows [r*B/P, (r+1)*B/P) of every
--     global batch of the single-process loader (same order, same per-item augmentation);
--   * after backward the flat gradient slab is summed over ranks (MPI_Allreduce) and divided by
--     P: the gradient of the mean loss over the global batch, exact for per-item mean losses with
--     equal shards (cross-entropy without class weights, BCE, MSE); for class-weighted
--     cross-entropy and Dice it is the mean of the per-shard losses' gradients (as PyTorch DDP);
--   * batch norm uses per-rank batch statistics (DDP without SyncBatchNorm); running statistics
--     are averaged over ranks before every validation and checkpoint;
--   * rank 0 alone validates, writes the run folder, checkpoints, the git record, the report and
--     the console log; the early-stopping decision (best epoch) is broadcast from rank 0;
--   * dropout: each rank draws its masks from its own stream (step * P + rank), so data-parallel
--     runs of models with dropout match one process in distribution, not bit for bit;
--   * a failing rank aborts the job (mpi.abort) so the others never hang;
--   * gradients are reduced after the whole backward (one allreduce over the slab): the graph's
--     backward is one C call, so overlap with backward is not done.
local M = {}

local Single = {}
Single.__index = Single

-- the one-process object: every hook is a no-op
function M.single()
  return setmetatable({ rank = 0, size = 1 }, Single)
end

function Single:local_batch(B) return B end
function Single:shard() return nil end
function Single:rows(n) return n end
function Single:bcast_string(s) return s end
function Single:bcast_number(v) return v end
function Single:prepare() end
function Single:allreduce_grads() end
function Single:sum_number(v) return v end
function Single:sync_buffers() end
function Single:info() return nil end
function Single:describe() return "single process" end
function Single:finish() end
function Single:fail(err) error(err, 0) end

local Dist = setmetatable({}, { __index = Single })
Dist.__index = Dist

-- Start MPI (when launched by mpirun/srun) and return the data-parallel object; a single-process
-- object when the world has one rank.
function M.setup()
  local mpi = require "hs.mpi"
  local rank, size = mpi.init()
  if size == 1 then return M.single() end
  return setmetatable({ rank = rank, size = size, mpi = mpi, grad_numel = 0, comm_s = 0, comm_steps = 0,
    clock = require("histops").sys.clock }, Dist)
end

function Dist:local_batch(B)
  if B % self.size ~= 0 then
    error(("data-parallel: the global batch train.batch = %d is not divisible by the %d ranks " ..
      "(set train.batch to a multiple of %d)"):format(B, self.size, self.size), 0)
  end
  self.global_batch, self.per_rank_batch = B, B // self.size
  return self.per_rank_batch
end

function Dist:shard() return { self.rank, self.size } end

-- the rows the loader gave this rank: averaging per-rank mean gradients is the global mean only
-- when every shard is full (the runner's loader drops the last partial batch)
function Dist:rows(n, want)
  if n ~= 0 and n ~= want then
    error(("data-parallel: rank %d got a shard of %d rows, want %d (shards must be equal)"):format(self.rank, n, want), 0)
  end
  return n
end

function Dist:bcast_string(s) return self.mpi.bcast(self.rank == 0 and s or nil, 0) end
function Dist:bcast_number(v)
  return assert(tonumber(self.mpi.bcast(self.rank == 0 and ("%.17g"):format(v) or nil, 0)))
end

-- every rank starts from rank 0's weights and buffers (the seeded initialisation already agrees;
-- this also covers models whose constructors draw from other sources), and the compiled training
-- step draws its dropout masks from a per-rank stream (nn.compile's Compiled:step)
function Dist:prepare(model, step)
  if step then step.dist_rank = { self.rank, self.size } end
  local slab = model:flatten_parameters()
  self.mpi.bcast_tensor(slab.data, 0)
  for _, nb in ipairs(model:named_buffers()) do self.mpi.bcast_tensor(nb[2], 0) end
  self.grad_numel = slab.numel
end

-- sum the flat gradient slab over ranks and divide by P: the global-batch mean-loss gradient
function Dist:allreduce_grads(model)
  local slab = model:flatten_parameters()
  local g = slab.grad
  local t0 = self.clock()
  self.mpi.allreduce_sum(g)
  self.comm_s, self.comm_steps = self.comm_s + (self.clock() - t0), self.comm_steps + 1
  g:mul_(1 / self.size)
  self.grad_numel = g:numel()
end

function Dist:sum_number(v) return self.mpi.allreduce_sum_f64(v) end

-- average the floating-point buffers (BN running mean/var) over ranks; integer buffers
-- (num_batches_tracked) agree already
function Dist:sync_buffers(model)
  for _, nb in ipairs(model:named_buffers()) do
    local t = nb[2]
    if t:dtype() == "f32" or t:dtype() == "f64" then self.mpi.allreduce_mean(t) end
  end
end

-- what the run record keeps
function Dist:info()
  local n = self.grad_numel
  return { world_size = self.size, per_rank_batch = self.per_rank_batch, global_batch = self.global_batch,
    allreduce_floats_per_step = n, allreduce_bytes_per_step = 4 * n,
    -- a ring/recursive-halving allreduce sends (and receives) 2 (P-1)/P of the buffer per rank
    wire_bytes_per_rank_per_step = math.floor(2 * (self.size - 1) / self.size * 4 * n + 0.5),
    allreduce_ms_per_step = self.comm_steps > 0 and 1000 * self.comm_s / self.comm_steps or 0,
    bn_policy = "per-rank batch statistics; running statistics averaged before validation and checkpoints",
    overlap = false }
end

function Dist:describe()
  return ("data-parallel over %d ranks: per-rank batch %d of %d, allreduce of %d floats (%.2f MiB) per step")
    :format(self.size, self.per_rank_batch or 0, self.global_batch or 0, self.grad_numel, 4 * self.grad_numel / 2 ^ 20)
end

-- the end of a successful run: wait for every rank (rank 0 writes the run folder meanwhile), then
-- finalize MPI
function Dist:finish()
  self.mpi.barrier()
  self.mpi.finalize()
end

-- a rank failed: tell, and take the whole job down (the others may be blocked in a collective)
function Dist:fail(err)
  self.mpi.abort(1, tostring(err))
end

return M
