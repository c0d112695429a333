// core/metrics.c: the Prometheus metric registry of metrics.h. One mutex guards the whole
// registry: updates are a handful of adds, and a scrape renders a few kilobytes, so contention
// is negligible next to an inference. Not a general key-value store.
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

typedef struct {
    char *labels;      // formatted label string (may be "")
    double value;      // counter/gauge value; histogram sum
    double count;      // histogram observation count
    double *buckets;   // histogram: per-bucket (non-cumulative) counts, nbuckets + 1 (+Inf)
} series;

typedef struct {
    char *name, *help;
    hs_metric_type type;
    double bounds[HS_METRICS_MAX_BUCKETS];
    int nbuckets;
    series *s;
    int ns, cap;
} family;

struct hs_metrics {
    pthread_mutex_t mu;
    family *f;
    int nf, cap;
};

static char *dup_str(const char *s) {
    size_t n = strlen(s);
    char *d = hs_alloc(n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

static int valid_name(const char *s, int colon_ok) {
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':') ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

hs_status hs_metrics_new(hs_metrics **out) {
    *out = NULL;
    hs_metrics *m = hs_calloc(1, sizeof *m);
    if (!m)
        return HS_FAIL(HS_ERR_NOMEM, "metrics: out of memory");
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        hs_free(m);
        return HS_FAIL(HS_ERR_NOMEM, "metrics: cannot create mutex");
    }
    *out = m;
    return HS_OK;
}

static void free_series(series *s) {
    hs_free(s->labels);
    hs_free(s->buckets);
}

void hs_metrics_free(hs_metrics *m) {
    if (!m)
        return;
    for (int i = 0; i < m->nf; i++) {
        for (int j = 0; j < m->f[i].ns; j++)
            free_series(&m->f[i].s[j]);
        hs_free(m->f[i].s);
        hs_free(m->f[i].name);
        hs_free(m->f[i].help);
    }
    hs_free(m->f);
    pthread_mutex_destroy(&m->mu);
    hs_free(m);
}

static family *find_family(const hs_metrics *m, const char *name) {
    for (int i = 0; i < m->nf; i++)
        if (strcmp(m->f[i].name, name) == 0)
            return &m->f[i];
    return NULL;
}

hs_status hs_metrics_define(hs_metrics *m, const char *name, hs_metric_type type, const char *help,
                            const double *buckets, int nbuckets) {
    if (!valid_name(name, 1))
        return HS_FAIL(HS_ERR_ARG, "metrics: invalid metric name '%s'", name ? name : "(null)");
    if (type != HS_METRIC_COUNTER && type != HS_METRIC_GAUGE && type != HS_METRIC_HISTOGRAM)
        return HS_FAIL(HS_ERR_ARG, "metrics: %s: unknown type %d", name, (int)type);
    if (type == HS_METRIC_HISTOGRAM) {
        if (!buckets || nbuckets < 1 || nbuckets > HS_METRICS_MAX_BUCKETS)
            return HS_FAIL(HS_ERR_ARG, "metrics: %s: histogram needs 1..%d buckets, got %d", name,
                           HS_METRICS_MAX_BUCKETS, nbuckets);
        for (int i = 0; i < nbuckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
                return HS_FAIL(HS_ERR_ARG, "metrics: %s: bucket bounds must be finite and increasing", name);
    }
    hs_status st = HS_OK;
    pthread_mutex_lock(&m->mu);
    family *f = find_family(m, name);
    if (f) {
        if (f->type != type)
            st = HS_FAIL(HS_ERR_ARG, "metrics: %s already defined with another type", name);
        pthread_mutex_unlock(&m->mu);
        return st;
    }
    if (m->nf == m->cap) {
        int cap = m->cap ? 2 * m->cap : 16;
        family *nf = hs_calloc((size_t)cap, sizeof *nf);
        if (!nf) {
            pthread_mutex_unlock(&m->mu);
            return HS_FAIL(HS_ERR_NOMEM, "metrics: out of memory");
        }
        if (m->nf)
            memcpy(nf, m->f, (size_t)m->nf * sizeof *nf);
        hs_free(m->f);
        m->f = nf;
        m->cap = cap;
    }
    f = &m->f[m->nf];
    memset(f, 0, sizeof *f);
    f->name = dup_str(name);
    f->help = dup_str(help ? help : "");
    if (!f->name || !f->help) {
        hs_free(f->name);
        hs_free(f->help);
        pthread_mutex_unlock(&m->mu);
        return HS_FAIL(HS_ERR_NOMEM, "metrics: out of memory");
    }
    f->type = type;
    if (type == HS_METRIC_HISTOGRAM) {
        memcpy(f->bounds, buckets, (size_t)nbuckets * sizeof *buckets);
        f->nbuckets = nbuckets;
    }
    m->nf++;
    pthread_mutex_unlock(&m->mu);
    return HS_OK;
}

// The series of f with these labels, created when absent. Called with the mutex held.
static series *get_series(family *f, const char *labels) {
    if (!labels)
        labels = "";
    for (int i = 0; i < f->ns; i++)
        if (strcmp(f->s[i].labels, labels) == 0)
            return &f->s[i];
    if (f->ns == f->cap) {
        int cap = f->cap ? 2 * f->cap : 8;
        series *ns = hs_calloc((size_t)cap, sizeof *ns);
        if (!ns)
            return NULL;
        if (f->ns)
            memcpy(ns, f->s, (size_t)f->ns * sizeof *ns);
        hs_free(f->s);
        f->s = ns;
        f->cap = cap;
    }
    series *s = &f->s[f->ns];
    memset(s, 0, sizeof *s);
    s->labels = dup_str(labels);
    if (!s->labels)
        return NULL;
    if (f->type == HS_METRIC_HISTOGRAM) {
        s->buckets = hs_calloc((size_t)f->nbuckets + 1, sizeof *s->buckets);
        if (!s->buckets) {
            hs_free(s->labels);
            return NULL;
        }
    }
    f->ns++;
    return s;
}

// Look up family + series for an update of the given kind; returns the series with the mutex
// held, or NULL with the mutex released and the error recorded in *st.
static series *lock_series(hs_metrics *m, const char *name, const char *labels, int want_hist, int gauge_only,
                           hs_status *st, family **fam) {
    pthread_mutex_lock(&m->mu);
    family *f = find_family(m, name);
    if (!f) {
        pthread_mutex_unlock(&m->mu);
        *st = HS_FAIL(HS_ERR_ARG, "metrics: '%s' is not defined", name ? name : "(null)");
        return NULL;
    }
    if ((f->type == HS_METRIC_HISTOGRAM) != want_hist || (gauge_only && f->type != HS_METRIC_GAUGE)) {
        pthread_mutex_unlock(&m->mu);
        *st = HS_FAIL(HS_ERR_ARG, "metrics: '%s' has the wrong type for this update", name);
        return NULL;
    }
    series *s = get_series(f, labels);
    if (!s) {
        pthread_mutex_unlock(&m->mu);
        *st = HS_FAIL(HS_ERR_NOMEM, "metrics: out of memory");
        return NULL;
    }
    *fam = f;
    return s;
}

hs_status hs_metrics_add(hs_metrics *m, const char *name, const char *labels, double v) {
    hs_status st = HS_OK;
    family *f;
    series *s = lock_series(m, name, labels, 0, 0, &st, &f);
    if (!s)
        return st;
    if (f->type == HS_METRIC_COUNTER && !(v >= 0)) {
        pthread_mutex_unlock(&m->mu);
        return HS_FAIL(HS_ERR_ARG, "metrics: counter %s cannot decrease (add %g)", name, v);
    }
    s->value += v;
    pthread_mutex_unlock(&m->mu);
    return HS_OK;
}

hs_status hs_metrics_set(hs_metrics *m, const char *name, const char *labels, double v) {
    hs_status st = HS_OK;
    family *f;
    series *s = lock_series(m, name, labels, 0, 1, &st, &f);
    if (!s)
        return st;
    s->value = v;
    pthread_mutex_unlock(&m->mu);
    return HS_OK;
}

hs_status hs_metrics_observe(hs_metrics *m, const char *name, const char *labels, double v) {
    if (isnan(v))
        return HS_OK;
    hs_status st = HS_OK;
    family *f;
    series *s = lock_series(m, name, labels, 1, 0, &st, &f);
    if (!s)
        return st;
    int b = 0;
    while (b < f->nbuckets && v > f->bounds[b])
        b++;
    s->buckets[b] += 1;
    s->count += 1;
    s->value += v;
    pthread_mutex_unlock(&m->mu);
    return HS_OK;
}

hs_status hs_metrics_get(const hs_metrics *m, const char *name, const char *labels, double *v) {
    hs_metrics *mm = (hs_metrics *)m;  // the mutex is the only mutable part
    *v = 0;
    pthread_mutex_lock(&mm->mu);
    family *f = find_family(m, name);
    if (!f) {
        pthread_mutex_unlock(&mm->mu);
        return HS_FAIL(HS_ERR_ARG, "metrics: '%s' is not defined", name ? name : "(null)");
    }
    for (int i = 0; i < f->ns; i++)
        if (strcmp(f->s[i].labels, labels ? labels : "") == 0)
            *v = f->type == HS_METRIC_HISTOGRAM ? f->s[i].count : f->s[i].value;
    pthread_mutex_unlock(&mm->mu);
    return HS_OK;
}

hs_status hs_metrics_clear(hs_metrics *m, const char *name) {
    pthread_mutex_lock(&m->mu);
    family *f = find_family(m, name);
    if (!f || f->type != HS_METRIC_GAUGE) {
        pthread_mutex_unlock(&m->mu);
        return HS_FAIL(HS_ERR_ARG, "metrics: '%s' is not a defined gauge", name ? name : "(null)");
    }
    for (int i = 0; i < f->ns; i++)
        free_series(&f->s[i]);
    f->ns = 0;
    pthread_mutex_unlock(&m->mu);
    return HS_OK;
}

// ---------------------------------------------------------------- rendering

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)k < b->cap - b->len) {
            b->len += (size_t)k;
            return;
        }
        size_t cap = 2 * b->cap + (size_t)k + 1;
        char *np = hs_alloc(cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        memcpy(np, b->p, b->len);
        hs_free(b->p);
        b->p = np;
        b->cap = cap;
    }
}

