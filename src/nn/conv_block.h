/* The convolutional residual block of the image models to come, NCHW in and out, in the two
 * orders they use:
 *   pre-activation (Stable Diffusion's ResnetBlock2D):
 *     h = conv1(act(norm1(x))) [+ time_proj(act(temb)) per channel]; h = conv2(act(norm2(h)));
 *     out = skip(x) + h, skip a 1x1 convolution when the channel count changes;
 *   post-activation (the CIFAR ResNet's basic block):
 *     h = act(norm1(conv1(x))); h = norm2(conv2(h)); out = act(h + skip(x)),
 *     skip a strided 1x1 convolution + norm when the shape changes.
 * 3x3 convolutions with padding 1, the first one strided. Norms are GroupNorm or BatchNorm (with
 * running statistics as buffers, batch statistics while training). Backward passes take NULL
 * parameter gradients for a frozen block. */
#ifndef FORGET_NN_CONV_BLOCK_H
#define FORGET_NN_CONV_BLOCK_H

#include "core/conv_dnnl.h"
#include "nn/params.h"

typedef enum { CONV_NORM_GROUP = 0, CONV_NORM_BATCH = 1 } ConvNorm;
typedef enum { CONV_SILU = 0, CONV_RELU = 1 } ConvAct;

typedef struct {
    int cin, cout, stride;
    ConvNorm norm;
    int groups;      /* GroupNorm */
    float eps;       /* the norms' epsilon */
    float momentum;  /* BatchNorm's running statistics (PyTorch's 0.1) */
    ConvAct act;
    int temb;        /* > 0: width of a time embedding added after the first convolution (pre-activation) */
    int post_act;    /* 1: the ResNet order; 0: the pre-activation order */
    int blocked;     /* 1: activations in nChw16c and oneDNN's convolutions (post-activation, BatchNorm,
                      * channels multiples of 16: conv_block_can_block) */
    struct Gemm *gemm; /* the forward products' precision (core/gemm_mixed.h; im2col path); NULL: fp32 */
} ConvBlockConfig;

/* Biases the post-activation order does not have stay NULL; rm/rv are BatchNorm buffers. */
typedef struct {
    float *n1_w, *n1_b, *n1_rm, *n1_rv, *conv1_w, *conv1_b;
    float *temb_w, *temb_b;
    float *n2_w, *n2_b, *n2_rm, *n2_rv, *conv2_w, *conv2_b;
    float *skip_w, *skip_b, *ns_w, *ns_b, *ns_rm, *ns_rv; /* NULL: the identity */
} ConvBlockParams;

/* Whether the block has a projection on its skip path. */
int conv_block_has_skip(const ConvBlockConfig *c);
/* Whether the blocked layout can serve this block. */
int conv_block_can_block(const ConvBlockConfig *c);
/* Appends the block's tensors to t under prefix, with the key names of the model family in layout
 * 0 (pre-activation: diffusers' norm1, conv1, time_emb_proj, norm2, conv2, conv_shortcut;
 * post-activation: torchvision's conv1, bn1, conv2, bn2, downsample.0/1), and their init. */
void conv_block_table(NnTable *t, ConvBlockParams *p, const ConvBlockConfig *c, const char *prefix);

typedef struct {
    int B, H, W, OH, OW, training;
    float *x_in, *a1, *a2, *h1, *a3, *a4, *h2, *s, *sum;
    float *m1, *r1, *m2, *r2, *ms, *rs; /* norm statistics */
    float *cols1, *cols2, *cols_s;       /* im2col workspaces, kept for the backward */
    float *t1;                           /* act(temb) [B, temb] */
    ConvDnnl dn1, dn2, dns;              /* the blocked layout's convolutions */
    float *scratch;                      /* the backward's gradient buffers, made at its first call */
} ConvBlockActs;

void conv_block_acts_alloc(ConvBlockActs *a, const ConvBlockConfig *c, int B, int H, int W);
void conv_block_acts_free(ConvBlockActs *a);
/* x [B, cin, H, W] -> out [B, cout, OH, OW]; temb [B, temb] or NULL. training: BatchNorm uses
 * (and updates the running statistics from) the batch. */
void conv_block_forward(const ConvBlockConfig *c, const ConvBlockParams *p, ConvBlockActs *a, const float *x,
                        const float *temb, float *out, int training);
/* dx [B, cin, H, W] and dtemb accumulate (either may be NULL); gradients into g (NULL: frozen). */
void conv_block_backward(const ConvBlockConfig *c, const ConvBlockParams *p, ConvBlockParams *g, ConvBlockActs *a,
                         const float *temb, const float *dout, float *dx, float *dtemb);

#endif
