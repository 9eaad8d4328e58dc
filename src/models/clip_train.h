/* What training needs beyond inference: the towers' activations kept for the
 * backward pass, the backward passes themselves, and CLIP's contrastive loss.
 * clip_encode_image/text run these same forward functions with nothing kept. */
#ifndef FORGET_CLIP_TRAIN_H
#define FORGET_CLIP_TRAIN_H

#include "models/clip.h"
#include "nn/block.h"

/* One tower's packed activations for a batch. */
typedef struct {
    BlockConfig bc; /* the tower's block */
    int n, T, W, train;
    int *start, *len;
    long *off, att_size;
    Packing pk;
    int32_t *ids;         /* text: packed token ids */
    float *cols;          /* image: conv workspace (im2col), kept for the conv backward */
    float *x0;            /* pre-LN input (image) */
    float *mean0, *rstd0;
    float *x;             /* residual stream */
    BlockActs *layers;    /* one per layer when training, one shared otherwise */
    int n_layers;
    float *pool_in, *pool_ln, *pool_mean, *pool_rstd; /* [n, W] pooled rows before/after the final LN */
    /* text only, optional: context embeddings [n, n_ctx, W] that replace the token embeddings at
     * positions 1..n_ctx of every sequence (CoOp / BBT / BBF prompts: [SOT] p_1..p_m words [EOT]);
     * set by the caller after text_acts_init. text_backward adds their gradient into dctx. */
    const float *ctx;
    float *dctx;
    int n_ctx;
} TowerActs;

/* CLIP's block: LayerNorm, a 4W MLP, causal in the text tower. */
BlockConfig clip_block_config(const ClipConfig *c, int text);

void image_acts_init(TowerActs *a, const ClipModel *m, int B, int train);
/* Positions the text tower computes for one row of ids: up to and including the EOT (the
 * largest id); -1 with e set for an id outside the vocabulary (n names the row). */
int clip_text_len(const ClipModel *m, const int32_t *row, int n, Err *e);
/* ids [N, context]; fails on an id outside the vocabulary. */
int text_acts_init(TowerActs *a, const ClipModel *m, const int32_t *ids, int N, int train, Err *e);
void tower_acts_free(TowerActs *a);

void image_forward(const ClipModel *m, TowerActs *a, const float *pixels, float *out, const ClipTrace *tr);
/* Row id of the token table (widened from F16/BF16 when the table stays mapped). */
void clip_token_row(const ClipModel *m, int32_t id, float *dst);
void text_forward(const ClipModel *m, TowerActs *a, float *out, const ClipTrace *tr);
/* The n prompts ids [n, context] with one context [nctx, W] shared by all (copied into rep
 * [n, nctx, W], which must outlive a): text features into out; train keeps the activations for
 * text_backward. The caller frees a. */
void clip_text_forward_context(const ClipModel *m, TowerActs *a, const int32_t *ids, int n, const float *ctx, int nctx,
                               float *rep, float *out, int train);
/* Accumulate parameter gradients into g (a model of the same config, see clip_init_zeros), or
 * with g NULL (frozen towers) compute only what flows to the inputs (text: the context's dctx).
 * tr (may be NULL) receives the gradient of each traced activation, under the forward's names. */
void image_backward(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dout, const ClipTrace *tr);
void text_backward(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dout, const ClipTrace *tr);

/* Symmetric InfoNCE of OpenAI's CLIP: pairs (img[i], txt[i]) are positives,
 *   L = (CE(logits, arange) + CE(logits^T, arange)) / 2,  logits = e^s norm(img) norm(txt)^T.
 * Gradients (each may be NULL) accumulate into dimg/dtxt [B, E] and *dscale. */
float clip_contrastive_loss(const float *img, const float *txt, int B, int E, float logit_scale, float *dimg,
                            float *dtxt, float *dscale, float *logits_out);

/* A model of the given config with every parameter (token table included) zero:
 * the gradient buffer of training. */
void clip_init_zeros(ClipModel *g, const ClipConfig *cfg);

#endif
