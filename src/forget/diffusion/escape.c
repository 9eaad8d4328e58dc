/* Escape Token erasure (our reconstruction): see escape.h for the losses. */
#include "forget/diffusion/escape.h"

#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "models/clip_encode.h"
#include "models/clip_train.h"
#include "train/trainer.h"

static const char *const TRAIN_TEMPLATES[] = {
    "a photo of a {}.",           "a photo of a {} on a table.",  "a close-up of a {}.",
    "a {} in a shop window.",     "a picture of a {} on the floor.", "a {} next to a chair.",
    "a photo of a small {}.",     "a {} lying on a bed.",         "a bright photo of a {}.",
    "a {} on a white background.",
};
static const char *const EVAL_TEMPLATES[] = {
    "a photo of a {} on a wooden shelf.", "a {} in a box on the street.", "a clean {} hanging in a closet.",
    "a blurry picture of a {} at night.",
};

const char *const *escape_templates(int *n) {
    *n = (int)(sizeof TRAIN_TEMPLATES / sizeof *TRAIN_TEMPLATES);
    return TRAIN_TEMPLATES;
}

const char *const *escape_eval_templates(int *n) {
    *n = (int)(sizeof EVAL_TEMPLATES / sizeof *EVAL_TEMPLATES);
    return EVAL_TEMPLATES;
}

void escape_defaults(EscapeOpts *o) {
    *o = (EscapeOpts){.k = 4, .tcs = TCS_DIFF, .lambda = 1.0, .neutral = "object", .loss = ESCAPE_DENSE, .alpha = 0.5,
                      .lr = 1e-2, .steps = 300, .keep_batch = 16};
}

void escape_align(const int32_t *a, int la, const int32_t *b, int lb, int ctx, int *s) {
    int pre = 0, suf = 0;
    while (pre < la && pre < lb && a[pre] == b[pre]) pre++;
    while (suf < la - pre && suf < lb - pre && a[la - 1 - suf] == b[lb - 1 - suf]) suf++;
    for (int i = 0; i < ctx; i++) {
        int j;
        if (i < pre) j = i;
        else if (i < la - suf) j = lb - suf - 1 >= pre ? lb - suf - 1 : pre; /* the differing span */
        else j = i - la + lb;
        s[i] = j < 0 ? 0 : j >= ctx ? ctx - 1 : j;
    }
}

int escape_check_concept(const Tokenizer *t, const char *concept, const char *const *preserve, int n_preserve, Err *e) {
    int32_t *ids = NULL;
    int n = 0, rc = tokenizer_encode(t, concept, &ids, &n, e);
    if (!rc && n == 0) rc = err_set(e, "erase: the concept \"%s\" tokenises to nothing", concept);
    for (int i = 0; i < n_preserve && !rc; i++) {
        int32_t *p = NULL;
        int np = 0;
        rc = tokenizer_encode(t, preserve[i], &p, &np, e);
        if (!rc && np == n && memcmp(p, ids, sizeof(int32_t) * (size_t)n) == 0)
            rc = err_set(e, "erase: the preserve list contains the concept \"%s\" itself (entry %d, \"%s\")", concept, i + 1,
                         preserve[i]);
        else if (!rc && np == 0) rc = err_set(e, "erase: preserve entry %d \"%s\" tokenises to nothing", i + 1, preserve[i]);
        free(p);
    }
    free(ids);
    return rc;
}

typedef struct {
    const ClipModel *m;
    int k, L, W, N;
    EscapeLoss loss;
    double alpha;
    int n_c, n_r, keep_batch;
    uint64_t seed;
    int32_t *ids_c, *ids_r; /* escaped rows [n, L] */
    int *eot_c, *eot_r;     /* EOT positions of the plain rows */
    float *b_c, *b_r;       /* targets [n, L, W] */
    float *z, *grad;
    int32_t *sel;           /* the ids, targets and EOT positions of the prompts a step encodes */
    float *hid;
    int *pick, *selv;
    double last_erase, last_keep;
} EscRun;

