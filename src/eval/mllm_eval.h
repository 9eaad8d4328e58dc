/* Evaluating the MLLM on its world (io/mllm_world.h), as MLLMU-Bench scores a model:
 *   choice    4-choice accuracy: the option whose answer tokens have the highest mean log-likelihood
 *             after the question (image+text or text-only) wins;
 *   generate  ROUGE-L F (word LCS) of the greedy answer against the reference sentence;
 *   cloze     exact match of the greedy answer to "Fill in the blank: ..." against the blank's value. */
#ifndef FORGET_EVAL_MLLM_EVAL_H
#define FORGET_EVAL_MLLM_EVAL_H

#include "io/mllm_examples.h"
#include "models/mllm.h"

typedef enum { MTASK_CHOICE = 0, MTASK_GENERATE = 1, MTASK_CLOZE = 2 } MllmTask;
extern const char *const MLLM_TASK_NAMES[3];

/* Which questions: sets (bit WSET_A, WSET_B, WSET_GENERAL), the held-out forms or the trained
 * ones, and (when people_mask is not NULL) only the people whose mask entry is 1. */
typedef struct {
    unsigned sets;
    int test;
    const uint8_t *people_mask;
    int limit;          /* at most this many questions (0: all), a seeded even choice */
    uint64_t seed;
    int max_tokens;     /* generation length (0: 40) */
    int quiet;          /* no progress bar */
} MllmEvalSel;

typedef struct {
    int n, n_image, n_text;
    double score, score_image, score_text; /* accuracy, ROUGE-L F or exact match, in [0, 1] */
} MllmScore;

/* The tower's patch tokens of world images: out [n, N, Wv]. */
int mllm_world_features(const Mllm *m, const World *w, const WorldImage *ims, int n, float *out, Err *e);

int mllm_eval(const Mllm *m, const SpTokenizer *t, const World *w, const MllmEvalSel *sel, MllmTask task,
              MllmScore *s, Err *e);

/* Greedy (or sampled) answer text to a question about an optional image (NULL: text only), at most
 * s->max_tokens and what the context leaves after the prompt. */
char *mllm_answer(const Mllm *m, const SpTokenizer *t, const World *w, const char *question, const WorldImage *image,
                  const float *feats, const LmSampling *s, Err *e);

struct cJSON;
/* parent[key] = {"acc", "acc_image", "acc_text", "n"} of a score. */
void mllm_score_json(struct cJSON *parent, const char *key, const MllmScore *s);

/* ROUGE-L F-measure of two sentences over lower-cased words without punctuation. */
double rouge_l_f(const char *hyp, const char *ref);

#endif
