-- tests/lua/test_dist_mpi.lua: the hs.mpi collectives. Run single-process (every collective is a
-- local no-op/copy) or under `mpirun -np 2 --oversubscribe` (tests/mpi_dp.sh does both), where
-- each collective's result is checked against values every rank can compute for itself.
local hs = require "histops"
local mpi = require "hs.mpi"

assert(type(mpi.available()) == "boolean")
assert(mpi.rank() == 0 and mpi.size() == 1, "rank/size before init must be 0, 1")
local rank, size = mpi.init()
local r2, s2 = mpi.init()                         -- idempotent
assert(rank == r2 and size == s2)
assert(mpi.rank() == rank and mpi.size() == size)
if mpi.launched() then assert(mpi.available()) else assert(rank == 0 and size == 1) end
local want_size = tonumber(os.getenv("HS_TEST_MPI_SIZE") or "")
if want_size then assert(size == want_size, ("world size %d, want %d"):format(size, want_size)) end

mpi.barrier()

-- bcast: root's string everywhere, any root, empty and binary strings
for root = 0, size - 1 do
  local got = mpi.bcast(rank == root and ("from " .. root .. "\0bin") or nil, root)
  assert(got == "from " .. root .. "\0bin", got)
end
assert(mpi.bcast(rank == 0 and "" or nil, 0) == "")
local big = string.rep("x", 3 * 1000 * 1000)
assert(mpi.bcast(rank == 0 and big or nil) == big)

-- gather / allgather: ordered by rank, strings of different lengths
local mine = ("rank%d:"):format(rank) .. string.rep("y", rank * 3)
local g = mpi.gather(mine, 0)
if rank == 0 then
  assert(#g == size)
  for r = 0, size - 1 do assert(g[r + 1] == ("rank%d:"):format(r) .. string.rep("y", r * 3), g[r + 1]) end
else
  assert(g == nil)
end
local ag = mpi.allgather(mine)
assert(#ag == size)
for r = 0, size - 1 do assert(ag[r + 1] == ("rank%d:"):format(r) .. string.rep("y", r * 3)) end
assert(mpi.allgather("")[size] == "")

-- allreduce: each rank contributes (rank + 1) * base; the sum is base * size(size+1)/2
local base = hs.randn({ 1000 }, 5)
local t = base * (rank + 1)
local same = mpi.allreduce_sum(t)
assert(same == t or rawequal(same, t) or same:get(1) == t:get(1))
local k = size * (size + 1) / 2
for i = 1, 1000, 37 do
  local want = base:get(i) * k
  assert(math.abs(t:get(i) - want) <= 1e-5 * (1 + math.abs(want)), ("allreduce_sum[%d] %g want %g"):format(i, t:get(i), want))
end
local m = base * (rank + 1)
mpi.allreduce_mean(m)
for i = 1, 1000, 37 do
  local want = base:get(i) * k / size
  assert(math.abs(m:get(i) - want) <= 1e-5 * (1 + math.abs(want)))
end
assert(mpi.allreduce_sum_f64(rank + 0.5) == size * size / 2)
-- nonblocking: two requests in flight, completed in reverse order
local a, b = base * (rank + 1), base * 2
local ra, rb = mpi.iallreduce_sum(a), mpi.iallreduce_sum(b)
mpi.wait(rb); mpi.wait(ra)
assert(math.abs(a:get(3) - base:get(3) * k) <= 1e-5 * (1 + math.abs(base:get(3) * k)))
assert(math.abs(b:get(3) - base:get(3) * 2 * size) <= 1e-5 * (1 + math.abs(base:get(3) * 2 * size)))

-- bad arguments are errors naming the argument, never a crash
local T = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/testlib.lua")
local check_error = T.check_error
check_error("root rank out of range", mpi.bcast, "x", size)
check_error("contiguous tensor expected", mpi.allreduce_sum, hs.randn({ 3, 4 }, 1):transpose())
check_error("F32 or F64 tensor expected", mpi.allreduce_sum, hs.zeros({ 3 }):astype("i32"))
check_error("string expected", mpi.allgather, {})

mpi.barrier()
if rank == 0 then print(("hs.mpi collectives ok on %d rank(s)"):format(size)) end
mpi.finalize()
mpi.finalize()                                    -- idempotent
