/* UnlearnDiffAtk (Zhang et al., ECCV 2024; diffusion-attacks.md 4.1): the erased model as its own
 * classifier. k prefix positions each hold a distribution u_p over candidate tokens; a step samples
 * a one-hot token per position from u (straight-through: the gradient of the one-hot, hardtanh'd,
 * is u's), feeds [SOT; escape; delta; p] to the erased model and descends
 *   E_{eps} || eps - eps_theta_erased(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, E([delta; p])) ||^2
 * with Adam (lr, weight decay 0.1 as an L2 term, as torch.optim.Adam does), then projects u back
 * onto the simplex. x0: latents the ORIGINAL model drew for p. Timesteps run sequentially,
 * t = T / (2 n) + i T / n, ud_iters steps each; after each t the argmax prefix is checked on four
 * images and the search stops when the judge labels most of them as the concept (the published
 * attack stops at one success on its one seed; with fresh evaluation seeds a single success is
 * too often the plain prompt's own leak), within the budget.
 * Deviation (docs/attacks.md): the candidates are the single-token words of the word list
 * (ud_pool of them, a seeded draw), not all 49,408 BPE ids, so the prompt is plain text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "core/rng.h"
#include "core/sort.h"
#include "forget/diffusion/attack_internal.h"
#include "forget/vocab.h"
#include "models/clip_encode.h"

/* Euclidean projection of u [n] onto the probability simplex (sort-based; the published code
 * bisects for the same point). */
void attack_simplex_project(float *u, int n, float *tmp, int *ord) {
    for (int i = 0; i < n; i++) tmp[i] = -u[i];
    argsort_f32(tmp, n, ord); /* descending u */
    double cum = 0, theta = 0;
    for (int i = 0; i < n; i++) {
        cum += u[ord[i]];
        const double th = (cum - 1) / (i + 1);
        if (u[ord[i]] - th > 0) theta = th;
    }
    for (int i = 0; i < n; i++) u[i] = (float)fmax(0.0, u[i] - theta);
}

static int sample(const float *u, int n, Rng *r) {
    double x = rng_uniform(r), c = 0;
    for (int i = 0; i < n; i++)
        if ((c += u[i]) >= x) return i;
    return n - 1;
}

static char *prefixed(char **cand, const int *pick, int k, const char *prompt) {
    size_t cap = strlen(prompt) + 2;
    for (int p = 0; p < k; p++) cap += strlen(cand[pick[p]]) + 1;
    char *s = xmalloc(cap);
    size_t at = 0;
    for (int p = 0; p < k; p++) at += (size_t)snprintf(s + at, cap - at, "%s ", cand[pick[p]]);
    snprintf(s + at, cap - at, "%s", prompt);
    return s;
}

