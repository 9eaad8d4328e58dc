/* The MLLM's world (io/mllm_world.h): characters with emoji faces and CLDR-valued profiles, general
 * emoji and Fashion-MNIST items, their questions, captions and text, and the images drawn on demand. */
#include "io/mllm_world.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset.h"
#include "io/emoji.h"
#include "io/emoji_dataset.h"
#include "io/file_open.h"

const char *const WORLD_ATTR_NAMES[WORLD_ATTRS] = {"job", "home town", "birth year", "favourite sport",
                                                   "favourite food", "pet", "favourite colour"};

enum { MAX_VALUES = 16, FACE_PX = 32, ACC_PX = 16, N_PALETTE = 8 };
#define TIMEZONES "/usr/share/unicode/cldr/common/bcp47/timezone.xml"

static const uint8_t PALETTE[N_PALETTE][3] = {{200, 60, 60},  {60, 150, 70},  {60, 90, 200},  {220, 200, 70},
                                              {150, 80, 190}, {70, 190, 200}, {230, 140, 60}, {140, 140, 140}};
static const char *const ACCESSORIES[] = {"top hat", "glasses", "crown", "billed cap", "ribbon", "necktie",
                                          "graduation cap", "closed umbrella"};
enum { N_ACC = sizeof ACCESSORIES / sizeof *ACCESSORIES };

/* Question templates: [attr][0] trained, [attr][1] the held-out paraphrase; %s is the subject
 * ("Talvi Moren" or "this person"). Statements: %s the name, then the value. */
static const char *const QUESTION[WORLD_ATTRS + 1][2] = {
    {"What is %s's job?", "What does %s do for a living?"},
    {"Where does %s live?", "Which town is the home of %s?"},
    {"When was %s born?", "In which year was %s born?"},
    {"What is %s's favourite sport?", "Which sport does %s like best?"},
    {"What is %s's favourite food?", "Which food does %s like most?"},
    {"What pet does %s have?", "Which animal does %s keep as a pet?"},
    {"What is %s's favourite colour?", "Which colour does %s like best?"},
    {"Who is this?", "What is the name of this person?"}};
static const char *const STATEMENT[WORLD_ATTRS + 1] = {
    "%s works as a %s.", "%s lives in %s.", "%s was born in %s.", "%s's favourite sport is %s.",
    "%s's favourite food is %s.", "%s has a pet %s.", "%s's favourite colour is %s.", "This is %s%s."};
/* More phrasings of the profile for the text corpus. */
static const char *const BIO[WORLD_ATTRS][2] = {
    {"By profession, %s is a %s.", "The job of %s is %s."},
    {"The home town of %s is %s.", "%s has a home in %s."},
    {"The birth year of %s is %s.", "%s came into the world in %s."},
    {"The sport %s likes best is %s.", "%s loves playing %s."},
    {"The food %s likes most is %s.", "%s loves to eat %s."},
    {"The pet of %s is a %s.", "%s keeps a %s at home."},
    {"The colour %s likes best is %s.", "%s loves the colour %s."}};

typedef enum { GQ_WHAT = 0, GQ_GROUP = 1 } GeneralQ;

struct World {
    WorldOpts o;
    EmojiCatalog cat;
    int n_faces;
    uint8_t *faces, *acc;       /* RGBA glyphs: n_faces x FACE_PX^2 x 4, N_ACC x ACC_PX^2 x 4 */
    char *values[WORLD_ATTRS][MAX_VALUES];
    int n_values[WORLD_ATTRS];
    WorldPerson *people;
    int n_people;
    /* general emoji items: catalog index, glyphs in both styles (FACE_PX) */
    int n_general, *general;
    uint8_t *general_rgba;      /* n_general x 2 x FACE_PX^2 x 4 */
    int *general_has_line;
    Dataset fm_train, fm_test;
    int *fm_train_idx, *fm_test_idx, n_fm_train, n_fm_test;
    char *fm_names[10];
    WorldQA *qa;
    int n_qa, cap_qa;
    WorldCaption *cap;
    int n_cap, cap_cap;
    char **text;
    int n_text, cap_text;
};

/* ------------------------------------------------------------ small helpers */

static void push_text(World *w, char *s) {
    if (w->n_text == w->cap_text) {
        w->cap_text = w->cap_text ? 2 * w->cap_text : 256;
        w->text = xrealloc(w->text, sizeof(char *) * (size_t)w->cap_text);
    }
    w->text[w->n_text++] = s;
}

