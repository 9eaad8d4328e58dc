/* Domain unlearning: the data splits, the methods' training steps and the measurements (the
 * header lists the methods; domain_file.c saves and applies what they learn). */
#include "forget/domain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/cmaes.h"
#include "core/gemm.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/progress.h"
#include "core/rng.h"
#include "eval/forget_metrics.h"
#include "eval/tsne.h"
#include "eval/zeroshot.h"
#include "forget/context_search.h"
#include "forget/domain_file.h"
#include "forget/domain_loss.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "models/clip_encode.h"
#include "models/clip_params.h"
#include "models/clip_prompts.h"
#include "train/trainer.h"

const DomainMethod DOMAIN_METHODS[] = {
    {"adu", 1, 1, 1, 1, DK_PROMPTS, "VPT-deep + InstaPG + DDL (ADU)"},
    {"baseline", 1, 0, 0, 0, DK_PROMPTS, "VPT-deep with the two class losses"},
    {"clipfit", 0, 0, 0, 0, DK_CLIPFIT, "bias terms and LayerNorm parameters of the image tower"},
    {"lp++", 0, 0, 0, 0, DK_LINEAR, "a linear probe initialised from the text classifier"},
    {"bbf", 0, 0, 0, 0, DK_BBF, "BBF's context search, scored on the classifier's outputs only"},
    {"adu-ddl-only", 1, 0, 1, 1, DK_PROMPTS, "ablation: VPT-deep + DDL, no InstaPG"},
    {"adu-instapg-only", 1, 1, 0, 0, DK_PROMPTS, "ablation: VPT-deep + InstaPG, no DDL"},
    {"ce-only", 1, 1, 1, 0, DK_PROMPTS, "inside DDL: the domain CE only (lambda = 0)"},
    {"mmd-only", 1, 1, 0, 1, DK_PROMPTS, "inside DDL: the MMD only (gamma = 0)"},
};
const int N_DOMAIN_METHODS = (int)(sizeof DOMAIN_METHODS / sizeof *DOMAIN_METHODS);

const DomainMethod *domain_method_find(const char *name) {
    for (int i = 0; i < N_DOMAIN_METHODS; i++)
        if (strcmp(DOMAIN_METHODS[i].name, name) == 0) return &DOMAIN_METHODS[i];
    return NULL;
}

double domain_default_lr(const DomainMethod *dm) {
    switch (dm->kind) {
    case DK_CLIPFIT: return 3e-3;
    case DK_LINEAR: return 1e-2;
    default: return 3e-3;
    }
}

void domain_defaults(DomainOpts *o) {
    *o = (DomainOpts){.method = "adu", .tpl = NULL, .shots = 8, .val_shots = 8, .tokens = 8,
                      .layers = 0, .pg_layer = -1, .epochs = 50, .batch = 32, .eval_every = 5, .lr = 0,
                      .gamma = 1, .lambda = 0.1, .bbf_budget = 2000, .seed = 0};
}

int domain_parse_forget(const char *list, char *const *names, int n, uint8_t *forget, Err *e) {
    memset(forget, 0, (size_t)n);
    char known[512] = "";
    for (int k = 0; k < n; k++) {
        size_t l = strlen(known);
        snprintf(known + l, sizeof known - l, "%s\"%s\"", k ? ", " : "", names[k]);
    }
    if (!list || !*list) return err_set(e, "--forget-domains is empty: name one or more of %s", known);
    char *dup = xstrdup(list), *save = NULL;
    int rc = 0, count = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        int k = 0;
        while (k < n && strcmp(names[k], tok) != 0) k++;
        if (k == n) rc = err_set(e, "--forget-domains: unknown domain \"%s\" (this data set has %s)", tok, known);
        else count += !forget[k], forget[k] = 1;
    }
    free(dup);
    if (rc == 0 && count == n)
        rc = err_set(e, "--forget-domains names every domain (%s): nothing would be kept to measure or memorise",
                     known);
    return rc;
}

/* ------------------------------------------------------------------ data */

/* Model input of a sample list: pixels [n, 3, R, R], labels, domains. */
typedef struct {
    float *px;
    int32_t *y, *dom;
    int n;
} Split;

static void split_free(Split *s) {
    free(s->px), free(s->y), free(s->dom);
    memset(s, 0, sizeof *s);
}

/* shots samples of every (class, domain) from d, seeded: distinct images where there are enough
 * (skip: the first `skip` of each shuffled list are another split's), and for glyph sets (one
 * glyph per class and style) that many compositions of it, each from its own seed. */
static void split_sample(const Dataset *d, int res, int shots, int skip, uint64_t seed, Split *s) {
    const int C = d->n_classes, D = d->n_domains;
    int *cnt = xcalloc((size_t)C * D, sizeof(int)), *fill = xcalloc((size_t)C * D, sizeof(int));
    for (int i = 0; i < d->n; i++) cnt[d->labels[i] * D + d->domains[i]]++;
    int **lists = xcalloc((size_t)C * D, sizeof(int *));
    for (int g = 0; g < C * D; g++) lists[g] = xmalloc(sizeof(int) * (size_t)(cnt[g] > 0 ? cnt[g] : 1));
    for (int i = 0; i < d->n; i++) {
        const int g = d->labels[i] * D + d->domains[i];
        lists[g][fill[g]++] = i;
    }
    s->n = 0;
    s->px = xalloc_floats((size_t)C * D * shots * 3 * res * res);
    s->y = xmalloc(sizeof(int32_t) * (size_t)C * D * shots);
    s->dom = xmalloc(sizeof(int32_t) * (size_t)C * D * shots);
    for (int g = 0; g < C * D; g++) {
        if (!cnt[g]) continue;
        Rng r;
        rng_seed(&r, train_mix(seed, (uint64_t)g));
        rng_shuffle(&r, lists[g], cnt[g], sizeof(int));
        for (int k = 0; k < shots; k++) {
            int idx;
            Rng view;
            if (d->glyphs) {
                idx = lists[g][k % cnt[g]];
                rng_seed(&view, train_mix(seed ^ 0xd0a1, (uint64_t)g * 1024 + (uint64_t)(k + skip)));
            } else {
                if (skip + k >= cnt[g]) break;
                idx = lists[g][skip + k];
            }
            dataset_pixels(d, &idx, 1, res, &PIXELS_CLIP, s->px + (size_t)s->n * 3 * res * res, d->glyphs ? &view : NULL,
                           0);
            s->y[s->n] = d->labels[idx], s->dom[s->n] = d->domains[idx];
            s->n++;
        }
    }
    for (int g = 0; g < C * D; g++) free(lists[g]);
    free(lists), free(cnt), free(fill);
}

