/* The pre-norm transformer block every model in forget is made of:
 *   x = x + out(attention(qkv(norm1(x))))                    self-attention (causal or not, RoPE optional)
 *   x = x + xout(attention(xq(normx(x)), xkv(context)))      cross-attention, when cross_width > 0
 *   x = x + proj(act(fc(norm2(x))))                          MLP (GELU, QuickGELU, or gated GEGLU / SwiGLU)
 * on packed sequences (rows of several sequences in one matrix). CLIP's towers are the first and
 * third lines with LayerNorm and a 4W MLP; a Stable Diffusion transformer block adds the second
 * with GEGLU; a Llama block is RMSNorm, RoPE and SwiGLU without biases.
 * BlockActs holds every activation the backward needs; for inference one BlockActs serves all
 * layers. Backward passes take a NULL parameter-gradient block (frozen weights: no weight
 * gradient is computed) and a NULL context gradient (a frozen encoder). */
#ifndef FORGET_NN_BLOCK_H
#define FORGET_NN_BLOCK_H

#include "core/gemm_mixed.h"
#include "core/ops.h"

typedef enum { ACT_QUICKGELU = 0, ACT_GELU = 1, ACT_GEGLU = 2, ACT_SWIGLU = 3 } NnAct;
typedef enum { NORM_LAYER = 0, NORM_RMS = 1 } NnNorm;

typedef struct {
    int width, heads;
    int hidden;          /* MLP hidden size (CLIP: 4 * width); gated activations read 2 * hidden from fc */
    NnAct act;
    NnNorm norm;
    float eps;           /* the norms' epsilon (LayerNorm 1e-5) */
    int causal;
    int cross_width;     /* 0: no cross-attention; else the width of the context sequence's rows */
    int rope;            /* rotary positions on Q and K (position = row within its sequence) */
    float rope_base;
    struct Gemm *gemm;   /* how the weight products run (core/gemm_mixed.h); NULL: fp32. Not owned. */
} BlockConfig;

/* Biases and norm shifts may be NULL where a model has none (RMSNorm, Llama projections). */
typedef struct {
    float *ln1_w, *ln1_b, *qkv_w, *qkv_b, *out_w, *out_b;            /* qkv_w [3W, W]: Q, K, V stacked */
    float *lnx_w, *lnx_b, *xq_w, *xq_b, *xkv_w, *xkv_b, *xout_w, *xout_b; /* xkv_w [2W, cross_width] */
    float *ln2_w, *ln2_b, *fc_w, *fc_b, *proj_w, *proj_b;            /* fc_w [hidden (x2 gated), W] */
} BlockParams;

/* The second sequence cross-attention reads: rows of the context and how they pair with the
 * query sequences (pk's sequence s attends to context rows k_start[s] .. + k_len[s]). */
typedef struct {
    const float *x; /* [Tk, cross_width] */
    int Tk;
    const AttnPacking *pk;
    long att_size;
} BlockContext;

typedef struct {
    float *x_in;                     /* [T, W] block input (kept only when training) */
    float *ln1, *ln1_mean, *ln1_rstd;
    float *qkv;                      /* [T, 3W] (Q and K rotated when rope) */
    float *att, *attn;               /* attention weights; [T, W] attention output before out */
    float *x_mid;                    /* [T, W] residual after self-attention */
    float *lnx, *lnx_mean, *lnx_rstd, *xq, *xkv, *xatt, *xattn, *x_mid2; /* cross-attention */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fc;                       /* [T, hidden (x2 gated)] pre-activation */
    float *act;                      /* [T, hidden] */
    float *tmp;                      /* [T, W] projection output before the residual add */
    int32_t *pos;                    /* [T] row within its sequence (rope) */
    int T, Tk;
    const float *xatt_grad;          /* optional: a gradient of the cross-attention weights (xatt's layout) that the
                                      * backward adds to what flows from the block's output; NULL: none */
} BlockActs;

/* Buffers for T rows (att_size floats of self-attention weights, ctx for cross-attention or
 * NULL); keep_input also keeps a copy of the block input, which the backward needs. */
void block_acts_alloc(BlockActs *a, const BlockConfig *c, int T, long att_size, const BlockContext *ctx,
                      int keep_input);
void block_acts_free(BlockActs *a);

/* x [T, W] is updated in place. ctx is NULL without cross-attention. */
void block_forward(const BlockConfig *c, const BlockParams *b, BlockActs *a, float *x, int T, const Packing *pk,
                   const BlockContext *ctx);

/* Inference on new rows only, with the keys and values of earlier positions cached (causal
 * decoding): x [Tn, W] holds the new rows of every sequence, sequence s's new rows starting at
 * new_start[s]. full_qkv [Tf, 3W], packed by pk_full (whole sequences), already holds the first
 * pre[s] rows of sequence s; this block writes the new rows' Q, K, V after them (so the caller can
 * cache them) and attends over the whole sequence. full_attn [Tf, W] is workspace; a is sized for
 * Tn rows with pk_full's attention size. Same arithmetic as block_forward on the new rows. */
void block_forward_prefix(const BlockConfig *c, const BlockParams *b, BlockActs *a, float *x, int Tn,
                          const Packing *pk_full, const int *pre, const int *new_start, float *full_qkv,
                          float *full_attn);

/* Causal decoding with a key/value cache: x [Tn, W] holds the new rows of every sequence. Sequence
 * s's queries are its q_len[s] new rows (from q_start[s]); its keys are rows k_start[s] ..
 * + k_len[s] of kbuf/vbuf ([rows, W] each), the cached ones followed by room for the new, into
 * which this block writes the new rows' keys and values. pos[Tn]: the new rows' positions (RoPE).
 * a is sized for Tn rows and pk's attention size. Inference only. */
void block_forward_kv(const BlockConfig *c, const BlockParams *b, BlockActs *a, float *x, int Tn, const AttnPacking *pk,
                      float *kbuf, float *vbuf, const int32_t *pos);

/* dx [T, W] holds dL/d(block output) on entry and dL/d(block input) on return; parameter
 * gradients accumulate into gb (NULL: frozen, none computed), the context's into dctx (NULL: none).
 * Needs a->x_in (the forward must have run with it allocated). */
void block_backward(const BlockConfig *c, const BlockParams *b, BlockParams *gb, const BlockActs *a, float *dx, int T,
                    const Packing *pk, const BlockContext *ctx, float *dctx);

/* Multiply-adds x 2 of one block on T rows with att_pairs attended (query, key) pairs. */
double block_flops(const BlockConfig *c, int T, double att_pairs, int Tk);

#endif
