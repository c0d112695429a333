// core/safetensors.c: safetensors reader/writer. The header is parsed with cJSON (the only core
// file that includes it) and validated completely -- dtypes, shapes, offsets against the real
// size of the data -- before any tensor is allocated, so a hostile file cannot make us allocate
// more than its own size or read outside it. Offsets must tile the data buffer exactly (no
// overlaps, no gaps, nothing trailing), as the reference Rust implementation requires.
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "sys.h"

#define MAX_EXACT_INT 9007199254740992.0  // 2^53: JSON numbers above this lose integer precision

typedef struct {
    char *name;
    hs_tensor *t;
} entry;

struct hs_safetensors {
    int n;
    entry *e;  // sorted by name
    int nmeta;
    char **keys, **values;
};

// Where the data buffer comes from: memory, or a file descriptor at a base offset.
typedef struct {
    const unsigned char *mem;
    int fd;
    uint64_t base;
} source;

// What the header says about one tensor, before anything is allocated.
typedef struct {
    const char *name;  // points into the cJSON tree
    hs_dtype dtype;
    int ndim;
    int64_t shape[HS_MAX_DIMS];
    uint64_t begin, end;
} spec;

static int host_is_little(void) {
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static void swap_bytes(void *data, size_t count, size_t size) {
    unsigned char *p = data;
    for (size_t i = 0; i < count; i++, p += size)
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            unsigned char t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = hs_alloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static uint64_t read_u64le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void hs_safetensors_free(hs_safetensors *st) {
    if (!st)
        return;
    for (int i = 0; i < st->n; i++) {
        hs_free(st->e[i].name);
        hs_tensor_free(st->e[i].t);
    }
    for (int i = 0; i < st->nmeta; i++) {
        hs_free(st->keys[i]);
        hs_free(st->values[i]);
    }
    hs_free(st->e);
    hs_free(st->keys);
    hs_free(st->values);
    hs_free(st);
}

// ---- header validation ----

// A JSON number that is an integer in [0, 2^53].
static int get_uint(const cJSON *j, uint64_t *v) {
    if (!cJSON_IsNumber(j))
        return 0;
    double d = j->valuedouble;
    if (!(d >= 0 && d <= MAX_EXACT_INT) || d != (double)(uint64_t)d)
        return 0;
    *v = (uint64_t)d;
    return 1;
}

static hs_status check_spec(spec *s, const cJSON *item, uint64_t data_len, const char *label) {
    const char *nm = item->string;
    s->name = nm;
    if (!cJSON_IsObject(item))
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': tensor '%s': header entry is not an object", label, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!dt)
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': tensor '%s': no dtype", label, nm);
    if (!cJSON_IsString(dt))
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': tensor '%s': dtype is not a string", label, nm);
    int found = 0;
    for (int i = 0; i < HS_DTYPE_COUNT && !found; i++)
        if (strcmp(dt->valuestring, hs_dtype_name((hs_dtype)i)) == 0) {
            s->dtype = (hs_dtype)i;
            found = 1;
        }
    if (!found)
        return HS_FAIL(HS_ERR_FORMAT,
                       "safetensors '%s': tensor '%s': dtype '%.32s' not supported (F32, F64, I64, I32, U8, U16)",
                       label, nm, dt->valuestring);
    if (!cJSON_IsArray(sh))
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': tensor '%s': shape missing or not an array", label, nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > HS_MAX_DIMS)
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': tensor '%s': %d dims, at most %d supported", label, nm,
                       nd, HS_MAX_DIMS);
    s->ndim = nd;
    // numel saturates at UINT64_MAX; anything that large fails the byte-size test below anyway
    uint64_t numel = 1;
    const cJSON *d;
    int k = 0;
    cJSON_ArrayForEach(d, sh) {
        uint64_t v;
        if (!get_uint(d, &v))
            return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': tensor '%s': shape entry %d is not a non-negative integer",
                           label, nm, k);
        s->shape[k++] = (int64_t)v;
        if (v != 0 && numel > UINT64_MAX / v)
            numel = UINT64_MAX;
        else
            numel *= v;
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !get_uint(cJSON_GetArrayItem(off, 0), &s->begin) ||
        !get_uint(cJSON_GetArrayItem(off, 1), &s->end))
        return HS_FAIL(HS_ERR_FORMAT,
                       "safetensors '%s': tensor '%s': data_offsets missing or not two non-negative integers", label,
                       nm);
    if (s->end < s->begin)
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin",
                       label, nm, s->begin, s->end);
    if (s->end > data_len)
        return HS_FAIL(HS_ERR_FORMAT,
                       "safetensors '%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] out of range: the data buffer "
                       "has %" PRIu64 " bytes (truncated file?)",
                       label, nm, s->begin, s->end, data_len);
    size_t esize = hs_dtype_size(s->dtype);
    uint64_t want = numel > UINT64_MAX / esize ? UINT64_MAX : numel * esize;
    if (s->end - s->begin != want) {
        char b[160];
        return HS_FAIL(HS_ERR_FORMAT,
                       "safetensors '%s': tensor '%s': data_offsets span %" PRIu64 " bytes, but %s %s needs %" PRIu64,
                       label, nm, s->end - s->begin, dt->valuestring, hs_shape_str(nd, s->shape, b, sizeof b), want);
    }
    return HS_OK;
}

