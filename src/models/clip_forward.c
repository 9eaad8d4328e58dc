/* The two CLIP towers, forward and backward, on one code path: inference runs the same
 * functions as training with one BlockActs shared by all layers and nothing kept for a backward.
 * Hooks the next models need: the stream after any layer (patch tokens), deep visual prompts
 * (VPT), every position's final hidden state of the text tower, and buffers that are reused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/half.h"
#include "models/clip_train.h"
#include "nn/block.h"

static void trace(const ClipTrace *tr, const char *name, const float *x, int rows, int cols, const Packing *pk) {
    if (tr && tr->fn) tr->fn(tr->user, name, x, rows, cols, pk);
}

/* ------------------------------------------------------------ activations */

BlockConfig clip_block_config(const ClipConfig *c, int text) {
    const int W = text ? c->t_width : c->v_width;
    return (BlockConfig){.width = W, .heads = text ? c->t_heads : c->v_heads, .hidden = 4 * W, .act = c->act,
                         .norm = NORM_LAYER, .eps = CLIP_LN_EPS, .causal = text};
}

/* buf grows to n floats when it holds fewer (*cap); contents are not kept. */
static float *grow_floats(float *buf, long n, long *cap) {
    if (n <= *cap && buf) return buf;
    free(buf);
    *cap = n;
    return xalloc_floats((size_t)(n > 0 ? n : 1));
}

static void free_layers(TowerActs *a) {
    for (int l = 0; l < a->cap_layers; l++) block_acts_free(&a->layers[l]);
    free(a->layers);
    a->layers = NULL;
    a->cap_layers = 0;
}

/* Room for n sequences (start and len are filled by the caller before tower_setup). */
static void reserve_seqs(TowerActs *a, int n) {
    if (n <= a->cap_n && a->start) return;
    free(a->start), free(a->len), free(a->pool_row), free(a->off);
    a->cap_n = n > 0 ? n : 1;
    a->start = xmalloc(sizeof(int) * (size_t)a->cap_n);
    a->len = xmalloc(sizeof(int) * (size_t)a->cap_n);
    a->pool_row = xmalloc(sizeof(int) * (size_t)a->cap_n);
    a->off = xmalloc(sizeof(long) * (size_t)a->cap_n);
    free(a->pool_in), free(a->pool_ln), free(a->pool_mean), free(a->pool_rstd);
    a->pool_in = a->pool_ln = a->pool_mean = a->pool_rstd = NULL;
}

/* Everything but the sequences: the stream, the blocks' activations, the pooled rows. */
static void tower_setup(TowerActs *a, int n_seq, int T, const BlockConfig *bc, int layers, int train) {
    const int W = bc->width, H = bc->heads, old_W = a->W;
    a->bc = *bc;
    a->n = n_seq;
    a->T = T;
    a->W = W;
    a->att_size = packing_att_offsets(a->off, a->len, n_seq, H);
    a->pk = (Packing){n_seq, a->start, a->len, a->off};
    const int n_layers = train ? layers : 1;
    if (W != old_W) { /* another tower's buffers: start over */
        free(a->pool_in), free(a->pool_ln), free(a->pool_mean), free(a->pool_rstd);
        a->pool_in = a->pool_ln = a->pool_mean = a->pool_rstd = NULL;
        a->cap_hid = 0;
    }
    if (T > a->cap_T || a->att_size > a->cap_att || n_layers != a->cap_layers || train != a->cap_train || W != old_W) {
        free_layers(a);
        if (a->x != a->x0) free(a->x);
        free(a->x0), free(a->mean0), free(a->rstd0);
        a->cap_T = T > 0 ? T : 1, a->cap_att = a->att_size, a->cap_train = train;
        a->x0 = xalloc_floats((size_t)a->cap_T * W);
        a->x = train ? xalloc_floats((size_t)a->cap_T * W) : a->x0;
        a->mean0 = xalloc_floats((size_t)a->cap_T);
        a->rstd0 = xalloc_floats((size_t)a->cap_T);
        a->layers = xcalloc((size_t)n_layers, sizeof(BlockActs));
        a->cap_layers = n_layers;
        for (int l = 0; l < n_layers; l++) block_acts_alloc(&a->layers[l], bc, a->cap_T, a->cap_att, NULL, train);
    }
    a->train = train;
    a->n_layers = n_layers;
    if (!a->pool_in) {
        a->pool_in = xalloc_floats((size_t)a->cap_n * W);
        a->pool_ln = xalloc_floats((size_t)a->cap_n * W);
        a->pool_mean = xalloc_floats((size_t)a->cap_n);
        a->pool_rstd = xalloc_floats((size_t)a->cap_n);
    }
}

