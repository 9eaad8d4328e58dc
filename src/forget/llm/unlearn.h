/* Unlearning people from the MLLM (../shared/methods/mllm-unlearning.md §5.2-5.4): the standard
 * losses of MLLMU-Bench's baselines and MMUnlearner, on the MLLM's world (io/mllm_world.h). With
 * l_s the mean cross-entropy of sequence s's answer tokens and a batch of B forget (F) and B
 * retain (R) sequences a step:
 *   ga           L = -(1/B) sum_F l_s                                   (gradient ascent)
 *   ga+kl        L = -(1/B) sum_F l_s + KL(pi_orig || pi_theta) on R     (PULSE's GA+KLR; KL averaged
 *                over R's answer positions, pi_orig the model before unlearning)
 *   gd           L = -(1/B) sum_F l_s + (1/B) sum_R l_s                 (gradient difference)
 *   npo          L = -(2/beta)(1/B) sum_F log sigmoid(beta (l_s - l_ref,s)), beta 0.4, the reference
 *                a retain-tuned model (ul_retain_tune)
 *   idk          L = (1/B) sum_F' l_s + (1/B) sum_R l_s, F' the forget questions answered with a
 *                refusal ("I don't know.", ...), as the open unlearning frameworks' IDK + retain loss
 *   mmunlearner  gd on the forget people's image questions, every gradient masked by
 *                M_i = [(F_f,i + 1e-15) / (F_p,i + 1e-15) >= tau] (diagonal Fisher of the forget and
 *                the preserve data: for the projector the retain image questions, for the LM the
 *                retain questions plus the forget people's text-only ones, which it keeps)
 * LoRA adapters (rank r, alpha) go on the parts asked for (projector and/or LM) and are merged
 * into the weights at the end; mmunlearner masks the weights themselves (a mask on adapters whose B
 * starts at zero would have no Fisher to read). Everything runs on train/trainer's loop. */
#ifndef FORGET_FORGET_LLM_UNLEARN_H
#define FORGET_FORGET_LLM_UNLEARN_H

#include "eval/mllm_eval.h"

typedef enum { UL_GA = 0, UL_GA_KL, UL_GD, UL_NPO, UL_IDK, UL_MMUNLEARNER, UL_N_METHODS, UL_RETAIN_TUNE } UlMethod;
extern const char *const UL_METHOD_NAMES[UL_N_METHODS];

enum { UL_PART_PROJECTOR = 1, UL_PART_LM = 2 };

typedef struct {
    UlMethod method;
    const uint8_t *forget, *retain; /* masks over the world's people */
    int parts;                      /* UL_PART_* bits: where the adapters go (mmunlearner: what its mask covers) */
    int lora_rank;                  /* 0: the weights themselves */
    float lora_alpha;
    const char *lm_modules;         /* the LM's adapted projections: "all" or "q,k,v,o,gate,up,down" */
    double lr;
    int epochs;                     /* passes over the forget data */
    int batch;                      /* forget (and retain) sequences a step */
    float npo_beta, kl_weight, mask_tau;
    int fisher_batches;             /* mmunlearner: batches of each Fisher estimate */
    const Mllm *reference;          /* npo: the reference model (required) */
    /* after each epoch, on the model as it is then: 0 goes on, > 0 stops there, -1 is an error */
    int (*after_epoch)(void *user, int epoch, const Mllm *m, Err *e);
    void *user;
    uint64_t seed;
    int quiet;
} UlOpts;

typedef struct {
    long steps;
    int epochs_done;
    double seconds, peak_mib; /* this run's wall time and peak resident memory */
    long trainable;           /* adapter entries, or mask entries that are 1 */
    long maskable;            /* mmunlearner: entries the mask ranged over */
    float last_loss;
} UlStats;

void ul_defaults(UlOpts *o);
int ul_method_parse(const char *s, UlMethod *m, Err *e);
/* "projector+lm", "lm", "projector" -> UL_PART_* bits; anything else (the tower, unknown parts):
 * an error that says what the model has. */
int ul_parts_parse(const char *s, int *parts, Err *e);
/* The forget and retain masks name people of sets A/B, do not overlap, and forget is not empty. */
int ul_check_people(const World *w, const uint8_t *forget, const uint8_t *retain, Err *e);
/* "0,3,Talvi Moren" -> mask [people]: indices or names of the world's people. */
int ul_people_parse(const World *w, const char *list, uint8_t *mask, Err *e);

/* Unlearns in place: m becomes the unlearned model. */
int mllm_unlearn(Mllm *m, const SpTokenizer *t, const World *w, const UlOpts *o, UlStats *st, Err *e);
/* NPO's reference: m fine-tuned on the retain people's questions alone (descent, same adapters), epochs
 * passes over them. */
int ul_retain_tune(Mllm *m, const SpTokenizer *t, const World *w, const UlOpts *o, int epochs, Err *e);

/* ---- the pieces, for tests ---- */

/* The loss of one batch and its gradient into g (which must be zero where it should start):
 * forget-side sequences xf[nf] and retain-side xr[nr] with their image features (NULL entries: text
 * only). ref: the NPO reference or the KL original. Returns 0 and *loss. */
int ul_batch_loss(const Mllm *m, Mllm *g, const Mllm *ref, const UlOpts *o, const MllmExample *const *xf,
                  const float *const *ff, int nf, const MllmExample *const *xr, const float *const *fr, int nr,
                  float *loss, Err *e);

#endif
