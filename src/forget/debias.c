#include "forget/debias.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/ops.h"
#include "core/sort.h"
#include "core/strmap.h"
#include "io/safetensors.h"
#include "models/clip_encode.h"

const DebiasMethodInfo DEBIAS_METHODS[DB_N_METHODS] = {
    [DB_ORTH_PROJ] = {"orth-proj", DB_PROJECTION, 1},     [DB_ORTH_CALI] = {"orth-cali", DB_PROJECTION, 1},
    [DB_BEND] = {"bend-vlm", DB_PROJECTION, 0},           [DB_CLIP_CLIP] = {"clip-clip", DB_PROBING, 0},
    [DB_SFID] = {"sfid", DB_PROBING, 0},                  [DB_PROMPT_ARRAY] = {"prompt-array", DB_ADAPTER, 0},
    [DB_DEAR] = {"dear", DB_ADAPTER, 0},
};
const char *const DEBIAS_FAMILY_NAMES[3] = {"projection", "probing", "adapter"};

int debias_method_from_name(const char *name, DebiasMethod *m) {
    for (int i = 0; i < DB_N_METHODS; i++)
        if (strcmp(name, DEBIAS_METHODS[i].name) == 0) {
            *m = (DebiasMethod)i;
            return 0;
        }
    return -1;
}

void debias_params_default(DebiasParams *p) {
    *p = (DebiasParams){.lambda = 1000, .mu = 0, .dims = 16, .n_ctx = 3, .steps = 200, .lr = 1e-2, .beta = 1.0, .seed = 1};
}

struct BendCache {
    StrMap index; /* subject -> row */
    float *feats; /* [rows, n_aug, D] normalised and centred augmentations */
    int rows, cap;
};

static void bend_cache_free(struct BendCache *c) {
    if (!c) return;
    strmap_free(&c->index);
    free(c->feats);
    free(c);
}

void debias_free(Debias *d) {
    bend_cache_free(d->bend_cache);
    free(d->P0);
    free(d->P), free(d->M), free(d->WWn), free(d->mask), free(d->impute), free(d->impute_txt);
    free(d->mu_a), free(d->mu_b), free(d->ctx);
    if (d->adapter) free(d->adapter);
    else free(d->w1), free(d->b1), free(d->w2), free(d->b2);
    for (int i = 0; i < d->n_aug; i++) free(d->aug_tpl[i]);
    free(d->aug_tpl);
    memset(d, 0, sizeof *d);
}

/* ------------------------------------------------------------- closed forms */

void debias_orth_proj(const float *B, int nb, int D, double *P0) {
    double *a = xmalloc(sizeof(double) * (size_t)nb * D), *s = xmalloc(sizeof(double) * (size_t)(nb < D ? nb : D));
    const int k = nb < D ? nb : D;
    double *vt = xmalloc(sizeof(double) * (size_t)k * D), *sup = xmalloc(sizeof(double) * (size_t)(k + 1));
    for (int i = 0; i < nb; i++) { /* rows normalised, as Chuang et al. embed the prompts */
        double n = 0;
        for (int j = 0; j < D; j++) n += (double)B[(size_t)i * D + j] * B[(size_t)i * D + j];
        n = sqrt(n) + 1e-12;
        for (int j = 0; j < D; j++) a[(size_t)i * D + j] = B[(size_t)i * D + j] / n;
    }
    for (int i = 0; i < D * D; i++) P0[i] = 0;
    for (int i = 0; i < D; i++) P0[(size_t)i * D + i] = 1;
    if (LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'S', nb, D, a, D, s, NULL, 1, vt, D, sup) == 0) {
        for (int r = 0; r < k; r++) {
            if (s[r] <= 1e-6 * s[0]) continue; /* the span only */
            const double *v = vt + (size_t)r * D;
            for (int i = 0; i < D; i++)
                for (int j = 0; j < D; j++) P0[(size_t)i * D + j] -= v[i] * v[j];
        }
    }
    free(a), free(s), free(vt), free(sup);
}

void debias_pair_scatter(const float *A, const float *B, int n, int D, double *M) {
    double *d = xmalloc(sizeof(double) * (size_t)D);
    for (int i = 0; i < D * D; i++) M[i] = 0;
    for (int p = 0; p < n; p++) {
        double na = 0, nb = 0;
        for (int j = 0; j < D; j++) na += (double)A[(size_t)p * D + j] * A[(size_t)p * D + j], nb += (double)B[(size_t)p * D + j] * B[(size_t)p * D + j];
        na = sqrt(na) + 1e-12, nb = sqrt(nb) + 1e-12;
        for (int j = 0; j < D; j++) d[j] = A[(size_t)p * D + j] / na - B[(size_t)p * D + j] / nb;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) M[(size_t)i * D + j] += d[i] * d[j] / n;
    }
    free(d);
}