void tower_acts_free(TowerActs *a) {
    if (!a) return;
    free_layers(a);
    if (a->x != a->x0) free(a->x);
    free(a->x0);
    free(a->mean0), free(a->rstd0);
    free(a->pool_in), free(a->pool_ln), free(a->pool_mean), free(a->pool_rstd);
    free(a->hidden), free(a->hid_mean), free(a->hid_rstd);
    free(a->start), free(a->len), free(a->pool_row), free(a->off);
    free(a->cols), free(a->patches);
    free(a->ids);
    memset(a, 0, sizeof *a);
}

void image_acts_reuse(TowerActs *a, const ClipModel *m, int B, int vpt_tokens, int vpt_layers, int train) {
    const ClipConfig *c = &m->cfg;
    const int G = c->image_res / c->patch, S = G * G + 1 + vpt_tokens;
    reserve_seqs(a, B);
    for (int b = 0; b < B; b++) a->start[b] = b * S, a->len[b] = S, a->pool_row[b] = b * S;
    BlockConfig bc = clip_block_config(c, 0);
    bc.gemm = m->gemm;
    tower_setup(a, B, B * S, &bc, c->v_layers, train);
    const ConvShape cs = {B, 3, c->image_res, c->image_res, c->v_width, c->patch, c->patch, 0};
    a->cols = grow_floats(a->cols, conv2d_cols_size(&cs), &a->cap_cols);
    a->patches = grow_floats(a->patches, (long)B * G * G * c->v_width, &a->cap_patch);
    a->vpt_tokens = vpt_tokens, a->vpt_layers = vpt_tokens ? vpt_layers : 0;
    a->vpt = NULL, a->dvpt = NULL, a->stop_layer = 0, a->hook = NULL;
}

void image_acts_init_vpt(TowerActs *a, const ClipModel *m, int B, int vpt_tokens, int vpt_layers, int train) {
    memset(a, 0, sizeof *a);
    image_acts_reuse(a, m, B, vpt_tokens, vpt_layers, train);
}

void image_acts_init(TowerActs *a, const ClipModel *m, int B, int train) { image_acts_init_vpt(a, m, B, 0, 0, train); }

int clip_text_len(const ClipModel *m, const int32_t *row, int n, Err *e) {
    const ClipConfig *c = &m->cfg;
    int pool = 0; /* argmax: the first occurrence of the largest id (EOT) */
    for (int k = 0; k < c->context; k++) {
        if (row[k] < 0 || row[k] >= c->vocab)
            return err_set(e, "text %d, position %d: token id %d is outside the vocabulary [0, %d)", n, k, row[k],
                           c->vocab);
        if (row[k] > row[pool]) pool = k;
    }
    return pool + 1;
}

int text_acts_reuse(TowerActs *a, const ClipModel *m, const int32_t *ids, int N, int train, int all_positions, Err *e) {
    const ClipConfig *c = &m->cfg;
    const int ctx = c->context;
    reserve_seqs(a, N);
    int T = 0;
    for (int n = 0; n < N; n++) {
        const int len = clip_text_len(m, ids + (size_t)n * ctx, n, e);
        if (len < 0) return -1;
        a->start[n] = T;
        a->len[n] = all_positions ? ctx : len;
        a->pool_row[n] = T + len - 1; /* the EOT row */
        T += a->len[n];
    }
    BlockConfig bc = clip_block_config(c, 1);
    bc.gemm = m->gemm;
    const long cap_before = a->cap_T;
    tower_setup(a, N, T, &bc, c->t_layers, train);
    if (!a->ids || a->cap_T != cap_before) {
        free(a->ids);
        a->ids = xmalloc(sizeof(int32_t) * (size_t)a->cap_T); /* packed ids, for the embedding backward */
    }
    for (int n = 0; n < N; n++) memcpy(a->ids + a->start[n], ids + (size_t)n * ctx, sizeof(int32_t) * (size_t)a->len[n]);
    a->ctx = NULL, a->dctx = NULL, a->n_ctx = 0, a->stop_layer = 0;
    return 0;
}

