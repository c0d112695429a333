// tests/hs_test.c: implementation of the shared test helpers (hs_test.h). The reference cases
// are read with the core's reader (core/safetensors.c); nothing here parses the format itself.
#include "hs_test.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

void hs_expect_close_at(const float *got, const float *want, size_t n, double atol, double rtol,
                        const char *file, int line) {
    size_t bad = n, nbad = 0;
    double maxerr = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], err = fabs(g - w);
        int ok = (isnan(g) && isnan(w)) || err <= atol + rtol * fabs(w);
        if (!isnan(err) && err > maxerr)
            maxerr = err;
        if (!ok) {
            if (bad == n)
                bad = i;
            nbad++;
        }
    }
    if (bad != n) {
        print_error("%s:%d: %zu of %zu values differ; first at [%zu]: got %.9g want %.9g; max abs err %.3g "
                    "(atol %g, rtol %g)\n",
                    file, line, nbad, n, bad, (double)got[bad], (double)want[bad], maxerr, atol, rtol);
        _fail(file, line);
    }
}

static char tmp_dir[256];

int hs_test_tmp_setup(void **state) {
    (void)state;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/hs_test_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

int hs_test_tmp_teardown(void **state) {
    (void)state;
    DIR *d = opendir(tmp_dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(tmp_dir);
    return 0;
}

const char *hs_test_tmp_dir(void) { return tmp_dir; }

const char *hs_test_tmp_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp_dir, name);
    return p;
}

void hs_test_write_bytes(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("cannot create %s", path);
    size_t wrote = fwrite(buf, 1, n, f);
    if (fclose(f) != 0 || wrote != n)
        fail_msg("cannot write %zu bytes to %s", n, path);
}

void hs_test_decode_corrupt_bytes(hs_test_decode_fn decode, const void *buf, size_t n, size_t first, size_t step,
                                  unsigned mask) {
    unsigned char *bad = hs_alloc(n);
    assert_non_null(bad);
    for (size_t i = first; i < n; i += step) {
        memcpy(bad, buf, n);
        bad[i] ^= (unsigned char)mask;
        hs_tensor *t = NULL;
        hs_status s = decode(&t, bad, n, "corrupt");
        if (s != HS_OK && s != HS_ERR_FORMAT)
            fail_msg("byte %zu flipped: status %d, want HS_OK or HS_ERR_FORMAT", i, (int)s);
        hs_tensor_free(t);
    }
    hs_free(bad);
}

hs_tensor *hs_test_decode_alloc_faults(hs_test_decode_fn decode, const void *buf, size_t n) {
    for (uint64_t k = 1;; k++) {
        hs_tensor *t = NULL;
        hs_alloc_fail_after(k);
        hs_status s = decode(&t, buf, n, "mem");
        hs_alloc_fail_after(0);
        if (s == HS_OK)
            return t;
        assert_int_equal(s, HS_ERR_NOMEM);
        assert_null(t);
    }
}

double hs_numeric_grad(double (*loss)(void *), void *ctx, float *x, size_t i, float eps) {
    float saved = x[i];
    x[i] = saved + eps;
    double up = loss(ctx);
    x[i] = saved - eps;
    double down = loss(ctx);
    x[i] = saved;
    return (up - down) / (2.0 * (double)eps);
}

const char *hs_test_data_dir(void) {
    const char *d = getenv("HISTOPS_DATA");
    return d && *d ? d : HS_DATA_DEFAULT;
}

// ---- PyTorch reference cases ----

const char *hs_test_ref_dir(void) {
    static char dir[4096];
    const char *e = getenv("HISTOPS_REFERENCE");
    if (e && *e)
        return e;
    snprintf(dir, sizeof dir, "%s/../reference", hs_test_data_dir());
    return dir;
}

hs_status hs_test_ref_load(hs_safetensors **out, const char *case_name) {
    char path[4096 + 256];
    *out = NULL;
    int len = snprintf(path, sizeof path, "%s/torch/%s.safetensors", hs_test_ref_dir(), case_name);
    if (len < 0 || (size_t)len >= sizeof path)
        fail_msg("reference case path too long: %s/torch/%s.safetensors", hs_test_ref_dir(), case_name);
    hs_status s = hs_safetensors_read(out, path);
    if (s == HS_ERR_IO) {   // missing (or unreadable): the caller skips, as without the data
        print_message("reference case %s not found; skipping (%s)\n", path, hs_last_error()->msg);
        return s;
    }
    if (s != HS_OK)   // present but corrupt: that is a failure, not a skip
        fail_msg("reference case %s: %s [%s:%d]", path, hs_last_error()->msg, hs_last_error()->file,
                 hs_last_error()->line);
    return s;
}

const hs_tensor *hs_test_ref_tensor(const hs_safetensors *st, const char *name) {
    int i = hs_safetensors_find(st, name);
    if (i < 0)
        fail_msg("reference tensor '%s' not found in the case", name);
    const hs_tensor *t = hs_safetensors_tensor(st, i);
    if (!t)
        fail_msg("reference tensor '%s' was taken from the case", name);
    return t;
}

// The data of tensor `name`, checked to be of dtype `want` (named `want_name` in messages).
static const void *ref_data(const hs_safetensors *st, const char *name, hs_dtype want, const char *want_name,
                            int64_t *numel) {
    const hs_tensor *t = hs_test_ref_tensor(st, name);
    if (t->dtype != want)
        fail_msg("reference tensor '%s' is not %s (dtype %d)", name, want_name, (int)t->dtype);
    assert_true(hs_tensor_is_contiguous(t));   // the reader stores every tensor contiguous
    if (numel)
        *numel = hs_tensor_numel(t);
    return t->data;
}

const float *hs_test_ref_f32(const hs_safetensors *st, const char *name, int64_t *numel) {
    return ref_data(st, name, HS_DTYPE_F32, "F32", numel);
}

const int64_t *hs_test_ref_i64(const hs_safetensors *st, const char *name, int64_t *numel) {
    return ref_data(st, name, HS_DTYPE_I64, "I64", numel);
}

static const char *skip_spaces(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

// The params JSON comes from Python's json.dumps: flat enough that a key is `"key"` followed by
// a colon, wherever it is nested, and a number is what strtod reads.
double hs_test_ref_param(const hs_safetensors *st, const char *key, int index, double dflt) {
    const char *js = hs_safetensors_meta_get(st, "params");
    if (!js)
        return dflt;
    size_t klen = strlen(key);
    for (const char *q = strchr(js, '"'); q; q = strchr(q + 1, '"')) {
        if (strncmp(q + 1, key, klen) != 0 || q[1 + klen] != '"')
            continue;
        const char *p = skip_spaces(q + 2 + klen);
        if (*p != ':')   // a string value equal to the key, not the key itself
            continue;
        p = skip_spaces(p + 1);
        if (*p == '[') {
            p++;
            for (int i = 0; i < index; i++) {
                const char *comma = strchr(p, ','), *close = strchr(p, ']');
                if (!comma || (close && close < comma))
                    return dflt;   // the array has no element `index`
                p = comma + 1;
            }
            p = skip_spaces(p);
        }
        if (strncmp(p, "true", 4) == 0)
            return 1;
        if (strncmp(p, "false", 5) == 0)
            return 0;
        char *end;
        double v = strtod(p, &end);
        return end == p ? dflt : v;
    }
    return dflt;
}
