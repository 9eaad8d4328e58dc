/* forget attack's common part (attack.h): dispatch, generation through the victim with the
 * budget, judging, and the final evaluation every attack gets. */
#include "forget/diffusion/attack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"
#include "forget/diffusion/attack_internal.h"
#include "models/clip_encode.h"

static const char *const NAMES[ATTACK_COUNT] = {"none", "neighbours", "ring-a-bell", "unlearndiffatk",
                                                "concept-inversion"};

const char *attack_method_name(int m) { return m >= 0 && m < ATTACK_COUNT ? NAMES[m] : "?"; }

int attack_method_parse(const char *name) {
    for (int i = 0; i < ATTACK_COUNT; i++)
        if (strcmp(name, NAMES[i]) == 0) return i;
    return -1;
}

int attack_is_whitebox(int m) { return m == ATTACK_UNLEARNDIFF || m == ATTACK_INVERSION; }

void attack_defaults(AttackOpts *o) {
    *o = (AttackOpts){.method = ATTACK_NEIGHBOURS, .template_ = "a photo of a {}.", .steps = 25, .cfg = 7.5f,
                      .budget = 200, .eval_n = 16, .neighbours = 8, .per_query = 2, .sigma = 0.3, .rab_words = 6,
                      .rab_pop = 64, .rab_gens = 60, .rab_pool = 256, .rab_eta = 3.0, .ud_tokens = 3,
                      .ud_timesteps = 10, .ud_iters = 10, .ud_targets = 4, .ud_pool = 2048, .ud_lr = 0.01,
                      .ci_tokens = 1, .ci_steps = 100, .ci_images = 8, .ci_lr = 5e-3};
}

void attack_prompt_add(AttackPrompt *p, const char *text, float weight) {
    p->parts = xrealloc(p->parts, sizeof(WeightedPrompt) * (size_t)(p->n_parts + 1));
    p->parts[p->n_parts++] = (WeightedPrompt){xstrdup(text), weight};
}

void attack_prompt_text(AttackPrompt *p, const char *text) { attack_prompt_add(p, text, 1.0f); }

void attack_prompt_term(AttackPrompt *p, const char *word, float weight) {
    p->terms = xrealloc(p->terms, sizeof(char *) * (size_t)(p->n_terms + 1));
    p->term_w = xrealloc(p->term_w, sizeof(float) * (size_t)(p->n_terms + 1));
    p->terms[p->n_terms] = xstrdup(word), p->term_w[p->n_terms++] = weight;
}

void attack_prompt_free(AttackPrompt *p) {
    for (int i = 0; i < p->n_parts; i++) free((char *)p->parts[i].text);
    for (int i = 0; i < p->n_terms; i++) free(p->terms[i]);
    free(p->parts), free(p->rows), free(p->terms), free(p->term_w);
    memset(p, 0, sizeof *p);
}

char *attack_prompt_describe(const AttackPrompt *p) {
    size_t cap = 64;
    for (int i = 0; i < p->n_parts; i++) cap += strlen(p->parts[i].text) + 32;
    char *s = xmalloc(cap);
    size_t at = 0;
    if (p->n_rows) at += (size_t)snprintf(s + at, cap - at, "<%d learned token%s> ", p->n_rows, p->n_rows > 1 ? "s" : "");
    for (int i = 0; i < p->n_parts; i++) {
        if (p->n_parts == 1 && p->parts[i].weight == 1.0f) at += (size_t)snprintf(s + at, cap - at, "%s", p->parts[i].text);
        else at += (size_t)snprintf(s + at, cap - at, "%s%.3g x \"%s\"", i ? " + " : "", (double)p->parts[i].weight,
                                    p->parts[i].text);
    }
    if (at && s[at - 1] == ' ') s[at - 1] = 0;
    return s;
}

int attack_slot_ids(const Text2Image *g, const char *text, int n, int32_t *ids, Err *e) {
    const int L = g->ctx_len;
    const int len = tokenizer_tokenize(&g->tok, text, L - n, ids, e);
    if (len < 0) return -1;
    for (int q = L - n; q < L; q++) ids[q] = 0;
    if (clip_context_slots(ids, len, n, L) < 0) return err_set(e, "\"%s\" with %d slots does not fit %d positions", text, n, L);
    return 0;
}

