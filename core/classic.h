// core/classic.h: classical classifiers on dense float features (the baselines users compare CNNs
// against): feature standardisation, multinomial logistic regression (L2, L-BFGS), a linear SVM
// (one-vs-rest, squared hinge, liblinear's dual coordinate descent) and an RBF-kernel SVM
// (one-vs-one C-SVC, libsvm's SMO with second-order working-set selection). Not a feature
// extractor (feature.h) and not a neural network (graph.h).
//
// Dimension letters: N samples, F features, K classes, S support vectors, P = K(K-1)/2 class
// pairs. X is (N,F) F32 (any strides), labels y are (N) I64 or I32 in 0..K-1 (K = max(y)+1; at
// least two distinct labels). Fitting is deterministic: the same data, params and seed give a
// bit-identical model whatever the thread count (parallel work is split per class, per class
// pair or in fixed sample chunks reduced in order). Every function returns hs_status; non-finite
// features are rejected with HS_ERR_ARG.
#ifndef HS_CLASSIC_H
#define HS_CLASSIC_H

#include <stdint.h>

#include "status.h"
#include "tensor.h"

typedef enum {
    HS_CLASSIC_LOGREG = 0,   // "logreg"
    HS_CLASSIC_LINEAR_SVM,   // "linear_svm"
    HS_CLASSIC_RBF_SVM,      // "rbf_svm"
    HS_CLASSIC_KIND_COUNT
} hs_classic_kind;

typedef struct {
    hs_classic_kind kind;
    double C;          // inverse L2 strength (> 0), as sklearn's C; default 1
    double gamma;      // RBF: exp(-gamma*|x-x'|^2); <= 0 means "scale" = 1/(F * var(X standardised))
    double tol;        // stopping tolerance; defaults: logreg 1e-6 (max |gradient| of the mean loss),
                       // linear_svm 1e-4 (liblinear's projected-gradient gap), rbf_svm 1e-3 (libsvm)
    int max_iter;      // defaults: logreg 1000 L-BFGS steps, linear_svm 1000 epochs, rbf_svm
                       // max(10^7, 100 N) SMO steps per pair
    int standardize;   // 1: fit mean/std on the training X and apply them to every input (default)
    uint64_t seed;     // linear_svm: order of the coordinates in each epoch (default 1)
} hs_classic_params;

// The defaults above for a kind.
void hs_classic_params_default(hs_classic_params *p, hs_classic_kind kind);
hs_status hs_classic_kind_from_name(hs_classic_kind *kind, const char *name);  // HS_ERR_ARG if unknown
const char *hs_classic_kind_name(hs_classic_kind kind);

// A fitted model. All arrays are owned by the model (hs_classic_model_free).
typedef struct hs_classic_model {
    hs_classic_kind kind;
    int64_t n_features;   // F
    int64_t n_classes;    // K
    float *mean, *scale;  // (F): inputs are used as (x - mean) * scale (0 and 1 without standardisation)
    // logreg and linear_svm: scores = weight x + bias
    float *weight;        // (K,F)
    float *bias;          // (K)
    // rbf_svm: pair p = (a,b), a < b, in order (0,1),(0,2)..(0,K-1),(1,2)..; its decision value is
    // d_p = sum_s coef[p,s] exp(-gamma |x - sv_s|^2) - rho[p], > 0 votes for a
    double gamma;
    int64_t n_sv;         // S
    float *sv;            // (S,F) support vectors, standardised
    float *coef;          // (P,S) alpha_i y_i (0 where s is not a support vector of pair p)
    float *rho;           // (P)
    // fit report
    int iterations;       // logreg: L-BFGS steps; SVMs: the most epochs/SMO steps of any sub-problem
    int converged;        // 1 when every sub-problem met tol within max_iter
    double objective;     // logreg: final mean loss + L2 term / (C N); SVMs: sum of dual objectives
} hs_classic_model;

// An empty model with zeroed arrays (mean 0, scale 1) for the kind's layout; S is used by rbf_svm
// only. For loading saved models; fitting creates its own. HS_ERR_ARG for F < 1, K < 2, S < 0.
hs_status hs_classic_model_new(hs_classic_model **out, hs_classic_kind kind, int64_t F, int64_t K, int64_t S);
void hs_classic_model_free(hs_classic_model *m);  // NULL is a no-op

// Fit on X (N,F) F32 and y (N) I64/I32. *out is NULL on failure. Errors: HS_ERR_SHAPE (X not 2-D,
// y not N long), HS_ERR_DTYPE, HS_ERR_ARG (labels < 0, a single class, non-finite X, bad params;
// rbf_svm with N > 10000, whose N x N kernel matrix would not fit), HS_ERR_NOMEM. Not converging
// within max_iter is not an error: see m->converged.
hs_status hs_classic_fit(hs_classic_model **out, const hs_tensor *X, const hs_tensor *y, const hs_classic_params *p);

// scores (N,K) F32 (=): logreg and linear_svm: weight x + bias (logits / margins); rbf_svm:
// sklearn's one-vs-one -> one-vs-rest transform, votes + s/(3(|s|+1)) with s the summed pair
// decision values (so the argmax is the vote winner, ties broken by confidence).
hs_status hs_classic_decision(hs_tensor *scores, const hs_classic_model *m, const hs_tensor *X);
// labels (N) I64 or I32 (=): argmax of the decision scores (first maximum).
hs_status hs_classic_predict(hs_tensor *labels, const hs_classic_model *m, const hs_tensor *X);
// probs (N,K) F32 (=), rows summing to 1: softmax of the scores. For logreg these are the model's
// probabilities; for the SVMs they are only normalised scores (no Platt scaling, not calibrated).
hs_status hs_classic_proba(hs_tensor *probs, const hs_classic_model *m, const hs_tensor *X);

// ---- standardisation (also used by fit) ----
// mean, scale (F) (=): column means and 1/std (population std; 1 where std is 0 or tiny, as
// sklearn's StandardScaler). X (N,F) F32, N >= 1, finite.
hs_status hs_classic_standardize_fit(float *mean, float *scale, const hs_tensor *X);
// out (N,F) F32 (=) = (X - mean) * scale; out may be X itself.
hs_status hs_classic_standardize_apply(hs_tensor *out, const hs_tensor *X, const float *mean, const float *scale);

#endif
