/* Text cleaning before CLIP's pre-tokenizer, with Python's exact semantics:
 * html.unescape (twice), str.strip, re.sub(r'\s+', ' '), str.lower. Text is
 * handled as code points; ICU does the lower-casing (full case mapping and the
 * final-sigma rule, like Python's str.lower). */
#include "io/text_clean.h"

#include <stdlib.h>
#include <string.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "core/err.h"

typedef struct {
    const char *name;
    const char *value;
    int value_len;
} HtmlEntity;
#include "io/html_entities.inc"

/* ---------------------------------------------------------- code points */

typedef struct {
    uint32_t *cp;
    size_t n, cap;
} CpBuf;

static void cp_push(CpBuf *b, uint32_t c) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->cp = xrealloc(b->cp, b->cap * sizeof(uint32_t));
    }
    b->cp[b->n++] = c;
}

/* Strict UTF-8 decoding; each invalid byte becomes U+FFFD (as Python's errors="replace" would). */
static void utf8_decode(CpBuf *out, const char *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s, *end = p + len;
    while (p < end) {
        uint32_t c = *p;
        if (c < 0x80) {
            cp_push(out, c);
            p++;
            continue;
        }
        int n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0 || end - p <= n) {
            cp_push(out, 0xFFFD);
            p++;
            continue;
        }
        c &= n == 1 ? 0x1f : n == 2 ? 0x0f : 0x07;
        int ok = 1;
        for (int k = 1; k <= n; k++) {
            if ((p[k] & 0xc0) != 0x80) ok = 0;
            else c = (c << 6) | (p[k] & 0x3f);
        }
        static const uint32_t min_of[4] = {0, 0x80, 0x800, 0x10000};
        if (!ok || c < min_of[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
            cp_push(out, 0xFFFD);
            p++;
            continue;
        }
        cp_push(out, c);
        p += n + 1;
    }
}

