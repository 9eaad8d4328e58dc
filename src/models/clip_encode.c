#include "core/err.h"
#include "models/clip_encode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/image.h"
#include "io/preprocess.h"

int clip_encode_texts(const ClipModel *m, const Tokenizer *t, const char *const *texts, int n, float *out, Err *e) {
    const int ctx = m->cfg.context, E = m->cfg.embed_dim;
    if (!m->cfg.has_text) return err_set(e, "this model has no text tower");
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)ctx * CLIP_ENCODE_BATCH);
    int rc = 0;
    for (int b0 = 0; b0 < n && rc == 0; b0 += CLIP_ENCODE_BATCH) {
        int nb = n - b0 < CLIP_ENCODE_BATCH ? n - b0 : CLIP_ENCODE_BATCH;
        for (int i = 0; i < nb && rc == 0; i++)
            if (tokenizer_tokenize(t, texts[b0 + i], ctx, ids + (size_t)i * ctx, e) < 0)
                rc = err_prefix(e, "text %d: ", b0 + i);
        if (rc == 0) rc = clip_encode_text(m, ids, nb, out + (size_t)b0 * E, NULL, e);
    }
    free(ids);
    return rc;
}

int clip_encode_image_files(const ClipModel *m, const char *const *paths, int n, float *out, Err *e) {
    if (!m->cfg.has_vision) return err_set(e, "this model has no image tower");
    const int R = m->cfg.image_res, E = m->cfg.embed_dim;
    const size_t per = (size_t)3 * R * R;
    float *px = xmalloc(sizeof(float) * per * CLIP_ENCODE_BATCH);
    int rc = 0;
    for (int b0 = 0; b0 < n && rc == 0; b0 += CLIP_ENCODE_BATCH) {
        int nb = n - b0 < CLIP_ENCODE_BATCH ? n - b0 : CLIP_ENCODE_BATCH;
        for (int i = 0; i < nb && rc == 0; i++) {
            Image8 im;
            if ((rc = image_load(&im, paths[b0 + i], e)) != 0) break;
            clip_preprocess(&im, R, px + per * i);
            image_free(&im);
        }
        if (rc == 0) rc = clip_encode_image(m, px, nb, out + (size_t)b0 * E, NULL, e);
    }
    free(px);
    return rc;
}

int clip_context_slots(int32_t *row, int len, int m, int ctx) {
    if (len < 2 || len + m > ctx) return -1;
    memmove(row + 1 + m, row + 1, sizeof(int32_t) * (size_t)(len - 1));
    for (int k = 1; k <= m; k++) row[k] = 0;
    return len + m;
}

char *clip_prompt_fill(const char *tpl, const char *subject) {
    const char *at = tpl ? strstr(tpl, "{}") : NULL;
    if (!tpl) return xstrdup(subject);
    if (at) return xasprintf("%.*s%s%s", (int)(at - tpl), tpl, subject, at + 2);
    return xasprintf("%s %s", tpl, subject);
}

int clip_encode_filled(const ClipModel *m, const Tokenizer *t, const char *tpl, const char *const *subjects, int n, float *out,
                       Err *e) {
    char **p = xmalloc(sizeof(char *) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) p[i] = clip_prompt_fill(tpl, subjects[i]);
    int rc = clip_encode_texts(m, t, (const char *const *)p, n, out, e);
    for (int i = 0; i < n; i++) free(p[i]);
    free(p);
    return rc;
}

int clip_context_ids(const ClipModel *m, const Tokenizer *t, const char *tpl, const char *const *subjects, int n, int nctx,
                     int32_t *ids, Err *e) {
    const int ctx = m->cfg.context;
    for (int i = 0; i < n; i++) {
        char *p = clip_prompt_fill(tpl, subjects[i]);
        int len = tokenizer_tokenize(t, p, ctx, ids + (size_t)i * ctx, e);
        free(p);
        if (len < 0) return err_prefix(e, "prompt %d: ", i);
        if (clip_context_slots(ids + (size_t)i * ctx, len, nctx, ctx) < 0)
            return err_set(e, "prompt %d is too long for %d context tokens", i, nctx);
    }
    return 0;
}
