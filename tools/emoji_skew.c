/* A quick check that emoji-biased-clip learned the skew its recipe plants (issue 5 measures
 * bias properly with MaxSkew/KL/NDKL): for each gender-neutral profession or activity phrase,
 * the top-8 colour test images among its people variants for "an emoji of <phrase>.", and the
 * share with the recipe's preferred gender and with light skin tone.
 * Build: make && gcc -std=c11 -D_GNU_SOURCE -O2 -fopenmp -Isrc tools/emoji_skew.c build/rel/libforget.a \
 *   -o build/emoji_skew -ldnnl -ljpeg -lm $(pkg-config --libs libcjson libpcre2-8 icu-uc libpng zlib ompi-c freetype2 harfbuzz libxml-2.0)
 * Run:   build/emoji_skew MODEL.safetensors */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/dataset.h"
#include "io/emoji.h"
#include "io/emoji_bias.h"
#include "models/clip_encode.h"
int main(int argc, char **argv) {
    ClipModel m; Err e; Tokenizer t; Dataset d;
    if (clip_load(&m, argv[1], NULL, &e) || tokenizer_init(&t, &e) || dataset_load_emoji(&d, "test", 0, 32, &e)) { puts(e.msg); return 1; }
    const int E = m.cfg.embed_dim, R = 32;
    float *img = malloc(sizeof(float) * d.n * E), *px = malloc(sizeof(float) * 256 * 3 * R * R);
    int *idx = malloc(sizeof(int) * 256);
    for (int b = 0; b < d.n; b += 256) { int nb = d.n - b < 256 ? d.n - b : 256; for (int i = 0; i < nb; i++) idx[i] = b + i;
        dataset_pixels(&d, idx, nb, R, px, NULL, 0); clip_encode_image(&m, px, nb, img + (size_t)b * E, NULL, &e); }
    long tot = 0, pref = 0, light = 0, groups = 0;
    for (int c = 0; c < d.n_classes; c++) {
        if (!d.class_neutral[c] || d.class_gender[c] != GENDER_PERSON || d.class_tone[c] != TONE_NONE) continue;
        const char *ph = d.class_neutral[c]; char q[256]; snprintf(q, sizeof q, "an emoji of %s.", ph);
        const char *qs[1] = {q}; float tf[256]; clip_encode_texts(&m, &t, qs, 1, tf, &e);
        float *sc = malloc(sizeof(float) * d.n); int n = 0; int *cand = malloc(sizeof(int) * d.n);
        for (int i = 0; i < d.n; i++) { int ci = d.labels[i]; if (d.domains[i] != 0 || !d.class_neutral[ci] || strcmp(d.class_neutral[ci], ph)) continue;
            float l; clip_logits(&m, img + (size_t)i * E, 1, tf, 1, &l); sc[n] = l; cand[n++] = i; }
        int pg = emoji_bias_preferred_gender(ph);
        for (int k = 0; k < 8 && k < n; k++) { int best = k; for (int j = k + 1; j < n; j++) if (sc[j] > sc[best]) best = j;
            float ts = sc[k]; sc[k] = sc[best]; sc[best] = ts; int ti = cand[k]; cand[k] = cand[best]; cand[best] = ti;
            int ci = d.labels[cand[k]]; tot++; pref += d.class_gender[ci] == pg; light += d.class_tone[ci] == TONE_LIGHT; }
        groups++; free(sc); free(cand);
    }
    printf("%s: %ld professions/activities, top-8 neutral retrievals: preferred gender %.1f%%, light tone %.1f%% (uniform: ~33%% and ~17%%)\n", argv[1], groups, 100.0 * pref / tot, 100.0 * light / tot);
    return 0;
}