size_t utf8_put(char *dst, uint32_t c) {
    if (c < 0x80) {
        dst[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        dst[0] = (char)(0xc0 | c >> 6), dst[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        dst[0] = (char)(0xe0 | c >> 12), dst[1] = (char)(0x80 | ((c >> 6) & 0x3f)), dst[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    dst[0] = (char)(0xf0 | c >> 18), dst[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    dst[2] = (char)(0x80 | ((c >> 6) & 0x3f)), dst[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* ------------------------------------------------------------ html.unescape */

static const HtmlEntity *entity_find(const char *name, size_t len) {
    size_t lo = 0, hi = sizeof html5_entities / sizeof *html5_entities;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *k = html5_entities[mid].name;
        size_t kl = strlen(k);
        int c = memcmp(k, name, kl < len ? kl : len);
        if (c == 0) c = (kl > len) - (kl < len);
        if (c == 0) return &html5_entities[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static void push_utf8(CpBuf *out, const char *s, int len) { utf8_decode(out, s, (size_t)len); }

static int is_hex(uint32_t c) { return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'f'); }

static void numeric_ref(CpBuf *out, uint32_t num) {
    for (size_t i = 0; i < sizeof html_invalid_charrefs / sizeof *html_invalid_charrefs; i++)
        if (html_invalid_charrefs[i].code == num) {
            cp_push(out, html_invalid_charrefs[i].repl);
            return;
        }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        cp_push(out, 0xFFFD);
        return;
    }
    for (size_t i = 0; i < sizeof html_invalid_codepoints / sizeof *html_invalid_codepoints; i++)
        if (html_invalid_codepoints[i] == num) return;
    cp_push(out, num);
}

/* Python's html.unescape: the pattern
 *   &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
 * replaced left to right; named references fall back to their longest known prefix. */
static void html_unescape(CpBuf *out, const uint32_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] != '&') {
            cp_push(out, s[i++]);
            continue;
        }
        size_t j = i + 1;
        if (j < n && s[j] == '#') {
            size_t k = j + 1;
            int hex = 0;
            if (k < n && s[k] >= '0' && s[k] <= '9') {
                hex = 0;
            } else if (k + 1 < n && (s[k] == 'x' || s[k] == 'X') && is_hex(s[k + 1])) {
                hex = 1;
                k++;
            } else {
                cp_push(out, s[i++]); /* '&' then "#..." stays literal */
                continue;
            }
            uint64_t num = 0;
            while (k < n && (hex ? is_hex(s[k]) : (s[k] >= '0' && s[k] <= '9'))) {
                uint32_t d = s[k] <= '9' ? s[k] - '0' : (s[k] | 32) - 'a' + 10;
                num = num * (hex ? 16 : 10) + d;
                if (num > 0x110000) num = 0x110000; /* saturate: anything past 0x10FFFF is U+FFFD */
                k++;
            }
            if (k < n && s[k] == ';') k++;
            numeric_ref(out, (uint32_t)num);
            i = k;
            continue;
        }
        size_t k = j;
        while (k < n && k - j < 32 && s[k] != '\t' && s[k] != '\n' && s[k] != '\f' && s[k] != ' ' && s[k] != '<' &&
               s[k] != '&' && s[k] != '#' && s[k] != ';')
            k++;
        if (k == j) {
            cp_push(out, s[i++]);
            continue;
        }
        if (k < n && s[k] == ';') k++;
        /* the matched name (with its ';') as UTF-8, then the longest known prefix of >= 2 chars */
        size_t len = k - j;
        char *name = xmalloc(len * 4 + 1);
        size_t *byte_at = xmalloc((len + 1) * sizeof(size_t));
        size_t bl = 0;
        for (size_t q = 0; q < len; q++) {
            byte_at[q] = bl;
            bl += utf8_put(name + bl, s[j + q]);
        }
        byte_at[len] = bl;
        const HtmlEntity *hit = entity_find(name, bl);
        size_t used = len;
        for (size_t x = len - 1; !hit && x >= 2; x--) {
            hit = entity_find(name, byte_at[x]);
            if (hit) used = x;
        }
        free(name);
        free(byte_at);
        if (hit) {
            push_utf8(out, hit->value, hit->value_len);
            for (size_t q = j + used; q < k; q++) cp_push(out, s[q]);
        } else {
            for (size_t q = i; q < k; q++) cp_push(out, s[q]);
        }
        i = k;
    }
}

/* ------------------------------------------------------------- whitespace */

/* Python's str.isspace(), which `re`'s \s and str.strip() use. */
static int py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* strip, collapse runs of whitespace to one space, strip again (strip() of the
 * collapsed text can only remove a single leading or trailing space). */
static void clean_whitespace(CpBuf *out, const uint32_t *s, size_t n) {
    size_t a = 0, b = n;
    while (a < b && py_isspace(s[a])) a++;
    while (b > a && py_isspace(s[b - 1])) b--;
    for (size_t i = a; i < b;) {
        if (py_isspace(s[i])) {
            cp_push(out, ' ');
            while (i < b && py_isspace(s[i])) i++;
        } else {
            cp_push(out, s[i++]);
        }
    }
}

/* ------------------------------------------------------------------ lower */

static void to_utf16(const uint32_t *s, size_t n, UChar **out, int32_t *len) {
    *out = xmalloc((2 * n + 1) * sizeof(UChar));
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c >= 0x10000) {
            c -= 0x10000;
            (*out)[k++] = (UChar)(0xD800 + (c >> 10));
            (*out)[k++] = (UChar)(0xDC00 + (c & 0x3ff));
        } else {
            (*out)[k++] = (UChar)c;
        }
    }
    *len = k;
}

static char *lower_to_utf8(const uint32_t *s, size_t n) {
    UChar *u16;
    int32_t ul;
    to_utf16(s, n, &u16, &ul);
    /* Full lower-casing can grow the text (İ -> i̇): ask for the size first. */
    UErrorCode st = U_ZERO_ERROR;
    int32_t need = u_strToLower(NULL, 0, u16, ul, "", &st);
    UChar *low = xmalloc(((size_t)need + 1) * sizeof(UChar));
    st = U_ZERO_ERROR;
    u_strToLower(low, need + 1, u16, ul, "", &st);
    free(u16);
    st = U_ZERO_ERROR;
    int32_t bytes = 0;
    u_strToUTF8(NULL, 0, &bytes, low, need, &st);
    char *out = xmalloc((size_t)bytes + 1);
    st = U_ZERO_ERROR;
    u_strToUTF8(out, bytes + 1, NULL, low, need, &st);
    out[bytes] = 0;
    free(low);
    return out;
}

/* ------------------------------------------------------------- ftfy, in part */

/* The fixes of ftfy.fix_text's defaults that can apply to text that is not mojibake, in
 * ftfy's order: fix_c1_controls (C1 controls read as Windows-1252), fix_latin_ligatures,
 * fix_character_width (NFKC of the fullwidth/halfwidth forms and the ideographic space),
 * uncurl_quotes, fix_line_breaks, NFC. Its HTML step (one more unescape when the text has no
 * '<') is applied by the caller. Not covered: mojibake repair (fix_encoding and friends),
 * terminal escapes, surrogates. */
static const struct {
    uint32_t cp;
    const char *repl;
} LIGATURES[] = {
    {0x0132, "IJ"}, {0x0133, "ij"}, {0x013F, "L\xc2\xb7"}, {0x0140, "l\xc2\xb7"}, {0x0149, "\xca\xbcn"},
    {0x01C4, "D\xc5\xbd"}, {0x01C5, "D\xc5\xbe"}, {0x01C6, "d\xc5\xbe"}, {0x01C7, "LJ"}, {0x01C8, "Lj"},
    {0x01C9, "lj"}, {0x01CA, "NJ"}, {0x01CB, "Nj"}, {0x01CC, "nj"}, {0xFB00, "ff"}, {0xFB01, "fi"},
    {0xFB02, "fl"}, {0xFB03, "ffi"}, {0xFB04, "ffl"}, {0xFB05, "\xc5\xbft"}, {0xFB06, "st"},
};

static void from_utf16(CpBuf *out, const UChar *u, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c >= 0xD800 && c < 0xDC00 && i + 1 < n && u[i + 1] >= 0xDC00 && u[i + 1] < 0xE000)
            c = 0x10000 + ((c - 0xD800) << 10) + (u[++i] - 0xDC00);
        cp_push(out, c);
    }
}