void debias_second_moment(const float *Wrows, int n, int D, double *Wn) {
    float *wn = xalloc_floats((size_t)n * D), *g = xalloc_floats((size_t)D * D);
    l2norm_forward(wn, NULL, Wrows, n, D);
    sgemm(true, false, D, D, n, 1.0f / (float)n, wn, D, wn, D, 0.0f, g, D);
    for (long i = 0; i < (long)D * D; i++) Wn[i] = g[i];
    free(wn), free(g);
}

int debias_calibrate_closed_form(const double *P0, const double *M, double lambda, const double *Wn, double mu, int D,
                                 double *P, Err *e) {
    double *A = xmalloc(sizeof(double) * (size_t)D * D), *Bt = xmalloc(sizeof(double) * (size_t)D * D);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            const size_t k = (size_t)i * D + j;
            A[k] = (i == j) + (M ? lambda * M[k] : 0) + (Wn ? mu * Wn[k] : 0);
            /* B = P0 + mu Wn; the solve takes B^T (A is symmetric: P A = B  <=>  A P^T = B^T) */
            Bt[(size_t)j * D + i] = P0[k] + (Wn ? mu * Wn[k] : 0);
        }
    int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', D, D, A, D, Bt, D);
    if (info == 0)
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) P[(size_t)i * D + j] = Bt[(size_t)j * D + i];
    free(A), free(Bt);
    return info == 0 ? 0 : err_set(e, "calibration: the system matrix is not positive definite (LAPACK dposv info %d)", info);
}

/* ------------------------------------------------------------- helpers */

/* M of the data's positive pairs (zero without pairs). */
static int pair_scatter_of(const ClipModel *m, const Tokenizer *t, const DebiasData *dd, int D, double *M, Err *e) {
    memset(M, 0, sizeof(double) * (size_t)D * D);
    if (dd->n_pairs < 1) return 0;
    float *A = xalloc_floats((size_t)dd->n_pairs * D), *B = xalloc_floats((size_t)dd->n_pairs * D);
    int rc = clip_encode_filled(m, t, NULL, dd->pair_a, dd->n_pairs, A, e);
    if (rc == 0) rc = clip_encode_filled(m, t, NULL, dd->pair_b, dd->n_pairs, B, e);
    if (rc == 0) debias_pair_scatter(A, B, dd->n_pairs, D, M);
    free(A), free(B);
    return rc;
}

static void apply_P(const double *P, int D, float *z) {
    double *o = xmalloc(sizeof(double) * (size_t)D);
    for (int i = 0; i < D; i++) {
        double s = 0;
        for (int j = 0; j < D; j++) s += P[(size_t)i * D + j] * z[j];
        o[i] = s;
    }
    for (int i = 0; i < D; i++) z[i] = (float)o[i];
    free(o);
}

static void normalise(float *v, int D) {
    double n = 0;
    for (int j = 0; j < D; j++) n += (double)v[j] * v[j];
    n = sqrt(n) + 1e-12;
    for (int j = 0; j < D; j++) v[j] = (float)(v[j] / n);
}

/* Mean normalised reference image feature of attribute value a. */
static float *ref_mean(const DebiasData *dd, int a, int D) {
    float *mu = xcalloc((size_t)D, sizeof(float)), *r = xalloc_floats((size_t)D);
    int n = 0;
    for (int i = 0; i < dd->n_ref; i++) {
        if (dd->ref_attr[i] != a) continue;
        memcpy(r, dd->ref_img + (size_t)i * D, sizeof(float) * (size_t)D);
        normalise(r, D);
        for (int j = 0; j < D; j++) mu[j] += r[j];
        n++;
    }
    if (n) normalise(mu, D);
    free(r);
    return mu;
}

