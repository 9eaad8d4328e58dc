#include "nn/block.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static int gated(const BlockConfig *c) { return c->act == ACT_GEGLU || c->act == ACT_SWIGLU; }
static int fc_cols(const BlockConfig *c) { return gated(c) ? 2 * c->hidden : c->hidden; }

void block_acts_alloc(BlockActs *a, const BlockConfig *c, int T, long att_size, const BlockContext *ctx,
                      int keep_input) {
    memset(a, 0, sizeof *a);
    const size_t W = (size_t)c->width, n = (size_t)T * W;
    a->T = T;
    if (keep_input) a->x_in = xalloc_floats(n);
    a->ln1 = xalloc_floats(n);
    a->ln1_mean = xalloc_floats((size_t)T);
    a->ln1_rstd = xalloc_floats((size_t)T);
    a->qkv = xalloc_floats(n * 3);
    a->att = xalloc_floats((size_t)att_size);
    a->attn = xalloc_floats(n);
    a->x_mid = xalloc_floats(n);
    if (c->cross_width > 0 && ctx) {
        a->Tk = ctx->Tk;
        a->lnx = xalloc_floats(n);
        a->lnx_mean = xalloc_floats((size_t)T);
        a->lnx_rstd = xalloc_floats((size_t)T);
        a->xq = xalloc_floats(n);
        a->xkv = xalloc_floats((size_t)ctx->Tk * 2 * W);
        a->xatt = xalloc_floats((size_t)ctx->att_size);
        a->xattn = xalloc_floats(n);
        a->x_mid2 = xalloc_floats(n);
    }
    a->ln2 = xalloc_floats(n);
    a->ln2_mean = xalloc_floats((size_t)T);
    a->ln2_rstd = xalloc_floats((size_t)T);
    a->fc = xalloc_floats((size_t)T * fc_cols(c));
    a->act = xalloc_floats((size_t)T * c->hidden);
    a->tmp = xalloc_floats(n);
    if (c->rope) a->pos = xmalloc(sizeof(int32_t) * (size_t)T);
}

