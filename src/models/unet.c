/* The UNet's config, its parameter table in the two checkpoint layouts, its program of steps,
 * and its file. The forward and backward are in unet_forward.c. */
#include "models/unet.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "models/unet_build.h"

#define CV "model.diffusion_model."

/* ------------------------------------------------------------ the config */

int unet_config_named(UNetConfig *c, const char *name, Err *e) {
    static const struct {
        const char *name;
        UNetConfig c;
    } NAMED[] = {
        {"sd-1", {4, 4, 4, {320, 640, 1280, 1280}, {1, 1, 1, 0}, 2, 8, 1, 768, 32}},
        {"unet-tiny", {3, 3, 2, {4, 8}, {0, 1}, 1, 2, 1, 6, 2}},
        {"unet-pixel-32", {3, 3, 3, {32, 64, 64}, {0, 1, 1}, 2, 4, 1, 128, 32}},
        {"unet-latent-8", {4, 4, 2, {64, 128}, {1, 1}, 2, 4, 1, 128, 32}},
        {"unet-latent-8s", {4, 4, 2, {48, 96}, {0, 1}, 2, 4, 1, 128, 16}},
    };
    for (size_t i = 0; i < sizeof NAMED / sizeof *NAMED; i++)
        if (strcmp(name, NAMED[i].name) == 0) {
            *c = NAMED[i].c;
            return 0;
        }
    return err_set(e, "unknown UNet \"%s\" (sd-1, unet-tiny, unet-pixel-32, unet-latent-8 or unet-latent-8s)", name);
}

int unet_config_check(const UNetConfig *c, int side, Err *e) {
    if (c->in_ch < 1 || c->in_ch > 64 || c->out_ch < 1 || c->out_ch > 64)
        return err_set(e, "unet: %d input / %d output channels (1..64)", c->in_ch, c->out_ch);
    if (c->levels < 1 || c->levels > UNET_MAX_LEVELS)
        return err_set(e, "unet: %d levels (1..%d)", c->levels, UNET_MAX_LEVELS);
    if (c->layers < 1 || c->layers > UNET_MAX_LAYERS)
        return err_set(e, "unet: %d resnets a level (1..%d)", c->layers, UNET_MAX_LAYERS);
    if (c->depth < 1 || c->depth > UNET_MAX_DEPTH)
        return err_set(e, "unet: %d transformer blocks an attention (1..%d)", c->depth, UNET_MAX_DEPTH);
    if (c->groups < 1 || c->heads < 1 || c->ctx_dim < 1 || c->ctx_dim > 8192)
        return err_set(e, "unet: groups %d, heads %d, context width %d out of range", c->groups, c->heads,
                       c->ctx_dim);
    for (int l = 0; l < c->levels; l++) {
        if (c->ch[l] < 1 || c->ch[l] > 8192 || c->ch[l] % c->groups)
            return err_set(e, "unet: level %d has %d channels (1..8192, a multiple of the %d groups)", l, c->ch[l],
                           c->groups);
        if (c->attn[l] && c->ch[l] % c->heads)
            return err_set(e, "unet: level %d's %d channels do not split into %d heads", l, c->ch[l], c->heads);
    }
    if (c->ch[c->levels - 1] % c->heads)
        return err_set(e, "unet: the middle's %d channels do not split into %d heads", c->ch[c->levels - 1], c->heads);
    if (side && (side < 1 || side > 4096 || side % (1 << (c->levels - 1))))
        return err_set(e, "unet: sample side %d is not a multiple of %d (%d levels)", side, 1 << (c->levels - 1),
                       c->levels);
    return 0;
}

/* ------------------------------------------------------------- the table */

/* A key into a NN_NAME buffer; a key that does not fit is a bug of this file, not of a user. */
void unet_keyf(char *dst, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(dst, NN_NAME, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= NN_NAME) {
        fprintf(stderr, "forget: unet: key \"%s...\" longer than %d\n", dst, NN_NAME - 1);
        abort();
    }
}

NnParam *unet_named(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                    const char *df, const char *cv, NnInit init) {
    NnParam *p = nn_add(t, slot, ndim, d0, d1, d2, d3);
    nn_key(p, UNET_DIFFUSERS, "%s", df);
    if (cv) nn_key(p, UNET_COMPVIS, CV "%s", cv);
    p->init = init;
    p->decay = ndim >= 2;
    return p;
}

