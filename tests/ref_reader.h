// tests/ref_reader.h: a tiny self-contained reader of the PyTorch reference cases
// (shared/reference/torch/<case>.safetensors) for the C kernel tests: tensors as malloc'd float
// arrays plus shape, and scalar params from the `params` metadata. Header-only (static inline),
// test code only: it trusts the files (written by make_torch_refs.py) and is no safetensors library.
#ifndef HS_REF_READER_H
#define HS_REF_READER_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hs_test.h"

typedef struct {
    char *buf;          // whole file
    size_t len;
    const char *hdr;    // JSON header (NUL-terminated copy)
    char *hdr_copy;
    size_t data_off;    // where the data section starts
} ref_file;

// Directory of the torch cases: $HISTOPS_REFERENCE/torch, else <data dir>/../reference/torch.
static inline const char *ref_dir(void) {
    static char path[1024];
    const char *e = getenv("HISTOPS_REFERENCE");
    if (e && *e)
        snprintf(path, sizeof path, "%s/torch", e);
    else
        snprintf(path, sizeof path, "%s/../reference/torch", hs_test_data_dir());
    return path;
}

// Opens <ref_dir>/<case_name>.safetensors; 0 when missing or malformed.
static inline int ref_open(ref_file *f, const char *case_name) {
    char path[1400];
    memset(f, 0, sizeof *f);
    snprintf(path, sizeof path, "%s/%s.safetensors", ref_dir(), case_name);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (n < 8) {
        fclose(fp);
        return 0;
    }
    f->buf = malloc((size_t)n);
    f->len = (size_t)n;
    if (!f->buf || fread(f->buf, 1, f->len, fp) != f->len) {
        fclose(fp);
        free(f->buf);
        f->buf = NULL;
        return 0;
    }
    fclose(fp);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | (unsigned char)f->buf[i];
    if (hl > f->len - 8) {
        free(f->buf);
        f->buf = NULL;
        return 0;
    }
    f->hdr_copy = malloc(hl + 1);
    memcpy(f->hdr_copy, f->buf + 8, hl);
    f->hdr_copy[hl] = 0;
    f->hdr = f->hdr_copy;
    f->data_off = 8 + hl;
    return 1;
}

static inline void ref_close(ref_file *f) {
    free(f->buf);
    free(f->hdr_copy);
    memset(f, 0, sizeof *f);
}

static inline int ref_has(const ref_file *f, const char *name) {
    char key[128];
    snprintf(key, sizeof key, "\"%s\":{\"dtype\":\"", name);
    return strstr(f->hdr, key) != NULL;
}

// Tensor `name` as a malloc'd float array (F32 copied, I64 converted); shape/ndim filled (shape
// may be NULL). NULL when absent. *numel receives the element count when numel != NULL.
static inline float *ref_tensor(const ref_file *f, const char *name, int64_t *shape, int *ndim, int64_t *numel) {
    char key[128];
    snprintf(key, sizeof key, "\"%s\":{\"dtype\":\"", name);
    const char *p = strstr(f->hdr, key);
    if (!p)
        return NULL;
    p += strlen(key);
    int is_f32 = strncmp(p, "F32", 3) == 0, is_i64 = strncmp(p, "I64", 3) == 0;
    if (!is_f32 && !is_i64)
        return NULL;
    const char *s = strstr(p, "\"shape\":[");
    if (!s)
        return NULL;
    s += strlen("\"shape\":[");
    int nd = 0;
    int64_t count = 1;
    while (*s && *s != ']') {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s)
            break;
        if (shape && nd < 8)
            shape[nd] = v;
        nd++;
        count *= v;
        s = end;
        if (*s == ',')
            s++;
    }
    const char *o = strstr(p, "\"data_offsets\":[");
    if (!o)
        return NULL;
    o += strlen("\"data_offsets\":[");
    char *end;
    unsigned long long a = strtoull(o, &end, 10);
    unsigned long long b = strtoull(end + 1, NULL, 10);
    size_t esz = is_f32 ? 4 : 8;
    if (b < a || f->data_off + b > f->len || (b - a) != (unsigned long long)count * esz)
        return NULL;
    float *out = malloc((size_t)(count > 0 ? count : 1) * sizeof(float));
    const unsigned char *d = (const unsigned char *)f->buf + f->data_off + a;
    for (int64_t i = 0; i < count; i++) {
        if (is_f32) {
            uint32_t u = (uint32_t)d[4 * i] | (uint32_t)d[4 * i + 1] << 8 | (uint32_t)d[4 * i + 2] << 16 |
                         (uint32_t)d[4 * i + 3] << 24;
            memcpy(&out[i], &u, 4);
        } else {
            uint64_t u = 0;
            for (int k = 7; k >= 0; k--)
                u = (u << 8) | d[8 * i + k];
            out[i] = (float)(int64_t)u;
        }
    }
    if (ndim)
        *ndim = nd;
    if (numel)
        *numel = count;
    return out;
}

// Number `key` of the params metadata (a JSON object stored as an escaped string, so keys look
// like \"stride\": 2). true/false read as 1/0; dflt when absent.
static inline double ref_param(const ref_file *f, const char *key, double dflt) {
    const char *pm = strstr(f->hdr, "\"params\":\"");
    if (!pm)
        return dflt;
    char k[128];
    snprintf(k, sizeof k, "\\\"%s\\\":", key);
    const char *p = strstr(pm, k);
    if (!p)
        return dflt;
    p += strlen(k);
    while (*p == ' ')
        p++;
    if (strncmp(p, "true", 4) == 0)
        return 1;
    if (strncmp(p, "false", 5) == 0)
        return 0;
    char *end;
    double v = strtod(p, &end);
    return end == p ? dflt : v;
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
