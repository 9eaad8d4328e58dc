/* Debiasing CLIP features: the three families of shared/methods/vlm-bias.md and the
 * programme's closed-form calibration (D.2, OUR RECONSTRUCTION).
 *   subspace projection (text side):
 *     orth-proj   P0 = I - V V^T, V an orthonormal basis of the biased prompts' embeddings (Chuang et al.)
 *     orth-cali   P  = P0 (I + lambda M)^-1, M the mean outer product of positive-pair differences
 *     bend-vlm    per query: orthogonalise against the query's attribute-augmented versions, then
 *                 step along the reference images' attribute-mean difference until the query is
 *                 equidistant to the two groups (Gerych et al.; text augmentations from templates
 *                 instead of an LLM)
 *   probing / feature selection (both towers):
 *     clip-clip   zero the m dimensions of highest mutual information with the attribute
 *     sfid        replace the m dimensions a probe finds most attribute-informative with their mean
 *                 over the probe's least confident samples (logistic probe, not a random forest)
 *   adapters (debias_learned.c):
 *     prompt-array  m learned context tokens before every query, trained against a linear attribute
 *                   adversary on retrieval similarities, with a feature-preservation term
 *     dear          residual image-feature adapter trained so an attribute classifier fails, with a
 *                   zero-shot-preservation term
 *   calibrate (on top of orth-proj, orth-cali or bend-vlm; RECONSTRUCTION):
 *     P* = argmin ||P - P0||^2 + lambda tr(P M P^T) + (mu / n) ||P W - W||^2
 *        = (P0 + (mu/n) W W^T) (I + lambda M + (mu/n) W W^T)^-1,  W the general vocabulary [D, n]
 *     solved with a Cholesky factorisation (LAPACK dposv): the system matrix is SPD.
 *     (mu is divided by n so one value suits any vocabulary size.)
 * Text features are projected before the cosine; image features pass through the probing and
 * adapter transforms. */
#ifndef FORGET_DEBIAS_H
#define FORGET_DEBIAS_H

#include <stdint.h>

#include "core/err.h"
#include "io/tokenizer.h"
#include "models/clip.h"

typedef enum {
    DB_ORTH_PROJ, DB_ORTH_CALI, DB_BEND, DB_CLIP_CLIP, DB_SFID, DB_PROMPT_ARRAY, DB_DEAR, DB_N_METHODS
} DebiasMethod;

typedef enum { DB_PROJECTION, DB_PROBING, DB_ADAPTER } DebiasFamily;
/* The method table: what each method is, so no code tells methods apart by enum order. */
typedef struct {
    const char *name;    /* "orth-proj" */
    DebiasFamily family; /* projections are the ones the calibration applies to */
    int has_P;           /* builds a D x D projection P (orth-proj, orth-cali) */
} DebiasMethodInfo;
extern const DebiasMethodInfo DEBIAS_METHODS[DB_N_METHODS];
extern const char *const DEBIAS_FAMILY_NAMES[3]; /* "projection", "probing", "adapter" */

/* What a debiasing is built from: texts are (prompt template with "{}", subject) pairs. */
typedef struct {
    const char *tpl;                       /* "an emoji of {}." */
    const char *const *bias_prompts;       /* orth-proj: full prompts naming only the attribute */
    int n_bias;
    const char *const *pair_a, *const *pair_b; /* positive pairs differing only in the attribute */
    int n_pairs;
    const char *const *vocab;              /* general vocabulary subjects (calibration's W) */
    int n_vocab;
    const char *const *aug_tpl;            /* bend: one prompt template per attribute value */
    int n_aug;
    /* reference images (image features, unnormalised) with attribute values in [0, A), -1 unknown */
    const float *ref_img;
    const int32_t *ref_attr;
    int n_ref, A;
    /* adapters: training queries (subjects) whose retrievals must not carry the attribute, and
     * class subjects whose zero-shot predictions must be kept */
    const char *const *train_queries;
    int n_train_queries;
    const char *const *keep_classes;
    int n_keep;
} DebiasData;

typedef struct {
    double lambda, mu; /* calibration: lambda for M, mu for the vocabulary */
    int dims;          /* clip-clip, sfid: dimensions to drop/impute */
    int n_ctx, steps;  /* prompt-array, dear */
    double lr, beta;   /* adapters: learning rate, weight of the preservation term */
    uint64_t seed;
} DebiasParams;

