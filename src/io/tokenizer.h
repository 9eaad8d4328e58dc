/* The CLIP byte-level BPE tokenizer, as OpenAI's simple_tokenizer.py:
 *   html-unescape twice, strip, collapse whitespace, lower-case (Python rules,
 *   via ICU), split with the pre-token regex (PCRE2, Unicode classes), map bytes
 *   to unicode, apply merges by rank, look up ids.
 * ftfy.fix_text (not packaged for Debian) is reproduced for what it does to text that is
 * not mojibake: C1 controls, Latin ligatures, fullwidth forms, curly quotes, line breaks,
 * NFC and one more HTML unescape (text_clean.c). Set ftfy = 0 for OpenAI's code with ftfy
 * stubbed out. Mojibake repair is not reproduced.
 * A Tokenizer is read-only after init, so threads may share one. */
#ifndef FORGET_TOKENIZER_H
#define FORGET_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/strmap.h"

enum { CLIP_SOT = 49406, CLIP_EOT = 49407, CLIP_VOCAB = 49408, CLIP_CONTEXT = 77 };

typedef struct {
    StrMap encoder;          /* token (mapped UTF-8) -> id */
    StrMap ranks;            /* "left right" -> merge rank */
    char byte_utf8[256][4];  /* byte -> its unicode stand-in, UTF-8 encoded */
    uint8_t byte_len[256];
    void *re;                /* pcre2_code * */
    int ftfy;                /* 1 (default): apply ftfy's fixes first */
} Tokenizer;

/* From the vocabulary embedded in the binary. */
int tokenizer_init(Tokenizer *t, Err *e);
/* From a bpe_simple_vocab_16e6.txt.gz-format file. */
int tokenizer_init_file(Tokenizer *t, const char *path, Err *e);
void tokenizer_free(Tokenizer *t);

/* The BPE ids of text, without start/end tokens; *ids is malloc'd (caller frees). */
int tokenizer_encode(const Tokenizer *t, const char *text, int32_t **ids, int *n, Err *e);
/* clip.tokenize(text, context, truncate=True): [SOT] ids [EOT], cut to context with
 * the last id forced to EOT, zero-padded. Returns the count before padding, or -1. */
int tokenizer_tokenize(const Tokenizer *t, const char *text, int context, int32_t *out, Err *e);
/* The cleaned, lower-cased text the pre-tokenizer sees (malloc'd), for tests and debugging. */
char *tokenizer_clean_text(const char *text);

#endif
