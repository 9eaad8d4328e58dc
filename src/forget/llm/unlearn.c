#include "forget/llm/unlearn.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem_peak.h"
#include "core/threads.h"
#include "forget/llm/unlearn_data.h"
#include "models/lora.h"
#include "train/trainer.h"

const char *const UL_METHOD_NAMES[UL_N_METHODS] = {"ga", "ga+kl", "gd", "npo", "idk", "mmunlearner"};

void ul_defaults(UlOpts *o) {
    memset(o, 0, sizeof *o);
    o->parts = UL_PART_PROJECTOR | UL_PART_LM;
    o->lora_rank = 16, o->lora_alpha = 16, o->lm_modules = "all";
    o->lr = 3e-4, o->epochs = 3, o->batch = 8;
    o->npo_beta = 0.4f, o->kl_weight = 1.0f, o->mask_tau = 1.0f, o->fisher_batches = 16;
    o->seed = 1;
}

int ul_method_parse(const char *s, UlMethod *m, Err *e) {
    for (int k = 0; k < UL_N_METHODS; k++)
        if (strcmp(s, UL_METHOD_NAMES[k]) == 0) return *m = (UlMethod)k, 0;
    return err_set(e, "unknown unlearning method '%s' (expected ga, ga+kl, gd, npo, idk or mmunlearner)", s);
}

int ul_parts_parse(const char *s, int *parts, Err *e) {
    *parts = 0;
    char *dup = xstrdup(s), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(dup, "+", &save); tok && rc == 0; tok = strtok_r(NULL, "+", &save)) {
        if (strcmp(tok, "projector") == 0) *parts |= UL_PART_PROJECTOR;
        else if (strcmp(tok, "lm") == 0) *parts |= UL_PART_LM;
        else if (strcmp(tok, "tower") == 0 || strcmp(tok, "vision") == 0)
            rc = err_set(e, "--targets %s: the vision tower stays frozen (the MLLM has no backward through it); "
                            "the model's trainable parts are projector and lm", s);
        else rc = err_set(e, "--targets %s: the model has no part '%s' (it has projector and lm: projector+lm, lm, projector)", s, tok);
    }
    free(dup);
    if (rc == 0 && !*parts) rc = err_set(e, "--targets '%s' names no part (projector+lm, lm, projector)", s);
    return rc;
}

int ul_check_people(const World *w, const uint8_t *forget, const uint8_t *retain, Err *e) {
    int nf = 0, nr = 0;
    for (int i = 0; i < world_n_people(w); i++) {
        if (forget[i] && retain && retain[i])
            return err_set(e, "person %d (%s) is in both the forget and the retain set", i, world_person(w, i)->name);
        nf += forget[i], nr += retain ? retain[i] : 0;
    }
    if (!nf) return err_set(e, "the forget set is empty");
    if (retain && !nr) return err_set(e, "the retain set is empty");
    return 0;
}

static int name_eq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

int ul_people_parse(const World *w, const char *list, uint8_t *mask, Err *e) {
    const int n = world_n_people(w);
    memset(mask, 0, (size_t)n);
    char *dup = xstrdup(list), *save = NULL;
    int rc = 0, any = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        char *end;
        const long v = strtol(tok, &end, 10);
        int who = -1;
        if (end != tok && *end == 0) who = v >= 0 && v < n ? (int)v : -2;
        else
            for (int i = 0; i < n && who < 0; i++)
                if (name_eq(tok, world_person(w, i)->name)) who = i;
        if (who == -2) rc = err_set(e, "person %ld: the world has people 0..%d", v, n - 1);
        else if (who < 0) rc = err_set(e, "unknown person '%s' (not a name of the model's world nor an index 0..%d)", tok, n - 1);
        else mask[who] = 1, any = 1;
    }
    free(dup);
    if (rc == 0 && !any) rc = err_set(e, "'%s' names no person", list);
    return rc;
}

/* ------------------------------------------------------------ the loss of a batch */

/* The sequence of each target row (rows come in order). */
static int *row_sequences(const LmActs *a) {
    int *s_of = xmalloc(sizeof(int) * (size_t)(a->n_tgt + 1));
    for (int i = 0, s = 0; i < a->n_tgt; i++) {
        while (s < a->nseq - 1 && a->tgt_row[i] >= a->start[s] + a->len[s]) s++;
        s_of[i] = s;
    }
    return s_of;
}