int text_acts_init(TowerActs *a, const ClipModel *m, const int32_t *ids, int N, int train, Err *e) {
    memset(a, 0, sizeof *a);
    if (text_acts_reuse(a, m, ids, N, train, 0, e) == 0) return 0;
    tower_acts_free(a);
    return -1;
}

/* ------------------------------------------------------------------ towers */

/* VPT-deep: block l's input rows 1..P of every sequence are the prompts of layer l (plus the
 * hook's per-image offsets from its layer on). */
static void put_prompts(TowerActs *a, int l) {
    const int P = a->vpt_tokens, W = a->W;
    const float *off = a->hook && l >= a->hook->layer ? a->hook->off : NULL;
    for (int n = 0; n < a->n; n++) {
        float *dst = a->x + (size_t)(a->start[n] + 1) * W;
        memcpy(dst, a->vpt + ((size_t)l * P) * W, sizeof(float) * (size_t)P * W);
        if (off)
            for (size_t k = 0; k < (size_t)P * W; k++) dst[k] += off[(size_t)n * P * W + k];
    }
}

static int blocks_run(const TowerActs *a, int L) { return a->stop_layer > 0 && a->stop_layer < L ? a->stop_layer : L; }

static void run_blocks(const BlockParams *blocks, int L, TowerActs *a, const char *prefix, const ClipTrace *tr) {
    const int nl = blocks_run(a, L);
    for (int l = 0; l < nl; l++) {
        if (a->hook && l == a->hook->layer) a->hook->forward(a->hook->user, a);
        if (a->vpt && l < a->vpt_layers) put_prompts(a, l);
        block_forward(&a->bc, &blocks[l], &a->layers[a->train ? l : 0], a->x, a->T, &a->pk, NULL);
        char nm[32];
        snprintf(nm, sizeof nm, "%s.block%d", prefix, l);
        trace(tr, nm, a->x, a->T, a->W, &a->pk);
    }
}

/* Final LN of each sequence's pooled row, then the projection to the embedding. */
static void pool_project(TowerActs *a, const float *ln_w, const float *ln_b, const float *proj, int E, float *out) {
    for (int n = 0; n < a->n; n++)
        memcpy(a->pool_in + (size_t)n * a->W, a->x + (size_t)a->pool_row[n] * a->W, sizeof(float) * (size_t)a->W);
    layernorm_forward(a->pool_ln, a->pool_mean, a->pool_rstd, a->pool_in, ln_w, ln_b, a->n, a->W, CLIP_LN_EPS);
    gemm_linear(a->bc.gemm, out, a->pool_ln, proj, NULL, a->n, a->W, E);
}

void image_forward(const ClipModel *m, TowerActs *a, const float *pixels, float *out, const ClipTrace *tr) {
    const ClipConfig *c = &m->cfg;
    const int B = a->n, W = c->v_width, G = c->image_res / c->patch, P = G * G, V = a->vpt_tokens, S = P + 1 + V;
    ConvShape cs = {B, 3, c->image_res, c->image_res, W, c->patch, c->patch, 0};
    conv2d_forward(a->patches, a->cols, pixels, m->conv1_w, NULL, &cs);
    trace(tr, "visual.patch_embed", a->patches, B * P, W, NULL);
#pragma omp parallel for
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            float *row = a->x0 + ((size_t)b * S + s) * W;
            if (s >= 1 && s <= V) { /* a prompt row: set before the first block */
                memset(row, 0, sizeof(float) * (size_t)W);
                continue;
            }
            const int t = s > V ? s - V : 0; /* the token's position */
            const float *src = t == 0 ? m->class_emb : a->patches + ((size_t)b * P + t - 1) * W;
            for (int k = 0; k < W; k++) row[k] = src[k] + m->v_pos[(size_t)t * W + k];
        }
    trace(tr, "visual.ln_pre_input", a->x0, a->T, W, &a->pk);
    layernorm_forward(a->x, a->mean0, a->rstd0, a->x0, m->ln_pre_w, m->ln_pre_b, a->T, W, CLIP_LN_EPS);
    trace(tr, "visual.ln_pre", a->x, a->T, W, &a->pk);
    run_blocks(m->v_blocks, c->v_layers, a, "visual", tr);
    if (!out) return; /* the stream is what the caller wants (patch tokens) */
    pool_project(a, m->ln_post_w, m->ln_post_b, m->v_proj, c->embed_dim, out);
    trace(tr, "visual.ln_post_cls", a->pool_ln, B, W, NULL);
}

