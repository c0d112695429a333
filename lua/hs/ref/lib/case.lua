-- lua/hs/ref/lib/case.lua: small helpers shared by the reference-runner handler modules in
-- lua/hs/ref/ (kept in this subfolder because check-ref loads every lua/hs/ref/*.lua as a table of
-- op handlers). Reading a case's tensors and parameters only: no numerics, no tolerances policy.
local M = {}

-- v when it is a number, else default (JSON null, absent or another type).
function M.num(v, default)
  if type(v) == "number" then return v end
  return default
end

-- The case's input image x: U8 (the stored F32 tensor cast back with astype) unless
-- params.dtype says the reference used float input.
function M.input(case)
  local x = case.t.x
  if not x then error("case " .. case.name .. " has no tensor 'x'") end
  if case.params.dtype == "f32" then return x end
  return x:astype("u8")
end

-- The one comparison of a single-output case: got against the stored tensor 'out'.
function M.one(got, case, tol)
  return { { name = "out", got = got, want = case.t.out, tol = tol } }
end

return M
