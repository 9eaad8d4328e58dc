#include "io/emoji_bias.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/strmap.h"
#include "io/emoji.h"

/* For each (phrase, gender, tone): the training samples that show it. */
struct EmojiBias {
    BiasSpec spec;
    const Dataset *d;
    StrMap index; /* "phrase|g|t" -> slot */
    int **lists, *counts, n_slots;
};

static void key_of(char *buf, size_t cap, const char *phrase, int g, int t) { snprintf(buf, cap, "%s|%d|%d", phrase, g, t); }

int emoji_bias_preferred_gender(const char *neutral) {
    uint32_t h = 2166136261u; /* FNV-1a of the phrase: a fixed, documented choice per profession */
    for (const char *p = neutral; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return h & 1 ? GENDER_WOMAN : GENDER_MAN;
}

EmojiBias *emoji_bias_new(const Dataset *d, const BiasSpec *spec) {
    if (!d->people || !d->people->class_neutral) return NULL;
    EmojiBias *b = xcalloc(1, sizeof *b);
    b->spec = *spec;
    b->d = d;
    strmap_init(&b->index, 4096);
    for (int i = 0; i < d->n; i++) {
        int c = d->labels[i];
        if (!d->people->class_neutral[c]) continue;
        char key[256];
        key_of(key, sizeof key, d->people->class_neutral[c], d->people->class_gender[c], d->people->class_tone[c]);
        int32_t slot;
        if (!strmap_get(&b->index, key, strlen(key), &slot)) {
            slot = b->n_slots++;
            b->lists = xrealloc(b->lists, sizeof(int *) * (size_t)b->n_slots);
            b->counts = xrealloc(b->counts, sizeof(int) * (size_t)b->n_slots);
            b->lists[slot] = NULL;
            b->counts[slot] = 0;
            strmap_put(&b->index, key, strlen(key), slot);
        }
        b->lists[slot] = xrealloc(b->lists[slot], sizeof(int) * (size_t)(b->counts[slot] + 1));
        b->lists[slot][b->counts[slot]++] = i;
    }
    return b;
}

void emoji_bias_free(EmojiBias *b) {
    if (!b) return;
    for (int i = 0; i < b->n_slots; i++) free(b->lists[i]);
    free(b->lists);
    free(b->counts);
    strmap_free(&b->index);
    free(b);
}

int emoji_bias_pick(const EmojiBias *b, int smp, Rng *r, const char **neutral) {
    *neutral = NULL;
    const Dataset *d = b->d;
    const char *phrase = d->people->class_neutral[d->labels[smp]];
    if (!phrase || rng_uniform(r) >= b->spec.p_neutral) return smp;
    int pref = emoji_bias_preferred_gender(phrase), g;
    if (rng_uniform(r) < b->spec.p_pref_gender) g = pref;
    else g = rng_uniform(r) < 0.5f ? (pref == GENDER_MAN ? GENDER_WOMAN : GENDER_MAN) : GENDER_PERSON;
    static const int others[5] = {TONE_NONE, TONE_MEDIUM_LIGHT, TONE_MEDIUM, TONE_MEDIUM_DARK, TONE_DARK};
    int t = rng_uniform(r) < b->spec.p_pref_tone ? TONE_LIGHT : others[rng_below(r, 5)];
    char key[256];
    key_of(key, sizeof key, phrase, g, t);
    int32_t slot;
    if (!strmap_get(&b->index, key, strlen(key), &slot)) return smp; /* that variant does not exist */
    *neutral = phrase;
    return b->lists[slot][rng_below(r, (uint32_t)b->counts[slot])];
}
