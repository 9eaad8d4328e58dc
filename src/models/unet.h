/* The noise-prediction UNet of Stable Diffusion v1 (diffusers' UNet2DConditionModel with SD-1's
 * block types), every size from a config:
 *   temb = linear_2(silu(linear_1(sinusoid(t))))                  time embedding, 4 x ch[0] wide
 *   h = conv_in(x); skips = [h]
 *   level l = 0..L-1: `layers` x { h = resnet(h, temb); h = attention(h, context) if attn[l]; push h }
 *                     then, but for the last level, h = conv3x3 stride 2 (h); push h
 *   middle: resnet, attention, resnet
 *   level l = L-1..0: (layers + 1) x { h = resnet(cat(h, pop), temb); attention if attn[l] }
 *                     then, but for level 0, h = conv3x3(nearest2x(h))
 *   out = conv_out(silu(groupnorm(h)))
 * A resnet is the shared pre-activation conv block (GroupNorm, SiLU, 3x3 conv, time projection,
 * 1x1 skip conv when the channel count changes); an attention is a spatial transformer: GroupNorm
 * (eps 1e-6), proj_in, `depth` shared transformer blocks (self-attention, cross-attention to the
 * text encoder's token states, GEGLU feed-forward, LayerNorms), proj_out, plus the input.
 *
 * The network is executed as a program: a list of steps (convolution, resnet, attention, skip
 * push, concatenation, up-sampling, output norm) built once from the config; the forward runs it
 * with a stack of skips, the backward runs it in reverse with a stack of skip gradients. Each
 * step owns its output and gradient buffers for the batch size of the activations.
 *
 * Parameters are one table (src/nn/params) with two key layouts: diffusers (layout 0:
 * down_blocks.N.resnets.M..., attn2.to_k) and CompVis (layout 1: model.diffusion_model.
 * input_blocks.N..., as in SD-1.x single-file checkpoints). tools/torch_unet.py builds the same
 * network in PyTorch. */
#ifndef FORGET_UNET_H
#define FORGET_UNET_H

#include <stdint.h>

#include "core/err.h"
#include "nn/block.h"
#include "nn/conv_block.h"
#include "nn/params.h"
#include "io/safetensors.h"

enum { UNET_MAX_LEVELS = 4, UNET_MAX_LAYERS = 3, UNET_MAX_DEPTH = 2 };
enum { UNET_DIFFUSERS = 0, UNET_COMPVIS = 1 };

typedef struct {
    int in_ch, out_ch;            /* sample channels (4 for SD's latents) */
    int levels;                   /* resolutions (SD-1: 4) */
    int ch[UNET_MAX_LEVELS];      /* channels per level (SD-1: 320, 640, 1280, 1280) */
    int attn[UNET_MAX_LEVELS];    /* 1: attention after each resnet of this level (SD-1: 1 1 1 0) */
    int layers;                   /* resnets per down level (SD-1: 2); up levels have one more */
    int heads;                    /* attention heads (SD-1: 8) */
    int depth;                    /* transformer blocks per attention (SD-1: 1) */
    int ctx_dim;                  /* width of the context rows (SD-1: 768, CLIP ViT-L/14's text) */
    int groups;                   /* GroupNorm groups (32) */
} UNetConfig;

/* "sd-1" (SD-1.x), "unet-tiny" (the tests' net), "unet-pixel-32" and "unet-latent-8" (the
 * sizes the budgets name); the context width is the caller's to change. */
int unet_config_named(UNetConfig *c, const char *name, Err *e);
/* Sizes, channels divisible by groups and heads, the sample side a multiple of 2^(levels-1);
 * side 0 skips the side check. */
int unet_config_check(const UNetConfig *c, int side, Err *e);
/* The config of a checkpoint from its tensors' shapes in either layout (heads are not in the
 * shapes: `heads` is used, SD-1's 8 when 0); *layout gets the layout found. */
int unet_config_infer(UNetConfig *c, SafeTensors *st, int heads, int *layout, Err *e);
/* Which layout a file's keys are in (-1 when neither). */
int unet_detect_layout(SafeTensors *st);
/* Whether a file looks like a UNet at all (either layout's conv_in). */
int unet_file_is_unet(SafeTensors *st);

typedef struct {
    float *norm_w, *norm_b, *in_w, *in_b, *out_w, *out_b; /* proj_in/out [C, C, 1, 1] */
    BlockParams blk[UNET_MAX_DEPTH];
} UNetAttnParams;

/* The autoencoder's attention (models/vae.h): GroupNorm, one head over the pixels, residual. */
typedef struct {
    float *norm_w, *norm_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
} VaeAttnParams;

enum { UNET_MAX_RES = 2 * UNET_MAX_LEVELS * (UNET_MAX_LAYERS + 1) + 2, UNET_MAX_ATTN = UNET_MAX_RES };

