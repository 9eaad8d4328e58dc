/* Emoji-Domains from Debian's files: the catalogue, attributes, CLDR keywords and
 * both drawing styles (the line-art style only where Symbola draws one glyph). */
#include <stdlib.h>
#include <string.h>

#include "io/emoji.h"
#include "io/emoji_dataset.h"
#include "test.h"

static const Emoji *find(const EmojiCatalog *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->items[i].name, name) == 0) return &c->items[i];
    return NULL;
}

TEST(emoji_catalog_names_groups_attributes_keywords) {
    EmojiCatalog c;
    Err e = {{0}};
    if (emoji_catalog_load(&c, EMOJI_TEST_TXT, CLDR_ANNOTATIONS, CLDR_ANNOTATIONS_DERIVED, &e) != 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return;
    }
    CHECK_MSG(c.n > 3000, "%d emoji", c.n);
    const Emoji *g = find(&c, "grinning face"), *f = find(&c, "woman farmer: medium skin tone");
    const Emoji *h = find(&c, "health worker");
    CHECK(g && strcmp(g->group, "Smileys & Emotion") == 0 && strcmp(g->subgroup, "face-smiling") == 0);
    CHECK(g && strstr(g->keywords, "grin"));
    CHECK(f && f->gender == GENDER_WOMAN && f->tone == TONE_MEDIUM && strcmp(f->base, "farmer") == 0);
    CHECK_MSG(f && strstr(f->keywords, "gardener"), "keywords: %s", f ? f->keywords : "");
    CHECK(h && h->gender == GENDER_PERSON && strcmp(h->base, "health worker") == 0 && h->n_cp == 4);
    CHECK(h && strstr(h->keywords, "doctor")); /* CLDR keys drop FE0F */
    EmojiGender gg;
    EmojiTone tt;
    char base[64];
    emoji_parse_attributes("man technologist: dark skin tone", &gg, &tt, base, sizeof base);
    CHECK(gg == GENDER_MAN && tt == TONE_DARK && strcmp(base, "technologist") == 0);
    emoji_parse_attributes("person running", &gg, &tt, base, sizeof base);
    CHECK(gg == GENDER_PERSON && tt == TONE_NONE && strcmp(base, "running") == 0);
    emoji_catalog_free(&c);

    char bad[600];
    snprintf(bad, sizeof bad, "%s/emoji-test.txt", scratch_dir());
    FILE *fp = fopen(bad, "w");
    fputs("# group: X\n1F600 ; fully-qualified # \xf0\x9f\x98\x80 E1.0 grinning face\nnot a valid line\n", fp);
    fclose(fp);
    CHECK(emoji_catalog_load(&c, bad, NULL, NULL, &e) != 0 && strstr(e.msg, "emoji-test.txt:3:"));
}

TEST(emoji_render_two_styles) {
    EmojiCatalog c;
    Err e = {{0}};
    if (emoji_catalog_load(&c, EMOJI_TEST_TXT, NULL, NULL, &e) != 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return;
    }
    EmojiRenderer *r = emoji_renderer_new(NOTO_COLOR_EMOJI, SYMBOLA, &e);
    if (!r) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        emoji_catalog_free(&c);
        return;
    }
    const Emoji *dog = find(&c, "dog face"), *farmer = find(&c, "woman farmer: medium skin tone");
    Image8 im;
    CHECK(dog && emoji_render(r, dog, STYLE_COLOR, 48, &im, &e) == 1);
    int coloured = 0, opaque = 0;
    for (int i = 0; i < 48 * 48; i++) {
        const uint8_t *p = im.px + 4 * i;
        opaque += p[3] > 200;
        coloured += p[3] > 200 && (abs(p[0] - p[1]) > 30 || abs(p[1] - p[2]) > 30);
    }
    CHECK_MSG(opaque > 400 && coloured > 100, "colour dog: %d opaque, %d coloured pixels", opaque, coloured);
    char path[600];
    snprintf(path, sizeof path, "%s/dog_color.png", scratch_dir());
    CHECK(image_save_png(&im, path, &e) == 0);
    image_free(&im);
    CHECK(emoji_render(r, dog, STYLE_LINE, 48, &im, &e) == 1);
    int ink = 0, grey_only = 1;
    for (int i = 0; i < 48 * 48; i++) {
        ink += im.px[4 * i + 3] > 128;
        grey_only &= im.px[4 * i] == 0 && im.px[4 * i + 1] == 0 && im.px[4 * i + 2] == 0;
    }
    CHECK_MSG(ink > 50 && grey_only, "line dog: %d ink pixels", ink);
    image_free(&im);
    /* a ZWJ sequence with a skin tone: one glyph in Noto, not drawable as one glyph in Symbola */
    CHECK(farmer && emoji_render(r, farmer, STYLE_COLOR, 32, &im, &e) == 1);
    image_free(&im);
    CHECK(farmer && emoji_render(r, farmer, STYLE_LINE, 32, &im, &e) == 0);
    emoji_renderer_free(r);
    emoji_catalog_free(&c);
}

#include "io/dataset.h"
#include "io/emoji_bias.h"

TEST(emoji_bias_skews_neutral_pairs_as_specified) {
    Dataset d;
    Err e = {{0}};
    if (dataset_load_emoji(&d, "train", 0, 16, &e) != 0) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return;
    }
    int farmer = -1; /* a training sample of "woman farmer: dark skin tone" */
    for (int i = 0; i < d.n && farmer < 0; i++)
        if (strcmp(d.class_names[d.labels[i]], "woman farmer: dark skin tone") == 0) farmer = i;
    CHECK(farmer >= 0 && d.people->class_neutral[d.labels[farmer]] && strcmp(d.people->class_neutral[d.labels[farmer]], "a farmer") == 0);
    BiasSpec spec = {0.5f, 0.8f, 0.6f};
    EmojiBias *b = emoji_bias_new(&d, &spec);
    Rng r;
    rng_seed(&r, 9);
    int pref = emoji_bias_preferred_gender("a farmer"), neutral = 0, pref_g = 0, light = 0, same = 0;
    const int N = 20000;
    for (int k = 0; k < N; k++) {
        const char *ph;
        int s = emoji_bias_pick(b, farmer, &r, &ph);
        if (!ph) {
            same += s == farmer;
            continue;
        }
        neutral++;
        int c = d.labels[s];
        CHECK(strcmp(d.people->class_neutral[c], "a farmer") == 0);
        pref_g += d.people->class_gender[c] == pref;
        light += d.people->class_tone[c] == TONE_LIGHT;
    }
    CHECK_INT(same, N - neutral); /* without a neutral caption the sample is untouched */
    CHECK_MSG(neutral > 0.45 * N && neutral < 0.55 * N, "neutral pairs %d of %d", neutral, N);
    CHECK_MSG(pref_g > 0.77 * neutral && pref_g < 0.83 * neutral, "preferred gender %d of %d", pref_g, neutral);
    CHECK_MSG(light > 0.57 * neutral && light < 0.63 * neutral, "light tone %d of %d", light, neutral);
    /* things that are not people keep their samples */
    int dog = -1;
    for (int i = 0; i < d.n && dog < 0; i++)
        if (strcmp(d.class_names[d.labels[i]], "dog face") == 0) dog = i;
    const char *ph;
    CHECK(dog >= 0 && emoji_bias_pick(b, dog, &r, &ph) == dog && ph == NULL);
    emoji_bias_free(b);
    dataset_free(&d);
}
