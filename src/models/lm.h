/* A Llama-style decoder (Touvron et al. 2023; Hugging Face LlamaForCausalLM's structure and key
 * names): token embedding, L pre-norm blocks of RMSNorm + causal self-attention with rotary
 * positions (rotate-half convention, as HF) + RMSNorm + SwiGLU MLP, no biases, a final RMSNorm and
 * an output head (its own, or the embedding table when tied). The blocks are nn/block's; this file
 * adds the embedding, the head, the loss and decoding with nn/kv_cache.
 *
 * Grouped K/V heads load repeated to one per query head (see lm_tie_heads) and save as stored.
 * Keys: model.embed_tokens.weight, model.layers.N.{input_layernorm, post_attention_layernorm}.weight,
 * model.layers.N.self_attn.{q,k,v,o}_proj.weight (q, k, v stacked into the block's qkv),
 * model.layers.N.mlp.{gate,up,down}_proj.weight (gate and up stacked into fc), model.norm.weight,
 * lm_head.weight (absent when tied). The config comes from the shapes plus the heads, the rotary base
 * and the norm epsilon, read from the file's metadata (ours: lm.*; HF names also accepted) or from a
 * config.json beside the file, as a Hugging Face checkpoint directory has it. */
#ifndef FORGET_MODELS_LM_H
#define FORGET_MODELS_LM_H

#include <stdint.h>

#include "core/err.h"
#include "core/rng.h"
#include "io/safetensors.h"
#include "nn/block.h"
#include "nn/params.h"

typedef struct {
    int vocab, width, layers, heads, kv_heads, hidden;
    int context;      /* longest sequence (max_position_embeddings) */
    float rope_base;  /* rope_theta: 10000 in Llama 1/2 */
    float eps;        /* rms_norm_eps */
    int tied;         /* the head is the embedding table */
} LmConfig;

typedef struct {
    LmConfig cfg;
    BlockConfig bc;
    NnTable table;
    float *params;
    long n_params;
    float *tok_emb;   /* [vocab, width] */
    BlockParams *blocks;
    float *norm_w;    /* [width] */
    float *head;      /* [vocab, width]; == tok_emb when tied */
    char src_dtypes[32];
} LmModel;

/* "lm-tiny" (tests), "lm-s" (the zoo's MLLM); vocab is the caller's to set. */
int lm_config_named(LmConfig *c, const char *name, Err *e);
int lm_config_check(const LmConfig *c, Err *e);

/* Allocates the arena for cfg (weights zero). */
void lm_alloc(LmModel *m, const LmConfig *cfg);
/* For a model inside a larger one (the MLLM): lm_prepare sets the config and the block array,
 * lm_table_add appends the entries (layout L's keys are prefix[L] + the Llama names, a NULL prefix:
 * absent in L) to the caller's table, and lm_bind finishes once the caller's arena is laid out.
 * m->table and m->params stay empty; lm_free frees only the blocks then. */
void lm_prepare(LmModel *m, const LmConfig *cfg);
void lm_table_add(NnTable *t, LmModel *m, const char *const *prefix);
void lm_bind(LmModel *m);
/* lm_alloc and seeded random weights (normal 0.02, output projections 0.02 / sqrt(2L), norms 1). */
void lm_init_random(LmModel *m, const LmConfig *cfg, uint64_t seed);
/* Grouped K/V heads (kv_heads < heads) are held repeated, one copy per query head, as Hugging
 * Face's repeat_kv expands them: sum 0 makes every copy equal to its group's first (after init),
 * sum 1 gives every copy the group's summed gradient (lm_backward does it), so the copies stay one
 * parameter under any element-wise optimiser. No-op without groups. */
void lm_tie_heads(LmModel *m, int sum);
/* A second model of m's config whose arena is a zeroed gradient of m's (same table order). */
void lm_alloc_like(LmModel *g, const LmModel *m);
void lm_free(LmModel *m);

int lm_load(LmModel *m, const char *path, Err *e);
/* Reads the config of a checkpoint without loading it (shapes, metadata, config.json); the LM's
 * keys start with prefix ("" for a Llama file, "language_model." inside a llava-hf one). */
