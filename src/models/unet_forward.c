/* The UNet's forward and backward: the program of unet.c run forwards with its skips, then in
 * reverse. Every step's output has its own buffer (a push aliases its input) and, in training,
 * a gradient buffer; backward steps ACCUMULATE into their input's gradient, so a pushed tensor
 * gets both the gradient of the step after it and that of the concatenation that read it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "models/unet.h"

static const float ATTN_NORM_EPS = 1e-6f;

typedef struct {
    int HW, T;
    float *gn, *mean, *rstd, *tok, *p, *q; /* norm out, stats, tokens, proj_in out (blocks in place), proj_out out */
    float *dq, *dtok;                      /* backward workspaces [T, C] */
    BlockActs ba[UNET_MAX_DEPTH];
    int *start, *len, *q_start, *q_len, *k_start, *k_len;
    long *att_off, *xatt_off;
    Packing pk;
    AttnPacking xpk;
    BlockContext bctx;
} AttnActs;

/* The autoencoder's attention: one head over the pixels. */
typedef struct {
    int HW, T;
    float *gn, *mean, *rstd, *tok, *q, *k, *v, *att, *ao, *o; /* [T, C] rows but the stats and att */
    float *dq, *dk, *dv, *dtok;
    int *start, *len;
    long *att_off;
    AttnPacking pk;
} VattnActs;

struct UNetActs {
    const UNet *m;             /* the program these buffers follow */
    int B, side, ctx_len, training;
    const float *x, *ctx;      /* the forward's inputs (read by the backward) */
    float *tsin, *e1, *s1, *temb, *dtemb, *ds1, *de1;
    float **out, **dout, **cols;
    float *gno, *gnm, *gnr, *gtmp; /* the output norm */
    ConvBlockActs *res;
    AttnActs *att;
    VattnActs *vat;
    float **pad, **dpad;       /* the padded inputs of pad_br convolutions */
};

static int side_of(const UNetActs *a, int f) { return a->side / f; }
static long numel(const UNetActs *a, int C, int f) { return (long)a->B * C * side_of(a, f) * side_of(a, f); }

static BlockConfig block_config(const UNet *m, int C) {
    BlockConfig c = m->bcfg;
    c.width = C, c.hidden = 4 * C;
    return c;
}

static ConvShape conv_shape(const UNetActs *a, const UNetStep *s) {
    const int si = side_of(a, s->f_in) + (s->pad_br ? 1 : 0);
    return (ConvShape){a->B, s->cin, si, si, s->cout, s->k, s->stride, s->pad_br ? 0 : s->k / 2};
}

/* [planes, H, W] -> [planes, H + 1, W + 1] with a zero last row and column, and its adjoint. */
static void pad_br_forward(float *out, const float *in, long planes, int H, int W) {
    for (long p = 0; p < planes; p++) {
        float *o = out + (size_t)p * (H + 1) * (W + 1);
        for (int y = 0; y < H; y++) {
            memcpy(o + (size_t)y * (W + 1), in + ((size_t)p * H + y) * W, sizeof(float) * (size_t)W);
            o[(size_t)y * (W + 1) + W] = 0;
        }
        memset(o + (size_t)H * (W + 1), 0, sizeof(float) * (size_t)(W + 1));
    }
}

static void pad_br_backward(float *din, const float *dout, long planes, int H, int W) {
    for (long p = 0; p < planes; p++)
        for (int y = 0; y < H; y++)
            add_inplace(din + ((size_t)p * H + y) * W, dout + ((size_t)p * (H + 1) + y) * (W + 1), W);
}

static void vattn_acts_alloc(VattnActs *v, const UNetActs *a, const UNet *m, int C, int side) {
    memset(v, 0, sizeof *v);
    const int B = a->B;
    v->HW = side * side, v->T = B * v->HW;
    const size_t n = (size_t)v->T * C;
    float **b[] = {&v->gn, &v->tok, &v->q, &v->k, &v->v, &v->ao, &v->o};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) *b[i] = xalloc_floats(n);
    if (a->training) {
        float **d[] = {&v->dq, &v->dk, &v->dv, &v->dtok};
        for (size_t i = 0; i < sizeof d / sizeof *d; i++) *d[i] = xalloc_floats(n);
    }
    v->mean = xalloc_floats((size_t)B * m->cfg.groups), v->rstd = xalloc_floats((size_t)B * m->cfg.groups);
    v->start = xmalloc(sizeof(int) * (size_t)B * 2), v->len = v->start + B;
    v->att_off = xmalloc(sizeof(long) * (size_t)B);
    for (int i = 0; i < B; i++) v->start[i] = i * v->HW, v->len[i] = v->HW;
    v->pk = (AttnPacking){B, v->start, v->len, v->start, v->len, v->att_off};
    v->att = xalloc_floats((size_t)attn_packing_offsets(v->att_off, v->len, v->len, B, 1));
}

