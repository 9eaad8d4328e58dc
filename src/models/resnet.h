/* The CIFAR-style ResNet (He et al. 2016, section 4.2): a 3x3 stem convolution + BatchNorm +
 * ReLU, three stages of basic blocks (src/nn/conv_block, post-activation order) of widths w, 2w,
 * 4w, the first block of stages 2 and 3 strided, global average pooling, and one cosine head per
 * task as LSF uses them (multi-head): the pooled feature and each head's rows are L2-normalised,
 * so a head's output is the cosine of the feature to each class (AM-softmax scales it).
 * Depth 6n + 2 for n blocks a stage: resnet-20 is n = 3, w = 16.
 *
 * Optionally a standardising layer after block L (0: after the stem) for LSF's feature codes
 * (OUR RECONSTRUCTION, see docs/lsf.md): h' = Norm(h) [+ kappa * Norm(code)], Norm an instance
 * normalisation per sample and channel without affine parameters. It is part of the network
 * whenever configured, code or not, so the network always sees standardised features there.
 *
 * Key layout 0 follows torchvision's ResNet names (conv1, bn1, layer1.0.conv1, ...,
 * layerS.B.downsample.0/1) with heads.H.weight; tools/torch_resnet.py builds the same network. */
#ifndef FORGET_RESNET_H
#define FORGET_RESNET_H

#include "core/err.h"
#include "core/conv_dnnl.h"
#include "nn/conv_block.h"
#include "nn/params.h"

enum { RESNET_MAX_BLOCKS = 3 * 18, RESNET_MAX_HEADS = 64 };

typedef struct {
    int in_ch, res;   /* input channels and side */
    int width, n;     /* stem width and blocks per stage */
    int n_heads, head_classes[RESNET_MAX_HEADS];
    int code_layer;   /* -1: no standardising layer; else 0..3n (after the stem or after block L) */
    float eps, momentum; /* BatchNorm's */
    int smooth;       /* 1: SiLU for ReLU (finite-difference tests: no kinks); never saved */
    int plain;        /* 1: NCHW and im2col even where the blocked layout fits (tests compare the two) */
} ResNetConfig;

/* "resnet-20" (w 16, n 3), "resnet-32", "resnet-56", "resnet-8n" (the narrow test net: w 4,
 * n 1); heads and input are the caller's. */
int resnet_config_named(ResNetConfig *c, const char *name, Err *e);
int resnet_depth(const ResNetConfig *c);
int resnet_blocks(const ResNetConfig *c);
int resnet_feature_dim(const ResNetConfig *c);
/* Floating-point operations of one image's forward pass (2 x the convolutions' multiply-adds). */
double resnet_forward_flops(const ResNetConfig *c);
/* Shape [C, H, W] of the feature map after layer L (0: the stem; else block L); -1 when the
 * network has no such layer. */
int resnet_layer_shape(const ResNetConfig *c, int layer, int *C, int *H, int *W);
/* Checks a config a user or a file gave (sizes, heads, the code layer); -1 naming what is wrong. */
int resnet_config_check(const ResNetConfig *c, Err *e);

typedef struct {
    float *stem_w, *bn_w, *bn_b, *bn_rm, *bn_rv;
    ConvBlockConfig bcfg[RESNET_MAX_BLOCKS];
    ConvBlockParams blk[RESNET_MAX_BLOCKS];
    float *head[RESNET_MAX_HEADS]; /* [classes, feature_dim] */
} ResNetParams;

/* A model: its config, table, and one arena; grads share the layout (resnet_grads_alloc). */
typedef struct {
    ResNetConfig cfg;
    ResNetParams p;
    NnTable table;
    float *arena;
    long n_params;
} ResNet;

void resnet_alloc(ResNet *m, const ResNetConfig *c);
void resnet_free(ResNet *m);
void resnet_init(ResNet *m, uint64_t seed);
/* Copies parameters and buffers from src (same config). */
void resnet_copy(ResNet *dst, const ResNet *src);
int resnet_save(const ResNet *m, const char *path, const char *const *meta_kv, int n_meta, Err *e);
/* Reads the config from the file's metadata and the tensors; -1 naming what is missing. */
int resnet_load(ResNet *m, const char *path, Err *e);

/* Whether the network runs in oneDNN's blocked layout (every width a multiple of 16, not plain). */
int resnet_blocked(const ResNetConfig *c);

/* Activations of one forward at batch B (what the backward needs). Feature maps are NCHW or,
 * when resnet_blocked, nChw16c; inputs, codes and features are always NCHW / rows. */
typedef struct {
    int B, nb, blocked, training, code_only, has_code;
    float kappa;
    float *x_in, *stem_h, *stem_bn, *stem_m, *stem_r, *stem_cols;
    ConvDnnl stem_dn;
    float *code_tmp, *code_tmp2; /* the standardising layer in NCHW when the net runs blocked */
    float *scratch;              /* the backward's buffers, kept between calls */
    ConvBlockActs blk[RESNET_MAX_BLOCKS];
    float **out;               /* [blocks + 1]: out[0] the stem's, out[l] block l's */
    float *code_in, *code_m, *code_r; /* the standardising layer's input and statistics */
    float *pooled, *feat, *feat_norm;
} ResNetActs;

void resnet_acts_alloc(ResNetActs *a, const ResNetConfig *c, int B);
void resnet_acts_free(ResNetActs *a);

/* x [B, in_ch, res, res] NCHW -> feat [B, feature_dim], L2-normalised (kept in a->feat).
 * code: [B, C, H, W] codes already standardised (resnet_standardise), added kappa-scaled at the
 * code layer, or NULL. code_only: x is ignored and the layers before the code layer are skipped
 * (a standardised feature of no image is zero: the code alone enters). training: BatchNorm
 * batch statistics, running statistics updated. */
void resnet_forward(const ResNet *m, ResNetActs *a, const float *x, const float *code, float kappa, int code_only,
                    int training);
/* cos [B, K] of head h on a->feat; its backward accumulates dfeat and the head's gradient. */
void resnet_head_forward(const ResNet *m, int h, const float *feat, int B, float *cos);
void resnet_head_backward(const ResNet *m, int h, const float *feat, int B, const float *dcos, float *dfeat,
                          ResNetParams *g);
/* Backward from dfeat (gradient of the normalised feature) into g (NULL: no parameter
 * gradients) and dx (may be NULL). */
void resnet_backward(const ResNet *m, ResNetActs *a, const float *dfeat, ResNetParams *g, float *dx);

/* Gradient storage with the model's layout. */
typedef struct {
    ResNetParams p;
    NnTable table;
    float *arena;
    long n;
} ResNetGrads;
void resnet_grads_alloc(ResNetGrads *g, const ResNetConfig *c);
void resnet_grads_free(ResNetGrads *g);

/* The standardising layer's Norm on n maps [C, HW] (no gradient: codes are fixed). */
void resnet_standardise(float *out, const float *in, int n, int C, long HW);

#endif