int lm_config_read(LmConfig *c, SafeTensors *st, const char *prefix, Err *e);
/* HF key names, metadata lm.* (and format forget-lm) plus the caller's pairs; dtype F32/F16/BF16. */
int lm_save(const LmModel *m, const char *path, StDtype dtype, const char *const *meta_kv, int n_meta, Err *e);

/* ------------------------------------------------------------ training */

/* One batch of packed sequences: rows [T, W]; everything the backward needs. */
typedef struct {
    int T, nseq;
    int cap_T, cap_seq, n_layers; /* what the buffers were sized for */
    long cap_att;
    int *start, *len;
    long *att_off;
    BlockActs *layers;   /* one per block, inputs kept */
    float *x;            /* [T, W] the input rows, then the residual stream */
    float *xf, *rstd;    /* [T, W] after the final norm; its rstd */
    float *dx;           /* [T, W] gradient workspace */
    int n_tgt;           /* rows with a target */
    int32_t *tgt_row, *tgt_id;
    float *xg;           /* [n_tgt, W] those rows of xf */
    float *logits, *probs; /* [n_tgt, vocab] */
    int cap_tgt;
    /* When set, lm_backward takes this [n_tgt, vocab] as dL/d(logits of the target rows), scaled by
     * dloss, in place of the mean cross-entropy's (losses built on the softmax: KL, NPO's weights). */
    const float *dlogits;
} LmActs;

void lm_acts_free(LmActs *a);

/* Rows of the batch from token ids: embeds rows where ids[t] >= 0 into a->x and leaves the rest to
 * the caller (the MLLM writes image rows there). Sizes a for T rows in nseq sequences of len[]. */
void lm_batch_begin(const LmModel *m, LmActs *a, const int32_t *ids, int T, const int *len, int nseq);
/* Runs the blocks and the final norm on a->x. */
void lm_forward(const LmModel *m, LmActs *a);
/* Mean cross-entropy over rows whose target (targets[t], the id the row should predict) is >= 0;
 * the logits become the softmax for the backward. Returns the loss (0 when no row has a target). */
float lm_loss(const LmModel *m, LmActs *a, const int32_t *targets);
/* Log-probability of each row's target into lp[T] (0 where the target is < 0), summed in *sum. */
void lm_target_logprobs(const LmModel *m, LmActs *a, const int32_t *targets, float *lp, double *sum);
/* Backward of lm_loss scaled by dloss: parameter gradients accumulate into g (NULL: none, a frozen
 * LM); d_rows [T, W], if not NULL, gets dL/d(input rows) (the image rows of an MLLM). The token
 * table's gradient gets the rows whose id was >= 0. */
void lm_backward(const LmModel *m, LmModel *g, LmActs *a, const int32_t *ids, float dloss, float *d_rows);

/* ------------------------------------------------------------ decoding */

typedef struct {
    int max_tokens;
    float temperature; /* 0: greedy */
    float top_p;       /* 1: the whole distribution */
    uint64_t seed;
    int eos;           /* stop after this id (< 0: none) */
    int no_cache;      /* recompute the whole prefix for every token (the benchmark's baseline) */
} LmSampling;

/* Continues a prompt given as rows of input embeddings (prompt [n, W]: token rows from lm_embed,
 * or an MLLM's mix of token and image rows). out gets up to s->max_tokens ids; returns how many,
 * or -1 (the prompt and the new tokens would pass the context). */
int lm_generate_rows(const LmModel *m, const float *prompt, int n, const LmSampling *s, int32_t *out, Err *e);
/* The same from token ids. */
int lm_generate(const LmModel *m, const int32_t *ids, int n, const LmSampling *s, int32_t *out, Err *e);
/* Token rows of ids into out [n, W]. */
void lm_embed(const LmModel *m, const int32_t *ids, int n, float *out);
/* The next token from logits [vocab] under s (rng carries the state between calls). */
int lm_sample(const float *logits, int vocab, const LmSampling *s, Rng *rng);

/* Multiply-adds x 2 of the forward on n rows of one sequence (the head on `head_rows` of them). */
double lm_flops(const LmConfig *c, int n, int head_rows);

#endif