static void vattn_acts_free(VattnActs *v) {
    float *b[] = {v->gn, v->tok, v->q, v->k, v->v, v->ao, v->o, v->dq, v->dk, v->dv, v->dtok, v->mean, v->rstd, v->att};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) free(b[i]);
    free(v->start), free(v->att_off);
}

/* ---------------------------------------------------------- activations */

static void attn_acts_alloc(const UNet *m, AttnActs *aa, const UNetActs *a, int C, int side) {
    memset(aa, 0, sizeof *aa);
    const int B = a->B, L = a->ctx_len, H = m->cfg.heads;
    aa->HW = side * side, aa->T = B * aa->HW;
    const size_t n = (size_t)aa->T * C;
    aa->gn = xalloc_floats(n), aa->tok = xalloc_floats(n), aa->p = xalloc_floats(n), aa->q = xalloc_floats(n);
    aa->mean = xalloc_floats((size_t)B * m->cfg.groups), aa->rstd = xalloc_floats((size_t)B * m->cfg.groups);
    if (a->training) aa->dq = xalloc_floats(n), aa->dtok = xalloc_floats(n);
    aa->start = xmalloc(sizeof(int) * (size_t)B * 6);
    aa->len = aa->start + B, aa->q_start = aa->len + B, aa->q_len = aa->q_start + B;
    aa->k_start = aa->q_len + B, aa->k_len = aa->k_start + B;
    aa->att_off = xmalloc(sizeof(long) * (size_t)B * 2), aa->xatt_off = aa->att_off + B;
    for (int b = 0; b < B; b++) {
        aa->start[b] = aa->q_start[b] = b * aa->HW, aa->len[b] = aa->q_len[b] = aa->HW;
        aa->k_start[b] = b * L, aa->k_len[b] = L;
    }
    const long att = packing_att_offsets(aa->att_off, aa->len, B, H);
    const long xatt = attn_packing_offsets(aa->xatt_off, aa->q_len, aa->k_len, B, H);
    aa->pk = (Packing){B, aa->start, aa->len, aa->att_off};
    aa->xpk = (AttnPacking){B, aa->q_start, aa->q_len, aa->k_start, aa->k_len, aa->xatt_off};
    aa->bctx = (BlockContext){NULL, B * L, &aa->xpk, xatt};
    const BlockConfig bc = block_config(m, C);
    for (int d = 0; d < m->cfg.depth; d++) block_acts_alloc(&aa->ba[d], &bc, aa->T, att, &aa->bctx, a->training);
}

static void attn_acts_free(const UNet *m, AttnActs *aa) {
    float *b[] = {aa->gn, aa->mean, aa->rstd, aa->tok, aa->p, aa->q, aa->dq, aa->dtok};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) free(b[i]);
    free(aa->start), free(aa->att_off);
    for (int d = 0; d < m->cfg.depth; d++) block_acts_free(&aa->ba[d]);
}