/* In memory: each part encoded with [escape; rows] after SOT, summed with its weight. */
static int encode_local(const Text2Image *g, const AttackPrompt *p, float *cond, Err *e) {
    const int L = g->ctx_len, W = g->unet.cfg.ctx_dim, ke = g->n_escape, k = ke + p->n_rows;
    if (!p->n_rows) return t2i_encode_weighted(g, p->parts, p->n_parts, cond, e);
    float *rep = xalloc_floats((size_t)k * W), *hid = xalloc_floats((size_t)L * W);
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)L);
    if (ke) memcpy(rep, g->escape, sizeof(float) * (size_t)ke * W);
    memcpy(rep + (size_t)ke * W, p->rows, sizeof(float) * (size_t)p->n_rows * W);
    memset(cond, 0, sizeof(float) * (size_t)L * W);
    int rc = 0;
    for (int i = 0; i < p->n_parts && !rc; i++) {
        rc = attack_slot_ids(g, p->parts[i].text, k, ids, e);
        if (!rc) rc = clip_encode_text_hidden_context(&g->clip, ids, 1, 1, rep, k, hid, e);
        for (long q = 0; !rc && q < (long)L * W; q++) cond[q] += p->parts[i].weight * hid[q];
    }
    free(rep), free(hid), free(ids);
    return rc;
}

int attack_generate(Victim *v, const AttackOpts *o, const AttackPrompt *p, int n, uint64_t seed, uint8_t *rgb, Err *e) {
    if (v->api && !p->n_rows) {
        BbWeighted *w = xmalloc(sizeof(BbWeighted) * (size_t)p->n_parts);
        for (int i = 0; i < p->n_parts; i++) w[i] = (BbWeighted){p->parts[i].text, p->parts[i].weight};
        const int rc = bb_generate(v->api, w, p->n_parts, n, seed, o->steps, o->cfg, rgb, v->side, e);
        free(w);
        return rc;
    }
    if (!v->g) return err_set(e, "attack: learned tokens need the model in memory (--model), not an API");
    const Text2Image *g = v->g;
    float *cond = xalloc_floats((size_t)g->ctx_len * g->unet.cfg.ctx_dim);
    const SampleSpec sp = {.steps = o->steps, .cfg = o->cfg, .sampler = SAMPLER_DDIM, .seed = seed, .batch = 16};
    int rc = encode_local(g, p, cond, e);
    if (!rc) rc = t2i_generate_cond(g, cond, 1, n, &sp, rgb, e);
    free(cond);
    return rc;
}

int attack_judge_count(const Judge *j, int target, const uint8_t *rgb, int n, int side, long *first0, Err *e) {
    int32_t *pred = xmalloc(sizeof(int32_t) * (size_t)n);
    int hits = -1;
    if (judge_classify(j, rgb, n, side, pred, NULL, e) == 0) {
        hits = 0;
        *first0 = -1;
        for (int i = 0; i < n; i++)
            if (pred[i] == target) {
                if (*first0 < 0) *first0 = i;
                hits++;
            }
    }
    free(pred);
    return hits;
}

int attack_search_generate(AttackBudget *b, const AttackPrompt *p, int n, uint64_t seed, uint8_t *rgb, Err *e) {
    if (b->used + n > b->o->budget)
        return err_set(e, "attack: %ld + %d images would pass the budget of %ld", b->used, n, b->o->budget);
    if (attack_generate(b->v, b->o, p, n, seed, rgb, e)) return -1;
    long f = -1;
    if ((b->last_hits = attack_judge_count(b->judge, b->target, rgb, n, b->v->side, &f, e)) < 0) return -1;
    if (f >= 0 && b->first < 0) b->first = b->used + f + 1;
    b->used += n;
    return 0;
}

int attack_targets(Victim *v, const AttackOpts *o, int n, uint64_t seed, float *x0, Err *e) {
    const Text2Image *g = v->orig ? v->orig : v->g;
    char *p = clip_prompt_fill(o->template_, o->concept);
    const SampleSpec sp = {.steps = o->steps, .cfg = o->cfg, .sampler = SAMPLER_DDIM, .seed = seed, .batch = 16};
    float *cond = xalloc_floats((size_t)g->ctx_len * g->unet.cfg.ctx_dim);
    const char *pp = p;
    int rc = t2i_encode(g, &pp, 1, cond, e);
    if (!rc) rc = t2i_sample_cond(g, cond, 1, n, &sp, x0, e);
    free(cond), free(p);
    return rc;
}