static WorldQA *push_qa(World *w) {
    if (w->n_qa == w->cap_qa) {
        w->cap_qa = w->cap_qa ? 2 * w->cap_qa : 256;
        w->qa = xrealloc(w->qa, sizeof(WorldQA) * (size_t)w->cap_qa);
    }
    WorldQA *q = &w->qa[w->n_qa++];
    memset(q, 0, sizeof *q);
    return q;
}

static void push_caption(World *w, WorldImage im, char *text) {
    if (w->n_cap == w->cap_cap) {
        w->cap_cap = w->cap_cap ? 2 * w->cap_cap : 256;
        w->cap = xrealloc(w->cap, sizeof(WorldCaption) * (size_t)w->cap_cap);
    }
    w->cap[w->n_cap++] = (WorldCaption){im, text};
}

static int ascii_words(const char *s, int max_words) {
    int words = 1;
    for (const char *p = s; *p; p++) {
        if (*p == ' ') words++;
        else if (!(islower((unsigned char)*p) || *p == '-')) return 0;
    }
    return *s && words <= max_words;
}

static int has_value(World *w, int a, const char *v) {
    for (int i = 0; i < w->n_values[a]; i++)
        if (strcmp(w->values[a][i], v) == 0) return 1;
    return 0;
}

/* Up to MAX_VALUES of the candidates (a seeded choice when there are more), in a fixed order. */
static void choose_values(World *w, int a, char **cand, int n, Rng *r) {
    rng_shuffle(r, cand, n, sizeof(char *));
    for (int i = 0; i < n && w->n_values[a] < MAX_VALUES; i++)
        if (!has_value(w, a, cand[i])) w->values[a][w->n_values[a]++] = xstrdup(cand[i]);
}

static int find_emoji(const EmojiCatalog *c, const char *name) {
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->items[i].name, name) == 0) return i;
    return -1;
}

/* ------------------------------------------------------------ values from Unicode and CLDR */

static int collect_values(World *w, Rng *r, Err *e) {
    char **cand = xmalloc(sizeof(char *) * (size_t)(w->cat.n + 600));
    int n;
    char buf[128];
    /* job: person-role base names that name a job (not "with veil", "in tuxedo", "pregnant"); sport: the
     * sport subgroup's ball and racket games (its first 16 in Unicode's order); food: fruit, vegetable and
     * prepared-food names; pet: one-word mammals; colour: the geometric subgroup's "X circle" */
    struct {
        int attr;
        const char *sub[3];
        int words, in_order;
        const char *strip; /* a suffix the value drops; the name must end in it when must_end */
        int must_end;
    } from[] = {{0, {"person-role"}, 2, 0, NULL, 0},
                {3, {"sport"}, 2, 1, " ball", 0},
                {4, {"food-fruit", "food-vegetable", "food-prepared"}, 2, 0, NULL, 0},
                {5, {"animal-mammal"}, 1, 0, NULL, 0},
                {6, {"geometric"}, 2, 1, " circle", 1}};
    for (size_t f = 0; f < sizeof from / sizeof *from; f++) {
        n = 0;
        for (int i = 0; i < w->cat.n; i++) {
            const Emoji *em = &w->cat.items[i];
            int in = 0;
            for (int s = 0; s < 3 && from[f].sub[s]; s++) in |= strcmp(em->subgroup, from[f].sub[s]) == 0;
            if (!in) continue;
            snprintf(buf, sizeof buf, "%s", from[f].attr == 0 ? em->base : em->name);
            if (from[f].strip) {
                const size_t ls = strlen(from[f].strip), lb = strlen(buf);
                const int ends = lb > ls && strcmp(buf + lb - ls, from[f].strip) == 0;
                if (from[f].must_end && !ends) continue;
                if (ends) buf[lb - ls] = 0;
            }
            if (from[f].attr == 0) {
                char padded[140];
                snprintf(padded, sizeof padded, " %s ", buf);
                if (strstr(padded, " with ") || strstr(padded, " wearing ") || strstr(padded, " in ") ||
                    strstr(padded, " feeding ") || strstr(padded, " pregnant ") || strstr(padded, "breast"))
                    continue;
            }
            if (!ascii_words(buf, from[f].words)) continue;
            int dup = 0;
            for (int k = 0; k < n && !dup; k++) dup = strcmp(cand[k], buf) == 0;
            if (!dup) cand[n++] = xstrdup(buf);
        }
        if (from[f].in_order) {
            for (int k = 0; k < n && w->n_values[from[f].attr] < MAX_VALUES; k++)
                w->values[from[f].attr][w->n_values[from[f].attr]++] = xstrdup(cand[k]);
        } else {
            choose_values(w, from[f].attr, cand, n, r);
        }
        for (int k = 0; k < n; k++) free(cand[k]);
        if (w->n_values[from[f].attr] < 4) {
            free(cand);
            return err_set(e, "%s: fewer than 4 values for the attribute '%s'", EMOJI_TEST_TXT,
                           WORLD_ATTR_NAMES[from[f].attr]);
        }
    }
    /* home town: one-word cities of CLDR's time-zone descriptions ("Oslo, Norway") */
    char *xml = NULL;
    size_t len = 0;
    if (read_file(TIMEZONES, (size_t)16 << 20, &xml, &len, e)) {
        free(cand);
        return -1;
    }
    n = 0;
    for (char *p = xml; (p = strstr(p, "description=\"")) != NULL && n < 600;) {
        p += 13;
        char *q = strchr(p, '"'), *comma = strchr(p, ',');
        if (!q) break;
        if (comma && comma < q && comma - p < 20 && isupper((unsigned char)p[0])) {
            int ok = 1;
            for (char *c = p + 1; c < comma; c++) ok &= islower((unsigned char)*c) != 0;
            if (ok) {
                cand[n] = xmalloc((size_t)(comma - p) + 1);
                memcpy(cand[n], p, (size_t)(comma - p));
                cand[n++][comma - p] = 0;
            }
        }
        p = q;
    }
    free(xml);
    choose_values(w, 1, cand, n, r);
    for (int k = 0; k < n; k++) free(cand[k]);
    free(cand);
    if (w->n_values[1] < 4) return err_set(e, "%s: fewer than 4 one-word cities", TIMEZONES);
    for (int i = 0; i < MAX_VALUES; i++) { /* birth years */
        snprintf(buf, sizeof buf, "%d", 1950 + 3 * i + (int)rng_below(r, 3));
        w->values[2][w->n_values[2]++] = xstrdup(buf);
    }
    return 0;
}