UNetActs *unet_acts_new(const UNet *m, int B, int side, int ctx_len, int training) {
    UNetActs *a = xcalloc(1, sizeof *a);
    a->m = m, a->B = B, a->side = side, a->ctx_len = ctx_len, a->training = training;
    const int C0 = m->cfg.ch[0], TE = 4 * C0;
    if (m->has_time) { /* the time MLP's rows; the autoencoder's halves have none */
        a->tsin = xalloc_floats((size_t)B * C0);
        a->e1 = xalloc_floats((size_t)B * TE), a->s1 = xalloc_floats((size_t)B * TE), a->temb = xalloc_floats((size_t)B * TE);
        if (training)
            a->dtemb = xalloc_floats((size_t)B * TE), a->ds1 = xalloc_floats((size_t)B * TE), a->de1 = xalloc_floats((size_t)B * TE);
    }
    a->out = xcalloc((size_t)m->n_steps, sizeof(float *));
    a->dout = xcalloc((size_t)m->n_steps, sizeof(float *));
    a->cols = xcalloc((size_t)m->n_steps, sizeof(float *));
    a->res = xcalloc((size_t)m->n_res, sizeof(ConvBlockActs));
    a->att = xcalloc((size_t)m->n_attn, sizeof(AttnActs));
    a->vat = xcalloc(1, sizeof(VattnActs));
    a->pad = xcalloc((size_t)m->n_steps, sizeof(float *)), a->dpad = xcalloc((size_t)m->n_steps, sizeof(float *));
    for (int k = 0; k < m->n_steps; k++) {
        const UNetStep *s = &m->steps[k];
        const long no = numel(a, s->cout, s->f_out);
        if (s->kind != US_PUSH) a->out[k] = xalloc_floats((size_t)no);
        if (training) a->dout[k] = xalloc_floats((size_t)no);
        const int si = side_of(a, s->f_in);
        if (s->kind == US_CONV) {
            const ConvShape cs = conv_shape(a, s);
            a->cols[k] = xalloc_floats((size_t)conv2d_cols_size(&cs));
            if (s->pad_br) {
                a->pad[k] = xalloc_floats((size_t)B * s->cin * cs.H * cs.W);
                if (training) a->dpad[k] = xalloc_floats((size_t)B * s->cin * cs.H * cs.W);
            }
        } else if (s->kind == US_VATTN) {
            vattn_acts_alloc(&a->vat[s->index], a, m, s->cin, si);
        } else if (s->kind == US_RES) {
            conv_block_acts_alloc(&a->res[s->index], &m->p.rcfg[s->index], B, si, si);
        } else if (s->kind == US_ATTN) {
            attn_acts_alloc(m, &a->att[s->index], a, s->cin, si);
        } else if (s->kind == US_NORM_ACT) {
            a->gno = xalloc_floats((size_t)no), a->gtmp = xalloc_floats((size_t)no);
            a->gnm = xalloc_floats((size_t)B * m->cfg.groups), a->gnr = xalloc_floats((size_t)B * m->cfg.groups);
        }
    }
    return a;
}

void unet_acts_free(UNetActs *a) {
    if (!a) return;
    const UNet *m = a->m;
    for (int k = 0; k < m->n_steps; k++) {
        const UNetStep *s = &m->steps[k];
        if (s->kind != US_PUSH) free(a->out[k]);
        free(a->dout[k]), free(a->cols[k]);
        if (s->kind == US_RES) conv_block_acts_free(&a->res[s->index]);
        if (s->kind == US_ATTN) attn_acts_free(m, &a->att[s->index]);
        if (s->kind == US_VATTN) vattn_acts_free(&a->vat[s->index]);
        free(a->pad[k]), free(a->dpad[k]);
    }
    free(a->out), free(a->dout), free(a->cols), free(a->res), free(a->att), free(a->vat), free(a->pad), free(a->dpad);
    free(a->tsin), free(a->e1), free(a->s1), free(a->temb), free(a->dtemb), free(a->ds1), free(a->de1);
    free(a->gno), free(a->gtmp), free(a->gnm), free(a->gnr);
    free(a);
}

/* ---------------------------------------------------------- layout moves */

/* [B, C, HW] -> [B * HW, C] and back */
static void to_tokens(float *out, const float *in, int B, int C, int HW) {
#pragma omp parallel for collapse(2) if ((long)B * C * HW > 65536)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < HW; i++)
            for (int c = 0; c < C; c++) out[((size_t)b * HW + i) * C + c] = in[((size_t)b * C + c) * HW + i];
}

static void from_tokens(float *out, const float *in, int B, int C, int HW, int accumulate) {
#pragma omp parallel for collapse(2) if ((long)B * C * HW > 65536)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *o = out + ((size_t)b * C + c) * HW;
            const float *s = in + (size_t)b * HW * C + c;
            if (accumulate)
                for (int i = 0; i < HW; i++) o[i] += s[(size_t)i * C];
            else
                for (int i = 0; i < HW; i++) o[i] = s[(size_t)i * C];
        }
}

/* ------------------------------------------------------------- attention */

static void attn_forward(const UNet *m, const UNetAttnParams *p, AttnActs *aa, int B, int C, const float *x,
                         const float *ctx, float *out) {
    const int HW = aa->HW, T = aa->T;
    groupnorm_forward(aa->gn, aa->mean, aa->rstd, x, p->norm_w, p->norm_b, B, C, HW, m->cfg.groups, ATTN_NORM_EPS);
    to_tokens(aa->tok, aa->gn, B, C, HW);
    gemm_linear(m->gemm, aa->p, aa->tok, p->in_w, p->in_b, T, C, C);
    aa->bctx.x = ctx;
    const BlockConfig bc = block_config(m, C);
    for (int d = 0; d < m->cfg.depth; d++) block_forward(&bc, &p->blk[d], &aa->ba[d], aa->p, T, &aa->pk, &aa->bctx);
    gemm_linear(m->gemm, aa->q, aa->p, p->out_w, p->out_b, T, C, C);
    memcpy(out, x, sizeof(float) * (size_t)T * C);
    from_tokens(out, aa->q, B, C, HW, 1);
}

