#include "models/resnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/rng.h"
#include "io/safetensors.h"

/* ------------------------------------------------------------ the config */

int resnet_config_named(ResNetConfig *c, const char *name, Err *e) {
    static const struct {
        const char *name;
        int width, n;
    } NAMED[] = {{"resnet-20", 16, 3}, {"resnet-32", 16, 5}, {"resnet-56", 16, 9}, {"resnet-8n", 4, 1}};
    for (size_t i = 0; i < sizeof NAMED / sizeof *NAMED; i++)
        if (strcmp(name, NAMED[i].name) == 0) {
            c->width = NAMED[i].width, c->n = NAMED[i].n;
            if (c->eps <= 0) c->eps = 1e-5f;
            if (c->momentum <= 0) c->momentum = 0.1f;
            return 0;
        }
    return err_set(e, "unknown network \"%s\" (resnet-20, resnet-32, resnet-56 or resnet-8n)", name);
}

int resnet_depth(const ResNetConfig *c) { return 6 * c->n + 2; }
int resnet_blocks(const ResNetConfig *c) { return 3 * c->n; }
int resnet_feature_dim(const ResNetConfig *c) { return 4 * c->width; }

double resnet_forward_flops(const ResNetConfig *c) {
    double f = 2.0 * c->res * c->res * c->width * c->in_ch * 9; /* the stem */
    int cin = c->width;
    for (int s = 0; s < 3; s++) {
        const int cout = c->width << s, side = (s == 0 ? c->res : (c->res - 1) / (1 << s) + 1);
        for (int k = 0; k < c->n; k++) {
            const double px = (double)side * side;
            f += 2.0 * px * cout * cin * 9 + 2.0 * px * cout * cout * 9; /* conv1, conv2 */
            if (cin != cout) f += 2.0 * px * cout * cin;                 /* the projection */
            cin = cout;
        }
    }
    return f;
}

static int stage_side(int res, int stage) { /* 3x3, pad 1, stride 2: (s - 1) / 2 + 1 */
    for (int s = 0; s < stage; s++) res = (res - 1) / 2 + 1;
    return res;
}

int resnet_layer_shape(const ResNetConfig *c, int layer, int *C, int *H, int *W) {
    if (layer < 0 || layer > resnet_blocks(c)) return -1;
    const int stage = layer == 0 ? 0 : (layer - 1) / c->n;
    *C = c->width << stage;
    *H = *W = stage_side(c->res, stage);
    return 0;
}

int resnet_config_check(const ResNetConfig *c, Err *e) {
    if (c->in_ch != 1 && c->in_ch != 3) return err_set(e, "resnet: %d input channels (1 or 3)", c->in_ch);
    if (c->res < 4 || c->res > 1024) return err_set(e, "resnet: input side %d outside 4..1024", c->res);
    if (c->width < 1 || c->width > 1024 || c->n < 1 || 3 * c->n > RESNET_MAX_BLOCKS)
        return err_set(e, "resnet: width %d / %d blocks a stage out of range", c->width, c->n);
    if (c->n_heads < 1 || c->n_heads > RESNET_MAX_HEADS)
        return err_set(e, "resnet: %d heads (1..%d)", c->n_heads, RESNET_MAX_HEADS);
    for (int h = 0; h < c->n_heads; h++)
        if (c->head_classes[h] < 1 || c->head_classes[h] > 100000)
            return err_set(e, "resnet: head %d has %d classes", h, c->head_classes[h]);
    if (c->code_layer < -1 || c->code_layer > resnet_blocks(c))
        return err_set(e, "resnet-%d has no layer %d for the code (0 = after the stem, 1..%d after a block)",
                       resnet_depth(c), c->code_layer, resnet_blocks(c));
    return 0;
}

/* ------------------------------------------------------------- the table */

int resnet_blocked(const ResNetConfig *c) { return !c->plain && c->width % 16 == 0; }