void clip_token_row(const ClipModel *m, int32_t id, float *dst) {
    const int W = m->cfg.t_width;
    if (m->tok_emb) {
        memcpy(dst, m->tok_emb + (size_t)id * W, (size_t)W * sizeof(float));
        return;
    }
    const StTensor *t = m->tok_src;
    const uint8_t *p = t->data + (size_t)id * W * st_dtype_size(t->dtype);
    if (t->dtype == ST_F32) {
        memcpy(dst, p, (size_t)W * sizeof(float));
    } else {
        for (int k = 0; k < W; k++) {
            uint16_t h = (uint16_t)(p[2 * k] | p[2 * k + 1] << 8);
            dst[k] = t->dtype == ST_F16 ? half_to_float(h) : bf16_to_float(h);
        }
    }
}

void text_forward(const ClipModel *m, TowerActs *a, float *out, const ClipTrace *tr) {
    const ClipConfig *c = &m->cfg;
    const int W = c->t_width;
    /* text has no pre-LN: the embedding sum is the residual stream itself */
#pragma omp parallel for schedule(dynamic)
    for (int n = 0; n < a->n; n++)
        for (int k = 0; k < a->len[n]; k++) {
            float *r = a->x + (size_t)(a->start[n] + k) * W;
            if (a->ctx && k >= 1 && k <= a->n_ctx)
                memcpy(r, a->ctx + ((size_t)n * a->n_ctx + k - 1) * W, sizeof(float) * (size_t)W);
            else
                clip_token_row(m, a->ids[a->start[n] + k], r);
            for (int j = 0; j < W; j++) r[j] += m->t_pos[(size_t)k * W + j];
        }
    trace(tr, "text.embed", a->x, a->T, W, &a->pk);
    run_blocks(m->t_blocks, c->t_layers, a, "text", tr);
    if (tr && tr->fn) { /* ln_final is per row: computing it on all rows only serves the trace */
        float *all = xalloc_floats((size_t)a->T * W);
        layernorm_forward(all, NULL, NULL, a->x, m->ln_final_w, m->ln_final_b, a->T, W, CLIP_LN_EPS);
        trace(tr, "text.ln_final", all, a->T, W, &a->pk);
        free(all);
    }
    if (out) pool_project(a, m->ln_final_w, m->ln_final_b, m->t_proj, c->embed_dim, out);
}

void clip_text_hidden_forward(const ClipModel *m, TowerActs *a, float *out) {
    const int W = a->W, ctx = m->cfg.context;
    if (a->cap_hid < a->cap_T) {
        free(a->hidden), free(a->hid_mean), free(a->hid_rstd);
        a->cap_hid = a->cap_T;
        a->hidden = xalloc_floats((size_t)a->cap_hid * W);
        a->hid_mean = xalloc_floats((size_t)a->cap_hid);
        a->hid_rstd = xalloc_floats((size_t)a->cap_hid);
    }
    layernorm_forward(a->hidden, a->hid_mean, a->hid_rstd, a->x, m->ln_final_w, m->ln_final_b, a->T, W, CLIP_LN_EPS);
    if (!out) return;
    memset(out, 0, sizeof(float) * (size_t)a->n * ctx * W);
    for (int n = 0; n < a->n; n++)
        memcpy(out + (size_t)n * ctx * W, a->hidden + (size_t)a->start[n] * W, sizeof(float) * (size_t)a->len[n] * W);
}

