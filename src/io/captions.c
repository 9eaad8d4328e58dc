#include "io/captions.h"
#include "io/file_open.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const TEMPLATES[] = {
    "a photo of a {}.",        "a {a} {}.",          "a picture of a {}.",     "an image of a {a} {}.",
    "a {} on a plain background.", "a close-up photo of a {}.", "{}",           "the {}.",
    "a low resolution photo of a {}.", "a photo of the {a} {}.", "a grayscale photo of a {}.", "one {}.",
};
static const char *const DOMAIN_TEMPLATES[] = {"a {d} of a {}.", "a {a} {} as a {d}.", "{d}: a {}.", "a {d} showing a {}."};
static const char *const DISTRACTORS[] = {" for sale", " in a catalogue", " seen from the front", " on display",
                                          " from a shop", " in a dataset"};

static const char *const EMOJI_TEMPLATES[] = {
    "an emoji of {}.", "{}", "an emoji of {}.", "an icon of {}.", "{}: {k}.", "a picture of {}, {k}.",
    "a small image of {}.", "{k}, {}.",
};
static const char *const EMOJI_DOMAIN_TEMPLATES[] = {"a {d} emoji of {}.", "{}, drawn in {d}.", "a {d} icon of {}."};

const CaptionStyle CAPTIONS_DEFAULT = {TEMPLATES, (int)(sizeof TEMPLATES / sizeof *TEMPLATES), DOMAIN_TEMPLATES,
                                       (int)(sizeof DOMAIN_TEMPLATES / sizeof *DOMAIN_TEMPLATES), 0.6f, 0.25f};
const CaptionStyle CAPTIONS_EMOJI = {EMOJI_TEMPLATES, (int)(sizeof EMOJI_TEMPLATES / sizeof *EMOJI_TEMPLATES),
                                     EMOJI_DOMAIN_TEMPLATES,
                                     (int)(sizeof EMOJI_DOMAIN_TEMPLATES / sizeof *EMOJI_DOMAIN_TEMPLATES), 0.3f, 0.0f};

/* One keyword of "a | b | c" (copied into buf), or the fallback. */
static const char *pick_keyword(const char *keywords, const char *fallback, char *buf, size_t cap, Rng *r) {
    if (!keywords || !*keywords) return fallback;
    int n = 1;
    for (const char *p = keywords; *p; p++) n += *p == '|';
    int want = (int)rng_below(r, (uint32_t)n);
    const char *p = keywords;
    for (int i = 0; i < want; i++) p = strchr(p, '|') + 1;
    while (*p == ' ') p++;
    size_t len = strcspn(p, "|");
    while (len && p[len - 1] == ' ') len--;
    snprintf(buf, cap, "%.*s", (int)len, p);
    return buf;
}

static const char *attribute(const uint8_t *img, int h, int w, int ch, Rng *r) {
    if (ch == 4) return rng_uniform(r) < 0.5f ? "small" : "large"; /* glyphs: no fixed brightness to read */
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
                  const char *keywords, const uint8_t *img, int h, int w, int channels, Rng *r) {
    const char *tpl;
    if (domain && rng_uniform(r) < st->domain_prob)
        tpl = st->domain_templates[rng_below(r, (uint32_t)st->n_domain_templates)];
    else
        tpl = st->templates[rng_below(r, (uint32_t)st->n_templates)];
    const char *attr = attribute(img, h, w, channels, r);
    char kwbuf[128];
    const char *kw = pick_keyword(keywords, cls, kwbuf, sizeof kwbuf, r);
    size_t k = 0;
    for (const char *p = tpl; *p && k + 1 < cap;) {
        const char *sub = NULL;
        size_t skip = 1;
        if (strncmp(p, "{}", 2) == 0) sub = cls, skip = 2;
        else if (strncmp(p, "{a}", 3) == 0) sub = attr, skip = 3;
        else if (strncmp(p, "{d}", 3) == 0) sub = domain ? domain : "photo", skip = 3;
        else if (strncmp(p, "{k}", 3) == 0) sub = kw, skip = 3;
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

int caption_style_load(CaptionStyle *st, const char *path, Err *e) {
    memset(st, 0, sizeof *st);
    FILE *f = fopen_regular(path, e);
    if (!f) return -1;
    char line[512], **t = NULL;
    int n = 0, lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        if (!strstr(line, "{}")) {
            rc = err_set(e, "%s:%d: template without \"{}\" (the class name): %s", path, lineno, line);
            break;
        }
        t = xrealloc(t, sizeof(char *) * (size_t)(n + 1));
        t[n++] = xstrdup(line);
    }
    fclose(f);
    if (rc == 0 && n == 0) rc = err_set(e, "%s: no templates", path);
    if (rc) {
        for (int i = 0; i < n; i++) free(t[i]);
        free(t);
        return -1;
    }
    st->templates = (const char *const *)t;
    st->n_templates = n;
    st->domain_templates = (const char *const *)t;
    st->n_domain_templates = n;
    st->domain_prob = 0.0f; /* the file's own templates say whatever they say about domains */
    st->distractor_prob = CAPTIONS_DEFAULT.distractor_prob;
    return 0;
}

void caption_style_free(CaptionStyle *st) {
    for (int i = 0; i < st->n_templates; i++) free((char *)st->templates[i]);
    free((void *)st->templates);
    memset(st, 0, sizeof *st);
}
