#include "io/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/text_clean.h"
#include "io/file_open.h"

extern const unsigned char bpe_vocab_gz[], bpe_vocab_gz_end[];

/* merges = lines[1 : 49152 - 256 - 2 + 1] of the vocabulary file */
enum { N_MERGES = 49152 - 256 - 2 };

static const char *PRETOKEN =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

static int gunzip(const unsigned char *src, size_t n, char **out, size_t *out_len, Err *e) {
    z_stream z = {0};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return err_set(e, "zlib init failed");
    size_t cap = n * 4 + 1024, len = 0;
    char *buf = xmalloc(cap);
    z.next_in = (unsigned char *)src;
    z.avail_in = (uInt)n;
    int rc;
    do {
        if (cap - len < 65536) buf = xrealloc(buf, cap *= 2);
        z.next_out = (unsigned char *)buf + len;
        z.avail_out = (uInt)(cap - len - 1);
        rc = inflate(&z, Z_NO_FLUSH);
        len = cap - 1 - z.avail_out;
    } while (rc == Z_OK);
    inflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return err_set(e, "corrupt gzip data at compressed byte %lu", (unsigned long)z.total_in);
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return 0;
}

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest map to 256+n. */
static void bytes_to_unicode(uint32_t order_cp[256], uint8_t order_byte[256]) {
    int n = 0, k = 0;
    int printable[256] = {0};
    for (int b = '!'; b <= '~'; b++) printable[b] = 1;
    for (int b = 0xA1; b <= 0xAC; b++) printable[b] = 1;
    for (int b = 0xAE; b <= 0xFF; b++) printable[b] = 1;
    for (int b = 0; b < 256; b++)
        if (printable[b]) order_byte[k] = (uint8_t)b, order_cp[k++] = (uint32_t)b;
    for (int b = 0; b < 256; b++)
        if (!printable[b]) order_byte[k] = (uint8_t)b, order_cp[k++] = 256u + (uint32_t)n++;
}

static int build(Tokenizer *t, const unsigned char *gz, size_t gz_len, const char *what, Err *e) {
    memset(t, 0, sizeof *t);
    char *text = NULL;
    size_t len = 0;
    if (gunzip(gz, gz_len, &text, &len, e) != 0) return err_prefix(e, "%s: ", what);
    strmap_init(&t->encoder, CLIP_VOCAB);
    strmap_init(&t->ranks, N_MERGES);
    uint32_t cp[256];
    uint8_t byte[256];
    bytes_to_unicode(cp, byte);
    int id = 0;
    char sym[16];
    for (int i = 0; i < 256; i++) {
        int l = (int)utf8_put(sym, cp[i]);
        memcpy(t->byte_utf8[byte[i]], sym, (size_t)l);
        t->byte_len[byte[i]] = (uint8_t)l;
        strmap_put(&t->encoder, sym, (size_t)l, id++);
    }
    for (int i = 0; i < 256; i++) {
        int l = (int)utf8_put(sym, cp[i]);
        memcpy(sym + l, "</w>", 4);
        strmap_put(&t->encoder, sym, (size_t)l + 4, id++);
    }
    /* skip the "#version" line, then one merge "left right" per line */
    char *line = strchr(text, '\n');
    int merges = 0, lineno = 1;
    while (line && merges < N_MERGES) {
        line++;
        lineno++;
        char *end = strchr(line, '\n');
        size_t ll = end ? (size_t)(end - line) : strlen(line);
        char *space = memchr(line, ' ', ll);
        if (!space || space == line || space + 1 == line + ll || memchr(space + 1, ' ', ll - (size_t)(space + 1 - line))) {
            free(text);
            tokenizer_free(t);
            return err_set(e, "%s: line %d: expected a merge \"left right\"", what, lineno);
        }
        strmap_put(&t->ranks, line, ll, merges);
        /* the merged token: left and right joined without the space */
        char *joined = xmalloc(ll);
        size_t lpart = (size_t)(space - line);
        memcpy(joined, line, lpart);
        memcpy(joined + lpart, space + 1, ll - lpart - 1);
        strmap_put(&t->encoder, joined, ll - 1, id++);
        free(joined);
        merges++;
        line = end;
    }
    free(text);
    if (merges != N_MERGES) {
        tokenizer_free(t);
        return err_set(e, "%s: %d merges, expected %d", what, merges, N_MERGES);
    }
    t->ftfy = 1;
    strmap_put(&t->encoder, "<|startoftext|>", 15, id++);
    strmap_put(&t->encoder, "<|endoftext|>", 13, id++);
    int errcode;
    PCRE2_SIZE erroff;
    t->re = pcre2_compile((PCRE2_SPTR)PRETOKEN, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS,
                          &errcode, &erroff, NULL);
    if (!t->re) {
        tokenizer_free(t);
        return err_set(e, "pre-token regex failed to compile at %zu (code %d)", (size_t)erroff, errcode);
    }
    return 0;
}