/* Normalised image features of samples idx[0..n) of d (or of a Split when d is NULL), through
 * the model as it stands (prompts attached or not). */
static int features_of(const ClipModel *m, const Dataset *d, const Split *s, int n, float *out, const char *label,
                       int quiet, Err *e) {
    const int E = m->cfg.embed_dim, R = m->cfg.image_res, chunk = 256;
    float *px = d ? xalloc_floats((size_t)chunk * 3 * R * R) : NULL, *f = xalloc_floats((size_t)chunk * E);
    int *idx = xmalloc(sizeof(int) * chunk), rc = 0;
    Progress bar;
    progress_start(&bar, label, n, quiet || n < 2048);
    for (int b = 0; b < n && rc == 0; b += chunk) {
        const int nb = n - b < chunk ? n - b : chunk;
        const float *in;
        if (d) {
            for (int i = 0; i < nb; i++) idx[i] = b + i;
            dataset_pixels(d, idx, nb, R, &PIXELS_CLIP, px, NULL, 0);
            in = px;
        } else {
            in = s->px + (size_t)b * 3 * R * R;
        }
        rc = clip_encode_image(m, in, nb, f, NULL, e);
        if (rc == 0) l2norm_forward(out + (size_t)b * E, NULL, f, nb, E);
        progress_update(&bar, b + nb, 0, "img", NULL);
    }
    progress_end(&bar);
    free(px), free(f), free(idx);
    return rc;
}

/* Accuracy per domain and Mem / For / H of the classifier logits = scale f W^T. */
typedef struct {
    double mem, fe, h, dom_acc[DOMAIN_MAX];
} Score;

static Score score_features(const float *f, const int32_t *y, const int32_t *dom, int n, const float *Wc, int C, int E,
                            float scale, const uint8_t *forget, int D) {
    Score sc = {0};
    float *lg = xalloc_floats((size_t)C);
    long right[DOMAIN_MAX] = {0}, total[DOMAIN_MAX] = {0}, kr = 0, kn = 0, fr = 0, fn = 0;
    for (int i = 0; i < n; i++) {
        sgemm(false, true, 1, C, E, scale, f + (size_t)i * E, E, Wc, E, 0.0f, lg, C);
        int best = 0;
        for (int c = 1; c < C; c++)
            if (lg[c] > lg[best]) best = c;
        const int ok = best == y[i];
        right[dom[i]] += ok, total[dom[i]]++;
        if (forget[dom[i]]) fr += ok, fn++;
        else kr += ok, kn++;
    }
    for (int k = 0; k < D; k++) sc.dom_acc[k] = total[k] ? (double)right[k] / total[k] : 0;
    sc.mem = kn ? (double)kr / kn : 0;
    sc.fe = fn ? 1.0 - (double)fr / fn : 0;
    sc.h = harmonic_h(sc.fe, sc.mem);
    free(lg);
    return sc;
}

/* A linear domain probe (multinomial logistic regression, Adam, 300 full-batch steps) fit on
 * (fa, da) and its accuracy on (fb, db). */
static double domain_probe(const float *fa, const int32_t *da, int na, const float *fb, const int32_t *db, int nb, int E,
                           int D) {
    float *W = xcalloc((size_t)D * (E + 1), sizeof(float)), *g = xcalloc((size_t)D * (E + 1), sizeof(float));
    AdamW opt;
    adamw_init(&opt, (long)D * (E + 1), 0.9f, 0.999f, 1e-8f);
    for (int it = 0; it < 300; it++) {
        memset(g, 0, sizeof(float) * (size_t)D * (E + 1));
        domain_ce_grad(fa, na, E, W, W + (size_t)D * E, D, da, NULL, g, g + (size_t)D * E);
        adamw_begin_step(&opt);
        adamw_update(&opt, W, g, 0, (long)D * (E + 1), 0.05, 0);
    }
    long right = 0;
    for (int i = 0; i < nb; i++) {
        int best = 0;
        double bs = -INFINITY;
        for (int k = 0; k < D; k++) {
            double s = W[(size_t)D * E + k];
            for (int j = 0; j < E; j++) s += (double)W[(size_t)k * E + j] * fb[(size_t)i * E + j];
            if (s > bs) bs = s, best = k;
        }
        right += best == db[i];
    }
    adamw_free(&opt);
    free(W), free(g);
    return nb ? (double)right / nb : 0;
}

/* ------------------------------------------------------------ training */

