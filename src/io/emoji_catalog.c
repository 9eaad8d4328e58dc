/* The emoji catalogue: emoji-test.txt for names, groups and sequences; CLDR
 * annotations (parsed with libxml2) for keywords; attributes from the names. */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strmap.h"
#include "io/emoji.h"
#include "io/text_clean.h"
#include "io/file_open.h"

const char *const EMOJI_GENDER_NAMES[4] = {"none", "man", "woman", "person"};
const char *const EMOJI_TONE_NAMES[6] = {"none", "light", "medium-light", "medium", "medium-dark", "dark"};

/* Removes every occurrence of word (as a whole word) from s, collapsing spaces. */
static void drop_word(char *s, const char *word) {
    size_t wl = strlen(word);
    for (char *p = s; (p = strstr(p, word));) {
        int start = p == s || p[-1] == ' ', end = p[wl] == 0 || p[wl] == ' ';
        if (!start || !end) {
            p += wl;
            continue;
        }
        memmove(p, p + wl + (p[wl] == ' '), strlen(p + wl + (p[wl] == ' ')) + 1);
    }
    size_t l = strlen(s);
    while (l && s[l - 1] == ' ') s[--l] = 0;
    while (s[0] == ' ') memmove(s, s + 1, strlen(s));
}

void emoji_parse_attributes(const char *name, EmojiGender *g, EmojiTone *t, char *base, size_t cap) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", name);
    *t = TONE_NONE;
    char *colon = strchr(buf, ':');
    if (colon) { /* "woman farmer: medium skin tone" */
        static const char *const tones[] = {"medium-light skin tone", "medium-dark skin tone", "light skin tone",
                                            "medium skin tone", "dark skin tone"};
        static const EmojiTone tv[] = {TONE_MEDIUM_LIGHT, TONE_MEDIUM_DARK, TONE_LIGHT, TONE_MEDIUM, TONE_DARK};
        for (int i = 0; i < 5 && *t == TONE_NONE; i++)
            if (strstr(colon, tones[i])) *t = tv[i];
        /* a tone qualifier is the whole suffix only for single-person emoji */
        if (*t != TONE_NONE && !strchr(colon + 1, ',')) *colon = 0;
    }
    *g = GENDER_NONE;
    static const char *const men[] = {"man", "men", "boy", "prince", "king", "gentleman"};
    static const char *const women[] = {"woman", "women", "girl", "princess", "queen", "lady"};
    static const char *const persons[] = {"person", "people", "child", "adult", "older person"};
    char padded[300];
    snprintf(padded, sizeof padded, " %s ", buf);
    for (size_t i = 0; i < sizeof women / sizeof *women && *g == GENDER_NONE; i++) {
        char w[32];
        snprintf(w, sizeof w, " %s ", women[i]);
        if (strstr(padded, w)) *g = GENDER_WOMAN;
    }
    for (size_t i = 0; i < sizeof men / sizeof *men && *g == GENDER_NONE; i++) {
        char w[32];
        snprintf(w, sizeof w, " %s ", men[i]);
        if (strstr(padded, w)) *g = GENDER_MAN;
    }
    for (size_t i = 0; i < sizeof persons / sizeof *persons && *g == GENDER_NONE; i++) {
        char w[32];
        snprintf(w, sizeof w, " %s ", persons[i]);
        if (strstr(padded, w)) *g = GENDER_PERSON;
    }
    /* the base: "woman farmer" -> "farmer"; "health worker" stays */
    drop_word(buf, "woman");
    drop_word(buf, "man");
    drop_word(buf, "person");
    snprintf(base, cap, "%s", buf[0] ? buf : name);
}

void emoji_catalog_free(EmojiCatalog *c) {
    for (int i = 0; i < c->n; i++) {
        Emoji *m = &c->items[i];
        free(m->name), free(m->group), free(m->subgroup), free(m->keywords), free(m->base);
    }
    free(c->items);
    memset(c, 0, sizeof *c);
}

/* cp -> keywords from a CLDR annotation file (the entries without type="tts"). */
static void load_keywords(const char *path, StrMap *index, char ***kw, int *n_kw) {
    xmlDocPtr doc = xmlReadFile(path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) return;
    xmlNodePtr root = xmlDocGetRootElement(doc);
    for (xmlNodePtr a = root ? root->children : NULL; a; a = a->next) {
        if (a->type != XML_ELEMENT_NODE || xmlStrcmp(a->name, (const xmlChar *)"annotations")) continue;
        for (xmlNodePtr n = a->children; n; n = n->next) {
            if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, (const xmlChar *)"annotation")) continue;
            xmlChar *cp = xmlGetProp(n, (const xmlChar *)"cp"), *type = xmlGetProp(n, (const xmlChar *)"type");
            xmlChar *text = xmlNodeGetContent(n);
            if (cp && text && !type) {
                int32_t slot;
                if (!strmap_get(index, (const char *)cp, strlen((const char *)cp), &slot)) {
                    slot = (*n_kw)++;
                    *kw = xrealloc(*kw, sizeof(char *) * (size_t)*n_kw);
                    (*kw)[slot] = xstrdup((const char *)text);
                    strmap_put(index, (const char *)cp, strlen((const char *)cp), slot);
                }
            }
            xmlFree(cp), xmlFree(type), xmlFree(text);
        }
    }
    xmlFreeDoc(doc);
}