/* ----------------------------------------------------- probing: clip-clip, sfid */

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Mutual information (nats) between dimension j (8 equal-frequency bins) and the attribute. */
static double dim_mi(const float *X, const int32_t *y, int n, int D, int j, int A) {
    float *v = xalloc_floats((size_t)n), *sorted = xalloc_floats((size_t)n);
    for (int i = 0; i < n; i++) v[i] = sorted[i] = X[(size_t)i * D + j];
    qsort(sorted, (size_t)n, sizeof(float), cmp_float); /* bin edges from the order statistics */
    enum { NB = 8 };
    float edge[NB - 1];
    for (int b = 1; b < NB; b++) edge[b - 1] = sorted[(size_t)n * b / NB];
    double *joint = xcalloc((size_t)NB * A, sizeof(double)), pb[NB] = {0}, *pa = xcalloc((size_t)A, sizeof(double));
    for (int i = 0; i < n; i++) {
        int b = 0;
        while (b < NB - 1 && v[i] >= edge[b]) b++;
        joint[b * A + y[i]] += 1.0 / n, pb[b] += 1.0 / n, pa[y[i]] += 1.0 / n;
    }
    double mi = 0;
    for (int b = 0; b < NB; b++)
        for (int a = 0; a < A; a++)
            if (joint[b * A + a] > 0) mi += joint[b * A + a] * log(joint[b * A + a] / (pb[b] * pa[a]));
    free(v), free(sorted), free(joint), free(pa);
    return mi;
}

/* The labelled references as normalised rows. */
static int labelled_refs(const DebiasData *dd, int D, float **X, int32_t **y) {
    int n = 0;
    *X = xalloc_floats((size_t)(dd->n_ref ? dd->n_ref : 1) * D);
    *y = xmalloc(sizeof(int32_t) * (size_t)(dd->n_ref ? dd->n_ref : 1));
    for (int i = 0; i < dd->n_ref; i++) {
        if (dd->ref_attr[i] < 0 || dd->ref_attr[i] >= dd->A) continue;
        memcpy(*X + (size_t)n * D, dd->ref_img + (size_t)i * D, sizeof(float) * (size_t)D);
        normalise(*X + (size_t)n * D, D);
        (*y)[n++] = dd->ref_attr[i];
    }
    return n;
}

static void top_dims(const double *score, int D, int m, uint8_t *mask) {
    double *neg = xmalloc(sizeof(double) * (size_t)D);
    int *order = xmalloc(sizeof(int) * (size_t)D);
    for (int j = 0; j < D; j++) neg[j] = -score[j];
    argsort_f64(neg, D, order); /* highest score first, ties to the lower index */
    memset(mask, 0, (size_t)D);
    for (int k = 0; k < m && k < D; k++) mask[order[k]] = 1;
    free(neg), free(order);
}

static int build_clip_clip(Debias *d, const DebiasData *dd, const DebiasParams *p, Err *e) {
    float *X;
    int32_t *y;
    const int D = d->D, n = labelled_refs(dd, D, &X, &y);
    if (dd->A < 2 || n < 2 * dd->A) {
        free(X), free(y);
        return err_set(e, "clip-clip needs reference images with attribute labels (%d labelled)", n);
    }
    double *mi = xmalloc(sizeof(double) * (size_t)D);
    for (int j = 0; j < D; j++) mi[j] = dim_mi(X, y, n, D, j, dd->A);
    d->mask = xmalloc((size_t)D);
    top_dims(mi, D, p->dims, d->mask);
    d->impute = xcalloc((size_t)D, sizeof(float));
    d->impute_txt = xcalloc((size_t)D, sizeof(float));
    free(mi), free(X), free(y);
    return 0;
}

/* Multinomial logistic probe on normalised features (full batch, L2 1e-3); returns W [A, D]. */
static float *logistic_probe(const float *X, const int32_t *y, int n, int D, int A, float *prob) {
    float *w = xcalloc((size_t)A * D, sizeof(float)), *b = xcalloc((size_t)A, sizeof(float));
    float *z = xalloc_floats((size_t)n * A), *g = xalloc_floats((size_t)A * D);
    for (int it = 0; it < 300; it++) {
        sgemm(false, true, n, A, D, 1.0f, X, D, w, D, 0.0f, z, A);
        for (int i = 0; i < n; i++)
            for (int a = 0; a < A; a++) z[(size_t)i * A + a] += b[a];
        softmax_forward(z, z, n, A);
        for (int i = 0; i < n; i++) z[(size_t)i * A + y[i]] -= 1.0f; /* dL/dlogits */
        sgemm(true, false, A, D, n, 1.0f / n, z, A, X, D, 0.0f, g, D);
        for (int a = 0; a < A; a++) {
            double gb = 0;
            for (int i = 0; i < n; i++) gb += z[(size_t)i * A + a];
            b[a] -= (float)(2.0 * gb / n);
            for (int j = 0; j < D; j++) w[(size_t)a * D + j] -= 2.0f * (g[(size_t)a * D + j] + 1e-3f * w[(size_t)a * D + j]);
        }
    }
    sgemm(false, true, n, A, D, 1.0f, X, D, w, D, 0.0f, z, A);
    for (int i = 0; i < n; i++)
        for (int a = 0; a < A; a++) z[(size_t)i * A + a] += b[a];
    softmax_forward(z, z, n, A);
    for (int i = 0; i < n; i++) {
        float mx = 0;
        for (int a = 0; a < A; a++) mx = fmaxf(mx, z[(size_t)i * A + a]);
        prob[i] = mx;
    }
    free(b), free(z), free(g);
    return w;
}

