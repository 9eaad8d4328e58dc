#include "models/text2image.h"

#include "io/image.h"
#include "models/clip_encode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An integer of the metadata, dflt when the key is absent; -1 when present and not an integer. */
static int meta_int(const SafeTensors *st, const char *key, int dflt, int *out) {
    long x = dflt;
    if (st_meta(st, key) && st_meta_long(st, key, &x)) return -1;
    *out = (int)x;
    return 0;
}

int t2i_load(Text2Image *g, const char *unet_path, const char *clip_path, const char *vae_path, Err *e) {
    memset(g, 0, sizeof *g);
    SafeTensors st;
    if (st_open(&st, unet_path, e)) return -1;
    int T = 1000, side = 0, rc = 0;
    BetaKind beta = BETA_SD;
    const char *b = st_meta(&st, "diffusion.beta"), *mv = st_meta(&st, "diffusion.vae");
    if (meta_int(&st, "diffusion.T", 1000, &T) || meta_int(&st, "diffusion.side", 0, &side) ||
        (b && diffusion_beta_parse(b, &beta)))
        rc = err_set(e, "%s: metadata diffusion.T / diffusion.side / diffusion.beta unreadable", unet_path);
    char *vp = NULL;
    if (vae_path) vp = xstrdup(vae_path);
    else if (mv && *mv && mv[0] != '/') { /* relative: beside the UNet file, where the trainer found it */
        const char *slash = strrchr(unet_path, '/');
        vp = slash ? xasprintf("%.*s/%s", (int)(slash - unet_path), unet_path, mv) : xstrdup(mv);
    } else if (mv && *mv) vp = xstrdup(mv);
    st_close(&st);
    if (!rc && vp) {
        if (vae_load(&g->vae, vp, e)) rc = -1;
        else g->has_vae = 1;
    }
    free(vp);
    if (rc) return -1;
    if (unet_load(&g->unet, unet_path, 0, e)) {
        if (g->has_vae) vae_free(&g->vae);
        return -1;
    }
    const ClipLoadOpts lo = {.act_override = -1};
    if (clip_load(&g->clip, clip_path, &lo, e)) {
        unet_free(&g->unet);
        return -1;
    }
    if (!g->clip.cfg.has_text) rc = err_set(e, "%s: no text tower", clip_path);
    else if (g->clip.cfg.t_width != g->unet.cfg.ctx_dim)
        rc = err_set(e, "%s: text width %d, but %s cross-attends to rows of %d", clip_path, g->clip.cfg.t_width,
                     unet_path, g->unet.cfg.ctx_dim);
    if (!rc) rc = tokenizer_init(&g->tok, e);
    if (!rc) rc = diffusion_schedule_init(&g->sched, T, beta, 0, 0, e);
    g->side = side ? side : 32, g->ctx_len = g->clip.cfg.context;
    if (!rc) rc = unet_config_check(&g->unet.cfg, g->side, e);
    if (!rc && g->has_vae && g->vae.cfg.latent_ch != g->unet.cfg.in_ch)
        rc = err_set(e, "%s: the autoencoder's %d latent channels do not match the UNet's %d", unet_path,
                     g->vae.cfg.latent_ch, g->unet.cfg.in_ch);
    g->image_side = g->has_vae ? g->side * vae_factor(&g->vae.cfg) : g->side;
    if (!rc) {
        g->uncond = xalloc_floats((size_t)g->ctx_len * g->unet.cfg.ctx_dim);
        const char *empty = "";
        rc = t2i_encode(g, &empty, 1, g->uncond, e);
    }
    if (rc) t2i_free(g);
    return rc;
}

int t2i_set_precision(Text2Image *g, Precision p, Err *e) {
    unet_set_gemm(&g->unet, NULL), vae_set_gemm(&g->vae, NULL);
    gemm_free(g->gemm);
    g->gemm = NULL;
    if (p == PREC_FP32) return 0;
    if (!(g->gemm = gemm_new(p, e)) || clip_set_precision(&g->clip, p, e)) return -1;
    unet_set_gemm(&g->unet, g->gemm);
    if (g->has_vae) vae_set_gemm(&g->vae, g->gemm);
    return 0;
}

void t2i_free(Text2Image *g) {
    if (g->has_vae) vae_free(&g->vae);
    unet_free(&g->unet);
    clip_free(&g->clip);
    tokenizer_free(&g->tok);
    diffusion_schedule_free(&g->sched);
    free(g->uncond);
    free(g->escape);
    free((float *)g->safe.rows);
    gemm_free(g->gemm);
    memset(g, 0, sizeof *g);
}

int t2i_set_escape(Text2Image *g, const float *rows, int k, Err *e) {
    free(g->escape);
    g->escape = NULL, g->n_escape = 0;
    if (!rows || k == 0) return 0;
    if (k < 0 || k > g->ctx_len - 3) return err_set(e, "%d escape tokens do not fit a context of %d", k, g->ctx_len);
    const size_t n = (size_t)k * g->unet.cfg.ctx_dim;
    g->escape = xalloc_floats(n);
    memcpy(g->escape, rows, sizeof(float) * n);
    g->n_escape = k;
    return 0;
}