/* CLDR keys drop the emoji presentation selector FE0F: "🧑‍⚕️" is annotated as "🧑‍⚕". */
static void key_without_fe0f(const Emoji *m, char *out, size_t cap) {
    size_t k = 0;
    for (int i = 0; i < m->n_cp && k + 4 < cap; i++)
        if (m->cp[i] != 0xFE0F) k += utf8_put(out + k, m->cp[i]);
    out[k] = 0;
}

int emoji_catalog_load(EmojiCatalog *c, const char *test_txt, const char *annotations, const char *derived, Err *e) {
    memset(c, 0, sizeof *c);
    FILE *f = fopen_regular(test_txt, e);
    if (!f) return err_prefix(e, "(Debian package unicode-data) ");
    char line[1024], group[128] = "", subgroup[128] = "";
    long lineno = 0;
    int cap = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (strncmp(line, "# group: ", 9) == 0) {
            snprintf(group, sizeof group, "%.*s", (int)strcspn(line + 9, "\r\n"), line + 9);
            continue;
        }
        if (strncmp(line, "# subgroup: ", 12) == 0) {
            snprintf(subgroup, sizeof subgroup, "%.*s", (int)strcspn(line + 12, "\r\n"), line + 12);
            continue;
        }
        if (line[0] == '#' || line[0] == '\n' || line[0] == '\r') continue;
        char *semi = strchr(line, ';'), *hash = strchr(line, '#');
        if (!semi || !hash || hash < semi) {
            rc = err_set(e, "%s:%ld: expected \"CODEPOINTS ; STATUS # EMOJI VERSION NAME\"", test_txt, lineno);
            break;
        }
        if (!strstr(semi, "fully-qualified")) continue;
        Emoji m = {0};
        char *p = line;
        while (p < semi) {
            char *end;
            unsigned long v = strtoul(p, &end, 16);
            if (end == p) break;
            if (m.n_cp == EMOJI_MAX_CP || v > 0x10FFFF) {
                rc = err_set(e, "%s:%ld: bad code point sequence", test_txt, lineno);
                break;
            }
            m.cp[m.n_cp++] = (uint32_t)v;
            p = end;
        }
        if (rc) break;
        if (m.n_cp == 0) {
            rc = err_set(e, "%s:%ld: no code points before ';'", test_txt, lineno);
            break;
        }
        /* "# 😀 E1.0 grinning face": the name follows the version token */
        char *ver = strstr(hash, " E");
        char *name = ver ? strchr(ver + 2, ' ') : NULL;
        if (!name) {
            rc = err_set(e, "%s:%ld: no name after the version", test_txt, lineno);
            break;
        }
        name++;
        name[strcspn(name, "\r\n")] = 0;
        size_t k = 0;
        for (int i = 0; i < m.n_cp; i++) k += utf8_put(m.utf8 + k, m.cp[i]);
        m.utf8[k] = 0;
        m.name = xstrdup(name);
        m.group = xstrdup(group);
        m.subgroup = xstrdup(subgroup);
        char base[256];
        emoji_parse_attributes(name, &m.gender, &m.tone, base, sizeof base);
        /* in the people subgroups a name without a gender word is the gender-neutral "person" form
         * ("health worker" is 🧑 + ⚕️) */
        if (m.gender == GENDER_NONE && (strcmp(subgroup, "person-role") == 0 || strcmp(subgroup, "person-activity") == 0 ||
                                        strcmp(subgroup, "person-sport") == 0))
            m.gender = GENDER_PERSON;
        m.base = xstrdup(base);
        if (c->n == cap) c->items = xrealloc(c->items, sizeof(Emoji) * (size_t)(cap = cap ? 2 * cap : 1024));
        c->items[c->n++] = m;
    }
    fclose(f);
    if (rc == 0 && c->n == 0) rc = err_set(e, "%s: no fully-qualified emoji", test_txt);
    if (rc) {
        emoji_catalog_free(c);
        return -1;
    }
    StrMap index;
    strmap_init(&index, 8192);
    char **kw = NULL;
    int n_kw = 0;
    if (annotations) load_keywords(annotations, &index, &kw, &n_kw);
    if (derived) load_keywords(derived, &index, &kw, &n_kw);
    for (int i = 0; i < c->n; i++) {
        char key[64];
        int32_t slot;
        key_without_fe0f(&c->items[i], key, sizeof key);
        if (strmap_get(&index, key, strlen(key), &slot) ||
            strmap_get(&index, c->items[i].utf8, strlen(c->items[i].utf8), &slot))
            c->items[i].keywords = xstrdup(kw[slot]);
        else
            c->items[i].keywords = xstrdup("");
    }
    for (int i = 0; i < n_kw; i++) free(kw[i]);
    free(kw);
    strmap_free(&index);
    return 0;
}