static void attn_backward(const UNet *m, const UNetAttnParams *p, UNetAttnParams *g, AttnActs *aa, int B, int C,
                          const float *x, const float *dout, float *dx, float *dctx) {
    const int HW = aa->HW, T = aa->T;
    const size_t n = (size_t)T * C;
    add_inplace(dx, dout, (long)n); /* the residual */
    to_tokens(aa->dq, dout, B, C, HW);
    float *dp = aa->dtok; /* proj_out's input gradient, then the blocks' in place */
    memset(dp, 0, sizeof(float) * n);
    linear_backward(dp, g ? g->out_w : NULL, g ? g->out_b : NULL, aa->dq, aa->p, p->out_w, T, C, C);
    const BlockConfig bc = block_config(m, C);
    for (int d = m->cfg.depth - 1; d >= 0; d--)
        block_backward(&bc, &p->blk[d], g ? &g->blk[d] : NULL, &aa->ba[d], dp, T, &aa->pk, &aa->bctx, dctx);
    float *dtok = aa->dq; /* free again */
    memset(dtok, 0, sizeof(float) * n);
    linear_backward(dtok, g ? g->in_w : NULL, g ? g->in_b : NULL, dp, aa->tok, p->in_w, T, C, C);
    float *dgn = aa->q; /* the forward's proj_out output is no longer needed */
    from_tokens(dgn, dtok, B, C, HW, 0);
    groupnorm_backward(dx, g ? g->norm_w : NULL, g ? g->norm_b : NULL, dgn, x, p->norm_w, aa->mean, aa->rstd, B, C, HW,
                       m->cfg.groups);
}

/* ------------------------------------------------- the autoencoder's attention */

static void vattn_forward(const UNet *m, const VaeAttnParams *p, VattnActs *v, int B, int C, const float *x, float *out) {
    const int HW = v->HW, T = v->T;
    groupnorm_forward(v->gn, v->mean, v->rstd, x, p->norm_w, p->norm_b, B, C, HW, m->cfg.groups, ATTN_NORM_EPS);
    to_tokens(v->tok, v->gn, B, C, HW);
    gemm_linear(m->gemm, v->q, v->tok, p->q_w, p->q_b, T, C, C);
    gemm_linear(m->gemm, v->k, v->tok, p->k_w, p->k_b, T, C, C);
    gemm_linear(m->gemm, v->v, v->tok, p->v_w, p->v_b, T, C, C);
    const AttnIn in = {v->q, v->k, v->v, C, C, C};
    attention_general_forward(v->ao, C, v->att, &in, &v->pk, C, 1, 0);
    gemm_linear(m->gemm, v->o, v->ao, p->o_w, p->o_b, T, C, C);
    memcpy(out, x, sizeof(float) * (size_t)T * C);
    from_tokens(out, v->o, B, C, HW, 1);
}

static void vattn_backward(const UNet *m, const VaeAttnParams *p, VaeAttnParams *g, VattnActs *v, int B, int C,
                           const float *x, const float *dout, float *dx) {
    const int HW = v->HW, T = v->T;
    const size_t n = (size_t)T * C;
    add_inplace(dx, dout, (long)n);
    float *dtok = v->dtok, *dao = v->o; /* the forward's output rows are free: dL/d(attention output) */
    to_tokens(dtok, dout, B, C, HW);
    memset(dao, 0, sizeof(float) * n);
    linear_backward(dao, g ? g->o_w : NULL, g ? g->o_b : NULL, dtok, v->ao, p->o_w, T, C, C);
    memset(v->dq, 0, sizeof(float) * n), memset(v->dk, 0, sizeof(float) * n), memset(v->dv, 0, sizeof(float) * n);
    const AttnIn in = {v->q, v->k, v->v, C, C, C};
    const AttnGrad ag = {v->dq, v->dk, v->dv, C, C, C, NULL};
    attention_general_backward(&ag, dao, C, v->att, &in, &v->pk, C, 1, 0);
    memset(dtok, 0, sizeof(float) * n);
    linear_backward(dtok, g ? g->q_w : NULL, g ? g->q_b : NULL, v->dq, v->tok, p->q_w, T, C, C);
    linear_backward(dtok, g ? g->k_w : NULL, g ? g->k_b : NULL, v->dk, v->tok, p->k_w, T, C, C);
    linear_backward(dtok, g ? g->v_w : NULL, g ? g->v_b : NULL, v->dv, v->tok, p->v_w, T, C, C);
    float *dgn = v->ao; /* free too */
    from_tokens(dgn, dtok, B, C, HW, 0);
    groupnorm_backward(dx, g ? g->norm_w : NULL, g ? g->norm_b : NULL, dgn, x, p->norm_w, v->mean, v->rstd, B, C, HW,
                       m->cfg.groups);
}

