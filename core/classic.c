// core/classic.c: standardisation, logistic regression (L-BFGS), linear SVM (liblinear's dual
// coordinate descent for the squared hinge) and RBF SVM (libsvm's SMO), see classic.h.
// Dimension letters: N samples, F features, K classes, S support vectors, P class pairs.
// All solver arithmetic is in double; features are kept as standardised floats (N,F).
// Determinism: each class (linear SVM) or class pair (RBF SVM) is one independent task with its
// own random stream, and logistic-regression sums are per fixed 256-sample chunk, added in order.
#include "classic.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "parallel.h"
#include "rng.h"

#define RBF_MAX_N 10000
#define LBFGS_M 10
#define LR_CHUNK 256
#define SMO_TAU 1e-12

static const char *const kind_names[HS_CLASSIC_KIND_COUNT] = {"logreg", "linear_svm", "rbf_svm"};

void hs_classic_params_default(hs_classic_params *p, hs_classic_kind kind) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->C = 1.0;
    p->gamma = 0.0;  // "scale"
    p->standardize = 1;
    p->seed = 1;
    p->tol = kind == HS_CLASSIC_LOGREG ? 1e-6 : kind == HS_CLASSIC_LINEAR_SVM ? 1e-4 : 1e-3;
    p->max_iter = 0;  // kind default, resolved in fit (rbf depends on N)
}

hs_status hs_classic_kind_from_name(hs_classic_kind *kind, const char *name) {
    for (int k = 0; k < HS_CLASSIC_KIND_COUNT; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (hs_classic_kind)k;
            return HS_OK;
        }
    return HS_FAIL(HS_ERR_ARG, "classic: unknown classifier '%s' (known: logreg, linear_svm, rbf_svm)", name);
}

const char *hs_classic_kind_name(hs_classic_kind kind) {
    return (unsigned)kind < HS_CLASSIC_KIND_COUNT ? kind_names[kind] : "?";
}

// ---- model allocation ----

static void *alloc_zero(size_t n, size_t size, int *fail) {
    if (n == 0)
        return NULL;
    void *p = hs_calloc(n, size);
    if (!p)
        *fail = 1;
    return p;
}

hs_status hs_classic_model_new(hs_classic_model **out, hs_classic_kind kind, int64_t F, int64_t K, int64_t S) {
    *out = NULL;
    if ((unsigned)kind >= HS_CLASSIC_KIND_COUNT)
        return HS_FAIL(HS_ERR_ARG, "classic: bad kind %d", (int)kind);
    if (F < 1 || K < 2 || S < 0 || K > 100000 || F > ((int64_t)1 << 31))
        return HS_FAIL(HS_ERR_ARG, "classic: model needs F >= 1, 2 <= K <= 100000, S >= 0 (got F=%lld, K=%lld, S=%lld)",
                       (long long)F, (long long)K, (long long)S);
    hs_classic_model *m = hs_calloc(1, sizeof *m);
    if (!m)
        return HS_FAIL(HS_ERR_NOMEM, "classic: out of memory");
    int fail = 0;
    m->kind = kind;
    m->n_features = F;
    m->n_classes = K;
    m->mean = alloc_zero((size_t)F, sizeof(float), &fail);
    m->scale = alloc_zero((size_t)F, sizeof(float), &fail);
    if (kind == HS_CLASSIC_RBF_SVM) {
        int64_t P = K * (K - 1) / 2;
        m->n_sv = S;
        m->sv = alloc_zero((size_t)(S * F), sizeof(float), &fail);
        m->coef = alloc_zero((size_t)(P * S), sizeof(float), &fail);
        m->rho = alloc_zero((size_t)P, sizeof(float), &fail);
    } else {
        m->weight = alloc_zero((size_t)(K * F), sizeof(float), &fail);
        m->bias = alloc_zero((size_t)K, sizeof(float), &fail);
    }
    if (fail) {
        hs_classic_model_free(m);
        return HS_FAIL(HS_ERR_NOMEM, "classic: out of memory for a model with F=%lld, K=%lld, S=%lld", (long long)F,
                       (long long)K, (long long)S);
    }
    for (int64_t j = 0; j < F; j++)
        m->scale[j] = 1.0f;
    *out = m;
    return HS_OK;
}

void hs_classic_model_free(hs_classic_model *m) {
    if (!m)
        return;
    hs_free(m->mean);
    hs_free(m->scale);
    hs_free(m->weight);
    hs_free(m->bias);
    hs_free(m->sv);
    hs_free(m->coef);
    hs_free(m->rho);
    hs_free(m);
}

// ---- input checks ----

static hs_status check_X(const hs_tensor *X, const char *op) {
    char b[96];
    if (X->ndim != 2 || X->shape[0] < 1 || X->shape[1] < 1)
        return HS_FAIL(HS_ERR_SHAPE, "%s: X must be (N,F) with N, F >= 1, got %s", op, hs_tensor_shape_str(X, b, sizeof b));
    if (X->dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_DTYPE, "%s: X must be F32, got %s", op, hs_dtype_name(X->dtype));
    const float *d = X->data;
    for (int64_t i = 0; i < X->shape[0]; i++)
        for (int64_t j = 0; j < X->shape[1]; j++)
            if (!isfinite(d[i * X->stride[0] + j * X->stride[1]]))
                return HS_FAIL(HS_ERR_ARG, "%s: X[%lld,%lld] is not finite (%g)", op, (long long)i + 1, (long long)j + 1,
                               (double)d[i * X->stride[0] + j * X->stride[1]]);
    return HS_OK;
}

static inline float x_at(const hs_tensor *X, int64_t i, int64_t j) {
    return ((const float *)X->data)[i * X->stride[0] + j * X->stride[1]];
}