/* Mean NLL of each sequence's targets from the softmax rows; cnt[s] its target count. */
static void seq_nll(const LmActs *a, int V, const int *s_of, double *nll, int *cnt) {
    memset(nll, 0, sizeof(double) * (size_t)a->nseq);
    memset(cnt, 0, sizeof(int) * (size_t)a->nseq);
    for (int i = 0; i < a->n_tgt; i++) {
        const float p = a->probs[(size_t)i * V + a->tgt_id[i]];
        nll[s_of[i]] -= log(p > 1e-30f ? p : 1e-30f), cnt[s_of[i]]++;
    }
    for (int s = 0; s < a->nseq; s++) nll[s] /= cnt[s] ? cnt[s] : 1;
}

/* dlog += coef[s] / cnt[s] (softmax - onehot) on the rows of sequence s: the gradient of
 * sum_s coef[s] l_s. */
static void add_ce_grad(const LmActs *a, int V, const int *s_of, const double *coef, const int *cnt, float *dlog) {
    for (int i = 0; i < a->n_tgt; i++) {
        const int s = s_of[i];
        const float c = (float)(coef[s] / (cnt[s] ? cnt[s] : 1));
        float *d = dlog + (size_t)i * V;
        const float *p = a->probs + (size_t)i * V;
        for (int k = 0; k < V; k++) d[k] += c * p[k];
        d[a->tgt_id[i]] -= c;
    }
}

static int forward(const Mllm *m, MllmActs *a, const MllmExample *const *x, const float *const *f, int n, Err *e) {
    const int32_t **ids = xmalloc(sizeof(int32_t *) * (size_t)n), **tg = xmalloc(sizeof(int32_t *) * (size_t)n);
    int *len = xmalloc(sizeof(int) * (size_t)n);
    for (int s = 0; s < n; s++) ids[s] = x[s]->ids, tg[s] = x[s]->tgt, len[s] = x[s]->n;
    float loss;
    const int rc = mllm_forward(m, a, ids, tg, len, f, n, &loss, e);
    free(ids), free(tg), free(len);
    return rc;
}

static int has_retain_term(UlMethod k) { return k != UL_GA && k != UL_NPO; }

static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }

int ul_batch_loss(const Mllm *m, Mllm *g, const Mllm *ref, const UlOpts *o, const MllmExample *const *xf,
                  const float *const *ff, int nf, const MllmExample *const *xr, const float *const *fr, int nr,
                  float *loss, Err *e) {
    const int V = m->cfg.lm.vocab;
    const UlMethod k = o->method;
    if ((k == UL_NPO || k == UL_GA_KL) && !ref) return err_set(e, "%s needs its reference model", UL_METHOD_NAMES[k]);
    MllmActs a = {0}, ar = {0};
    double total = 0;
    int rc = 0;
    if (nf > 0 && k != UL_RETAIN_TUNE) {
        rc = forward(m, &a, xf, ff, nf, e);
        double *nll = xcalloc((size_t)nf, sizeof(double)), *coef = xcalloc((size_t)nf, sizeof(double));
        int *cnt = xcalloc((size_t)nf, sizeof(int)), *s_of = rc ? NULL : row_sequences(&a.lm);
        if (rc == 0) seq_nll(&a.lm, V, s_of, nll, cnt);
        if (rc == 0 && k == UL_NPO) { /* the reference's NLL of the same sequences */
            rc = forward(ref, &ar, xf, ff, nf, e);
            double *rn = xcalloc((size_t)nf, sizeof(double));
            int *rc_cnt = xcalloc((size_t)nf, sizeof(int)), *rs = rc ? NULL : row_sequences(&ar.lm);
            if (rc == 0) seq_nll(&ar.lm, V, rs, rn, rc_cnt);
            const double b = o->npo_beta;
            for (int s = 0; s < nf && rc == 0; s++) {
                const double x = nll[s] - rn[s];
                total += -(2.0 / b) * log_sigmoid(b * x) / nf;
                coef[s] = -2.0 / (1.0 + exp(b * x)) / nf; /* d/dl of -(2/b) log sigmoid(b (l - l_ref)) */
            }
            free(rn), free(rc_cnt), free(rs);
        } else if (rc == 0) {
            const double sign = k == UL_IDK ? 1.0 : -1.0; /* idk descends on refusals, the rest ascend */
            for (int s = 0; s < nf; s++) total += sign * nll[s] / nf, coef[s] = sign / nf;
        }
        if (rc == 0) {
            float *dlog = xcalloc((size_t)a.lm.n_tgt * V + 1, sizeof(float));
            add_ce_grad(&a.lm, V, s_of, coef, cnt, dlog);
            a.lm.dlogits = dlog;
            mllm_backward(m, g, &a, 1.0f);
            a.lm.dlogits = NULL;
            free(dlog);
        }
        free(nll), free(coef), free(cnt), free(s_of);
    }
    if (rc == 0 && nr > 0 && has_retain_term(k)) {
        rc = forward(m, &a, xr, fr, nr, e);
        float *dlog = rc ? NULL : xcalloc((size_t)a.lm.n_tgt * V + 1, sizeof(float));
        if (rc == 0 && k == UL_GA_KL) { /* KL(pi_orig || pi_theta) at the answer positions, averaged */
            rc = forward(ref, &ar, xr, fr, nr, e);
            const int n = a.lm.n_tgt;
            double kl = 0;
            for (int i = 0; i < n && rc == 0; i++) {
                const float *p = a.lm.probs + (size_t)i * V, *q = ar.lm.probs + (size_t)i * V;
                float *d = dlog + (size_t)i * V;
                for (int v = 0; v < V; v++) {
                    if (q[v] > 0) kl += q[v] * (log(q[v]) - log(p[v] > 1e-30f ? p[v] : 1e-30f));
                    d[v] = o->kl_weight * (p[v] - q[v]) / n;
                }
            }
            total += o->kl_weight * kl / (n ? n : 1);
        } else if (rc == 0) {
            double *nll = xcalloc((size_t)nr, sizeof(double)), *coef = xcalloc((size_t)nr, sizeof(double));
            int *cnt = xcalloc((size_t)nr, sizeof(int)), *s_of = row_sequences(&a.lm);
            seq_nll(&a.lm, V, s_of, nll, cnt);
            for (int s = 0; s < nr; s++) total += nll[s] / nr, coef[s] = 1.0 / nr;
            add_ce_grad(&a.lm, V, s_of, coef, cnt, dlog);
            free(nll), free(coef), free(cnt), free(s_of);
        }
        if (rc == 0) {
            a.lm.dlogits = dlog;
            mllm_backward(m, g, &a, 1.0f);
            a.lm.dlogits = NULL;
        }
        free(dlog);
    }
    mllm_acts_free(&a), mllm_acts_free(&ar);
    *loss = (float)total;
    return rc;
}

/* ------------------------------------------------------------ the run */

typedef struct {
    Mllm *m;
    Mllm g;             /* the weights' gradient (with adapters: scratch the adapters' comes from) */
    const Mllm *ref;
    const World *w;
    const UlOpts *o;
    Lora lora, lora_g;
    int use_lora;
    UlPool fp, rp;      /* forget-side and retain-side sequences */
    long spe;           /* steps an epoch */
    float *feats;       /* [2 B, N, Wv] */
    uint8_t *mask;      /* mmunlearner: [n_params] */
    int *perm;
} Run;

/* The B sequences of pool p for this step: in epoch order (ordered) or drawn. */
static void pick(const Run *r, const UlPool *p, long step, int ordered, int B, const MllmExample **x, Rng *rng) {
    if (ordered) {
        const long epoch = step / r->spe, k = step % r->spe;
        train_epoch_order(r->perm, p->n, r->o->seed * 7919u + (uint64_t)(p == &r->rp), (int)epoch);
        for (int b = 0; b < B; b++) x[b] = &p->x[r->perm[(k * B + b) % p->n]];
    } else {
        for (int b = 0; b < B; b++) x[b] = &p->x[rng_below(rng, (uint32_t)p->n)];
    }
}