typedef struct {
    float *t1_w, *t1_b, *t2_w, *t2_b;        /* time_embedding.linear_1 / linear_2 */
    float *in_w, *in_b;                      /* conv_in */
    float *down_w[UNET_MAX_LEVELS], *down_b[UNET_MAX_LEVELS]; /* downsamplers */
    float *up_w[UNET_MAX_LEVELS], *up_b[UNET_MAX_LEVELS];     /* upsamplers' convs */
    float *nout_w, *nout_b, *out_w, *out_b;  /* conv_norm_out, conv_out */
    ConvBlockConfig rcfg[UNET_MAX_RES];
    ConvBlockParams res[UNET_MAX_RES];
    UNetAttnParams att[UNET_MAX_ATTN];
    VaeAttnParams vat[1];                   /* the autoencoder's middle attention */
} UNetParams;

typedef enum { US_CONV, US_RES, US_ATTN, US_PUSH, US_CAT, US_UP, US_NORM_ACT, US_VATTN } UNetStepKind;
typedef struct {
    UNetStepKind kind;
    int index;            /* the resnet or attention; a concatenation: the push step it reads */
    int cin, cout, f_in, f_out; /* channels, and the down-sampling factors (1 << level) in and out */
    int stride, k, pad_br; /* convolutions: stride, kernel, and pad_br: the SD autoencoder's down-sampler
                            * (zero row and column after the image, no padding before) */
    float **w, **b;       /* convolutions: their parameter slots */
} UNetStep;
enum { UNET_MAX_STEPS = 4 * UNET_MAX_RES + 16 };

typedef struct {
    UNetConfig cfg;
    UNetParams p;
    NnTable table;
    float *arena;
    long n_params;
    UNetStep steps[UNET_MAX_STEPS];
    int n_steps, n_res, n_attn;
    BlockConfig bcfg;     /* the transformer blocks' config (per level width set at run time) */
    int has_time;         /* 1: the time MLP feeds the resnets (the denoiser); 0: an autoencoder half */
    int out_ch, f_out;    /* the last step's channels and down-sampling factor */
    float norm_eps;       /* the output GroupNorm's (1e-5; the autoencoder's 1e-6) */
    struct Gemm *gemm;    /* the products' precision (unet_set_gemm); NULL: fp32. Not owned. */
} UNet;

void unet_alloc(UNet *m, const UNetConfig *c);
void unet_free(UNet *m);
/* Sampling from now on runs the convolutions' and linear layers' products in g's precision (its
 * bf16 or int8 copies of the weights made on first use; one context may serve several models);
 * norms, activations, attention and the residual stream stay fp32. NULL: fp32. For inference:
 * the trainers leave it NULL. g is not owned and must outlive its use. */
void unet_set_gemm(UNet *m, struct Gemm *g);
/* Random init (diffusers-like fan-in scales; conv_out and proj_out small so a new net predicts
 * little). */
void unet_init(UNet *m, uint64_t seed);
long unet_param_count(const UNetConfig *c);
/* The parameter table of a config without an arena (keys and shapes: `forget info`, the tests);
 * its slots point into *slots, which must outlive it. */
void unet_table(const UNetConfig *c, NnTable *t, UNetParams *slots);
/* Multiply-adds x 2 of one forward on a side x side sample with ctx_len context rows. */
double unet_forward_flops(const UNet *m, int side, int ctx_len);
/* Saves in a layout (metadata: format forget-unet and the config) through temp + rename. */
int unet_save(const UNet *m, const char *path, int layout, StDtype dtype, const char *const *meta_kv, int n_meta,
              Err *e);
/* Loads either layout; the config from the metadata when the file is ours, else inferred from
 * the shapes (heads: 0 for SD-1's 8). */
int unet_load(UNet *m, const char *path, int heads, Err *e);

/* Gradient storage with the model's layout. */
typedef struct {
    UNetParams p;
    NnTable table;
    float *arena;
    long n;
} UNetGrads;
void unet_grads_alloc(UNetGrads *g, const UNet *m);
void unet_grads_free(UNetGrads *g);

typedef struct UNetActs UNetActs;
/* Activations for a batch of B samples of side x side with ctx_len context rows each;
 * training keeps what the backward needs. */
UNetActs *unet_acts_new(const UNet *m, int B, int side, int ctx_len, int training);
void unet_acts_free(UNetActs *a);

/* x [B, in_ch, side, side], t [B] timesteps (floats), ctx [B, ctx_len, ctx_dim] -> eps
 * [B, out_ch, side, side]. The same program runs the autoencoder's halves (models/vae.h): no
 * time or context (t, ctx NULL), output [B, out_ch, side / f_out, side / f_out]. */
void unet_forward(const UNet *m, UNetActs *a, const float *x, const float *t, const float *ctx, float *eps);
/* From deps = dL/d(eps): parameter gradients accumulate into g (NULL: none, a frozen net), the
 * input's into dx and the context's into dctx (either NULL). Needs a training forward. */
void unet_backward(const UNet *m, UNetActs *a, const float *deps, UNetGrads *g, float *dx, float *dctx);

/* The cross-attention weights of the last forward (Forget-Me-Not's loss reads them): block j of
 * unet_cross_count's, laid out [B, H, Lq, Lk] (Lq pixels of its level, Lk context rows). A
 * gradient of them set with unet_cross_set_grad (same layout; NULL: none) is added in the next
 * unet_backward. */
int unet_cross_count(const UNetActs *a);
const float *unet_cross_probs(const UNetActs *a, int j, int *Lq, int *Lk, int *H);
void unet_cross_set_grad(UNetActs *a, int j, const float *datt);

#endif