int t2i_set_safe(Text2Image *g, const char *concept, const SafeGuidance *p, Err *e) {
    free((float *)g->safe.rows);
    memset(&g->safe, 0, sizeof g->safe);
    g->has_safe = 0;
    if (!concept) return 0;
    float *rows = xalloc_floats((size_t)g->ctx_len * g->unet.cfg.ctx_dim);
    const int k = g->n_escape; /* the safety concept is encoded without escape tokens */
    float *esc = g->escape;
    g->n_escape = 0, g->escape = NULL;
    const int rc = t2i_encode(g, &concept, 1, rows, e);
    g->n_escape = k, g->escape = esc;
    if (rc) {
        free(rows);
        return -1;
    }
    g->safe = *p;
    g->safe.rows = rows;
    g->has_safe = 1;
    return 0;
}

int t2i_encode(const Text2Image *g, const char *const *prompts, int n, float *out, Err *e) {
    const int L = g->ctx_len, k = g->n_escape, W = g->unet.cfg.ctx_dim;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)n * L);
    float *rep = k ? xalloc_floats((size_t)n * k * W) : NULL;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int32_t *row = ids + (size_t)i * L;
        const int len = tokenizer_tokenize(&g->tok, prompts[i], L - k, row, e);
        if (len < 0) rc = -1;
        else if (k) { /* room after SOT, the rest of the row padded as the tokenizer pads */
            for (int j = L - k; j < L; j++) row[j] = 0;
            clip_context_slots(row, len, k, L);
            memcpy(rep + (size_t)i * k * W, g->escape, sizeof(float) * (size_t)k * W);
        }
    }
    if (!rc) rc = clip_encode_text_hidden_context(&g->clip, ids, n, 1, rep, k, out, e);
    free(ids), free(rep);
    return rc;
}

int t2i_encode_weighted(const Text2Image *g, const WeightedPrompt *w, int m, float *out, Err *e) {
    if (m < 1) return err_set(e, "a weighted prompt needs at least one part");
    const size_t row = (size_t)g->ctx_len * g->unet.cfg.ctx_dim;
    const char **texts = xmalloc(sizeof(char *) * (size_t)m);
    float *enc = xalloc_floats((size_t)m * row);
    for (int i = 0; i < m; i++) texts[i] = w[i].text;
    int rc = t2i_encode(g, texts, m, enc, e);
    if (!rc) {
        memset(out, 0, sizeof(float) * row);
        for (int i = 0; i < m; i++)
            for (size_t q = 0; q < row; q++) out[q] += w[i].weight * enc[(size_t)i * row + q];
    }
    free(texts), free(enc);
    return rc;
}

int t2i_sample_cond(const Text2Image *g, const float *cond, int n, int n_each, const SampleSpec *sp, float *x, Err *e) {
    const long row = (long)g->ctx_len * g->unet.cfg.ctx_dim, total = (long)n * n_each;
    float *rep = xalloc_floats((size_t)total * row);
    for (long i = 0; i < total; i++) memcpy(rep + i * row, cond + (i / n_each) * row, sizeof(float) * row);
    SampleSpec s = *sp;
    s.side = g->side, s.ctx_len = g->ctx_len;
    if (g->has_safe) s.safe = &g->safe;
    const int rc = diffusion_sample(&g->unet, &g->sched, &s, rep, g->uncond, (int)total, x, e);
    free(rep);
    return rc;
}

void t2i_decode(const Text2Image *g, const float *x, long total, uint8_t *rgb) {
    const UNetConfig *c = &g->unet.cfg;
    const long per = (long)c->in_ch * g->side * g->side;
    if (!g->has_vae) {
        image_rgb8_from_signed(x, (int)total, c->in_ch, g->side, rgb);
        return;
    }
    const int bs = 16, S = g->image_side; /* latents / scale through the decoder, a batch at a time */
    const long ipx = 3L * S * S;
    UNetActs *a = unet_acts_new(&g->vae.dec, bs, S, 1, 0);
    float *z = xalloc_floats((size_t)bs * per), *img = xalloc_floats((size_t)bs * ipx);
    for (long b0 = 0; b0 < total; b0 += bs) {
        const int nb = total - b0 < bs ? (int)(total - b0) : bs;
        memset(z, 0, sizeof(float) * (size_t)bs * per);
        for (long j = 0; j < (long)nb * per; j++) z[j] = x[b0 * per + j] / g->vae.scale;
        vae_decode(&g->vae, a, z, img);
        image_rgb8_from_signed(img, nb, 3, S, rgb + (size_t)b0 * ipx);
    }
    unet_acts_free(a);
    free(z), free(img);
}

int t2i_generate_cond(const Text2Image *g, const float *cond, int n, int n_each, const SampleSpec *sp, uint8_t *rgb,
                      Err *e) {
    const long total = (long)n * n_each, per = (long)g->unet.cfg.in_ch * g->side * g->side;
    float *x = xalloc_floats((size_t)total * per);
    const int rc = t2i_sample_cond(g, cond, n, n_each, sp, x, e);
    if (!rc) t2i_decode(g, x, total, rgb);
    free(x);
    return rc;
}

int t2i_generate(const Text2Image *g, const char *const *prompts, int n, int n_each, const SampleSpec *sp,
                 uint8_t *rgb, Err *e) {
    const size_t row = (size_t)g->ctx_len * g->unet.cfg.ctx_dim;
    float *enc = xalloc_floats((size_t)n * row);
    int rc = t2i_encode(g, prompts, n, enc, e);
    if (!rc) rc = t2i_generate_cond(g, enc, n, n_each, sp, rgb, e);
    free(enc);
    return rc;
}
