/* VPT-deep tokens and InstaPG (the header says what each is and which part is our reconstruction). */
#include "models/clip_prompts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"

static NnParam *entry(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *key,
                      NnInit init) {
    NnParam *p = nn_add(t, slot, ndim, d0, d1, d2, 0);
    nn_key(p, 0, "%s", key);
    nn_key(p, 1, "%s", key);
    p->init = init;
    p->decay = 0; /* prompts and a small generator: no weight decay (VPT trains its tokens without) */
    return p;
}

void clip_prompts_declare(NnTable *t, ClipImagePrompts *p, const ClipConfig *c, int tokens, int layers, int pg_layer) {
    memset(p, 0, sizeof *p);
    const int first = t->n, W = c->v_width;
    p->tokens = tokens, p->layers = layers, p->pg_layer = pg_layer;
    p->width = W, p->heads = c->v_heads, p->grid = c->image_res / c->patch;
    const NnInit N02 = {INIT_NORMAL, 0.02f}, ZERO = {INIT_ZEROS, 0}, ONE = {INIT_ONES, 0};
    entry(t, &p->vpt, 3, layers, tokens, W, "vpt.tokens", N02);
    if (pg_layer >= 0) {
        p->pg_cfg = (BlockConfig){.width = W, .heads = c->v_heads, .hidden = W, .act = ACT_GELU, .norm = NORM_LAYER,
                                  .eps = CLIP_LN_EPS, .causal = 0, .cross_width = W};
        BlockParams *b = &p->pg;
        struct {
            float **slot;
            int64_t d0, d1;
            const char *name;
            NnInit init;
        } e[] = {
            {&p->pg_ctx_w, W, 0, "instapg.ctx_ln.weight", ONE}, {&p->pg_ctx_b, W, 0, "instapg.ctx_ln.bias", ZERO},
            {&b->ln1_w, W, 0, "instapg.ln_1.weight", ONE},      {&b->ln1_b, W, 0, "instapg.ln_1.bias", ZERO},
            {&b->qkv_w, 3 * W, W, "instapg.attn.in_proj_weight", N02}, {&b->qkv_b, 3 * W, 0, "instapg.attn.in_proj_bias", ZERO},
            {&b->out_w, W, W, "instapg.attn.out_proj.weight", ZERO}, {&b->out_b, W, 0, "instapg.attn.out_proj.bias", ZERO},
            {&b->lnx_w, W, 0, "instapg.ln_x.weight", ONE},      {&b->lnx_b, W, 0, "instapg.ln_x.bias", ZERO},
            {&b->xq_w, W, W, "instapg.cross.q.weight", N02},    {&b->xq_b, W, 0, "instapg.cross.q.bias", ZERO},
            {&b->xkv_w, 2 * W, W, "instapg.cross.kv.weight", N02}, {&b->xkv_b, 2 * W, 0, "instapg.cross.kv.bias", ZERO},
            {&b->xout_w, W, W, "instapg.cross.out.weight", ZERO}, {&b->xout_b, W, 0, "instapg.cross.out.bias", ZERO},
            {&b->ln2_w, W, 0, "instapg.ln_2.weight", ONE},      {&b->ln2_b, W, 0, "instapg.ln_2.bias", ZERO},
            {&b->fc_w, W, W, "instapg.mlp.fc.weight", N02},     {&b->fc_b, W, 0, "instapg.mlp.fc.bias", ZERO},
            {&b->proj_w, W, W, "instapg.mlp.proj.weight", ZERO}, {&b->proj_b, W, 0, "instapg.mlp.proj.bias", ZERO},
        };
        for (size_t i = 0; i < sizeof e / sizeof *e; i++)
            entry(t, e[i].slot, e[i].d1 ? 2 : 1, e[i].d0, e[i].d1, 0, e[i].name, e[i].init);
    }
    for (int i = first; i < t->n; i++) p->n_params += t->p[i].count;
}

