#include "models/transformer.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static const float LN_EPS = 1e-5f;

void block_acts_alloc(BlockActs *a, int T, int W, long att_size, int keep_input) {
    memset(a, 0, sizeof *a);
    if (keep_input) a->x_in = xalloc_floats((size_t)T * W);
    a->ln1 = xalloc_floats((size_t)T * W);
    a->ln1_mean = xalloc_floats((size_t)T);
    a->ln1_rstd = xalloc_floats((size_t)T);
    a->qkv = xalloc_floats((size_t)T * 3 * W);
    a->att = xalloc_floats((size_t)att_size);
    a->attn = xalloc_floats((size_t)T * W);
    a->x_mid = xalloc_floats((size_t)T * W);
    a->ln2 = xalloc_floats((size_t)T * W);
    a->ln2_mean = xalloc_floats((size_t)T);
    a->ln2_rstd = xalloc_floats((size_t)T);
    a->fc = xalloc_floats((size_t)T * 4 * W);
    a->act = xalloc_floats((size_t)T * 4 * W);
    a->tmp = xalloc_floats((size_t)T * W);
}

void block_acts_free(BlockActs *a) {
    float *bufs[] = {a->x_in, a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv, a->att, a->attn,
                     a->x_mid, a->ln2, a->ln2_mean, a->ln2_rstd, a->fc, a->act, a->tmp};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    memset(a, 0, sizeof *a);
}

/* After the attention (a->attn filled): out_proj and the residual, then the MLP half. */
static void block_forward_rest(const ClipBlock *b, BlockActs *a, float *x, int T, int W, ClipAct act) {
    const long n = (long)T * W;
    linear_forward(a->tmp, a->attn, b->out_w, b->out_b, T, W, W);
    add_forward(a->x_mid, x, a->tmp, n);
    layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->x_mid, b->ln2_w, b->ln2_b, T, W, LN_EPS);
    linear_forward(a->fc, a->ln2, b->fc_w, b->fc_b, T, W, 4 * W);
    if (act == ACT_GELU)
        gelu_forward(a->act, a->fc, n * 4);
    else
        quickgelu_forward(a->act, a->fc, n * 4);
    linear_forward(a->tmp, a->act, b->proj_w, b->proj_b, T, 4 * W, W);
    add_forward(x, a->x_mid, a->tmp, n);
}

void block_forward(const ClipBlock *b, BlockActs *a, float *x, int T, int W, int H, ClipAct act,
                   const Packing *pk, int causal) {
    const long n = (long)T * W;
    if (a->x_in) memcpy(a->x_in, x, (size_t)n * sizeof(float));
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, b->ln1_w, b->ln1_b, T, W, LN_EPS);
    linear_forward(a->qkv, a->ln1, b->qkv_w, b->qkv_b, T, W, 3 * W);
    attention_forward(a->attn, a->att, a->qkv, pk, W, H, causal);
    block_forward_rest(b, a, x, T, W, act);
}

void block_forward_prefix(const ClipBlock *b, BlockActs *a, float *x, int Tn, int W, int H, ClipAct act,
                          const Packing *pk_full, const int *pre, const int *new_start, float *full_qkv,
                          float *full_attn) {
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, b->ln1_w, b->ln1_b, Tn, W, LN_EPS);
    linear_forward(a->qkv, a->ln1, b->qkv_w, b->qkv_b, Tn, W, 3 * W);
    for (int s = 0; s < pk_full->nseq; s++) {
        const int rows = pk_full->len[s] - pre[s];
        memcpy(full_qkv + (size_t)(pk_full->start[s] + pre[s]) * 3 * W, a->qkv + (size_t)new_start[s] * 3 * W,
               sizeof(float) * (size_t)rows * 3 * W);
    }
    attention_forward(full_attn, a->att, full_qkv, pk_full, W, H, 1);
    for (int s = 0; s < pk_full->nseq; s++) {
        const int rows = pk_full->len[s] - pre[s];
        memcpy(a->attn + (size_t)new_start[s] * W, full_attn + (size_t)(pk_full->start[s] + pre[s]) * W,
               sizeof(float) * (size_t)rows * W);
    }
    block_forward_rest(b, a, x, Tn, W, act);
}

void block_backward(const ClipBlock *b, ClipBlock *gb, const BlockActs *a, float *dx, int T, int W, int H,
                    ClipAct act, const Packing *pk, int causal) {
    const long n = (long)T * W;
    float *d4 = xcalloc((size_t)n * 4, sizeof(float)), *d4b = xcalloc((size_t)n * 4, sizeof(float));
    float *dw = xcalloc((size_t)n, sizeof(float));
    /* MLP half: x_out = x_mid + c_proj(act(c_fc(ln_2(x_mid)))); dx is dL/dx_out = dL/dx_mid's direct part */
    linear_backward(d4, gb->proj_w, gb->proj_b, dx, a->act, b->proj_w, T, 4 * W, W);
    if (act == ACT_GELU)
        gelu_backward(d4b, d4, a->fc, n * 4);
    else
        quickgelu_backward(d4b, d4, a->fc, n * 4);
    linear_backward(dw, gb->fc_w, gb->fc_b, d4b, a->ln2, b->fc_w, T, W, 4 * W);
    layernorm_backward(dx, gb->ln2_w, gb->ln2_b, dw, a->x_mid, b->ln2_w, a->ln2_mean, a->ln2_rstd, T, W);
    /* attention half: x_mid = x_in + out_proj(attention(in_proj(ln_1(x_in)))) */
    memset(dw, 0, (size_t)n * sizeof(float));
    linear_backward(dw, gb->out_w, gb->out_b, dx, a->attn, b->out_w, T, W, W);
    float *dqkv = d4; /* reuse: 3W <= 4W columns */
    memset(dqkv, 0, (size_t)n * 3 * sizeof(float));
    attention_backward(dqkv, dw, a->att, a->qkv, pk, W, H, causal);
    memset(dw, 0, (size_t)n * sizeof(float));
    linear_backward(dw, gb->qkv_w, gb->qkv_b, dqkv, a->ln1, b->qkv_w, T, W, 3 * W);
    layernorm_backward(dx, gb->ln1_w, gb->ln1_b, dw, a->x_in, b->ln1_w, a->ln1_mean, a->ln1_rstd, T, W);
    free(d4);
    free(d4b);
    free(dw);
}
