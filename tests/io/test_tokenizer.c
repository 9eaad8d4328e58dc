/* Every case of ../shared/clip-ref/tokenizer.tsv, produced by OpenAI's
 * simple_tokenizer.py, must give the same ids; the ftfy-dependent cases must
 * give the identity-ftfy column (we do not reimplement ftfy). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "io/tokenizer.h"
#include "test.h"

/* Runs each "<json text> TAB ids [TAB ids]" line; column picks which ids to expect. */
static int run_tsv(const Tokenizer *t, const char *rel, int column, int *n_cases) {
    char *data = read_ref(rel, NULL);
    if (!data) return 1;
    int bad = 0;
    *n_cases = 0;
    int lineno = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        lineno++;
        char *cols[3] = {line, NULL, NULL};
        for (int c = 1; c < 3; c++) {
            char *tab = cols[c - 1] ? strchr(cols[c - 1], '\t') : NULL;
            if (tab) *tab = 0, cols[c] = tab + 1;
        }
        cJSON *js = cJSON_Parse(cols[0]);
        if (!cJSON_IsString(js) || !cols[column]) {
            test_fail(__FILE__, __LINE__, "%s line %d: unreadable", rel, lineno);
            cJSON_Delete(js);
            bad++;
            continue;
        }
        int32_t got[CLIP_CONTEXT];
        Err e = {{0}};
        int n = tokenizer_tokenize(t, js->valuestring, CLIP_CONTEXT, got, &e);
        char want_s[2048], got_s[2048] = "";
        snprintf(want_s, sizeof want_s, "%s", cols[column]);
        size_t gl = 0;
        for (int i = 0; i < n; i++) gl += (size_t)snprintf(got_s + gl, sizeof got_s - gl, i ? " %d" : "%d", got[i]);
        if (strcmp(want_s, got_s) != 0) {
            if (bad < 6) test_fail(__FILE__, __LINE__, "%s line %d %s:\n      want %s\n      got  %s", rel, lineno, cols[0], want_s, got_s);
            bad++;
        }
        (*n_cases)++;
        cJSON_Delete(js);
    }
    free(data);
    return bad;
}

TEST(tokenizer_matches_all_reference_cases) {
    Tokenizer t;
    Err e = {{0}};
    CHECK_MSG(tokenizer_init(&t, &e) == 0, "%s", e.msg);
    int n = 0;
    int bad = run_tsv(&t, "tokenizer.tsv", 1, &n);
    CHECK_INT(n, 372);
    CHECK_INT(bad, 0);
    tokenizer_free(&t);
}

TEST(tokenizer_ftfy_divergent_cases_match_real_ftfy) {
    Tokenizer t;
    Err e = {{0}};
    CHECK(tokenizer_init(&t, &e) == 0);
    int n = 0;
    int bad = run_tsv(&t, "tokenizer_ftfy_divergent.tsv", 2, &n); /* column 3: ids with ftfy 6.3.1 */
    CHECK_INT(n, 12);
    CHECK_INT(bad, 0);
    tokenizer_free(&t);
}

TEST(tokenizer_without_ftfy_matches_stubbed_ftfy) {
    Tokenizer t;
    Err e = {{0}};
    CHECK(tokenizer_init(&t, &e) == 0);
    t.ftfy = 0;
    int n = 0;
    CHECK_INT(run_tsv(&t, "tokenizer_ftfy_divergent.tsv", 1, &n), 0); /* column 2: ftfy stubbed */
    CHECK_INT(n, 12);
    CHECK_INT(run_tsv(&t, "tokenizer.tsv", 1, &n), 0);
    CHECK_INT(n, 372);
    tokenizer_free(&t);
}

TEST(tokenizer_truncates_with_eot_and_pads) {
    Tokenizer t;
    Err e = {{0}};
    CHECK(tokenizer_init(&t, &e) == 0);
    int32_t ids[8];
    int n = tokenizer_tokenize(&t, "one two three four five six seven eight nine", 8, ids, &e);
    CHECK_INT(n, 8);
    CHECK_INT(ids[0], CLIP_SOT);
    CHECK_INT(ids[7], CLIP_EOT);
    n = tokenizer_tokenize(&t, "cat", 8, ids, &e);
    CHECK_INT(n, 3);
    CHECK_INT(ids[3], 0);
    CHECK(tokenizer_tokenize(&t, "cat", 1, ids, &e) < 0);
    /* invalid UTF-8 is replaced, never a crash */
    n = tokenizer_tokenize(&t, "a\xff\xfe b\xc3", 8, ids, &e);
    CHECK(n >= 3);
    tokenizer_free(&t);
}

TEST(tokenizer_rejects_corrupt_vocabulary_file) {
    char path[512];
    snprintf(path, sizeof path, "%s/bad.gz", scratch_dir());
    FILE *f = fopen(path, "wb");
    fputs("not gzip at all", f);
    fclose(f);
    Tokenizer t;
    Err e = {{0}};
    CHECK(tokenizer_init_file(&t, path, &e) != 0 && strstr(e.msg, path) && strstr(e.msg, "gzip"));
}
