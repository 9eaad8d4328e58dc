/* The attacker's public vocabulary (a plain word list, forget/vocab.h) ranked by the attacker's own
 * CLIP: s(w) = cos(g(tpl(w)), g(tpl(c*))), the neighbour selection of the reconstruction
 * (diffusion-attacks.md 4.5, step 1), also the gene pool of Ring-A-Bell and the candidate set of
 * UnlearnDiffAtk here. */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/sort.h"
#include "forget/diffusion/attack_internal.h"
#include "forget/vocab.h"
#include "models/clip_encode.h"

/* a and b (lower-case) share a stem: one contains the other and the shorter has 4+ letters. */
static int near_form(const char *a, const char *b) {
    const size_t la = strlen(a), lb = strlen(b);
    const char *s = la <= lb ? a : b, *l = la <= lb ? b : a;
    if (strcmp(a, b) == 0) return 1;
    return strlen(s) >= 4 && strstr(l, s) != NULL;
}

int attack_word_banned(const AttackOpts *o, const char *w) {
    char buf[128];
    const char *c = o->concept;
    while (*c) { /* each word of the concept ("ankle boot": ankle, boot) */
        while (*c == ' ' || *c == '-') c++;
        size_t n = 0;
        while (c[n] && c[n] != ' ' && c[n] != '-' && n + 1 < sizeof buf) buf[n] = (char)tolower((unsigned char)c[n]), n++;
        buf[n] = 0;
        if (n && near_form(buf, w)) return 1;
        c += n;
    }
    for (int i = 0; o->exclude && o->exclude[i]; i++)
        if (strcmp(o->exclude[i], w) == 0) return 1;
    return 0;
}

int attack_rank_words(const AttackOpts *o, const Tokenizer *tok, RankedWords *r, Err *e) {
    memset(r, 0, sizeof *r);
    Vocab *v = xcalloc(1, sizeof *v);
    const char *ex[] = {o->concept, NULL};
    if (vocab_load(v, o->vocab, ex, o->vocab_max, o->seed ^ 0x70cab, e)) return free(v), -1;
    r->vocab = v;
    r->words = xmalloc(sizeof(char *) * (size_t)(v->n + 1));
    for (int i = 0; i < v->n; i++)
        if (!attack_word_banned(o, v->words[i])) r->words[r->n++] = v->words[i];
    if (r->n < 1) return ranked_words_free(r), err_set(e, "attack: no usable word in the vocabulary");
    const ClipModel *m = o->external;
    const int D = m->cfg.embed_dim;
    float *f = xalloc_floats((size_t)r->n * D), *c = xalloc_floats((size_t)D);
    const char *cc = o->concept;
    int rc = clip_encode_filled(m, tok, o->template_, (const char *const *)r->words, r->n, f, e);
    if (!rc) rc = clip_encode_filled(m, tok, o->template_, &cc, 1, c, e);
    if (!rc) {
        double cn = 0;
        for (int q = 0; q < D; q++) cn += (double)c[q] * c[q];
        float *sim = xalloc_floats((size_t)r->n);
        for (int i = 0; i < r->n; i++) {
            double d = 0, fn = 0;
            for (int q = 0; q < D; q++) d += (double)f[(size_t)i * D + q] * c[q], fn += (double)f[(size_t)i * D + q] * f[(size_t)i * D + q];
            sim[i] = (float)(-d / sqrt(cn * fn + 1e-30)); /* ascending sort: most similar first */
        }
        int *ord = xmalloc(sizeof(int) * (size_t)r->n);
        argsort_f32(sim, r->n, ord);
        char **w = xmalloc(sizeof(char *) * (size_t)r->n);
        r->sims = xalloc_floats((size_t)r->n);
        for (int i = 0; i < r->n; i++) w[i] = r->words[ord[i]], r->sims[i] = -sim[ord[i]];
        free(r->words), free(ord), free(sim);
        r->words = w;
    }
    free(f), free(c);
    if (rc) ranked_words_free(r);
    return rc;
}

void ranked_words_free(RankedWords *r) {
    if (r->vocab) vocab_free(r->vocab);
    free(r->vocab), free(r->words), free(r->sims);
    memset(r, 0, sizeof *r);
}
