// tests/ref_reader.h: the PyTorch reference cases (shared/reference/torch/<case>.safetensors) for
// the C kernel tests, as malloc'd float arrays plus shape, and scalar params from the `params`
// metadata. A thin layer over the shared test helpers (hs_test_ref_load and friends, which use
// the core safetensors reader); header-only, test code only.
#ifndef HS_REF_READER_H
#define HS_REF_READER_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hs_test.h"

typedef struct {
    hs_safetensors *st;
} ref_file;

// Directory of the torch cases: $HISTOPS_REFERENCE/torch, else <data dir>/../reference/torch.
static inline const char *ref_dir(void) {
    static char path[1100];
    snprintf(path, sizeof path, "%s/torch", hs_test_ref_dir());
    return path;
}

// Opens <ref_dir>/<case_name>.safetensors; 0 when missing (a malformed file fails the test).
static inline int ref_open(ref_file *f, const char *case_name) {
    f->st = NULL;
    return hs_test_ref_load(&f->st, case_name) == HS_OK;
}

static inline void ref_close(ref_file *f) {
    hs_safetensors_free(f->st);
    f->st = NULL;
}

static inline int ref_has(const ref_file *f, const char *name) { return hs_safetensors_find(f->st, name) >= 0; }

// Tensor `name` as a malloc'd float array (F32 copied, I64 converted); shape/ndim filled (shape
// may be NULL). NULL when absent. *numel receives the element count when numel != NULL.
static inline float *ref_tensor(const ref_file *f, const char *name, int64_t *shape, int *ndim, int64_t *numel) {
    int i = hs_safetensors_find(f->st, name);
    if (i < 0)
        return NULL;
    const hs_tensor *t = hs_safetensors_tensor(f->st, i);
    if (t->dtype != HS_DTYPE_F32 && t->dtype != HS_DTYPE_I64)
        return NULL;
    int64_t n = hs_tensor_numel(t);
    float *out = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!out)
        return NULL;
    for (int64_t k = 0; k < n; k++)
        out[k] = (float)hs_tensor_get_flat(t, k);
    for (int d = 0; shape && d < t->ndim; d++)
        shape[d] = t->shape[d];
    if (ndim)
        *ndim = t->ndim;
    if (numel)
        *numel = n;
    return out;
}

// Number `key` of the params metadata; true/false read as 1/0; dflt when absent.
static inline double ref_param(const ref_file *f, const char *key, double dflt) {
    return hs_test_ref_param(f->st, key, 0, dflt);
}

// Calls fn(case_name, ctx) for every <prefix>*.safetensors of ref_dir() (sorted); returns the count.
static inline int ref_each_case(const char *prefix, void (*fn)(const char *name, void *ctx), void *ctx) {
    DIR *d = opendir(ref_dir());
    if (!d)
        return 0;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t L = strlen(e->d_name), S = strlen(".safetensors");
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && L > S && strcmp(e->d_name + L - S, ".safetensors") == 0) {
            names[n] = malloc(L - S + 1);
            memcpy(names[n], e->d_name, L - S);
            names[n][L - S] = 0;
            n++;
        }
    }
    closedir(d);
    for (int i = 1; i < n; i++)   // insertion sort: a stable order for the log
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        fn(names[i], ctx);
        free(names[i]);
    }
    return n;
}

#endif