/* Features of the image sequences (a fresh pose each use, as training drew them). */
static int features(const Run *r, const MllmExample *const *x, int n, long step, int side, const float **f, float *buf,
                    Err *e) {
    const int N = mllm_image_tokens(&r->m->cfg), Wv = r->m->cfg.tower.v_width;
    WorldImage ims[64];
    int k = 0;
    for (int s = 0; s < n; s++)
        if (x[s]->has_image)
            ims[k++] = world_train_variant(r->w, &x[s]->image, train_mix((uint64_t)step * 2 + (uint64_t)side, (uint64_t)s) | 1u, 0);
    if (k && mllm_world_features(r->m, r->w, ims, k, buf, e)) return -1;
    for (int s = 0, j = 0; s < n; s++) f[s] = x[s]->has_image ? buf + (size_t)j++ * N * Wv : NULL;
    return 0;
}

static int run_step(void *user, long step, float *loss, Err *e) {
    Run *r = user;
    const UlOpts *o = r->o;
    const int B = o->batch, N = mllm_image_tokens(&r->m->cfg), Wv = r->m->cfg.tower.v_width;
    const int tune = o->method == UL_RETAIN_TUNE;
    Rng rng;
    rng_seed(&rng, train_mix(o->seed * 31u + 5u, (uint64_t)step));
    const MllmExample *xf[64], *xr[64];
    const float *ff[64], *fr[64];
    const int nf = tune ? 0 : B, nr = has_retain_term(o->method) ? B : 0;
    if (nf) pick(r, &r->fp, step, 1, nf, xf, &rng);
    if (nr) pick(r, &r->rp, step, tune, nr, xr, &rng);
    if (r->use_lora) {
        lora_merge(&r->lora);
        memset(r->g.params, 0, sizeof(float) * (size_t)r->g.n_params);
    }
    int rc = features(r, xf, nf, step, 0, ff, r->feats, e);
    if (rc == 0) rc = features(r, xr, nr, step, 1, fr, r->feats + (size_t)B * N * Wv, e);
    if (rc == 0) rc = ul_batch_loss(r->m, &r->g, r->ref, o, xf, ff, nf, xr, fr, nr, loss, e);
    if (rc == 0 && r->mask)
        for (long i = 0; i < r->g.n_params; i++)
            if (!r->mask[i]) r->g.params[i] = 0;
    if (rc == 0 && r->use_lora) lora_backward(&r->lora, r->m->params, r->g.params, &r->lora_g);
    return rc;
}

static int run_epoch_end(void *user, long steps_done, Progress *bar, Err *e) {
    (void)bar;
    Run *r = user;
    if (!r->o->after_epoch || steps_done % r->spe) return 0;
    if (r->use_lora) lora_merge(&r->lora);
    return r->o->after_epoch(r->o->user, (int)(steps_done / r->spe), r->m, e);
}

/* Diagonal Fisher of the mean answer NLL over `batches` seeded batches drawn from xs[n]. */
static int fisher(Run *r, const MllmExample *const *xs, int n, int batches, uint64_t seed, float *out, Err *e) {
    const int B = r->o->batch;
    memset(out, 0, sizeof(float) * (size_t)r->m->n_params);
    Rng rng;
    rng_seed(&rng, seed);
    int rc = 0;
    for (int b = 0; b < batches && rc == 0; b++) {
        const MllmExample *x[64];
        const float *f[64];
        for (int s = 0; s < B; s++) x[s] = xs[rng_below(&rng, (uint32_t)n)];
        memset(r->g.params, 0, sizeof(float) * (size_t)r->g.n_params);
        rc = features(r, x, B, 1000003L + b, (int)(seed & 1), f, r->feats, e);
        MllmActs a = {0};
        if (rc == 0) rc = forward(r->m, &a, x, f, B, e);
        if (rc == 0) mllm_backward(r->m, &r->g, &a, 1.0f);
        mllm_acts_free(&a);
        for (long i = 0; i < r->g.n_params && rc == 0; i++) out[i] += r->g.params[i] * r->g.params[i] / batches;
    }
    return rc;
}

/* MMUnlearner's mask: forget Fisher over the preserve Fisher >= tau, the preserve data the retain
 * image questions for the projector and the retain questions plus the forget people's text-only
 * ones for the LM; frozen entries 0. */