typedef struct {
    const DomainOpts *o;
    const DomainMethod *dm;
    ClipModel *m;
    ClipModel *g;          /* clipfit: the gradient of the whole model (only its chosen entries move) */
    DomainAdapter *ad, *gad; /* prompt methods and lp++: what is trained and its gradient */
    float *params, *grads;
    long n_params;
    const Split *tr, *va;
    const float *T;        /* [C, E] normalised class text features */
    int C, E, D;
    float scale;
    const uint8_t *forget; /* [D] */
    int steps_per_epoch;
    /* per step */
    TowerActs a;
    ClipPromptRun run;
    int *perm;
    float *px, *f, *fn, *norms, *dfn, *df, *tmp, *lg, *dlg, *tmpW;
    int32_t *y, *dom;
    uint8_t *fs;
    float *ftr;            /* lp++: the training features, fixed */
    float *wn, *wnorms, *gwn; /* lp++: the probe's rows normalised (compared by cosine, as text features are) */
    /* validation */
    float *fva;
    float *best;
    double best_h;
    int best_epoch;
    float last_ddl;
} Trainer;

/* logits = s fn W^T, the class losses, their gradient into dfn (and into W's gradient gW when set). */
static double class_loss(Trainer *t, const float *fn, int B, const float *Wc, float *gW) {
    const int C = t->C, E = t->E;
    sgemm(false, true, B, C, E, t->scale, fn, E, Wc, E, 0.0f, t->lg, C);
    for (int i = 0; i < B; i++) t->fs[i] = t->forget[t->dom[i]];
    const double l = forget_loss_grad_samples(t->lg, t->y, B, C, t->fs, t->dlg);
    sgemm(false, false, B, E, C, t->scale, t->dlg, C, Wc, E, 0.0f, t->dfn, E);
    if (gW) sgemm(true, false, C, E, B, t->scale, t->dlg, C, fn, E, 1.0f, gW, E);
    return l;
}

/* DDL on the batch's normalised features: gamma CE - lambda MMD^2, gradient added into dfn. */
static double ddl_loss(Trainer *t, const float *fn, int B) {
    const int E = t->E, D = t->D;
    double l = 0;
    if (t->dm->ce && t->o->gamma != 0) {
        memset(t->tmp, 0, sizeof(float) * (size_t)B * E);
        memset(t->tmpW, 0, sizeof(float) * (size_t)D * (E + 1));
        l += t->o->gamma * domain_ce_grad(fn, B, E, t->ad->head_w, t->ad->head_b, D, t->dom, t->tmp, t->tmpW,
                                          t->tmpW + (size_t)D * E);
        for (long i = 0; i < (long)B * E; i++) t->dfn[i] += (float)t->o->gamma * t->tmp[i];
        for (long i = 0; i < (long)D * E; i++) t->gad->head_w[i] += (float)t->o->gamma * t->tmpW[i];
        for (int i = 0; i < D; i++) t->gad->head_b[i] += (float)t->o->gamma * t->tmpW[(size_t)D * E + i];
    }
    if (t->dm->mmd && t->o->lambda != 0) {
        memset(t->tmp, 0, sizeof(float) * (size_t)B * E);
        l -= t->o->lambda * mmd2_grad(fn, B, E, t->dom, D, 0, t->tmp);
        for (long i = 0; i < (long)B * E; i++) t->dfn[i] -= (float)t->o->lambda * t->tmp[i];
    }
    t->last_ddl = (float)l;
    return l;
}

static int train_step(void *user, long step, float *loss, Err *e) {
    (void)e;
    Trainer *t = user;
    const int n = t->tr->n, B = t->o->batch < n ? t->o->batch : n, E = t->E, R = t->m->cfg.image_res;
    const long epoch = step / t->steps_per_epoch, in_epoch = step % t->steps_per_epoch;
    if (in_epoch == 0 || step == 0) train_epoch_order(t->perm, n, t->o->seed, (int)epoch);
    for (int i = 0; i < B; i++) {
        const int k = t->perm[(in_epoch * B + i) % n];
        t->y[i] = t->tr->y[k], t->dom[i] = t->tr->dom[k];
        if (t->dm->kind == DK_LINEAR) memcpy(t->fn + (size_t)i * E, t->ftr + (size_t)k * E, sizeof(float) * (size_t)E);
        else memcpy(t->px + (size_t)i * 3 * R * R, t->tr->px + (size_t)k * 3 * R * R, sizeof(float) * (size_t)3 * R * R);
    }
    if (t->dm->kind == DK_LINEAR) { /* lp++: the probe moves, the features are fixed */
        l2norm_forward(t->wn, t->wnorms, t->ad->lp_w, t->C, E);
        memset(t->gwn, 0, sizeof(float) * (size_t)t->C * E);
        *loss = (float)class_loss(t, t->fn, B, t->wn, t->gwn);
        l2norm_backward(t->gad->lp_w, t->gwn, t->wn, t->wnorms, t->C, E);
        return 0;
    }
    const ClipImagePrompts *p = t->dm->kind == DK_PROMPTS ? &t->ad->prompts : NULL;
    image_acts_reuse(&t->a, t->m, B, p ? p->tokens : 0, p ? p->layers : 0, 1);
    if (p) clip_prompts_bind(&t->run, p, &t->gad->prompts, &t->a, 1);
    image_forward(t->m, &t->a, t->px, t->f, NULL);
    l2norm_forward(t->fn, t->norms, t->f, B, E);
    double l = class_loss(t, t->fn, B, t->T, NULL);
    if (p) l += ddl_loss(t, t->fn, B);
    memset(t->df, 0, sizeof(float) * (size_t)B * E);
    l2norm_backward(t->df, t->dfn, t->fn, t->norms, B, E);
    image_backward(t->m, t->g, &t->a, t->df, NULL);
    *loss = (float)l;
    return 0;
}