void clip_prompts_alloc(ClipImagePrompts *p, const ClipConfig *c, int tokens, int layers, int pg_layer) {
    NnTable t = {0};
    clip_prompts_declare(&t, p, c, tokens, layers, pg_layer);
    p->table = t;
    p->arena = nn_arena_layout(&p->table, 0, &p->n_params);
    memset(p->arena, 0, sizeof(float) * (size_t)p->n_params);
}

void clip_prompts_init_random(ClipImagePrompts *p, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    nn_init(&p->table, &r);
}

void clip_prompts_free(ClipImagePrompts *p) {
    if (!p) return;
    nn_table_free(&p->table);
    free(p->arena);
    memset(p, 0, sizeof *p);
}

long clip_prompts_count(const ClipImagePrompts *p, int with_pg) {
    long n = (long)p->layers * p->tokens * p->width;
    return with_pg ? p->n_params : n;
}

/* ------------------------------------------------------------------ the run */

static void run_reserve(ClipPromptRun *r, int B) {
    const ClipImagePrompts *p = r->p;
    const int P = p->tokens, W = p->width, G2 = p->grid * p->grid;
    r->cap_B = B;
    r->off = xcalloc((size_t)B * P * W, sizeof(float));
    r->doff = xcalloc((size_t)B * P * W, sizeof(float));
    if (p->pg_layer < 0) return;
    r->q_start = xmalloc(sizeof(int) * (size_t)B), r->q_len = xmalloc(sizeof(int) * (size_t)B);
    r->k_start = xmalloc(sizeof(int) * (size_t)B), r->k_len = xmalloc(sizeof(int) * (size_t)B);
    r->self_off = xmalloc(sizeof(long) * (size_t)B), r->cross_off = xmalloc(sizeof(long) * (size_t)B);
    r->q = xalloc_floats((size_t)B * P * W);
    r->ctx_in = xalloc_floats((size_t)B * G2 * W), r->ctx_ln = xalloc_floats((size_t)B * G2 * W);
    r->ctx_mean = xalloc_floats((size_t)B * G2), r->ctx_rstd = xalloc_floats((size_t)B * G2);
    for (int b = 0; b < B; b++) r->q_start[b] = b * P, r->q_len[b] = P, r->k_start[b] = b * G2, r->k_len[b] = G2;
    const long self_att = packing_att_offsets(r->self_off, r->q_len, B, p->heads);
    const long cross_att = attn_packing_offsets(r->cross_off, r->q_len, r->k_len, B, p->heads);
    r->ctx = (BlockContext){r->ctx_ln, B * G2, &r->apk, cross_att};
    block_acts_alloc(&r->blk, &p->pg_cfg, B * P, self_att, &r->ctx, 1);
}

/* Before block k: read the image's patch rows, run the generator on the layer-k tokens. */
static void pg_forward(void *user, TowerActs *a) {
    ClipPromptRun *r = user;
    const ClipImagePrompts *p = r->p;
    const int B = a->n, P = p->tokens, W = p->width, G2 = p->grid * p->grid, k = p->pg_layer;
    for (int b = 0; b < B; b++) {
        memcpy(r->ctx_in + (size_t)b * G2 * W, a->x + (size_t)(a->start[b] + 1 + P) * W, sizeof(float) * (size_t)G2 * W);
        memcpy(r->q + (size_t)b * P * W, p->vpt + (size_t)k * P * W, sizeof(float) * (size_t)P * W);
    }
    layernorm_forward(r->ctx_ln, r->ctx_mean, r->ctx_rstd, r->ctx_in, p->pg_ctx_w, p->pg_ctx_b, B * G2, W, CLIP_LN_EPS);
    r->pk = (Packing){B, r->q_start, r->q_len, r->self_off};
    r->apk = (AttnPacking){B, r->q_start, r->q_len, r->k_start, r->k_len, r->cross_off};
    r->ctx.Tk = B * G2;
    block_forward(&p->pg_cfg, &p->pg, &r->blk, r->q, B * P, &r->pk, &r->ctx);
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < (size_t)P * W; i++)
            r->off[(size_t)b * P * W + i] = r->q[(size_t)b * P * W + i] - p->vpt[(size_t)k * P * W + i];
}

