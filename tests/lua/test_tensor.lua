-- tests/lua/test_tensor.lua: the hs.tensor binding as a Lua user sees it: the container
-- (lua/l_tensor.c: creation, views, element access, release) and the math added by
-- lua/l_tensorops.c (operators, reductions, matmul, joins, gathers, misuse errors).
-- Run: build/histops tests/lua/test_tensor.lua (exit status is the verdict). Not a benchmark.
local hs = require "histops"
local T = hs.tensor

local function check_error(pattern, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error matching '" .. pattern .. "', got success")
  err = tostring(err)
  assert(err:find(pattern), ("error %q does not match %q"):format(err, pattern))
  return err
end

local function same(t, want, tol)
  tol = tol or 0
  local got = t:tolist()
  assert(#got == #want, ("%d values, want %d"):format(#got, #want))
  for i = 1, #want do
    local g, w = got[i], want[i]
    local ok = (g ~= g and w ~= w) or math.abs(g - w) <= tol
    assert(ok, ("value %d: got %s, want %s"):format(i, tostring(g), tostring(w)))
  end
end

local function shape_is(t, want)
  local s = t:shape()
  assert(#s == #want, ("shape has %d dims, want %d"):format(#s, #want))
  for i = 1, #want do assert(s[i] == want[i], ("dim %d is %d, want %d"):format(i, s[i], want[i])) end
end

local tests = {}

-- ---- container (lua/l_tensor.c) ----

function tests.creation_from_nested_tables_and_constructors()
  local t = T{{1, 2, 3}, {4, 5, 6}}
  shape_is(t, {2, 3})
  assert(t:dtype() == "f32" and t:dim() == 2 and t:numel() == 6 and #t == 2)
  same(t, {1, 2, 3, 4, 5, 6})
  local i = T({{1}, {2}}, "i64")
  assert(i:dtype() == "i64" and math.type(i:get(2, 1)) == "integer")
  assert(T({true, false}, "u8"):get(1) == 1)
  check_error("ragged", T, {{1, 2}, {3}})
  check_error("expected a number", T, {1, "x"})
  shape_is(hs.zeros(2, 3), {2, 3})
  shape_is(hs.zeros({4}), {4})
  same(hs.ones({2}, "u8"), {1, 1})
  same(hs.full({2, 2}, 7), {7, 7, 7, 7})
  same(hs.arange(5), {0, 1, 2, 3, 4})
  same(hs.arange(1, 2, 0.25), {1, 1.25, 1.5, 1.75})
  assert(hs.arange(3, "i64"):dtype() == "i64")
  assert(hs.rand({3, 3}, 5):equal(hs.rand({3, 3}, 5)), "same seed, same numbers")
  assert(not hs.rand({3, 3}, 5):equal(hs.rand({3, 3}, 6)))
  local r = hs.rand({1000}, {seed = 1, lo = 2, hi = 3})
  assert(r:min() >= 2 and r:max() < 3)
  local n = hs.randn({20000}, {seed = 3, mean = 1, std = 2})
  assert(math.abs(n:mean():item() - 1) < 0.05 and math.abs(n:std():item() - 2) < 0.05)
  assert(hs.is_tensor(t) and not hs.is_tensor({}))
  check_error("unknown dtype", hs.zeros, {2}, "f16")
end

function tests.views_share_storage_and_pin_their_base()
  local v
  do
    local base = hs.arange(12):reshape(3, 4)
    v = base:narrow(2, 2, 2)   -- columns 2..3
  end
  collectgarbage()
  collectgarbage()
  shape_is(v, {3, 2})
  same(v, {1, 2, 5, 6, 9, 10})
  local base = hs.arange(12)
  local m = base:view(3, -1)
  shape_is(m, {3, 4})
  m:select(1, 2):fill(0)      -- row 2 through a view of a view
  same(base:narrow(1, 5, 4), {0, 0, 0, 0})
  local tt = m:transpose()
  shape_is(tt, {4, 3})
  assert(not tt:is_contiguous() and tt:get(2, 1) == 1)
  local p = hs.arange(24):reshape(2, 3, 4):permute(3, 1, 2)
  shape_is(p, {4, 2, 3})
  assert(p:get(2, 1, 1) == 1 and p:get(1, 2, 1) == 12)
  local r = tt:reshape(12)    -- not contiguous: reshape copies
  same(r, {0, 0, 8, 1, 0, 9, 2, 0, 10, 3, 0, 11})
  assert(tt:contiguous():is_contiguous())
  assert(m:select(2, -1):get(1) == 3, "negative index counts from the end")
  check_error("out of bounds", m.narrow, m, 2, 3, 5)
  check_error("dim 3 out of range", m.select, m, 3, 1)
  check_error("cannot reshape", m.reshape, m, 5, 5)
end

function tests.get_set_item_totable_and_tostring()
  local t = hs.zeros(2, 3)
  t:set(2, 3, 5.5)
  assert(t:get(2, 3) == 5.5 and t:get(-1, -1) == 5.5)
  check_error("index 4 out of range for dim 2", t.get, t, 1, 4)
  check_error("index 3 out of range for dim 1", t.set, t, 3, 1, 0)
  local tab = t:totable()
  assert(#tab == 2 and #tab[2] == 3 and tab[2][3] == 5.5)
  assert(T{3}:item() == 3)
  check_error("item: tensor has 6 elements", t.item, t)
  local s = tostring(T{{1, 2}, {3, 4}})
  assert(s:find("hs.tensor F32 [2,2]", 1, true) and s:find("{1, 2, 3, 4}", 1, true), s)
  assert(tostring(hs.zeros(10)):find("...}", 1, true))
  local b = T{1.5, 2}:bytes()
  assert(#b == 8)
  same(hs.tensor.from_bytes(b, {2}), {1.5, 2})
  same(T{1.7, 300, -4}:astype("u8"), {2, 255, 0})
end

function tests.close_and_release_make_a_tensor_unusable()
  local keep
  do
    local t <close> = hs.ones(3)
    keep = t
    assert(t:numel() == 3)
  end
  assert(tostring(keep) == "hs.tensor (released)")
  check_error("tensor has been released", keep.numel, keep)
  check_error("tensor has been released", function() return keep + 1 end)
  check_error("tensor has been released", function() return hs.ones(3):add(keep) end)
  local u = hs.ones(2)
  u:release()
  u:release()   -- idempotent
  check_error("released", u.sum, u)
end

-- ---- arithmetic (lua/l_tensorops.c) ----

function tests.operators_broadcast_and_accept_numbers_on_either_side()
  local t = T{{1, 2, 3}, {4, 5, 6}}
  same(t + 1, {2, 3, 4, 5, 6, 7})
  same(10 - t, {9, 8, 7, 6, 5, 4})
  same(t - 10, {-9, -8, -7, -6, -5, -4})
  same(2 / T{1, 4}, {2, 0.5})
  same(T{2, 3} ^ 2, {4, 9})
  same(2 ^ T{2, 3}, {4, 8})
  same(-t, {-1, -2, -3, -4, -5, -6})
  same(t * T{10, 100, 1000}, {10, 200, 3000, 40, 500, 6000})            -- row broadcast
  same(t + T{{1}, {2}}, {2, 3, 4, 6, 7, 8})                             -- column broadcast
  shape_is(T{{1}, {2}} + T{1, 2, 3}, {2, 3})                            -- outer broadcast
  same(t:maximum(T{3, 3, 3}), {3, 3, 3, 4, 5, 6})
  same(t:minimum(3), {1, 2, 3, 3, 3, 3})
  same(t:max(T{2, 9, 0}), {2, 9, 3, 4, 9, 6})
  check_error("add: shapes %[2,3%] and %[2%] do not broadcast", function() return t + T{1, 2} end)
  check_error("mul: shapes %[2,3%] and %[3,2%]", t.mul, t, hs.zeros(3, 2))
end

function tests.result_dtypes_follow_the_documented_rules()
  local u = T({1, 2, 250}, "u8")
  assert((u + 1):dtype() == "u8")
  same(u + 10, {11, 12, 255})                 -- saturates in u8
  assert((u / 2):dtype() == "f32")
  assert((u * 0.5):dtype() == "f32")
  assert((u + T({1, 1, 1}, "i64")):dtype() == "i64")
  assert((u + T{1, 1, 1}):dtype() == "f32")
  assert((T({1}, "f64") + T{1}):dtype() == "f64")
  assert(u:gt(1):dtype() == "u8")
  assert(u:sum():dtype() == "i64" and u:sum():item() == 253)
  assert(u:mean():dtype() == "f32")
  assert((-u):dtype() == "i64" and u:neg():dtype() == "i64")   -- unsigned widens to signed
  same(u:neg(), {-1, -2, -250})
end

function tests.comparisons_make_masks_and_eq_stays_identity()
  local t = T{1, 2, 3, 4}
  same(t:gt(2), {0, 0, 1, 1})
  same(t:ge(2), {0, 1, 1, 1})
  same(t:lt(T{2, 2, 2, 2}), {1, 0, 0, 0})
  same(t:le(2), {1, 1, 0, 0})
  same(t:eq(3), {0, 0, 1, 0})
  same(t:ne(3), {1, 1, 0, 1})
  local c = t:clone()
  assert(t == t and t ~= c, "== compares identity")
  assert(t:equal(c) and not t:equal(T{1, 2, 3}) and not t:equal(c + 1))
  assert(t:allclose(c + 1e-7) and not t:allclose(c + 1e-3))
  assert(t:allclose(c + 1e-3, 1e-2))
  assert(t:allclose(c * 1.01, 0, 0.02) and not t:allclose(c * 1.01, 0, 0.001))
end

function tests.unary_math_and_in_place_variants()
  local x = T{-1, 0, 0.5, 2}
  same(x:abs(), {1, 0, 0.5, 2})
  same(x:relu(), {0, 0, 0.5, 2})
  same(x:exp(), {math.exp(-1), 1, math.exp(0.5), math.exp(2)}, 1e-6)
  same(T{1, 4}:sqrt(), {1, 2})
  same(T{1, math.exp(1)}:log(), {0, 1}, 1e-6)
  same(x:sigmoid(), {1 / (1 + math.exp(1)), 0.5, 1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(-2))}, 1e-6)
  same(x:tanh(), {-0.7615941559557649, 0, 0.46211715726000974, 0.9640275800758169}, 1e-6)
  same(T{-1.5, -0.5, 0.5, 1.5, 2.5}:round(), {-2, -0, 0, 2, 2})
  same(T{-1.5, 1.5}:floor(), {-2, 1})
  same(T{-1.5, 1.5}:ceil(), {-1, 2})
  same(x:sign(), {-1, 0, 1, 1})
  same(x:square(), {1, 0, 0.25, 4})
  same(T{0, 1e-8}:log1p(), {0, 1e-8}, 1e-14)
  same(T{0, 1e-8}:expm1(), {0, 1e-8}, 1e-14)
  same(T{0}:sin(), {0})
  same(T{0}:cos(), {1})
  same(x:clamp(0, 1), {0, 0, 0.5, 1})
  same(x:clamp(nil, 0), {-1, 0, 0, 0})
  same(x:clamp(0.25), {0.25, 0.25, 0.5, 2})
  check_error("hi must be >= lo", x.clamp, x, 1, 0)
  local y = x:clone()
  assert(y:relu_() == y)
  same(y, {0, 0, 0.5, 2})
  assert(y:add_(1) == y and y:mul_(T{1, 2, 3, 4}) == y)
  same(y, {1, 2, 4.5, 12})
  y:sub_(1):div_(2)
  same(y, {0, 0.5, 1.75, 5.5})
  y:clamp_(0, 1)
  same(y, {0, 0.5, 1, 1})
  assert(y:fill_(3) == y)
  same(y, {3, 3, 3, 3})
  y:zero_()
  same(y, {0, 0, 0, 0})
  y:copy_(x)
  same(y, {-1, 0, 0.5, 2})
  check_error("add: out is %[4%], want %[2,4%]", y.add_, y, hs.zeros(2, 4))
end

function tests.where_masked_fill_index_select_one_hot()
  local x = T{{1, 2}, {3, 4}}
  local m = x:gt(2)
  same(hs.where(m, x, 0), {0, 0, 3, 4})
  same(hs.where(m, 1, -1), {-1, -1, 1, 1})
  same(x:where(m, T{10, 20}), {10, 20, 3, 4})
  same(x:masked_fill(m, -5), {1, 2, -5, -5})
  same(x:masked_fill(T({1, 0}, "u8"), 9), {9, 2, 9, 4})  -- mask broadcast over rows
  local z = x:clone()
  z:masked_fill_(m, 0)
  same(z, {1, 2, 0, 0})
  same(x:index_select(1, {2, 1, 2}), {3, 4, 1, 2, 3, 4})
  same(x:index_select(2, {-1}), {2, 4})
  same(x:index_select(2, T({2, 2}, "i64")), {2, 2, 4, 4})
  check_error("index_select: index 3", x.index_select, x, 1, {3})
  local oh = T({0, 2, 1}, "i64"):one_hot(3)
  shape_is(oh, {3, 3})
  same(oh, {1, 0, 0, 0, 0, 1, 0, 1, 0})
  shape_is(T({1, 3}, "u8"):one_hot(), {2, 4})
  check_error("one_hot: class 3", function() return T({3}, "i64"):one_hot(3) end)
end

-- ---- reductions ----

function tests.reductions_along_dims_and_all()
  local t = T{{1, 2, 3}, {4, 5, 6}}
  local s = t:sum()
  assert(s:dim() == 0 and s:item() == 21)
  same(t:sum(1), {5, 7, 9})
  same(t:sum(2), {6, 15})
  same(t:sum(-1), {6, 15})
  shape_is(t:sum(2, true), {2, 1})
  shape_is(t:sum(nil, true), {1, 1})
  assert(t:mean():item() == 3.5)
  same(t:mean(1), {2.5, 3.5, 4.5})
  same(t:var(2), {1, 1})
  same(t:var(2, false), {2 / 3, 2 / 3}, 1e-6)
  assert(math.abs(t:var():item() - 3.5) < 1e-6)
  same(t:std(1), {math.sqrt(4.5), math.sqrt(4.5), math.sqrt(4.5)}, 1e-6)
  shape_is(t:std(1, true, true), {1, 3})
  assert(t:prod():item() == 720)
  same(t:prod(2), {6, 120})
  same(t:cumsum(2), {1, 3, 6, 4, 9, 15})
  same(t:cumsum(1), {1, 2, 3, 5, 7, 9})
  same(T{1, 2, 3}:cumsum(), {1, 3, 6})
  check_error("dim 3 out of range", t.sum, t, 3)
end

function tests.max_min_and_arg_return_one_based_indices()
  local t = T{{1, 7, 7}, {9, 0, 9}}
  local v, i = t:max()
  assert(v == 9 and i == 4, "first occurrence, flat 1-based")
  v, i = t:min()
  assert(v == 0 and i == 5)
  local vals, idx = t:max(2)
  same(vals, {7, 9})
  same(idx, {2, 1})
  assert(idx:dtype() == "i64")
  vals, idx = t:min(1, true)
  shape_is(vals, {1, 3})
  same(idx, {1, 2, 1})
  assert(t:argmax() == 4 and t:argmin() == 5)
  same(t:argmax(2), {2, 1})
  same(t:argmin(2), {1, 2})
  same(t:argmax(1), {2, 1, 2})
  local iv, ii = T({3, 5, 5}, "i64"):max()
  assert(math.type(iv) == "integer" and iv == 5 and ii == 2)
  check_error("cannot reduce an empty tensor", function() return hs.zeros(0):max() end)
end

function tests.sort_topk_histc()
  local x = T{3, 1, 2, 1}
  local v, i = x:sort()
  same(v, {1, 1, 2, 3})
  same(i, {2, 4, 3, 1})          -- stable, 1-based
  v, i = x:sort(1, true)
  same(v, {3, 2, 1, 1})
  same(i, {1, 3, 2, 4})
  v, i = T{{5, 1, 4}, {0, 9, 8}}:topk(2)
  same(v, {5, 4, 9, 8})
  same(i, {1, 3, 2, 3})
  v = T{{5, 1, 4}, {0, 9, 8}}:topk(1, 1, false)
  same(v, {0, 1, 4})
  check_error("k out of range", x.topk, x, 5)
  same(hs.arange(6):histc(3, 0, 5), {2, 2, 2})
  same(T{0, 0, 10}:histc(2), {2, 1})   -- range from the data
end

-- ---- matmul and joins ----

function tests.matmul_plain_transposed_and_batched()
  local a = T{{1, 2, 3}, {4, 5, 6}}
  local b = T{{1, 0}, {0, 1}, {1, 1}}
  same(a:matmul(b), {4, 5, 10, 11})
  same(hs.matmul(a, a:transpose()), {14, 32, 32, 77})
  same(a:transpose():matmul(a), {17, 22, 27, 22, 29, 36, 27, 36, 45})
  local batch = hs.stack({a, a * 2})        -- (2,2,3)
  local out = batch:matmul(b)               -- shared 2-D right operand
  shape_is(out, {2, 2, 2})
  same(out, {4, 5, 10, 11, 8, 10, 20, 22})
  same(a:matmul(hs.stack({b, b})), {4, 5, 10, 11, 4, 5, 10, 11})
  same(batch:matmul(batch:transpose()), {14, 32, 32, 77, 56, 128, 128, 308})
  check_error("matmul: a %[2,3%] and b %[2,3%]: inner sizes 3 and 2 differ", a.matmul, a, a)
  check_error("bad argument #2 to 'matmul' %(hs.tensor expected, got nil%)", function() return hs.matmul(a, nil) end)
  check_error("bad argument #1 to 'matmul' %(hs.tensor expected, got number%)", function() return a:matmul(1) end)
  -- a bigger product against a Lua triple loop
  local A, B = hs.rand({17, 33}, 1), hs.rand({33, 9}, 2)
  local C = A:matmul(B)
  for r = 1, 17, 4 do
    for c = 1, 9, 2 do
      local acc = 0
      for k = 1, 33 do acc = acc + A:get(r, k) * B:get(k, c) end
      assert(math.abs(C:get(r, c) - acc) < 1e-4)
    end
  end
end

function tests.cat_and_stack()
  local a, b = T{{1, 2}}, T{{3, 4}, {5, 6}}
  same(hs.cat({a, b}), {1, 2, 3, 4, 5, 6})
  shape_is(hs.cat({a, b}, 1), {3, 2})
  same(hs.cat({b, b}, 2), {3, 4, 3, 4, 5, 6, 5, 6})
  check_error("concat: tensor 2 is %[2,2%], tensor 1 is %[1,2%]", hs.cat, {a, b}, 2)
  check_error("element 2 is not a live hs.tensor", hs.cat, {a, 5})
  check_error("empty list", hs.cat, {})
  shape_is(hs.stack({a, a, a}), {3, 1, 2})
  shape_is(hs.stack({a, a, a}, 3), {1, 2, 3})
  shape_is(hs.stack({a, a, a}, -1), {1, 2, 3})
  same(hs.stack({T{1, 2}, T{3, 4}}, 2), {1, 3, 2, 4})
  check_error("stack: tensor 2 is", hs.stack, {a, b})
end

function tests.misuse_raises_clear_errors()
  local t = hs.zeros(2)
  check_error("bad argument #2 to 'add' %(hs.tensor or number expected, got string%)", function() return t + "x" end)
  check_error("bad argument #1 to 'add' %(hs.tensor or number expected, got table%)", function() return t:add({}) end)
  check_error("bad argument #1 to 'sub'", function() return {} - t end)
  check_error("bad argument #1 to 'sum' %(number expected, got string%)", function() return t:sum("x") end)
  check_error("bad argument #2 to '%?' %(number expected, got string%)", t.sum, t, "x")  -- via pcall: no name
  check_error("hs.tensor expected", T.zeros(1).sum, 5)
  check_error("bad argument", t.index_select, t, 1, {1.5})
end

function tests.large_elementwise_and_reductions_agree_with_small_pieces()
  local x = hs.rand({400, 300}, 9)    -- > 64K elements: the threaded paths
  local y = x * 2 + 1
  assert(math.abs(y:sum():item() - (2 * x:sum():item() + x:numel())) < 1e-3 * x:numel())
  local rows = x:sum(2)
  assert(math.abs(rows:sum():item() - x:sum():item()) < 1e-2)
  local v, i = x:max()
  assert(x:tolist()[i] == v)
  assert(x:exp():log():allclose(x, 1e-5, 1e-5))
end

-- ---- runner ----
local names = {}
for name in pairs(tests) do names[#names + 1] = name end
table.sort(names)
local failed = 0
for _, name in ipairs(names) do
  local ok, err = pcall(tests[name])
  if ok then
    print("ok   " .. name)
  else
    failed = failed + 1
    print("FAIL " .. name .. ": " .. tostring(err))
  end
end
print(("%d tests, %d failed"):format(#names, failed))
if failed > 0 then os.exit(1) end