/* Validation H of the current state; the best state is kept (the method's chosen epoch). */
static int validate(void *user, long steps_done, Progress *bar, Err *e) {
    (void)bar;
    Trainer *t = user;
    const float *Wc = t->T;
    if (t->dm->kind == DK_LINEAR) {
        l2norm_forward(t->wn, NULL, t->ad->lp_w, t->C, t->E);
        Wc = t->wn;
        memcpy(t->fva, t->ftr + (size_t)t->tr->n * t->E, sizeof(float) * (size_t)t->va->n * t->E);
    } else {
        if (t->dm->kind == DK_PROMPTS) t->m->image_prompts = &t->ad->prompts;
        const int rc = features_of(t->m, NULL, t->va, t->va->n, t->fva, "validation", 1, e);
        t->m->image_prompts = NULL;
        if (rc) return rc;
    }
    const Score s = score_features(t->fva, t->va->y, t->va->dom, t->va->n, Wc, t->C, t->E, t->scale, t->forget, t->D);
    if (s.h > t->best_h) {
        t->best_h = s.h;
        t->best_epoch = (int)(steps_done / t->steps_per_epoch);
        memcpy(t->best, t->params, sizeof(float) * (size_t)t->n_params);
    }
    return 0;
}

static void train_status(void *user, long step, float loss, char *buf, size_t cap) {
    (void)step;
    Trainer *t = user;
    snprintf(buf, cap, "loss %.3f (DDL %.3f)  best validation H %.3f", (double)loss, (double)t->last_ddl, t->best_h);
}

static int run_gradient_method(Trainer *t, const DomainOpts *o, long *trainable, Err *e) {
    const int E = t->E, B = o->batch < t->tr->n ? o->batch : t->tr->n, R = t->m->cfg.image_res;
    t->steps_per_epoch = (t->tr->n + B - 1) / B;
    NnTable mt = {0};
    if (t->dm->kind == DK_CLIPFIT) {
        t->g = xcalloc(1, sizeof(ClipModel));
        clip_init_zeros(t->g, &t->m->cfg);
        mt = clip_param_table(t->m);
        *trainable = 0;
        for (int i = 0; i < mt.n; i++) {
            mt.p[i].frozen = !domain_clipfit_entry(&mt.p[i]);
            mt.p[i].decay = 0;
            if (!mt.p[i].frozen) *trainable += mt.p[i].count;
        }
        t->params = t->m->params, t->grads = t->g->params, t->n_params = t->m->n_params;
    } else {
        t->params = t->ad->arena, t->grads = t->gad->arena, t->n_params = t->ad->n_params;
        *trainable = t->ad->n_params;
    }
    t->perm = xmalloc(sizeof(int) * (size_t)t->tr->n);
    t->px = xalloc_floats((size_t)B * 3 * R * R);
    t->f = xalloc_floats((size_t)B * E), t->fn = xalloc_floats((size_t)B * E), t->norms = xalloc_floats((size_t)B);
    t->dfn = xalloc_floats((size_t)B * E), t->df = xalloc_floats((size_t)B * E), t->tmp = xalloc_floats((size_t)B * E);
    t->lg = xalloc_floats((size_t)B * t->C), t->dlg = xalloc_floats((size_t)B * t->C);
    t->tmpW = xalloc_floats((size_t)t->D * (E + 1));
    t->wn = xalloc_floats((size_t)t->C * E), t->wnorms = xalloc_floats((size_t)t->C), t->gwn = xalloc_floats((size_t)t->C * E);
    t->y = xmalloc(sizeof(int32_t) * (size_t)B), t->dom = xmalloc(sizeof(int32_t) * (size_t)B), t->fs = xmalloc((size_t)B);
    t->fva = xalloc_floats((size_t)t->va->n * E);
    t->best = xalloc_floats((size_t)t->n_params);
    t->best_h = -1;
    TrainSpec spec = {.label = t->dm->name, .total_steps = (long)o->epochs * t->steps_per_epoch,
                      .lr = o->lr > 0 ? o->lr : domain_default_lr(t->dm),
                      .warmup_frac = 0.05, .cosine = 1, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                      .params = t->params, .grads = t->grads, .n_params = t->n_params,
                      .table = t->dm->kind == DK_CLIPFIT ? &mt : NULL, .step = train_step, .evaluate = validate,
                      .eval_every = (long)o->eval_every * t->steps_per_epoch, .eval_at_start = 1, .status = train_status,
                      .user = t, .samples_per_step = B, .unit = "img", .quiet = o->quiet};
    TrainState st;
    int rc = train_run(&spec, &st, e);
    if (rc == 0) memcpy(t->params, t->best, sizeof(float) * (size_t)t->n_params); /* the best validation epoch */
    nn_table_free(&mt);
    tower_acts_free(&t->a);
    clip_prompt_run_free(&t->run);
    free(t->perm), free(t->px), free(t->f), free(t->fn), free(t->norms), free(t->dfn), free(t->df), free(t->tmp);
    free(t->lg), free(t->dlg), free(t->tmpW), free(t->y), free(t->dom), free(t->fs), free(t->fva), free(t->best);
    free(t->wn), free(t->wnorms), free(t->gwn);
    if (t->g) clip_free(t->g), free(t->g);
    t->g = NULL;
    return rc;
}

/* ------------------------------------------------------------------ bbf */

