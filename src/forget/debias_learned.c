/* The adapter family of debias.h: prompt-array and dear, trained here with gradients we write
 * out (text tower backward to the context rows; a two-layer adapter and a linear classifier). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/ops.h"
#include "core/rng.h"
#include "forget/debias.h"
#include "models/clip_encode.h"
#include "models/clip_train.h"
#include "train/trainer.h"

int debias_encode_prompt_array(const Debias *d, const ClipModel *m, const Tokenizer *t, const char *tpl,
                               const char *const *subjects, int n, float *out, Err *e) {
    const int ctx = m->cfg.context, W = m->cfg.t_width, E = m->cfg.embed_dim;
    if (d->W != W) return err_set(e, "this prompt-array context has width %d, the model's tokens %d", d->W, W);
    enum { CHUNK = 128 };
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)CHUNK * ctx);
    float *rep = xalloc_floats((size_t)CHUNK * d->n_ctx * W);
    int rc = 0;
    for (int b = 0; b < n && rc == 0; b += CHUNK) {
        const int nb = n - b < CHUNK ? n - b : CHUNK;
        if ((rc = clip_context_ids(m, t, tpl, subjects + b, nb, d->n_ctx, ids, e)) != 0) break;
        TowerActs a;
        clip_text_forward_context(m, &a, ids, nb, d->ctx, d->n_ctx, rep, out + (size_t)b * E, 0);
        tower_acts_free(&a);
    }
    free(ids), free(rep);
    return rc;
}

double prompt_array_loss_grad(const PaProblem *pp, const float *ctx, float *grad) {
    const ClipModel *m = pp->m;
    const int W = m->cfg.t_width, E = m->cfg.embed_dim, n = pp->n, nq = pp->nq, nr = pp->nr, M = pp->M, A = pp->A;
    float *rep = xalloc_floats((size_t)n * M * W), *drep = xalloc_floats((size_t)n * M * W);
    float *z = xalloc_floats((size_t)n * E), *zn = xalloc_floats((size_t)n * E), *norms = xalloc_floats((size_t)n);
    float *dzn = xalloc_floats((size_t)n * E), *dz = xalloc_floats((size_t)n * E);
    float *s = xalloc_floats((size_t)nq * nr), *ds = xalloc_floats((size_t)nq * nr);
    const float scale = expf(m->logit_scale[0]);
    TowerActs a;
    clip_text_forward_context(m, &a, pp->ids, n, ctx, M, rep, z, grad != NULL);
    l2norm_forward(zn, norms, z, n, E);
    /* adversary term on the queries' logits against the references */
    sgemm(false, true, nq, nr, E, scale, zn, E, pp->X, E, 0.0f, s, nr);
    double loss = 0;
    for (int q = 0; q < nq; q++) {
        const float *sq = s + (size_t)q * nr;
        float *dq = ds + (size_t)q * nr;
        double mean = 0;
        for (int i = 0; i < nr; i++) mean += sq[i] / nr;
        for (int i = 0; i < nr; i++) dq[i] = 0;
        for (int at = 0; at < A; at++) {
            double cov = 0;
            for (int i = 0; i < nr; i++) cov += (sq[i] - mean) * ((pp->y[i] == at) - pp->pa[at]) / nr;
            loss += cov * cov;
            for (int i = 0; i < nr; i++) dq[i] += (float)(2 * cov * ((pp->y[i] == at) - pp->pa[at]) / nr);
        }
    }
    /* preservation term */
    for (int k = 0; k < n; k++)
        for (int j = 0; j < E; j++) {
            const double df = zn[(size_t)k * E + j] - pp->orig_n[(size_t)k * E + j];
            loss += pp->beta * df * df / n;
        }
    if (grad) {
        sgemm(false, false, nq, E, nr, scale, ds, nr, pp->X, E, 0.0f, dzn, E);
        for (int k = nq; k < n; k++)
            for (int j = 0; j < E; j++) dzn[(size_t)k * E + j] = 0;
        for (int k = 0; k < n; k++)
            for (int j = 0; j < E; j++)
                dzn[(size_t)k * E + j] += (float)(pp->beta * 2.0 / n * (zn[(size_t)k * E + j] - pp->orig_n[(size_t)k * E + j]));
        memset(dz, 0, sizeof(float) * (size_t)n * E);
        l2norm_backward(dz, dzn, zn, norms, n, E);
        memset(drep, 0, sizeof(float) * (size_t)n * M * W);
        a.dctx = drep;
        text_backward(m, NULL, &a, dz, NULL); /* the tower is frozen: only the context's gradient */
        memset(grad, 0, sizeof(float) * (size_t)M * W);
        for (int k = 0; k < n; k++)
            for (int j = 0; j < M * W; j++) grad[j] += drep[(size_t)k * M * W + j];
    }
    tower_acts_free(&a);
    free(rep), free(drep), free(z), free(zn), free(norms), free(dzn), free(dz), free(s), free(ds);
    return loss;
}