// A sample value as Prometheus reads it: integers without exponent, +Inf/-Inf/NaN spelled out.
static void fmt_value(char *buf, size_t n, double v) {
    if (isnan(v))
        snprintf(buf, n, "NaN");
    else if (isinf(v))
        snprintf(buf, n, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%.17g", v);
}

// HELP text escapes backslash and newline (exposition format 0.0.4).
static void sb_help(sbuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\')
            sb_printf(b, "\\\\");
        else if (*s == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *s);
    }
}

hs_status hs_metrics_render(const hs_metrics *m, char **text, size_t *n) {
    hs_metrics *mm = (hs_metrics *)m;
    *text = NULL;
    *n = 0;
    sbuf b = {hs_alloc(4096), 0, 4096, 0};
    if (!b.p)
        return HS_FAIL(HS_ERR_NOMEM, "metrics: out of memory");
    b.p[0] = 0;
    char v1[64], v2[64];
    pthread_mutex_lock(&mm->mu);
    for (int i = 0; i < m->nf; i++) {
        const family *f = &m->f[i];
        static const char *types[] = {"counter", "gauge", "histogram"};
        sb_printf(&b, "# HELP %s ", f->name);
        sb_help(&b, f->help);
        sb_printf(&b, "\n# TYPE %s %s\n", f->name, types[f->type]);
        for (int j = 0; j < f->ns; j++) {
            const series *s = &f->s[j];
            int has = s->labels[0] != 0;
            if (f->type != HS_METRIC_HISTOGRAM) {
                fmt_value(v1, sizeof v1, s->value);
                sb_printf(&b, "%s%s%s%s %s\n", f->name, has ? "{" : "", s->labels, has ? "}" : "", v1);
                continue;
            }
            double cum = 0;
            for (int k = 0; k <= f->nbuckets; k++) {
                cum += s->buckets[k];
                if (k < f->nbuckets)
                    snprintf(v2, sizeof v2, "%.10g", f->bounds[k]);
                else
                    snprintf(v2, sizeof v2, "+Inf");
                fmt_value(v1, sizeof v1, cum);
                sb_printf(&b, "%s_bucket{%s%sle=\"%s\"} %s\n", f->name, s->labels, has ? "," : "", v2, v1);
            }
            fmt_value(v1, sizeof v1, s->value);
            sb_printf(&b, "%s_sum%s%s%s %s\n", f->name, has ? "{" : "", s->labels, has ? "}" : "", v1);
            fmt_value(v1, sizeof v1, s->count);
            sb_printf(&b, "%s_count%s%s%s %s\n", f->name, has ? "{" : "", s->labels, has ? "}" : "", v1);
        }
    }
    pthread_mutex_unlock(&mm->mu);
    if (b.failed) {
        hs_free(b.p);
        return HS_FAIL(HS_ERR_NOMEM, "metrics: out of memory while rendering");
    }
    *text = b.p;
    *n = b.len;
    return HS_OK;
}