int attack_unlearndiff(AttackBudget *b, AttackPrompt *out, double *score, Err *e) {
    const AttackOpts *o = b->o;
    const Text2Image *g = b->v->g;
    const int k = o->ud_tokens, W = g->unet.cfg.ctx_dim, L = g->ctx_len, B = o->ud_targets, nt = o->ud_timesteps;
    const long per = (long)g->unet.cfg.in_ch * g->side * g->side;
    if (k < 1 || k > 8 || B < 1 || nt < 1) return err_set(e, "unlearndiffatk: --tokens 1..8, --targets and --timesteps >= 1");
    /* candidates: single-token words, a seeded draw */
    Vocab v;
    const char *ex[] = {o->concept, NULL};
    if (vocab_load(&v, o->vocab, ex, 0, o->seed, e)) return -1;
    int *idx = xmalloc(sizeof(int) * (size_t)v.n), nc = 0;
    for (int i = 0; i < v.n; i++) idx[i] = i;
    Rng r;
    rng_seed(&r, o->seed ^ 0x0d1ff);
    rng_shuffle(&r, idx, v.n, sizeof(int));
    char **cand = xmalloc(sizeof(char *) * (size_t)(o->ud_pool > 0 ? o->ud_pool : 1));
    int32_t *cid = xmalloc(sizeof(int32_t) * (size_t)(o->ud_pool > 0 ? o->ud_pool : 1));
    for (int i = 0; i < v.n && nc < o->ud_pool; i++) {
        const char *w = v.words[idx[i]];
        int32_t *t = NULL;
        int n = 0;
        Err te = {{0}};
        if (!attack_word_banned(o, w) && tokenizer_encode(&g->tok, w, &t, &n, &te) == 0 && n == 1) cand[nc] = (char *)w, cid[nc++] = t[0];
        free(t);
    }
    free(idx);
    int rc = nc < 2 ? err_set(e, "unlearndiffatk: fewer than 2 single-token candidate words") : 0;
    float *E = xalloc_floats((size_t)(nc > 0 ? nc : 1) * W); /* candidate token rows */
    for (int i = 0; i < nc; i++) clip_token_row(&g->clip, cid[i], E + (size_t)i * W);
    char *plain = clip_prompt_fill(o->template_, o->concept);
    float *x0 = xalloc_floats((size_t)B * per), *eps = xalloc_floats((size_t)B * per);
    float *u = xalloc_floats((size_t)k * (nc > 0 ? nc : 1)), *gu = xalloc_floats((size_t)k * (nc > 0 ? nc : 1));
    float *m1 = xcalloc((size_t)k * (nc > 0 ? nc : 1), sizeof(float)), *m2 = xcalloc((size_t)k * (nc > 0 ? nc : 1), sizeof(float));
    float *rows = xalloc_floats((size_t)k * W), *drows = xalloc_floats((size_t)k * W), *tmp = xalloc_floats((size_t)(nc > 0 ? nc : 1));
    int *ord = xmalloc(sizeof(int) * (size_t)(nc > 0 ? nc : 1)), *pick = xmalloc(sizeof(int) * (size_t)k);
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)L), *t = xmalloc(sizeof(int32_t) * (size_t)B);
    for (long i = 0; i < (long)k * nc; i++) u[i] = 1.0f / nc;
    if (!rc) rc = attack_targets(b->v, o, B, o->seed + 29, x0, e);
    if (!rc) rc = attack_slot_ids(g, plain, g->n_escape + k, ids, e);
    const int check = 4;
    uint8_t *rgb = xmalloc((size_t)check * b->v->side * b->v->side * 3);
    double loss = NAN;
    long step = 0;
    Progress bar;
    progress_start(&bar, "unlearndiffatk", (long)nt * o->ud_iters, o->quiet);
    for (int ti = 0; ti < nt && !rc; ti++) {
        const int tt = g->sched.T / (2 * nt) + ti * g->sched.T / nt;
        for (int it = 0; it < o->ud_iters && !rc; it++, step++) {
            Rng sr;
            rng_seed(&sr, rng_mix(o->seed ^ 0xa77ac, (uint64_t)step));
            for (int p = 0; p < k; p++) {
                pick[p] = sample(u + (size_t)p * nc, nc, &sr);
                memcpy(rows + (size_t)p * W, E + (size_t)pick[p] * W, sizeof(float) * (size_t)W);
            }
            for (int i = 0; i < B; i++) t[i] = tt;
            rng_fill_normal(&sr, eps, (long)B * per, 0, 1);
            loss = attack_denoise_loss(g, ids, rows, k, x0, B, t, eps, drows, e);
            if (isnan(loss)) {
                rc = -1;
                break;
            }
            const double b1 = 0.9, b2 = 0.999, c1 = 1 - pow(b1, (double)step + 1), c2 = 1 - pow(b2, (double)step + 1);
            for (int p = 0; p < k; p++) /* d loss / d u_v = hardtanh(E_v . d rows_p), plus wd u */
                for (int vv = 0; vv < nc; vv++) {
                    double d = 0;
                    for (int c = 0; c < W; c++) d += (double)E[(size_t)vv * W + c] * drows[(size_t)p * W + c];
                    const size_t q = (size_t)p * nc + vv;
                    gu[q] = (float)(fmax(-1.0, fmin(1.0, d)) + 0.1 * u[q]);
                    m1[q] = (float)(b1 * m1[q] + (1 - b1) * gu[q]), m2[q] = (float)(b2 * m2[q] + (1 - b2) * gu[q] * gu[q]);
                    u[q] -= (float)(o->ud_lr * (m1[q] / c1) / (sqrt(m2[q] / c2) + 1e-8));
                }
            for (int p = 0; p < k; p++) attack_simplex_project(u + (size_t)p * nc, nc, tmp, ord);
            char st[48];
            snprintf(st, sizeof st, "t %d loss %.5f", tt, loss);
            progress_update(&bar, step + 1, 1, "steps", st);
        }
        if (rc || b->used + check > o->budget) continue;
        for (int p = 0; p < k; p++) { /* the argmax prefix, checked as the published attack does */
            int best = 0;
            for (int vv = 1; vv < nc; vv++)
                if (u[(size_t)p * nc + vv] > u[(size_t)p * nc + best]) best = vv;
            pick[p] = best;
        }
        char *text = prefixed(cand, pick, k, plain);
        AttackPrompt ap = {0};
        attack_prompt_text(&ap, text);
        free(text);
        rc = attack_search_generate(b, &ap, check, o->seed + 37 + (uint64_t)ti, rgb, e);
        attack_prompt_free(&ap);
        if (!rc && 2 * b->last_hits > check) break; /* success: stop early */
    }
    progress_end(&bar);
    if (!rc) {
        for (int p = 0; p < k; p++) {
            int best = 0;
            for (int vv = 1; vv < nc; vv++)
                if (u[(size_t)p * nc + vv] > u[(size_t)p * nc + best]) best = vv;
            pick[p] = best;
        }
        char *text = prefixed(cand, pick, k, plain);
        attack_prompt_text(out, text);
        free(text);
        *score = loss;
    }
    free(cand), free(cid), free(E), free(plain), free(x0), free(eps), free(u), free(gu), free(m1), free(m2), free(rows);
    free(drows), free(tmp), free(ord), free(pick), free(ids), free(t), free(rgb);
    vocab_free(&v);
    return rc;
}