static void block_configs(const ResNetConfig *c, ConvBlockConfig *b) {
    int cin = c->width;
    for (int s = 0, l = 0; s < 3; s++)
        for (int k = 0; k < c->n; k++, l++) {
            const int cout = c->width << s;
            b[l] = (ConvBlockConfig){.cin = cin, .cout = cout, .stride = (s > 0 && k == 0) ? 2 : 1,
                                     .norm = CONV_NORM_BATCH, .eps = c->eps, .momentum = c->momentum,
                                     .act = c->smooth ? CONV_SILU : CONV_RELU, .post_act = 1,
                                     .blocked = resnet_blocked(c)};
            cin = cout;
        }
}

static NnParam *entry(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                      const char *key, NnInit init) {
    NnParam *p = nn_add(t, slot, ndim, d0, d1, d2, d3);
    nn_key(p, 0, "%s", key);
    p->init = init;
    p->decay = ndim >= 2;
    return p;
}

static void build_table(NnTable *t, ResNetParams *p, const ResNetConfig *c) {
    memset(t, 0, sizeof *t);
    const int w = c->width, F = resnet_feature_dim(c);
    entry(t, &p->stem_w, 4, w, c->in_ch, 3, 3, "conv1.weight", (NnInit){INIT_NORMAL, sqrtf(2.0f / (c->in_ch * 9))});
    entry(t, &p->bn_w, 1, w, 0, 0, 0, "bn1.weight", (NnInit){INIT_ONES, 0});
    entry(t, &p->bn_b, 1, w, 0, 0, 0, "bn1.bias", (NnInit){INIT_ZEROS, 0});
    entry(t, &p->bn_rm, 1, w, 0, 0, 0, "bn1.running_mean", (NnInit){INIT_ZEROS, 0})->buffer = 1;
    entry(t, &p->bn_rv, 1, w, 0, 0, 0, "bn1.running_var", (NnInit){INIT_ONES, 0})->buffer = 1;
    block_configs(c, p->bcfg);
    for (int l = 0; l < resnet_blocks(c); l++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "layer%d.%d", l / c->n + 1, l % c->n);
        conv_block_table(t, &p->blk[l], &p->bcfg[l], prefix);
    }
    for (int h = 0; h < c->n_heads; h++) {
        char key[48];
        snprintf(key, sizeof key, "heads.%d.weight", h);
        entry(t, &p->head[h], 2, c->head_classes[h], F, 0, 0, key, (NnInit){INIT_NORMAL, 1.0f / sqrtf((float)F)});
    }
}

void resnet_alloc(ResNet *m, const ResNetConfig *c) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    build_table(&m->table, &m->p, c);
    m->arena = nn_arena_layout(&m->table, 0, &m->n_params);
}