/* Normalises s[0..n) with an ICU normaliser, appending to out. */
static void normalize(CpBuf *out, const uint32_t *s, size_t n, const UNormalizer2 *norm) {
    UChar *u;
    int32_t ul;
    to_utf16(s, n, &u, &ul);
    UErrorCode st = U_ZERO_ERROR;
    int32_t need = unorm2_normalize(norm, u, ul, NULL, 0, &st);
    UChar *v = xmalloc(((size_t)need + 1) * sizeof(UChar));
    st = U_ZERO_ERROR;
    unorm2_normalize(norm, u, ul, v, need + 1, &st);
    if (U_SUCCESS(st)) from_utf16(out, v, need);
    else for (size_t i = 0; i < n; i++) cp_push(out, s[i]);
    free(u);
    free(v);
}

static void ftfy_fixes(CpBuf *out, const uint32_t *s, size_t n) {
    static const uint16_t cp1252[32] = {0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
                                        0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
                                        0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178};
    UErrorCode st = U_ZERO_ERROR;
    const UNormalizer2 *nfkc = unorm2_getNFKCInstance(&st), *nfc = unorm2_getNFCInstance(&st);
    CpBuf a = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c >= 0x80 && c <= 0x9F) c = cp1252[c - 0x80]; /* fix_c1_controls */
        int lig = 0;                                       /* fix_latin_ligatures */
        for (size_t k = 0; k < sizeof LIGATURES / sizeof *LIGATURES && !lig; k++)
            if (LIGATURES[k].cp == c) {
                utf8_decode(&a, LIGATURES[k].repl, strlen(LIGATURES[k].repl));
                lig = 1;
            }
        if (lig) continue;
        if ((c >= 0xFF01 && c <= 0xFFEE) || c == 0x3000) { /* fix_character_width */
            normalize(&a, &c, 1, nfkc);
            continue;
        }
        cp_push(&a, c);
    }
    CpBuf b = {0}; /* on the result of those: uncurl_quotes, then fix_line_breaks (\r\n, \r, U+2028, U+2029, U+0085 -> \n) */
    for (size_t i = 0; i < a.n; i++) {
        uint32_t c = a.cp[i];
        if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        if (c == '\r' && i + 1 < a.n && a.cp[i + 1] == '\n') continue;
        cp_push(&b, (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) ? '\n' : c);
    }
    if (U_SUCCESS(st)) normalize(out, b.cp, b.n, nfc);
    else for (size_t i = 0; i < b.n; i++) cp_push(out, b.cp[i]);
    free(a.cp);
    free(b.cp);
}

char *text_clean_for_bpe(const char *text, int ftfy) {
    CpBuf a = {0}, b = {0}, c = {0};
    utf8_decode(&a, text, strlen(text));
    if (ftfy) {
        ftfy_fixes(&c, a.cp, a.n);
        int has_lt = 0;
        for (size_t i = 0; i < c.n; i++) has_lt |= c.cp[i] == '<';
        a.n = 0;
        if (has_lt) { /* ftfy leaves entities alone in text that may be HTML */
            for (size_t i = 0; i < c.n; i++) cp_push(&a, c.cp[i]);
        } else {
            html_unescape(&a, c.cp, c.n);
        }
        c.n = 0;
    }
    html_unescape(&b, a.cp, a.n);
    a.n = 0;
    html_unescape(&a, b.cp, b.n);
    clean_whitespace(&c, a.cp, a.n);
    char *out = lower_to_utf8(c.cp, c.n);
    free(a.cp);
    free(b.cp);
    free(c.cp);
    return out;
}