void block_acts_free(BlockActs *a) {
    float *bufs[] = {a->x_in, a->ln1,    a->ln1_mean, a->ln1_rstd, a->qkv,   a->att,  a->attn,
                     a->x_mid, a->lnx,   a->lnx_mean, a->lnx_rstd, a->xq,    a->xkv,  a->xatt,
                     a->xattn, a->x_mid2, a->ln2,     a->ln2_mean, a->ln2_rstd, a->fc, a->act, a->tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(a->pos);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ norms */

static void norm_forward(const BlockConfig *c, float *out, float *mean, float *rstd, const float *in, const float *w,
                         const float *b, int T) {
    if (c->norm == NORM_RMS)
        rmsnorm_forward(out, rstd, in, w, T, c->width, c->eps);
    else
        layernorm_forward(out, mean, rstd, in, w, b, T, c->width, c->eps);
}

static void norm_backward(const BlockConfig *c, float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, const float *mean, const float *rstd, int T) {
    if (c->norm == NORM_RMS)
        rmsnorm_backward(din, dw, dout, in, w, rstd, T, c->width);
    else
        layernorm_backward(din, dw, db, dout, in, w, mean, rstd, T, c->width);
}

/* ------------------------------------------------------------ rotary (Q, K) */

/* Rotates the Q and K columns of qkv rows in place. */
static void rope_rows(const BlockConfig *c, float *qkv, const int32_t *pos, int T) {
    rope_qk_inplace(qkv, 3 * c->width, pos, T, c->heads, c->width / c->heads, c->rope_base, 0);
}

/* dQ, dK of the rotated vectors -> of the unrotated ones, in place (the rotation's transpose). */
static void rope_rows_backward(const BlockConfig *c, float *dqkv, const int32_t *pos, int T) {
    rope_qk_inplace(dqkv, 3 * c->width, pos, T, c->heads, c->width / c->heads, c->rope_base, 1);
}

static void positions(int32_t *pos, const Packing *pk, const int *pre, const int *new_start) {
    for (int s = 0; s < pk->nseq; s++) {
        const int first = pre ? pre[s] : 0, rows = pk->len[s] - first, at = new_start ? new_start[s] : pk->start[s];
        for (int i = 0; i < rows; i++) pos[at + i] = first + i;
    }
}

/* ----------------------------------------------------------------- forward */

/* Inference (no backward to feed) keeps only what the next step reads: the activation is the fc
 * product's epilogue, the projections add into the residual stream x in place. */
static int inference(const BlockActs *a) { return a->x_in == NULL; }

static GemmEpi act_epilogue(const BlockConfig *c) {
    return c->act == ACT_QUICKGELU ? GEMM_EPI_QUICKGELU : c->act == ACT_GELU ? GEMM_EPI_GELU : GEMM_EPI_NONE;
}

/* h is the residual stream before the MLP: x itself in inference, a kept copy when training. */
static void mlp_forward(const BlockConfig *c, const BlockParams *b, BlockActs *a, const float *h, float *x, int T) {
    const int W = c->width, Hd = c->hidden;
    const long n = (long)T * W;
    norm_forward(c, a->ln2, a->ln2_mean, a->ln2_rstd, h, b->ln2_w, b->ln2_b, T);
    if (h == x && act_epilogue(c) != GEMM_EPI_NONE) {
        gemm_mlp(c->gemm, x, a->ln2, b->fc_w, b->fc_b, b->proj_w, b->proj_b, T, W, Hd, act_epilogue(c), a->act);
        return;
    }
    gemm_linear(c->gemm, a->fc, a->ln2, b->fc_w, b->fc_b, T, W, fc_cols(c));
    switch (c->act) {
    case ACT_GELU: gelu_forward(a->act, a->fc, (long)T * Hd); break;
    case ACT_QUICKGELU: quickgelu_forward(a->act, a->fc, (long)T * Hd); break;
    case ACT_GEGLU: geglu_forward(a->act, a->fc, T, Hd); break;
    case ACT_SWIGLU: swiglu_rows_forward(a->act, a->fc, T, Hd); break;
    }
    if (h == x) {
        gemm_linear_epi(c->gemm, x, a->act, b->proj_w, b->proj_b, T, Hd, W, GEMM_EPI_ADD);
    } else {
        gemm_linear(c->gemm, a->tmp, a->act, b->proj_w, b->proj_b, T, Hd, W);
        add_forward(x, h, a->tmp, n);
    }
}

/* After the self-attention (a->attn filled): out projection and residual, cross-attention, MLP. */
static void block_forward_rest(const BlockConfig *c, const BlockParams *b, BlockActs *a, float *x, int T,
                               const BlockContext *ctx) {
    const int W = c->width;
    const long n = (long)T * W;
    const int infer = inference(a);
    const float *h = x;
    if (infer) {
        gemm_linear_epi(c->gemm, x, a->attn, b->out_w, b->out_b, T, W, W, GEMM_EPI_ADD);
    } else {
        gemm_linear(c->gemm, a->tmp, a->attn, b->out_w, b->out_b, T, W, W);
        add_forward(a->x_mid, x, a->tmp, n);
        h = a->x_mid;
    }
    if (c->cross_width > 0 && ctx) {
        norm_forward(c, a->lnx, a->lnx_mean, a->lnx_rstd, h, b->lnx_w, b->lnx_b, T);
        gemm_linear(c->gemm, a->xq, a->lnx, b->xq_w, b->xq_b, T, W, W);
        gemm_linear(c->gemm, a->xkv, ctx->x, b->xkv_w, b->xkv_b, ctx->Tk, c->cross_width, 2 * W);
        const AttnIn in = {a->xq, a->xkv, a->xkv + W, W, 2 * W, 2 * W};
        attention_general_forward(a->xattn, W, a->xatt, &in, ctx->pk, W, c->heads, 0);
        if (infer) {
            gemm_linear_epi(c->gemm, x, a->xattn, b->xout_w, b->xout_b, T, W, W, GEMM_EPI_ADD);
        } else {
            gemm_linear(c->gemm, a->tmp, a->xattn, b->xout_w, b->xout_b, T, W, W);
            add_forward(a->x_mid2, a->x_mid, a->tmp, n);
            h = a->x_mid2;
        }
    }
    mlp_forward(c, b, a, h, x, T);
}

void block_forward(const BlockConfig *c, const BlockParams *b, BlockActs *a, float *x, int T, const Packing *pk,
                   const BlockContext *ctx) {
    const int W = c->width;
    if (a->x_in) memcpy(a->x_in, x, sizeof(float) * (size_t)T * W);
    norm_forward(c, a->ln1, a->ln1_mean, a->ln1_rstd, x, b->ln1_w, b->ln1_b, T);
    gemm_linear(c->gemm, a->qkv, a->ln1, b->qkv_w, b->qkv_b, T, W, 3 * W);
    if (c->rope) {
        positions(a->pos, pk, NULL, NULL);
        rope_rows(c, a->qkv, a->pos, T);
    }
    attention_forward(a->attn, a->att, a->qkv, pk, W, c->heads, c->causal);
    block_forward_rest(c, b, a, x, T, ctx);
}

void block_forward_prefix(const BlockConfig *c, const BlockParams *b, BlockActs *a, float *x, int Tn,
                          const Packing *pk_full, const int *pre, const int *new_start, float *full_qkv,
                          float *full_attn) {
    const int W = c->width;
    norm_forward(c, a->ln1, a->ln1_mean, a->ln1_rstd, x, b->ln1_w, b->ln1_b, Tn);
    gemm_linear(c->gemm, a->qkv, a->ln1, b->qkv_w, b->qkv_b, Tn, W, 3 * W);
    if (c->rope) {
        positions(a->pos, pk_full, pre, new_start);
        rope_rows(c, a->qkv, a->pos, Tn);
    }
    for (int s = 0; s < pk_full->nseq; s++) {
        const int rows = pk_full->len[s] - pre[s];
        memcpy(full_qkv + (size_t)(pk_full->start[s] + pre[s]) * 3 * W, a->qkv + (size_t)new_start[s] * 3 * W,
               sizeof(float) * (size_t)rows * 3 * W);
    }
    attention_forward(full_attn, a->att, full_qkv, pk_full, W, c->heads, 1);
    for (int s = 0; s < pk_full->nseq; s++) {
        const int rows = pk_full->len[s] - pre[s];
        memcpy(a->attn + (size_t)new_start[s] * W, full_attn + (size_t)(pk_full->start[s] + pre[s]) * W,
               sizeof(float) * (size_t)rows * W);
    }
    block_forward_rest(c, b, a, x, Tn, NULL);
}

void block_forward_kv(const BlockConfig *c, const BlockParams *b, BlockActs *a, float *x, int Tn, const AttnPacking *pk,
                      float *kbuf, float *vbuf, const int32_t *pos) {
    const int W = c->width;
    norm_forward(c, a->ln1, a->ln1_mean, a->ln1_rstd, x, b->ln1_w, b->ln1_b, Tn);
    gemm_linear(c->gemm, a->qkv, a->ln1, b->qkv_w, b->qkv_b, Tn, W, 3 * W);
    if (c->rope) rope_rows(c, a->qkv, pos, Tn);
    for (int s = 0; s < pk->nseq; s++)
        for (int i = 0; i < pk->q_len[s]; i++) {
            const float *row = a->qkv + (size_t)(pk->q_start[s] + i) * 3 * W;
            const size_t at = (size_t)(pk->k_start[s] + pk->k_len[s] - pk->q_len[s] + i) * W;
            memcpy(kbuf + at, row + W, sizeof(float) * (size_t)W);
            memcpy(vbuf + at, row + 2 * W, sizeof(float) * (size_t)W);
        }
    const AttnIn in = {a->qkv, kbuf, vbuf, 3 * W, W, W};
    attention_general_forward(a->attn, W, a->att, &in, pk, W, c->heads, 1);
    block_forward_rest(c, b, a, x, Tn, NULL);
}

/* ---------------------------------------------------------------- backward */

#define G(field) (gb ? gb->field : NULL)

void block_backward(const BlockConfig *c, const BlockParams *b, BlockParams *gb, const BlockActs *a, float *dx, int T,
                    const Packing *pk, const BlockContext *ctx, float *dctx) {
    const int W = c->width, Hd = c->hidden, F = fc_cols(c);
    const long n = (long)T * W;
    const int cross = c->cross_width > 0 && ctx;
    const size_t wide = (size_t)T * (size_t)(Hd > 3 * W ? Hd : 3 * W);
    float *d4 = xcalloc(wide, sizeof(float)), *d4b = xcalloc((size_t)T * F, sizeof(float));
    float *dw = xcalloc((size_t)n, sizeof(float));
    const float *h = cross ? a->x_mid2 : a->x_mid;
    /* MLP: x_out = h + proj(act(fc(norm2(h)))); dx is dL/dx_out = dL/dh's direct part */
    gemm_linear_backward(c->gemm, d4, G(proj_w), G(proj_b), dx, a->act, b->proj_w, T, Hd, W);
    switch (c->act) {
    case ACT_GELU: gelu_backward(d4b, d4, a->fc, (long)T * Hd); break;
    case ACT_QUICKGELU: quickgelu_backward(d4b, d4, a->fc, (long)T * Hd); break;
    case ACT_GEGLU: geglu_backward(d4b, d4, a->fc, T, Hd); break;
    case ACT_SWIGLU: swiglu_rows_backward(d4b, d4, a->fc, T, Hd); break;
    }
    gemm_linear_backward(c->gemm, dw, G(fc_w), G(fc_b), d4b, a->ln2, b->fc_w, T, W, F);
    norm_backward(c, dx, G(ln2_w), G(ln2_b), dw, h, b->ln2_w, a->ln2_mean, a->ln2_rstd, T);
    if (cross) { /* h = x_mid + xout(attention(xq(normx(x_mid)), xkv(context))) */
        const int need_kv = gb || dctx;
        float *dxq = xcalloc((size_t)n, sizeof(float));
        float *dxkv = need_kv ? xcalloc((size_t)ctx->Tk * 2 * W, sizeof(float)) : NULL;
        memset(dw, 0, sizeof(float) * (size_t)n);
        gemm_linear_backward(c->gemm, dw, G(xout_w), G(xout_b), dx, a->xattn, b->xout_w, T, W, W);
        const AttnIn in = {a->xq, a->xkv, a->xkv + W, W, 2 * W, 2 * W};
        const AttnGrad g = {dxq, dxkv, dxkv ? dxkv + W : NULL, W, 2 * W, 2 * W, a->xatt_grad};
        attention_general_backward(&g, dw, W, a->xatt, &in, ctx->pk, W, c->heads, 0);
        if (need_kv) gemm_linear_backward(c->gemm, dctx, G(xkv_w), G(xkv_b), dxkv, ctx->x, b->xkv_w, ctx->Tk, c->cross_width, 2 * W);
        memset(dw, 0, sizeof(float) * (size_t)n);
        gemm_linear_backward(c->gemm, dw, G(xq_w), G(xq_b), dxq, a->lnx, b->xq_w, T, W, W);
        norm_backward(c, dx, G(lnx_w), G(lnx_b), dw, a->x_mid, b->lnx_w, a->lnx_mean, a->lnx_rstd, T);
        free(dxq);
        free(dxkv);
    }
    /* self-attention: x_mid = x_in + out(attention(qkv(norm1(x_in)))) */
    memset(dw, 0, sizeof(float) * (size_t)n);
    gemm_linear_backward(c->gemm, dw, G(out_w), G(out_b), dx, a->attn, b->out_w, T, W, W);
    float *dqkv = d4; /* reuse: 3W <= its columns */
    memset(dqkv, 0, sizeof(float) * (size_t)n * 3);
    attention_backward(dqkv, dw, a->att, a->qkv, pk, W, c->heads, c->causal);
    if (c->rope) rope_rows_backward(c, dqkv, a->pos, T);
    memset(dw, 0, sizeof(float) * (size_t)n);
    gemm_linear_backward(c->gemm, dw, G(qkv_w), G(qkv_b), dqkv, a->ln1, b->qkv_w, T, W, 3 * W);
    norm_backward(c, dx, G(ln1_w), G(ln1_b), dw, a->x_in, b->ln1_w, a->ln1_mean, a->ln1_rstd, T);
    free(d4);
    free(d4b);
    free(dw);
}

#undef G

double block_flops(const BlockConfig *c, int T, double att_pairs, int Tk) {
    const double W = c->width;
    /* qkv, out, fc, proj; then QK^T and PV over the attended pairs */
    double f = 2.0 * T * W * (3.0 * W + W + fc_cols(c) + c->hidden) + 4.0 * att_pairs * W;
    if (c->cross_width > 0) f += 2.0 * T * W * 2 * W + 2.0 * Tk * c->cross_width * 2 * W + 4.0 * T * Tk * W;
    return f;
}