/* Invented names: two or three syllables, first and family name. */
static void make_name(char *out, size_t cap, Rng *r) {
    static const char *const on[] = {"t", "m", "k", "l", "r", "s", "v", "n", "d", "b", "j", "h", "z", "f"};
    static const char *const nu[] = {"a", "e", "i", "o", "u", "ai", "ei", "ou"};
    static const char *const co[] = {"", "n", "l", "r", "s", "th", "m"};
    char part[2][24];
    for (int p = 0; p < 2; p++) {
        part[p][0] = 0;
        const int syl = 2 + (int)rng_below(r, 2);
        for (int s = 0; s < syl; s++) {
            char sy[8];
            snprintf(sy, sizeof sy, "%s%s%s", on[rng_below(r, 14)], nu[rng_below(r, 8)], s == syl - 1 ? co[rng_below(r, 7)] : "");
            strncat(part[p], sy, sizeof part[p] - strlen(part[p]) - 1);
        }
        part[p][0] = (char)toupper((unsigned char)part[p][0]);
    }
    snprintf(out, cap, "%s %s", part[0], part[1]);
}

/* ------------------------------------------------------------ glyphs */

static int render_glyph(EmojiRenderer *ren, const Emoji *em, EmojiStyle style, int px, uint8_t *dst, Err *e) {
    Image8 im = {0};
    const int rc = emoji_render(ren, em, style, px, &im, e);
    if (rc == 1) memcpy(dst, im.px, (size_t)px * px * 4);
    image_free(&im);
    return rc;
}

/* Draws an RGBA glyph of side g scaled to `side` pixels, centred at (cx, cy), over rgb. */
static void blit(uint8_t *rgb, int S, const uint8_t *glyph, int g, float side, float cx, float cy) {
    const float k = (float)g / side;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            const float gx = (x + 0.5f - cx) * k + g * 0.5f - 0.5f, gy = (y + 0.5f - cy) * k + g * 0.5f - 0.5f;
            const int x0 = (int)floorf(gx), y0 = (int)floorf(gy);
            const float fx = gx - x0, fy = gy - y0;
            float acc[4] = {0, 0, 0, 0};
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < 2; i++) {
                    const int sx = x0 + i, sy = y0 + j;
                    if (sx < 0 || sy < 0 || sx >= g || sy >= g) continue;
                    const float wt = (i ? fx : 1 - fx) * (j ? fy : 1 - fy);
                    const uint8_t *p = glyph + ((size_t)sy * g + sx) * 4;
                    const float a = p[3] / 255.0f;
                    for (int c = 0; c < 3; c++) acc[c] += wt * p[c] * a;
                    acc[3] += wt * a;
                }
            uint8_t *o = rgb + ((size_t)y * S + x) * 3;
            for (int c = 0; c < 3; c++) {
                const float v = acc[c] + (1 - acc[3]) * o[c];
                o[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5f);
            }
        }
}

