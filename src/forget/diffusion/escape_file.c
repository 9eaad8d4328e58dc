#include "forget/diffusion/escape_file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

static const char *const PROBE_PROMPT = "a photo of a thing.";

int escape_probe(const ClipModel *m, const Tokenizer *t, float probe[ESCAPE_PROBE], Err *e) {
    const int L = m->cfg.context, W = m->cfg.t_width;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)L);
    float *h = xalloc_floats((size_t)L * W);
    const int len = tokenizer_tokenize(t, PROBE_PROMPT, L, ids, e);
    int rc = len < 0 ? -1 : clip_encode_text_hidden(m, ids, 1, 1, h, e);
    for (int i = 0; i < ESCAPE_PROBE && !rc; i++) probe[i] = h[(size_t)(len - 1) * W + i % W];
    free(ids), free(h);
    return rc;
}

int escape_save(const char *path, const float *z, int k, const ClipModel *m, const Tokenizer *t, const char *concept,
                const char *const *meta_kv, int n_meta, Err *e) {
    float probe[ESCAPE_PROBE];
    if (escape_probe(m, t, probe, e)) return -1;
    char ps[ESCAPE_PROBE * 20] = "", ws[24], ks[24];
    for (int i = 0; i < ESCAPE_PROBE; i++)
        snprintf(ps + strlen(ps), sizeof ps - strlen(ps), "%s%.9g", i ? "," : "", (double)probe[i]);
    snprintf(ws, sizeof ws, "%d", m->cfg.t_width);
    snprintf(ks, sizeof ks, "%d", k);
    const int base = 10;
    const char **kv = xmalloc(sizeof(char *) * (size_t)(base + 2 * n_meta));
    const char *fixed[] = {"format", "forget-escape", "escape.concept", concept, "escape.tokens", ks,
                           "text_encoder.width", ws, "text_encoder.probe", ps};
    memcpy(kv, fixed, sizeof fixed);
    for (int i = 0; i < 2 * n_meta; i++) kv[base + i] = meta_kv[i];
    const StWriteTensor tt = {ESCAPE_KEY, ST_F32, 2, {k, m->cfg.t_width}, z, NULL};
    const int rc = st_write(path, &tt, 1, kv, base / 2 + n_meta, e);
    free(kv);
    return rc;
}

int escape_load(const char *path, const ClipModel *m, const Tokenizer *t, float **z, int *k, Err *e) {
    SafeTensors st;
    if (st_open(&st, path, e)) return -1;
    const int W = m->cfg.t_width;
    const StTensor *x = st_find(&st, ESCAPE_KEY);
    if (!x && st.n == 1) x = &st.tensors[0]; /* a one-token file of another tool: the key is the token */
    int rc = 0;
    if (!x) rc = err_set(e, "%s: no \"%s\" tensor (and %d tensors, not one): not an escape-token file", path, ESCAPE_KEY, st.n);
    else if (!(x->ndim == 2 || x->ndim == 1) || x->shape[x->ndim - 1] != W)
        rc = err_set(e, "%s: tensor \"%s\" is not [k, %d]: made for a text encoder of another width (this one's is %d)", path,
                     x->name, W, W);
    const int rows = rc ? 0 : x->ndim == 2 ? (int)x->shape[0] : 1;
    if (!rc && (rows < 1 || rows > m->cfg.context - 3)) rc = err_set(e, "%s: %d escape tokens", path, rows);
    const char *ps = st_meta(&st, "text_encoder.probe");
    if (!rc && ps) { /* the encoder it was trained through must be this one */
        float mine[ESCAPE_PROBE];
        rc = escape_probe(m, t, mine, e);
        const char *p = ps;
        for (int i = 0; i < ESCAPE_PROBE && !rc; i++) {
            char *end;
            const double v = strtod(p, &end);
            if (end == p) rc = err_set(e, "%s: metadata text_encoder.probe unreadable at value %d", path, i + 1);
            else if (fabs(v - mine[i]) > 1e-3 + 1e-3 * fabs(v))
                rc = err_set(e, "%s: made for another text encoder (its probe value %d is %.6g, this encoder gives %.6g)",
                             path, i + 1, v, (double)mine[i]);
            p = *end == ',' ? end + 1 : end;
        }
    }
    if (!rc) {
        *z = xalloc_floats((size_t)rows * W);
        if (st_to_f32(x, *z, e)) rc = -1, free(*z), *z = NULL;
        else *k = rows;
    }
    st_close(&st);
    return rc;
}