void resnet_free(ResNet *m) {
    free(m->arena);
    nn_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

void resnet_init(ResNet *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    nn_init(&m->table, &r);
}

void resnet_copy(ResNet *dst, const ResNet *src) {
    memcpy(dst->arena, src->arena, sizeof(float) * (size_t)src->n_params);
}

void resnet_grads_alloc(ResNetGrads *g, const ResNetConfig *c) {
    memset(g, 0, sizeof *g);
    build_table(&g->table, &g->p, c);
    g->arena = nn_arena_layout(&g->table, 0, &g->n);
    memset(g->arena, 0, sizeof(float) * (size_t)g->n);
}

void resnet_grads_free(ResNetGrads *g) {
    free(g->arena);
    nn_table_free(&g->table);
    memset(g, 0, sizeof *g);
}

/* ------------------------------------------------------------ the file */

int resnet_save(const ResNet *m, const char *path, const char *const *meta_kv, int n_meta, Err *e) {
    const ResNetConfig *c = &m->cfg;
    char v[6][32], heads[RESNET_MAX_HEADS * 8] = "";
    snprintf(v[0], 32, "%d", c->in_ch), snprintf(v[1], 32, "%d", c->res), snprintf(v[2], 32, "%d", c->width);
    snprintf(v[3], 32, "%d", c->n), snprintf(v[4], 32, "%d", c->code_layer), snprintf(v[5], 32, "%g", (double)c->eps);
    for (int h = 0; h < c->n_heads; h++)
        snprintf(heads + strlen(heads), sizeof heads - strlen(heads), "%s%d", h ? "," : "", c->head_classes[h]);
    const char *own[] = {"format", "forget-resnet", "resnet.in_ch", v[0], "resnet.res", v[1], "resnet.width", v[2],
                         "resnet.n", v[3], "resnet.code_layer", v[4], "resnet.eps", v[5], "resnet.heads", heads};
    return nn_save_meta(&m->table, path, 0, ST_F32, own, (int)(sizeof own / sizeof *own / 2), meta_kv, n_meta, e);
}

static int meta_int(SafeTensors *st, const char *path, const char *key, int *out, Err *e) {
    return st_meta_int(st, key, out) ? err_set(e, "%s: metadata \"%s\" missing or not an integer", path, key) : 0;
}

int resnet_load(ResNet *m, const char *path, Err *e) {
    memset(m, 0, sizeof *m);
    SafeTensors st;
    if (st_open(&st, path, e)) return -1;
    ResNetConfig c = {.eps = 1e-5f, .momentum = 0.1f};
    const char *fmt = st_meta(&st, "format"), *heads = st_meta(&st, "resnet.heads");
    int rc = 0;
    if (!fmt || strcmp(fmt, "forget-resnet") != 0) rc = err_set(e, "%s: not a forget ResNet (metadata format)", path);
    if (!rc)
        rc = meta_int(&st, path, "resnet.in_ch", &c.in_ch, e) || meta_int(&st, path, "resnet.res", &c.res, e) ||
             meta_int(&st, path, "resnet.width", &c.width, e) || meta_int(&st, path, "resnet.n", &c.n, e) ||
             meta_int(&st, path, "resnet.code_layer", &c.code_layer, e);
    if (!rc && !heads) rc = err_set(e, "%s: metadata \"resnet.heads\" missing", path);
    for (const char *s = heads; !rc && s && *s;) {
        char *end;
        long k = strtol(s, &end, 10);
        if (end == s || c.n_heads >= RESNET_MAX_HEADS || (*end && *end != ','))
            rc = err_set(e, "%s: resnet.heads \"%s\" is not a list of class counts", path, heads);
        else
            c.head_classes[c.n_heads++] = (int)k, s = *end ? end + 1 : end;
    }
    if (!rc && resnet_config_check(&c, e)) rc = err_prefix(e, "%s: ", path);
    if (!rc) {
        resnet_alloc(m, &c);
        if (nn_load(&m->table, &st, 0, NULL, NULL, 0, e) || nn_check_finite(&m->table, 0, e)) {
            rc = err_prefix(e, "%s: ", path);
            resnet_free(m);
        }
    }
    st_close(&st);
    return rc;
}

/* ------------------------------------------------------------ activations */

static ConvShape stem_shape(const ResNetConfig *c, int B) { return (ConvShape){B, c->in_ch, c->res, c->res, c->width, 3, 1, 1}; }

void resnet_acts_alloc(ResNetActs *a, const ResNetConfig *c, int B) {
    memset(a, 0, sizeof *a);
    a->B = B;
    const long n0 = (long)B * c->width * c->res * c->res;
    a->x_in = xalloc_floats((size_t)B * c->in_ch * c->res * c->res);
    a->stem_h = xalloc_floats((size_t)n0), a->stem_bn = xalloc_floats((size_t)n0);
    a->stem_m = xalloc_floats((size_t)c->width), a->stem_r = xalloc_floats((size_t)c->width);
    const ConvShape s = stem_shape(c, B);
    a->blocked = resnet_blocked(c);
    if (a->blocked) {
        Err e = {0};
        if (conv_dnnl_init(&a->stem_dn, &s, 1, &e)) {
            fprintf(stderr, "forget: resnet stem: %s\n", e.msg);
            abort();
        }
    } else {
        a->stem_cols = xalloc_floats((size_t)conv2d_cols_size(&s));
    }
    const int nb = a->nb = resnet_blocks(c);
    ConvBlockConfig b[RESNET_MAX_BLOCKS];
    block_configs(c, b);
    a->out = xcalloc((size_t)nb + 1, sizeof(float *));
    a->out[0] = xalloc_floats((size_t)n0);
    int side = c->res;
    for (int l = 0; l < nb; l++) {
        conv_block_acts_alloc(&a->blk[l], &b[l], B, side, side);
        side = a->blk[l].OH;
        a->out[l + 1] = xalloc_floats((size_t)B * b[l].cout * side * side);
    }
    if (c->code_layer >= 0) {
        int C = 0, H = 0, W = 0;
        resnet_layer_shape(c, c->code_layer, &C, &H, &W);
        a->code_in = xalloc_floats((size_t)B * C * H * W);
        a->code_m = xalloc_floats((size_t)B * C), a->code_r = xalloc_floats((size_t)B * C);
        if (a->blocked) a->code_tmp = xalloc_floats((size_t)B * C * H * W), a->code_tmp2 = xalloc_floats((size_t)B * C * H * W);
    }
    const int F = resnet_feature_dim(c);
    a->pooled = xalloc_floats((size_t)B * F), a->feat = xalloc_floats((size_t)B * F);
    a->feat_norm = xalloc_floats((size_t)B);
}

void resnet_acts_free(ResNetActs *a) {
    if (!a->out) return;
    for (int l = 0; l < a->nb; l++) conv_block_acts_free(&a->blk[l]);
    for (int l = 0; l <= a->nb; l++) free(a->out[l]);
    free(a->out);
    float *f[] = {a->x_in,   a->stem_h, a->stem_bn,  a->stem_m,   a->stem_r,     a->stem_cols, a->code_in,
                  a->code_m, a->code_r, a->code_tmp, a->code_tmp2, a->pooled, a->feat,     a->feat_norm, a->scratch};
    if (a->stem_dn.eng) conv_dnnl_free(&a->stem_dn);
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) free(f[i]);
    memset(a, 0, sizeof *a);
}