static int build_sfid(Debias *d, const ClipModel *m, const Tokenizer *t, const DebiasData *dd, const DebiasParams *p, Err *e) {
    float *X;
    int32_t *y;
    const int D = d->D, n = labelled_refs(dd, D, &X, &y);
    if (dd->A < 2 || n < 2 * dd->A) {
        free(X), free(y);
        return err_set(e, "sfid needs reference images with attribute labels (%d labelled)", n);
    }
    float *conf = xalloc_floats((size_t)n);
    float *w = logistic_probe(X, y, n, D, dd->A, conf);
    double *imp = xcalloc((size_t)D, sizeof(double));
    for (int j = 0; j < D; j++) { /* |weight| x spread of the dimension */
        double mu = 0, sq = 0;
        for (int i = 0; i < n; i++) mu += X[(size_t)i * D + j], sq += (double)X[(size_t)i * D + j] * X[(size_t)i * D + j];
        mu /= n;
        const double sd = sqrt(fmax(sq / n - mu * mu, 0));
        for (int a = 0; a < dd->A; a++) imp[j] += fabs(w[(size_t)a * D + j]) * sd;
    }
    d->mask = xmalloc((size_t)D);
    top_dims(imp, D, p->dims, d->mask);
    /* image values: the mean over the 20% least confident references (unnormalised scale) */
    float *c2 = xalloc_floats((size_t)n);
    memcpy(c2, conf, sizeof(float) * (size_t)n);
    qsort(c2, (size_t)n, sizeof(float), cmp_float);
    const float cut = c2[n / 5];
    d->impute = xcalloc((size_t)D, sizeof(float));
    int cnt = 0, li = 0;
    for (int i = 0; i < dd->n_ref; i++) {
        if (dd->ref_attr[i] < 0 || dd->ref_attr[i] >= dd->A) continue;
        if (conf[li++] <= cut) {
            for (int j = 0; j < D; j++) d->impute[j] += dd->ref_img[(size_t)i * D + j];
            cnt++;
        }
    }
    for (int j = 0; j < D; j++) d->impute[j] /= cnt ? cnt : 1;
    /* text values: text has no attribute labels; the mean over the general vocabulary's features */
    d->impute_txt = xcalloc((size_t)D, sizeof(float));
    int rc = 0;
    if (dd->n_vocab > 0) {
        float *tv = xalloc_floats((size_t)dd->n_vocab * D);
        rc = clip_encode_filled(m, t, dd->tpl, dd->vocab, dd->n_vocab, tv, e);
        for (int i = 0; i < dd->n_vocab && rc == 0; i++)
            for (int j = 0; j < D; j++) d->impute_txt[j] += tv[(size_t)i * D + j] / dd->n_vocab;
        free(tv);
    }
    free(X), free(y), free(conf), free(w), free(imp), free(c2);
    return rc;
}

/* ------------------------------------------------------------------ build */

int debias_build_adapter(Debias *d, const ClipModel *m, const Tokenizer *t, const DebiasData *dd, const DebiasParams *p,
                         Err *e); /* debias_learned.c */

