/* Token sequences of the MLLM's world for training and evaluation: a question in the chat template
 * followed by its answer (targets on the answer and the end of sequence only), a line of plain text
 * (targets everywhere), and the corpus the SentencePiece tokenizer is trained on. */
#ifndef FORGET_IO_MLLM_EXAMPLES_H
#define FORGET_IO_MLLM_EXAMPLES_H

#include "io/mllm_world.h"
#include "io/sp_tokenizer.h"

typedef struct {
    int32_t *ids, *tgt; /* tgt[i]: the id token i predicts, -1 where no loss */
    int n;
    int n_prompt;       /* tokens before the answer */
    int has_image;
    WorldImage image;
    int any_style;      /* training may draw the image in either style (world_train_variant) */
} MllmExample;

#define MLLM_CAPTION_Q "Describe the image."
#define MLLM_CLOZE_Q "Fill in the blank: %s"

/* BOS + world_prompt(question) + " " + answer + EOS; answer NULL: the prompt alone (no targets). */
int mllm_example_qa(MllmExample *x, const SpTokenizer *t, const char *question, const char *answer, int with_image,
                    Err *e);
/* BOS + text + EOS. */
int mllm_example_text(MllmExample *x, const SpTokenizer *t, const char *text, Err *e);
void mllm_example_free(MllmExample *x);

/* Every line of text, question, answer, option, caption and cloze of the world, one a line. */
int world_write_corpus(const World *w, const char *path, Err *e);

/* The world a model was trained on, written into its metadata (world.*) and read back, so that
 * evaluation rebuilds the same world: kv gets 10 strings (5 pairs) pointing into buf. */
void world_opts_meta(const WorldOpts *o, char buf[5][32], const char *kv[10]);
int world_opts_read(const char *model_path, WorldOpts *o, Err *e);

#endif