static int cmp_spec_name(const void *a, const void *b) {
    return strcmp(((const spec *)a)->name, ((const spec *)b)->name);
}

static int cmp_spec_offset(const void *a, const void *b) {
    const spec *x = *(spec *const *)a, *y = *(spec *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

// Offsets must tile [0, data_len) exactly.
static hs_status check_tiling(spec *specs, int n, uint64_t data_len, const char *label) {
    hs_status s = HS_OK;
    spec **order = hs_alloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order)
        return HS_FAIL(HS_ERR_NOMEM, "safetensors '%s': out of memory", label);
    for (int i = 0; i < n; i++)
        order[i] = &specs[i];
    qsort(order, (size_t)n, sizeof *order, cmp_spec_offset);
    uint64_t pos = 0;
    const char *prev = NULL;
    for (int i = 0; i < n && s == HS_OK; i++) {
        const spec *p = order[i];
        if (p->begin < pos)
            s = HS_FAIL(HS_ERR_FORMAT,
                        "safetensors '%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor '%s' (which ends at %" PRIu64 ")",
                        label, p->name, p->begin, p->end, prev, pos);
        else if (p->begin > pos)
            s = HS_FAIL(HS_ERR_FORMAT,
                        "safetensors '%s': tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] leave a gap of %" PRIu64 " bytes "
                        "after offset %" PRIu64,
                        label, p->name, p->begin, p->end, p->begin - pos, pos);
        pos = p->end;
        prev = p->name;
    }
    if (s == HS_OK && pos != data_len)
        s = HS_FAIL(HS_ERR_FORMAT,
                    "safetensors '%s': tensors cover %" PRIu64 " bytes but the data buffer has %" PRIu64 " (trailing garbage)",
                    label, pos, data_len);
    hs_free(order);
    return s;
}

static hs_status fill_tensor(hs_tensor *t, const spec *sp, const source *src, const char *label) {
    size_t nbytes = (size_t)(sp->end - sp->begin);
    if (nbytes == 0)
        return HS_OK;
    if (src->mem) {
        memcpy(t->data, src->mem + sp->begin, nbytes);
    } else {
        unsigned char *p = t->data;
        uint64_t at = src->base + sp->begin;
        size_t done = 0;
        while (done < nbytes) {
            size_t want = nbytes - done > ((size_t)1 << 30) ? ((size_t)1 << 30) : nbytes - done;
            ssize_t r = pread(src->fd, p + done, want, (off_t)(at + done));
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return HS_FAIL(HS_ERR_IO, "safetensors '%s': tensor '%s': read failed: %s", label, sp->name,
                               strerror(errno));
            if (r == 0)
                return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': tensor '%s': data truncated (file shrank while reading?)",
                               label, sp->name);
            done += (size_t)r;
        }
    }
    if (!host_is_little())
        swap_bytes(t->data, nbytes / hs_dtype_size(t->dtype), hs_dtype_size(t->dtype));
    return HS_OK;
}