/* ---------------------------------------------------------------- forward */

void unet_forward(const UNet *m, UNetActs *a, const float *x, const float *t, const float *ctx, float *eps) {
    const UNetParams *p = &m->p;
    const int B = a->B, C0 = m->cfg.ch[0], TE = 4 * C0;
    a->x = x, a->ctx = ctx;
    if (m->has_time) {
        timestep_embedding(a->tsin, t, B, C0, 10000.0f);
        gemm_linear(m->gemm, a->e1, a->tsin, p->t1_w, p->t1_b, B, C0, TE);
        silu_forward(a->s1, a->e1, (long)B * TE);
        gemm_linear(m->gemm, a->temb, a->s1, p->t2_w, p->t2_b, B, TE, TE);
    }
    const float *cur = x;
    for (int k = 0; k < m->n_steps; k++) {
        const UNetStep *s = &m->steps[k];
        float *o = a->out[k];
        const int si = side_of(a, s->f_in);
        const long HW = (long)si * si;
        switch (s->kind) {
        case US_CONV: {
            const ConvShape cs = conv_shape(a, s);
            if (s->pad_br) pad_br_forward(a->pad[k], cur, (long)B * s->cin, si, si);
            conv2d_nchw_forward_gemm(m->gemm, o, a->cols[k], s->pad_br ? a->pad[k] : cur, *s->w, *s->b, &cs);
            break;
        }
        case US_VATTN: vattn_forward(m, &p->vat[s->index], &a->vat[s->index], B, s->cin, cur, o); break;
        case US_RES:
            conv_block_forward(&p->rcfg[s->index], &p->res[s->index], &a->res[s->index], cur, a->temb, o, a->training);
            break;
        case US_ATTN: attn_forward(m, &p->att[s->index], &a->att[s->index], B, s->cin, cur, ctx, o); break;
        case US_PUSH: a->out[k] = o = (float *)cur; break;
        case US_CAT: {
            const float *skip = a->out[s->index];
            const int c2 = s->cout - s->cin;
            for (int b = 0; b < B; b++) {
                memcpy(o + (size_t)b * s->cout * HW, cur + (size_t)b * s->cin * HW, sizeof(float) * (size_t)s->cin * HW);
                memcpy(o + ((size_t)b * s->cout + s->cin) * HW, skip + (size_t)b * c2 * HW, sizeof(float) * (size_t)c2 * HW);
            }
            break;
        }
        case US_UP: upsample2x_forward(o, cur, (long)B * s->cin, si, si); break;
        case US_NORM_ACT:
            groupnorm_forward(a->gno, a->gnm, a->gnr, cur, p->nout_w, p->nout_b, B, s->cin, HW, m->cfg.groups,
                              m->norm_eps);
            silu_forward(o, a->gno, (long)B * s->cin * HW);
            break;
        }
        cur = o;
    }
    memcpy(eps, cur, sizeof(float) * (size_t)numel(a, m->out_ch, m->f_out));
}

/* --------------------------------------------------------------- backward */

#define G(field) (g ? g->p.field : NULL)

