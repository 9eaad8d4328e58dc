/* CLIP (OpenAI clip/model.py): a ViT image tower and a causal text transformer,
 * each pre-LN residual blocks, pooled and projected into one embedding space.
 *
 * All parameters live in one float32 buffer the model owns; named pointers
 * point into it (llm.c style), so an optimiser sees one flat vector. Linear
 * weights are (out, in). The two output projections are kept as (embed, width),
 * i.e. Hugging Face orientation; OpenAI files store them transposed and the
 * loader/saver converts. */
#ifndef FORGET_CLIP_H
#define FORGET_CLIP_H

#include <stdint.h>

#include "core/err.h"
#include "core/ops.h"
#include "io/safetensors.h"
#include "nn/block.h"

typedef NnAct ClipAct; /* ACT_QUICKGELU or ACT_GELU */
#define CLIP_LN_EPS 1e-5f /* every LayerNorm in CLIP */
typedef enum { LAYOUT_OPENAI = 0, LAYOUT_HF = 1 } ClipLayout;

typedef struct {
    int embed_dim;
    int has_vision, image_res, patch, v_width, v_layers, v_heads;
    int has_text, context, vocab, t_width, t_layers, t_heads;
    ClipAct act;
} ClipConfig;

typedef struct {
    ClipConfig cfg;
    float *params;
    long n_params;
    /* vision */
    float *conv1_w, *class_emb, *v_pos, *ln_pre_w, *ln_pre_b, *ln_post_w, *ln_post_b, *v_proj;
    BlockParams *v_blocks;
    /* text */
    float *tok_emb; /* NULL while the table is read row by row from the mapped file */
    float *t_pos, *ln_final_w, *ln_final_b, *t_proj;
    BlockParams *t_blocks;
    float *logit_scale;
    /* lazily widened token table (inference): the mapping stays open */
    SafeTensors *src;
    const StTensor *tok_src;
    ClipLayout layout;
    char src_dtypes[64]; /* e.g. "F32+F16" for info */
    /* image-side prompts every clip_encode_image* call runs with (models/clip_prompts.h, forget
     * domain); NULL: none. Not owned. */
    const struct ClipImagePrompts *image_prompts;
    /* the precision of the towers' weight products (core/gemm_mixed.h); NULL: fp32. Owned: set
     * by clip_set_precision, freed by clip_free. */
    struct Gemm *gemm;
} ClipModel;

typedef struct {
    int act_override;      /* -1: from metadata ("act"), else ClipAct */
    int load_token_table;  /* 1: widen the whole token table into params (training) */
} ClipLoadOpts;

int clip_load(ClipModel *m, const char *path, const ClipLoadOpts *opts, Err *e);
/* Builds a model with the given config and seeded random weights (CLIP's own init scales). */
void clip_init_random(ClipModel *m, const ClipConfig *cfg, uint64_t seed);
void clip_free(ClipModel *m);
/* Runs the towers' weight products in p from now on (bf16/int8 copies made on first use; a CPU
 * without the instructions stays fp32 with a notice). Code that edits weights in place afterwards
 * calls gemm_weights_changed(m->gemm). */
int clip_set_precision(ClipModel *m, Precision p, Err *e);
int clip_save(const ClipModel *m, const char *path, ClipLayout layout, StDtype dtype, Err *e);
/* The named ViT-B/32 configuration and friends: "vit-b-32", "vit-b-16", "tiny". */
int clip_config_named(ClipConfig *cfg, const char *name);
long clip_param_count(const ClipConfig *cfg, int vision, int text);

/* Optional view into the forward pass, for tests and debugging: called with each
 * named intermediate (rows of `cols` floats, sequences described by pk). */
typedef struct {
    void (*fn)(void *user, const char *name, const float *x, int rows, int cols, const Packing *pk);
    void *user;
} ClipTrace;

/* pixels [B, 3, R, R] normalised; out [B, embed_dim] (not normalised). */
int clip_encode_image(const ClipModel *m, const float *pixels, int B, float *out, const ClipTrace *tr, Err *e);
/* ids [N, context] as clip.tokenize returns them; out [N, embed_dim] (not normalised).
 * Positions after each text's EOT (its largest id) are never computed. */
int clip_encode_text(const ClipModel *m, const int32_t *ids, int N, float *out, const ClipTrace *tr, Err *e);
/* Every position's final hidden state of the text tower (after ln_final), out [N, context,
 * text width]: all context positions with all_positions (what Stable Diffusion's UNet
 * cross-attends to), else up to each text's EOT with zero rows after it. */
int clip_encode_text_hidden(const ClipModel *m, const int32_t *ids, int N, int all_positions, float *out, Err *e);
/* The same with positions 1..n_ctx of every prompt taken from ctx [N, n_ctx, width] instead of
 * the token table (ids with placeholder slots there, clip_context_slots): escape tokens, soft
 * prompts. ctx NULL: clip_encode_text_hidden. */
int clip_encode_text_hidden_context(const ClipModel *m, const int32_t *ids, int N, int all_positions, const float *ctx,
                                    int n_ctx, float *out, Err *e);
/* The vision tower's tokens after block `layer` (1..v_layers; before ln_post), out [B, 1 + grid^2,
 * width]: row 0 the class token, then the patches (LLaVA reads layer v_layers - 1's patches). */
int clip_encode_image_tokens(const ClipModel *m, const float *pixels, int B, int layer, float *out, Err *e);
/* Text features of prompts whose positions 1..n_ctx are context embeddings: ctx [N, n_ctx, width],
 * one context per prompt (the ids hold placeholder slots there, see clip_context_ids). */
int clip_encode_text_context(const ClipModel *m, const int32_t *ids, int N, const float *ctx, int n_ctx, float *out, Err *e);

/* A reusable workspace: calls through it allocate nothing once it has grown to their size. */
typedef struct ClipWorkspace ClipWorkspace;
ClipWorkspace *clip_workspace_new(void);
void clip_workspace_free(ClipWorkspace *ws);
int clip_encode_image_ws(const ClipModel *m, ClipWorkspace *ws, const float *pixels, int B, float *out,
                         const ClipTrace *tr, Err *e);
int clip_encode_text_ws(const ClipModel *m, ClipWorkspace *ws, const int32_t *ids, int N, float *out,
                        const ClipTrace *tr, Err *e);

/* Row id of the token table (widened from F16/BF16 when the table stays mapped). */
void clip_token_row(const ClipModel *m, int32_t id, float *dst);

/* logits_per_image [B, N] = exp(logit_scale) * norm(img) @ norm(txt)^T */
void clip_logits(const ClipModel *m, const float *img, int B, const float *txt, int N, float *logits);

/* Floating-point operations (multiply + add = 2) of one image / one text of
 * `tokens` positions, counting the work this implementation does. */
double clip_image_flops(const ClipConfig *c);
double clip_text_flops(const ClipConfig *c, int tokens);

#endif
