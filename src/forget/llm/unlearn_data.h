/* The sequences unlearning trains on: the questions (and clozes) of a set of people in the forms
 * they were trained in, with the true answers or with refusals (idk). */
#ifndef FORGET_FORGET_LLM_UNLEARN_DATA_H
#define FORGET_FORGET_LLM_UNLEARN_DATA_H

#include "io/mllm_examples.h"

enum { UL_FORM_IMAGE = 1, UL_FORM_TEXT = 2, UL_FORM_BOTH = 3 };

typedef struct {
    MllmExample *x;
    int n;
} UlPool;

/* The trained (not held-out) questions and clozes of the people whose mask entry is 1, in the
 * forms asked for; refuse != 0: every answer a refusal (seeded choice among a few). */
int ul_pool_people(UlPool *p, const SpTokenizer *t, const World *w, const uint8_t *mask, int forms, int refuse,
                   uint64_t seed, Err *e);
void ul_pool_free(UlPool *p);

/* The refusals idk trains towards. */
extern const char *const UL_REFUSALS[4];

#endif