// Parse and validate header bytes (hdr, hlen), then build *out reading tensor bytes from src.
static hs_status load(hs_safetensors **out, const char *hdr, size_t hlen, uint64_t data_len, const source *src,
                      const char *label) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= hdr ? (size_t)(end - hdr) : 0;
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': header is not valid JSON (error near byte %zu of %zu)", label,
                       at, hlen);
    }
    hs_status s = HS_OK;
    spec *specs = NULL;
    hs_safetensors *st = NULL;
    const cJSON *meta = NULL, *item;
    int n = 0;
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            s = HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': unexpected bytes after the JSON header (at byte %zu)", label,
                        (size_t)(p - hdr));
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        s = HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': header is not a JSON object", label);
        goto done;
    }
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (meta) {
                s = HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': duplicate __metadata__", label);
                goto done;
            }
            meta = item;
        } else {
            n++;
        }
    }
    specs = hs_calloc((size_t)(n ? n : 1), sizeof *specs);
    if (!specs) {
        s = HS_FAIL(HS_ERR_NOMEM, "safetensors '%s': out of memory", label);
        goto done;
    }
    int k = 0;
    cJSON_ArrayForEach(item, root) {
        if (item == meta)
            continue;
        if ((s = check_spec(&specs[k++], item, data_len, label)) != HS_OK)
            goto done;
    }
    qsort(specs, (size_t)n, sizeof *specs, cmp_spec_name);
    for (int i = 1; i < n; i++)
        if (strcmp(specs[i].name, specs[i - 1].name) == 0) {
            s = HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': tensor '%s': duplicate name", label, specs[i].name);
            goto done;
        }
    if ((s = check_tiling(specs, n, data_len, label)) != HS_OK)
        goto done;
    int nmeta = 0;
    if (meta) {
        if (!cJSON_IsObject(meta)) {
            s = HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': __metadata__ is not an object", label);
            goto done;
        }
        cJSON_ArrayForEach(item, meta) {
            if (!cJSON_IsString(item)) {
                s = HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': metadata '%s' is not a string", label, item->string);
                goto done;
            }
            nmeta++;
        }
    }
    // everything checked: allocate (bounded by the size of the data) and fill
    st = hs_calloc(1, sizeof *st);
    if (!st || !(st->e = hs_calloc((size_t)(n ? n : 1), sizeof *st->e)) ||
        !(st->keys = hs_calloc((size_t)(nmeta ? nmeta : 1), sizeof *st->keys)) ||
        !(st->values = hs_calloc((size_t)(nmeta ? nmeta : 1), sizeof *st->values))) {
        s = HS_FAIL(HS_ERR_NOMEM, "safetensors '%s': out of memory", label);
        goto done;
    }
    if (meta) {
        cJSON_ArrayForEach(item, meta) {
            int i = st->nmeta;
            st->keys[i] = dup_str(item->string);
            st->values[i] = dup_str(item->valuestring);
            st->nmeta++;
            if (!st->keys[i] || !st->values[i]) {
                s = HS_FAIL(HS_ERR_NOMEM, "safetensors '%s': out of memory", label);
                goto done;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        entry *e = &st->e[i];
        st->n++;
        if (!(e->name = dup_str(specs[i].name))) {
            s = HS_FAIL(HS_ERR_NOMEM, "safetensors '%s': out of memory", label);
            goto done;
        }
        if ((s = hs_tensor_new(&e->t, specs[i].dtype, specs[i].ndim, specs[i].shape)) != HS_OK) {
            char why[sizeof hs_last_error()->msg];  // copied: HS_FAIL overwrites that slot
            memcpy(why, hs_last_error()->msg, sizeof why);
            s = HS_FAIL(s, "safetensors '%s': tensor '%s': %s", label, specs[i].name, why);
            goto done;
        }
        if ((s = fill_tensor(e->t, &specs[i], src, label)) != HS_OK)
            goto done;
    }
done:
    if (s != HS_OK) {
        hs_safetensors_free(st);
        st = NULL;
    }
    hs_free(specs);
    cJSON_Delete(root);
    *out = st;
    return s;
}

hs_status hs_safetensors_parse(hs_safetensors **out, const void *buf, size_t n, const char *label) {
    *out = NULL;
    const unsigned char *p = buf;
    if (!label)
        label = "<buffer>";
    if (n < 8)
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': %zu bytes, too short for the 8-byte header length", label, n);
    uint64_t hlen = read_u64le(p);
    if (hlen > HS_SAFETENSORS_MAX_HEADER)
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': header length %" PRIu64 " is absurd (limit %u)", label, hlen,
                       HS_SAFETENSORS_MAX_HEADER);
    if (hlen > n - 8)
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': header length %" PRIu64 " exceeds the %zu bytes available (truncated?)",
                       label, hlen, n - 8);
    source src = {p + 8 + hlen, -1, 0};
    return load(out, (const char *)p + 8, (size_t)hlen, (uint64_t)(n - 8 - hlen), &src, label);
}