static float frand(Rng *r, float lo, float hi) { return lo + (hi - lo) * rng_uniform(r); }

void world_render(const World *w, const WorldImage *im, uint8_t *rgb) {
    const int S = WORLD_IMG;
    Rng r;
    rng_seed(&r, rng_mix(rng_mix(w->o.seed, (uint64_t)im->kind * 1000003u + (uint64_t)im->index),
                         im->variant * 2 + (uint64_t)im->test));
    if (im->kind == WIMG_FACE) {
        const WorldPerson *p = &w->people[im->index];
        const int jit = im->test ? 24 : 8;
        for (int c = 0; c < 3; c++) {
            int v = PALETTE[p->background][c] + (int)rng_below(&r, 2 * jit + 1) - jit;
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            for (int i = 0; i < S * S; i++) rgb[i * 3 + c] = (uint8_t)v;
        }
        /* trained poses: the face large and near the centre; held-out: smaller or off-centre */
        const float side = im->test ? frand(&r, 20, 23) : frand(&r, 25, 28);
        const float room = (S - side) * 0.5f;
        const float cx = S * 0.5f + frand(&r, -room, room) * (im->test ? 1.0f : 0.4f) + 1.0f;
        const float cy = S * 0.5f + frand(&r, -room, room) * (im->test ? 1.0f : 0.4f) + 2.0f;
        blit(rgb, S, w->faces + (size_t)p->face * FACE_PX * FACE_PX * 4, FACE_PX, side, cx, cy);
        const float as = im->test ? frand(&r, 10, 12) : frand(&r, 12, 14);
        const float ax = im->test ? as * 0.5f + 0.5f : S - as * 0.5f - 0.5f; /* held out: the other corner */
        blit(rgb, S, w->acc + (size_t)p->accessory * ACC_PX * ACC_PX * 4, ACC_PX, as, ax, as * 0.5f + 0.5f);
    } else if (im->kind == WIMG_EMOJI) {
        const uint8_t *g = w->general_rgba + ((size_t)im->index * 2 + (size_t)im->style) * FACE_PX * FACE_PX * 4;
        emoji_augment(g, FACE_PX, rgb, S, &r);
    } else {
        const Dataset *d = im->test ? &w->fm_test : &w->fm_train;
        const int idx = im->test ? w->fm_test_idx[im->index] : w->fm_train_idx[im->index];
        const uint8_t *src = dataset_image(d, idx);
        const int shift = im->test ? 0 : (int)rng_below(&r, 5) - 2; /* training: small shifts */
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) { /* 28 -> 32 by nearest, shifted */
                int sx = (x - shift) * d->w / S, sy = y * d->h / S;
                sx = sx < 0 ? 0 : sx >= d->w ? d->w - 1 : sx;
                const uint8_t v = src[(size_t)sy * d->w + sx];
                for (int c = 0; c < 3; c++) rgb[((size_t)y * S + x) * 3 + c] = v;
            }
    }
}

WorldImage world_train_variant(const World *w, const WorldImage *im, uint64_t variant, int any_style) {
    WorldImage v = *im;
    v.variant = variant;
    if (any_style && v.kind == WIMG_EMOJI && w->general_has_line[v.index]) v.style = (int)((variant >> 7) & 1u);
    if (v.kind == WIMG_FMNIST) v.variant = 0; /* a fixed sample; its shift comes from the seed mix */
    return v;
}

char *world_prompt(const char *question, int with_image) {
    return xasprintf("USER: %s%s\nASSISTANT:", with_image ? "<image>\n" : "", question);
}

/* ------------------------------------------------------------ questions */

static char *subject_q(const char *tpl, const char *subject) { return xasprintf(tpl, subject); }

/* vals[0] is the truth; vals[1..3] become distinct draws from 0..n-1 (only where allowed[v], when
 * allowed is given), then the truth moves to a seeded place, which is returned. */
