/* The MLLM's world: the same seed builds the same world and another seed another; every person has
 * fifteen questions in the trained forms (seven attributes x image and text, and "who is this?") and
 * as many held-out ones, fourteen clozes; options hold the answer at the key and are distinct; set
 * B's people never appear in the pre-training text or the captions (what makes their knowledge
 * fine-tuned only); images are deterministic and held-out poses differ from trained ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/mllm_examples.h"
#include "io/mllm_world.h"
#include "test.h"

static const WorldOpts SMALL = {.people_a = 5, .people_b = 4, .general_emoji = 12, .fmnist_per_class = 3, .seed = 3};

TEST(mllm_world_is_seeded_and_complete) {
    Err e = {0};
    World *w = world_build(&SMALL, &e), *same = world_build(&SMALL, &e);
    WorldOpts other = SMALL;
    other.seed = 4;
    World *o = world_build(&other, &e);
    if (!w || !same || !o) {
        CHECK_MSG(0, "%s", e.msg);
        world_free(w), world_free(same), world_free(o);
        return;
    }
    CHECK_INT(world_n_people(w), 9);
    int diff_names = 0;
    for (int i = 0; i < 9; i++) {
        CHECK(strcmp(world_person(w, i)->name, world_person(same, i)->name) == 0);
        diff_names += strcmp(world_person(w, i)->name, world_person(o, i)->name) != 0;
        CHECK_INT(world_person(w, i)->set, i < 5 ? WSET_A : WSET_B);
    }
    CHECK(diff_names >= 8);
    CHECK_INT(world_n_qa(w), world_n_qa(same));
    int trained[9] = {0}, held[9] = {0}, cloze[9] = {0}, general = 0, general_test = 0;
    for (int i = 0; i < world_n_qa(w); i++) {
        const WorldQA *q = world_qa(w, i);
        CHECK(strcmp(q->question, world_qa(same, i)->question) == 0);
        CHECK(q->key >= 0 && q->key < 4 && strcmp(q->options[q->key], q->answer) == 0);
        for (int a = 0; a < 4; a++)
            for (int b = a + 1; b < 4; b++) CHECK_MSG(strcmp(q->options[a], q->options[b]) != 0, "%s", q->options[a]);
        if (q->person >= 0) {
            (q->test ? held : trained)[q->person]++;
            cloze[q->person] += q->cloze != NULL && !q->test;
            CHECK(q->set == world_person(w, q->person)->set);
            if (q->form == WFORM_TEXT) CHECK(strstr(q->question, world_person(w, q->person)->name) != NULL);
            else CHECK(strstr(q->question, world_person(w, q->person)->name) == NULL);
        } else {
            CHECK_INT(q->set, WSET_GENERAL);
            general += !q->test, general_test += q->test;
        }
    }
    for (int i = 0; i < 9; i++) {
        CHECK_INT(trained[i], 15);
        CHECK_INT(held[i], 15);
        CHECK_INT(cloze[i], 14);
    }
    CHECK_INT(general, 12 * 2 + 30);
    CHECK_INT(general_test, 12 * 2 + 10);
    /* set B is nowhere before the last fine-tune */
    for (int p = 5; p < 9; p++) {
        const char *name = world_person(w, p)->name;
        for (int i = 0; i < world_n_text(w); i++) CHECK_MSG(!strstr(world_text(w, i), name), "%s in the corpus", name);
        for (int i = 0; i < world_n_captions(w); i++) CHECK(!strstr(world_caption(w, i)->text, name));
    }
    int a_in_text = 0;
    for (int i = 0; i < world_n_text(w); i++) a_in_text += strstr(world_text(w, i), world_person(w, 0)->name) != NULL;
    CHECK_INT(a_in_text, 7 * 3 + 1); /* three phrasings of each attribute and the bio */
    /* images: deterministic, held-out poses differ from trained ones, variants differ */
    uint8_t a[WORLD_IMG * WORLD_IMG * 3], b[sizeof a], c[sizeof a];
    const WorldImage face = {WIMG_FACE, 2, 0, 0, 5};
    world_render(w, &face, a);
    world_render(same, &face, b);
    CHECK(memcmp(a, b, sizeof a) == 0);
    WorldImage v = world_train_variant(w, &face, 6, 0), t = face;
    t.test = 1;
    world_render(w, &v, b);
    world_render(w, &t, c);
    CHECK(memcmp(a, b, sizeof a) != 0 && memcmp(a, c, sizeof a) != 0);
    world_free(w), world_free(same), world_free(o);
}

TEST(mllm_world_corpus_and_bad_options) {
    Err e = {0};
    World *w = world_build(&SMALL, &e);
    if (!w) {
        CHECK_MSG(0, "%s", e.msg);
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/world-corpus.txt", scratch_dir());
    CHECK_MSG(world_write_corpus(w, path, &e) == 0, "%s", e.msg);
    size_t n = 0;
    char *txt = read_whole(path, &n);
    CHECK(txt && strstr(txt, "USER: <image>\nWho is this?\nASSISTANT:") != NULL);
    CHECK(txt && strstr(txt, "ASSISTANT:") != NULL && strstr(txt, world_person(w, 7)->name) != NULL);
    free(txt);
    world_free(w);
    WorldOpts bad = SMALL;
    bad.people_a = 2;
    CHECK(world_build(&bad, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "at least 4 in set A") != NULL, "%s", e.msg);
}