static int make_mask(Run *r, const SpTokenizer *t, UlStats *st, Err *e) {
    const long P = r->m->n_params;
    float *Ff = xalloc_floats((size_t)P), *Fv = xalloc_floats((size_t)P), *Fl = xalloc_floats((size_t)P);
    UlPool ftext = {0};
    const MllmExample **xs = xmalloc(sizeof(MllmExample *) * (size_t)(r->fp.n + 2 * r->rp.n + 1));
    int rc = ul_pool_people(&ftext, t, r->w, r->o->forget, UL_FORM_TEXT, 0, 0, e), n = 0;
    for (int i = 0; i < r->fp.n; i++) xs[n++] = &r->fp.x[i];
    if (rc == 0) rc = fisher(r, xs, n, r->o->fisher_batches, r->o->seed * 3 + 1, Ff, e);
    n = 0;
    for (int i = 0; i < r->rp.n; i++)
        if (r->rp.x[i].has_image) xs[n++] = &r->rp.x[i];
    if (rc == 0 && n) rc = fisher(r, xs, n, r->o->fisher_batches, r->o->seed * 3 + 2, Fv, e);
    n = 0;
    for (int i = 0; i < r->rp.n; i++) xs[n++] = &r->rp.x[i];
    for (int i = 0; i < ftext.n; i++) xs[n++] = &ftext.x[i];
    if (rc == 0) rc = fisher(r, xs, n, r->o->fisher_batches, r->o->seed * 3 + 3, Fl, e);
    if (rc == 0) {
        r->mask = xcalloc((size_t)P, 1);
        const Mllm *m = r->m;
        for (int i = 0; i < m->table.n; i++) {
            const NnParam *p = &m->table.p[i];
            if (p->frozen || p->buffer || !*p->slot) continue;
            const float *w = *p->slot;
            const int proj = w == m->proj1_w || w == m->proj1_b || w == m->proj2_w || w == m->proj2_b;
            const float *Fp = proj ? Fv : Fl;
            for (long j = w - m->params, end = j + p->count; j < end; j++) {
                r->mask[j] = (Ff[j] + 1e-15f) / (Fp[j] + 1e-15f) >= r->o->mask_tau;
                st->trainable += r->mask[j], st->maskable++;
            }
        }
    }
    ul_pool_free(&ftext);
    free(xs), free(Ff), free(Fv), free(Fl);
    return rc;
}