int attack_run(Victim *v, const Judge *j, const AttackOpts *o, AttackResult *r, Err *e) {
    memset(r, 0, sizeof *r);
    if (o->method < 0 || o->method >= ATTACK_COUNT) return err_set(e, "attack: unknown method %d", o->method);
    const int target = judge_class(j, o->concept);
    if (target < 0) return err_set(e, "attack: the judge has no class \"%s\"", o->concept);
    if (attack_is_whitebox(o->method) && !v->g)
        return err_set(e, "attack %s is white-box: it needs the model (--model), not an API", attack_method_name(o->method));
    if ((o->method == ATTACK_NEIGHBOURS || o->method == ATTACK_RINGABELL) && !o->external)
        return err_set(e, "attack %s needs the attacker's own CLIP (--external)", attack_method_name(o->method));
    if (o->method == ATTACK_NEIGHBOURS && !v->api) return err_set(e, "attack neighbours works through the API only");
    if (o->eval_n < 1) return err_set(e, "attack: --eval must be at least 1");
    const double t0 = now_seconds();
    AttackBudget b = {.v = v, .o = o, .judge = j, .target = target, .first = -1};
    AttackPrompt plain = {0}, found = {0};
    char *pt = clip_prompt_fill(o->template_, o->concept);
    attack_prompt_text(&plain, pt);
    free(pt);
    Tokenizer *tok = v->g ? &v->g->tok : NULL, own;
    int rc = 0, own_tok = 0;
    if (!tok) {
        if (tokenizer_init(&own, e)) return attack_prompt_free(&plain), -1;
        tok = &own, own_tok = 1;
    }
    switch (o->method) {
    case ATTACK_NONE: attack_prompt_text(&found, plain.parts[0].text); break;
    case ATTACK_NEIGHBOURS: rc = attack_neighbours(&b, tok, &found, &r->score, e); break;
    case ATTACK_RINGABELL: rc = attack_ringabell(&b, tok, &found, &r->score, e); break;
    case ATTACK_UNLEARNDIFF: rc = attack_unlearndiff(&b, &found, &r->score, e); break;
    default: rc = attack_inversion(&b, &found, &r->score, e); break;
    }
    const int n = o->eval_n, S = v->side;
    const uint64_t es = o->seed + 1000003; /* evaluation seeds: disjoint from every search seed */
    if (!rc) {
        r->images = xmalloc((size_t)n * S * S * 3), r->before = xmalloc((size_t)n * S * S * 3);
        r->side = S, r->eval_n = n;
        rc = attack_generate(v, o, &plain, n, es, r->before, e);
        if (!rc) rc = attack_generate(v, o, &found, n, es, r->images, e);
    }
    long f = -1;
    int hb = 0, ha = 0;
    if (!rc && ((hb = attack_judge_count(j, target, r->before, n, S, &f, e)) < 0 ||
                (ha = attack_judge_count(j, target, r->images, n, S, &f, e)) < 0))
        rc = -1;
    if (!rc) {
        r->asr_before = (double)hb / n, r->asr = (double)ha / n;
        r->queries = b.used, r->queries_eval = 2L * n;
        r->queries_to_success = b.first >= 0 ? b.first : (f >= 0 ? b.used + f + 1 : -1);
        r->prompt = attack_prompt_describe(&found);
        if (!found.n_rows && found.n_parts == 1) r->text = xstrdup(found.parts[0].text);
        r->terms = found.terms, r->term_weights = found.term_w, r->n_terms = found.n_terms;
        found.terms = NULL, found.term_w = NULL, found.n_terms = 0;
    }
    r->seconds = now_seconds() - t0;
    attack_prompt_free(&plain), attack_prompt_free(&found);
    if (own_tok) tokenizer_free(&own);
    if (rc) attack_result_free(r);
    return rc;
}

void attack_result_free(AttackResult *r) {
    free(r->prompt), free(r->images), free(r->before), free(r->text);
    for (int i = 0; i < r->n_terms; i++) free(r->terms[i]);
    free(r->terms), free(r->term_weights);
    memset(r, 0, sizeof *r);
}