void clip_text_forward_context(const ClipModel *m, TowerActs *a, const int32_t *ids, int n, const float *ctx, int nctx,
                               float *rep, float *out, int train) {
    Err e = {{0}};
    text_acts_init(a, m, ids, n, train, &e); /* the ids were built by clip_context_ids, and checked there */
    const int W = m->cfg.t_width;
    for (int i = 0; i < n; i++) memcpy(rep + (size_t)i * nctx * W, ctx, sizeof(float) * (size_t)nctx * W);
    a->ctx = rep, a->n_ctx = nctx;
    text_forward(m, a, out, NULL);
}

/* ---------------------------------------------------------------- backward */

/* dL/d(features) -> dL/d(residual stream) at the pooled rows (dx zeroed elsewhere).
 * The trace gets the gradient of the final LN's output at the pooled rows: as [n, W] (image) or
 * scattered into a zero [T, W] matrix (text, as the reference stores all positions). */
static void pool_project_backward(const TowerActs *a, const float *ln_w, const float *proj, float *g_ln_w, float *g_ln_b,
                                  float *g_proj, int E, const float *dout, float *dx, const ClipTrace *tr,
                                  const char *ln_name, int scatter) {
    float *dln = xcalloc((size_t)a->n * a->W, sizeof(float)), *din = xcalloc((size_t)a->n * a->W, sizeof(float));
    gemm_linear_backward(a->bc.gemm, dln, g_proj, NULL, dout, a->pool_ln, proj, a->n, a->W, E);
    if (tr && tr->fn && !scatter) trace(tr, ln_name, dln, a->n, a->W, NULL);
    if (tr && tr->fn && scatter) {
        float *full = xcalloc((size_t)a->T * a->W, sizeof(float));
        for (int n = 0; n < a->n; n++)
            memcpy(full + (size_t)a->pool_row[n] * a->W, dln + (size_t)n * a->W, sizeof(float) * (size_t)a->W);
        trace(tr, ln_name, full, a->T, a->W, &a->pk);
        free(full);
    }
    layernorm_backward(din, g_ln_w, g_ln_b, dln, a->pool_in, ln_w, a->pool_mean, a->pool_rstd, a->n, a->W);
    memset(dx, 0, sizeof(float) * (size_t)a->T * a->W);
    for (int n = 0; n < a->n; n++)
        for (int k = 0; k < a->W; k++) dx[(size_t)a->pool_row[n] * a->W + k] += din[(size_t)n * a->W + k];
    free(dln);
    free(din);
}

#define GP(field) (g ? g->field : NULL) /* a parameter gradient, or none for a frozen tower */

/* dx: gradient of the last block's output on entry, of the first block's input on return. The trace
 * gets the gradient of each block's output ("<prefix>.blockN") and of the stack's input (in_name).
 * Prompt rows (VPT) hand their gradient to dvpt at each layer they were put in. */
static void blocks_backward(const BlockParams *blocks, BlockParams *gblocks, int L, const TowerActs *a, float *dx,
                            const ClipTrace *tr, const char *prefix, const char *in_name) {
    for (int l = blocks_run(a, L) - 1; l >= 0; l--) {
        char nm[32];
        snprintf(nm, sizeof nm, "%s.block%d", prefix, l);
        trace(tr, nm, dx, a->T, a->W, &a->pk);
        block_backward(&a->bc, &blocks[l], gblocks ? &gblocks[l] : NULL, &a->layers[l], dx, a->T, &a->pk, NULL, NULL);
        const int hooked = a->hook && a->hook->doff && l >= a->hook->layer;
        if (a->vpt && l < a->vpt_layers)
            for (int n = 0; n < a->n; n++)
                for (int p = 0; p < a->vpt_tokens; p++) {
                    float *d = dx + (size_t)(a->start[n] + 1 + p) * a->W;
                    if (a->dvpt)
                        for (int k = 0; k < a->W; k++) a->dvpt[((size_t)l * a->vpt_tokens + p) * a->W + k] += d[k];
                    if (hooked)
                        for (int k = 0; k < a->W; k++)
                            a->hook->doff[((size_t)n * a->vpt_tokens + p) * a->W + k] += d[k];
                    memset(d, 0, sizeof(float) * (size_t)a->W); /* the prompts replaced what was there */
                }
        if (a->hook && a->hook->doff && l == a->hook->layer) a->hook->backward(a->hook->user, a, a->hook->doff, dx);
    }
    trace(tr, in_name, dx, a->T, a->W, &a->pk);
}

