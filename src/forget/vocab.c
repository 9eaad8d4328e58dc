#include "forget/vocab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/file_open.h"

static int plain_word(const char *w) {
    size_t n = strlen(w);
    if (n < 3 || n > 10) return 0;
    for (size_t i = 0; i < n; i++)
        if (w[i] < 'a' || w[i] > 'z') return 0;
    return 1;
}

static int excluded(const char *w, const char *const *exclude) {
    for (int i = 0; exclude && exclude[i]; i++) {
        size_t l = strlen(exclude[i]);
        if (strcmp(w, exclude[i]) == 0 || (strncmp(w, exclude[i], l) == 0 && strcmp(w + l, "s") == 0)) return 1;
    }
    return 0;
}

int vocab_load(Vocab *v, const char *path, const char *const *exclude, int max, uint64_t seed, Err *e) {
    memset(v, 0, sizeof *v);
    if (!path) path = WORDLIST_DEFAULT;
    FILE *f = fopen_regular(path, e);
    if (!f) return err_prefix(e, "the word list (Debian package wamerican): ");
    char line[256];
    int cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!plain_word(line) || excluded(line, exclude)) continue;
        if (v->n && strcmp(v->words[v->n - 1], line) == 0) continue; /* sorted lists repeat nothing else */
        if (v->n == cap) v->words = xrealloc(v->words, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 4096));
        v->words[v->n++] = xstrdup(line);
    }
    fclose(f);
    if (v->n == 0) return err_set(e, "%s: no usable words (lower-case a-z, 3-10 letters)", path);
    if (max > 0 && max < v->n) { /* seeded Fisher-Yates, keep the first max */
        Rng r;
        rng_seed(&r, seed);
        rng_shuffle(&r, v->words, v->n, sizeof *v->words);
        for (int i = max; i < v->n; i++) free(v->words[i]);
        v->n = max;
    }
    return 0;
}

void vocab_free(Vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->words[i]);
    free(v->words);
    memset(v, 0, sizeof *v);
}

/* One line of a user's vocabulary: letters (any script), digits, spaces, - ' . and nothing else. */
static const char *bad_phrase(const char *s, size_t n) {
    if (n == 0) return "an empty entry";
    if (n > 64) return "more than 64 bytes";
    if (s[0] == ' ' || s[n - 1] == ' ') return "leading or trailing spaces";
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) continue; /* UTF-8 checked by the tokenizer's cleaner; letters of other scripts are fine */
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ' ' || c == '-' || c == '\'' || c == '.')
            continue;
        return c == '\t' ? "a tab (one entry per line, no columns)" : c < 0x20 ? "a control character" : "a character other than letters, digits, spaces, - ' .";
    }
    return NULL;
}

int vocab_load_strict(Vocab *v, const char *path, Err *e) {
    memset(v, 0, sizeof *v);
    FILE *f = fopen_regular(path, e);
    if (!f) return err_prefix(e, "the vocabulary file: ");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len && line[len - 1] == '\n') line[--len] = 0;
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (len == 0 || line[0] == '#') continue; /* blank lines and comments */
        if ((size_t)len != strlen(line)) {
            rc = err_set(e, "%s:%d: a NUL byte inside the line (expected one word or phrase per line)", path, lineno);
            break;
        }
        const char *why = bad_phrase(line, (size_t)len);
        if (why) {
            rc = err_set(e, "%s:%d: expected one word or short phrase (letters, digits, spaces, - ' .), found %s: \"%.40s\"", path,
                         lineno, why, line);
            break;
        }
        v->words = xrealloc(v->words, sizeof(char *) * (size_t)(v->n + 1));
        v->words[v->n++] = xstrdup(line);
    }
    free(line);
    fclose(f);
    if (rc == 0 && v->n < 2) rc = err_set(e, "%s: %d entries; a vocabulary needs at least 2", path, v->n);
    if (rc) vocab_free(v);
    return rc;
}