typedef struct {
    const PaProblem *pp;
    const float *ctx;
    float *grad;
} PaRun;

static int pa_step(void *user, long step, float *loss, Err *e) {
    (void)step, (void)e;
    PaRun *r = user;
    *loss = (float)prompt_array_loss_grad(r->pp, r->ctx, r->grad);
    return 0;
}

/* prompt-array: the context is moved by Adam on
 *   L = sum_q sum_a Cov_i(s_qi, [y_i = a])^2  +  beta mean_k ||n(z_k(ctx)) - n(z_k)||^2
 * with s_qi the logit of training query q against labelled reference image i: the best linear
 * adversary reading the attribute off the similarities has nothing to use when every such
 * covariance is 0 (our simplification of Berg et al.'s adversarial training), while the general
 * subjects keep their features. */
static int train_prompt_array(Debias *d, const ClipModel *m, const Tokenizer *t, const DebiasData *dd, const DebiasParams *p,
                              Err *e) {
    const int ctxlen = m->cfg.context, W = m->cfg.t_width, E = m->cfg.embed_dim, M = p->n_ctx, A = dd->A;
    const int nq = dd->n_train_queries, nk = dd->n_keep, n = nq + nk;
    if (nq < 1 || dd->n_ref < 2) return err_set(e, "prompt-array needs training queries and labelled reference images");
    /* the labelled references, normalised */
    int nr = 0;
    float *X = xalloc_floats((size_t)dd->n_ref * E);
    int32_t *y = xmalloc(sizeof(int32_t) * (size_t)dd->n_ref);
    for (int i = 0; i < dd->n_ref; i++)
        if (dd->ref_attr[i] >= 0 && dd->ref_attr[i] < A) {
            memcpy(X + (size_t)nr * E, dd->ref_img + (size_t)i * E, sizeof(float) * (size_t)E);
            y[nr++] = dd->ref_attr[i];
        }
    l2norm_forward(X, NULL, X, nr, E);
    double *pa = xcalloc((size_t)A, sizeof(double));
    for (int i = 0; i < nr; i++) pa[y[i]] += 1.0 / nr;
    const char **subj = xmalloc(sizeof(char *) * (size_t)n);
    for (int i = 0; i < nq; i++) subj[i] = dd->train_queries[i];
    for (int i = 0; i < nk; i++) subj[nq + i] = dd->keep_classes[i];
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)n * ctxlen);
    int rc = clip_context_ids(m, t, dd->tpl, subj, n, M, ids, e);
    float *orig = xalloc_floats((size_t)n * E), *on = xalloc_floats((size_t)n * E);
    if (rc == 0) rc = clip_encode_filled(m, t, dd->tpl, subj, n, orig, e);
    if (rc == 0) l2norm_forward(on, NULL, orig, n, E);
    d->n_ctx = M, d->W = W;
    d->ctx = xalloc_floats((size_t)M * W);
    Rng r;
    rng_seed(&r, p->seed ^ 0xa77a);
    for (int k = 0; k < M * W; k++) d->ctx[k] = 0.02f * rng_normal(&r);
    float *g = xalloc_floats((size_t)M * W);
    PaProblem pp = {m, ids, n, nq, M, X, y, nr, A, pa, on, p->beta};
    PaRun run = {&pp, d->ctx, g};
    TrainSpec spec = {.label = "prompt-array", .total_steps = p->steps, .lr = p->lr, .beta1 = 0.9f, .beta2 = 0.999f,
                      .eps = 1e-8f, .params = d->ctx, .grads = g, .n_params = (long)M * W, .step = pa_step,
                      .user = &run, .samples_per_step = 1, .unit = "steps", .quiet = 1};
    TrainState st;
    if (rc == 0) rc = train_run(&spec, &st, e);
    free(X), free(y), free(pa), free(subj), free(ids), free(orig), free(on), free(g);
    return rc;
}

/* The dear adapter on normalised features: f' = f + W2 gelu(W1 f + b1) + b2. */
static void adapter_forward(const Debias *d, const float *f, float *h, float *a, float *out, int n) {
    const int D = d->D, H = d->hidden;
    linear_forward(h, f, d->w1, d->b1, n, D, H);
    gelu_forward(a, h, (long)n * H);
    linear_forward(out, a, d->w2, d->b2, n, H, D);
    for (long i = 0; i < (long)n * D; i++) out[i] += f[i];
}

