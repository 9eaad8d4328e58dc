/* The candidate words of the strict black-box methods: a plain word list (default Debian's
 * wamerican, /usr/share/dict/american-english), filtered to lower-case ASCII words of 3-10
 * letters (no proper nouns, no possessives), minus words the caller excludes (the class
 * names, say), optionally cut to the first `max` in a seeded shuffle. No tokenizer is
 * involved: strict methods never see token ids or embeddings. */
#ifndef FORGET_VOCAB_H
#define FORGET_VOCAB_H

#include <stdint.h>

#include "core/err.h"

#define WORDLIST_DEFAULT "/usr/share/dict/american-english"

typedef struct {
    char **words;
    int n;
} Vocab;

/* exclude: NULL-terminated list (each also excludes its plural "s" form); max <= 0: all. */
int vocab_load(Vocab *v, const char *path, const char *const *exclude, int max, uint64_t seed, Err *e);
/* A vocabulary the user wrote (the general vocabulary of debiasing): one word or short phrase per
 * line, blank lines and # comments skipped; any other line that is not letters, digits, spaces,
 * - ' . (at most 64 bytes) is an error naming the file and line. */
int vocab_load_strict(Vocab *v, const char *path, Err *e);
void vocab_free(Vocab *v);

#endif
