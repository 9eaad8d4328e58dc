#include "nn/conv_block.h"

#include "core/gemm_mixed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/ops.h"

/* Buffers, by order (n = B * channels * pixels):
 *   pre:  a1 = norm1(x), a2 = act(a1), h1 = conv1(a2) + temb, a3 = norm2(h1), a4 = act(a3),
 *         h2 = conv2(a4), s = skip conv of x, out = s + h2
 *   post: h1 = conv1(x), a3 = norm1(h1), a4 = act(a3), h2 = conv2(a4), a2 = norm2(h2),
 *         s = skip conv of x, a1 = its norm, sum = a2 + skip, out = act(sum) */

int conv_block_has_skip(const ConvBlockConfig *c) { return c->cin != c->cout || (c->post_act && c->stride != 1); }

int conv_block_can_block(const ConvBlockConfig *c) {
    return c->post_act && c->norm == CONV_NORM_BATCH && c->temb == 0 && c->cin % 16 == 0 && c->cout % 16 == 0;
}

static ConvShape shape1(const ConvBlockConfig *c, int B, int H, int W) { return (ConvShape){B, c->cin, H, W, c->cout, 3, c->stride, 1}; }
static ConvShape shape2(const ConvBlockConfig *c, int B, int OH, int OW) { return (ConvShape){B, c->cout, OH, OW, c->cout, 3, 1, 1}; }
static ConvShape shape_s(const ConvBlockConfig *c, int B, int H, int W) { return (ConvShape){B, c->cin, H, W, c->cout, 1, c->stride, 0}; }

void conv_block_acts_alloc(ConvBlockActs *a, const ConvBlockConfig *c, int B, int H, int W) {
    memset(a, 0, sizeof *a);
    const ConvShape s1 = shape1(c, B, H, W);
    a->B = B, a->H = H, a->W = W, a->OH = conv2d_out_h(&s1), a->OW = conv2d_out_w(&s1);
    const ConvShape s2 = shape2(c, B, a->OH, a->OW), ss = shape_s(c, B, H, W);
    const size_t ni = (size_t)B * c->cin * H * W, no = (size_t)B * c->cout * a->OH * a->OW, mx = ni > no ? ni : no;
    a->x_in = xalloc_floats(ni);
    a->a1 = xalloc_floats(mx), a->a2 = xalloc_floats(mx);
    a->h1 = xalloc_floats(no), a->a3 = xalloc_floats(no), a->a4 = xalloc_floats(no), a->h2 = xalloc_floats(no);
    a->s = xalloc_floats(no), a->sum = xalloc_floats(no);
    const size_t st = (size_t)B * (c->cin > c->cout ? c->cin : c->cout);
    a->m1 = xalloc_floats(st), a->r1 = xalloc_floats(st), a->m2 = xalloc_floats(st), a->r2 = xalloc_floats(st);
    a->ms = xalloc_floats(st), a->rs = xalloc_floats(st);
    if (c->blocked) { /* shapes were checked by conv_block_can_block: a failure here is a programming error */
        Err e = {0};
        if (conv_dnnl_init(&a->dn1, &s1, 0, &e) || conv_dnnl_init(&a->dn2, &s2, 0, &e) ||
            (conv_block_has_skip(c) && conv_dnnl_init(&a->dns, &ss, 0, &e))) {
            fprintf(stderr, "forget: conv block: %s\n", e.msg);
            abort();
        }
    } else {
        a->cols1 = xalloc_floats((size_t)conv2d_cols_size(&s1));
        a->cols2 = xalloc_floats((size_t)conv2d_cols_size(&s2));
        if (conv_block_has_skip(c)) a->cols_s = xalloc_floats((size_t)conv2d_cols_size(&ss));
    }
    if (c->temb > 0) a->t1 = xalloc_floats((size_t)B * c->temb);
}

