/* A LLaVA-1.5-shaped multimodal LLM (Liu et al. 2023, "Improved Baselines with Visual Instruction
 * Tuning"): a CLIP ViT vision tower, whose patch tokens of a chosen layer (LLaVA: the penultimate,
 * without the class token) go through a two-layer GELU projector into the LM's width and take the
 * place of the <image> placeholder in the Llama-style LM's sequence (models/lm.h).
 *
 * One parameter table and one arena hold the tower, the projector and the LM. Two key layouts:
 *   MLLM_LLAVA  (liuhaotian/LLaVA): model.vision_tower.vision_tower.vision_model.*, model.mm_projector.{0,2},
 *               model.embed_tokens, model.layers.N.*, model.norm, lm_head
 *   MLLM_LLAVA_HF (llava-hf): vision_tower.vision_model.*, multi_modal_projector.linear_{1,2},
 *               language_model.model.*, language_model.lm_head
 * The tower's projection to CLIP's joint space is not part of LLaVA and is stored in neither. */
#ifndef FORGET_MODELS_MLLM_H
#define FORGET_MODELS_MLLM_H

#include "models/clip.h"
#include "models/lm.h"

enum { MLLM_LLAVA = 0, MLLM_LLAVA_HF = 1 };

typedef struct {
    ClipConfig tower;  /* vision only (has_text 0) */
    LmConfig lm;
    int select_layer;  /* the tower layer whose patch tokens are read (1..v_layers; LLaVA: v_layers - 1) */
    int image_token;   /* the LM id of the <image> placeholder */
} MllmConfig;

typedef struct Mllm {
    MllmConfig cfg;
    ClipModel tower;   /* its pointers into the arena; not owned separately */
    LmModel lm;        /* likewise */
    float *proj1_w, *proj1_b, *proj2_w, *proj2_b; /* [Wl, Wv], [Wl], [Wl, Wl], [Wl] */
    NnTable table;
    float *params;
    long n_params;
    int layout;        /* the layout it was loaded from */
    char src_dtypes[32];
} Mllm;

/* Patch tokens an image becomes: grid^2 of the tower. */
int mllm_image_tokens(const MllmConfig *c);
int mllm_config_check(const MllmConfig *c, Err *e);

void mllm_alloc(Mllm *m, const MllmConfig *cfg);
/* Seeded random weights for every part; a tower can then be copied in with mllm_set_tower. */
void mllm_init_random(Mllm *m, const MllmConfig *cfg, uint64_t seed);
/* Copies a CLIP model's vision tower (same shape) into the MLLM. */
int mllm_set_tower(Mllm *m, const ClipModel *clip, Err *e);
/* A zeroed gradient of m's arena with m's structure. */
void mllm_alloc_like(Mllm *g, const Mllm *m);
void mllm_free(Mllm *m);
/* Either layout, found from the keys; ours carry mllm.* metadata, a foreign file may need
 * config.json beside it (the LM's heads) and falls back to LLaVA's choices for the rest. */
int mllm_load(Mllm *m, const char *path, Err *e);
int mllm_save(const Mllm *m, const char *path, int layout, StDtype dtype, const char *const *meta_kv, int n_meta,
              Err *e);
/* Marks what trains: the projector, the LM. The tower stays frozen whatever `tower` says (LLaVA-1.5
 * keeps it frozen, and mllm_backward has no pass through it yet). */
void mllm_set_trainable(Mllm *m, int tower, int projector, int lm);

/* The tower's patch tokens of images: pixels [B, 3, R, R] CLIP-normalised -> out [B, N, Wv]. */
int mllm_encode_images(const Mllm *m, const float *pixels, int B, float *out, Err *e);

/* ------------------------------------------------------------ training */

typedef struct {
    LmActs lm;
    int rows;                /* image rows in the batch */
    int32_t *img_row;        /* [rows] their rows in the packed batch */
    float *vis, *h1, *h1g;   /* [rows, Wv] features, [rows, Wl] before and after the GELU */
    int32_t *ids, *targets;  /* [T] the expanded ids (-1 at image rows) and targets */
    int cap_rows, cap_T;
} MllmActs;

void mllm_acts_free(MllmActs *a);

/* A batch of nseq sequences of token ids (ids[s], n[s] tokens; the <image> placeholder at most once
 * a sequence, where feats[s] [N, Wv] is spliced in; feats[s] NULL: a text-only sequence) and
 * per-token targets (tgt[s][i]: the id token i should predict, -1: none). Runs the projector and the
 * LM and returns the mean cross-entropy; -1 with e set for a malformed batch. */
int mllm_forward(const Mllm *m, MllmActs *a, const int32_t *const *ids, const int32_t *const *tgt, const int *n,
                 const float *const *feats, int nseq, float *loss, Err *e);
/* Log-probability sum of each sequence's targets (choice scoring); lp[nseq]. */
void mllm_sequence_logprobs(const Mllm *m, MllmActs *a, double *lp);
/* Gradients of the last forward's loss (scaled by dloss) into g, for the parts that train. */
void mllm_backward(const Mllm *m, Mllm *g, MllmActs *a, float dloss);

/* Continues one prompt (ids, with the placeholder if feats is not NULL). */
int mllm_generate(const Mllm *m, const int32_t *ids, int n, const float *feats, const LmSampling *s, int32_t *out,
                  Err *e);

#endif