double escape_objective(const ClipModel *m, const int32_t *ids, const float *tgt, const int *eot, int n, int k,
                        EscapeLoss kind, double weight, const float *z, float *grad, Err *e) {
    const int L = m->cfg.context, W = m->cfg.t_width, N = L - k;
    const size_t row = (size_t)L * W;
    float *rep = xalloc_floats((size_t)n * k * W), *drep = xcalloc((size_t)n * k * W, sizeof(float));
    float *hid = xalloc_floats((size_t)n * row), *dhid = xcalloc((size_t)n * row, sizeof(float));
    for (int j = 0; j < n; j++) memcpy(rep + (size_t)j * k * W, z, sizeof(float) * (size_t)k * W);
    TowerActs a = {0};
    double loss = NAN;
    if (text_acts_reuse(&a, m, ids, n, grad != NULL, 1, e) == 0) { /* no gradient: no activations kept */
        a.ctx = rep, a.n_ctx = k;
        text_forward(m, &a, NULL, NULL);
        clip_text_hidden_forward(m, &a, hid);
        const double scale = 1.0 / ((double)n * (kind == ESCAPE_DENSE ? N : 1) * W);
        loss = 0;
        for (int j = 0; j < n; j++) {
            const float *T = tgt + (size_t)j * row, *H = hid + (size_t)j * row;
            float *D = dhid + (size_t)j * row;
            const int lo = kind == ESCAPE_DENSE ? 0 : eot[j], hi = kind == ESCAPE_DENSE ? N : lo + 1;
            for (int i = lo; i < hi; i++) {
                const int o = i == 0 ? 0 : i + k; /* pi: the escape rows are skipped */
                for (int c = 0; c < W; c++) {
                    const double d = (double)H[(size_t)o * W + c] - T[(size_t)i * W + c];
                    loss += d * d * scale;
                    D[(size_t)o * W + c] = (float)(2 * d * scale * weight);
                }
            }
        }
        if (grad) {
            a.dctx = drep;
            text_backward_hidden(m, NULL, &a, dhid);
            for (int j = 0; j < n; j++) /* z is shared by every prompt */
                for (int q = 0; q < k * W; q++) grad[q] += drep[(size_t)j * k * W + q];
        }
    }
    tower_acts_free(&a);
    free(rep), free(drep), free(hid), free(dhid);
    return loss;
}

/* One set's alignment loss (the prompts pick[0..n)) times weight, its gradient into r->grad. */
static double align_loss(EscRun *r, const int32_t *ids, const int *eot, const float *tgt, const int *pick, int n,
                         double weight, Err *e) {
    const size_t row = (size_t)r->L * r->W;
    for (int j = 0; j < n; j++) {
        memcpy(r->sel + (size_t)j * r->L, ids + (size_t)pick[j] * r->L, sizeof(int32_t) * (size_t)r->L);
        memcpy(r->hid + (size_t)j * row, tgt + (size_t)pick[j] * row, sizeof(float) * row);
        r->selv[j] = eot[pick[j]];
    }
    return escape_objective(r->m, r->sel, r->hid, r->selv, n, r->k, r->loss, weight, r->z, r->grad, e);
}

static int esc_step(void *user, long step, float *loss, Err *e) {
    EscRun *r = user;
    for (int j = 0; j < r->n_c; j++) r->pick[j] = j;
    r->last_erase = align_loss(r, r->ids_c, r->eot_c, r->b_c, r->pick, r->n_c, 1.0, e);
    if (isnan(r->last_erase)) return -1;
    r->last_keep = 0;
    if (r->n_r && r->alpha > 0) {
        int nb = r->keep_batch > 0 && r->keep_batch < r->n_r ? r->keep_batch : r->n_r;
        if (nb < r->n_r) { /* a batch of the preservation prompts from (seed, step) */
            Rng g;
            rng_seed(&g, train_mix(r->seed ^ 0xe5c, (uint64_t)step));
            for (int j = 0; j < nb; j++) r->pick[j] = (int)rng_below(&g, (uint32_t)r->n_r);
        } else
            for (int j = 0; j < nb; j++) r->pick[j] = j;
        r->last_keep = align_loss(r, r->ids_r, r->eot_r, r->b_r, r->pick, nb, r->alpha, e);
        if (isnan(r->last_keep)) return -1;
    }
    *loss = (float)(r->last_erase + r->alpha * r->last_keep);
    return 0;
}