void resnet_standardise(float *out, const float *in, int n, int C, long HW) {
    float *m = xalloc_floats((size_t)n * C), *r = xalloc_floats((size_t)n * C);
    groupnorm_forward(out, m, r, in, NULL, NULL, n, C, HW, C, 1e-5f);
    free(m), free(r);
}

/* ---------------------------------------------------------------- forward */

void resnet_forward(const ResNet *m, ResNetActs *a, const float *x, const float *code, float kappa, int code_only,
                    int training) {
    const ResNetConfig *c = &m->cfg;
    const ResNetParams *p = &m->p;
    const int B = a->B, nb = resnet_blocks(c), L = c->code_layer;
    a->training = training, a->code_only = code_only && L >= 0, a->has_code = code != NULL && L >= 0;
    a->kappa = kappa;
    int C = 0, H = 0, W = 0;
    if (L >= 0) resnet_layer_shape(c, L, &C, &H, &W);
    const long nL = (long)B * C * H * W;
    if (!a->code_only) {
        const long n0 = (long)B * c->width * c->res * c->res;
        const ConvShape s = stem_shape(c, B);
        memcpy(a->x_in, x, sizeof(float) * (size_t)B * c->in_ch * c->res * c->res);
        if (a->blocked) {
            conv_dnnl_forward(&a->stem_dn, a->stem_h, x, p->stem_w);
            batchnorm16_forward(a->stem_bn, a->stem_m, a->stem_r, a->stem_h, p->bn_w, p->bn_b, p->bn_rm, p->bn_rv, B,
                                c->width, (long)c->res * c->res, c->eps, c->momentum, training);
        } else {
            conv2d_nchw_forward(a->stem_h, a->stem_cols, x, p->stem_w, NULL, &s);
            batchnorm_forward(a->stem_bn, a->stem_m, a->stem_r, a->stem_h, p->bn_w, p->bn_b, p->bn_rm, p->bn_rv, B,
                              c->width, (long)c->res * c->res, c->eps, c->momentum, training);
        }
        if (c->smooth) silu_forward(a->out[0], a->stem_bn, n0);
        else relu_forward(a->out[0], a->stem_bn, n0);
    }
    for (int l = a->code_only ? L : 0; l <= nb; l++) {
        if (l > 0 && !(a->code_only && l == L))
            conv_block_forward(&p->bcfg[l - 1], &p->blk[l - 1], &a->blk[l - 1], a->out[l - 1], NULL, a->out[l], training);
        if (l != L) continue;
        /* the standardising layer in NCHW (the codes' layout); Norm of no image is zero: the code alone */
        float *h = a->blocked ? a->code_tmp : a->out[l];
        if (a->code_only) {
            for (long i = 0; i < nL; i++) h[i] = code ? kappa * code[i] : 0.0f;
        } else {
            if (a->blocked) blocked16_to_nchw(a->code_in, a->out[l], B, C, (long)H * W);
            else memcpy(a->code_in, a->out[l], sizeof(float) * (size_t)nL);
            groupnorm_forward(h, a->code_m, a->code_r, a->code_in, NULL, NULL, B, C, (long)H * W, C, 1e-5f);
            if (code)
                for (long i = 0; i < nL; i++) h[i] += kappa * code[i];
        }
        if (a->blocked) nchw_to_blocked16(a->out[l], h, B, C, (long)H * W);
    }
    int Cl = 0, Hl = 0, Wl = 0;
    resnet_layer_shape(c, nb, &Cl, &Hl, &Wl);
    if (a->blocked) avgpool16_global_forward(a->pooled, a->out[nb], B, Cl, (long)Hl * Wl);
    else avgpool_forward(a->pooled, a->out[nb], (long)B * Cl, Hl, Wl, Hl, 1);
    l2norm_forward(a->feat, a->feat_norm, a->pooled, B, Cl);
}