// Standardised contiguous copy of X: (N,F) floats, hs_alloc'ed.
static hs_status standardized_copy(float **out, const hs_tensor *X, const float *mean, const float *scale) {
    int64_t N = X->shape[0], F = X->shape[1];
    float *d = hs_alloc(sizeof *d * (size_t)(N * F));
    *out = d;
    if (!d)
        return HS_FAIL(HS_ERR_NOMEM, "classic: out of memory for a %lldx%lld feature matrix", (long long)N, (long long)F);
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < F; j++)
            d[i * F + j] = (x_at(X, i, j) - mean[j]) * scale[j];
    return HS_OK;
}

hs_status hs_classic_standardize_fit(float *mean, float *scale, const hs_tensor *X) {
    HS_TRY(check_X(X, "standardize"));
    int64_t N = X->shape[0], F = X->shape[1];
    for (int64_t j = 0; j < F; j++) {
        double s = 0;
        for (int64_t i = 0; i < N; i++)
            s += (double)x_at(X, i, j);
        double mu = s / (double)N, v = 0;
        for (int64_t i = 0; i < N; i++) {
            double d = (double)x_at(X, i, j) - mu;
            v += d * d;
        }
        double sd = sqrt(v / (double)N);
        mean[j] = (float)mu;
        // constant columns keep scale 1 (sklearn's _handle_zeros_in_scale)
        scale[j] = sd <= 1e-10 * fmax(1.0, fabs(mu)) ? 1.0f : (float)(1.0 / sd);
    }
    return HS_OK;
}

hs_status hs_classic_standardize_apply(hs_tensor *out, const hs_tensor *X, const float *mean, const float *scale) {
    HS_TRY(check_X(X, "standardize"));
    char a[96], b[96];
    if (!hs_tensor_same_shape(out, X) || out->dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_SHAPE, "standardize: out %s %s, want F32 %s", hs_dtype_name(out->dtype),
                       hs_tensor_shape_str(out, a, sizeof a), hs_tensor_shape_str(X, b, sizeof b));
    float *o = out->data;
    for (int64_t i = 0; i < X->shape[0]; i++)
        for (int64_t j = 0; j < X->shape[1]; j++)
            o[i * out->stride[0] + j * out->stride[1]] = (x_at(X, i, j) - mean[j]) * scale[j];
    return HS_OK;
}

// Labels as int32 (N); K = max + 1; at least two distinct labels.
static hs_status read_labels(int32_t **out, int64_t *K, const hs_tensor *y, int64_t N) {
    char b[96];
    *out = NULL;
    if (y->ndim != 1 || y->shape[0] != N)
        return HS_FAIL(HS_ERR_SHAPE, "classic: y must be (N) = (%lld) labels, got %s", (long long)N,
                       hs_tensor_shape_str(y, b, sizeof b));
    if (y->dtype != HS_DTYPE_I64 && y->dtype != HS_DTYPE_I32)
        return HS_FAIL(HS_ERR_DTYPE, "classic: y must be I64 or I32, got %s", hs_dtype_name(y->dtype));
    int32_t *lab = hs_alloc(sizeof *lab * (size_t)N);
    if (!lab)
        return HS_FAIL(HS_ERR_NOMEM, "classic: out of memory");
    int64_t mx = -1, first = -1;
    int two = 0;
    for (int64_t i = 0; i < N; i++) {
        int64_t v = y->dtype == HS_DTYPE_I64 ? ((const int64_t *)y->data)[i * y->stride[0]]
                                             : ((const int32_t *)y->data)[i * y->stride[0]];
        if (v < 0 || v >= 100000) {
            hs_free(lab);
            return HS_FAIL(HS_ERR_ARG, "classic: label y[%lld] = %lld, need 0..99999", (long long)i + 1, (long long)v);
        }
        lab[i] = (int32_t)v;
        if (v > mx)
            mx = v;
        if (first < 0)
            first = v;
        else if (v != first)
            two = 1;
    }
    if (!two) {
        hs_free(lab);
        return HS_FAIL(HS_ERR_ARG, "classic: y has only one class (label %lld); need at least two", (long long)first);
    }
    *out = lab;
    *K = mx + 1;
    return HS_OK;
}

// ---- logistic regression: mean cross-entropy + |W|^2 / (2 C N), bias not penalised ----
// theta layout: W (K,F) row-major, then b (K).

typedef struct {
    const float *X;  // (N,F) standardised
    const int32_t *y;
    int64_t N, F, K;
    const double *theta;
    double *partial;  // (nchunks, K*(F+1) + 1): gradient then loss, per chunk
} lr_ctx;

static void lr_chunk(void *vctx, int64_t begin, int64_t end) {
    lr_ctx *c = vctx;
    int64_t F = c->F, K = c->K, D = K * (F + 1);
    double *g = c->partial + (begin / LR_CHUNK) * (D + 1);
    memset(g, 0, sizeof *g * (size_t)(D + 1));
    double z[64], *zz = z, *zheap = NULL;
    if (K > 64) {
        zheap = hs_alloc(sizeof *zheap * (size_t)K);  // rare: > 64 classes; failure flagged as NaN
        if (!zheap) {
            g[D] = NAN;
            return;
        }
        zz = zheap;
    }
    const double *W = c->theta, *b = c->theta + K * F;
    for (int64_t i = begin; i < end; i++) {
        const float *x = c->X + i * F;
        double zmax = -INFINITY;
        for (int64_t k = 0; k < K; k++) {
            double s = b[k];
            const double *w = W + k * F;
            for (int64_t j = 0; j < F; j++)
                s += w[j] * (double)x[j];
            zz[k] = s;
            if (s > zmax)
                zmax = s;
        }
        double se = 0;
        for (int64_t k = 0; k < K; k++)
            se += exp(zz[k] - zmax);
        double lse = zmax + log(se);
        g[D] += lse - zz[c->y[i]];
        for (int64_t k = 0; k < K; k++) {
            double r = exp(zz[k] - lse) - (k == c->y[i] ? 1.0 : 0.0);
            double *gw = g + k * F;
            for (int64_t j = 0; j < F; j++)
                gw[j] += r * (double)x[j];
            g[K * F + k] += r;
        }
    }
    hs_free(zheap);
}