void conv_block_acts_free(ConvBlockActs *a) {
    float *b[] = {a->x_in, a->a1, a->a2, a->h1, a->a3, a->a4, a->h2, a->s, a->sum, a->m1, a->r1,
                  a->m2,   a->r2, a->ms, a->rs, a->cols1, a->cols2, a->cols_s, a->t1};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) free(b[i]);
    free(a->scratch);
    if (a->dn1.eng) conv_dnnl_free(&a->dn1);
    if (a->dn2.eng) conv_dnnl_free(&a->dn2);
    if (a->dns.eng) conv_dnnl_free(&a->dns);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------ the pieces */

static void norm_fwd(const ConvBlockConfig *c, float *out, float *mean, float *rstd, const float *in, const float *w,
                     const float *b, float *rm, float *rv, int B, int C, long HW, int training) {
    if (c->norm == CONV_NORM_GROUP)
        groupnorm_forward(out, mean, rstd, in, w, b, B, C, HW, c->groups, c->eps);
    else if (c->blocked)
        batchnorm16_forward(out, mean, rstd, in, w, b, rm, rv, B, C, HW, c->eps, c->momentum, training);
    else
        batchnorm_forward(out, mean, rstd, in, w, b, rm, rv, B, C, HW, c->eps, c->momentum, training);
}

static void norm_bwd(const ConvBlockConfig *c, float *din, float *dw, float *db, const float *dout, const float *in,
                     const float *w, const float *mean, const float *rstd, int B, int C, long HW, int training) {
    if (c->norm == CONV_NORM_GROUP)
        groupnorm_backward(din, dw, db, dout, in, w, mean, rstd, B, C, HW, c->groups);
    else if (c->blocked)
        batchnorm16_backward(din, dw, db, dout, in, w, mean, rstd, B, C, HW, training);
    else
        batchnorm_backward(din, dw, db, dout, in, w, mean, rstd, B, C, HW, training);
}

static void act_fwd(const ConvBlockConfig *c, float *out, const float *in, long n) {
    if (c->act == CONV_SILU) silu_forward(out, in, n);
    else relu_forward(out, in, n);
}

static void act_bwd(const ConvBlockConfig *c, float *din, const float *dout, const float *in, long n) {
    if (c->act == CONV_SILU) silu_backward(din, dout, in, n);
    else relu_backward(din, dout, in, n);
}

/* A convolution of the block in its layout: dn is the blocked one, cols the im2col workspace. */
static void conv_fwd(const ConvBlockConfig *c, ConvDnnl *dn, float *out, float *cols, const float *in, const float *W,
                     const float *b, const ConvShape *s) {
    if (c->blocked) conv_dnnl_forward(dn, out, in, W);
    else conv2d_nchw_forward_gemm(c->gemm, out, cols, in, W, b, s);
}

static void conv_bwd(const ConvBlockConfig *c, ConvDnnl *dn, float *din, float *dW, float *db, const float *dout,
                     const float *cols, const float *in, const float *W, const ConvShape *s) {
    if (c->blocked) conv_dnnl_backward(dn, din, dW, dout, in, W);
    else conv2d_nchw_backward(din, dW, db, dout, cols, W, s);
}

/* ----------------------------------------------------------------- forward */

