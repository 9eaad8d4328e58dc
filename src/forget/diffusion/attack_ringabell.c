/* Ring-A-Bell (Tsai, Hsu et al., ICLR 2024; diffusion-attacks.md 4.3): black-box and model-agnostic.
 *   concept vector  v_c = mean_j ( E(p_j^+) - E(p_j^-) ) over paired prompts with the concept and
 *                   with a neutral word, E the attacker's CLIP text states (every position);
 *   target          e~ = E(p) + eta v_c, p the plain concept prompt;
 *   search          a genetic algorithm over K-word prompts minimising ||e~ - E(words)||^2: keep
 *                   the best half, single-point crossover (rate 0.5), mutation of one word
 *                   (rate 0.25).
 * Deviation (labelled in docs/attacks.md): genes are whole words of the attacker's word list (the
 * rab_pool nearest to the concept under its CLIP, the concept and near forms out) rather than BPE
 * ids, so the prompt found is exactly the text the victim's API gets. The victim is queried only
 * for the final judgement. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "core/rng.h"
#include "core/sort.h"
#include "forget/diffusion/attack_internal.h"
#include "forget/diffusion/escape.h"
#include "models/clip_encode.h"

static char *join(char **pool, const int *genes, int K) {
    size_t cap = 1;
    for (int i = 0; i < K; i++) cap += strlen(pool[genes[i]]) + 1;
    char *s = xmalloc(cap);
    size_t at = 0;
    for (int i = 0; i < K; i++) at += (size_t)snprintf(s + at, cap - at, "%s%s", i ? " " : "", pool[genes[i]]);
    return s;
}

/* Text states of n texts [n, L, W] under m (every position). */
static int states(const ClipModel *m, const Tokenizer *t, char **texts, int n, float *out, Err *e) {
    const int L = m->cfg.context;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)n * L);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (tokenizer_tokenize(t, texts[i], L, ids + (size_t)i * L, e) < 0) rc = -1;
    if (!rc) rc = clip_encode_text_hidden(m, ids, n, 1, out, e);
    free(ids);
    return rc;
}

int attack_ringabell(AttackBudget *b, const Tokenizer *tok, AttackPrompt *out, double *score, Err *e) {
    const AttackOpts *o = b->o;
    const ClipModel *m = o->external;
    const int K = o->rab_words, P = o->rab_pop < 4 ? 4 : o->rab_pop, L = m->cfg.context, W = m->cfg.t_width;
    const size_t row = (size_t)L * W;
    if (K < 1) return err_set(e, "ring-a-bell: --words must be >= 1");
    RankedWords rw;
    if (attack_rank_words(o, tok, &rw, e)) return -1;
    const int pool = o->rab_pool < rw.n ? o->rab_pool : rw.n;
    int nt = 0;
    const char *const *tpl = escape_templates(&nt);
    char **pp = xmalloc(sizeof(char *) * (size_t)(2 * nt + 1 > P ? 2 * nt + 1 : P));
    float *H = xalloc_floats((size_t)(2 * nt + 1 > P ? 2 * nt + 1 : P) * row), *tgt = xalloc_floats(row);
    for (int j = 0; j < nt; j++) pp[j] = clip_prompt_fill(tpl[j], o->concept), pp[nt + j] = clip_prompt_fill(tpl[j], "object");
    pp[2 * nt] = clip_prompt_fill(o->template_, o->concept);
    int rc = states(m, tok, pp, 2 * nt + 1, H, e);
    for (int j = 0; j < 2 * nt + 1; j++) free(pp[j]);
    if (!rc) { /* e~ = E(p) + eta mean_j (E(p_j+) - E(p_j-)) */
        memcpy(tgt, H + (size_t)2 * nt * row, sizeof(float) * row);
        for (int j = 0; j < nt; j++)
            for (size_t q = 0; q < row; q++) tgt[q] += (float)(o->rab_eta / nt * (H[j * row + q] - H[(nt + j) * row + q]));
    }
    int *pop = xmalloc(sizeof(int) * (size_t)P * K), *next = xmalloc(sizeof(int) * (size_t)P * K), *ord = xmalloc(sizeof(int) * (size_t)P);
    float *fit = xalloc_floats((size_t)P);
    Rng g;
    rng_seed(&g, o->seed ^ 0x819abe11);
    for (long i = 0; i < (long)P * K; i++) pop[i] = (int)rng_below(&g, (uint32_t)pool);
    double best = INFINITY;
    int *best_g = xmalloc(sizeof(int) * (size_t)K);
    Progress bar;
    progress_start(&bar, "ring-a-bell", o->rab_gens, o->quiet);
    for (int gen = 0; gen < o->rab_gens && !rc; gen++) {
        for (int i = 0; i < P; i++) pp[i] = join(rw.words, pop + (size_t)i * K, K);
        rc = states(m, tok, pp, P, H, e);
        for (int i = 0; i < P; i++) free(pp[i]);
        for (int i = 0; i < P && !rc; i++) {
            double d = 0;
            for (size_t q = 0; q < row; q++) {
                const double x = (double)H[i * row + q] - tgt[q];
                d += x * x;
            }
            fit[i] = (float)(d / row);
            if (fit[i] < best) best = fit[i], memcpy(best_g, pop + (size_t)i * K, sizeof(int) * (size_t)K);
        }
        if (rc) break;
        argsort_f32(fit, P, ord);
        const int keep = P / 2;
        for (int i = 0; i < keep; i++) memcpy(next + (size_t)i * K, pop + (size_t)ord[i] * K, sizeof(int) * (size_t)K);
        for (int i = keep; i < P; i++) { /* children of two elite parents */
            const int *a = next + (size_t)rng_below(&g, (uint32_t)keep) * K, *c = next + (size_t)rng_below(&g, (uint32_t)keep) * K;
            int *ch = next + (size_t)i * K;
            const int cut = rng_uniform(&g) < 0.5f ? (int)rng_below(&g, (uint32_t)K) : K;
            for (int q = 0; q < K; q++) ch[q] = q < cut ? a[q] : c[q];
            if (rng_uniform(&g) < 0.25f) ch[rng_below(&g, (uint32_t)K)] = (int)rng_below(&g, (uint32_t)pool);
        }
        int *t = pop;
        pop = next, next = t;
        char st[64];
        snprintf(st, sizeof st, "distance %.5f", best);
        progress_update(&bar, gen + 1, 1, "gen", st);
    }
    progress_end(&bar);
    if (!rc) {
        char *text = join(rw.words, best_g, K);
        attack_prompt_text(out, text);
        for (int q = 0; q < K; q++) attack_prompt_term(out, rw.words[best_g[q]], 1.0f);
        free(text);
        *score = best;
    }
    free(pp), free(H), free(tgt), free(pop), free(next), free(ord), free(fit), free(best_g);
    ranked_words_free(&rw);
    return rc;
}