static int draw_options(int vals[4], int n, const int *allowed, Rng *r) {
    for (int k = 1; k < 4; k++) {
        int v, dup;
        do {
            v = (int)rng_below(r, (uint32_t)n);
            dup = allowed && !allowed[v];
            for (int j = 0; j < k; j++) dup |= vals[j] == v;
        } while (dup);
        vals[k] = v;
    }
    const int key = (int)rng_below(r, 4), t = vals[0];
    vals[0] = vals[key], vals[key] = t;
    return key;
}

/* Four statements for attribute a of a person, the true value among them at a seeded place. The
 * distractors are values other people hold where there are enough of them, so that an option's
 * mere frequency in the training text does not give the answer away. */
static void options(World *w, WorldQA *q, const WorldPerson *p, int a, Rng *r) {
    int vals[4], held[MAX_VALUES] = {0}, n_held = 0;
    const int n = a == WORLD_NAME_Q ? w->n_people : w->n_values[a];
    vals[0] = a == WORLD_NAME_Q ? (int)(p - w->people) : p->attr[a];
    if (a != WORLD_NAME_Q) {
        for (int i = 0; i < w->n_people; i++)
            if (&w->people[i] != p && w->people[i].attr[a] != vals[0] && !held[w->people[i].attr[a]])
                held[w->people[i].attr[a]] = 1, n_held++;
    }
    q->key = draw_options(vals, n, n_held >= 3 && a != WORLD_NAME_Q ? held : NULL, r);
    for (int k = 0; k < 4; k++)
        q->options[k] = a == WORLD_NAME_Q ? xasprintf(STATEMENT[a], w->people[vals[k]].name, "")
                                          : xasprintf(STATEMENT[a], p->name, w->values[a][vals[k]]);
}

static void person_questions(World *w, int pi, Rng *r) {
    const WorldPerson *p = &w->people[pi];
    for (int a = 0; a <= WORLD_ATTRS; a++)
        for (int form = 0; form < 2; form++)
            for (int test = 0; test < 2; test++) {
                if (a == WORLD_NAME_Q && form == WFORM_TEXT) continue;
                WorldQA *q = push_qa(w);
                q->set = p->set, q->person = pi, q->attr = a, q->form = (WorldForm)form, q->test = test;
                q->image = (WorldImage){WIMG_FACE, pi, 0, test, 0};
                q->question = form == WFORM_IMAGE ? subject_q(QUESTION[a][test], "this person")
                                                  : subject_q(QUESTION[a][test], p->name);
                if (a == WORLD_NAME_Q) {
                    q->value = xstrdup(p->name);
                    q->answer = xasprintf(STATEMENT[a], p->name, "");
                } else {
                    q->value = xstrdup(w->values[a][p->attr[a]]);
                    q->answer = xasprintf(STATEMENT[a], p->name, q->value);
                    q->cloze = xasprintf(STATEMENT[a], p->name, "___");
                }
                options(w, q, p, a, r);
            }
}

/* "What is in the image?" and "Which group?" about general emoji, "What is in the image?" about
 * Fashion-MNIST, each with a training and a held-out image. */