typedef struct {
    DebiasMethod method;
    int calibrated;          /* P is calibrated (bend: per query) */
    int D, W;                /* embedding dim, token width */
    double *P;               /* [D, D] text projection (orth-proj/-cali, calibrated) */
    double *P0;              /* [D, D] the projection before calibration (so it can be re-calibrated) */
    struct BendCache *bend_cache; /* bend: each subject's augmented features, computed once */
    double *M, *WWn;         /* [D, D] pair scatter and (1/n) W W^T, kept for bend's per-query calibration */
    double lambda, mu;
    uint8_t *mask;           /* [D] clip-clip, sfid: dimensions changed */
    float *impute, *impute_txt; /* [D] values for image and text features (sfid; clip-clip: zeros) */
    float *mu_a, *mu_b;      /* [D] bend: normalised reference means of attribute values 0 and 1 */
    int n_aug;
    char **aug_tpl;          /* bend: templates */
    float *ctx;              /* [n_ctx, W] prompt-array */
    int n_ctx;
    float *w1, *b1, *w2, *b2; /* dear: [H,D], [H], [D,H], [D] (rows are outputs) */
    float *adapter;           /* dear when trained here: one arena w1, b1, w2, b2 point into */
    int hidden;
} Debias;

int debias_method_from_name(const char *name, DebiasMethod *m);
void debias_params_default(DebiasParams *p);
void debias_free(Debias *d);

/* Builds a method's transform from the data (the model encodes its texts). */
int debias_build(Debias *d, DebiasMethod method, const ClipModel *m, const Tokenizer *t, const DebiasData *data,
                 const DebiasParams *p, Err *e);
/* Calibrates a projection method in place (orth-proj, orth-cali: P; bend: per query). */
int debias_calibrate(Debias *d, const ClipModel *m, const Tokenizer *t, const DebiasData *data, double lambda,
                     double mu, Err *e);

/* Debiased text features [n, E] of prompts tpl(subject) (unnormalised for projections) and image
 * features (in place, [n, E]). */
int debias_encode_texts(const Debias *d, const ClipModel *m, const Tokenizer *t, const char *tpl,
                        const char *const *subjects, int n, float *out, Err *e);
void debias_images(const Debias *d, float *feats, int n);

/* The closed forms on their own (row-major doubles, D x D): */
/* P0 = I - V V^T for the span of rows B [nb, D]. */
void debias_orth_proj(const float *B, int nb, int D, double *P0);
/* M = mean over pairs of (a_i - b_i)(a_i - b_i)^T, rows normalised first. */
void debias_pair_scatter(const float *A, const float *B, int n, int D, double *M);
/* P* = (P0 + mu Wn) (I + lambda M + mu Wn)^-1 with Wn = (1/n) W W^T given ([D, D]); M may be NULL. */
int debias_calibrate_closed_form(const double *P0, const double *M, double lambda, const double *Wn, double mu, int D,
                                 double *P, Err *e);
/* (1/n) W W^T from n normalised rows W [n, D] (sgemm). */
void debias_second_moment(const float *Wrows, int n, int D, double *Wn);

/* The adapters' objectives with their gradients, for training and for the finite-difference
 * checks (debias_learned.c). */
typedef struct {
    const ClipModel *m;
    const int32_t *ids;  /* [n, context] prompts with context slots: the nq queries first */
    int n, nq, M;
    const float *X;      /* [nr, E] normalised labelled reference images */
    const int32_t *y;
    int nr, A;
    const double *pa;    /* attribute prior of the references */
    const float *orig_n; /* [n, E] normalised features without the context */
    double beta;
} PaProblem;
double prompt_array_loss_grad(const PaProblem *pp, const float *ctx, float *grad);

typedef struct {
    const float *f; /* [n, D] normalised image features */
    int n;
    const int32_t *attr;
    int A, nl;      /* values, labelled count */
    const float *G, *gb; /* the attribute classifier [A, D], [A] */
    const float *T; /* [K, D] normalised class text features */
    int K;
    float scale;
    const float *p0; /* [n, K] zero-shot probabilities before the adapter */
    double beta;
} DearProblem;
/* grads: [H*D + H + D*H + D] in the order w1, b1, w2, b2. */
double dear_loss_grad(const Debias *d, const DearProblem *q, float *grads);

/* Files: safetensors with the transform's tensors and the method in the metadata. */
int debias_save(const Debias *d, const char *path, Err *e);
int debias_load(Debias *d, const char *path, Err *e);

#endif
