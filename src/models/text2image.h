/* Text to image: a trained UNet (models/unet.h), the CLIP whose text tower conditions it, and the
 * diffusion schedule the UNet was trained under (read from its file's metadata), put together
 * for `forget generate`, `forget eval generate` and the server's /v1/generate. Images come out
 * as 8-bit RGB, HWC, one after another. */
#ifndef FORGET_TEXT2IMAGE_H
#define FORGET_TEXT2IMAGE_H

#include <stdint.h>

#include "core/err.h"
#include "io/tokenizer.h"
#include "models/clip.h"
#include "models/diffusion.h"
#include "models/unet.h"
#include "models/vae.h"

typedef struct {
    UNet unet;
    ClipModel clip;
    Tokenizer tok;
    DiffSchedule sched;
    int side, ctx_len;    /* the UNet's sample side */
    int has_vae, image_side; /* latent models decode through vae to image_side px */
    Vae vae;
    float *uncond; /* the empty prompt's rows [ctx_len, ctx_dim] */
    struct Gemm *gemm; /* the UNet's and the autoencoder's precision (t2i_set_precision); owned */
    /* escape tokens (forget erase --method escape): n_escape rows of the text width placed right
     * after SOT of every prompt (not of the empty prompt of guidance); owned, NULL: none */
    float *escape;
    int n_escape;
    /* safe latent diffusion (forget erase --method sld): guidance away from a concept, the weights
     * untouched; has_safe 0: none. safe.rows is owned. */
    SafeGuidance safe;
    int has_safe;
} Text2Image;

/* vae_path NULL: the autoencoder the UNet's metadata names (diffusion.vae; a relative path is taken
 * from the UNet file's directory), if any. */
int t2i_load(Text2Image *g, const char *unet_path, const char *clip_path, const char *vae_path, Err *e);
void t2i_free(Text2Image *g);
/* The UNet's, the text encoder's and the autoencoder's products in p from now on. */
int t2i_set_precision(Text2Image *g, Precision p, Err *e);
/* Every prompt encoded from now on as [SOT, rows[0..k), its tokens, EOT, ...] (the prompt cut
 * to ctx_len - k tokens); rows [k, ctx_dim] are copied. k = 0 / rows NULL: none again. */
int t2i_set_escape(Text2Image *g, const float *rows, int k, Err *e);
/* Every guided sample from now on steered away from `concept` with SLD's parameters p (p->rows
 * is ignored: the concept's rows are encoded here). concept NULL: none again. */
int t2i_set_safe(Text2Image *g, const char *concept, const SafeGuidance *p, Err *e);
/* The text tower's rows of n prompts, out [n, ctx_len, ctx_dim] (with the escape tokens, if set). */
int t2i_encode(const Text2Image *g, const char *const *prompts, int n, float *out, Err *e);
/* A part of a weighted prompt, as public text-to-image APIs take them. */
typedef struct {
    const char *text;
    float weight;
} WeightedPrompt;
/* One conditioning out [ctx_len, ctx_dim] = sum_i w_i f(p_i) of m parts (each with the escape
 * tokens, if set): the strict black-box attacker's lever beyond words (forget attack). */
int t2i_encode_weighted(const Text2Image *g, const WeightedPrompt *w, int m, float *out, Err *e);
/* n_each samples of each of n conditionings cond [n, ctx_len, ctx_dim] (conditioning-major), as
 * latents x [n * n_each, in_ch, side, side] (before the autoencoder) or as images. */
int t2i_sample_cond(const Text2Image *g, const float *cond, int n, int n_each, const SampleSpec *sp, float *x, Err *e);
int t2i_generate_cond(const Text2Image *g, const float *cond, int n, int n_each, const SampleSpec *sp, uint8_t *rgb,
                      Err *e);
/* Samples x [total, in_ch, side, side] to 8-bit RGB [total, image_side, image_side, 3]. */
void t2i_decode(const Text2Image *g, const float *x, long total, uint8_t *rgb);
/* n_each images of each prompt (prompt-major) into rgb [n * n_each, image_side, image_side, 3];
 * sp's side and ctx_len are the model's. */
int t2i_generate(const Text2Image *g, const char *const *prompts, int n, int n_each, const SampleSpec *sp,
                 uint8_t *rgb, Err *e);

#endif