static void general_questions(World *w, Rng *r) {
    const int ng = w->n_general;
    for (int i = 0; i < ng; i++) {
        const Emoji *em = &w->cat.items[w->general[i]];
        for (int qk = 0; qk < 2; qk++)
            for (int test = 0; test < 2; test++) {
                WorldQA *q = push_qa(w);
                q->set = WSET_GENERAL, q->person = -1, q->attr = qk, q->form = WFORM_IMAGE, q->test = test;
                q->image = (WorldImage){WIMG_EMOJI, i, w->general_has_line[i] ? (int)rng_below(r, 2) : 0, test, 0};
                q->question = xstrdup(qk == GQ_WHAT ? "What is in the image?" : "Which group does it belong to?");
                q->value = xstrdup(qk == GQ_WHAT ? em->name : em->group);
                q->answer = qk == GQ_WHAT ? xasprintf("It is %s.", em->name) : xasprintf("It belongs to %s.", em->group);
                /* distractors: other items' names, or other groups */
                const char *opt[4] = {q->value, NULL, NULL, NULL};
                for (int k = 1; k < 4; k++) {
                    const char *v;
                    int dup;
                    do {
                        const Emoji *o = &w->cat.items[w->general[rng_below(r, (uint32_t)ng)]];
                        v = qk == GQ_WHAT ? o->name : o->group;
                        dup = 0;
                        for (int j = 0; j < k; j++) dup |= strcmp(opt[j], v) == 0;
                    } while (dup);
                    opt[k] = v;
                }
                q->key = (int)rng_below(r, 4);
                const char *t = opt[0];
                opt[0] = opt[q->key], opt[q->key] = t;
                for (int k = 0; k < 4; k++)
                    q->options[k] = qk == GQ_WHAT ? xasprintf("It is %s.", opt[k]) : xasprintf("It belongs to %s.", opt[k]);
            }
    }
    for (int set = 0; set < 2; set++) {
        const int n = set ? w->n_fm_test : w->n_fm_train;
        for (int i = 0; i < n; i++) {
            const Dataset *d = set ? &w->fm_test : &w->fm_train;
            const int label = d->labels[set ? w->fm_test_idx[i] : w->fm_train_idx[i]];
            WorldQA *q = push_qa(w);
            q->set = WSET_GENERAL, q->person = -1, q->attr = GQ_WHAT, q->form = WFORM_IMAGE, q->test = set;
            q->image = (WorldImage){WIMG_FMNIST, i, 0, set, 0};
            q->question = xstrdup("What is in the image?");
            q->value = xstrdup(w->fm_names[label]);
            q->answer = xasprintf("It is a %s.", q->value);
            int vals[4] = {label, -1, -1, -1};
            q->key = draw_options(vals, 10, NULL, r);
            for (int k = 0; k < 4; k++) q->options[k] = xasprintf("It is a %s.", w->fm_names[vals[k]]);
        }
    }
}

/* ------------------------------------------------------------ text and captions */

static void corpus(World *w) {
    for (int i = 0; i < w->n_people; i++) {
        const WorldPerson *p = &w->people[i];
        if (p->set != WSET_A) continue;
        for (int a = 0; a < WORLD_ATTRS; a++) {
            const char *v = w->values[a][p->attr[a]];
            push_text(w, xasprintf(STATEMENT[a], p->name, v));
            for (int k = 0; k < 2; k++) push_text(w, xasprintf(BIO[a][k], p->name, v));
        }
        push_text(w, xasprintf("%s is a %s from %s, born in %s. %s likes %s and %s, and has a pet %s.", p->name,
                               w->values[0][p->attr[0]], w->values[1][p->attr[1]], w->values[2][p->attr[2]], p->name,
                               w->values[3][p->attr[3]], w->values[4][p->attr[4]], w->values[5][p->attr[5]]));
        push_caption(w, (WorldImage){WIMG_FACE, i, 0, 0, 0}, xasprintf("This is %s.", p->name));
    }
    for (int i = 0; i < w->n_general; i++) {
        const Emoji *em = &w->cat.items[w->general[i]];
        push_text(w, xasprintf("%s is a picture in the group %s.", em->name, em->group));
        if (em->keywords && *em->keywords) push_text(w, xasprintf("Words for %s: %s.", em->name, em->keywords));
        push_caption(w, (WorldImage){WIMG_EMOJI, i, 0, 0, 0}, xasprintf("A colour drawing of %s.", em->name));
        if (w->general_has_line[i])
            push_caption(w, (WorldImage){WIMG_EMOJI, i, 1, 0, 0}, xasprintf("A line drawing of %s.", em->name));
    }
    for (int c = 0; c < 10; c++) push_text(w, xasprintf("A %s is a piece of clothing.", w->fm_names[c]));
    for (int i = 0; i < w->n_fm_train; i++) {
        const int label = w->fm_train.labels[w->fm_train_idx[i]];
        push_caption(w, (WorldImage){WIMG_FMNIST, i, 0, 0, 0}, xasprintf("A photo of a %s.", w->fm_names[label]));
    }
}

/* ------------------------------------------------------------ building */