void conv_block_forward(const ConvBlockConfig *c, const ConvBlockParams *p, ConvBlockActs *a, const float *x,
                        const float *temb, float *out, int training) {
    const int B = a->B;
    const long HW = (long)a->H * a->W, OHW = (long)a->OH * a->OW, ni = B * c->cin * HW, no = B * c->cout * OHW;
    const ConvShape s1 = shape1(c, B, a->H, a->W), s2 = shape2(c, B, a->OH, a->OW), ss = shape_s(c, B, a->H, a->W);
    a->training = training;
    memcpy(a->x_in, x, sizeof(float) * (size_t)ni);
    const int skip = conv_block_has_skip(c);
    if (!c->post_act) {
        norm_fwd(c, a->a1, a->m1, a->r1, x, p->n1_w, p->n1_b, p->n1_rm, p->n1_rv, B, c->cin, HW, training);
        act_fwd(c, a->a2, a->a1, ni);
        conv2d_nchw_forward_gemm(c->gemm, a->h1, a->cols1, a->a2, p->conv1_w, p->conv1_b, &s1);
        if (c->temb > 0 && temb) { /* the time embedding, projected, added to every pixel of a channel */
            float *t2 = xalloc_floats((size_t)B * c->cout);
            act_fwd(c, a->t1, temb, (long)B * c->temb);
            gemm_linear(c->gemm, t2, a->t1, p->temb_w, p->temb_b, B, c->temb, c->cout);
            for (int n = 0; n < B; n++)
                for (int ch = 0; ch < c->cout; ch++)
                    for (long i = 0; i < OHW; i++) a->h1[((size_t)n * c->cout + ch) * OHW + i] += t2[(size_t)n * c->cout + ch];
            free(t2);
        }
        norm_fwd(c, a->a3, a->m2, a->r2, a->h1, p->n2_w, p->n2_b, p->n2_rm, p->n2_rv, B, c->cout, OHW, training);
        act_fwd(c, a->a4, a->a3, no);
        conv2d_nchw_forward_gemm(c->gemm, a->h2, a->cols2, a->a4, p->conv2_w, p->conv2_b, &s2);
        if (skip) conv2d_nchw_forward_gemm(c->gemm, a->s, a->cols_s, x, p->skip_w, p->skip_b, &ss);
        add_forward(out, skip ? a->s : x, a->h2, no);
        return;
    }
    conv_fwd(c, &a->dn1, a->h1, a->cols1, x, p->conv1_w, p->conv1_b, &s1);
    norm_fwd(c, a->a3, a->m1, a->r1, a->h1, p->n1_w, p->n1_b, p->n1_rm, p->n1_rv, B, c->cout, OHW, training);
    act_fwd(c, a->a4, a->a3, no);
    conv_fwd(c, &a->dn2, a->h2, a->cols2, a->a4, p->conv2_w, p->conv2_b, &s2);
    norm_fwd(c, a->a2, a->m2, a->r2, a->h2, p->n2_w, p->n2_b, p->n2_rm, p->n2_rv, B, c->cout, OHW, training);
    if (skip) {
        conv_fwd(c, &a->dns, a->s, a->cols_s, x, p->skip_w, p->skip_b, &ss);
        norm_fwd(c, a->a1, a->ms, a->rs, a->s, p->ns_w, p->ns_b, p->ns_rm, p->ns_rv, B, c->cout, OHW, training);
    }
    add_forward(a->sum, a->a2, skip ? a->a1 : x, no);
    act_fwd(c, out, a->sum, no);
}

/* ---------------------------------------------------------------- backward */

#define G(field) (g ? g->field : NULL)