static int unlearn_run(Mllm *m, const SpTokenizer *t, const World *w, const UlOpts *o, UlStats *st, Err *e) {
    memset(st, 0, sizeof *st);
    if (o->batch < 1 || o->batch > 32) return err_set(e, "batch %d: expected 1..32", o->batch);
    if (o->epochs < 1) return err_set(e, "epochs %d: expected at least 1", o->epochs);
    if (!(o->parts & (UL_PART_PROJECTOR | UL_PART_LM))) return err_set(e, "no part of the model to train");
    const int tune = o->method == UL_RETAIN_TUNE, mmu = o->method == UL_MMUNLEARNER;
    if (!tune && ul_check_people(w, o->forget, has_retain_term(o->method) ? o->retain : NULL, e)) return -1;
    if (tune && ul_check_people(w, o->retain, NULL, e)) return err_prefix(e, "retain tuning: ");
    if (mmu && o->lora_rank > 0)
        return err_set(e, "mmunlearner masks the model's own weights by their Fisher ratio: it takes no LoRA (--lora none)");
    mem_peak_reset();
    const double t0 = now_seconds();
    Run r = {.m = m, .ref = o->reference, .w = w, .o = o};
    Mllm orig = {0};
    int rc = 0;
    if (o->method == UL_GA_KL) { /* the original the KL holds the retain answers to */
        mllm_alloc_like(&orig, m);
        memcpy(orig.params, m->params, sizeof(float) * (size_t)m->n_params);
        r.ref = &orig;
    }
    if (o->method == UL_NPO && !o->reference) rc = err_set(e, "npo needs a reference model (ul_retain_tune)");
    mllm_set_trainable(m, 0, (o->parts & UL_PART_PROJECTOR) != 0, (o->parts & UL_PART_LM) != 0);
    mllm_alloc_like(&r.g, m);
    const int forms = mmu ? UL_FORM_IMAGE : UL_FORM_BOTH;
    if (rc == 0 && !tune) rc = ul_pool_people(&r.fp, t, w, o->forget, forms, o->method == UL_IDK, o->seed, e);
    if (rc == 0 && (tune || has_retain_term(o->method)))
        rc = ul_pool_people(&r.rp, t, w, o->retain, UL_FORM_BOTH, 0, 0, e);
    if (rc == 0 && !tune && !r.fp.n) rc = err_set(e, "the forget people have no questions in the forms asked for");
    const int n_epoch = tune ? r.rp.n : r.fp.n;
    r.spe = (n_epoch + o->batch - 1) / o->batch;
    r.perm = xmalloc(sizeof(int) * (size_t)(r.fp.n > r.rp.n ? r.fp.n + 1 : r.rp.n + 1));
    r.feats = xalloc_floats((size_t)2 * o->batch * mllm_image_tokens(&m->cfg) * m->cfg.tower.v_width);
    if (rc == 0 && o->lora_rank > 0) {
        rc = lora_attach_mllm(&r.lora, m, (o->parts & UL_PART_PROJECTOR) != 0,
                              (o->parts & UL_PART_LM) ? (o->lm_modules ? o->lm_modules : "all") : NULL, o->lora_rank,
                              o->lora_alpha > 0 ? o->lora_alpha : (float)o->lora_rank, o->seed, e);
        if (rc == 0) lora_alloc_like(&r.lora_g, &r.lora), r.use_lora = 1, st->trainable = r.lora.n_params;
    }
    if (rc == 0 && mmu) rc = make_mask(&r, t, st, e);
    if (rc == 0 && !r.use_lora && !mmu)
        for (int i = 0; i < m->table.n; i++)
            if (!m->table.p[i].frozen && !m->table.p[i].buffer) st->trainable += m->table.p[i].count;
    if (rc == 0) {
        char label[64];
        snprintf(label, sizeof label, "%s", tune ? "retain tuning" : UL_METHOD_NAMES[o->method]);
        TrainSpec spec = {.label = label, .total_steps = (long)o->epochs * r.spe, .lr = o->lr, .cosine = 0,
                          .grad_clip = 1.0f, .params = r.use_lora ? r.lora.params : m->params,
                          .grads = r.use_lora ? r.lora_g.params : r.g.params,
                          .n_params = r.use_lora ? r.lora.n_params : m->n_params,
                          .table = r.use_lora ? &r.lora.table : &m->table, .step = run_step,
                          .evaluate = o->after_epoch ? run_epoch_end : NULL, .eval_every = r.spe, .user = &r,
                          .samples_per_step = o->batch, .unit = "seq", .quiet = o->quiet};
        TrainState ts;
        rc = train_run(&spec, &ts, e);
        st->steps = ts.step, st->epochs_done = (int)(ts.step / r.spe), st->last_loss = ts.last_loss;
    }
    if (r.use_lora) lora_merge(&r.lora); /* the weights keep the adapters */
    lora_free(&r.lora), lora_free(&r.lora_g);
    ul_pool_free(&r.fp), ul_pool_free(&r.rp);
    free(r.perm), free(r.feats), free(r.mask);
    mllm_free(&r.g);
    if (o->method == UL_GA_KL) mllm_free(&orig);
    st->seconds = now_seconds() - t0;
    st->peak_mib = mem_peak_mib();
    return rc;
}

int mllm_unlearn(Mllm *m, const SpTokenizer *t, const World *w, const UlOpts *o, UlStats *st, Err *e) {
    if (o->method < 0 || o->method >= UL_N_METHODS) return err_set(e, "unknown unlearning method");
    return unlearn_run(m, t, w, o, st, e);
}

int ul_retain_tune(Mllm *m, const SpTokenizer *t, const World *w, const UlOpts *o, int epochs, Err *e) {
    UlOpts c = *o;
    c.method = UL_RETAIN_TUNE, c.epochs = epochs, c.after_epoch = NULL;
    UlStats st;
    return unlearn_run(m, t, w, &c, &st, e);
}