int tokenizer_init(Tokenizer *t, Err *e) {
    return build(t, bpe_vocab_gz, (size_t)(bpe_vocab_gz_end - bpe_vocab_gz), "embedded BPE vocabulary", e);
}

int tokenizer_init_file(Tokenizer *t, const char *path, Err *e) {
    char *buf;
    size_t n;
    if (read_file(path, (size_t)1 << 30, &buf, &n, e) != 0) return -1;
    int rc = build(t, (const unsigned char *)buf, n, path, e);
    free(buf);
    return rc;
}

void tokenizer_free(Tokenizer *t) {
    strmap_free(&t->encoder);
    strmap_free(&t->ranks);
    if (t->re) pcre2_code_free(t->re);
    t->re = NULL;
}

char *tokenizer_clean_text(const char *text) { return text_clean_for_bpe(text, 1); }

/* ------------------------------------------------------------------ BPE */

typedef struct {
    int32_t *v;
    int n, cap;
} IdBuf;

static void id_push(IdBuf *b, int32_t x) {
    if (b->n == b->cap) b->v = xrealloc(b->v, (size_t)(b->cap = b->cap ? 2 * b->cap : 64) * sizeof(int32_t));
    b->v[b->n++] = x;
}

/* BPE on one word in O(n log n): symbols are spans of the mapped word in a linked list, and
 * every adjacent pair with a rank waits in a min-heap ordered by (rank, position). CLIP's
 * reference merges, pass after pass, every non-overlapping occurrence of the lowest-ranked pair
 * from left to right; popping all entries of the lowest rank in position order and skipping
 * those a merge made stale does exactly that, since a merge can never create another
 * occurrence of the pair being merged (the joined symbol is longer than either part). The
 * pairs a pass creates enter the heap only after the pass, as in the reference's next pass. */
typedef struct {
    int start, len, prev, next; /* prev/next: neighbouring symbols, -1 at the ends */
} Sym;

typedef struct {
    int rank, left, left_len, right_len; /* stale once either side has changed */
} Cand;

typedef struct {
    Cand *v;
    int n, cap;
} Heap;

static int cand_less(Cand a, Cand b) { return a.rank != b.rank ? a.rank < b.rank : a.left < b.left; }

static void heap_push(Heap *h, Cand c) {
    if (h->n == h->cap) h->v = xrealloc(h->v, sizeof(Cand) * (size_t)(h->cap = h->cap ? 2 * h->cap : 64));
    int i = h->n++;
    while (i > 0 && cand_less(c, h->v[(i - 1) / 2])) h->v[i] = h->v[(i - 1) / 2], i = (i - 1) / 2;
    h->v[i] = c;
}

static Cand heap_pop(Heap *h) {
    Cand top = h->v[0], last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_less(h->v[c + 1], h->v[c])) c++;
        if (!cand_less(h->v[c], last)) break;
        h->v[i] = h->v[c], i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

static int pair_rank(const Tokenizer *t, const char *w, const Sym *a, const Sym *b, char *tmp) {
    memcpy(tmp, w + a->start, (size_t)a->len);
    tmp[a->len] = ' ';
    memcpy(tmp + a->len + 1, w + b->start, (size_t)b->len);
    int32_t r;
    return strmap_get(&t->ranks, tmp, (size_t)(a->len + b->len + 1), &r) ? r : -1;
}

/* The pair starting at symbol i, when it has a rank. */
static void push_pair(const Tokenizer *t, const char *w, const Sym *sym, int i, Heap *h, char *tmp) {
    if (i < 0 || sym[i].next < 0) return;
    const Sym *a = &sym[i], *b = &sym[a->next];
    int r = pair_rank(t, w, a, b, tmp);
    if (r >= 0) heap_push(h, (Cand){r, i, a->len, b->len});
}