/* Text features of the class prompts with one context [M, W] shared by all. */
static int context_features(const ClipModel *m, const int32_t *ids, int C, const float *ctx, int M, float *out, Err *e) {
    const int W = m->cfg.t_width, E = m->cfg.embed_dim;
    float *rep = xalloc_floats((size_t)C * M * W), *tf = xalloc_floats((size_t)C * E);
    for (int c = 0; c < C; c++) memcpy(rep + (size_t)c * M * W, ctx, sizeof(float) * (size_t)M * W);
    int rc = clip_encode_text_context(m, ids, C, rep, M, tf, e);
    if (rc == 0) l2norm_forward(out, NULL, tf, C, E);
    free(rep), free(tf);
    return rc;
}

/* BBF (Kuwana et al. 2024) with the domain-wise loss: CMA-ES over a shared text context, each
 * candidate scored by the per-sample forget loss on the class probabilities of the training shots
 * (the classifier's outputs only: no gradient, no features reach the search); the candidate with
 * the best validation H is kept. */
static int run_bbf(const ClipModel *m, const int32_t *ids, int C, const float *ftr, const Split *tr, const float *fva,
                   const Split *va, const uint8_t *forget, int D, float scale, const DomainOpts *o, float *ctx_out,
                   double *val_h, Err *e) {
    const int W = m->cfg.t_width, E = m->cfg.embed_dim, M = 4;
    float *p0 = xcalloc((size_t)W, sizeof(float)), *row = xalloc_floats((size_t)W);
    double ss = 0;
    for (int v = 0; v < m->cfg.vocab; v++) { /* the token table's mean and spread: BBF's embedding space */
        clip_token_row(m, v, row);
        for (int k = 0; k < W; k++) p0[k] += row[k] / m->cfg.vocab;
    }
    for (int v = 0; v < m->cfg.vocab; v++) {
        clip_token_row(m, v, row);
        for (int k = 0; k < W; k++) ss += ((double)row[k] - p0[k]) * ((double)row[k] - p0[k]);
    }
    const float sigma = (float)sqrt(ss / ((double)m->cfg.vocab * W));
    ContextSearch cs;
    context_search_init(&cs, CS_BBF, M, W, p0, sigma, 10, 10, 5, o->seed);
    float *T = xalloc_floats((size_t)C * E), *lg = xalloc_floats((size_t)tr->n * C);
    uint8_t *fs = xmalloc((size_t)tr->n);
    for (int i = 0; i < tr->n; i++) fs[i] = forget[tr->dom[i]];
    double *fit = xmalloc(sizeof(double) * (size_t)cs.lambda);
    int rc = 0;
    *val_h = -1;
    Progress bar;
    progress_start(&bar, "bbf", o->bbf_budget, o->quiet);
    long spent = 0;
    for (int gen = 0; spent < o->bbf_budget && rc == 0; gen++) {
        const float *pop = context_search_ask(&cs);
        for (int k = 0; k < cs.lambda && rc == 0; k++) {
            rc = context_features(m, ids, C, pop + (size_t)k * M * W, M, T, e);
            sgemm(false, true, tr->n, C, E, scale, ftr, E, T, E, 0.0f, lg, C);
            fit[k] = forget_loss_grad_samples(lg, tr->y, tr->n, C, fs, NULL);
        }
        spent += cs.lambda;
        if (rc) break;
        context_search_tell(&cs, fit);
        if (gen % 5 == 0 || spent >= o->bbf_budget) { /* the generation's best, on validation */
            const float *c = context_search_pick(&cs);
            rc = context_features(m, ids, C, c, M, T, e);
            const Score s = score_features(fva, va->y, va->dom, va->n, T, C, E, scale, forget, D);
            if (s.h > *val_h) *val_h = s.h, memcpy(ctx_out, c, sizeof(float) * (size_t)M * W);
        }
        char status[64];
        snprintf(status, sizeof status, "best validation H %.3f", *val_h);
        progress_update(&bar, spent, 0, "cand", status);
    }
    progress_end(&bar);
    context_search_free(&cs);
    free(p0), free(row), free(T), free(lg), free(fs), free(fit);
    return rc;
}

/* ------------------------------------------------------------------ run */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int has_split(const char *dataset, const char *split) {
    int n;
    const DatasetEntry *r = dataset_registry(&n);
    const char *colon = strchr(dataset, ':');
    const size_t len = colon ? (size_t)(colon - dataset) : strlen(dataset);
    for (int i = 0; i < n; i++)
        if (strlen(r[i].name) == len && strncmp(r[i].name, dataset, len) == 0) return strstr(r[i].splits, split) != NULL;
    return 0;
}

struct DomainCache {
    char dataset[256], model[1024];
    Dataset tr, te, va;
    int have_data, have_va;
    float *fte0;
    int nte;
};

DomainCache *domain_cache_new(void) { return xcalloc(1, sizeof(DomainCache)); }

/* Frees what c holds and leaves it empty (a cache on the stack or the heap). */
static void cache_release(DomainCache *c) {
    if (c->have_data) dataset_free(&c->tr), dataset_free(&c->te);
    if (c->have_va) dataset_free(&c->va);
    free(c->fte0);
    memset(c, 0, sizeof *c);
}

void domain_cache_free(DomainCache *c) {
    if (!c) return;
    cache_release(c);
    free(c);
}

/* NAME:train, NAME:test and NAME:val (where the registry lists it) into c. */
static int load_splits(DomainCache *c, const char *dataset, const char *dir, Err *e) {
    char spec[300];
    snprintf(spec, sizeof spec, "%s:train", dataset);
    if (dataset_load_named(&c->tr, spec, dir, e)) return err_prefix(e, "%s: ", spec);
    snprintf(spec, sizeof spec, "%s:test", dataset);
    if (dataset_load_named(&c->te, spec, dir, e)) {
        dataset_free(&c->tr);
        return err_prefix(e, "%s: ", spec);
    }
    c->have_data = 1;
    if (has_split(dataset, "val")) {
        snprintf(spec, sizeof spec, "%s:val", dataset);
        if (dataset_load_named(&c->va, spec, dir, e)) return err_prefix(e, "%s: ", spec);
        c->have_va = 1;
    }
    snprintf(c->dataset, sizeof c->dataset, "%s", dataset);
    return 0;
}