// f and grad (D) at theta; returns 0 on allocation failure inside a chunk
static int lr_eval(double *f, double *grad, lr_ctx *c, const double *theta, double C) {
    int64_t F = c->F, K = c->K, D = K * (F + 1), N = c->N;
    int64_t nchunks = (N + LR_CHUNK - 1) / LR_CHUNK;
    c->theta = theta;
    hs_parallel_for(N, LR_CHUNK, lr_chunk, c);
    memset(grad, 0, sizeof *grad * (size_t)D);
    double loss = 0;
    for (int64_t ch = 0; ch < nchunks; ch++) {
        const double *g = c->partial + ch * (D + 1);
        for (int64_t d = 0; d < D; d++)
            grad[d] += g[d];
        loss += g[D];
    }
    if (isnan(loss))
        return 0;
    double inv_n = 1.0 / (double)N, lam = 1.0 / (C * (double)N), reg = 0;
    for (int64_t d = 0; d < D; d++)
        grad[d] *= inv_n;
    for (int64_t d = 0; d < K * F; d++) {
        reg += theta[d] * theta[d];
        grad[d] += lam * theta[d];
    }
    *f = loss * inv_n + 0.5 * lam * reg;
    return 1;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

static hs_status fit_logreg(hs_classic_model *m, const float *X, const int32_t *y, int64_t N, const hs_classic_params *p) {
    int64_t F = m->n_features, K = m->n_classes, D = K * (F + 1);
    int64_t nchunks = (N + LR_CHUNK - 1) / LR_CHUNK;
    // theta, grad, new theta, new grad, direction, alpha (M), rho (M), s (M,D), y (M,D), partials
    size_t nd = (size_t)(5 * D + 2 * LBFGS_M + 2 * LBFGS_M * D + nchunks * (D + 1));
    double *buf = hs_calloc(nd, sizeof(double));
    if (!buf)
        return HS_FAIL(HS_ERR_NOMEM, "logreg: out of memory for %lld parameters", (long long)D);
    double *th = buf, *g = th + D, *th2 = g + D, *g2 = th2 + D, *dir = g2 + D;
    double *al = dir + D, *rh = al + LBFGS_M, *S = rh + LBFGS_M, *Y = S + LBFGS_M * D, *partial = Y + LBFGS_M * D;
    lr_ctx c = {X, y, N, F, K, NULL, partial};
    double f, f2;
    hs_status st = HS_OK;
    if (!lr_eval(&f, g, &c, th, p->C)) {
        hs_free(buf);
        return HS_FAIL(HS_ERR_NOMEM, "logreg: out of memory");
    }
    int max_iter = p->max_iter > 0 ? p->max_iter : 1000, it = 0, hist = 0, head = 0, converged = 0;
    for (it = 0; it < max_iter; it++) {
        if (max_abs(g, D) <= p->tol) {
            converged = 1;
            break;
        }
        // two-loop recursion: dir = -H g
        for (int64_t d = 0; d < D; d++)
            dir[d] = -g[d];
        for (int h = 0; h < hist; h++) {
            int k = (head - 1 - h + LBFGS_M) % LBFGS_M;
            al[k] = rh[k] * dot(S + k * D, dir, D);
            for (int64_t d = 0; d < D; d++)
                dir[d] -= al[k] * Y[k * D + d];
        }
        if (hist > 0) {
            int k = (head - 1 + LBFGS_M) % LBFGS_M;
            double gam = dot(S + k * D, Y + k * D, D) / dot(Y + k * D, Y + k * D, D);
            for (int64_t d = 0; d < D; d++)
                dir[d] *= gam;
        }
        for (int h = hist - 1; h >= 0; h--) {
            int k = (head - 1 - h + LBFGS_M) % LBFGS_M;
            double be = rh[k] * dot(Y + k * D, dir, D);
            for (int64_t d = 0; d < D; d++)
                dir[d] += (al[k] - be) * S[k * D + d];
        }
        double gd = dot(g, dir, D);
        if (!(gd < 0)) {  // not a descent direction: restart from steepest descent
            hist = 0;
            for (int64_t d = 0; d < D; d++)
                dir[d] = -g[d];
            gd = dot(g, dir, D);
        }
        // backtracking line search (Armijo); the first step is scaled to a unit move
        double step = hist == 0 ? fmin(1.0, 1.0 / sqrt(-gd)) : 1.0;
        int ok = 0;
        for (int ls = 0; ls < 60; ls++) {
            for (int64_t d = 0; d < D; d++)
                th2[d] = th[d] + step * dir[d];
            if (!lr_eval(&f2, g2, &c, th2, p->C)) {
                st = HS_FAIL(HS_ERR_NOMEM, "logreg: out of memory");
                goto done;
            }
            if (f2 <= f + 1e-4 * step * gd) {
                ok = 1;
                break;
            }
            step *= 0.5;
        }
        if (!ok) {  // no decrease possible at double precision: as converged as it gets
            converged = max_abs(g, D) <= 10 * p->tol;
            break;
        }
        // curvature pair
        double *s = S + head * D, *yy = Y + head * D;
        for (int64_t d = 0; d < D; d++) {
            s[d] = th2[d] - th[d];
            yy[d] = g2[d] - g[d];
        }
        double sy = dot(s, yy, D);
        if (sy > 1e-12 * dot(yy, yy, D)) {
            rh[head] = 1.0 / sy;
            head = (head + 1) % LBFGS_M;
            if (hist < LBFGS_M)
                hist++;
        }
        double fold = f;
        memcpy(th, th2, sizeof *th * (size_t)D);
        memcpy(g, g2, sizeof *g * (size_t)D);
        f = f2;
        if (fold - f <= 1e-15 * fmax(1.0, fabs(f)) && max_abs(g, D) <= 10 * p->tol) {
            converged = 1;
            it++;
            break;
        }
    }
    if (!converged && max_abs(g, D) <= p->tol)
        converged = 1;
    for (int64_t d = 0; d < K * F; d++)
        m->weight[d] = (float)th[d];
    for (int64_t k = 0; k < K; k++)
        m->bias[k] = (float)th[K * F + k];
    m->iterations = it;
    m->converged = converged;
    m->objective = f;
done:
    hs_free(buf);
    return st;
}

// ---- linear SVM: one-vs-rest, L2-regularised squared hinge, dual coordinate descent ----
// For class k: min_a 0.5 a'(Q + I/(2C))a - sum a, a >= 0, Q_ij = y_i y_j (x_i.x_j + 1) (the bias
// is a constant feature 1, regularised like the weights, as liblinear and sklearn's LinearSVC).

typedef struct {
    const float *X;
    const int32_t *y;
    int64_t N, F;
    double C, tol;
    int max_iter;
    uint64_t seed;
    double *w;      // (K, F+1)
    double *alpha;  // (K, N)
    int64_t *index; // (K, N)
    double *qd;     // (N) x_i.x_i + 1 + 1/(2C)
    int *iters, *conv;
    double *obj;
} svm_ctx;

static void linear_svm_class(void *vctx, int64_t kb, int64_t ke) {
    svm_ctx *c = vctx;
    int64_t N = c->N, F = c->F;
    double diag = 0.5 / c->C;
    for (int64_t k = kb; k < ke; k++) {
        double *w = c->w + k * (F + 1), *alpha = c->alpha + k * N;
        int64_t *index = c->index + k * N;
        for (int64_t i = 0; i < N; i++)
            index[i] = i;
        int64_t active = N;
        double pgmax_old = INFINITY, pgmin_old = -INFINITY;
        uint64_t counter = 0;
        int it = 0, conv = 0;
        while (it < c->max_iter) {
            double pgmax_new = -INFINITY, pgmin_new = INFINITY;
            for (int64_t i = 0; i < active; i++) {  // seeded Fisher-Yates over the active set
                int64_t j = i + (int64_t)(hs_rng_u64(c->seed, (uint64_t)k, counter++) % (uint64_t)(active - i));
                int64_t t = index[i];
                index[i] = index[j];
                index[j] = t;
            }
            for (int64_t s = 0; s < active; s++) {
                int64_t i = index[s];
                double yi = c->y[i] == k ? 1.0 : -1.0;
                const float *x = c->X + i * F;
                double wx = w[F];
                for (int64_t j = 0; j < F; j++)
                    wx += w[j] * (double)x[j];
                double G = yi * wx - 1 + alpha[i] * diag, PG = 0;
                if (alpha[i] == 0) {
                    if (G > pgmax_old) {  // shrink: this coordinate is very likely to stay at 0
                        active--;
                        index[s] = index[active];
                        index[active] = i;
                        s--;
                        continue;
                    }
                    if (G < 0)
                        PG = G;
                } else {
                    PG = G;
                }
                pgmax_new = fmax(pgmax_new, PG);
                pgmin_new = fmin(pgmin_new, PG);
                if (fabs(PG) > 1e-12) {
                    double old = alpha[i];
                    alpha[i] = fmax(alpha[i] - G / c->qd[i], 0.0);
                    double d = (alpha[i] - old) * yi;
                    for (int64_t j = 0; j < F; j++)
                        w[j] += d * (double)x[j];
                    w[F] += d;
                }
            }
            it++;
            if (pgmax_new - pgmin_new <= c->tol) {
                if (active == N) {
                    conv = 1;
                    break;
                }
                active = N;  // check the shrunk coordinates once more
                pgmax_old = INFINITY;
                pgmin_old = -INFINITY;
                continue;
            }
            pgmax_old = pgmax_new <= 0 ? (double)INFINITY : pgmax_new;
            pgmin_old = pgmin_new >= 0 ? -(double)INFINITY : pgmin_new;
        }
        (void)pgmin_old;
        // dual objective 0.5 |w|^2 + 0.5 diag |a|^2 - sum a (reported only)
        double o = 0;
        for (int64_t j = 0; j <= F; j++)
            o += 0.5 * w[j] * w[j];
        for (int64_t i = 0; i < N; i++)
            o += 0.5 * diag * alpha[i] * alpha[i] - alpha[i];
        c->iters[k] = it;
        c->conv[k] = conv;
        c->obj[k] = o;
    }
}

static hs_status fit_linear_svm(hs_classic_model *m, const float *X, const int32_t *y, int64_t N,
                                const hs_classic_params *p) {
    int64_t F = m->n_features, K = m->n_classes;
    double *w = hs_calloc((size_t)(K * (F + 1)), sizeof *w), *alpha = hs_calloc((size_t)(K * N), sizeof *alpha);
    double *qd = hs_alloc(sizeof *qd * (size_t)N), *obj = hs_alloc(sizeof *obj * (size_t)K);
    int64_t *index = hs_alloc(sizeof *index * (size_t)(K * N));
    int *iters = hs_alloc(sizeof *iters * (size_t)K), *conv = hs_alloc(sizeof *conv * (size_t)K);
    hs_status st = HS_OK;
    if (!w || !alpha || !qd || !obj || !index || !iters || !conv) {
        st = HS_FAIL(HS_ERR_NOMEM, "linear_svm: out of memory for N=%lld, K=%lld", (long long)N, (long long)K);
        goto done;
    }
    for (int64_t i = 0; i < N; i++) {
        double s = 1.0 + 0.5 / p->C;
        for (int64_t j = 0; j < F; j++)
            s += (double)X[i * F + j] * (double)X[i * F + j];
        qd[i] = s;
    }
    svm_ctx c = {X, y, N, F, p->C, p->tol, p->max_iter > 0 ? p->max_iter : 1000, p->seed, w, alpha, index, qd,
                 iters, conv, obj};
    hs_parallel_for(K, 1, linear_svm_class, &c);
    m->iterations = 0;
    m->converged = 1;
    m->objective = 0;
    for (int64_t k = 0; k < K; k++) {
        for (int64_t j = 0; j < F; j++)
            m->weight[k * F + j] = (float)w[k * (F + 1) + j];
        m->bias[k] = (float)w[k * (F + 1) + F];
        if (iters[k] > m->iterations)
            m->iterations = iters[k];
        m->converged &= conv[k];
        m->objective += obj[k];
    }
done:
    hs_free(w);
    hs_free(alpha);
    hs_free(qd);
    hs_free(obj);
    hs_free(index);
    hs_free(iters);
    hs_free(conv);
    return st;
}

// ---- RBF SVM: one-vs-one C-SVC, libsvm's SMO (WSS3, Fan, Chen & Lin 2005) on a full kernel ----

typedef struct {
    const float *X;
    int64_t N, F;
    double gamma;
    float *Kmat;  // (N,N)
} gram_ctx;

static void gram_rows(void *vctx, int64_t b, int64_t e) {
    gram_ctx *c = vctx;
    for (int64_t i = b; i < e; i++) {
        const float *xi = c->X + i * c->F;
        for (int64_t j = 0; j < c->N; j++) {
            const float *xj = c->X + j * c->F;
            double d2 = 0;
            for (int64_t f = 0; f < c->F; f++) {
                double d = (double)xi[f] - (double)xj[f];
                d2 += d * d;
            }
            c->Kmat[i * c->N + j] = (float)exp(-c->gamma * d2);
        }
    }
}

typedef struct {
    const float *Kmat;
    const int32_t *y;
    int64_t N, K;
    double C, tol;
    int64_t max_iter;
    const int64_t *pair_off;  // (P+1) offsets into the per-pair arrays below
    int64_t *idx;             // sample index of each pair member
    double *alpha, *G;        // per member
    double *rho, *obj;        // (P)
    int64_t *iters;
    int *conv;
} smo_ctx;

static void pair_of(int64_t p, int64_t K, int64_t *a, int64_t *b) {
    int64_t i = 0;
    while (p >= K - 1 - i) {
        p -= K - 1 - i;
        i++;
    }
    *a = i;
    *b = i + 1 + p;
}

static void smo_pair(void *vctx, int64_t pb, int64_t pe) {
    smo_ctx *c = vctx;
    for (int64_t p = pb; p < pe; p++) {
        int64_t ca, cb, off = c->pair_off[p], n = c->pair_off[p + 1] - off;
        pair_of(p, c->K, &ca, &cb);
        int64_t *idx = c->idx + off;
        double *alpha = c->alpha + off, *G = c->G + off;
        for (int64_t i = 0, t = 0; i < c->N; i++)
            if (c->y[i] == ca || c->y[i] == cb)
                idx[t++] = i;
        const float *Km = c->Kmat;
        int64_t N = c->N;
        double C = c->C;
#define YS(t) (c->y[idx[t]] == ca ? 1.0 : -1.0)
#define KQ(s, t) ((double)Km[idx[s] * N + idx[t]])
        for (int64_t t = 0; t < n; t++) {
            alpha[t] = 0;
            G[t] = -1;
        }
        int64_t it = 0;
        int conv = 0;
        while (it < c->max_iter) {
            // select i: maximal violating index from the "up" set
            double Gmax = -INFINITY, Gmax2 = -INFINITY;
            int64_t i = -1, j = -1;
            for (int64_t t = 0; t < n; t++) {
                if (YS(t) > 0) {
                    if (alpha[t] < C && -G[t] >= Gmax) {
                        Gmax = -G[t];
                        i = t;
                    }
                } else if (alpha[t] > 0 && G[t] >= Gmax) {
                    Gmax = G[t];
                    i = t;
                }
            }
            if (i < 0)
                break;
            double yi = YS(i), obj_min = INFINITY;
            for (int64_t t = 0; t < n; t++) {
                double yt = YS(t), qit = yi * yt * KQ(i, t);
                if (yt > 0) {
                    if (alpha[t] > 0) {
                        double gd = Gmax + G[t];
                        if (G[t] >= Gmax2)
                            Gmax2 = G[t];
                        if (gd > 0) {
                            double quad = 2.0 - 2.0 * yi * qit;  // K_ii + K_tt - 2 y_i Q_it, K_tt = 1
                            if (quad <= 0)
                                quad = SMO_TAU;
                            double ob = -(gd * gd) / quad;
                            if (ob <= obj_min) {
                                j = t;
                                obj_min = ob;
                            }
                        }
                    }
                } else if (alpha[t] < C) {
                    double gd = Gmax - G[t];
                    if (-G[t] >= Gmax2)
                        Gmax2 = -G[t];
                    if (gd > 0) {
                        double quad = 2.0 + 2.0 * yi * qit;
                        if (quad <= 0)
                            quad = SMO_TAU;
                        double ob = -(gd * gd) / quad;
                        if (ob <= obj_min) {
                            j = t;
                            obj_min = ob;
                        }
                    }
                }
            }
            if (Gmax + Gmax2 < c->tol || j < 0) {
                conv = 1;
                break;
            }
            it++;
            // two-variable update with clipping to [0, C] (libsvm's Solver::Solve)
            double yj = YS(j), Qij = yi * yj * KQ(i, j);
            double ai = alpha[i], aj = alpha[j];
            if (yi != yj) {
                double quad = 2.0 + 2.0 * Qij;
                if (quad <= 0)
                    quad = SMO_TAU;
                double delta = (-G[i] - G[j]) / quad, diff = ai - aj;
                ai += delta;
                aj += delta;
                if (diff > 0) {
                    if (aj < 0) {
                        aj = 0;
                        ai = diff;
                    }
                } else if (ai < 0) {
                    ai = 0;
                    aj = -diff;
                }
                if (diff > 0) {  // C_i == C_j
                    if (ai > C) {
                        ai = C;
                        aj = C - diff;
                    }
                } else if (aj > C) {
                    aj = C;
                    ai = C + diff;
                }
            } else {
                double quad = 2.0 - 2.0 * Qij;
                if (quad <= 0)
                    quad = SMO_TAU;
                double delta = (G[i] - G[j]) / quad, sum = ai + aj;
                ai -= delta;
                aj += delta;
                if (sum > C) {
                    if (ai > C) {
                        ai = C;
                        aj = sum - C;
                    }
                } else if (aj < 0) {
                    aj = 0;
                    ai = sum;
                }
                if (sum > C) {
                    if (aj > C) {
                        aj = C;
                        ai = sum - C;
                    }
                } else if (ai < 0) {
                    ai = 0;
                    aj = sum;
                }
            }
            double dai = ai - alpha[i], daj = aj - alpha[j];
            alpha[i] = ai;
            alpha[j] = aj;
            for (int64_t t = 0; t < n; t++) {
                double yt = YS(t);
                G[t] += yi * yt * KQ(i, t) * dai + yj * yt * KQ(j, t) * daj;
            }
        }
        // rho: mean of y G over free vectors, else the middle of the feasible interval
        double ub = INFINITY, lb = -INFINITY, sum_free = 0, o = 0;
        int64_t nfree = 0;
        for (int64_t t = 0; t < n; t++) {
            double yt = YS(t), yG = yt * G[t];
            if (alpha[t] >= C) {
                if (yt < 0)
                    ub = fmin(ub, yG);
                else
                    lb = fmax(lb, yG);
            } else if (alpha[t] <= 0) {
                if (yt > 0)
                    ub = fmin(ub, yG);
                else
                    lb = fmax(lb, yG);
            } else {
                nfree++;
                sum_free += yG;
            }
            o += alpha[t] * (G[t] - 1.0);  // objective = 0.5 a'Qa - sum a = 0.5 sum a (G + p)
        }
        c->rho[p] = nfree > 0 ? sum_free / (double)nfree : (ub + lb) / 2;
        c->obj[p] = 0.5 * o;
        c->iters[p] = it;
        c->conv[p] = conv;
#undef YS
#undef KQ
    }
}

static hs_status fit_rbf_svm(hs_classic_model **mp, const float *X, const int32_t *y, int64_t N, int64_t K,
                             int64_t F, const hs_classic_params *p) {
    if (N > RBF_MAX_N)
        return HS_FAIL(HS_ERR_ARG, "rbf_svm: %lld samples, at most %d (the kernel matrix is N x N); use linear_svm or "
                       "subsample", (long long)N, RBF_MAX_N);
    double gamma = p->gamma;
    if (!(gamma > 0)) {  // "scale": 1 / (F * X.var()) over every entry
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < N * F; i++)
            s += (double)X[i];
        double mu = s / (double)(N * F);
        for (int64_t i = 0; i < N * F; i++)
            s2 += ((double)X[i] - mu) * ((double)X[i] - mu);
        double var = s2 / (double)(N * F);
        gamma = var > 0 ? 1.0 / ((double)F * var) : 1.0;
    }
    int64_t P = K * (K - 1) / 2;
    int64_t *count = hs_calloc((size_t)K, sizeof *count), *off = hs_alloc(sizeof *off * (size_t)(P + 1));
    float *Kmat = hs_alloc(sizeof *Kmat * (size_t)(N * N));
    hs_status st = HS_OK;
    int64_t *idx = NULL, *iters = NULL, *sv_of = NULL;
    double *alpha = NULL, *G = NULL, *rho = NULL, *obj = NULL;
    int *conv = NULL;
    if (!count || !off || !Kmat) {
        st = HS_FAIL(HS_ERR_NOMEM, "rbf_svm: out of memory for the %lldx%lld kernel matrix", (long long)N, (long long)N);
        goto done;
    }
    for (int64_t i = 0; i < N; i++)
        count[y[i]]++;
    off[0] = 0;
    for (int64_t pp = 0; pp < P; pp++) {
        int64_t a, b;
        pair_of(pp, K, &a, &b);
        off[pp + 1] = off[pp] + count[a] + count[b];
    }
    idx = hs_alloc(sizeof *idx * (size_t)(off[P] + 1));
    alpha = hs_alloc(sizeof *alpha * (size_t)(off[P] + 1));
    G = hs_alloc(sizeof *G * (size_t)(off[P] + 1));
    rho = hs_alloc(sizeof *rho * (size_t)P);
    obj = hs_alloc(sizeof *obj * (size_t)P);
    iters = hs_alloc(sizeof *iters * (size_t)P);
    conv = hs_alloc(sizeof *conv * (size_t)P);
    sv_of = hs_alloc(sizeof *sv_of * (size_t)N);
    if (!idx || !alpha || !G || !rho || !obj || !iters || !conv || !sv_of) {
        st = HS_FAIL(HS_ERR_NOMEM, "rbf_svm: out of memory");
        goto done;
    }
    gram_ctx gc = {X, N, F, gamma, Kmat};
    hs_parallel_for(N, 16, gram_rows, &gc);
    int64_t max_iter = p->max_iter > 0 ? p->max_iter : (100 * N > 10000000 ? 100 * N : 10000000);
    smo_ctx sc = {Kmat, y, N, K, p->C, p->tol, max_iter, off, idx, alpha, G, rho, obj, iters, conv};
    hs_parallel_for(P, 1, smo_pair, &sc);
    // support vectors: samples with alpha > 0 in any pair, in sample order
    int64_t S = 0;
    for (int64_t i = 0; i < N; i++)
        sv_of[i] = -1;
    for (int64_t t = 0; t < off[P]; t++)
        if (alpha[t] > 0 && sv_of[idx[t]] < 0)
            sv_of[idx[t]] = 0;
    for (int64_t i = 0; i < N; i++)
        if (sv_of[i] >= 0)
            sv_of[i] = S++;
    hs_classic_model *m;
    st = hs_classic_model_new(&m, HS_CLASSIC_RBF_SVM, F, K, S);
    if (st != HS_OK)
        goto done;
    m->gamma = gamma;
    for (int64_t i = 0; i < N; i++)
        if (sv_of[i] >= 0)
            memcpy(m->sv + sv_of[i] * F, X + i * F, sizeof(float) * (size_t)F);
    m->iterations = 0;
    m->converged = 1;
    m->objective = 0;
    for (int64_t pp = 0; pp < P; pp++) {
        int64_t a, b;
        pair_of(pp, K, &a, &b);
        for (int64_t t = off[pp]; t < off[pp + 1]; t++)
            if (alpha[t] > 0)
                m->coef[pp * S + sv_of[idx[t]]] = (float)(y[idx[t]] == a ? alpha[t] : -alpha[t]);
        m->rho[pp] = (float)rho[pp];
        if (iters[pp] > m->iterations)
            m->iterations = (int)(iters[pp] > 2147483647 ? 2147483647 : iters[pp]);
        m->converged &= conv[pp];
        m->objective += obj[pp];
    }
    *mp = m;
done:
    hs_free(count);
    hs_free(off);
    hs_free(Kmat);
    hs_free(idx);
    hs_free(alpha);
    hs_free(G);
    hs_free(rho);
    hs_free(obj);
    hs_free(iters);
    hs_free(conv);
    hs_free(sv_of);
    return st;
}

