/* Emoji-Domains: every fully-qualified emoji of Unicode's emoji-test.txt (Debian
 * unicode-data), with its group, subgroup, name, attributes parsed from the name
 * (gender, skin tone, profession) and its CLDR keywords (Debian unicode-cldr-core,
 * annotations/en.xml and annotationsDerived/en.xml), drawn in two real styles:
 *   colour    — Noto Color Emoji (CBDT bitmaps, FreeType FT_LOAD_COLOR), every sequence one glyph;
 *   line art  — Symbola outlines, only emoji it draws as exactly one glyph.
 * Sequences are shaped with HarfBuzz, so a ZWJ sequence is one picture. */
#ifndef FORGET_EMOJI_H
#define FORGET_EMOJI_H

#include <stdint.h>

#include "core/err.h"
#include "io/image.h"

#define EMOJI_TEST_TXT "/usr/share/unicode/emoji/emoji-test.txt"
#define CLDR_ANNOTATIONS "/usr/share/unicode/cldr/common/annotations/en.xml"
#define CLDR_ANNOTATIONS_DERIVED "/usr/share/unicode/cldr/common/annotationsDerived/en.xml"
#define NOTO_COLOR_EMOJI "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
#define SYMBOLA "/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf"

enum { EMOJI_MAX_CP = 12 };

typedef enum { GENDER_NONE, GENDER_MAN, GENDER_WOMAN, GENDER_PERSON } EmojiGender;
typedef enum { TONE_NONE, TONE_LIGHT, TONE_MEDIUM_LIGHT, TONE_MEDIUM, TONE_MEDIUM_DARK, TONE_DARK } EmojiTone;
extern const char *const EMOJI_GENDER_NAMES[4];
extern const char *const EMOJI_TONE_NAMES[6];

typedef struct {
    uint32_t cp[EMOJI_MAX_CP];
    int n_cp;
    char utf8[64];
    char *name;       /* "woman farmer: medium skin tone" */
    char *group;      /* "People & Body" */
    char *subgroup;   /* "person-role" */
    char *keywords;   /* CLDR: "farmer | gardener | medium skin tone | rancher | woman" (may be "") */
    EmojiGender gender;
    EmojiTone tone;
    char *base;       /* the name without gender and tone: "farmer", "health worker" */
} Emoji;

typedef struct {
    Emoji *items;
    int n;
} EmojiCatalog;

/* Parses emoji-test.txt (fully-qualified lines only) and attaches CLDR keywords when the
 * annotation files exist (keywords are "" otherwise). Errors name the file and line. */
int emoji_catalog_load(EmojiCatalog *c, const char *test_txt, const char *annotations, const char *derived, Err *e);
void emoji_catalog_free(EmojiCatalog *c);
/* Gender, tone and base profession from a name, as emoji-test.txt writes them. */
void emoji_parse_attributes(const char *name, EmojiGender *g, EmojiTone *t, char *base, size_t cap);

typedef enum { STYLE_COLOR = 0, STYLE_LINE = 1 } EmojiStyle;
extern const char *const EMOJI_STYLE_NAMES[2];

typedef struct EmojiRenderer EmojiRenderer;
EmojiRenderer *emoji_renderer_new(const char *color_font, const char *line_font, Err *e);
void emoji_renderer_free(EmojiRenderer *r);
/* Draws one emoji as size x size RGBA (transparent background), centred and scaled
 * to fit. Returns 1 when drawn, 0 when the style cannot draw it as a single glyph, -1 on error. */
int emoji_render(EmojiRenderer *r, const Emoji *em, EmojiStyle style, int size, Image8 *out, Err *e);

#endif
