#include "models/vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/unet_build.h"

static const float VAE_EPS = 1e-6f; /* every GroupNorm of SD's autoencoder */

int vae_config_named(VaeConfig *c, const char *name, Err *e) {
    static const struct {
        const char *name;
        VaeConfig c;
    } NAMED[] = {
        {"sd-vae", {3, 4, 4, {128, 256, 512, 512}, 2, 32}},
        {"vae-f4", {3, 4, 3, {16, 32, 64}, 1, 8}},
        {"vae-tiny", {3, 2, 2, {4, 8}, 1, 2}},
    };
    for (size_t i = 0; i < sizeof NAMED / sizeof *NAMED; i++)
        if (strcmp(name, NAMED[i].name) == 0) {
            *c = NAMED[i].c;
            return 0;
        }
    return err_set(e, "unknown autoencoder \"%s\" (sd-vae, vae-f4 or vae-tiny)", name);
}

int vae_factor(const VaeConfig *c) { return 1 << (c->levels - 1); }

int vae_config_check(const VaeConfig *c, int side, Err *e) {
    if (c->in_ch < 1 || c->in_ch > 4 || c->latent_ch < 1 || c->latent_ch > 64)
        return err_set(e, "vae: %d image / %d latent channels", c->in_ch, c->latent_ch);
    if (c->levels < 1 || c->levels > UNET_MAX_LEVELS || c->layers < 1 || c->layers > UNET_MAX_LAYERS || c->groups < 1)
        return err_set(e, "vae: %d levels, %d resnets a level, %d groups out of range", c->levels, c->layers, c->groups);
    for (int l = 0; l < c->levels; l++)
        if (c->ch[l] < 1 || c->ch[l] > 8192 || c->ch[l] % c->groups)
            return err_set(e, "vae: level %d has %d channels (a multiple of the %d groups)", l, c->ch[l], c->groups);
    if (side && (side < 1 || side % vae_factor(c)))
        return err_set(e, "vae: image side %d is not a multiple of %d", side, vae_factor(c));
    return 0;
}

/* The one-head attention of the middle: group_norm, to_q/k/v, to_out.0. */
static void vattn_table(UNet *m, NnTable *t, VaeAttnParams *a, int C, const char *df) {
    char k[NN_NAME];
    unet_keyf(k, "%s.group_norm.weight", df), unet_named(t, &a->norm_w, 1, C, 0, 0, 0, k, NULL, (NnInit){INIT_ONES, 0});
    unet_keyf(k, "%s.group_norm.bias", df), unet_named(t, &a->norm_b, 1, C, 0, 0, 0, k, NULL, (NnInit){INIT_ZEROS, 0});
    unet_keyf(k, "%s.to_q", df), unet_weight_bias(t, &a->q_w, &a->q_b, 2, C, C, 1, k, NULL, 0);
    unet_keyf(k, "%s.to_k", df), unet_weight_bias(t, &a->k_w, &a->k_b, 2, C, C, 1, k, NULL, 0);
    unet_keyf(k, "%s.to_v", df), unet_weight_bias(t, &a->v_w, &a->v_b, 2, C, C, 1, k, NULL, 0);
    unet_keyf(k, "%s.to_out.0", df), unet_weight_bias(t, &a->o_w, &a->o_b, 2, C, C, 1, k, NULL, 1);
    unet_add_step(m, US_VATTN, C, C, 0, 0)->index = 0;
}

static void resnet(UNet *m, NnTable *t, UNetParams *p, int cin, int cout, int f, const char *df) {
    unet_add_resnet(m, t, p, cin, cout, f, df, NULL);
    p->rcfg[m->n_res - 1].eps = VAE_EPS;
}

static void middle(UNet *m, NnTable *t, UNetParams *p, int C, int f, const char *half) {
    char k[NN_NAME];
    unet_keyf(k, "%s.mid_block.resnets.0", half), resnet(m, t, p, C, C, f, k);
    unet_keyf(k, "%s.mid_block.attentions.0", half), vattn_table(m, t, &p->vat[0], C, k);
    m->steps[m->n_steps - 1].f_in = m->steps[m->n_steps - 1].f_out = f;
    unet_keyf(k, "%s.mid_block.resnets.1", half), resnet(m, t, p, C, C, f, k);
}

static void out_norm(UNet *m, NnTable *t, UNetParams *p, int C, int f, const char *half) {
    char k[NN_NAME];
    unet_keyf(k, "%s.conv_norm_out.weight", half), unet_named(t, &p->nout_w, 1, C, 0, 0, 0, k, NULL, (NnInit){INIT_ONES, 0});
    unet_keyf(k, "%s.conv_norm_out.bias", half), unet_named(t, &p->nout_b, 1, C, 0, 0, 0, k, NULL, (NnInit){INIT_ZEROS, 0});
    unet_add_step(m, US_NORM_ACT, C, C, f, f);
}