void conv_block_backward(const ConvBlockConfig *c, const ConvBlockParams *p, ConvBlockParams *g, ConvBlockActs *a,
                         const float *temb, const float *dout, float *dx, float *dtemb) {
    const int B = a->B, tr = a->training;
    const long HW = (long)a->H * a->W, OHW = (long)a->OH * a->OW, ni = B * c->cin * HW, no = B * c->cout * OHW;
    const ConvShape s1 = shape1(c, B, a->H, a->W), s2 = shape2(c, B, a->OH, a->OW), ss = shape_s(c, B, a->H, a->W);
    const int skip = conv_block_has_skip(c);
    /* five output-sized gradient buffers, kept between calls (first-touch page faults of fresh
     * allocations cost more than the arithmetic here) */
    if (!a->scratch) a->scratch = xalloc_floats((size_t)no * 5);
    memset(a->scratch, 0, sizeof(float) * (size_t)no * 5);
    float *d1 = a->scratch, *d2 = d1 + no, *da3 = d2 + no, *dh1 = da3 + no;
    float *dsum = NULL;
    const float *dh2 = dout, *dskip = dout;
    if (c->post_act) { /* out = act(norm2(h2) + skip) */
        dsum = dh1 + no;
        act_bwd(c, dsum, dout, a->sum, no);
        norm_bwd(c, d1, G(n2_w), G(n2_b), dsum, a->h2, p->n2_w, a->m2, a->r2, B, c->cout, OHW, tr);
        dh2 = d1, dskip = dsum;
    }
    /* h2 = conv2(a4): d2 = d(a4) */
    conv_bwd(c, &a->dn2, d2, G(conv2_w), G(conv2_b), dh2, a->cols2, a->a4, p->conv2_w, &s2);
    act_bwd(c, da3, d2, a->a3, no);
    if (!c->post_act) {
        norm_bwd(c, dh1, G(n2_w), G(n2_b), da3, a->h1, p->n2_w, a->m2, a->r2, B, c->cout, OHW, tr);
        if (c->temb > 0 && temb) { /* h1 += proj(act(temb)): each channel's gradient summed over pixels */
            float *dt2 = xcalloc((size_t)B * c->cout, sizeof(float)), *dt1 = xcalloc((size_t)B * c->temb, sizeof(float));
            for (int n = 0; n < B; n++)
                for (int ch = 0; ch < c->cout; ch++) {
                    double sacc = 0;
                    for (long i = 0; i < OHW; i++) sacc += dh1[((size_t)n * c->cout + ch) * OHW + i];
                    dt2[(size_t)n * c->cout + ch] = (float)sacc;
                }
            linear_backward(dt1, G(temb_w), G(temb_b), dt2, a->t1, p->temb_w, B, c->temb, c->cout);
            if (dtemb) act_bwd(c, dtemb, dt1, temb, (long)B * c->temb);
            free(dt2), free(dt1);
        }
        const int need_dx = dx || g;
        if (need_dx) {
            float *da2 = xcalloc((size_t)ni, sizeof(float)), *da1 = xcalloc((size_t)ni, sizeof(float));
            conv2d_nchw_backward(da2, G(conv1_w), G(conv1_b), dh1, a->cols1, p->conv1_w, &s1);
            act_bwd(c, da1, da2, a->a1, ni);
            norm_bwd(c, dx, G(n1_w), G(n1_b), da1, a->x_in, p->n1_w, a->m1, a->r1, B, c->cin, HW, tr);
            free(da2), free(da1);
        }
    } else {
        norm_bwd(c, dh1, G(n1_w), G(n1_b), da3, a->h1, p->n1_w, a->m1, a->r1, B, c->cout, OHW, tr);
        conv_bwd(c, &a->dn1, dx, G(conv1_w), G(conv1_b), dh1, a->cols1, a->x_in, p->conv1_w, &s1);
    }
    /* the skip path */
    if (!skip) {
        if (dx) add_inplace(dx, dskip, ni);
    } else if (!c->post_act) {
        conv2d_nchw_backward(dx, G(skip_w), G(skip_b), dskip, a->cols_s, p->skip_w, &ss);
    } else {
        float *dsc = d1; /* free again: norm2's gradient was used by conv2's backward */
        memset(dsc, 0, sizeof(float) * (size_t)no);
        norm_bwd(c, dsc, G(ns_w), G(ns_b), dskip, a->s, p->ns_w, a->ms, a->rs, B, c->cout, OHW, tr);
        conv_bwd(c, &a->dns, dx, G(skip_w), G(skip_b), dsc, a->cols_s, a->x_in, p->skip_w, &ss);
    }
}

#undef G

/* ------------------------------------------------------------ the table */