int domain_run(const DomainOpts *o, DomainResult *r, Err *e) {
    memset(r, 0, sizeof *r);
    const double t0 = now_s();
    const DomainMethod *dm = domain_method_find(o->method);
    if (!dm) {
        char list[256] = "";
        for (int i = 0; i < N_DOMAIN_METHODS; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", DOMAIN_METHODS[i].name);
        }
        return err_set(e, "unknown domain-unlearning method \"%s\" (%s)", o->method, list);
    }
    snprintf(r->method, sizeof r->method, "%s", dm->name);
    snprintf(r->dataset, sizeof r->dataset, "%s", o->dataset);
    DomainCache own = {0}, *cache = o->cache ? o->cache : &own;
    ClipModel m = {0};
    Tokenizer tok = {0};
    int have_tok = 0, rc = 0;
    if (cache->have_data && strcmp(cache->dataset, o->dataset) != 0) cache_release(cache);
    if (!cache->have_data && load_splits(cache, o->dataset, o->data_dir, e)) {
        rc = -1;
        goto done;
    }
    const Dataset *dtrp = &cache->tr, *dtep = &cache->te, *dvap = cache->have_va ? &cache->va : NULL;
    if (!dtrp->domains || dtrp->n_domains < 2) {
        rc = err_set(e, "%s has no domain labels (a data set with two or more domains is needed: fmnist-domains, "
                        "emoji100)", o->dataset);
        goto done;
    }
    if (dtrp->n_domains > DOMAIN_MAX) {
        rc = err_set(e, "%s has %d domains; at most %d are supported", o->dataset, dtrp->n_domains, DOMAIN_MAX);
        goto done;
    }
    const int C = dtrp->n_classes, D = dtrp->n_domains;
    r->n_domains = D, r->n_classes = C;
    for (int k = 0; k < D; k++) snprintf(r->domain_names[k], sizeof r->domain_names[k], "%s", dtrp->domain_names[k]);
    if ((rc = domain_parse_forget(o->forget, dtrp->domain_names, D, r->forget, e))) goto done;
    ClipLoadOpts lo = {-1, dm->kind == DK_CLIPFIT}; /* clipfit's gradient model holds the token table: so must m */
    if ((rc = clip_load(&m, o->model, &lo, e))) goto done;
    if (o->precision != PREC_FP32 && (rc = clip_set_precision(&m, (Precision)o->precision, e))) goto done;
    if (!m.cfg.has_vision || !m.cfg.has_text) {
        rc = err_set(e, "%s: domain unlearning needs both towers", o->model);
        goto done;
    }
    const int val_split = dvap != NULL;
    if ((rc = tokenizer_init(&tok, e))) goto done;
    have_tok = 1;
    const int E = m.cfg.embed_dim, Rz = m.cfg.image_res;
    const char *tpl = o->tpl ? o->tpl : eval_default_template(dtrp);
    const float scale = expf(m.logit_scale[0]);
    /* the fixed text classifier "a photo of a {class}." */
    float *T = xalloc_floats((size_t)C * E), *tf = xalloc_floats((size_t)C * E);
    if ((rc = clip_encode_filled(&m, &tok, tpl, (const char *const *)dtrp->class_names, C, tf, e)) == 0)
        l2norm_forward(T, NULL, tf, C, E);
    free(tf);
    /* splits: the few shots; validation (the data set's val split, else more shots of train) */
    Split tr = {0}, va = {0};
    split_sample(dtrp, Rz, o->shots, 0, o->seed, &tr);
    if (val_split) split_sample(dvap, Rz, o->val_shots, 0, o->seed ^ 0x7a1, &va);
    else split_sample(dtrp, Rz, o->val_shots, o->shots, o->seed, &va);
    r->train_images = tr.n;
    const int nte = o->max_test > 0 && o->max_test < dtep->n ? o->max_test : dtep->n;
    r->test_images = nte;
    float *fte0 = xalloc_floats((size_t)nte * E), *fva0 = xalloc_floats((size_t)va.n * E);
    float *fte = xalloc_floats((size_t)nte * E), *fva = xalloc_floats((size_t)va.n * E);
    float *ftrva = xalloc_floats((size_t)(tr.n + va.n) * E);
    if (rc == 0 && cache->fte0 && cache->nte == nte && strcmp(cache->model, o->model) == 0) {
        memcpy(fte0, cache->fte0, sizeof(float) * (size_t)nte * E);
    } else if (rc == 0 && (rc = features_of(&m, dtep, NULL, nte, fte0, "zero-shot test", o->quiet, e)) == 0) {
        free(cache->fte0);
        cache->fte0 = xalloc_floats((size_t)nte * E);
        memcpy(cache->fte0, fte0, sizeof(float) * (size_t)nte * E);
        cache->nte = nte;
        snprintf(cache->model, sizeof cache->model, "%s", o->model);
    }
    if (rc == 0) rc = features_of(&m, NULL, &va, va.n, fva0, "validation", 1, e);
    if (rc == 0) rc = features_of(&m, NULL, &tr, tr.n, ftrva, "train", 1, e);
    memcpy(ftrva + (size_t)tr.n * E, fva0, sizeof(float) * (size_t)va.n * E);
    const Score base = score_features(fte0, dtep->labels, dtep->domains, nte, T, C, E, scale, r->forget, D);
    r->base_mem = base.mem, r->base_for = base.fe, r->base_h = base.h;
    memcpy(r->base_dom_acc, base.dom_acc, sizeof base.dom_acc);
    /* the method */
    DomainAdapter ad = {0}, gad = {0};
    const int layers = o->layers > 0 ? o->layers : (3 * m.cfg.v_layers + 3) / 4;
    const int pg_layer = dm->instapg ? (o->pg_layer >= 0 ? o->pg_layer : layers / 2) : -1;
    if (rc == 0 && (layers > m.cfg.v_layers || pg_layer >= layers))
        rc = err_set(e, "--layers %d / --instapg-layer %d: the image tower has %d layers (InstaPG's block must be one "
                        "of the prompted ones)", layers, pg_layer, m.cfg.v_layers);
    const float *Wc = T;
    float *Tctx = NULL;
    if (rc == 0) {
        const DomainAdapterShape sh = {dm->kind, o->tokens, layers, pg_layer, dm->ce ? D : 0, C,
                                       dm->kind == DK_BBF ? 4 : 0};
        domain_adapter_alloc(&ad, &m, &sh);
        domain_adapter_alloc(&gad, &m, &sh);
        domain_adapter_init(&ad, T, o->seed);
        Trainer t = {.o = o, .dm = dm, .m = &m, .ad = &ad, .gad = &gad, .tr = &tr, .va = &va, .T = T, .C = C, .E = E,
                     .D = D, .scale = scale, .forget = r->forget, .ftr = ftrva};
        if (dm->kind == DK_BBF) {
            int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)C * m.cfg.context);
            rc = clip_context_ids(&m, &tok, tpl, (const char *const *)dtrp->class_names, C, 4, ids, e);
            if (rc == 0)
                rc = run_bbf(&m, ids, C, ftrva, &tr, fva0, &va, r->forget, D, scale, o, ad.ctx, &r->val_h, e);
            r->trainable = 4L * m.cfg.t_width;
            Tctx = xalloc_floats((size_t)C * E);
            if (rc == 0) rc = context_features(&m, ids, C, ad.ctx, 4, Tctx, e);
            Wc = Tctx;
            free(ids);
        } else if (rc == 0) {
            rc = run_gradient_method(&t, o, &r->trainable, e);
            r->val_h = t.best_h, r->best_epoch = t.best_epoch;
            if (dm->kind == DK_LINEAR) {
                Tctx = xalloc_floats((size_t)C * E);
                l2norm_forward(Tctx, NULL, ad.lp_w, C, E);
                Wc = Tctx;
            }
        }
    }
    if (rc == 0) { /* the measurements */
        if (dm->kind == DK_LINEAR || dm->kind == DK_BBF) { /* the image tower is untouched: its features stand */
            memcpy(fte, fte0, sizeof(float) * (size_t)nte * E);
            memcpy(fva, fva0, sizeof(float) * (size_t)va.n * E);
        } else {
            if (dm->kind == DK_PROMPTS) m.image_prompts = &ad.prompts;
            rc = features_of(&m, dtep, NULL, nte, fte, "test", o->quiet, e);
            if (rc == 0) rc = features_of(&m, NULL, &va, va.n, fva, "validation", 1, e);
            m.image_prompts = NULL;
        }
    }
    if (rc == 0) {
        const Score s = score_features(fte, dtep->labels, dtep->domains, nte, Wc, C, E, scale, r->forget, D);
        r->mem = s.mem, r->forget_err = s.fe, r->h = s.h;
        memcpy(r->dom_acc, s.dom_acc, sizeof s.dom_acc);
        r->probe_before = domain_probe(fva0, va.dom, va.n, fte0, dtep->domains, nte, E, D);
        r->probe_after = domain_probe(fva, va.dom, va.n, fte, dtep->domains, nte, E, D);
        r->seconds = now_s() - t0;
        if (o->out) rc = domain_adapter_save(&ad, &m, o->out, dm->name, o->dataset, o->forget, e);
    }
    free(fte0), free(fva0), free(fte), free(fva), free(ftrva), free(T), free(Tctx);
    split_free(&tr), split_free(&va);
    domain_adapter_free(&ad), domain_adapter_free(&gad);