static NnInit normal(double fan_in) { return (NnInit){INIT_NORMAL, (float)(1.0 / sqrt(fan_in))}; }
static const NnInit ZEROS = {INIT_ZEROS, 0}, ONES = {INIT_ONES, 0};

/* weight + bias of a convolution or linear layer, "<df>.weight" and "<cv>.weight" */
void unet_weight_bias(NnTable *t, float **w, float **b, int ndim, int64_t o, int64_t i, int k, const char *df,
                      const char *cv, int zero) {
    char kd[NN_NAME], kc[NN_NAME];
    unet_keyf(kd, "%s.weight", df);
    if (cv) unet_keyf(kc, "%s.weight", cv);
    const NnInit wi = zero ? ZEROS : normal((double)i * k * k);
    if (ndim == 4) unet_named(t, w, 4, o, i, k, k, kd, cv ? kc : NULL, wi);
    else unet_named(t, w, 2, o, i, 0, 0, kd, cv ? kc : NULL, wi);
    unet_keyf(kd, "%s.bias", df);
    if (cv) unet_keyf(kc, "%s.bias", cv);
    unet_named(t, b, 1, o, 0, 0, 0, kd, cv ? kc : NULL, ZEROS);
}

/* A resnet: the conv block's own table (diffusers names), then the CompVis names beside them. */
static void resnet_table(NnTable *t, ConvBlockParams *p, const ConvBlockConfig *c, const char *df, const char *cv) {
    static const char *const MAP[][2] = {{"norm1.", "in_layers.0."},          {"conv1.", "in_layers.2."},
                                         {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
                                         {"conv2.", "out_layers.3."},         {"conv_shortcut.", "skip_connection."}};
    const int n0 = t->n;
    conv_block_table(t, p, c, df);
    const size_t lp = strlen(df) + 1;
    for (int i = n0; i < t->n && cv; i++) {
        const char *rest = t->p[i].key[UNET_DIFFUSERS][0] + lp;
        for (size_t m = 0; m < sizeof MAP / sizeof *MAP; m++) {
            const size_t lm = strlen(MAP[m][0]);
            if (strncmp(rest, MAP[m][0], lm) == 0) {
                nn_key(&t->p[i], UNET_COMPVIS, CV "%s.%s%s", cv, MAP[m][1], rest + lm);
                break;
            }
        }
    }
    /* CompVis zero-initialises a resnet's last convolution (zero_module): a new block is the identity */
    for (int i = n0; i < t->n; i++)
        if (strcmp(t->p[i].key[UNET_DIFFUSERS][0] + lp, "conv2.weight") == 0) t->p[i].init = ZEROS;
}

static NnParam *split(NnTable *t, float **slot, int64_t d0, int64_t d1, int parts, const char *df, const char *cv,
                      const char *names, const char *what, NnInit init) {
    NnParam *p = nn_add(t, slot, 2, d0, d1, 0, 0);
    for (int i = 0; i < parts; i++) {
        nn_key_part(p, UNET_DIFFUSERS, i, "%s.to_%c.%s", df, names[i], what);
        nn_key_part(p, UNET_COMPVIS, i, CV "%s.to_%c.%s", cv, names[i], what);
    }
    p->init = init, p->decay = 1;
    return p;
}

static void attn_table(NnTable *t, UNetAttnParams *a, int C, const UNetConfig *c, const char *df, const char *cv) {
    char d[NN_NAME], v[NN_NAME];
#define SUB(s) (unet_keyf(d, "%s.%s", df, s), unet_keyf(v, "%s.%s", cv, s))
    SUB("norm.weight"), unet_named(t, &a->norm_w, 1, C, 0, 0, 0, d, v, ONES);
    SUB("norm.bias"), unet_named(t, &a->norm_b, 1, C, 0, 0, 0, d, v, ZEROS);
    SUB("proj_in"), unet_weight_bias(t, &a->in_w, &a->in_b, 4, C, C, 1, d, v, 0);
    for (int k = 0; k < c->depth; k++) {
        BlockParams *b = &a->blk[k];
        char bd[NN_NAME], bv[NN_NAME], x[NN_NAME], y[NN_NAME];
        unet_keyf(bd, "%s.transformer_blocks.%d", df, k), unet_keyf(bv, "%s.transformer_blocks.%d", cv, k);
#define BSUB(s) (unet_keyf(x, "%s.%s", bd, s), unet_keyf(y, "%s.%s", bv, s))
        BSUB("norm1.weight"), unet_named(t, &b->ln1_w, 1, C, 0, 0, 0, x, y, ONES);
        BSUB("norm1.bias"), unet_named(t, &b->ln1_b, 1, C, 0, 0, 0, x, y, ZEROS);
        BSUB("attn1"), split(t, &b->qkv_w, 3 * C, C, 3, x, y, "qkv", "weight", normal(C));
        BSUB("attn1.to_out.0"), unet_weight_bias(t, &b->out_w, &b->out_b, 2, C, C, 1, x, y, 0);
        BSUB("norm2.weight"), unet_named(t, &b->lnx_w, 1, C, 0, 0, 0, x, y, ONES);
        BSUB("norm2.bias"), unet_named(t, &b->lnx_b, 1, C, 0, 0, 0, x, y, ZEROS);
        BSUB("attn2.to_q.weight"), unet_named(t, &b->xq_w, 2, C, C, 0, 0, x, y, normal(C));
        BSUB("attn2"), split(t, &b->xkv_w, 2 * C, c->ctx_dim, 2, x, y, "kv", "weight", normal(c->ctx_dim));
        BSUB("attn2.to_out.0"), unet_weight_bias(t, &b->xout_w, &b->xout_b, 2, C, C, 1, x, y, 0);
        BSUB("norm3.weight"), unet_named(t, &b->ln2_w, 1, C, 0, 0, 0, x, y, ONES);
        BSUB("norm3.bias"), unet_named(t, &b->ln2_b, 1, C, 0, 0, 0, x, y, ZEROS);
        BSUB("ff.net.0.proj"), unet_weight_bias(t, &b->fc_w, &b->fc_b, 2, 8 * C, C, 1, x, y, 0);
        BSUB("ff.net.2"), unet_weight_bias(t, &b->proj_w, &b->proj_b, 2, C, 4 * C, 1, x, y, 0);
#undef BSUB
    }
    SUB("proj_out"), unet_weight_bias(t, &a->out_w, &a->out_b, 4, C, C, 1, d, v, 1);
#undef SUB
}

/* Walks the architecture once: appends every tensor to the table (when t is not NULL) and every
 * step to the program. */
typedef struct {
    UNet *m;
    NnTable *t;
    UNetParams *p;
    int side;
} Builder;

UNetStep *unet_add_step(UNet *m, UNetStepKind kind, int cin, int cout, int f_in, int f_out) {
    if (m->n_steps >= UNET_MAX_STEPS) {
        fprintf(stderr, "forget: unet: program longer than %d steps\n", UNET_MAX_STEPS);
        abort();
    }
    UNetStep *s = &m->steps[m->n_steps++];
    *s = (UNetStep){.kind = kind, .cin = cin, .cout = cout, .f_in = f_in, .f_out = f_out, .stride = 1, .k = 3};
    return s;
}

UNetStep *unet_add_conv(UNet *m, NnTable *t, float **w, float **b, int cin, int cout, int k, int f, int stride,
                        const char *df, const char *cv, int zero) {
    unet_weight_bias(t, w, b, 4, cout, cin, k, df, cv, zero);
    UNetStep *s = unet_add_step(m, US_CONV, cin, cout, f, stride == 2 ? 2 * f : f);
    s->stride = stride, s->k = k, s->w = w, s->b = b;
    return s;
}

void unet_add_resnet(UNet *m, NnTable *t, UNetParams *p, int cin, int cout, int side, const char *df,
                     const char *cv) {
    const int r = m->n_res++;
    p->rcfg[r] = (ConvBlockConfig){.cin = cin, .cout = cout, .stride = 1, .norm = CONV_NORM_GROUP,
                                   .groups = m->cfg.groups, .eps = 1e-5f, .act = CONV_SILU,
                                   .temb = m->has_time ? 4 * m->cfg.ch[0] : 0};
    resnet_table(t, &p->res[r], &p->rcfg[r], df, cv);
    unet_add_step(m, US_RES, cin, cout, side, side)->index = r;
}

static void add_attn(UNet *m, NnTable *t, UNetParams *p, int C, int side, const char *df, const char *cv) {
    const int a = m->n_attn++;
    attn_table(t, &p->att[a], C, &m->cfg, df, cv);
    unet_add_step(m, US_ATTN, C, C, side, side)->index = a;
}

static void build(UNet *m, NnTable *t, UNetParams *p) {
    const UNetConfig *c = &m->cfg;
    m->has_time = 1, m->out_ch = c->out_ch, m->f_out = 1, m->norm_eps = 1e-5f;
    memset(t, 0, sizeof *t);
    m->n_steps = m->n_res = m->n_attn = 0;
    const int C0 = c->ch[0], TE = 4 * C0, L = c->levels, n = c->layers;
    char df[NN_NAME], cv[NN_NAME];
    unet_weight_bias(t, &p->t1_w, &p->t1_b, 2, TE, C0, 1, "time_embedding.linear_1", "time_embed.0", 0);
    unet_weight_bias(t, &p->t2_w, &p->t2_b, 2, TE, TE, 1, "time_embedding.linear_2", "time_embed.2", 0);
    /* steps record down-sampling factors (1 << level), not sides: one program serves every side */
    unet_add_conv(m, t, &p->in_w, &p->in_b, c->in_ch, C0, 3, 1, 1, "conv_in", "input_blocks.0.0", 0);
    /* the skip stack: each push's channels and step, so a concatenation knows what it reads */
    int stack[UNET_MAX_RES + UNET_MAX_LEVELS + 1], from[UNET_MAX_RES + UNET_MAX_LEVELS + 1], sp = 0, ch = C0, inb = 1;
#define PUSH(c_, f_) (unet_add_step(m, US_PUSH, c_, c_, f_, f_), from[sp] = m->n_steps - 1, stack[sp++] = c_)
    PUSH(C0, 1);
    for (int l = 0; l < L; l++) {
        for (int j = 0; j < n; j++, inb++) {
            unet_keyf(df, "down_blocks.%d.resnets.%d", l, j), unet_keyf(cv, "input_blocks.%d.0", inb);
            unet_add_resnet(m, t, p, ch, c->ch[l], 1 << l, df, cv);
            ch = c->ch[l];
            if (c->attn[l]) {
                unet_keyf(df, "down_blocks.%d.attentions.%d", l, j), unet_keyf(cv, "input_blocks.%d.1", inb);
                add_attn(m, t, p, ch, 1 << l, df, cv);
            }
            PUSH(ch, 1 << l);
        }
        if (l < L - 1) {
            unet_keyf(df, "down_blocks.%d.downsamplers.0.conv", l), unet_keyf(cv, "input_blocks.%d.0.op", inb++);
            unet_add_conv(m, t, &p->down_w[l], &p->down_b[l], ch, ch, 3, 1 << l, 2, df, cv, 0);
            PUSH(ch, 1 << (l + 1));
        }
    }
    const int ls = 1 << (L - 1);
    unet_add_resnet(m, t, p, ch, ch, ls, "mid_block.resnets.0", "middle_block.0");
    add_attn(m, t, p, ch, ls, "mid_block.attentions.0", "middle_block.1");
    unet_add_resnet(m, t, p, ch, ch, ls, "mid_block.resnets.1", "middle_block.2");
    int outb = 0;
    for (int u = 0; u < L; u++) { /* up block u works at level l = L-1-u */
        const int l = L - 1 - u;
        for (int j = 0; j <= n; j++, outb++) {
            const int skip = stack[--sp];
            unet_add_step(m, US_CAT, ch, ch + skip, 1 << l, 1 << l)->index = from[sp];
            unet_keyf(df, "up_blocks.%d.resnets.%d", u, j), unet_keyf(cv, "output_blocks.%d.0", outb);
            unet_add_resnet(m, t, p, ch + skip, c->ch[l], 1 << l, df, cv);
            ch = c->ch[l];
            if (c->attn[l]) {
                unet_keyf(df, "up_blocks.%d.attentions.%d", u, j), unet_keyf(cv, "output_blocks.%d.1", outb);
                add_attn(m, t, p, ch, 1 << l, df, cv);
            }
        }
        if (l > 0) {
            unet_add_step(m, US_UP, ch, ch, 1 << l, 1 << (l - 1));
            unet_keyf(df, "up_blocks.%d.upsamplers.0.conv", u);
            unet_keyf(cv, "output_blocks.%d.%d.conv", outb - 1, c->attn[l] ? 2 : 1);
            unet_add_conv(m, t, &p->up_w[u], &p->up_b[u], ch, ch, 3, 1 << (l - 1), 1, df, cv, 0);
        }
    }
    unet_named(t, &p->nout_w, 1, ch, 0, 0, 0, "conv_norm_out.weight", "out.0.weight", ONES);
    unet_named(t, &p->nout_b, 1, ch, 0, 0, 0, "conv_norm_out.bias", "out.0.bias", ZEROS);
    unet_add_step(m, US_NORM_ACT, ch, ch, 1, 1);
    unet_add_conv(m, t, &p->out_w, &p->out_b, ch, c->out_ch, 3, 1, 1, "conv_out", "out.2", 1);
#undef PUSH
}

void unet_alloc(UNet *m, const UNetConfig *c) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    build(m, &m->table, &m->p);
    m->arena = nn_arena_layout(&m->table, 0, &m->n_params);
    m->bcfg = (BlockConfig){.heads = c->heads, .act = ACT_GEGLU, .norm = NORM_LAYER, .eps = 1e-5f,
                            .cross_width = c->ctx_dim};
}

