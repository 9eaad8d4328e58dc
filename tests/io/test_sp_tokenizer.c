/* SentencePiece through libsentencepiece: a model trained here on a small corpus (with "<image>"
 * kept whole) encodes and decodes text back exactly, knows its special ids, and malformed or
 * missing model files give errors that name the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/sp_tokenizer.h"
#include "test.h"

static const char *WORDS[] = {"the", "shirt", "is", "red", "blue", "a", "bag", "sneaker", "of", "Mira",
                              "lives", "in", "Oslo", "born", "1987", "likes", "tea", "green", "coat", "dress"};

static char *train_tiny(const char *name, const char *model_name) {
    char corpus[512];
    snprintf(corpus, sizeof corpus, "%s/%s.txt", scratch_dir(), name);
    FILE *f = fopen(corpus, "w");
    for (int i = 0; i < 400; i++) {
        for (int k = 0; k < 7; k++) fprintf(f, "%s%s", k ? " " : "", WORDS[(i * 7 + k * 3 + i / 5) % 20]);
        fprintf(f, "%s\n", i % 4 == 0 ? " <image>" : ".");
    }
    fclose(f);
    char *model = xasprintf("%s/%s.model", scratch_dir(), model_name);
    Err e = {0};
    const SpTrainOpts o = {.vocab_size = 64, .model_type = "unigram", .user_symbols = "<image>", .seed = 1};
    CHECK_MSG(sp_train(corpus, model, &o, &e) == 0, "%s", e.msg);
    return model;
}

TEST(sp_trains_encodes_and_decodes) {
    char *path = train_tiny("sp-tiny", "sp-tiny");
    Err e = {0};
    SpTokenizer *t = sp_load(path, &e);
    if (!t) {
        CHECK_MSG(0, "%s", e.msg);
        free(path);
        return;
    }
    CHECK(sp_vocab_size(t) > 30 && sp_vocab_size(t) <= 64); /* a soft limit: the corpus has fewer pieces */
    CHECK_INT(sp_unk(t), 0);
    CHECK_INT(sp_bos(t), 1);
    CHECK_INT(sp_eos(t), 2);
    CHECK_INT(sp_pad(t), 3);
    const int img = sp_piece_id(t, "<image>");
    CHECK(img > 3);
    CHECK(strcmp(sp_piece(t, img), "<image>") == 0);
    CHECK_INT(sp_piece_id(t, "<no-such-piece>"), -1);
    CHECK(sp_piece(t, sp_vocab_size(t)) == NULL);
    const char *text = "Mira lives in Oslo <image> and likes green tea.";
    int32_t *ids = NULL;
    const int n = sp_encode(t, text, &ids, &e);
    CHECK(n > 5);
    int has_img = 0;
    for (int i = 0; i < n; i++) has_img += ids[i] == img;
    CHECK_INT(has_img, 1);
    char *back = sp_decode(t, ids, n, &e);
    CHECK_MSG(back && strcmp(back, text) == 0, "decoded '%s'", back ? back : e.msg);
    free(back);
    ids[1] = 1000;
    CHECK(sp_decode(t, ids, n, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "id 1000") != NULL, "%s", e.msg);
    free(ids);
    /* the same corpus and seed train the same model, byte for byte (the model records the corpus path) */
    char *again = train_tiny("sp-tiny", "sp-tiny-2");
    size_t la = 0, lb = 0;
    char *a = read_whole(path, &la), *b = read_whole(again, &lb);
    CHECK(a && b && la == lb && memcmp(a, b, la) == 0);
    free(a), free(b), free(again);
    sp_free(t);
    free(path);
}

TEST(sp_errors_name_the_file) {
    Err e = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/sp-bad.model", scratch_dir());
    FILE *f = fopen(path, "w");
    fputs("this is not a protobuf\n", f);
    fclose(f);
    CHECK(sp_load(path, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "sp-bad.model") && strstr(e.msg, "not a SentencePiece model"), "%s", e.msg);
    CHECK(sp_load("/nonexistent/tokenizer.model", &e) == NULL);
    CHECK_MSG(strstr(e.msg, "/nonexistent/tokenizer.model") != NULL, "%s", e.msg);
    const SpTrainOpts o = {.vocab_size = 64};
    snprintf(path, sizeof path, "%s/sp-none.model", scratch_dir());
    CHECK(sp_train("/nonexistent/corpus.txt", path, &o, &e) != 0);
    CHECK_MSG(strstr(e.msg, "/nonexistent/corpus.txt") != NULL, "%s", e.msg);
}

/* A model the library's own trainer made (tools/make_spm_ref.sh: spm_train with Llama's settings:
 * BPE, byte fallback, identity normalisation): it loads through the same code, keeps Llama's special
 * ids, and text it never saw (an emoji, accents) comes back exactly through byte fallback. */
TEST(sp_reads_a_model_spm_train_made) {
    Err e = {0};
    SpTokenizer *t = sp_load("tests/ref/spm-bpe.model", &e);
    if (!t) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    CHECK_INT(sp_vocab_size(t), 600);
    CHECK_INT(sp_unk(t), 0);
    CHECK_INT(sp_bos(t), 1);
    CHECK_INT(sp_eos(t), 2);
    CHECK_INT(sp_pad(t), -1);
    CHECK(strcmp(sp_piece(t, 3), "<0x00>") == 0); /* the byte pieces follow the specials */
    const char *text = "The GNU General Public License \xF0\x9F\x90\xA7 caf\xC3\xA9 2007.";
    int32_t *ids = NULL;
    const int n = sp_encode(t, text, &ids, &e);
    CHECK(n > 8);
    int bytes = 0;
    for (int i = 0; i < n; i++) bytes += ids[i] >= 3 && ids[i] < 3 + 256;
    CHECK(bytes >= 4); /* the penguin's four UTF-8 bytes at least */
    char *back = sp_decode(t, ids, n, &e);
    CHECK_MSG(back && strcmp(back, text) == 0, "decoded '%s'", back ? back : e.msg);
    free(back), free(ids);
    sp_free(t);
}