/* off = block(vpt[k]) - vpt[k]: doff flows through the block to vpt[k] (minus itself), to the
 * generator's weights, and through the context LN into the patch rows of the stream. */
static void pg_backward(void *user, const TowerActs *a, const float *doff, float *dx) {
    ClipPromptRun *r = user;
    const ClipImagePrompts *p = r->p;
    ClipImagePrompts *g = r->g;
    const int B = a->n, P = p->tokens, W = p->width, G2 = p->grid * p->grid, k = p->pg_layer;
    float *dq = xalloc_floats((size_t)B * P * W);
    memcpy(dq, doff, sizeof(float) * (size_t)B * P * W);
    float *dctx = xcalloc((size_t)B * G2 * W, sizeof(float));
    block_backward(&p->pg_cfg, &p->pg, g ? &g->pg : NULL, &r->blk, dq, B * P, &r->pk, &r->ctx, dctx);
    if (g)
        for (int b = 0; b < B; b++)
            for (size_t i = 0; i < (size_t)P * W; i++)
                g->vpt[(size_t)k * P * W + i] += dq[(size_t)b * P * W + i] - doff[(size_t)b * P * W + i];
    float *din = xcalloc((size_t)B * G2 * W, sizeof(float));
    layernorm_backward(din, g ? g->pg_ctx_w : NULL, g ? g->pg_ctx_b : NULL, dctx, r->ctx_in, p->pg_ctx_w, r->ctx_mean,
                       r->ctx_rstd, B * G2, W);
    for (int b = 0; b < B; b++) {
        float *d = dx + (size_t)(a->start[b] + 1 + P) * W;
        const float *s = din + (size_t)b * G2 * W;
        for (size_t i = 0; i < (size_t)G2 * W; i++) d[i] += s[i];
    }
    free(dq), free(dctx), free(din);
}

void clip_prompts_bind(ClipPromptRun *r, const ClipImagePrompts *p, ClipImagePrompts *g, TowerActs *a, int train) {
    a->vpt = p->vpt;
    a->dvpt = g ? g->vpt : NULL;
    a->hook = NULL;
    if (p->pg_layer < 0) return;
    if (!r->off || r->p != p || a->n > r->cap_B || train != r->train) {
        clip_prompt_run_free(r);
        r->p = p, r->train = train;
        run_reserve(r, a->n);
    }
    r->g = g;
    r->B = a->n;
    r->hook = (TowerHook){p->pg_layer, pg_forward, pg_backward, r, r->off, train ? r->doff : NULL};
    a->hook = &r->hook;
}

void clip_prompt_run_free(ClipPromptRun *r) {
    block_acts_free(&r->blk);
    free(r->q_start), free(r->q_len), free(r->k_start), free(r->k_len), free(r->self_off), free(r->cross_off);
    free(r->q), free(r->ctx_in), free(r->ctx_ln), free(r->ctx_mean), free(r->ctx_rstd), free(r->off), free(r->doff);
    memset(r, 0, sizeof *r);
}

int clip_encode_image_prompted(const ClipModel *m, const ClipImagePrompts *p, const float *pixels, int B, float *out,
                               Err *e) {
    if (!m->cfg.has_vision) return err_set(e, "this model has no image tower");
    if (p->width != m->cfg.v_width || p->layers > m->cfg.v_layers || p->grid != m->cfg.image_res / m->cfg.patch)
        return err_set(e, "the prompts were made for another image tower (width %d, %d prompted layers, %dx%d patches; "
                          "this model: width %d, %d layers, %dx%d patches)",
                       p->width, p->layers, p->grid, p->grid, m->cfg.v_width, m->cfg.v_layers,
                       m->cfg.image_res / m->cfg.patch, m->cfg.image_res / m->cfg.patch);
    if (B <= 0) return 0;
    TowerActs a = {0};
    ClipPromptRun r = {0};
    image_acts_reuse(&a, m, B, p->tokens, p->layers, 0);
    clip_prompts_bind(&r, p, NULL, &a, 0);
    image_forward(m, &a, pixels, out, NULL);
    clip_prompt_run_free(&r);
    tower_acts_free(&a);
    return 0;
}