static int bpe_word(const Tokenizer *t, const char *tok, int tok_len, IdBuf *out, Err *e) {
    int32_t id;
    if ((tok_len == 15 && memcmp(tok, "<|startoftext|>", 15) == 0) ||
        (tok_len == 13 && memcmp(tok, "<|endoftext|>", 13) == 0)) {
        strmap_get(&t->encoder, tok, (size_t)tok_len, &id);
        id_push(out, id);
        return 0;
    }
    /* map bytes to their stand-ins; "</w>" sticks to the last symbol */
    int wl = 0;
    char *w = xmalloc((size_t)tok_len * 2 + 5), *tmp = xmalloc((size_t)tok_len * 2 + 6);
    Sym *sym = xmalloc(sizeof(Sym) * (size_t)tok_len);
    int *merged = xmalloc(sizeof(int) * (size_t)tok_len);
    for (int i = 0; i < tok_len; i++) {
        uint8_t b = (uint8_t)tok[i];
        sym[i] = (Sym){wl, t->byte_len[b], i - 1, i + 1 < tok_len ? i + 1 : -1};
        memcpy(w + wl, t->byte_utf8[b], t->byte_len[b]);
        wl += t->byte_len[b];
    }
    memcpy(w + wl, "</w>", 4);
    sym[tok_len - 1].len += 4;
    Heap h = {0};
    for (int i = 0; i + 1 < tok_len; i++) push_pair(t, w, sym, i, &h, tmp);
    while (h.n > 0) {
        const int rank = h.v[0].rank;
        int nm = 0;
        while (h.n > 0 && h.v[0].rank == rank) { /* one pass: this rank's occurrences, left to right */
            Cand c = heap_pop(&h);
            Sym *a = &sym[c.left];
            if (a->len != c.left_len || a->next < 0 || sym[a->next].len != c.right_len) continue; /* stale */
            Sym *b = &sym[a->next];
            if (a->len < 0) continue;
            a->len += b->len;
            a->next = b->next;
            if (b->next >= 0) sym[b->next].prev = c.left;
            b->len = -1; /* absorbed: never valid again */
            merged[nm++] = c.left;
        }
        for (int k = 0; k < nm; k++) {
            if (sym[merged[k]].len < 0) continue;
            push_pair(t, w, sym, sym[merged[k]].prev, &h, tmp);
            push_pair(t, w, sym, merged[k], &h, tmp);
        }
    }
    int rc = 0;
    for (int i = 0; i >= 0 && rc == 0; i = sym[i].next) {
        if (strmap_get(&t->encoder, w + sym[i].start, (size_t)sym[i].len, &id))
            id_push(out, id);
        else
            rc = err_set(e, "BPE produced a symbol missing from the vocabulary");
    }
    free(w), free(tmp), free(sym), free(merged), free(h.v);
    return rc;
}

/* Ids of text; with limit >= 0 it stops once limit ids are out (what follows cannot change them). */
static int encode_upto(const Tokenizer *t, const char *text, int limit, int32_t **ids, int *n, Err *e) {
    char *clean = text_clean_for_bpe(text, t->ftfy);
    size_t len = strlen(clean);
    IdBuf out = {0};
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    PCRE2_SIZE at = 0;
    int rc = 0;
    while (at < len && (limit < 0 || out.n < limit)) {
        int m = pcre2_match(t->re, (PCRE2_SPTR)clean, len, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            rc = err_set(e, "pre-tokenizer failed at byte %zu (PCRE2 error %d)", (size_t)at, m);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] == ov[0]) { /* cannot happen with this pattern; never loop forever */
            at = ov[1] + 1;
            continue;
        }
        if ((rc = bpe_word(t, clean + ov[0], (int)(ov[1] - ov[0]), &out, e)) != 0) break;
        at = ov[1];
    }
    pcre2_match_data_free(md);
    free(clean);
    if (rc) {
        free(out.v);
        return -1;
    }
    *ids = out.v ? out.v : xmalloc(sizeof(int32_t));
    *n = out.n;
    return 0;
}

int tokenizer_encode(const Tokenizer *t, const char *text, int32_t **ids, int *n, Err *e) {
    return encode_upto(t, text, -1, ids, n, e);
}

int tokenizer_tokenize(const Tokenizer *t, const char *text, int context, int32_t *out, Err *e) {
    if (context < 2) return err_set(e, "context length %d is too short for start and end tokens", context);
    int32_t *ids;
    int n;
    /* only the first context - 1 ids can reach the row: the last of them becomes EOT when cut */
    if (encode_upto(t, text, context - 1, &ids, &n, e) != 0) return -1;
    memset(out, 0, sizeof(int32_t) * (size_t)context);
    out[0] = CLIP_SOT;
    int k = 1;
    for (int i = 0; i < n && k < context; i++) out[k++] = ids[i];
    if (k < context) {
        out[k++] = CLIP_EOT;
    } else {
        out[context - 1] = CLIP_EOT; /* truncate=True: the last kept id becomes EOT */
    }
    free(ids);
    return k;
}