int debias_build(Debias *d, DebiasMethod method, const ClipModel *m, const Tokenizer *t, const DebiasData *dd,
                 const DebiasParams *p, Err *e) {
    memset(d, 0, sizeof *d);
    d->method = method;
    d->D = m->cfg.embed_dim, d->W = m->cfg.t_width;
    if (!m->cfg.has_text) return err_set(e, "debiasing needs the text tower, and this model has none");
    const int D = d->D;
    int rc = 0;
    if (method == DB_ORTH_PROJ || method == DB_ORTH_CALI) {
        if (dd->n_bias < 1) return err_set(e, "%s needs biased prompts (none given)", DEBIAS_METHODS[method].name);
        float *B = xalloc_floats((size_t)dd->n_bias * D);
        d->P = xmalloc(sizeof(double) * (size_t)D * D);
        rc = clip_encode_filled(m, t, NULL, dd->bias_prompts, dd->n_bias, B, e);
        if (rc == 0) debias_orth_proj(B, dd->n_bias, D, d->P);
        free(B);
        if (rc == 0 && method == DB_ORTH_CALI) {
            double *M = xmalloc(sizeof(double) * (size_t)D * D);
            if (dd->n_pairs < 1) rc = err_set(e, "orth-cali needs positive pairs (none given)");
            else rc = pair_scatter_of(m, t, dd, D, M, e);
            if (rc == 0) {
                double *P0 = d->P;
                d->P = xmalloc(sizeof(double) * (size_t)D * D);
                rc = debias_calibrate_closed_form(P0, M, p->lambda, NULL, 0, D, d->P, e); /* P0 (I + lambda M)^-1 */
                free(P0);
            }
            free(M);
        }
    } else if (method == DB_BEND) {
        if (dd->n_aug < 2) return err_set(e, "bend-vlm needs at least two attribute templates");
        d->n_aug = dd->n_aug;
        d->aug_tpl = xmalloc(sizeof(char *) * (size_t)dd->n_aug);
        for (int i = 0; i < dd->n_aug; i++) d->aug_tpl[i] = xstrdup(dd->aug_tpl[i]);
        if (dd->n_ref > 0 && dd->A >= 2) d->mu_a = ref_mean(dd, 0, D), d->mu_b = ref_mean(dd, 1, D);
        d->bend_cache = xcalloc(1, sizeof *d->bend_cache);
        strmap_init(&d->bend_cache->index, 1024);
    } else if (method == DB_CLIP_CLIP) {
        rc = build_clip_clip(d, dd, p, e);
    } else if (method == DB_SFID) {
        rc = build_sfid(d, m, t, dd, p, e);
    } else {
        rc = debias_build_adapter(d, m, t, dd, p, e);
    }
    if (rc) debias_free(d);
    return rc;
}

int debias_calibrate(Debias *d, const ClipModel *m, const Tokenizer *t, const DebiasData *dd, double lambda, double mu,
                     Err *e) {
    const int D = d->D;
    if (DEBIAS_METHODS[d->method].family != DB_PROJECTION)
        return err_set(e, "calibrate applies to projection methods (orth-proj, orth-cali, bend-vlm), not %s",
                       DEBIAS_METHODS[d->method].name);
    if (dd->n_vocab < 1) return err_set(e, "calibrate needs a general vocabulary (none given)");
    int rc = 0;
    if (!d->WWn) { /* the vocabulary's and the pairs' statistics, once per transform */
        float *Wf = xalloc_floats((size_t)dd->n_vocab * D);
        d->M = xmalloc(sizeof(double) * (size_t)D * D);
        rc = clip_encode_filled(m, t, dd->tpl, dd->vocab, dd->n_vocab, Wf, e);
        if (rc == 0) rc = pair_scatter_of(m, t, dd, D, d->M, e);
        if (rc == 0) {
            d->WWn = xmalloc(sizeof(double) * (size_t)D * D);
            debias_second_moment(Wf, dd->n_vocab, D, d->WWn);
        }
        free(Wf);
    }
    d->lambda = lambda, d->mu = mu;
    if (rc == 0 && d->P) {
        if (!d->P0) { /* the uncalibrated projection, kept so a second calibration starts from it */
            d->P0 = xmalloc(sizeof(double) * (size_t)D * D);
            memcpy(d->P0, d->P, sizeof(double) * (size_t)D * D);
        }
        double *P = xmalloc(sizeof(double) * (size_t)D * D);
        rc = debias_calibrate_closed_form(d->P0, d->M, lambda, d->WWn, mu, D, P, e);
        if (rc == 0) memcpy(d->P, P, sizeof(double) * (size_t)D * D);
        free(P);
    }
    if (rc == 0) d->calibrated = 1;
    return rc;
}

/* ------------------------------------------------------------------ apply */

int debias_encode_prompt_array(const Debias *d, const ClipModel *m, const Tokenizer *t, const char *tpl,
                               const char *const *subjects, int n, float *out, Err *e); /* debias_learned.c */

