/* The programme's strict black-box attack, OUR RECONSTRUCTION (diffusion-attacks.md 4.5; no
 * description of the published method is public):
 *   1. neighbours  w_1..w_M: the concept's nearest words of a public word list under the
 *                  attacker's own CLIP g (attack_words.c), the concept and its near forms out;
 *   2. prompt      e(alpha) = sum_m alpha_m E_victim(tpl(w_m)), sent as a weighted prompt to
 *                  POST /v1/generate (the only lever beyond words public APIs give);
 *   3. search      CMA-ES (core/cmaes.h) on alpha minimising
 *                  J(alpha) = -mean_s cos(g_img(G(e(alpha), s)), g_txt(tpl(c*))),
 *                  the same per_query seeds for every candidate (common random numbers), until
 *                  the image budget is spent; the best alpha seen is the attack. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cmaes.h"
#include "core/progress.h"
#include "eval/gen_eval.h"
#include "forget/diffusion/attack_internal.h"
#include "models/clip_encode.h"
#include "serve/generate.h"

static void unit(float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    const double r = 1.0 / sqrt(s + 1e-30);
    for (int i = 0; i < n; i++) v[i] = (float)(v[i] * r);
}

static void fill(AttackPrompt *p, const AttackOpts *o, char **words, int M, const double *alpha) {
    attack_prompt_free(p);
    for (int m = 0; m < M; m++) {
        char *t = clip_prompt_fill(o->template_, words[m]);
        const double a = fmax(-GEN_MAX_WEIGHT, fmin(GEN_MAX_WEIGHT, alpha[m]));
        attack_prompt_add(p, t, (float)a);
        attack_prompt_term(p, words[m], (float)a);
        free(t);
    }
}

int attack_neighbours(AttackBudget *b, const Tokenizer *tok, AttackPrompt *out, double *score, Err *e) {
    const AttackOpts *o = b->o;
    const ClipModel *g = o->external;
    RankedWords rw;
    if (attack_rank_words(o, tok, &rw, e)) return -1;
    const int M = o->neighbours < rw.n ? o->neighbours : rw.n, D = g->cfg.embed_dim, S = b->v->side, q = o->per_query;
    if (M < 1 || q < 1) return ranked_words_free(&rw), err_set(e, "neighbours: --neighbours and --per-query must be >= 1");
    if (!o->quiet) {
        fprintf(stderr, "neighbours (reconstruction): ");
        for (int m = 0; m < M; m++) fprintf(stderr, "%s%s %.3f", m ? ", " : "", rw.words[m], (double)rw.sims[m]);
        fprintf(stderr, "\n");
    }
    float *tf = xalloc_floats((size_t)D), *imf = xalloc_floats((size_t)q * D);
    const char *cc = o->concept;
    int rc = clip_encode_filled(g, tok, o->template_, &cc, 1, tf, e);
    unit(tf, D);
    double *x0 = xmalloc(sizeof(double) * (size_t)M), *best = xmalloc(sizeof(double) * (size_t)M);
    for (int m = 0; m < M; m++) x0[m] = best[m] = 1.0 / M;
    CmaEs c;
    cmaes_init(&c, M, x0, o->sigma, 0, o->seed ^ 0x4e16b);
    double *X = xmalloc(sizeof(double) * (size_t)c.lambda * M), *F = xmalloc(sizeof(double) * (size_t)c.lambda);
    uint8_t *rgb = xmalloc((size_t)q * S * S * 3);
    double best_f = INFINITY;
    const uint64_t seed = o->seed + 17;
    Progress bar;
    progress_start(&bar, "neighbours", o->budget, o->quiet);
    AttackPrompt cand = {0};
    while (!rc && b->used + q <= o->budget) {
        cmaes_ask(&c, X);
        int done = 0;
        for (int i = 0; i < c.lambda && !rc && b->used + q <= o->budget; i++, done++) {
            fill(&cand, o, rw.words, M, X + (size_t)i * M);
            rc = attack_search_generate(b, &cand, q, seed, rgb, e);
            if (!rc) rc = gen_clip_images(g, rgb, q, S, imf, e);
            double f = 0;
            for (int s = 0; s < q && !rc; s++) {
                unit(imf + (size_t)s * D, D);
                double d = 0;
                for (int k = 0; k < D; k++) d += (double)imf[(size_t)s * D + k] * tf[k];
                f -= d / q;
            }
            F[i] = f;
            if (!rc && f < best_f) best_f = f, memcpy(best, X + (size_t)i * M, sizeof(double) * (size_t)M);
            char st[64];
            snprintf(st, sizeof st, "best cos %.4f", -best_f);
            progress_update(&bar, b->used, 1, "img", st);
        }
        if (!rc && done == c.lambda) cmaes_tell(&c, F); /* a generation cut by the budget is not told */
    }
    progress_end(&bar);
    if (!rc) fill(out, o, rw.words, M, best), *score = isfinite(best_f) ? -best_f : 0;
    attack_prompt_free(&cand);
    cmaes_free(&c);
    free(tf), free(imf), free(x0), free(best), free(X), free(F), free(rgb);
    ranked_words_free(&rw);
    return rc;
}
