#include "io/mllm_examples.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"
#include "io/safetensors.h"

static int append(MllmExample *x, const SpTokenizer *t, const char *text, int targets, Err *e) {
    int32_t *ids = NULL;
    const int n = sp_encode(t, text, &ids, e);
    if (n < 0) return -1;
    x->ids = xrealloc(x->ids, sizeof(int32_t) * (size_t)(x->n + n + 2));
    x->tgt = xrealloc(x->tgt, sizeof(int32_t) * (size_t)(x->n + n + 2));
    for (int i = 0; i < n; i++) {
        x->ids[x->n + i] = ids[i];
        x->tgt[x->n + i] = -1;
        if (targets && x->n + i > 0) x->tgt[x->n + i - 1] = ids[i]; /* the previous token predicts this one */
    }
    x->n += n;
    free(ids);
    return 0;
}

static void begin(MllmExample *x, const SpTokenizer *t) {
    memset(x, 0, sizeof *x);
    x->ids = xmalloc(sizeof(int32_t) * 2), x->tgt = xmalloc(sizeof(int32_t) * 2);
    x->ids[0] = sp_bos(t), x->tgt[0] = -1, x->n = 1;
}

static void end(MllmExample *x, const SpTokenizer *t) {
    x->ids = xrealloc(x->ids, sizeof(int32_t) * (size_t)(x->n + 1));
    x->tgt = xrealloc(x->tgt, sizeof(int32_t) * (size_t)(x->n + 1));
    x->tgt[x->n - 1] = sp_eos(t);
    x->ids[x->n] = sp_eos(t), x->tgt[x->n] = -1;
    x->n++;
}

int mllm_example_qa(MllmExample *x, const SpTokenizer *t, const char *question, const char *answer, int with_image,
                    Err *e) {
    begin(x, t);
    char *prompt = world_prompt(question, with_image);
    int rc = append(x, t, prompt, 0, e);
    free(prompt);
    x->n_prompt = x->n;
    x->has_image = with_image;
    if (rc == 0 && answer) {
        const int first = x->n;
        rc = append(x, t, answer, 1, e);
        if (rc == 0 && x->n > first) x->tgt[first - 1] = x->ids[first]; /* the prompt's last token starts the answer */
        if (rc == 0) end(x, t);
    }
    if (rc) mllm_example_free(x);
    return rc;
}

int mllm_example_text(MllmExample *x, const SpTokenizer *t, const char *text, Err *e) {
    begin(x, t);
    const int rc = append(x, t, text, 1, e);
    if (rc == 0) {
        if (x->n > 1) x->tgt[0] = x->ids[1];
        end(x, t);
    } else {
        mllm_example_free(x);
    }
    return rc;
}

void mllm_example_free(MllmExample *x) {
    free(x->ids), free(x->tgt);
    memset(x, 0, sizeof *x);
}

int world_write_corpus(const World *w, const char *path, Err *e) {
    AtomicFile af;
    if (atomic_open(&af, path, e)) return -1;
    char *line;
#define PUT(s)                                                                                                         \
    do {                                                                                                               \
        line = (s);                                                                                                    \
        atomic_write(&af, line, strlen(line));                                                                         \
        atomic_write(&af, "\n", 1);                                                                                    \
    } while (0)
    for (int i = 0; i < world_n_text(w); i++) PUT((char *)world_text(w, i));
    for (int i = 0; i < world_n_captions(w); i++) PUT(world_caption(w, i)->text);
    for (int i = 0; i < world_n_qa(w); i++) {
        const WorldQA *q = world_qa(w, i);
        char *p = world_prompt(q->question, q->form == WFORM_IMAGE);
        PUT(p);
        free(p);
        for (int k = 0; k < 4; k++) PUT(q->options[k]);
        if (q->cloze) {
            char *c = xasprintf(MLLM_CLOZE_Q, q->cloze);
            PUT(c);
            free(c);
        }
    }
    PUT((char *)MLLM_CAPTION_Q);
#undef PUT
    return atomic_commit(&af, e);
}

void world_opts_meta(const WorldOpts *o, char buf[5][32], const char *kv[10]) {
    snprintf(buf[0], 32, "%d", o->people_a), snprintf(buf[1], 32, "%d", o->people_b);
    snprintf(buf[2], 32, "%d", o->general_emoji), snprintf(buf[3], 32, "%d", o->fmnist_per_class);
    snprintf(buf[4], 32, "%llu", (unsigned long long)o->seed);
    const char *keys[5] = {"world.people_a", "world.people_b", "world.general", "world.fmnist_per_class", "world.seed"};
    for (int i = 0; i < 5; i++) kv[2 * i] = keys[i], kv[2 * i + 1] = buf[i];
}

int world_opts_read(const char *model_path, WorldOpts *o, Err *e) {
    SafeTensors st;
    if (st_open(&st, model_path, e)) return -1;
    long v[5];
    const char *keys[5] = {"world.people_a", "world.people_b", "world.general", "world.fmnist_per_class", "world.seed"};
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++)
        if (st_meta_long(&st, keys[i], &v[i]))
            rc = err_set(e, "%s: metadata %s missing or not an integer: not an MLLM trained on forget's world (train-mllm)",
                         model_path, keys[i]);
    st_close(&st);
    if (rc) return -1;
    *o = (WorldOpts){(int)v[0], (int)v[1], (int)v[2], (int)v[3], (uint64_t)v[4]};
    return 0;
}
