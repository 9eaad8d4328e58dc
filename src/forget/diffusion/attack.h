/* forget attack: bringing an erased concept back (../shared/methods/diffusion-attacks.md), each
 * attack judged the same way: the erased model draws eval_n images of the attack's prompt (seeds
 * seed_eval + i, never seen by the search) and of the plain concept prompt (the pre-attack rate);
 * the attack success rate (ASR) is the share the judge (eval/judge.h) labels as the concept.
 *
 *   none               the prompt as is
 *   neighbours         OUR RECONSTRUCTION of the programme's strict black-box attack (section 4.5):
 *                      the concept's M nearest words in a public word list by an external CLIP
 *                      (never the victim's text encoder), then CMA-ES on the weights of their
 *                      weighted prompt, scored by that CLIP's image-text similarity, through
 *                      POST /v1/generate only (attack_neighbours.c)
 *   ring-a-bell        black-box, model-agnostic: a genetic search over words whose external-CLIP
 *                      text states match the prompt's plus eta times the concept direction
 *                      (attack_ringabell.c); the victim sees only the final prompt
 *   unlearndiffatk     white-box: the erased model as its own classifier, k prefix words by
 *                      projected gradient on per-position distributions (attack_unlearndiff.c)
 *   concept-inversion  white-box: textual inversion on the erased model from images the original
 *                      model made of the concept (attack_inversion.c)
 *
 * Black-box attacks reach the victim through an API client (a server started in-process when the
 * model is local), so the server's count of generated images is the attack's query count. */
#ifndef FORGET_ATTACK_H
#define FORGET_ATTACK_H

#include <stdint.h>

#include "core/err.h"
#include "eval/judge.h"
#include "models/clip.h"
#include "models/text2image.h"
#include "serve/client.h"

typedef enum { ATTACK_NONE = 0, ATTACK_NEIGHBOURS, ATTACK_RINGABELL, ATTACK_UNLEARNDIFF, ATTACK_INVERSION, ATTACK_COUNT } AttackMethod;

const char *attack_method_name(int m);
int attack_method_parse(const char *name); /* -1: unknown */
int attack_is_whitebox(int m);

/* The attacked model: a generation API (black-box) and/or the erased model in memory (white-box,
 * its sampling-time files applied) with the original model it was erased from. */
typedef struct {
    BbClient *api;
    Text2Image *g, *orig;
    int side;                /* image side */
} Victim;

typedef struct {
    int method;
    const char *concept;
    const char *template_;   /* "a photo of a {}." : the plain prompt and the search's text */
    int steps;               /* sampling steps of every generated image */
    float cfg;
    long budget;             /* images the search may have generated (black-box and white-box checks) */
    int eval_n;              /* images of the final judgement, per prompt */
    const ClipModel *external; /* the attacker's CLIP (black-box attacks) */
    const char *vocab;       /* word list (NULL: vocab.h's default) */
    const char *const *exclude; /* words never used (NULL-terminated; the concept is always excluded) */
    int vocab_max;           /* words of the list kept (a seeded draw); 0: all */
    /* neighbours */
    int neighbours;          /* M */
    int per_query;           /* images a candidate is scored on */
    double sigma;            /* CMA-ES initial step */
    /* ring-a-bell */
    int rab_words, rab_pop, rab_gens, rab_pool;
    double rab_eta;
    /* unlearndiffatk */
    int ud_tokens, ud_timesteps, ud_iters, ud_targets, ud_pool;
    double ud_lr;
    /* concept inversion */
    int ci_tokens, ci_steps, ci_images;
    double ci_lr;
    uint64_t seed;
    int quiet;
} AttackOpts;

void attack_defaults(AttackOpts *o);

typedef struct {
    double asr, asr_before;      /* shares of eval_n images judged as the concept */
    long queries;                /* images the search generated (the budget's unit) */
    long queries_eval;           /* images of the final judgement (attack and plain prompt) */
    long queries_to_success;     /* 1-based index, over the attack's own images (search, then its eval
                                    images), of the first the judge labels as the concept; -1: none */
    char *prompt;                /* what the attack found, in words (malloc'd) */
    double score;                /* the attack's own objective at the end (method-specific) */
    double seconds;
    uint8_t *images, *before;    /* [eval_n, side, side, 3] each (malloc'd) */
    int side, eval_n;
    /* the found prompt, for the defence: the words the attack combined with their weights
     * (neighbours, ring-a-bell) and its text when it is one text prompt, else NULL */
    char **terms;                /* [n_terms], malloc'd */
    float *term_weights;
    int n_terms;
    char *text;
} AttackResult;

int attack_run(Victim *v, const Judge *j, const AttackOpts *o, AttackResult *r, Err *e);
void attack_result_free(AttackResult *r);

#endif