/* ---------------------------------------------------------------- heads */

static float *normed_rows(const float *W, int K, int F, float *norms) {
    float *wn = xalloc_floats((size_t)K * F);
    l2norm_forward(wn, norms, W, K, F);
    return wn;
}

void resnet_head_forward(const ResNet *m, int h, const float *feat, int B, float *cos) {
    const int K = m->cfg.head_classes[h], F = resnet_feature_dim(&m->cfg);
    float *norms = xalloc_floats((size_t)K), *wn = normed_rows(m->p.head[h], K, F, norms);
    linear_forward(cos, feat, wn, NULL, B, F, K);
    free(wn), free(norms);
}

void resnet_head_backward(const ResNet *m, int h, const float *feat, int B, const float *dcos, float *dfeat,
                          ResNetParams *g) {
    const int K = m->cfg.head_classes[h], F = resnet_feature_dim(&m->cfg);
    float *norms = xalloc_floats((size_t)K), *wn = normed_rows(m->p.head[h], K, F, norms);
    float *dwn = g ? xcalloc((size_t)K * F, sizeof(float)) : NULL;
    linear_backward(dfeat, dwn, NULL, dcos, feat, wn, B, F, K);
    if (g) l2norm_backward(g->head[h], dwn, wn, norms, K, F);
    free(wn), free(norms), free(dwn);
}

/* --------------------------------------------------------------- backward */