done:
    if (have_tok) tokenizer_free(&tok);
    clip_free(&m);
    cache_release(&own);
    return rc;
}

/* ------------------------------------------------------------------ JSON */

cJSON *domain_result_json(const DomainResult *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "method", r->method);
    cJSON_AddStringToObject(j, "dataset", r->dataset);
    char fd[256] = "";
    for (int k = 0; k < r->n_domains; k++)
        if (r->forget[k]) {
            size_t l = strlen(fd);
            snprintf(fd + l, sizeof fd - l, "%s%s", l ? "," : "", r->domain_names[k]);
        }
    cJSON_AddStringToObject(j, "forget_domains", fd);
    cJSON_AddNumberToObject(j, "H", r->h);
    cJSON_AddNumberToObject(j, "mem", r->mem);
    cJSON_AddNumberToObject(j, "for", r->forget_err);
    cJSON_AddNumberToObject(j, "zero_shot_H", r->base_h);
    cJSON_AddNumberToObject(j, "zero_shot_mem", r->base_mem);
    cJSON_AddNumberToObject(j, "zero_shot_for", r->base_for);
    cJSON *dom = cJSON_AddArrayToObject(j, "domains");
    for (int k = 0; k < r->n_domains; k++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "name", r->domain_names[k]);
        cJSON_AddBoolToObject(d, "forget", r->forget[k]);
        cJSON_AddNumberToObject(d, "acc", r->dom_acc[k]);
        cJSON_AddNumberToObject(d, "zero_shot_acc", r->base_dom_acc[k]);
        cJSON_AddItemToArray(dom, d);
    }
    const struct {
        const char *key;
        double v;
    } f[] = {{"domain_probe_before", r->probe_before}, {"domain_probe_after", r->probe_after}, {"val_H", r->val_h},
             {"best_epoch", r->best_epoch}, {"trainable", (double)r->trainable}, {"train_images", (double)r->train_images},
             {"test_images", (double)r->test_images}, {"seconds", r->seconds}};
    for (size_t q = 0; q < sizeof f / sizeof *f; q++) cJSON_AddNumberToObject(j, f[q].key, f[q].v);
    return j;
}