static hs_status read_all(int fd, void *buf, size_t n, uint64_t at) {
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(at + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? HS_ERR_IO : HS_ERR_FORMAT;
        done += (size_t)r;
    }
    return HS_OK;
}

hs_status hs_safetensors_read(hs_safetensors **out, const char *path) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return HS_FAIL(HS_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return HS_FAIL(HS_ERR_IO, "cannot read '%s': not a regular file", path);
    }
    uint64_t size = (uint64_t)sb.st_size;
    unsigned char lenbuf[8];
    hs_status s;
    if (size < 8 || read_all(fd, lenbuf, 8, 0) != HS_OK) {
        close(fd);
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': %" PRIu64 " bytes, too short for the 8-byte header length",
                       path, size);
    }
    uint64_t hlen = read_u64le(lenbuf);
    if (hlen > HS_SAFETENSORS_MAX_HEADER) {
        close(fd);
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': header length %" PRIu64 " is absurd (limit %u)", path, hlen,
                       HS_SAFETENSORS_MAX_HEADER);
    }
    if (hlen > size - 8) {
        close(fd);
        return HS_FAIL(HS_ERR_FORMAT, "safetensors '%s': header length %" PRIu64 " exceeds the file size %" PRIu64 " (truncated?)",
                       path, hlen, size);
    }
    char *hdr = hs_alloc((size_t)hlen + 1);
    if (!hdr) {
        close(fd);
        return HS_FAIL(HS_ERR_NOMEM, "safetensors '%s': out of memory for a %" PRIu64 "-byte header", path, hlen);
    }
    s = read_all(fd, hdr, (size_t)hlen, 8);
    if (s != HS_OK) {
        hs_free(hdr);
        close(fd);
        return HS_FAIL(s, "safetensors '%s': cannot read the header: %s", path,
                       s == HS_ERR_IO ? strerror(errno) : "file shrank while reading");
    }
    hdr[hlen] = '\0';
    source src = {NULL, fd, 8 + hlen};
    s = load(out, hdr, (size_t)hlen, size - 8 - hlen, &src, path);
    hs_free(hdr);
    close(fd);
    return s;
}

// ---- accessors ----

int hs_safetensors_count(const hs_safetensors *st) { return st->n; }

const char *hs_safetensors_name(const hs_safetensors *st, int i) {
    return i >= 0 && i < st->n ? st->e[i].name : NULL;
}

const hs_tensor *hs_safetensors_tensor(const hs_safetensors *st, int i) {
    return i >= 0 && i < st->n ? st->e[i].t : NULL;
}