// ---- fit ----

hs_status hs_classic_fit(hs_classic_model **out, const hs_tensor *X, const hs_tensor *y, const hs_classic_params *p) {
    *out = NULL;
    if ((unsigned)p->kind >= HS_CLASSIC_KIND_COUNT)
        return HS_FAIL(HS_ERR_ARG, "classic: bad classifier kind %d", (int)p->kind);
    const char *name = kind_names[p->kind];
    if (!(p->C > 0) || !isfinite(p->C))
        return HS_FAIL(HS_ERR_ARG, "%s: C = %g, need a positive number", name, p->C);
    if (!(p->tol > 0) || !isfinite(p->tol))
        return HS_FAIL(HS_ERR_ARG, "%s: tol = %g, need a positive number", name, p->tol);
    if (!isfinite(p->gamma))
        return HS_FAIL(HS_ERR_ARG, "%s: gamma is not finite", name);
    if (p->max_iter < 0)
        return HS_FAIL(HS_ERR_ARG, "%s: max_iter = %d, need >= 0 (0: default)", name, p->max_iter);
    HS_TRY(check_X(X, name));
    int64_t N = X->shape[0], F = X->shape[1], K = 0;
    int32_t *lab;
    HS_TRY(read_labels(&lab, &K, y, N));
    float *mean = hs_alloc(sizeof *mean * (size_t)F), *scale = hs_alloc(sizeof *scale * (size_t)F), *Xs = NULL;
    hs_classic_model *m = NULL;
    hs_status st = HS_OK;
    if (!mean || !scale) {
        st = HS_FAIL(HS_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    if (p->standardize) {
        st = hs_classic_standardize_fit(mean, scale, X);
    } else {
        for (int64_t j = 0; j < F; j++) {
            mean[j] = 0;
            scale[j] = 1;
        }
    }
    if (st == HS_OK)
        st = standardized_copy(&Xs, X, mean, scale);
    if (st != HS_OK)
        goto done;
    if (p->kind == HS_CLASSIC_RBF_SVM) {
        st = fit_rbf_svm(&m, Xs, lab, N, K, F, p);
    } else {
        st = hs_classic_model_new(&m, p->kind, F, K, 0);
        if (st == HS_OK)
            st = p->kind == HS_CLASSIC_LOGREG ? fit_logreg(m, Xs, lab, N, p) : fit_linear_svm(m, Xs, lab, N, p);
    }
    if (st == HS_OK) {
        memcpy(m->mean, mean, sizeof *mean * (size_t)F);
        memcpy(m->scale, scale, sizeof *scale * (size_t)F);
        *out = m;
        m = NULL;
    }
done:
    hs_classic_model_free(m);
    hs_free(Xs);
    hs_free(mean);
    hs_free(scale);
    hs_free(lab);
    return st;
}

// ---- decision, predict, proba ----

static hs_status check_model_input(const hs_classic_model *m, const hs_tensor *X, const char *op) {
    HS_TRY(check_X(X, op));
    if (X->shape[1] != m->n_features)
        return HS_FAIL(HS_ERR_SHAPE, "%s: X has %lld features, the model was fitted on %lld", op,
                       (long long)X->shape[1], (long long)m->n_features);
    return HS_OK;
}

static hs_status check_scores(const hs_tensor *s, int64_t N, int64_t K, const char *op) {
    char b[96];
    if (s->ndim != 2 || s->shape[0] != N || s->shape[1] != K || s->dtype != HS_DTYPE_F32)
        return HS_FAIL(HS_ERR_SHAPE, "%s: out must be F32 (%lld,%lld), got %s %s", op, (long long)N, (long long)K,
                       hs_dtype_name(s->dtype), hs_tensor_shape_str(s, b, sizeof b));
    return HS_OK;
}

typedef struct {
    const hs_classic_model *m;
    const hs_tensor *X;
    hs_tensor *scores;
    int softmax;
} dec_ctx;

// scores of one row into sc (K); x (F) standardised; scratch cf (K), kv (S), dp (P)
static void decide_row(double *sc, const hs_classic_model *m, const float *x, double *cf, double *kv, double *dp) {
    int64_t F = m->n_features, K = m->n_classes;
    if (m->kind != HS_CLASSIC_RBF_SVM) {
        for (int64_t k = 0; k < K; k++) {
            double s = m->bias[k];
            const float *w = m->weight + k * F;
            for (int64_t j = 0; j < F; j++)
                s += (double)w[j] * (double)x[j];
            sc[k] = s;
        }
        return;
    }
    int64_t S = m->n_sv, P = K * (K - 1) / 2;
    for (int64_t s = 0; s < S; s++) {
        const float *v = m->sv + s * F;
        double d2 = 0;
        for (int64_t j = 0; j < F; j++) {
            double d = (double)x[j] - (double)v[j];
            d2 += d * d;
        }
        kv[s] = exp(-m->gamma * d2);
    }
    for (int64_t p = 0; p < P; p++) {
        double d = -(double)m->rho[p];
        const float *co = m->coef + p * S;
        for (int64_t s = 0; s < S; s++)
            d += (double)co[s] * kv[s];
        dp[p] = d;
    }
    // sklearn's _ovr_decision_function(dec < 0, -dec, K): votes plus squashed summed confidences
    for (int64_t k = 0; k < K; k++) {
        sc[k] = 0;
        cf[k] = 0;
    }
    int64_t p = 0;
    for (int64_t a = 0; a < K; a++)
        for (int64_t b = a + 1; b < K; b++, p++) {
            cf[a] += dp[p];
            cf[b] -= dp[p];
            sc[dp[p] < 0 ? b : a] += 1;
        }
    for (int64_t k = 0; k < K; k++)
        sc[k] += cf[k] / (3 * (fabs(cf[k]) + 1));
}

static void decision_rows(void *vctx, int64_t b, int64_t e) {
    dec_ctx *c = vctx;
    const hs_classic_model *m = c->m;
    int64_t F = m->n_features, K = m->n_classes, P = K * (K - 1) / 2, S = m->n_sv;
    // scratch per chunk: scores (K), confidences (K), kernel values (S), pair values (P), x (F floats)
    size_t nbytes = sizeof(double) * (size_t)(2 * K + S + P) + sizeof(float) * (size_t)F;
    void *scratch = hs_alloc(nbytes);
    if (!scratch) {  // flagged as NaN scores, turned into HS_ERR_NOMEM by the caller
        for (int64_t i = b; i < e; i++)
            ((float *)c->scores->data)[i * c->scores->stride[0]] = NAN;
        return;
    }
    double *sc = scratch, *cf = sc + K, *kv = cf + K, *dp = kv + S;
    float *x = (float *)(dp + P);
    for (int64_t i = b; i < e; i++) {
        for (int64_t j = 0; j < F; j++)
            x[j] = (x_at(c->X, i, j) - m->mean[j]) * m->scale[j];
        decide_row(sc, m, x, cf, kv, dp);
        if (c->softmax) {
            double mx = -INFINITY, s = 0;
            for (int64_t k = 0; k < K; k++)
                mx = fmax(mx, sc[k]);
            for (int64_t k = 0; k < K; k++)
                s += (sc[k] = exp(sc[k] - mx));
            for (int64_t k = 0; k < K; k++)
                sc[k] /= s;
        }
        float *o = c->scores->data;
        for (int64_t k = 0; k < K; k++)
            o[i * c->scores->stride[0] + k * c->scores->stride[1]] = (float)sc[k];
    }
    hs_free(scratch);
}

static hs_status run_decision(hs_tensor *scores, const hs_classic_model *m, const hs_tensor *X, int softmax,
                              const char *op) {
    HS_TRY(check_model_input(m, X, op));
    int64_t N = X->shape[0];
    HS_TRY(check_scores(scores, N, m->n_classes, op));
    dec_ctx c = {m, X, scores, softmax};
    hs_parallel_for(N, 64, decision_rows, &c);
    for (int64_t i = 0; i < N; i++)
        if (isnan(((float *)scores->data)[i * scores->stride[0]]))
            return HS_FAIL(HS_ERR_NOMEM, "%s: out of memory", op);
    return HS_OK;
}

hs_status hs_classic_decision(hs_tensor *scores, const hs_classic_model *m, const hs_tensor *X) {
    return run_decision(scores, m, X, 0, "decision");
}

hs_status hs_classic_proba(hs_tensor *probs, const hs_classic_model *m, const hs_tensor *X) {
    return run_decision(probs, m, X, 1, "proba");
}

hs_status hs_classic_predict(hs_tensor *labels, const hs_classic_model *m, const hs_tensor *X) {
    HS_TRY(check_model_input(m, X, "predict"));
    int64_t N = X->shape[0], K = m->n_classes;
    char b[96];
    if (labels->ndim != 1 || labels->shape[0] != N || (labels->dtype != HS_DTYPE_I64 && labels->dtype != HS_DTYPE_I32))
        return HS_FAIL(HS_ERR_SHAPE, "predict: labels must be I64/I32 (%lld), got %s %s", (long long)N,
                       hs_dtype_name(labels->dtype), hs_tensor_shape_str(labels, b, sizeof b));
    hs_tensor *sc;
    int64_t shape[2] = {N, K};
    HS_TRY(hs_tensor_new(&sc, HS_DTYPE_F32, 2, shape));
    hs_status st = run_decision(sc, m, X, 0, "predict");
    if (st == HS_OK) {
        const float *s = sc->data;
        for (int64_t i = 0; i < N; i++) {
            int64_t best = 0;
            for (int64_t k = 1; k < K; k++)
                if (s[i * K + k] > s[i * K + best])
                    best = k;
            if (labels->dtype == HS_DTYPE_I64)
                ((int64_t *)labels->data)[i * labels->stride[0]] = best;
            else
                ((int32_t *)labels->data)[i * labels->stride[0]] = (int32_t)best;
        }
    }
    hs_tensor_free(sc);
    return st;
}