static int num(const cJSON *j, const char *k, double *out, Err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsNumber(v)) return err_set(e, "\"%s\" is missing or not a number", k);
    *out = v->valuedouble;
    return 0;
}

int domain_result_from_json(const cJSON *j, DomainResult *r, Err *e) {
    memset(r, 0, sizeof *r);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "method"), *ds = cJSON_GetObjectItemCaseSensitive(j, "dataset");
    const cJSON *dom = cJSON_GetObjectItemCaseSensitive(j, "domains");
    if (!cJSON_IsString(m) || !cJSON_IsString(ds) || !cJSON_IsArray(dom))
        return err_set(e, "\"method\", \"dataset\" or \"domains\" is missing");
    snprintf(r->method, sizeof r->method, "%s", m->valuestring);
    snprintf(r->dataset, sizeof r->dataset, "%s", ds->valuestring);
    double tr = 0, te = 0, tn = 0, be = 0;
    if (num(j, "H", &r->h, e) || num(j, "mem", &r->mem, e) || num(j, "for", &r->forget_err, e) ||
        num(j, "zero_shot_H", &r->base_h, e) || num(j, "zero_shot_mem", &r->base_mem, e) ||
        num(j, "zero_shot_for", &r->base_for, e) || num(j, "domain_probe_before", &r->probe_before, e) ||
        num(j, "domain_probe_after", &r->probe_after, e) || num(j, "val_H", &r->val_h, e) ||
        num(j, "trainable", &tn, e) || num(j, "train_images", &tr, e) || num(j, "test_images", &te, e) ||
        num(j, "seconds", &r->seconds, e) || num(j, "best_epoch", &be, e))
        return -1;
    r->trainable = (long)tn, r->train_images = (long)tr, r->test_images = (long)te, r->best_epoch = (int)be;
    const cJSON *d;
    cJSON_ArrayForEach(d, dom) {
        if (r->n_domains >= DOMAIN_MAX) break;
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(d, "name");
        const int k = r->n_domains++;
        snprintf(r->domain_names[k], sizeof r->domain_names[k], "%s", cJSON_IsString(nm) ? nm->valuestring : "?");
        r->forget[k] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "forget"));
        if (num(d, "acc", &r->dom_acc[k], e) || num(d, "zero_shot_acc", &r->base_dom_acc[k], e)) return -1;
    }
    return 0;
}

/* ----------------------------------------------------------- feature map */

int domain_feature_map(const DomainOpts *o, const char *prompts_file, int *n_io, float *xy_before, float *xy_after,
                       int *dom, Err *e) {
    DomainCache own = {0}, *cache = o->cache ? o->cache : &own;
    if (!cache->have_data && load_splits(cache, o->dataset, o->data_dir, e)) return -1;
    const Dataset *te = &cache->te;
    ClipModel m = {0};
    DomainAdapter ad = {0};
    int rc = clip_load(&m, o->model, &(ClipLoadOpts){-1, 0}, e);
    if (!rc && o->precision != PREC_FP32) rc = clip_set_precision(&m, (Precision)o->precision, e);
    const int n = *n_io < te->n ? *n_io : te->n;
    *n_io = n;
    const int E = m.cfg.embed_dim;
    Dataset sub = *te; /* n evenly spaced images, as one small data set */
    /* a seeded random subset: evenly spaced indices would see one domain only where the split
     * interleaves them (fmnist-domains holds each image in its four domains in a row) */
    int *idx = xmalloc(sizeof(int) * (size_t)(te->n > 0 ? te->n : 1));
    Rng pick;
    rng_seed(&pick, o->seed ^ 0x3a9);
    rng_permutation(&pick, idx, te->n);
    for (int i = 0; i < n; i++) dom[i] = te->domains[idx[i]];
    const size_t per = (size_t)te->h * te->w * te->channels;
    sub.n = n;
    sub.pixels = xmalloc(per * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) memcpy(sub.pixels + per * i, dataset_image(te, idx[i]), per);
    float *f0 = xalloc_floats((size_t)n * E), *f1 = xalloc_floats((size_t)n * E);
    if (rc == 0) rc = features_of(&m, &sub, NULL, n, f0, "map", 1, e);
    if (rc == 0) rc = domain_adapter_load(&ad, prompts_file, &m, e);
    if (rc == 0) rc = features_of(&m, &sub, NULL, n, f1, "map", 1, e);
    if (rc == 0) {
        TsneOpts to;
        tsne_defaults(&to);
        to.seed = o->seed;
        tsne_run(f0, n, E, &to, xy_before);
        tsne_run(f1, n, E, &to, xy_after);
    }
    m.image_prompts = NULL;
    domain_adapter_free(&ad);
    clip_free(&m);
    free(sub.pixels), free(idx), free(f0), free(f1);
    cache_release(&own);
    return rc;
}