int hs_safetensors_find(const hs_safetensors *st, const char *name) {
    int lo = 0, hi = st->n - 1;  // names are sorted
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->e[mid].name, name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

hs_tensor *hs_safetensors_take(hs_safetensors *st, int i) {
    if (i < 0 || i >= st->n)
        return NULL;
    hs_tensor *t = st->e[i].t;
    st->e[i].t = NULL;
    return t;
}

int hs_safetensors_meta_count(const hs_safetensors *st) { return st->nmeta; }

const char *hs_safetensors_meta_key(const hs_safetensors *st, int i) {
    return i >= 0 && i < st->nmeta ? st->keys[i] : NULL;
}

const char *hs_safetensors_meta_value(const hs_safetensors *st, int i) {
    return i >= 0 && i < st->nmeta ? st->values[i] : NULL;
}

const char *hs_safetensors_meta_get(const hs_safetensors *st, const char *key) {
    for (int i = 0; i < st->nmeta; i++)
        if (strcmp(st->keys[i], key) == 0)
            return st->values[i];
    return NULL;
}

// ---- writing ----

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 1024) + n;
        char *q = hs_alloc(cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        if (b->len)
            memcpy(q, b->p, b->len);
        hs_free(b->p);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

// A JSON string literal; bytes >= 0x80 pass through (names are expected to be UTF-8).
static void sb_json_string(strbuf *b, const char *s) {
    sb_add(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_add(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_add(b, esc, 6);
        } else {
            sb_add(b, (const char *)s, 1);
        }
    }
    sb_add(b, "\"", 1);
}

typedef struct {
    const char *name;
    const hs_tensor *t;
} named;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

static hs_status write_tensor(hs_sys_atomic *a, const hs_tensor *t) {
    size_t nbytes = hs_tensor_nbytes(t);
    if (nbytes == 0)
        return HS_OK;
    if (hs_tensor_is_contiguous(t) && host_is_little())
        return hs_sys_atomic_write(a, t->data, nbytes);
    hs_tensor *c;  // strided or big-endian host: write a contiguous little-endian copy
    HS_TRY(hs_tensor_clone(&c, t));
    if (!host_is_little())
        swap_bytes(c->data, nbytes / hs_dtype_size(c->dtype), hs_dtype_size(c->dtype));
    hs_status s = hs_sys_atomic_write(a, c->data, nbytes);
    hs_tensor_free(c);
    return s;
}

hs_status hs_safetensors_write(const char *path, int n, const char *const *names,
                               const hs_tensor *const *tensors, int nmeta, const char *const *keys,
                               const char *const *values) {
    if (!path || n < 0 || nmeta < 0 || (n > 0 && (!names || !tensors)) || (nmeta > 0 && (!keys || !values)))
        return HS_FAIL(HS_ERR_ARG, "safetensors write: bad arguments (NULL path/arrays or negative counts)");
    for (int i = 0; i < n; i++) {
        if (!names[i] || !tensors[i])
            return HS_FAIL(HS_ERR_ARG, "safetensors write '%s': tensor %d has a NULL name or tensor", path, i);
        if (strcmp(names[i], "__metadata__") == 0)
            return HS_FAIL(HS_ERR_ARG, "safetensors write '%s': '__metadata__' cannot name a tensor", path);
        if ((unsigned)tensors[i]->dtype >= HS_DTYPE_COUNT)
            return HS_FAIL(HS_ERR_ARG, "safetensors write '%s': tensor '%s' has a bad dtype", path, names[i]);
    }
    for (int i = 0; i < nmeta; i++) {
        if (!keys[i] || !values[i])
            return HS_FAIL(HS_ERR_ARG, "safetensors write '%s': metadata %d has a NULL key or value", path, i);
        for (int j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                return HS_FAIL(HS_ERR_ARG, "safetensors write '%s': duplicate metadata key '%s'", path, keys[i]);
    }
    named *order = hs_alloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order)
        return HS_FAIL(HS_ERR_NOMEM, "safetensors write '%s': out of memory", path);
    for (int i = 0; i < n; i++)
        order[i] = (named){names[i], tensors[i]};
    qsort(order, (size_t)n, sizeof *order, cmp_named);
    for (int i = 1; i < n; i++)
        if (strcmp(order[i].name, order[i - 1].name) == 0) {
            hs_status s = HS_FAIL(HS_ERR_ARG, "safetensors write '%s': duplicate tensor name '%s'", path, order[i].name);
            hs_free(order);
            return s;
        }

    // header, in the layout of the Python writer: metadata first, then tensors by name
    strbuf h = {0};
    sb_str(&h, "{");
    if (nmeta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i)
                sb_str(&h, ",");
            sb_json_string(&h, keys[i]);
            sb_str(&h, ":");
            sb_json_string(&h, values[i]);
        }
        sb_str(&h, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const hs_tensor *t = order[i].t;
        char num[64];
        if (i || nmeta > 0)
            sb_str(&h, ",");
        sb_json_string(&h, order[i].name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, hs_dtype_name(t->dtype));
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%" PRId64 : "%" PRId64, t->shape[d]);
            sb_str(&h, num);
        }
        uint64_t nb = hs_tensor_nbytes(t);
        snprintf(num, sizeof num, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + nb);
        sb_str(&h, num);
        off += nb;
    }
    sb_str(&h, "}");
    while (!h.oom && h.len % 8 != 0)
        sb_str(&h, " ");
    if (h.oom) {
        hs_free(h.p);
        hs_free(order);
        return HS_FAIL(HS_ERR_NOMEM, "safetensors write '%s': out of memory for the header", path);
    }

    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    hs_sys_atomic a;
    hs_status s = hs_sys_atomic_open(&a, path);
    if (s == HS_OK)
        s = hs_sys_atomic_write(&a, lenbuf, 8);
    if (s == HS_OK)
        s = hs_sys_atomic_write(&a, h.p, h.len);
    for (int i = 0; i < n && s == HS_OK; i++)
        s = write_tensor(&a, order[i].t);
    if (s == HS_OK)
        s = hs_sys_atomic_commit(&a);
    else
        hs_sys_atomic_abort(&a);
    hs_free(h.p);
    hs_free(order);
    return s;
}
