// tests/hs_test.h: helpers shared by the cmocka tests: array comparison with a useful report,
// the finite-difference gradient helper of the house style, a per-program temporary directory,
// decoder robustness loops (flipped bytes, allocation failures), and access to the PyTorch
// reference cases (<reference dir>/torch/<case>.safetensors, read with the core's reader).
// Test code only: failures here fail the current cmocka test; nothing is a library API.
#ifndef HS_TEST_H
#define HS_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "safetensors.h"

// Fails the current test when any |got-want| > atol + rtol*|want| (or a NaN mismatch), printing
// the first bad index, both values and the max error.
void hs_expect_close_at(const float *got, const float *want, size_t n, double atol, double rtol,
                        const char *file, int line);
#define hs_expect_close(got, want, n, atol, rtol) hs_expect_close_at((got), (want), (n), (atol), (rtol), __FILE__, __LINE__)

// Central difference of loss() w.r.t. x[i].
double hs_numeric_grad(double (*loss)(void *), void *ctx, float *x, size_t i, float eps);

// Directory of the shared data/reference (HISTOPS_DATA or ../shared/data next to the source).
const char *hs_test_data_dir(void);

// ---- a temporary directory per test program ----

// Group setup/teardown for cmocka_run_group_tests(tests, hs_test_tmp_setup, hs_test_tmp_teardown):
// setup makes a fresh /tmp/hs_test_XXXXXX (-1 when it cannot); teardown removes the files in it
// (not subdirectories) and the directory.
int hs_test_tmp_setup(void **state);
int hs_test_tmp_teardown(void **state);
// That directory's path ("" before setup).
const char *hs_test_tmp_dir(void);
// Path of `name` inside it, in a static buffer that the next call reuses.
const char *hs_test_tmp_path(const char *name);
// Writes n bytes of buf to path; fails the current test when it cannot.
void hs_test_write_bytes(const char *path, const void *buf, size_t n);

// ---- robustness of decoders (PNG, JPEG, ...) ----

typedef hs_status (*hs_test_decode_fn)(hs_tensor **out, const void *buf, size_t n, const char *label);
// Decodes n bytes of buf with byte i flipped (^= mask) in turn for i = first, first + step, ...:
// each must give HS_OK or HS_ERR_FORMAT (never crash); fails the current test otherwise.
void hs_test_decode_corrupt_bytes(hs_test_decode_fn decode, const void *buf, size_t n, size_t first, size_t step,
                                  unsigned mask);
// Decodes buf with its k-th hs_alloc failing, k = 1, 2, ... until the decode succeeds; every failed
// run must return HS_ERR_NOMEM and leave *out NULL. Returns the successful result (caller frees).
hs_tensor *hs_test_decode_alloc_faults(hs_test_decode_fn decode, const void *buf, size_t n);

// ---- PyTorch reference cases ----

// PyTorch-agreement tolerances of the reference runner (its `forward` and `grad` tolerances).
#define HS_TEST_FWD_ATOL 1e-5
#define HS_TEST_FWD_RTOL 1e-4
#define HS_TEST_GRAD_ATOL 1e-4
#define HS_TEST_GRAD_RTOL 1e-3

// The reference directory: HISTOPS_REFERENCE if set, else hs_test_data_dir() + "/../reference".
const char *hs_test_ref_dir(void);

// Reads <hs_test_ref_dir()>/torch/<case_name>.safetensors into *out (the caller
// hs_safetensors_free's it). HS_OK, or HS_ERR_IO when the file is missing or unreadable (a note
// is printed and *out is NULL: the caller skip()s the test). A file that exists but does not
// parse fails the current test.
hs_status hs_test_ref_load(hs_safetensors **out, const char *case_name);

// Tensor `name` of a loaded case (borrowed from st); fails the current test when it is absent.
const hs_tensor *hs_test_ref_tensor(const hs_safetensors *st, const char *name);
// Its contiguous data (borrowed from st), element count in *numel (may be NULL); fails the
// current test when the tensor is absent or not of that dtype (F32, resp. I64).
const float *hs_test_ref_f32(const hs_safetensors *st, const char *name, int64_t *numel);
const int64_t *hs_test_ref_i64(const hs_safetensors *st, const char *name, int64_t *numel);

// Number `key` of the case's "params" metadata (a JSON object, searched at any depth, first
// occurrence): for an array value, its element `index`; true/false read as 1/0. dflt when the
// key, the element or the params are absent, or the value is not a number.
double hs_test_ref_param(const hs_safetensors *st, const char *key, int index, double dflt);

#endif