hs_status hs_metrics_labels(char *buf, size_t n, const char *const *kv, int npairs) {
    if (!buf || n == 0)
        return HS_FAIL(HS_ERR_ARG, "metrics: no label buffer");
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < npairs; i++) {
        const char *k = kv[2 * i], *v = kv[2 * i + 1] ? kv[2 * i + 1] : "";
        if (!valid_name(k, 0))
            return HS_FAIL(HS_ERR_ARG, "metrics: invalid label name '%s'", k ? k : "(null)");
        size_t need = strlen(k) + 4;  // k=" + " (+ comma)
        for (const char *p = v; *p; p++)
            need += (*p == '\\' || *p == '"' || *p == '\n') ? 2 : 1;
        if (len + need + 1 > n)
            return HS_FAIL(HS_ERR_ARG, "metrics: labels do not fit in %zu bytes", n);
        if (i > 0)
            buf[len++] = ',';
        size_t kl = strlen(k);
        memcpy(buf + len, k, kl);
        len += kl;
        buf[len++] = '=';
        buf[len++] = '"';
        for (const char *p = v; *p; p++) {
            if (*p == '\\' || *p == '"') {
                buf[len++] = '\\';
                buf[len++] = *p;
            } else if (*p == '\n') {
                buf[len++] = '\\';
                buf[len++] = 'n';
            } else {
                buf[len++] = *p;
            }
        }
        buf[len++] = '"';
        buf[len] = 0;
    }
    return HS_OK;
}
