/* Escape Token erasure, OUR RECONSTRUCTION (../shared/methods/diffusion-erasure.md section 2.1;
 * no description of the published method is public): k learnable token embeddings z placed right
 * after SOT of every prompt, trained through the frozen CLIP text encoder f alone (no UNet, no
 * images) so that prompts naming the concept come out as their concept-free "background":
 *
 *   Target Concept Subtraction, per output position i of a prompt p that names the concept c*:
 *     (a) difference   b_i(p) = f(p)_i - lambda (f(p)_i - f(p\c*)_s(i)),  p\c* = p with c* replaced
 *                      by a neutral word, s aligning the positions of the two token sequences
 *     (b) projection   b_i(p) = (I - P_C) f(p)_i,  C = span of the concept prompts' EOT rows
 *   Dense Token Alignment   L_erase = mean_p (1/N) sum_i || f([SOT; z; p])_pi(i) - b_i(p) ||^2
 *                      over every one of the N = context - k positions the UNet reads (pi skips the
 *                      k escape rows); the ablation `pooled` keeps only the EOT position.
 *   Preservation      L_keep = mean_p (1/N) sum_i || f([SOT; z; p])_pi(i) - f(p)_i ||^2 over prompts
 *                      of the other concepts;  L = L_erase + alpha L_keep, Adam on z.
 * Squared norms are divided by the width (a mean per entry), so lr and alpha do not depend on it. */
#ifndef FORGET_ESCAPE_H
#define FORGET_ESCAPE_H

#include <stdint.h>

#include "core/err.h"
#include "io/tokenizer.h"
#include "models/clip.h"

typedef enum { TCS_DIFF = 0, TCS_PROJ = 1 } EscapeTcs;
typedef enum { ESCAPE_DENSE = 0, ESCAPE_POOLED = 1 } EscapeLoss;

typedef struct {
    int k;                  /* escape tokens, 1..4 */
    EscapeTcs tcs;
    double lambda;          /* (a)'s subtraction strength (1: the concept-free prompt) */
    const char *neutral;    /* (a)'s replacement word, also z's initialisation */
    EscapeLoss loss;
    double alpha;           /* weight of the preservation term */
    double lr;
    int steps;
    int keep_batch;         /* preservation prompts a step (drawn from (seed, step)); 0: all */
    const char *const *templates; /* "{}" marks the concept; NULL: escape_templates() */
    int n_templates;
    /* the defence (forget erase --adversarial): more words erased like the concept (each through
     * every template, to the same neutral background), and more templates (attack prefixes) */
    const char *const *aliases;
    int n_aliases;
    const char *const *extra_templates;
    int n_extra_templates;
    uint64_t seed;
    int quiet;
} EscapeOpts;

void escape_defaults(EscapeOpts *o);
/* The built-in training templates (context words around the concept); *n gets the count. */
const char *const *escape_templates(int *n);
/* Evaluation templates with context words, disjoint from the training ones. */
const char *const *escape_eval_templates(int *n);

typedef struct {
    double loss, loss_erase, loss_keep; /* at the end */
    double seconds;
    long trainable;                     /* k x width */
    int subspace_rank;                  /* TCS (b): the rank of C */
} EscapeResult;

/* A concept that tokenises to something, and a preserve list without it (compared as tokens, so
 * case and spaces do not hide it) nor empty entries. */
int escape_check_concept(const Tokenizer *t, const char *concept, const char *const *preserve, int n_preserve, Err *e);
/* Trains z [o->k, t_width] against concept, keeping the preserve concepts (which must not contain
 * it). Errors: a concept that tokenises to nothing, a template without "{}", the concept among
 * the preserved ones. */
int escape_train(const ClipModel *m, const Tokenizer *t, const char *concept, const char *const *preserve,
                 int n_preserve, const EscapeOpts *o, float *z, EscapeResult *r, Err *e);

/* The alignment loss of n escaped prompts (ids [n, context] with k slots after SOT) against their
 * targets tgt [n, context, width] (EOT positions eot[n] of the plain rows, for `pooled`), times
 * weight; its gradient with respect to z [k, width] is added into grad (NULL: none). NAN on error. */
double escape_objective(const ClipModel *m, const int32_t *ids, const float *tgt, const int *eot, int n, int k,
                        EscapeLoss kind, double weight, const float *z, float *grad, Err *e);
/* Positions of two token rows that name different words in one template: s[i] is the row of b
 * aligned with row i of a (common prefix as is, the differing span onto b's last differing
 * token, the rest shifted by the length difference, clamped to the context). */
void escape_align(const int32_t *a, int la, const int32_t *b, int lb, int ctx, int *s);

#endif
