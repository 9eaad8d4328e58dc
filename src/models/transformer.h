/* The pre-LN residual block shared by both CLIP towers:
 *   x = x + out_proj(attention(in_proj(ln_1(x))))
 *   x = x + c_proj(act(c_fc(ln_2(x))))
 * on packed sequences. BlockActs holds every activation the backward needs; for
 * inference one BlockActs is reused by all layers. */
#ifndef FORGET_TRANSFORMER_H
#define FORGET_TRANSFORMER_H

#include "core/ops.h"
#include "models/clip.h"

typedef struct {
    float *x_in;             /* [T, W] block input (kept only when training) */
    float *ln1, *ln1_mean, *ln1_rstd;
    float *qkv;              /* [T, 3W] */
    float *att;              /* attention weights, packing_att_offsets size */
    float *attn;             /* [T, W] attention output before out_proj */
    float *x_mid;            /* [T, W] residual after the attention half */
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fc;               /* [T, 4W] pre-activation */
    float *act;              /* [T, 4W] */
    float *tmp;              /* [T, W] projection output before the residual add */
} BlockActs;

/* Allocates every buffer for T rows of width W (att_size floats of attention weights);
 * keep_input also keeps a copy of the block input, which the backward needs. */
void block_acts_alloc(BlockActs *a, int T, int W, long att_size, int keep_input);
void block_acts_free(BlockActs *a);

/* x [T, W] is updated in place (x_in is filled when a->x_in is set). */
void block_forward(const ClipBlock *b, BlockActs *a, float *x, int T, int W, int H, ClipAct act,
                   const Packing *pk, int causal);

/* Inference on new rows only, with the keys and values of earlier positions cached (causal text
 * tower): x [Tn, W] holds the new rows of every sequence, sequence s's new rows starting at
 * new_start[s]. full_qkv [Tf, 3W], packed by pk_full (whole sequences), already holds the first
 * pre[s] rows of sequence s; this block writes the new rows' Q, K, V after them (so the caller can
 * cache them) and attends over the whole sequence. full_attn [Tf, W] is workspace; a is sized for
 * Tn rows with pk_full's attention size. Same arithmetic as block_forward on the new rows. */
void block_forward_prefix(const ClipBlock *b, BlockActs *a, float *x, int Tn, int W, int H, ClipAct act,
                          const Packing *pk_full, const int *pre, const int *new_start, float *full_qkv,
                          float *full_attn);

/* Backward through one block: dx [T, W] holds dL/d(block output) on entry and
 * dL/d(block input) on return; parameter gradients accumulate into gb.
 * Needs a->x_in (the forward must have run with it allocated). */
void block_backward(const ClipBlock *b, ClipBlock *gb, const BlockActs *a, float *dx, int T, int W, int H,
                    ClipAct act, const Packing *pk, int causal);

#endif