void debias_adapter_images(const Debias *d, float *feats, int n) {
    const int D = d->D, H = d->hidden;
    float *f = xalloc_floats((size_t)n * D), *h = xalloc_floats((size_t)n * H), *a = xalloc_floats((size_t)n * H);
    l2norm_forward(f, NULL, feats, n, D);
    adapter_forward(d, f, h, a, feats, n);
    free(f), free(h), free(a);
}

double dear_loss_grad(const Debias *d, const DearProblem *q, float *grads) {
    const int D = d->D, H = d->hidden, n = q->n, A = q->A, K = q->K;
    float *h = xalloc_floats((size_t)n * H), *a = xalloc_floats((size_t)n * H), *fo = xalloc_floats((size_t)n * D);
    float *fon = xalloc_floats((size_t)n * D), *nrm = xalloc_floats((size_t)n), *u = xalloc_floats((size_t)n * A);
    float *zl = xalloc_floats((size_t)n * K), *dfo = xcalloc((size_t)n * D, sizeof(float)), *dfon = xalloc_floats((size_t)n * D);
    float *da = xcalloc((size_t)n * H, sizeof(float)), *dh = xcalloc((size_t)n * H, sizeof(float));
    adapter_forward(d, q->f, h, a, fo, n);
    double loss = 0;
    /* the classifier pushed to chance: CE to uniform on the labelled samples */
    linear_forward(u, fo, q->G, q->gb, n, D, A);
    softmax_forward(u, u, n, A);
    for (int i = 0; i < n; i++) {
        if (q->attr[i] < 0 || q->attr[i] >= A) continue;
        for (int c = 0; c < A; c++) {
            loss -= log(u[(size_t)i * A + c] + 1e-12) / A / q->nl;
            const float gu = (u[(size_t)i * A + c] - 1.0f / A) / q->nl;
            for (int j = 0; j < D; j++) dfo[(size_t)i * D + j] += gu * q->G[(size_t)c * D + j];
        }
    }
    /* zero-shot kept: KL(p0 || p(f')) over the kept classes */
    l2norm_forward(fon, nrm, fo, n, D);
    sgemm(false, true, n, K, D, q->scale, fon, D, q->T, D, 0.0f, zl, K);
    softmax_forward(zl, zl, n, K);
    for (long k = 0; k < (long)n * K; k++) {
        if (q->p0[k] > 0) loss += q->beta * q->p0[k] * log(q->p0[k] / (zl[k] + 1e-12)) / n;
        zl[k] = (float)(q->beta * (zl[k] - q->p0[k]) / n);
    }
    sgemm(false, false, n, D, K, q->scale, zl, K, q->T, D, 0.0f, dfon, D);
    l2norm_backward(dfo, dfon, fon, nrm, n, D);
    /* back through the adapter (the residual path carries no parameters) */
    const long NP = (long)H * D + H + (long)D * H + D;
    float *gw1 = grads, *gb1 = grads + (long)H * D, *gw2 = gb1 + H, *gb2 = gw2 + (long)D * H;
    memset(grads, 0, sizeof(float) * (size_t)NP);
    linear_backward(da, gw2, gb2, dfo, a, d->w2, n, H, D);
    gelu_backward(dh, da, h, (long)n * H);
    linear_backward(NULL, gw1, gb1, dh, q->f, d->w1, n, D, H);
    free(h), free(a), free(fo), free(fon), free(nrm), free(u), free(zl), free(dfo), free(dfon), free(da), free(dh);
    return loss;
}

typedef struct {
    Debias *d;
    const DebiasData *dd;
    const float *f, *T, *p0;
    int n, K, nl;
    float scale;
    double beta;
    float *G, *gb, *h, *a, *fo, *u, *dG;
    float *grads; /* the trainer's */
} DearRun;

/* One step: the classifier takes 5 gradient steps of CE on the labelled adapted features, then the
 * adapter's gradient of the DEAR loss. */