static void esc_status(void *user, long step, float loss, char *buf, size_t cap) {
    (void)step;
    const EscRun *r = user;
    snprintf(buf, cap, "loss %.5f  erase %.5f  keep %.5f", (double)loss, r->last_erase, r->last_keep);
}

/* Plain and escaped token rows of template x concept prompts; EOT positions of the plain rows. */
static int prompt_rows(const Tokenizer *t, const char *const *tpl, int nt, const char *const *concepts, int nc, int L, int k,
                       int32_t *plain, int32_t *esc, int *eot, Err *e) {
    for (int c = 0; c < nc; c++)
        for (int j = 0; j < nt; j++) {
            const size_t i = (size_t)c * nt + j;
            char *p = clip_prompt_fill(tpl[j], concepts[c]);
            int len = tokenizer_tokenize(t, p, L, plain + i * L, e);
            if (len >= 0 && esc) {
                int32_t *row = esc + i * L;
                const int le = tokenizer_tokenize(t, p, L - k, row, e);
                for (int q = L - k; q < L; q++) row[q] = 0; /* the tokenizer filled L - k */
                if (le >= 0) clip_context_slots(row, le, k, L);
            }
            if (len < 0) {
                err_prefix(e, "prompt \"%s\": ", p);
                free(p);
                return -1;
            }
            free(p);
            eot[i] = len - 1 < L - k ? len - 1 : L - k - 1;
        }
    return 0;
}

/* (b): an orthonormal basis U [rank, W] of the span of the rows C [n, W] (SVD; the directions
 * holding 99% of the energy). */
static int concept_basis(const float *C, int n, int W, double *U, int *rank, Err *e) {
    const int mn = n < W ? n : W;
    double *a = xmalloc(sizeof(double) * (size_t)n * W), *s = xmalloc(sizeof(double) * (size_t)mn);
    double *vt = xmalloc(sizeof(double) * (size_t)mn * W), *sup = xmalloc(sizeof(double) * (size_t)mn);
    for (size_t i = 0; i < (size_t)n * W; i++) a[i] = C[i];
    const int info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'S', n, W, a, W, s, NULL, 1, vt, W, sup);
    int rc = 0;
    if (info != 0) rc = err_set(e, "escape: the concept subspace's SVD failed (LAPACK info %d)", info);
    else {
        double tot = 0, acc = 0;
        for (int i = 0; i < mn; i++) tot += s[i] * s[i];
        int r = 0;
        while (r < mn && acc < 0.99 * tot) acc += s[r] * s[r], r++;
        memcpy(U, vt, sizeof(double) * (size_t)r * W);
        *rank = r;
    }
    free(a), free(s), free(vt), free(sup);
    return rc;
}

