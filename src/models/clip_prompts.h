/* Image-side prompts for a frozen CLIP image tower: deep visual prompt tuning (VPT-deep, Jia et
 * al. 2022: P learnable tokens put in at each of the first `layers` blocks) and, optionally,
 * InstaPG, ADU's instance-wise prompt generator (Kawamura et al. 2025, vlm-domain.md C.3).
 *
 * InstaPG, OUR RECONSTRUCTION of "a cross-attention in an intermediate ViT block, the prompts as
 * queries, that image's patch tokens as keys and values; its output replaces the prompts fed to
 * the following layers": before block k = pg_layer, a transformer block with cross-attention
 * (nn/block.h: self-attention among the P prompts, cross-attention to LayerNorm(patch rows of
 * the stream entering block k), an MLP of width W) maps the layer-k prompts vpt[k] to per-image
 * prompts O(x). The prompts fed at layer l >= k are then vpt[l] + O(x) - vpt[k], so layer k gets
 * O(x) itself and every later prompted layer keeps its own learned tokens shifted by what the
 * image asked for. Its three output projections start at zero: an untrained InstaPG is the
 * identity and ADU starts from plain VPT.
 *
 * The parameters of one set of prompts live in one arena described by an NnTable (the prompts
 * file, forget/domain_file.c, saves and loads it). A model carries prompts by pointer
 * (ClipModel.image_prompts): every clip_encode_image* call then runs with them. */
#ifndef FORGET_CLIP_PROMPTS_H
#define FORGET_CLIP_PROMPTS_H

#include "models/clip_train.h"
#include "nn/params.h"

typedef struct ClipImagePrompts {
    int tokens, layers, pg_layer; /* pg_layer < 0: no InstaPG */
    int width, heads, grid;       /* the tower's width and heads, patches per side */
    float *vpt;                   /* [layers, tokens, width] */
    BlockConfig pg_cfg;
    BlockParams pg;
    float *pg_ctx_w, *pg_ctx_b;   /* LayerNorm of the patch rows InstaPG reads */
    long n_params;
    NnTable table; /* clip_prompts_alloc's own table and arena (empty / NULL after _declare) */
    float *arena;
} ClipImagePrompts;

/* Room for prompts for m's image tower (every entry zero); then clip_prompts_init_random. pg_layer
 * must be < layers (or -1). */
void clip_prompts_alloc(ClipImagePrompts *p, const ClipConfig *c, int tokens, int layers, int pg_layer);
/* The same entries appended to a caller's table (keys "vpt.tokens", "instapg.*"), for an arena
 * the caller lays out with other tensors; clip_prompts_free then frees nothing of theirs. */
void clip_prompts_declare(NnTable *t, ClipImagePrompts *p, const ClipConfig *c, int tokens, int layers, int pg_layer);
/* VPT tokens N(0, 0.02), InstaPG weights N(0, 0.02) except its output projections (zero)
 * (clip_prompts_alloc's arena; a declared one is initialised with its table). */
void clip_prompts_init_random(ClipImagePrompts *p, uint64_t seed);
void clip_prompts_free(ClipImagePrompts *p);
/* Parameters of the prompt tokens and of InstaPG. */
long clip_prompts_count(const ClipImagePrompts *p, int with_pg);

/* The state of InstaPG for one batch (its block's activations and the context it read). */
typedef struct {
    const ClipImagePrompts *p;
    ClipImagePrompts *g; /* gradients (NULL: none) */
    int B, train;
    TowerHook hook;
    BlockActs blk;
    BlockContext ctx;
    int *q_start, *q_len, *k_start, *k_len;
    long *self_off, *cross_off;
    Packing pk;
    AttnPacking apk;
    float *q;                               /* [B*P, W] the block's rows (input, then output) */
    float *ctx_in, *ctx_ln, *ctx_mean, *ctx_rstd; /* [B*G*G, W] patch rows and their LN */
    float *off, *doff;                      /* [B, P, W] per-image offsets and their gradient */
    long cap_B;
} ClipPromptRun;

/* Sets up a (already sized by image_acts_reuse with p's tokens and layers) to run with p: the
 * VPT tokens, their gradient g->vpt when g is set, and InstaPG's hook. The run's buffers grow
 * with B and are kept for the next batch. */
void clip_prompts_bind(ClipPromptRun *r, const ClipImagePrompts *p, ClipImagePrompts *g, TowerActs *a, int train);
void clip_prompt_run_free(ClipPromptRun *r);

/* Image features through a frozen tower with prompts (no gradient kept). */
int clip_encode_image_prompted(const ClipModel *m, const ClipImagePrompts *p, const float *pixels, int B, float *out,
                               Err *e);

#endif
