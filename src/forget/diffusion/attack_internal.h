/* What the attacks of forget attack share (attack.c): a prompt an attack found, generation
 * through the victim with query accounting, judging, and the words of the public vocabulary
 * ranked by the attacker's CLIP (attack_words.c). */
#ifndef FORGET_ATTACK_INTERNAL_H
#define FORGET_ATTACK_INTERNAL_H

#include "forget/diffusion/attack.h"

/* A weighted prompt of owned texts, optionally with continuous rows placed after SOT (and after the
 * victim's escape tokens): white-box attacks only, no API takes them. */
typedef struct {
    WeightedPrompt *parts;
    int n_parts;
    float *rows;
    int n_rows;
    char **terms;   /* the words combined, with their weights (owned) */
    float *term_w;
    int n_terms;
} AttackPrompt;

void attack_prompt_text(AttackPrompt *p, const char *text);
void attack_prompt_add(AttackPrompt *p, const char *text, float weight);
void attack_prompt_term(AttackPrompt *p, const char *word, float weight);
void attack_prompt_free(AttackPrompt *p);
char *attack_prompt_describe(const AttackPrompt *p);

/* n images of (seed, i) of p: through the API when v has one and p has no rows, else in memory. */
int attack_generate(Victim *v, const AttackOpts *o, const AttackPrompt *p, int n, uint64_t seed, uint8_t *rgb, Err *e);
/* Search images: refused past the budget; counted into *used; the judge's verdicts update
 * *first (the 1-based index of the first success, measured, never shown to the search). */
typedef struct {
    Victim *v;
    const AttackOpts *o;
    const Judge *judge;
    int target;          /* the concept's class in the judge */
    long used, first;
    int last_hits;       /* successes among the last call's images (measured) */
} AttackBudget;
int attack_search_generate(AttackBudget *b, const AttackPrompt *p, int n, uint64_t seed, uint8_t *rgb, Err *e);
/* Successes among n images (the index of the first in *first0, -1: none). */
int attack_judge_count(const Judge *j, int target, const uint8_t *rgb, int n, int side, long *first0, Err *e);

/* The words of the attacker's vocabulary ranked by cos(g(tpl(w)), g(tpl(concept))) under the
 * external CLIP, best first, the concept and its near forms excluded. *words: malloc'd array of
 * borrowed strings of v (keep v alive); sims [n] the similarities. */
typedef struct {
    char **words;
    int n;
    float *sims;
    void *vocab; /* Vocab * */
} RankedWords;
int attack_rank_words(const AttackOpts *o, const Tokenizer *tok, RankedWords *r, Err *e);
void ranked_words_free(RankedWords *r);
/* Word w is the concept or a near form of it (one contains the other, 4+ letters), or excluded. */
int attack_word_banned(const AttackOpts *o, const char *w);

int attack_neighbours(AttackBudget *b, const Tokenizer *tok, AttackPrompt *out, double *score, Err *e);
int attack_ringabell(AttackBudget *b, const Tokenizer *tok, AttackPrompt *out, double *score, Err *e);
int attack_unlearndiff(AttackBudget *b, AttackPrompt *out, double *score, Err *e);
int attack_inversion(AttackBudget *b, AttackPrompt *out, double *score, Err *e);

/* White-box: the erased model's denoising loss mean ||eps - eps_theta(x_t, t, E(ids; [escape; rows]))||^2
 * over B target latents x0 at timesteps t with noise eps, the ids [ctx_len] holding n_escape + k
 * slots after SOT; the gradient with respect to rows [k, W] into drows (NULL: none). */
double attack_denoise_loss(const Text2Image *g, const int32_t *ids, const float *rows, int k, const float *x0, int B,
                           const int32_t *t, const float *eps, float *drows, Err *e);
/* Token row ids [ctx_len] of text with n slots after SOT (-1 when it does not fit). */
int attack_slot_ids(const Text2Image *g, const char *text, int n, int32_t *ids, Err *e);
/* The Euclidean projection of u [n] onto the probability simplex, in place (tmp [n], ord [n] work). */
void attack_simplex_project(float *u, int n, float *tmp, int *ord);
/* Latents x0 [n, in_ch, side, side] the original model draws for the plain concept prompt. */
int attack_targets(Victim *v, const AttackOpts *o, int n, uint64_t seed, float *x0, Err *e);

#endif