static void half_init(UNet *m, const VaeConfig *c) {
    memset(m, 0, sizeof *m);
    m->cfg = (UNetConfig){.in_ch = c->in_ch, .out_ch = c->in_ch, .levels = c->levels, .layers = c->layers,
                          .heads = 1, .depth = 1, .ctx_dim = 1, .groups = c->groups};
    memcpy(m->cfg.ch, c->ch, sizeof c->ch);
    m->has_time = 0, m->norm_eps = VAE_EPS;
}

static void build_encoder(UNet *m, NnTable *t, UNetParams *p, const VaeConfig *c) {
    const int L = c->levels;
    char k[NN_NAME];
    int ch = c->ch[0];
    unet_add_conv(m, t, &p->in_w, &p->in_b, c->in_ch, ch, 3, 1, 1, "encoder.conv_in", NULL, 0);
    for (int l = 0; l < L; l++) {
        for (int j = 0; j < c->layers; j++) {
            unet_keyf(k, "encoder.down_blocks.%d.resnets.%d", l, j);
            resnet(m, t, p, ch, c->ch[l], 1 << l, k);
            ch = c->ch[l];
        }
        if (l < L - 1) {
            unet_keyf(k, "encoder.down_blocks.%d.downsamplers.0.conv", l);
            unet_add_conv(m, t, &p->down_w[l], &p->down_b[l], ch, ch, 3, 1 << l, 2, k, NULL, 0)->pad_br = 1;
        }
    }
    const int F = 1 << (L - 1);
    middle(m, t, p, ch, F, "encoder");
    out_norm(m, t, p, ch, F, "encoder");
    unet_add_conv(m, t, &p->out_w, &p->out_b, ch, 2 * c->latent_ch, 3, F, 1, "encoder.conv_out", NULL, 0);
    unet_add_conv(m, t, &p->up_w[0], &p->up_b[0], 2 * c->latent_ch, 2 * c->latent_ch, 1, F, 1, "quant_conv", NULL, 0);
    m->out_ch = 2 * c->latent_ch, m->f_out = F;
}

static void build_decoder(UNet *m, NnTable *t, UNetParams *p, const VaeConfig *c) {
    const int L = c->levels, F = 1 << (L - 1);
    char k[NN_NAME];
    int ch = c->ch[L - 1];
    unet_add_conv(m, t, &p->up_w[UNET_MAX_LEVELS - 1], &p->up_b[UNET_MAX_LEVELS - 1], c->latent_ch, c->latent_ch, 1,
                  F, 1, "post_quant_conv", NULL, 0);
    unet_add_conv(m, t, &p->in_w, &p->in_b, c->latent_ch, ch, 3, F, 1, "decoder.conv_in", NULL, 0);
    middle(m, t, p, ch, F, "decoder");
    for (int u = 0; u < L; u++) {
        const int l = L - 1 - u;
        for (int j = 0; j <= c->layers; j++) {
            unet_keyf(k, "decoder.up_blocks.%d.resnets.%d", u, j);
            resnet(m, t, p, ch, c->ch[l], 1 << l, k);
            ch = c->ch[l];
        }
        if (l > 0) {
            unet_add_step(m, US_UP, ch, ch, 1 << l, 1 << (l - 1));
            unet_keyf(k, "decoder.up_blocks.%d.upsamplers.0.conv", u);
            unet_add_conv(m, t, &p->down_w[u], &p->down_b[u], ch, ch, 3, 1 << (l - 1), 1, k, NULL, 0);
        }
    }
    out_norm(m, t, p, ch, 1, "decoder");
    unet_add_conv(m, t, &p->out_w, &p->out_b, ch, c->in_ch, 3, 1, 1, "decoder.conv_out", NULL, 0);
    m->out_ch = c->in_ch, m->f_out = 1;
}

/* Both halves into their programs, their entries into one table (slots in enc_p / dec_p). */
static void build(UNet *enc, UNet *dec, UNetParams *enc_p, UNetParams *dec_p, NnTable *t, const VaeConfig *c) {
    half_init(enc, c), half_init(dec, c);
    memset(t, 0, sizeof *t);
    build_encoder(enc, t, enc_p, c);
    build_decoder(dec, t, dec_p, c);
}

void vae_alloc(Vae *v, const VaeConfig *c) {
    memset(v, 0, sizeof *v);
    v->cfg = *c;
    build(&v->enc, &v->dec, &v->enc.p, &v->dec.p, &v->table, c);
    v->arena = nn_arena_layout(&v->table, 0, &v->n_params);
    v->enc.n_params = v->dec.n_params = 0; /* the halves own nothing: the Vae does */
    v->scale = 1.0f;
}