void unet_free(UNet *m) {
    free(m->arena);
    nn_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

void unet_set_gemm(UNet *m, struct Gemm *g) {
    m->gemm = g;
    m->bcfg.gemm = g;
    for (int i = 0; i < UNET_MAX_RES; i++) m->p.rcfg[i].gemm = g;
}

void unet_init(UNet *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    nn_init(&m->table, &r);
}

void unet_table(const UNetConfig *c, NnTable *t, UNetParams *slots) {
    UNet *m = xcalloc(1, sizeof *m); /* the program is built alongside and dropped */
    m->cfg = *c;
    build(m, t, slots);
    free(m);
}

long unet_param_count(const UNetConfig *c) {
    UNetParams *slots = xcalloc(1, sizeof *slots);
    NnTable t;
    unet_table(c, &t, slots);
    long n = 0;
    for (int i = 0; i < t.n; i++) n += t.p[i].count;
    nn_table_free(&t);
    free(slots);
    return n;
}

void unet_grads_alloc(UNetGrads *g, const UNet *m) {
    memset(g, 0, sizeof *g);
    unet_table(&m->cfg, &g->table, &g->p);
    g->arena = nn_arena_layout(&g->table, 0, &g->n);
    memset(g->arena, 0, sizeof(float) * (size_t)g->n);
}

void unet_grads_free(UNetGrads *g) {
    free(g->arena);
    nn_table_free(&g->table);
    memset(g, 0, sizeof *g);
}

double unet_forward_flops(const UNet *m, int side, int ctx_len) {
    double f = 0;
    for (int k = 0; k < m->n_steps; k++) {
        const UNetStep *s = &m->steps[k];
        const double so = (double)side / s->f_out, px = so * so;
        if (s->kind == US_CONV) f += 2.0 * px * s->cout * s->cin * s->k * s->k;
        else if (s->kind == US_RES) {
            f += 2.0 * px * 9 * (s->cin * s->cout + (double)s->cout * s->cout);
            if (s->cin != s->cout) f += 2.0 * px * s->cin * s->cout;
        } else if (s->kind == US_ATTN) {
            BlockConfig bc = m->bcfg;
            bc.width = s->cout, bc.hidden = 4 * s->cout;
            f += 2.0 * 2.0 * px * s->cout * s->cout; /* proj_in, proj_out */
            for (int d = 0; d < m->cfg.depth; d++) f += block_flops(&bc, (int)px, px * px, ctx_len);
        }
    }
    return f;
}

/* ------------------------------------------------------------ the files */

static int tensor_dim(SafeTensors *st, const char *name, int d, int64_t *out) {
    const StTensor *t = st_find(st, name);
    if (!t || t->ndim <= d) return -1;
    *out = t->shape[d];
    return 0;
}

int unet_detect_layout(SafeTensors *st) {
    if (st_find(st, "conv_in.weight")) return UNET_DIFFUSERS;
    if (st_find(st, CV "input_blocks.0.0.weight")) return UNET_COMPVIS;
    return -1;
}

int unet_file_is_unet(SafeTensors *st) { return unet_detect_layout(st) >= 0; }

static int count_prefix(SafeTensors *st, const char *fmt, int max) {
    int n = 0;
    char k[NN_NAME];
    for (; n < max; n++) {
        unet_keyf(k, fmt, n);
        if (!st_find(st, k)) break;
    }
    return n;
}

/* The transformer depth and the context width of the attention at prefix pre. */
static int attn_shape(SafeTensors *st, const char *pre, UNetConfig *c, Err *e) {
    char f[NN_NAME], k[NN_NAME];
    int64_t v;
    unet_keyf(f, "%s.transformer_blocks.%%d.norm1.weight", pre);
    c->depth = count_prefix(st, f, UNET_MAX_DEPTH + 1);
    unet_keyf(k, "%s.transformer_blocks.0.attn2.to_k.weight", pre);
    if (tensor_dim(st, k, 1, &v)) return err_set(e, "%s: %s missing", st->path, k);
    c->ctx_dim = (int)v;
    return 0;
}

int unet_config_infer(UNetConfig *c, SafeTensors *st, int heads, int *layout, Err *e) {
    memset(c, 0, sizeof *c);
    const int L = unet_detect_layout(st);
    if (L < 0) return err_set(e, "%s: no conv_in.weight or " CV "input_blocks.0.0.weight: not a UNet", st->path);
    *layout = L;
    int64_t v;
    char k[NN_NAME];
    const char *cin = L == UNET_DIFFUSERS ? "conv_in.weight" : CV "input_blocks.0.0.weight";
    const char *cout = L == UNET_DIFFUSERS ? "conv_out.weight" : CV "out.2.weight";
    if (tensor_dim(st, cin, 1, &v)) return err_set(e, "%s: %s is not 4-D", st->path, cin);
    c->in_ch = (int)v;
    if (tensor_dim(st, cout, 0, &v)) return err_set(e, "%s: %s missing", st->path, cout);
    c->out_ch = (int)v;
    if (L == UNET_DIFFUSERS) {
        c->levels = count_prefix(st, "down_blocks.%d.resnets.0.conv1.weight", UNET_MAX_LEVELS + 1);
        c->layers = count_prefix(st, "down_blocks.0.resnets.%d.conv1.weight", UNET_MAX_LAYERS + 1);
    } else {
        /* input blocks 1.. are resnets or down-samplers (levels - 1 of them), levels x (layers + 1) - 1
         * in all; output blocks are levels x (layers + 1) resnets */
        const int outs = count_prefix(st, CV "output_blocks.%d.0.in_layers.2.weight", UNET_MAX_RES + 1);
        int ins = 0, ops = 0;
        for (int b = 1; b <= UNET_MAX_RES + UNET_MAX_LEVELS; b++, ins++) {
            unet_keyf(k, CV "input_blocks.%d.0.op.weight", b);
            const int op = st_find(st, k) != NULL;
            unet_keyf(k, CV "input_blocks.%d.0.in_layers.2.weight", b);
            if (!op && !st_find(st, k)) break;
            ops += op;
        }
        c->levels = ops + 1;
        c->layers = outs % c->levels == 0 && ins + 1 == outs ? outs / c->levels - 1 : 0;
    }
    if (c->levels < 1 || c->levels > UNET_MAX_LEVELS || c->layers < 1 || c->layers > UNET_MAX_LAYERS)
        return err_set(e, "%s: could not read the UNet's levels (%d) and resnets a level (%d) from its keys", st->path,
                       c->levels, c->layers);
    c->depth = 0, c->ctx_dim = 0;
    for (int l = 0; l < c->levels; l++) {
        const int inb = 1 + l * (c->layers + 1);
        if (L == UNET_DIFFUSERS) unet_keyf(k, "down_blocks.%d.resnets.0.conv1.weight", l);
        else unet_keyf(k, CV "input_blocks.%d.0.in_layers.2.weight", inb);
        if (tensor_dim(st, k, 0, &v)) return err_set(e, "%s: %s missing", st->path, k);
        c->ch[l] = (int)v;
        char pre[NN_NAME];
        if (L == UNET_DIFFUSERS) unet_keyf(pre, "down_blocks.%d.attentions.0", l);
        else unet_keyf(pre, CV "input_blocks.%d.1", inb);
        unet_keyf(k, "%s.proj_in.weight", pre);
        c->attn[l] = st_find(st, k) != NULL;
        if (c->attn[l] && !c->depth && attn_shape(st, pre, c, e)) return -1;
    }
    if (!c->depth && attn_shape(st, L == UNET_DIFFUSERS ? "mid_block.attentions.0" : CV "middle_block.1", c, e))
        return -1; /* attention only in the middle */
    c->heads = heads > 0 ? heads : 8;
    c->groups = 32;
    while (c->groups > 1) { /* 32 as SD, unless the channels say less */
        int ok = 1;
        for (int l = 0; l < c->levels; l++) ok &= c->ch[l] % c->groups == 0;
        if (ok) break;
        c->groups /= 2;
    }
    Err ce = {0};
    if (unet_config_check(c, 0, &ce)) return err_set(e, "%s: %s", st->path, ce.msg);
    return 0;
}

int unet_save(const UNet *m, const char *path, int layout, StDtype dtype, const char *const *meta_kv, int n_meta,
              Err *e) {
    const UNetConfig *c = &m->cfg;
    char v[8][64];
    snprintf(v[0], 64, "%d", c->heads), snprintf(v[1], 64, "%d", c->groups);
    snprintf(v[2], 64, "%d", c->depth), snprintf(v[3], 64, "%d", c->layers);
    v[4][0] = v[5][0] = 0;
    for (int l = 0; l < c->levels; l++) {
        snprintf(v[4] + strlen(v[4]), 64 - strlen(v[4]), "%s%d", l ? "," : "", c->ch[l]);
        snprintf(v[5] + strlen(v[5]), 64 - strlen(v[5]), "%s%d", l ? "," : "", c->attn[l]);
    }
    const char *own[] = {"format", "forget-unet", "unet.heads", v[0], "unet.groups", v[1],  "unet.depth", v[2],
                         "unet.layers", v[3],     "unet.ch",    v[4], "unet.attn",   v[5]};
    return nn_save_meta(&m->table, path, layout, dtype, own, (int)(sizeof own / sizeof *own / 2), meta_kv, n_meta, e);
}

int unet_load(UNet *m, const char *path, int heads, Err *e) {
    memset(m, 0, sizeof *m);
    SafeTensors st;
    if (st_open(&st, path, e)) return -1;
    UNetConfig c;
    const char *fmt = st_meta(&st, "format");
    const int ours = fmt && strcmp(fmt, "forget-unet") == 0; /* heads and groups are written down */
    int h = 0, g = 0, layout = 0, rc = 0;
    if (ours && (st_meta_int(&st, "unet.heads", &h) || st_meta_int(&st, "unet.groups", &g) || h < 1 || g < 1))
        rc = err_set(e, "%s: metadata unet.heads / unet.groups missing or not positive integers", path);
    if (!rc) rc = unet_config_infer(&c, &st, heads > 0 ? heads : h, &layout, e);
    if (!rc && ours) {
        c.groups = g;
        Err ce = {0};
        if (unet_config_check(&c, 0, &ce)) rc = err_set(e, "%s: %s", path, ce.msg);
    }
    if (!rc) {
        unet_alloc(m, &c);
        rc = nn_load(&m->table, &st, layout, NULL, NULL, 0, e);
        if (!rc) rc = nn_check_finite(&m->table, layout, e);
        if (rc) unet_free(m);
    }
    st_close(&st);
    return rc;
}
