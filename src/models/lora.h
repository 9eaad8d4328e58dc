/* LoRA (Hu et al. 2022): a frozen weight W0 [out, in] adapted as W = W0 + (alpha / r) B A, with A
 * [r, in] (Gaussian, std 1/r, as PEFT's "gaussian" init) and B [out, r] (zeros, so training starts at
 * W0). Only A and B train. forget merges the adapters into the model's weights before each forward
 * and turns the ordinary weight gradient dW into theirs, dA = s B^T dW and dB = s dW A^T: exact, and
 * every layer keeps its one forward/backward. Targets are the Llama projections of an LM (q, k, v,
 * o, gate, up, down), each a row block of the block's fused matrices; keys are PEFT's
 * (base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight, ...). */
#ifndef FORGET_MODELS_LORA_H
#define FORGET_MODELS_LORA_H

#include "models/lm.h"
#include "nn/params.h"

enum { LORA_PROJ1 = 7, LORA_PROJ2 = 8 };

typedef struct {
    float *W;          /* the adapted rows in the model */
    float *W0;         /* their base values (owned) */
    float *A, *B;      /* in the adapter arena */
    int layer, out, in, row0;
    int kind;          /* 0..6: q, k, v, o, gate, up, down; LORA_PROJ1, LORA_PROJ2: an MLLM's projector */
} LoraTarget;

typedef struct {
    int rank;
    float alpha;
    LoraTarget *t;
    int n;
    NnTable table;
    float *params;
    long n_params;
} Lora;

/* Adapters on the named targets ("q,k,v,o,gate,up,down" or a subset; "all") of every layer of m,
 * seeded; m's weights become the base. */
int lora_attach(Lora *l, LmModel *m, const char *targets, int rank, float alpha, uint64_t seed, Err *e);
struct Mllm;
/* Adapters on an MLLM: its projector's two linear layers (projector != 0; PEFT keys
 * base_model.model.model.mm_projector.{0,2}.lora_A.weight, ...) and/or the LM's targets (NULL: none). */
int lora_attach_mllm(Lora *l, struct Mllm *m, int projector, const char *lm_targets, int rank, float alpha,
                     uint64_t seed, Err *e);
/* A zeroed gradient arena of the adapters (same layout). */
void lora_alloc_like(Lora *g, const Lora *l);
void lora_free(Lora *l);
/* W = W0 + s B A on every target. */
void lora_merge(const Lora *l);
/* The adapters' gradients from the model's weight gradient (of the merged weights): grads is an
 * arena with the layout of params, the arena the adapted weights live in (the LM's or the MLLM's). */
void lora_backward(const Lora *l, const float *params, const float *grads, Lora *g);
/* The adapters alone, under PEFT's names, with lora.rank / lora.alpha / lora.targets metadata. */
int lora_save(const Lora *l, const char *path, Err *e);

#endif