/* From dx = dL/d(stream after the blocks that ran) down to the patch embedding. */
static void image_backward_stream(const ClipModel *m, ClipModel *g, const TowerActs *a, float *dx, const ClipTrace *tr) {
    const ClipConfig *c = &m->cfg;
    const int B = a->n, W = c->v_width, G = c->image_res / c->patch, P = G * G, V = a->vpt_tokens, S = P + 1 + V;
    float *dx0 = xcalloc((size_t)a->T * W, sizeof(float));
    if (a->hook && a->hook->doff) memset(a->hook->doff, 0, sizeof(float) * (size_t)B * V * W);
    blocks_backward(m->v_blocks, GP(v_blocks), c->v_layers, a, dx, tr, "visual", "visual.ln_pre");
    layernorm_backward(dx0, GP(ln_pre_w), GP(ln_pre_b), dx, a->x0, m->ln_pre_w, a->mean0, a->rstd0, a->T, W);
    trace(tr, "visual.ln_pre_input", dx0, a->T, W, &a->pk);
    float *dpatch = xalloc_floats((size_t)B * P * W);
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            if (s >= 1 && s <= V) continue; /* prompt rows: their gradient went to dvpt */
            const int t = s > V ? s - V : 0;
            const float *row = dx0 + ((size_t)b * S + s) * W;
            if (t == 0) {
                if (g)
                    for (int k = 0; k < W; k++) g->class_emb[k] += row[k];
            } else {
                memcpy(dpatch + ((size_t)b * P + t - 1) * W, row, sizeof(float) * (size_t)W);
            }
            if (g)
                for (int k = 0; k < W; k++) g->v_pos[(size_t)t * W + k] += row[k];
        }
    trace(tr, "visual.patch_embed", dpatch, B * P, W, NULL);
    ConvShape cs = {B, 3, c->image_res, c->image_res, W, c->patch, c->patch, 0};
    if (g) conv2d_backward(NULL, g->conv1_w, NULL, dpatch, a->cols, m->conv1_w, &cs);
    free(dpatch);
    free(dx0);
}

void image_backward(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dout, const ClipTrace *tr) {
    const ClipConfig *c = &m->cfg;
    float *dx = xalloc_floats((size_t)a->T * c->v_width);
    pool_project_backward(a, m->ln_post_w, m->v_proj, GP(ln_post_w), GP(ln_post_b), GP(v_proj), c->embed_dim, dout, dx, tr,
                          "visual.ln_post_cls", 0);
    image_backward_stream(m, g, a, dx, tr);
    free(dx);
}

void image_backward_tokens(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dtok, const ClipTrace *tr) {
    float *dx = xalloc_floats((size_t)a->T * a->W);
    memcpy(dx, dtok, sizeof(float) * (size_t)a->T * a->W);
    image_backward_stream(m, g, a, dx, tr);
    free(dx);
}

/* From dx = dL/d(stream after the last block) down to the embeddings and the context. */
static void text_backward_stream(const ClipModel *m, ClipModel *g, const TowerActs *a, float *dx, const ClipTrace *tr) {
    const ClipConfig *c = &m->cfg;
    const int W = c->t_width;
    blocks_backward(m->t_blocks, GP(t_blocks), c->t_layers, a, dx, tr, "text", "text.embed");
    if (g)
        for (int n = 0; n < a->n; n++)
            for (int k = 0; k < a->len[n]; k++)
                for (int j = 0; j < W; j++) g->t_pos[(size_t)k * W + j] += dx[(size_t)(a->start[n] + k) * W + j];
    if (a->ctx) /* context rows: their gradient goes to dctx, not to the placeholder token's row */
        for (int n = 0; n < a->n; n++)
            for (int k = 1; k <= a->n_ctx && k < a->len[n]; k++) {
                float *d = dx + (size_t)(a->start[n] + k) * W;
                if (a->dctx)
                    for (int j = 0; j < W; j++) a->dctx[((size_t)n * a->n_ctx + k - 1) * W + j] += d[j];
                memset(d, 0, sizeof(float) * (size_t)W);
            }
    if (g) embedding_backward(g->tok_emb, dx, a->ids, a->T, W);
}

