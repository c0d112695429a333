-- lua/hs/ref/selftest.lua: handlers that exist only to test the reference runner (check-ref)
-- end to end; no reference case in shared/ uses these ops. Not an example of a real handler's
-- numerics: see the other modules in this folder for those.
--   identity_selftest  out = x, compared under params.tol (default "exact")
--   error_selftest     raises (the runner must report FAIL, not crash)
--   skip_selftest      declines with a reason (the runner must report SKIP)
return {
  identity_selftest = function(case)
    return { { name = "out", got = case.t.x, want = case.t.out, tol = case.params.tol or "exact" } }
  end,
  error_selftest = function(case)
    error("deliberate failure in " .. case.name)
  end,
  skip_selftest = function()
    return nil, "skipped on purpose"
  end,
}