int escape_train(const ClipModel *m, const Tokenizer *t, const char *concept, const char *const *preserve,
                 int n_preserve, const EscapeOpts *o, float *z, EscapeResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    if (!m->cfg.has_text) return err_set(e, "escape: the text encoder has no text tower");
    if (o->k < 1 || o->k > 4) return err_set(e, "escape: --tokens %d: expected 1..4", o->k);
    if (escape_check_concept(t, concept, preserve, n_preserve, e)) return -1;
    int nt0 = o->n_templates;
    const char *const *tpl0 = o->templates ? o->templates : escape_templates(&nt0);
    const int nt = nt0 + o->n_extra_templates, nc = 1 + o->n_aliases;
    const char **tpl = xmalloc(sizeof(char *) * (size_t)nt), **cs = xmalloc(sizeof(char *) * (size_t)nc);
    const char **nws = xmalloc(sizeof(char *) * (size_t)nc);
    for (int j = 0; j < nt; j++) tpl[j] = j < nt0 ? tpl0[j] : o->extra_templates[j - nt0];
    for (int c = 0; c < nc; c++) nws[c] = o->neutral, cs[c] = c ? o->aliases[c - 1] : concept;
    int bad = 0;
    for (int c = 1; c < nc && !bad; c++) bad = escape_check_concept(t, cs[c], preserve, n_preserve, e);
    if (bad) {
        free(tpl), free(cs), free(nws);
        return -1;
    }
    for (int j = 0; j < nt; j++)
        if (!strstr(tpl[j], "{}")) {
            err_set(e, "escape: template %d \"%s\" has no {} for the concept", j + 1, tpl[j]);
            free(tpl), free(cs), free(nws);
            return -1;
        }
    const double t0 = now_seconds();
    const int L = m->cfg.context, W = m->cfg.t_width, k = o->k;
    const size_t row = (size_t)L * W;
    EscRun r = {.m = m, .k = k, .L = L, .W = W, .N = L - k, .loss = o->loss, .alpha = o->alpha, .n_c = nt * nc,
                .n_r = nt * n_preserve, .keep_batch = o->keep_batch, .seed = o->seed};
    const int most = r.n_c > r.n_r ? r.n_c : r.n_r;
    int32_t *plain_c = xmalloc(sizeof(int32_t) * (size_t)r.n_c * L), *plain_r = xmalloc(sizeof(int32_t) * (size_t)(r.n_r + 1) * L);
    int32_t *plain_q = xmalloc(sizeof(int32_t) * (size_t)r.n_c * L);
    int *eot_q = xmalloc(sizeof(int) * (size_t)r.n_c), *s = xmalloc(sizeof(int) * (size_t)L);
    r.ids_c = xmalloc(sizeof(int32_t) * (size_t)r.n_c * L), r.ids_r = xmalloc(sizeof(int32_t) * (size_t)(r.n_r + 1) * L);
    r.eot_c = xmalloc(sizeof(int) * (size_t)r.n_c), r.eot_r = xmalloc(sizeof(int) * (size_t)(r.n_r + 1));
    r.b_c = xalloc_floats((size_t)r.n_c * row), r.b_r = xalloc_floats((size_t)(r.n_r + 1) * row);
    r.sel = xmalloc(sizeof(int32_t) * (size_t)most * L), r.pick = xmalloc(sizeof(int) * (size_t)most);
    r.hid = xalloc_floats((size_t)most * row), r.selv = xmalloc(sizeof(int) * (size_t)most);
    r.grad = xalloc_floats((size_t)k * W), r.z = z;
    float *fq = NULL;
    double *U = NULL;
    int rc = prompt_rows(t, tpl, nt, cs, nc, L, k, plain_c, r.ids_c, r.eot_c, e);
    if (!rc && n_preserve) rc = prompt_rows(t, tpl, nt, preserve, n_preserve, L, k, plain_r, r.ids_r, r.eot_r, e);
    if (!rc) rc = clip_encode_text_hidden(m, plain_c, r.n_c, 1, r.b_c, e); /* f(p) */
    if (!rc && n_preserve) rc = clip_encode_text_hidden(m, plain_r, r.n_r, 1, r.b_r, e);
    if (!rc && o->tcs == TCS_DIFF) { /* b_i = f(p)_i - lambda (f(p)_i - f(p\c)_s(i)) */
        fq = xalloc_floats((size_t)r.n_c * row);
        rc = prompt_rows(t, tpl, nt, nws, nc, L, k, plain_q, NULL, eot_q, e);
        if (!rc) rc = clip_encode_text_hidden(m, plain_q, r.n_c, 1, fq, e);
        for (int p = 0; p < r.n_c && !rc; p++) {
            escape_align(plain_c + (size_t)p * L, r.eot_c[p] + 1, plain_q + (size_t)p * L, eot_q[p] + 1, L, s);
            float *b = r.b_c + (size_t)p * row;
            const float *q = fq + (size_t)p * row;
            for (int i = 0; i < L; i++)
                for (int c = 0; c < W; c++)
                    b[(size_t)i * W + c] -= (float)(o->lambda * (b[(size_t)i * W + c] - q[(size_t)s[i] * W + c]));
        }
    } else if (!rc) { /* b_i = (I - P_C) f(p)_i, C from the EOT rows of the concept prompts */
        float *C = xalloc_floats((size_t)r.n_c * W);
        for (int p = 0; p < r.n_c; p++)
            memcpy(C + (size_t)p * W, r.b_c + (size_t)p * row + (size_t)r.eot_c[p] * W, sizeof(float) * (size_t)W);
        U = xmalloc(sizeof(double) * (size_t)(r.n_c < W ? r.n_c : W) * W);
        rc = concept_basis(C, r.n_c, W, U, &res->subspace_rank, e);
        free(C);
        for (long i = 0; !rc && i < (long)r.n_c * L; i++) {
            float *f = r.b_c + (size_t)i * W;
            for (int q = 0; q < res->subspace_rank; q++) {
                const double *u = U + (size_t)q * W;
                double d = 0;
                for (int c = 0; c < W; c++) d += u[c] * f[c];
                for (int c = 0; c < W; c++) f[c] -= (float)(d * u[c]);
            }
        }
    }
    if (!rc) { /* z starts at the neutral word's embedding, a little noise apart */
        int32_t *nid = NULL;
        int nn = 0;
        rc = tokenizer_encode(t, o->neutral, &nid, &nn, e);
        if (!rc && nn == 0) rc = err_set(e, "escape: the neutral word \"%s\" tokenises to nothing", o->neutral);
        Rng g;
        rng_seed(&g, o->seed ^ 0xe5ca9e);
        for (int j = 0; j < k && !rc; j++) {
            clip_token_row(m, nid[0], z + (size_t)j * W);
            for (int c = 0; c < W; c++) z[(size_t)j * W + c] += 0.01f * rng_normal(&g);
        }
        free(nid);
    }
    if (!rc) {
        TrainSpec spec = {.label = "escape", .total_steps = o->steps, .lr = o->lr, .beta1 = 0.9f, .beta2 = 0.999f,
                          .eps = 1e-8f, .params = z, .grads = r.grad, .n_params = (long)k * W, .step = esc_step,
                          .status = esc_status, .user = &r, .samples_per_step = 1, .unit = "steps", .quiet = o->quiet};
        TrainState st;
        rc = train_run(&spec, &st, e);
    }
    if (!rc) { /* the final losses on every prompt (no gradient: inference activations only) */
        for (int j = 0; j < most; j++) r.pick[j] = j;
        res->loss_erase = escape_objective(m, r.ids_c, r.b_c, r.eot_c, r.n_c, k, o->loss, 1.0, z, NULL, e);
        res->loss_keep = r.n_r ? escape_objective(m, r.ids_r, r.b_r, r.eot_r, r.n_r, k, o->loss, 1.0, z, NULL, e) : 0;
        res->loss = res->loss_erase + o->alpha * res->loss_keep;
        if (isnan(res->loss)) rc = -1;
    }
    res->trainable = (long)k * W;
    res->seconds = now_seconds() - t0;
    free(plain_c), free(plain_r), free(plain_q), free(eot_q), free(s), free(fq), free(U);
    free(tpl), free(cs), free(nws);
    free(r.ids_c), free(r.ids_r), free(r.eot_c), free(r.eot_r), free(r.b_c), free(r.b_r), free(r.sel), free(r.pick);
    free(r.hid), free(r.selv), free(r.grad);
    return rc;
}