void unet_backward(const UNet *m, UNetActs *a, const float *deps, UNetGrads *g, float *dx, float *dctx) {
    if (!a->training) {
        fprintf(stderr, "forget: unet_backward needs activations made for training\n");
        abort();
    }
    const UNetParams *p = &m->p;
    const int B = a->B, C0 = m->cfg.ch[0], TE = 4 * C0;
    for (int k = 0; k < m->n_steps; k++)
        memset(a->dout[k], 0, sizeof(float) * (size_t)numel(a, m->steps[k].cout, m->steps[k].f_out));
    if (m->has_time) memset(a->dtemb, 0, sizeof(float) * (size_t)B * TE);
    memcpy(a->dout[m->n_steps - 1], deps, sizeof(float) * (size_t)numel(a, m->out_ch, m->f_out));
    for (int k = m->n_steps - 1; k >= 0; k--) {
        const UNetStep *s = &m->steps[k];
        const float *in = k ? a->out[k - 1] : a->x, *d = a->dout[k];
        float *din = k ? a->dout[k - 1] : dx;
        const int si = side_of(a, s->f_in);
        const long HW = (long)si * si;
        switch (s->kind) {
        case US_CONV: {
            const ConvShape cs = conv_shape(a, s);
            float *gw = NULL, *gb = NULL;
            if (g) { /* the step names a field of m->p: the same field of g->p */
                gw = *(float **)((char *)&g->p + ((const char *)s->w - (const char *)&m->p));
                gb = *(float **)((char *)&g->p + ((const char *)s->b - (const char *)&m->p));
            }
            if (s->pad_br) {
                memset(a->dpad[k], 0, sizeof(float) * (size_t)B * s->cin * cs.H * cs.W);
                conv2d_nchw_backward(din ? a->dpad[k] : NULL, gw, gb, d, a->cols[k], *s->w, &cs);
                if (din) pad_br_backward(din, a->dpad[k], (long)B * s->cin, si, si);
            } else {
                conv2d_nchw_backward(din, gw, gb, d, a->cols[k], *s->w, &cs);
            }
            break;
        }
        case US_VATTN:
            vattn_backward(m, &p->vat[s->index], g ? &g->p.vat[s->index] : NULL, &a->vat[s->index], B, s->cin, in, d,
                           din);
            break;
        case US_RES:
            conv_block_backward(&p->rcfg[s->index], &p->res[s->index], g ? &g->p.res[s->index] : NULL,
                                &a->res[s->index], a->temb, d, din, g && m->has_time ? a->dtemb : NULL);
            break;
        case US_ATTN:
            attn_backward(m, &p->att[s->index], g ? &g->p.att[s->index] : NULL, &a->att[s->index], B, s->cin, in, d,
                          din, dctx);
            break;
        case US_PUSH: add_inplace(din, d, numel(a, s->cin, s->f_in)); break;
        case US_CAT: {
            float *dskip = a->dout[s->index];
            const int c2 = s->cout - s->cin;
            for (int b = 0; b < B; b++) {
                add_inplace(din + (size_t)b * s->cin * HW, d + (size_t)b * s->cout * HW, (long)s->cin * HW);
                add_inplace(dskip + (size_t)b * c2 * HW, d + ((size_t)b * s->cout + s->cin) * HW, (long)c2 * HW);
            }
            break;
        }
        case US_UP: upsample2x_backward(din, d, (long)B * s->cin, si, si); break;
        case US_NORM_ACT: {
            const long n = (long)B * s->cin * HW;
            memset(a->gtmp, 0, sizeof(float) * (size_t)n);
            silu_backward(a->gtmp, d, a->gno, n);
            groupnorm_backward(din, G(nout_w), G(nout_b), a->gtmp, in, p->nout_w, a->gnm, a->gnr, B, s->cin, HW,
                               m->cfg.groups);
            break;
        }
        }
    }
    if (!g || !m->has_time) return;
    memset(a->ds1, 0, sizeof(float) * (size_t)B * TE), memset(a->de1, 0, sizeof(float) * (size_t)B * TE);
    linear_backward(a->ds1, G(t2_w), G(t2_b), a->dtemb, a->s1, p->t2_w, B, TE, TE);
    silu_backward(a->de1, a->ds1, a->e1, (long)B * TE);
    linear_backward(NULL, G(t1_w), G(t1_b), a->de1, a->tsin, p->t1_w, B, C0, TE);
}

#undef G

/* ------------------------------------------------- cross-attention maps (FMN) */

int unet_cross_count(const UNetActs *a) { return a->m->n_attn * a->m->cfg.depth; }

const float *unet_cross_probs(const UNetActs *a, int j, int *Lq, int *Lk, int *H) {
    const AttnActs *aa = &a->att[j / a->m->cfg.depth];
    *Lq = aa->HW, *Lk = a->ctx_len, *H = a->m->cfg.heads;
    return aa->ba[j % a->m->cfg.depth].xatt;
}

void unet_cross_set_grad(UNetActs *a, int j, const float *datt) {
    a->att[j / a->m->cfg.depth].ba[j % a->m->cfg.depth].xatt_grad = datt;
}