void vae_free(Vae *v) {
    free(v->arena);
    nn_table_free(&v->table);
    memset(v, 0, sizeof *v);
}

void vae_set_gemm(Vae *v, struct Gemm *g) { unet_set_gemm(&v->enc, g), unet_set_gemm(&v->dec, g); }

void vae_init(Vae *v, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    nn_init(&v->table, &r);
}

long vae_param_count(const VaeConfig *c) {
    UNet *h = xcalloc(2, sizeof *h);
    NnTable t;
    build(&h[0], &h[1], &h[0].p, &h[1].p, &t, c);
    long n = 0;
    for (int i = 0; i < t.n; i++) n += t.p[i].count;
    nn_table_free(&t);
    free(h);
    return n;
}

void vae_grads_alloc(VaeGrads *g, const Vae *v) {
    memset(g, 0, sizeof *g);
    UNet *h = xcalloc(2, sizeof *h); /* the programs are dropped; the slots land in g->enc.p / g->dec.p */
    build(&h[0], &h[1], &g->enc.p, &g->dec.p, &g->table, &v->cfg);
    free(h);
    g->arena = nn_arena_layout(&g->table, 0, &g->n);
    memset(g->arena, 0, sizeof(float) * (size_t)g->n);
}

void vae_grads_free(VaeGrads *g) {
    free(g->arena);
    nn_table_free(&g->table);
    memset(g, 0, sizeof *g);
}

int vae_save(const Vae *v, const char *path, const char *const *meta_kv, int n_meta, Err *e) {
    const VaeConfig *c = &v->cfg;
    char val[6][64];
    snprintf(val[0], 64, "%d", c->latent_ch), snprintf(val[1], 64, "%d", c->layers), snprintf(val[2], 64, "%d", c->groups);
    snprintf(val[3], 64, "%.9g", (double)v->scale);
    val[4][0] = 0;
    for (int l = 0; l < c->levels; l++) snprintf(val[4] + strlen(val[4]), 64 - strlen(val[4]), "%s%d", l ? "," : "", c->ch[l]);
    snprintf(val[5], 64, "%d", c->in_ch);
    const char *own[] = {"format", "forget-vae", "vae.latent_ch", val[0], "vae.layers", val[1], "vae.groups", val[2],
                         "vae.scaling_factor", val[3], "vae.ch", val[4], "vae.in_ch", val[5]};
    return nn_save_meta(&v->table, path, 0, ST_F32, own, (int)(sizeof own / sizeof *own / 2), meta_kv, n_meta, e);
}

int vae_load(Vae *v, const char *path, Err *e) {
    memset(v, 0, sizeof *v);
    SafeTensors st;
    if (st_open(&st, path, e)) return -1;
    VaeConfig c = {0};
    int rc = 0;
    const char *fmt = st_meta(&st, "format"), *chs = st_meta(&st, "vae.ch"), *sf = st_meta(&st, "vae.scaling_factor");
    if (!fmt || strcmp(fmt, "forget-vae") != 0 || !chs || !sf || st_meta_int(&st, "vae.latent_ch", &c.latent_ch) ||
        st_meta_int(&st, "vae.layers", &c.layers) || st_meta_int(&st, "vae.groups", &c.groups) ||
        st_meta_int(&st, "vae.in_ch", &c.in_ch))
        rc = err_set(e, "%s: not a forget autoencoder (metadata format forget-vae with vae.ch, vae.latent_ch, "
                        "vae.layers, vae.groups, vae.in_ch, vae.scaling_factor)", path);
    for (const char *s = chs; !rc && s && *s;) {
        char *end;
        const long x = strtol(s, &end, 10);
        if (end == s || c.levels >= UNET_MAX_LEVELS) rc = err_set(e, "%s: vae.ch \"%s\" is not a list of widths", path, chs);
        else c.ch[c.levels++] = (int)x, s = *end == ',' ? end + 1 : end;
    }
    Err ce = {0};
    if (!rc && vae_config_check(&c, 0, &ce)) rc = err_set(e, "%s: %s", path, ce.msg);
    if (!rc) {
        vae_alloc(v, &c);
        v->scale = strtof(sf, NULL);
        rc = nn_load(&v->table, &st, 0, NULL, NULL, 0, e);
        if (!rc) rc = nn_check_finite(&v->table, 0, e);
        if (!rc && !(v->scale > 0)) rc = err_set(e, "%s: vae.scaling_factor \"%s\" is not positive", path, sf);
        if (rc) vae_free(v);
    }
    st_close(&st);
    return rc;
}

void vae_encode(const Vae *v, UNetActs *a, const float *x, float *moments) { unet_forward(&v->enc, a, x, NULL, NULL, moments); }
void vae_decode(const Vae *v, UNetActs *a, const float *z, float *x) { unet_forward(&v->dec, a, z, NULL, NULL, x); }