static int dear_step(void *user, long step, float *loss, Err *e) {
    (void)step, (void)e;
    DearRun *r = user;
    const int D = r->d->D, A = r->dd->A, n = r->n;
    adapter_forward(r->d, r->f, r->h, r->a, r->fo, n);
    for (int it = 0; it < 5; it++) {
        linear_forward(r->u, r->fo, r->G, r->gb, n, D, A);
        softmax_forward(r->u, r->u, n, A);
        memset(r->dG, 0, sizeof(float) * (size_t)A * D);
        for (int i = 0; i < n; i++) {
            const int yi = r->dd->ref_attr[i];
            if (yi < 0 || yi >= A) continue;
            for (int c = 0; c < A; c++) {
                const float gu = (r->u[(size_t)i * A + c] - (c == yi)) / r->nl;
                r->gb[c] -= 0.5f * gu;
                for (int j = 0; j < D; j++) r->dG[(size_t)c * D + j] += gu * r->fo[(size_t)i * D + j];
            }
        }
        for (int k = 0; k < A * D; k++) r->G[k] -= 0.5f * r->dG[k];
    }
    DearProblem dp = {r->f, n, r->dd->ref_attr, A, r->nl, r->G, r->gb, r->T, r->K, r->scale, r->p0, r->beta};
    *loss = (float)dear_loss_grad(r->d, &dp, r->grads);
    return 0;
}

/* dear: alternately, a linear attribute classifier G learns to read the attribute off f' (CE),
 * and the adapter is moved by Adam on
 *   L = CE(G f', uniform)  +  beta KL(p_zs(f) || p_zs(f'))  (p_zs: zero-shot over the kept classes)
 * so the classifier is pushed to chance while zero-shot predictions stay (after Seth et al.). */
static int train_dear(Debias *d, const ClipModel *m, const Tokenizer *t, const DebiasData *dd, const DebiasParams *p, Err *e) {
    const int D = d->D, A = dd->A, H = 64, K = dd->n_keep;
    if (dd->n_ref < 2 || K < 2) return err_set(e, "dear needs reference images and at least two classes to keep");
    /* all references (zero-shot term) and the labelled ones (classifier) */
    const int n = dd->n_ref;
    float *f = xalloc_floats((size_t)n * D);
    l2norm_forward(f, NULL, dd->ref_img, n, D);
    float *T = xalloc_floats((size_t)K * D);
    int rc = clip_encode_filled(m, t, dd->tpl, dd->keep_classes, K, T, e);
    if (rc) {
        free(f), free(T);
        return rc;
    }
    l2norm_forward(T, NULL, T, K, D);
    const float scale = expf(m->logit_scale[0]);
    float *p0 = xalloc_floats((size_t)n * K);
    sgemm(false, true, n, K, D, scale, f, D, T, D, 0.0f, p0, K);
    softmax_forward(p0, p0, n, K);
    d->hidden = H;
    const long NP = (long)H * D + H + (long)D * H + D;
    d->adapter = xcalloc((size_t)NP, sizeof(float)); /* b1, w2, b2 zero: the identity at first */
    d->w1 = d->adapter, d->b1 = d->w1 + (long)H * D, d->w2 = d->b1 + H, d->b2 = d->w2 + (long)D * H;
    Rng r;
    rng_seed(&r, p->seed ^ 0xdea7);
    for (int k = 0; k < H * D; k++) d->w1[k] = rng_normal(&r) / sqrtf((float)D);
    DearRun run = {.d = d, .dd = dd, .f = f, .n = n, .T = T, .K = K, .scale = scale, .p0 = p0, .beta = p->beta};
    run.G = xcalloc((size_t)A * D, sizeof(float)), run.gb = xcalloc((size_t)A, sizeof(float));
    run.h = xalloc_floats((size_t)n * H), run.a = xalloc_floats((size_t)n * H), run.fo = xalloc_floats((size_t)n * D);
    run.u = xalloc_floats((size_t)n * A), run.dG = xalloc_floats((size_t)A * D);
    for (int i = 0; i < n; i++) run.nl += dd->ref_attr[i] >= 0 && dd->ref_attr[i] < A;
    float *grads = xalloc_floats((size_t)NP);
    run.grads = grads;
    TrainSpec spec = {.label = "dear", .total_steps = p->steps, .lr = p->lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                      .params = d->adapter, .grads = grads, .n_params = NP, .step = dear_step, .user = &run,
                      .samples_per_step = 1, .unit = "steps", .quiet = 1};
    TrainState st;
    rc = train_run(&spec, &st, e);
    free(f), free(T), free(p0), free(run.G), free(run.gb), free(grads), free(run.h), free(run.a), free(run.fo);
    free(run.u), free(run.dG);
    return rc;
}

int debias_build_adapter(Debias *d, const ClipModel *m, const Tokenizer *t, const DebiasData *dd, const DebiasParams *p,
                         Err *e) {
    if (d->method == DB_PROMPT_ARRAY) return train_prompt_array(d, m, t, dd, p, e);
    if (d->method == DB_DEAR) return train_dear(d, m, t, dd, p, e);
    return err_set(e, "not an adapter method");
}