void text_backward(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dout, const ClipTrace *tr) {
    const ClipConfig *c = &m->cfg;
    float *dx = xalloc_floats((size_t)a->T * c->t_width);
    pool_project_backward(a, m->ln_final_w, m->t_proj, GP(ln_final_w), GP(ln_final_b), GP(t_proj), c->embed_dim, dout, dx,
                          tr, "text.ln_final", 1);
    text_backward_stream(m, g, a, dx, tr);
    free(dx);
}

void text_backward_hidden(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dhidden) {
    const int W = a->W, ctx = m->cfg.context;
    float *dh = xalloc_floats((size_t)a->T * W), *dx = xcalloc((size_t)a->T * W, sizeof(float));
    for (int n = 0; n < a->n; n++)
        memcpy(dh + (size_t)a->start[n] * W, dhidden + (size_t)n * ctx * W, sizeof(float) * (size_t)a->len[n] * W);
    layernorm_backward(dx, GP(ln_final_w), GP(ln_final_b), dh, a->x, m->ln_final_w, a->hid_mean, a->hid_rstd, a->T, W);
    text_backward_stream(m, g, a, dx, NULL);
    free(dh), free(dx);
}

/* ------------------------------------------------------------------- loss */

float clip_contrastive_loss(const float *img, const float *txt, int B, int E, float logit_scale, float *dimg,
                            float *dtxt, float *dscale, float *logits_out) {
    float *in = xalloc_floats((size_t)B * E), *tn = xalloc_floats((size_t)B * E);
    float *ni = xalloc_floats((size_t)B), *nt = xalloc_floats((size_t)B);
    float *logits = xalloc_floats((size_t)B * B), *lt = xalloc_floats((size_t)B * B);
    float *p = xalloc_floats((size_t)B * B), *pt = xalloc_floats((size_t)B * B);
    int32_t *labels = xmalloc(sizeof(int32_t) * (size_t)B);
    for (int i = 0; i < B; i++) labels[i] = i;
    const float scale = expf(logit_scale);
    l2norm_forward(in, ni, img, B, E);
    l2norm_forward(tn, nt, txt, B, E);
    sgemm(false, true, B, B, E, scale, in, E, tn, E, 0.0f, logits, B);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) lt[(size_t)j * B + i] = logits[(size_t)i * B + j];
    float loss = 0.5f * (cross_entropy_forward(p, logits, labels, B, B) + cross_entropy_forward(pt, lt, labels, B, B));
    if (logits_out) memcpy(logits_out, logits, sizeof(float) * (size_t)B * B);
    if (dimg || dtxt || dscale) {
        /* dL/dlogits = 0.5 * (CE grad of the rows + transpose of the CE grad of the columns) */
        float *dl = xcalloc((size_t)B * B, sizeof(float)), *dlt = xcalloc((size_t)B * B, sizeof(float));
        cross_entropy_backward(dl, p, labels, B, B, 0.5f);
        cross_entropy_backward(dlt, pt, labels, B, B, 0.5f);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < B; j++) dl[(size_t)i * B + j] += dlt[(size_t)j * B + i];
        if (dscale) {
            double s = 0; /* logits = e^s * cos, so dL/ds = sum dl * logits */
            for (long k = 0; k < (long)B * B; k++) s += (double)dl[k] * logits[k];
            *dscale += (float)s;
        }
        float *dn = xalloc_floats((size_t)B * E);
        if (dimg) {
            sgemm(false, false, B, E, B, scale, dl, B, tn, E, 0.0f, dn, E);
            l2norm_backward(dimg, dn, in, ni, B, E);
        }
        if (dtxt) {
            sgemm(true, false, B, E, B, scale, dl, B, in, E, 0.0f, dn, E);
            l2norm_backward(dtxt, dn, tn, nt, B, E);
        }
        free(dn), free(dl), free(dlt);
    }
    free(in), free(tn), free(ni), free(nt), free(logits), free(lt), free(p), free(pt), free(labels);
    return loss;
}