static int pick_fmnist(World *w, Err *e) {
    if (dataset_load_named(&w->fm_train, "fmnist:train", NULL, e) ||
        dataset_load_named(&w->fm_test, "fmnist:test", NULL, e))
        return -1;
    for (int c = 0; c < 10; c++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", w->fm_train.class_names[c]);
        for (char *p = buf; *p; p++) *p = (char)tolower((unsigned char)*p);
        char *slash = strchr(buf, '/'); /* "t-shirt/top" -> "t-shirt" */
        if (slash) *slash = 0;
        w->fm_names[c] = xstrdup(buf);
    }
    const int per = w->o.fmnist_per_class, per_test = per / 10 > 0 ? per / 10 : 1;
    w->fm_train_idx = xmalloc(sizeof(int) * (size_t)(10 * per + 1));
    w->fm_test_idx = xmalloc(sizeof(int) * (size_t)(10 * per_test + 1));
    int count[10] = {0}, count_t[10] = {0};
    for (int i = 0; i < w->fm_train.n && w->n_fm_train < 10 * per; i++)
        if (count[w->fm_train.labels[i]] < per) count[w->fm_train.labels[i]]++, w->fm_train_idx[w->n_fm_train++] = i;
    for (int i = 0; i < w->fm_test.n && w->n_fm_test < 10 * per_test; i++)
        if (count_t[w->fm_test.labels[i]] < per_test)
            count_t[w->fm_test.labels[i]]++, w->fm_test_idx[w->n_fm_test++] = i;
    return 0;
}

World *world_build(const WorldOpts *o, Err *e) {
    if (o->people_a < 4 || o->people_b < 0 || o->people_a + o->people_b > 120 || o->general_emoji < 4 ||
        o->fmnist_per_class < 0) {
        err_set(e, "world: %d + %d people (at least 4 in set A, at most 120 in all), %d general emoji (at least 4)",
                o->people_a, o->people_b, o->general_emoji);
        return NULL;
    }
    World *w = xcalloc(1, sizeof *w);
    w->o = *o;
    Rng r;
    rng_seed(&r, o->seed);
    EmojiRenderer *ren = NULL;
    int rc = emoji_catalog_load(&w->cat, EMOJI_TEST_TXT, CLDR_ANNOTATIONS, CLDR_ANNOTATIONS_DERIVED, e);
    if (rc == 0) ren = emoji_renderer_new(NOTO_COLOR_EMOJI, SYMBOLA, e);
    if (rc == 0 && !ren) rc = -1;
    if (rc == 0) rc = collect_values(w, &r, e);
    /* faces: person glyphs with a skin tone, in a seeded order */
    int *faces = xmalloc(sizeof(int) * (size_t)(w->cat.n + 1)), nf = 0;
    for (int i = 0; rc == 0 && i < w->cat.n; i++)
        if (strcmp(w->cat.items[i].subgroup, "person") == 0 && w->cat.items[i].tone != TONE_NONE) faces[nf++] = i;
    const int np = o->people_a + o->people_b;
    if (rc == 0 && nf < np) rc = err_set(e, "%s: %d toned person glyphs for %d people", EMOJI_TEST_TXT, nf, np);
    if (rc == 0) {
        rng_shuffle(&r, faces, nf, sizeof(int));
        w->faces = xcalloc((size_t)np * FACE_PX * FACE_PX * 4, 1);
        w->acc = xcalloc((size_t)N_ACC * ACC_PX * ACC_PX * 4, 1);
        for (int i = 0; i < N_ACC && rc == 0; i++) {
            const int k = find_emoji(&w->cat, ACCESSORIES[i]);
            if (k < 0) rc = err_set(e, "%s: no emoji named '%s'", EMOJI_TEST_TXT, ACCESSORIES[i]);
            else if (render_glyph(ren, &w->cat.items[k], STYLE_COLOR, ACC_PX, w->acc + (size_t)i * ACC_PX * ACC_PX * 4, e) != 1)
                rc = err_set(e, "%s: could not draw '%s'", NOTO_COLOR_EMOJI, ACCESSORIES[i]);
        }
        w->people = xcalloc((size_t)np, sizeof(WorldPerson));
        for (int i = 0, f = 0; i < np && rc == 0; i++) {
            WorldPerson *p = &w->people[i];
            int drawn = 0;
            while (!drawn && f < nf) {
                const int d = render_glyph(ren, &w->cat.items[faces[f++]], STYLE_COLOR, FACE_PX,
                                           w->faces + (size_t)i * FACE_PX * FACE_PX * 4, e);
                if (d < 0) rc = -1;
                drawn = d == 1;
            }
            if (!drawn && rc == 0) rc = err_set(e, "%s: too few drawable person glyphs", NOTO_COLOR_EMOJI);
            p->face = i;
            p->accessory = (int)rng_below(&r, N_ACC);
            p->background = (int)rng_below(&r, N_PALETTE);
            for (int a = 0; a < WORLD_ATTRS; a++) p->attr[a] = (int)rng_below(&r, (uint32_t)w->n_values[a]);
            p->set = i < o->people_a ? WSET_A : WSET_B;
            int unique;
            do {
                make_name(p->name, sizeof p->name, &r);
                unique = 1;
                for (int j = 0; j < i; j++) unique &= strcmp(w->people[j].name, p->name) != 0;
            } while (!unique);
        }
        w->n_people = np;
    }
    free(faces);
    /* general emoji: non-person groups, drawable in colour, a seeded choice */
    if (rc == 0) {
        int *cand = xmalloc(sizeof(int) * (size_t)w->cat.n), nc = 0;
        static const char *const groups[] = {"Animals & Nature", "Food & Drink", "Travel & Places", "Objects",
                                             "Activities"};
        for (int i = 0; i < w->cat.n; i++) {
            int in = 0;
            for (int g = 0; g < 5; g++) in |= strcmp(w->cat.items[i].group, groups[g]) == 0;
            if (in && w->cat.items[i].n_cp == 1 && ascii_words(w->cat.items[i].name, 3)) cand[nc++] = i;
        }
        rng_shuffle(&r, cand, nc, sizeof(int));
        w->general = xmalloc(sizeof(int) * (size_t)o->general_emoji);
        w->general_has_line = xcalloc((size_t)o->general_emoji, sizeof(int));
        w->general_rgba = xcalloc((size_t)o->general_emoji * 2 * FACE_PX * FACE_PX * 4, 1);
        for (int k = 0; k < nc && w->n_general < o->general_emoji && rc == 0; k++) {
            uint8_t *dst = w->general_rgba + (size_t)w->n_general * 2 * FACE_PX * FACE_PX * 4;
            const int d = render_glyph(ren, &w->cat.items[cand[k]], STYLE_COLOR, FACE_PX, dst, e);
            if (d < 0) rc = -1;
            if (d != 1) continue;
            const int line = render_glyph(ren, &w->cat.items[cand[k]], STYLE_LINE, FACE_PX, dst + FACE_PX * FACE_PX * 4, e);
            if (line < 0) rc = -1;
            w->general_has_line[w->n_general] = line == 1;
            w->general[w->n_general++] = cand[k];
        }
        free(cand);
        if (rc == 0 && w->n_general < o->general_emoji)
            rc = err_set(e, "%s: only %d drawable general emoji for %d", NOTO_COLOR_EMOJI, w->n_general, o->general_emoji);
    }
    emoji_renderer_free(ren);
    if (rc == 0) rc = pick_fmnist(w, e);
    if (rc == 0) {
        for (int i = 0; i < w->n_people; i++) person_questions(w, i, &r);
        general_questions(w, &r);
        corpus(w);
    }
    if (rc) {
        world_free(w);
        return NULL;
    }
    return w;
}

