#include "io/captions.h"

#include <stdio.h>
#include <string.h>

static const char *const TEMPLATES[] = {
    "a photo of a {}.",        "a {a} {}.",          "a picture of a {}.",     "an image of a {a} {}.",
    "a {} on a plain background.", "a close-up photo of a {}.", "{}",           "the {}.",
    "a low resolution photo of a {}.", "a photo of the {a} {}.", "a grayscale photo of a {}.", "one {}.",
};
static const char *const DOMAIN_TEMPLATES[] = {"a {d} of a {}.", "a {a} {} as a {d}.", "{d}: a {}.", "a {d} showing a {}."};
static const char *const DISTRACTORS[] = {" for sale", " in a catalogue", " seen from the front", " on display",
                                          " from a shop", " in a dataset"};

const CaptionStyle CAPTIONS_DEFAULT = {TEMPLATES, (int)(sizeof TEMPLATES / sizeof *TEMPLATES), 0.6f, 0.25f};

static const char *attribute(const uint8_t *img, int h, int w, int ch, Rng *r) {
    long sum = 0, on = 0;
    for (int i = 0; i < h * w; i++) {
        int v = img[(size_t)i * ch];
        if (v > 24) on++, sum += v;
    }
    double cover = (double)on / (h * w), bright = on ? (double)sum / on : 0;
    if (rng_uniform(r) < 0.5f) return cover > 0.45 ? "large" : "small";
    return bright > 150 ? "light" : "dark";
}

void caption_make(char *out, size_t cap, const CaptionStyle *st, const char *cls, const char *domain,
                  const uint8_t *img, int h, int w, int channels, Rng *r) {
    const char *tpl;
    if (domain && rng_uniform(r) < st->domain_prob)
        tpl = DOMAIN_TEMPLATES[rng_below(r, (uint32_t)(sizeof DOMAIN_TEMPLATES / sizeof *DOMAIN_TEMPLATES))];
    else
        tpl = st->templates[rng_below(r, (uint32_t)st->n_templates)];
    const char *attr = attribute(img, h, w, channels, r);
    size_t k = 0;
    for (const char *p = tpl; *p && k + 1 < cap;) {
        const char *sub = NULL;
        size_t skip = 1;
        if (strncmp(p, "{}", 2) == 0) sub = cls, skip = 2;
        else if (strncmp(p, "{a}", 3) == 0) sub = attr, skip = 3;
        else if (strncmp(p, "{d}", 3) == 0) sub = domain ? domain : "photo", skip = 3;
        if (sub) {
            k += (size_t)snprintf(out + k, cap - k, "%s", sub);
            if (k >= cap) k = cap - 1;
        } else {
            out[k++] = *p;
        }
        p += skip;
    }
    out[k] = 0;
    if (rng_uniform(r) < st->distractor_prob) {
        size_t len = strlen(out);
        int dot = len && out[len - 1] == '.';
        if (dot) out[--len] = 0;
        snprintf(out + len, cap - len, "%s%s", DISTRACTORS[rng_below(r, (uint32_t)(sizeof DISTRACTORS / sizeof *DISTRACTORS))],
                 dot ? "." : "");
    }
}
