/* The latent autoencoder of Stable Diffusion (diffusers' AutoencoderKL), every size from a
 * config, run on the UNet's program executor (models/unet.h: the same resnets, GroupNorm,
 * convolutions; a one-head attention in the middle):
 *   encoder: conv_in; per level `layers` resnets, a stride-2 convolution (zero row and column
 *            after the image) but at the last level; middle resnet, attention, resnet;
 *            GroupNorm, SiLU, conv_out to 2 x latent channels (mean, log-variance); quant_conv 1x1
 *   decoder: post_quant_conv 1x1; conv_in; middle; per level from the last, `layers` + 1
 *            resnets and, but at level 0, nearest 2x + conv; GroupNorm, SiLU, conv_out
 * Keys in the diffusers layout (encoder.down_blocks.N.resnets.M..., decoder.up_blocks...,
 * mid_block.attentions.0.to_q, quant_conv). Latents are scaled by `scale` (metadata
 * vae.scaling_factor; SD-1's is 0.18215) before the UNet sees them. */
#ifndef FORGET_VAE_H
#define FORGET_VAE_H

#include "core/err.h"
#include "models/unet.h"

typedef struct {
    int in_ch, latent_ch, levels, ch[UNET_MAX_LEVELS], layers, groups;
} VaeConfig;

/* "sd-vae" (SD-1's: 128/256/512/512, 2 resnets, 83,653,863 parameters), "vae-f4" (ours: 32 px ->
 * 8 x 8 x 4 in three levels of 32/64/64, one resnet each), "vae-tiny" (the tests'). */
int vae_config_named(VaeConfig *c, const char *name, Err *e);
int vae_config_check(const VaeConfig *c, int side, Err *e);
int vae_factor(const VaeConfig *c); /* image side / latent side */

typedef struct {
    VaeConfig cfg;
    UNet enc, dec;     /* the two programs; their parameters live in the one arena below */
    NnTable table;     /* both halves' entries */
    float *arena;
    long n_params;
    float scale;       /* latent scaling factor */
} Vae;
/* Both halves' products in g's precision (unet_set_gemm; not owned). */
void vae_set_gemm(Vae *v, struct Gemm *g);

typedef struct {
    UNetGrads enc, dec; /* p fields point into arena */
    NnTable table;
    float *arena;
    long n;
} VaeGrads;

void vae_alloc(Vae *v, const VaeConfig *c);
void vae_free(Vae *v);
void vae_init(Vae *v, uint64_t seed);
long vae_param_count(const VaeConfig *c);
void vae_grads_alloc(VaeGrads *g, const Vae *v);
void vae_grads_free(VaeGrads *g);
int vae_save(const Vae *v, const char *path, const char *const *meta_kv, int n_meta, Err *e);
int vae_load(Vae *v, const char *path, Err *e);

/* x [B, in_ch, S, S] in [-1, 1] -> moments [B, 2 x latent, S/f, S/f] (mean, then log-variance):
 * run the encoder program through its activations (unet_acts_new(&v->enc, B, S, 1, training)). */
void vae_encode(const Vae *v, UNetActs *a, const float *x, float *moments);
/* z [B, latent, S/f, S/f] (unscaled) -> x [B, in_ch, S, S] through the decoder's activations
 * (unet_acts_new(&v->dec, B, S, 1, training): both halves' activations take the image side). */
void vae_decode(const Vae *v, UNetActs *a, const float *z, float *x);

#endif
