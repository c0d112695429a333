// core/metrics.h: a small thread-safe registry of Prometheus metrics (counters, gauges,
// histograms with fixed buckets), rendered in the text exposition format 0.0.4. Used by the
// inference server (httpd.h) but knows nothing of HTTP. Not a time-series store: values only
// grow (counters, histograms) or are overwritten (gauges) until the registry is freed.
//
// A metric family is defined once by name; each series of a family is identified by its label
// string, already formatted as Prometheus expects between the braces (`route="/v1/predict",
// status="200"`, or "" for none). hs_metrics_labels() builds such strings with escaping.
#ifndef HS_METRICS_H
#define HS_METRICS_H

#include <stddef.h>

#include "status.h"

#define HS_METRICS_MAX_BUCKETS 32      // per histogram, +Inf not counted
#define HS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum { HS_METRIC_COUNTER = 0, HS_METRIC_GAUGE, HS_METRIC_HISTOGRAM } hs_metric_type;

typedef struct hs_metrics hs_metrics;

hs_status hs_metrics_new(hs_metrics **out);
void hs_metrics_free(hs_metrics *m);  // NULL is a no-op

// Define a family. name: [a-zA-Z_:][a-zA-Z0-9_:]*; help: one line. Histograms need 1..32
// strictly increasing finite upper bounds (the +Inf bucket is implicit); others pass NULL, 0.
// Defining an existing name again with the same type is a no-op (HS_OK); with another type it
// is HS_ERR_ARG.
hs_status hs_metrics_define(hs_metrics *m, const char *name, hs_metric_type type, const char *help,
                            const double *buckets, int nbuckets);
// Counter: value += v (v >= 0, else HS_ERR_ARG). Gauge: value += v. Creates the series at 0
// first. HS_ERR_ARG for an undefined name or a histogram.
hs_status hs_metrics_add(hs_metrics *m, const char *name, const char *labels, double v);
// Gauge only: value = v.
hs_status hs_metrics_set(hs_metrics *m, const char *name, const char *labels, double v);
// Histogram only: count += 1, sum += v, every bucket with v <= bound += 1. NaN is ignored.
hs_status hs_metrics_observe(hs_metrics *m, const char *name, const char *labels, double v);
// Current value of a counter/gauge series (0 when the series does not exist), or a
// histogram's count. HS_ERR_ARG for an undefined name.
hs_status hs_metrics_get(const hs_metrics *m, const char *name, const char *labels, double *v);
// Remove every series of a gauge family (e.g. a model-info gauge when the model changes).
hs_status hs_metrics_clear(hs_metrics *m, const char *name);

// The whole registry in the text exposition format (families in definition order, series in
// creation order; HELP and TYPE lines; histograms as _bucket{le=...} cumulative, _sum, _count).
// *text: hs_alloc'd, NUL-terminated, *n bytes without the NUL; the caller hs_free()s it.
hs_status hs_metrics_render(const hs_metrics *m, char **text, size_t *n);

// Format npairs label pairs (kv[2i] = name, kv[2i+1] = value) into buf as `a="x",b="y"`,
// escaping backslash, double quote and newline in values. HS_ERR_ARG when it does not fit or a
// name is not a valid label name.
hs_status hs_metrics_labels(char *buf, size_t n, const char *const *kv, int npairs);

#endif
