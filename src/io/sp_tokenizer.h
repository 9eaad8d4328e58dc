/* SentencePiece tokenizers (Kudo and Richardson 2018), the format of Llama's tokenizer.model,
 * through Debian's libsentencepiece: a C face on its C++ API (sp_tokenizer.cc is the only C++ in
 * forget, there because the library has no C API). Loading checks the file and names it in every
 * error; training writes the model through a temporary file and a rename. */
#ifndef FORGET_IO_SP_TOKENIZER_H
#define FORGET_IO_SP_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SpTokenizer SpTokenizer;

SpTokenizer *sp_load(const char *path, Err *e);
void sp_free(SpTokenizer *t);
int sp_vocab_size(const SpTokenizer *t);
/* Special ids; -1 when the model has none. */
int sp_bos(const SpTokenizer *t);
int sp_eos(const SpTokenizer *t);
int sp_pad(const SpTokenizer *t);
int sp_unk(const SpTokenizer *t);
/* The id of a piece (a user-defined symbol such as "<image>"), -1 when it is not in the vocabulary
 * (SentencePiece would map it to unk). */
int sp_piece_id(const SpTokenizer *t, const char *piece);
/* The piece of an id (the library's string; valid until the tokenizer is freed), NULL if out of range. */
const char *sp_piece(const SpTokenizer *t, int id);
/* Ids of text (without BOS/EOS) into a malloc'd array; returns the count, -1 on error. */
int sp_encode(const SpTokenizer *t, const char *text, int32_t **ids, Err *e);
/* Text of ids (malloc'd, NUL-terminated); NULL on error (an id out of range names itself). */
char *sp_decode(const SpTokenizer *t, const int32_t *ids, int n, Err *e);

typedef struct {
    int vocab_size;
    const char *model_type;      /* "unigram" (Llama's is BPE: "bpe") */
    const char *user_symbols;    /* comma-separated pieces kept whole, e.g. "<image>"; NULL: none */
    double character_coverage;   /* 0: the library's default */
    uint64_t seed;               /* the trainer's sampling is seeded through its input order */
    int threads;
} SpTrainOpts;

/* Trains a model on a text file (one sentence a line) and writes it to out_path. */
int sp_train(const char *corpus, const char *out_path, const SpTrainOpts *o, Err *e);

#ifdef __cplusplus
}
#endif

#endif
