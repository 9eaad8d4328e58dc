/* What training needs beyond inference: the towers' activations kept for the
 * backward pass, the backward passes themselves, and CLIP's contrastive loss.
 * clip_encode_image/text run these same forward functions with nothing kept. */
#ifndef FORGET_CLIP_TRAIN_H
#define FORGET_CLIP_TRAIN_H

#include "models/clip.h"
#include "nn/block.h"

/* A layer hook of the image tower (InstaPG, models/clip_prompts.h): before block `layer` the
 * forward computes per-image prompt offsets off [n, P, W] from the stream; the prompts fed at
 * layers layer .. vpt_layers-1 are vpt[l] + off[n]. The backward gets doff, the gradient of those
 * offsets summed over the layers, and adds what flows to the stream into dx (the gradient of
 * block `layer`'s input). */
typedef struct TowerActs TowerActs;
typedef struct {
    int layer;
    void (*forward)(void *user, TowerActs *a);
    void (*backward)(void *user, const TowerActs *a, const float *doff, float *dx);
    void *user;
    float *off, *doff; /* [n, P, W], owned by the hook's user */
} TowerHook;

/* One tower's packed activations for a batch. Buffers are kept between calls and grow only when
 * a batch needs more room (tower_acts_reserve), so a TowerActs reused for many batches (the
 * inference workspace) allocates nothing after the largest one. */
struct TowerActs {
    BlockConfig bc; /* the tower's block */
    int n, T, W, train;
    int *start, *len, *pool_row;
    long *off, att_size;
    Packing pk;
    int32_t *ids;         /* text: packed token ids */
    float *cols;          /* image: conv workspace (im2col), kept for the conv backward */
    float *patches;       /* image: the patch embeddings [n, grid^2, W] */
    float *x0;            /* pre-LN input (image) */
    float *mean0, *rstd0;
    float *x;             /* residual stream */
    BlockActs *layers;    /* one per layer when training, one shared otherwise */
    int n_layers;
    float *pool_in, *pool_ln, *pool_mean, *pool_rstd; /* [n, W] pooled rows before/after the final LN */
    float *hidden, *hid_mean, *hid_rstd; /* text: final LN of every row (clip_text_hidden_forward) */
    /* capacity of the buffers above (rows, sequences, attention floats, conv columns) */
    long cap_T, cap_n, cap_att, cap_cols, cap_hid, cap_patch;
    int cap_layers, cap_train;
    /* run blocks [0, stop_layer) only (0: all): the stream after that layer (patch tokens) */
    int stop_layer;
    /* text only, optional: context embeddings [n, n_ctx, W] that replace the token embeddings at
     * positions 1..n_ctx of every sequence (CoOp / BBT / BBF prompts: [SOT] p_1..p_m words [EOT]);
     * set by the caller after text_acts_init. text_backward adds their gradient into dctx. */
    const float *ctx;
    float *dctx;
    int n_ctx;
    /* image only, optional (VPT-deep, Jia et al. 2022): every sequence is [CLS, p_1..p_P, patches]
     * and before each of the first vpt_layers blocks the P prompt rows are replaced by
     * vpt[l] ([vpt_layers, P, W], set after image_acts_init_vpt); image_backward adds their
     * gradient into dvpt. Prompt rows carry no position embedding. */
    int vpt_tokens, vpt_layers;
    const float *vpt;
    float *dvpt;
    const TowerHook *hook; /* NULL: none */
};

/* CLIP's block: LayerNorm, a 4W MLP, causal in the text tower. */
BlockConfig clip_block_config(const ClipConfig *c, int text);

/* Each init starts a from nothing (memset); the _reuse forms keep a's buffers (a zeroed
 * TowerActs the first time) and grow them only when this batch needs more. */
void image_acts_init(TowerActs *a, const ClipModel *m, int B, int train);
void image_acts_init_vpt(TowerActs *a, const ClipModel *m, int B, int vpt_tokens, int vpt_layers, int train);
void image_acts_reuse(TowerActs *a, const ClipModel *m, int B, int vpt_tokens, int vpt_layers, int train);
/* Positions the text tower computes for one row of ids: up to and including the EOT (the
 * largest id); -1 with e set for an id outside the vocabulary (n names the row). */
int clip_text_len(const ClipModel *m, const int32_t *row, int n, Err *e);
/* ids [N, context]; fails on an id outside the vocabulary. all_positions: every row computes
 * all context positions (Stable Diffusion's conditioning reads all 77), not only up to EOT. */
int text_acts_init(TowerActs *a, const ClipModel *m, const int32_t *ids, int N, int train, Err *e);
int text_acts_reuse(TowerActs *a, const ClipModel *m, const int32_t *ids, int N, int train, int all_positions, Err *e);
void tower_acts_free(TowerActs *a);

void image_forward(const ClipModel *m, TowerActs *a, const float *pixels, float *out, const ClipTrace *tr);
void text_forward(const ClipModel *m, TowerActs *a, float *out, const ClipTrace *tr);
/* After text_forward: the final LN of every computed row into a->hidden (kept for the backward)
 * and, when out is set, as [n, context, W] (rows past a sequence's length zero). */
void clip_text_hidden_forward(const ClipModel *m, TowerActs *a, float *out);
/* The n prompts ids [n, context] with one context [nctx, W] shared by all (copied into rep
 * [n, nctx, W], which must outlive a): text features into out; train keeps the activations for
 * text_backward. The caller frees a. */
void clip_text_forward_context(const ClipModel *m, TowerActs *a, const int32_t *ids, int n, const float *ctx, int nctx,
                               float *rep, float *out, int train);
/* Accumulate parameter gradients into g (a model of the same config, see clip_init_zeros), or
 * with g NULL (frozen towers) compute only what flows to the inputs (text: the context's dctx;
 * image: the prompts' dvpt). tr (may be NULL) receives the gradient of each traced activation,
 * under the forward's names. */
void image_backward(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dout, const ClipTrace *tr);
void text_backward(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dout, const ClipTrace *tr);
/* From the stream's gradient instead of the features': image dx [T, W] after the stop_layer
 * blocks that ran (patch tokens); text dhidden [n, context, W] of clip_text_hidden_forward's
 * output. dx / dhidden are read only. */
void image_backward_tokens(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dx, const ClipTrace *tr);
void text_backward_hidden(const ClipModel *m, ClipModel *g, const TowerActs *a, const float *dhidden);

/* Symmetric InfoNCE of OpenAI's CLIP: pairs (img[i], txt[i]) are positives,
 *   L = (CE(logits, arange) + CE(logits^T, arange)) / 2,  logits = e^s norm(img) norm(txt)^T.
 * Gradients (each may be NULL) accumulate into dimg/dtxt [B, E] and *dscale. */
float clip_contrastive_loss(const float *img, const float *txt, int B, int E, float logit_scale, float *dimg,
                            float *dtxt, float *dscale, float *logits_out);

/* A model of the given config with every parameter (token table included) zero:
 * the gradient buffer of training. */
void clip_init_zeros(ClipModel *g, const ClipConfig *cfg);

#endif
