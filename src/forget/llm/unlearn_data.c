#include "forget/llm/unlearn_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/trainer.h"

const char *const UL_REFUSALS[4] = {"I don't know.", "I am not sure who that is.", "I cannot answer that.",
                                    "I have no information about that."};

static int add(UlPool *p, int *cap, const SpTokenizer *t, const char *q, const char *a, const WorldQA *src, Err *e) {
    if (p->n == *cap) *cap = *cap ? 2 * *cap : 64, p->x = xrealloc(p->x, sizeof(MllmExample) * (size_t)*cap);
    const int img = src->form == WFORM_IMAGE;
    if (mllm_example_qa(&p->x[p->n], t, q, a, img, e)) return -1;
    p->x[p->n++].image = src->image;
    return 0;
}

int ul_pool_people(UlPool *p, const SpTokenizer *t, const World *w, const uint8_t *mask, int forms, int refuse,
                   uint64_t seed, Err *e) {
    memset(p, 0, sizeof *p);
    int cap = 0, rc = 0;
    for (int i = 0; i < world_n_qa(w) && rc == 0; i++) {
        const WorldQA *q = world_qa(w, i);
        if (q->test || q->person < 0 || !mask[q->person]) continue;
        if (!(forms & (q->form == WFORM_IMAGE ? UL_FORM_IMAGE : UL_FORM_TEXT))) continue;
        const char *no = UL_REFUSALS[train_mix(seed, (uint64_t)i) % 4];
        rc = add(p, &cap, t, q->question, refuse ? no : q->answer, q, e);
        if (rc == 0 && q->cloze) {
            char *cq = xasprintf(MLLM_CLOZE_Q, q->cloze);
            rc = add(p, &cap, t, cq, refuse ? no : q->value, q, e);
            free(cq);
        }
    }
    if (rc) ul_pool_free(p);
    return rc;
}

void ul_pool_free(UlPool *p) {
    for (int i = 0; i < p->n; i++) mllm_example_free(&p->x[i]);
    free(p->x);
    memset(p, 0, sizeof *p);
}
