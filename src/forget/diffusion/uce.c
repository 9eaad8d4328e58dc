/* UCE, Unified Concept Editing (Gandikota et al., WACV 2024; diffusion-erasure.md 3.3): the closed
 * form of its eq. 7 on every cross-attention key and value projection W (out x ctx):
 *   W' = (lambda W + s_e sum_i (W c_guide_i) c_i^T + s_p sum_j (W c_j) c_j^T)
 *        (lambda I + s_e sum_i c_i c_i^T + s_p sum_j c_j c_j^T)^-1
 * c: the text encoder's row at the last real token of a prompt (index = tokens - 2, the official
 * code's choice), over the bare concept and the escape training templates filled with it; the
 * guide prompts are the same templates filled with the guide ("" : the row before EOT of the
 * template alone). K and V are stacked in the engine's xkv_w, each row solved alike (LAPACK
 * dposv: the right factor is symmetric positive definite). */
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

#include "forget/diffusion/erase.h"
#include "forget/diffusion/escape.h"
#include "models/clip_encode.h"

/* Rows [nt + 1, D] of `word` in the bare prompt and every template: the row of its last token. */
static int last_token_rows(const Text2Image *g, const char *word, const char *const *tpl, int nt, double *out, Err *e) {
    const int L = g->ctx_len, D = g->unet.cfg.ctx_dim;
    float *h = xalloc_floats((size_t)L * D);
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)L);
    int rc = 0;
    for (int j = 0; j <= nt && !rc; j++) {
        const char *t = j == 0 ? "{}" : tpl[j - 1];
        const char *at = strstr(t, "{}");
        char *full = clip_prompt_fill(t, word), *pre = xasprintf("%.*s%s", (int)(at - t), t, word);
        const int lp = tokenizer_tokenize(&g->tok, pre, L, ids, e); /* where the word ends */
        if (lp < 0 || tokenizer_tokenize(&g->tok, full, L, ids, e) < 0) rc = -1;
        if (!rc) rc = clip_encode_text_hidden(&g->clip, ids, 1, 1, h, e);
        const int idx = lp - 2 < 0 ? 0 : lp - 2;
        for (int c = 0; c < D && !rc; c++) out[(size_t)j * D + c] = h[(size_t)idx * D + c];
        free(full), free(pre);
    }
    free(h), free(ids);
    return rc;
}

long uce_apply(Text2Image *g, const char *concept, const char *const *preserve, int n_preserve, const char *guide,
               double lambda, double s_e, double s_p, Err *e) {
    int nt;
    const char *const *tpl = escape_templates(&nt);
    const int D = g->unet.cfg.ctx_dim, per = nt + 1;
    double *ce = xmalloc(sizeof(double) * (size_t)per * D), *cg = xmalloc(sizeof(double) * (size_t)per * D);
    double *cp = xmalloc(sizeof(double) * (size_t)(n_preserve * per + 1) * D);
    int rc = last_token_rows(g, concept, tpl, nt, ce, e);
    if (!rc) rc = last_token_rows(g, guide ? guide : "", tpl, nt, cg, e);
    for (int i = 0; i < n_preserve && !rc; i++) rc = last_token_rows(g, preserve[i], tpl, nt, cp + (size_t)i * per * D, e);
    const int np = n_preserve * per;
    /* the right factor B, shared by every projection */
    double *B = xcalloc((size_t)D * D, sizeof(double));
    for (int i = 0; i < D; i++) B[(size_t)i * D + i] = lambda;
    for (int set = 0; set < 2 && !rc; set++) {
        const double *C = set ? cp : ce, s = set ? s_p : s_e;
        const int n = set ? np : per;
        for (int r = 0; r < n; r++)
            for (int i = 0; i < D; i++)
                for (int j = 0; j < D; j++) B[(size_t)i * D + j] += s * C[(size_t)r * D + i] * C[(size_t)r * D + j];
    }
    long changed = 0;
    const UNet *m = &g->unet;
    for (int st = 0; st < m->n_steps && !rc; st++) {
        if (m->steps[st].kind != US_ATTN) continue;
        const int R = 2 * m->steps[st].cin; /* K and V rows */
        for (int d = 0; d < m->cfg.depth && !rc; d++) {
            float *W = m->p.att[m->steps[st].index].blk[d].xkv_w;
            /* A^T [D, R] = lambda W^T + s_e sum c_i (W c_g)^T + s_p sum c_j (W c_j)^T */
            double *At = xmalloc(sizeof(double) * (size_t)D * R), *Bf = xmalloc(sizeof(double) * (size_t)D * D);
            double *wc = xmalloc(sizeof(double) * (size_t)R);
            for (int i = 0; i < D; i++)
                for (int o = 0; o < R; o++) At[(size_t)i * R + o] = lambda * W[(size_t)o * D + i];
            for (int set = 0; set < 2; set++) {
                const int n = set ? np : per;
                const double s = set ? s_p : s_e;
                for (int r = 0; r < n; r++) {
                    const double *c = set ? cp + (size_t)r * D : ce + (size_t)r * D;
                    const double *src = set ? c : cg + (size_t)r * D; /* the value it should map to: W c_guide or W c */
                    for (int o = 0; o < R; o++) {
                        double v = 0;
                        for (int i = 0; i < D; i++) v += W[(size_t)o * D + i] * src[i];
                        wc[o] = v;
                    }
                    for (int i = 0; i < D; i++)
                        for (int o = 0; o < R; o++) At[(size_t)i * R + o] += s * c[i] * wc[o];
                }
            }
            memcpy(Bf, B, sizeof(double) * (size_t)D * D);
            const int info = LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', D, R, Bf, D, At, R);
            if (info != 0) rc = err_set(e, "uce: the system is not positive definite (LAPACK info %d)", info);
            for (int i = 0; i < D && !rc; i++)
                for (int o = 0; o < R; o++) W[(size_t)o * D + i] = (float)At[(size_t)i * R + o];
            changed += (long)R * D;
            free(At), free(Bf), free(wc);
        }
    }
    free(ce), free(cg), free(cp), free(B);
    if (!rc) gemm_weights_changed(g->gemm);
    return rc ? -1 : changed;
}
