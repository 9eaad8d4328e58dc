/* Emoji-Domains as Dataset: glyphs drawn once by emoji_render, composed into
 * training images afresh each time (emoji_augment), and fixed held-out
 * compositions for validation and test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/emoji_dataset.h"
#include "io/emoji.h"

static float frand(Rng *r, float lo, float hi) { return lo + (hi - lo) * rng_uniform(r); }

void emoji_augment(const uint8_t *glyph, int g, uint8_t *out, int s, Rng *r) {
    /* background: a colour, and half the time a texture (gradient, stripes or grain) */
    float c0[3], c1[3];
    for (int k = 0; k < 3; k++) c0[k] = frand(r, 40, 255), c1[k] = frand(r, 40, 255);
    const int pattern = (int)rng_below(r, 6); /* 0-2 plain, 3 gradient, 4 stripes, 5 grain */
    const float period = frand(r, 3, 9), angle = frand(r, 0, 3.14159f);
    /* the glyph: scale, rotation, shift */
    const float scale = frand(r, 0.65f, 1.0f), rot = frand(r, -0.35f, 0.35f);
    const float room = (1.0f - scale) * 0.5f * s;
    const float cx = s * 0.5f + frand(r, -room, room), cy = s * 0.5f + frand(r, -room, room);
    const float bright = frand(r, 0.85f, 1.15f), contrast = frand(r, 0.85f, 1.15f);
    const float cs = cosf(rot), sn = sinf(rot), k = (float)g / (scale * s); /* output px -> glyph px */
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            float bg[3];
            float t = pattern == 3 ? (float)y / s : pattern == 4 ? (sinf((x * cosf(angle) + y * sinf(angle)) / period * 6.2832f) > 0) : 0;
            for (int c = 0; c < 3; c++) bg[c] = c0[c] + t * (c1[c] - c0[c]);
            if (pattern == 5) {
                float n = frand(r, -25, 25);
                for (int c = 0; c < 3; c++) bg[c] += n;
            }
            /* inverse map into the glyph and sample bilinearly, premultiplied */
            float dx = x + 0.5f - cx, dy = y + 0.5f - cy;
            float gx = (cs * dx + sn * dy) * k + g * 0.5f - 0.5f, gy = (-sn * dx + cs * dy) * k + g * 0.5f - 0.5f;
            float acc[4] = {0, 0, 0, 0};
            int x0 = (int)floorf(gx), y0 = (int)floorf(gy);
            float fx = gx - x0, fy = gy - y0;
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < 2; i++) {
                    int sx = x0 + i, sy = y0 + j;
                    if (sx < 0 || sy < 0 || sx >= g || sy >= g) continue;
                    float wgt = (i ? fx : 1 - fx) * (j ? fy : 1 - fy);
                    const uint8_t *p = glyph + ((size_t)sy * g + sx) * 4;
                    float a = p[3] / 255.0f;
                    for (int c = 0; c < 3; c++) acc[c] += wgt * p[c] * a;
                    acc[3] += wgt * a;
                }
            for (int c = 0; c < 3; c++) {
                float v = acc[c] + (1 - acc[3]) * bg[c];
                v = (v - 128) * contrast + 128 * bright;
                out[((size_t)y * s + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
            }
        }
}

/* "a health worker" for roles, "a person running" for activities and sports; NULL otherwise. */
static char *neutral_phrase(const Emoji *m) {
    int role = strcmp(m->subgroup, "person-role") == 0;
    int act = strcmp(m->subgroup, "person-activity") == 0 || strcmp(m->subgroup, "person-sport") == 0;
    if ((!role && !act) || m->gender == GENDER_NONE || !m->base[0]) return NULL;
    char buf[160];
    if (role) {
        const char *an = strchr("aeiou", m->base[0]) ? "an" : "a";
        snprintf(buf, sizeof buf, "%s %s", an, m->base);
    } else {
        snprintf(buf, sizeof buf, "a person %s", m->base);
    }
    return xstrdup(buf);
}

