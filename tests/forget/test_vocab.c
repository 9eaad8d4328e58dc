#include <string.h>

#include "forget/vocab.h"
#include "test.h"

TEST(vocab_filters_excludes_and_subsamples) {
    char path[600];
    snprintf(path, sizeof path, "%s/words.txt", scratch_dir());
    FILE *f = fopen(path, "w");
    fputs("Aachen\nab\napple\napple's\napples\nbag\nbags\ncafé\ncoat\nextraordinarily\nzebra\n", f);
    fclose(f);
    const char *ex[] = {"bag", NULL};
    Vocab v;
    Err e = {{0}};
    CHECK_MSG(vocab_load(&v, path, ex, 0, 1, &e) == 0, "%s", e.msg);
    /* kept: apple, apples, coat, zebra (not: proper noun, too short, possessive, excluded + plural,
     * non-ASCII, too long) */
    CHECK_INT(v.n, 4);
    CHECK(v.n == 4 && strcmp(v.words[0], "apple") == 0 && strcmp(v.words[3], "zebra") == 0);
    vocab_free(&v);
    CHECK(vocab_load(&v, path, ex, 2, 7, &e) == 0 && v.n == 2);
    Vocab w;
    CHECK(vocab_load(&w, path, ex, 2, 7, &e) == 0 && strcmp(v.words[0], w.words[0]) == 0 && strcmp(v.words[1], w.words[1]) == 0);
    vocab_free(&v), vocab_free(&w);
    CHECK(vocab_load(&v, "/nonexistent/words", NULL, 0, 1, &e) != 0 && strstr(e.msg, "wamerican"));
    /* Debian's list, when installed, gives thousands of candidates */
    if (vocab_load(&v, WORDLIST_DEFAULT, NULL, 1000, 3, &e) == 0) {
        CHECK_INT(v.n, 1000);
        vocab_free(&v);
    } else {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
    }
}