static NnParam *entry(NnTable *t, float **slot, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                      const char *prefix, const char *name, NnInit init) {
    NnParam *p = nn_add(t, slot, ndim, d0, d1, d2, d3);
    nn_key(p, 0, "%s.%s", prefix, name);
    p->init = init;
    p->decay = ndim >= 2;
    return p;
}

static void norm_entries(NnTable *t, const ConvBlockConfig *c, float **w, float **b, float **rm, float **rv, int C,
                         const char *prefix, const char *name) {
    char k[96];
    snprintf(k, sizeof k, "%s.weight", name);
    entry(t, w, 1, C, 0, 0, 0, prefix, k, (NnInit){INIT_ONES, 0});
    snprintf(k, sizeof k, "%s.bias", name);
    entry(t, b, 1, C, 0, 0, 0, prefix, k, (NnInit){INIT_ZEROS, 0});
    if (c->norm != CONV_NORM_BATCH) return;
    snprintf(k, sizeof k, "%s.running_mean", name);
    entry(t, rm, 1, C, 0, 0, 0, prefix, k, (NnInit){INIT_ZEROS, 0})->buffer = 1;
    snprintf(k, sizeof k, "%s.running_var", name);
    entry(t, rv, 1, C, 0, 0, 0, prefix, k, (NnInit){INIT_ONES, 0})->buffer = 1;
}

void conv_block_table(NnTable *t, ConvBlockParams *p, const ConvBlockConfig *c, const char *prefix) {
    const int post = c->post_act, ci = c->cin, co = c->cout;
    /* He initialisation of a convolution: std sqrt(2 / fan_in) */
    const NnInit k1 = {INIT_NORMAL, sqrtf(2.0f / (ci * 9))}, k2 = {INIT_NORMAL, sqrtf(2.0f / (co * 9))};
    if (!post) norm_entries(t, c, &p->n1_w, &p->n1_b, &p->n1_rm, &p->n1_rv, ci, prefix, "norm1");
    entry(t, &p->conv1_w, 4, co, ci, 3, 3, prefix, "conv1.weight", k1);
    if (!post) entry(t, &p->conv1_b, 1, co, 0, 0, 0, prefix, "conv1.bias", (NnInit){INIT_ZEROS, 0});
    if (post) norm_entries(t, c, &p->n1_w, &p->n1_b, &p->n1_rm, &p->n1_rv, co, prefix, "bn1");
    if (!post && c->temb > 0) {
        entry(t, &p->temb_w, 2, co, c->temb, 0, 0, prefix, "time_emb_proj.weight", (NnInit){INIT_NORMAL, 1.0f / sqrtf((float)c->temb)});
        entry(t, &p->temb_b, 1, co, 0, 0, 0, prefix, "time_emb_proj.bias", (NnInit){INIT_ZEROS, 0});
    }
    if (!post) norm_entries(t, c, &p->n2_w, &p->n2_b, &p->n2_rm, &p->n2_rv, co, prefix, "norm2");
    entry(t, &p->conv2_w, 4, co, co, 3, 3, prefix, "conv2.weight", k2);
    if (!post) entry(t, &p->conv2_b, 1, co, 0, 0, 0, prefix, "conv2.bias", (NnInit){INIT_ZEROS, 0});
    if (post) norm_entries(t, c, &p->n2_w, &p->n2_b, &p->n2_rm, &p->n2_rv, co, prefix, "bn2");
    if (!conv_block_has_skip(c)) return;
    const NnInit ks = {INIT_NORMAL, sqrtf(2.0f / ci)};
    entry(t, &p->skip_w, 4, co, ci, 1, 1, prefix, post ? "downsample.0.weight" : "conv_shortcut.weight", ks);
    if (!post) entry(t, &p->skip_b, 1, co, 0, 0, 0, prefix, "conv_shortcut.bias", (NnInit){INIT_ZEROS, 0});
    if (post) norm_entries(t, c, &p->ns_w, &p->ns_b, &p->ns_rm, &p->ns_rv, co, prefix, "downsample.1");
}