static int in_groups(const Emoji *m) {
    static const char *const g[] = {"Animals & Nature", "Food & Drink", "Travel & Places", "Activities", "Objects"};
    for (size_t i = 0; i < sizeof g / sizeof *g; i++)
        if (strcmp(m->group, g[i]) == 0) return 1;
    return 0;
}

int dataset_load_emoji(Dataset *d, const char *split, int emoji100, int size, Err *e) {
    memset(d, 0, sizeof *d);
    const int train = strcmp(split, "train") == 0, val = strcmp(split, "val") == 0, test = strcmp(split, "test") == 0;
    if (!train && !val && !test) return err_set(e, "emoji: unknown split \"%s\" (train, val or test)", split);
    EmojiCatalog cat;
    if (emoji_catalog_load(&cat, EMOJI_TEST_TXT, CLDR_ANNOTATIONS, CLDR_ANNOTATIONS_DERIVED, e)) return -1;
    EmojiRenderer *rr = emoji_renderer_new(NOTO_COLOR_EMOJI, SYMBOLA, e);
    if (!rr) {
        emoji_catalog_free(&cat);
        return -1;
    }
    const int G = 2 * size;
    const size_t gsz = (size_t)G * G * 4;
    /* draw every glyph; a class is an emoji with at least one style (emoji100: both) */
    uint8_t *px = NULL;
    int32_t *lab = NULL, *dom = NULL;
    int n = 0, n_cls = 0, rc = 0;
    char **names = NULL, **kws = NULL, **neutral = NULL, **grp = NULL, **sub = NULL;
    int32_t *gender = NULL, *tone = NULL;
    int *chosen = xmalloc(sizeof(int) * (size_t)cat.n), n_chosen = 0;
    if (emoji100) { /* single code points of five object-like groups, both styles; 100 evenly spaced */
        int *cand = xmalloc(sizeof(int) * (size_t)cat.n), nc = 0;
        for (int i = 0; i < cat.n && rc == 0; i++) {
            const Emoji *m = &cat.items[i];
            if (!(m->n_cp == 1 || (m->n_cp == 2 && m->cp[1] == 0xFE0F)) || !in_groups(m)) continue;
            Image8 a, b;
            int ok_a = emoji_render(rr, m, STYLE_COLOR, 8, &a, e), ok_b = emoji_render(rr, m, STYLE_LINE, 8, &b, e);
            if (ok_a < 0 || ok_b < 0) rc = -1;
            if (ok_a == 1) image_free(&a);
            if (ok_b == 1) image_free(&b);
            if (ok_a == 1 && ok_b == 1) cand[nc++] = i;
        }
        if (rc == 0 && nc < 100) rc = err_set(e, "emoji100: only %d candidate emoji drawable in both styles", nc);
        for (int k = 0; rc == 0 && k < 100; k++) chosen[n_chosen++] = cand[(long)k * nc / 100];
        free(cand);
    } else {
        for (int i = 0; i < cat.n; i++) chosen[n_chosen++] = i;
    }
    for (int ci = 0; ci < n_chosen && rc == 0; ci++) {
        const Emoji *m = &cat.items[chosen[ci]];
        int drawn = 0;
        for (int st = 0; st < 2 && rc == 0; st++) {
            Image8 im;
            int ok = emoji_render(rr, m, (EmojiStyle)st, G, &im, e);
            if (ok < 0) rc = -1;
            if (ok != 1) continue;
            px = xrealloc(px, gsz * (size_t)(n + 1));
            lab = xrealloc(lab, sizeof(int32_t) * (size_t)(n + 1));
            dom = xrealloc(dom, sizeof(int32_t) * (size_t)(n + 1));
            memcpy(px + gsz * (size_t)n, im.px, gsz);
            lab[n] = n_cls;
            dom[n] = st;
            n++;
            drawn = 1;
            image_free(&im);
        }
        if (drawn) {
            names = xrealloc(names, sizeof(char *) * (size_t)(n_cls + 1));
            kws = xrealloc(kws, sizeof(char *) * (size_t)(n_cls + 1));
            neutral = xrealloc(neutral, sizeof(char *) * (size_t)(n_cls + 1));
            gender = xrealloc(gender, sizeof(int32_t) * (size_t)(n_cls + 1));
            tone = xrealloc(tone, sizeof(int32_t) * (size_t)(n_cls + 1));
            grp = xrealloc(grp, sizeof(char *) * (size_t)(n_cls + 1));
            sub = xrealloc(sub, sizeof(char *) * (size_t)(n_cls + 1));
            grp[n_cls] = xstrdup(m->group);
            sub[n_cls] = xstrdup(m->subgroup);
            names[n_cls] = xstrdup(m->name);
            kws[n_cls] = xstrdup(m->keywords);
            gender[n_cls] = m->gender;
            tone[n_cls] = m->tone;
            neutral[n_cls] = neutral_phrase(m);
            n_cls++;
        }
    }
    free(chosen);
    emoji_renderer_free(rr);
    emoji_catalog_free(&cat);
    d->n_classes = n_cls;
    d->class_names = names;
    d->class_keywords = kws;
    d->people = xcalloc(1, sizeof *d->people);
    d->people->class_gender = gender;
    d->people->class_tone = tone;
    d->people->class_neutral = neutral;
    d->people->class_group = grp;
    d->people->class_subgroup = sub;
    d->n_domains = 2;
    d->domain_names = xmalloc(2 * sizeof(char *));
    d->domain_names[0] = xstrdup("color");
    d->domain_names[1] = xstrdup("line art");
    if (rc) {
        free(px), free(lab), free(dom);
        dataset_free(d);
        return -1;
    }
    if (train) { /* glyphs, composed afresh at every use */
        if (!emoji100) { /* Symbola draws 1140 of the 3655: line art appears twice per epoch to balance the styles */
            int n_line = 0;
            for (int i = 0; i < n; i++) n_line += dom[i] == STYLE_LINE;
            px = xrealloc(px, gsz * (size_t)(n + n_line));
            lab = xrealloc(lab, sizeof(int32_t) * (size_t)(n + n_line));
            dom = xrealloc(dom, sizeof(int32_t) * (size_t)(n + n_line));
            for (int i = 0, k = n; i < n; i++)
                if (dom[i] == STYLE_LINE) {
                    memcpy(px + gsz * (size_t)k, px + gsz * (size_t)i, gsz);
                    lab[k] = lab[i];
                    dom[k++] = dom[i];
                }
            n += n_line;
        }
        d->n = n, d->h = d->w = G, d->channels = 4, d->pixels = px, d->labels = lab, d->domains = dom;
        d->glyphs = 1, d->out_size = size;
        return 0;
    }
    /* held-out compositions: seeds no training stream uses (emoji100 test: 5 views per glyph) */
    const int views = emoji100 ? 5 : 1;
    const size_t osz = (size_t)size * size * 3;
    d->n = n * views, d->h = d->w = size, d->channels = 3;
    d->pixels = xmalloc(osz * (size_t)d->n);
    d->labels = xmalloc(sizeof(int32_t) * (size_t)d->n);
    d->domains = xmalloc(sizeof(int32_t) * (size_t)d->n);
    for (int i = 0; i < n; i++)
        for (int v = 0; v < views; v++) {
            Rng r;
            rng_seed(&r, (val ? 0x7a1000000ull : 0x7e5700000ull) + (uint64_t)i * 16 + (uint64_t)v);
            int j = i * views + v;
            emoji_augment(px + gsz * (size_t)i, G, d->pixels + osz * (size_t)j, size, &r);
            d->labels[j] = lab[i];
            d->domains[j] = dom[i];
        }
    free(px), free(lab), free(dom);
    return 0;
}