/* The rest of Bend-VLM for z with its query projection P (calibrated when asked): project, then
 * remove the component along the reference attribute-mean difference. */
static int bend_apply(const Debias *d, double *P, float *z, Err *e) {
    const int D = d->D;
    if (d->calibrated) {
        double *Pc = xmalloc(sizeof(double) * (size_t)D * D);
        int rc = debias_calibrate_closed_form(P, d->M, d->lambda, d->WWn, d->mu, D, Pc, e);
        memcpy(P, Pc, sizeof(double) * (size_t)D * D);
        free(Pc);
        if (rc) return rc;
    }
    apply_P(P, D, z);
    if (d->mu_a && d->mu_b) { /* equidistant to the two reference groups: z . (mu_a - mu_b) = 0 */
        double dz = 0, dd = 0;
        for (int j = 0; j < D; j++) {
            const double df = d->mu_a[j] - d->mu_b[j];
            dz += z[j] * df, dd += df * df;
        }
        for (int j = 0; j < D && dd > 0; j++) z[j] -= (float)(dz / dd * (d->mu_a[j] - d->mu_b[j]));
    }
    return 0;
}

/* Bend-VLM for one query feature z: orthogonalise against its augmentations (calibrated when
 * asked), then remove the component along the reference attribute-mean difference. */
static int bend_one(const Debias *d, const ClipModel *m, const Tokenizer *t, const char *subject, float *z, Err *e) {
    const int D = d->D, A = d->n_aug;
    struct BendCache *c = d->bend_cache;
    int32_t row = -1;
    int rc = 0;
    if (!c || !strmap_get(&c->index, subject, strlen(subject), &row)) {
        float *za = xalloc_floats((size_t)A * D);
        for (int a = 0; a < A && rc == 0; a++) rc = clip_encode_filled(m, t, d->aug_tpl[a], &subject, 1, za + (size_t)a * D, e);
        if (rc) {
            free(za);
            return rc;
        }
        float *mean = xcalloc((size_t)D, sizeof(float));
        for (int a = 0; a < A; a++) normalise(za + (size_t)a * D, D);
        for (int a = 0; a < A; a++)
            for (int j = 0; j < D; j++) mean[j] += za[(size_t)a * D + j] / A;
        for (int a = 0; a < A; a++)
            for (int j = 0; j < D; j++) za[(size_t)a * D + j] -= mean[j];
        free(mean);
        if (!c) { /* no cache (a loaded file): use and drop */
            double *P = xmalloc(sizeof(double) * (size_t)D * D);
            debias_orth_proj(za, A, D, P);
            free(za);
            rc = bend_apply(d, P, z, e);
            free(P);
            return rc;
        }
        if (c->rows == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 256;
            c->feats = xrealloc(c->feats, sizeof(float) * (size_t)c->cap * A * D);
        }
        memcpy(c->feats + (size_t)c->rows * A * D, za, sizeof(float) * (size_t)A * D);
        free(za);
        row = c->rows++;
        strmap_put(&c->index, subject, strlen(subject), row);
    }
    double *P = xmalloc(sizeof(double) * (size_t)D * D);
    debias_orth_proj(c->feats + (size_t)row * A * D, A, D, P);
    rc = bend_apply(d, P, z, e);
    free(P);
    return rc;
}

int debias_encode_texts(const Debias *d, const ClipModel *m, const Tokenizer *t, const char *tpl,
                        const char *const *subjects, int n, float *out, Err *e) {
    const int D = d->D;
    int rc = d->method == DB_PROMPT_ARRAY ? debias_encode_prompt_array(d, m, t, tpl, subjects, n, out, e)
                                          : clip_encode_filled(m, t, tpl, subjects, n, out, e);
    for (int i = 0; i < n && rc == 0; i++) {
        float *z = out + (size_t)i * D;
        if (d->method == DB_BEND) rc = bend_one(d, m, t, subjects[i], z, e);
        else if (d->P) apply_P(d->P, D, z);
        if (d->mask)
            for (int j = 0; j < D; j++)
                if (d->mask[j]) z[j] = d->impute_txt[j];
    }
    return rc;
}

void debias_adapter_images(const Debias *d, float *feats, int n); /* debias_learned.c */

void debias_images(const Debias *d, float *feats, int n) {
    const int D = d->D;
    if (d->mask)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < D; j++)
                if (d->mask[j]) feats[(size_t)i * D + j] = d->impute[j];
    if (d->method == DB_DEAR) debias_adapter_images(d, feats, n);
}