void resnet_backward(const ResNet *m, ResNetActs *a, const float *dfeat, ResNetParams *g, float *dx) {
    const ResNetConfig *c = &m->cfg;
    const ResNetParams *p = &m->p;
    const int B = a->B, nb = resnet_blocks(c), L = c->code_layer;
    int Cl = 0, Hl = 0, Wl = 0;
    resnet_layer_shape(c, nb, &Cl, &Hl, &Wl);
    const long big = (long)B * c->width * c->res * c->res; /* the largest map */
    if (!a->scratch) a->scratch = xalloc_floats((size_t)big * 3);
    memset(a->scratch, 0, sizeof(float) * (size_t)big * 2);
    float *cur = a->scratch, *nxt = cur + big, *dh = nxt + big;
    float *dpool = xcalloc((size_t)B * Cl, sizeof(float));
    l2norm_backward(dpool, dfeat, a->feat, a->feat_norm, B, Cl);
    if (a->blocked) avgpool16_global_backward(cur, dpool, B, Cl, (long)Hl * Wl);
    else avgpool_backward(cur, dpool, (long)B * Cl, Hl, Wl, Hl, 1);
    free(dpool);
    const int stop = a->code_only ? L : 0;
    for (int l = nb;; l--) { /* cur holds d out[l] */
        if (l == L && !a->code_only) {
            int C = 0, H = 0, W = 0;
            resnet_layer_shape(c, L, &C, &H, &W);
            const long nL = (long)B * C * H * W;
            if (a->blocked) { /* through the layer in NCHW */
                blocked16_to_nchw(a->code_tmp, cur, B, C, (long)H * W);
                memset(a->code_tmp2, 0, sizeof(float) * (size_t)nL);
                groupnorm_backward(a->code_tmp2, NULL, NULL, a->code_tmp, a->code_in, NULL, a->code_m, a->code_r, B, C,
                                   (long)H * W, C);
                nchw_to_blocked16(cur, a->code_tmp2, B, C, (long)H * W);
            } else {
                memset(nxt, 0, sizeof(float) * (size_t)nL);
                groupnorm_backward(nxt, NULL, NULL, cur, a->code_in, NULL, a->code_m, a->code_r, B, C, (long)H * W, C);
                float *t = cur;
                cur = nxt, nxt = t;
            }
        }
        if (l == stop) break;
        ConvBlockActs *ba = &a->blk[l - 1];
        memset(nxt, 0, sizeof(float) * (size_t)B * p->bcfg[l - 1].cin * ba->H * ba->W);
        conv_block_backward(&p->bcfg[l - 1], &p->blk[l - 1], g ? &g->blk[l - 1] : NULL, ba, NULL, cur, nxt, NULL);
        float *t = cur;
        cur = nxt, nxt = t;
    }
    if (!a->code_only && (g || dx)) { /* the stem */
        const long n0 = (long)B * c->width * c->res * c->res, HW = (long)c->res * c->res;
        memset(nxt, 0, sizeof(float) * (size_t)n0);
        if (c->smooth) silu_backward(nxt, cur, a->stem_bn, n0);
        else relu_backward(nxt, cur, a->stem_bn, n0);
        memset(dh, 0, sizeof(float) * (size_t)n0);
        const ConvShape s = stem_shape(c, B);
        if (a->blocked) {
            batchnorm16_backward(dh, g ? g->bn_w : NULL, g ? g->bn_b : NULL, nxt, a->stem_h, p->bn_w, a->stem_m,
                                 a->stem_r, B, c->width, HW, a->training);
            conv_dnnl_backward(&a->stem_dn, dx, g ? g->stem_w : NULL, dh, a->x_in, p->stem_w);
        } else {
            batchnorm_backward(dh, g ? g->bn_w : NULL, g ? g->bn_b : NULL, nxt, a->stem_h, p->bn_w, a->stem_m, a->stem_r,
                               B, c->width, HW, a->training);
            conv2d_nchw_backward(dx, g ? g->stem_w : NULL, NULL, dh, a->stem_cols, p->stem_w, &s);
        }
    }
}
