/* libFuzzer target: any byte string (invalid UTF-8, entities, long runs) must
 * tokenise without crashing into ids inside the vocabulary, starting with SOT
 * and ending with EOT. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/tokenizer.h"

static Tokenizer tok;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ready) {
        Err e;
        if (tokenizer_init(&tok, &e) != 0) abort();
        ready = 1;
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    int32_t ids[CLIP_CONTEXT];
    Err e;
    int n = tokenizer_tokenize(&tok, text, CLIP_CONTEXT, ids, &e);
    if (n < 2 || ids[0] != CLIP_SOT || ids[n - 1] != CLIP_EOT) abort();
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= CLIP_VOCAB) abort();
    free(text);
    return 0;
}