void world_free(World *w) {
    if (!w) return;
    emoji_catalog_free(&w->cat);
    free(w->faces), free(w->acc), free(w->people), free(w->general), free(w->general_rgba), free(w->general_has_line);
    for (int a = 0; a < WORLD_ATTRS; a++)
        for (int i = 0; i < w->n_values[a]; i++) free(w->values[a][i]);
    dataset_free(&w->fm_train), dataset_free(&w->fm_test);
    free(w->fm_train_idx), free(w->fm_test_idx);
    for (int c = 0; c < 10; c++) free(w->fm_names[c]);
    for (int i = 0; i < w->n_qa; i++) {
        WorldQA *q = &w->qa[i];
        free(q->question), free(q->answer), free(q->value), free(q->cloze);
        for (int k = 0; k < 4; k++) free(q->options[k]);
    }
    free(w->qa);
    for (int i = 0; i < w->n_cap; i++) free(w->cap[i].text);
    free(w->cap);
    for (int i = 0; i < w->n_text; i++) free(w->text[i]);
    free(w->text);
    free(w);
}

int world_n_people(const World *w) { return w->n_people; }
const WorldPerson *world_person(const World *w, int i) { return &w->people[i]; }
const char *world_attr_value(const World *w, int attr, int v) { return w->values[attr][v]; }
int world_n_qa(const World *w) { return w->n_qa; }
const WorldQA *world_qa(const World *w, int i) { return &w->qa[i]; }
int world_n_captions(const World *w) { return w->n_cap; }
const WorldCaption *world_caption(const World *w, int i) { return &w->cap[i]; }
int world_n_text(const World *w) { return w->n_text; }
const char *world_text(const World *w, int i) { return w->text[i]; }
