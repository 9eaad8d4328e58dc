/* Training the LLaVA-shaped MLLM on its world in the stages a real one goes through, each on the one
 * trainer (checkpoints, resume, progress):
 *   0  the SentencePiece tokenizer, trained on the world's corpus (<image> kept whole)
 *   1  LM pre-training on text: set A's profiles in several phrasings, CLDR facts (the LM alone)
 *   2  projector alignment on captions (set A faces, emoji, Fashion-MNIST): the projector alone
 *   3  instruction tuning on questions about set A (image+text and text-only, cloze) and general
 *      questions: projector and LM
 *   4  fine-tuning on set B's questions (with general ones and a replay of stages 1-2's pre-training
 *      data): LM and projector, or LoRA adapters
 * The vision tower is a CLIP checkpoint's, frozen throughout (LLaVA-1.5's choice). Each stage writes
 * DIR/stageN.safetensors (the last also DIR/mllm.safetensors); a rerun skips finished stages and
 * resumes a killed one from DIR/stageN.ckpt. */
#ifndef FORGET_TRAIN_MLLM_TRAINER_H
#define FORGET_TRAIN_MLLM_TRAINER_H

#include "core/err.h"
#include "io/mllm_world.h"

enum { MLLM_STAGES = 4 };
extern const char *const MLLM_STAGE_NAMES[MLLM_STAGES];

typedef struct {
    const char *dir;
    const char *tower;        /* CLIP checkpoint (the zoo's emoji-clip) */
    const char *lm_config;    /* lm-s */
    int vocab;                /* SentencePiece pieces (a soft limit) */
    long steps[MLLM_STAGES];
    int batch[MLLM_STAGES];
    double lr[MLLM_STAGES];
    WorldOpts world;
    /* stage 4 with LoRA adapters on the LM instead of full fine-tuning (rank 0: full); the adapters
     * are merged into stage4.safetensors and kept in stage4-lora.safetensors */
    int lora_rank;
    float lora_alpha;
    const char *lora_targets;  /* "q,k,v,o,gate,up,down" or a subset; "all" */
    uint64_t seed;
    int quiet, fresh;
    long stop_after;          /* > 0: stop the running stage after this many steps, as if killed */
} MllmTrainOpts;

/* The zoo's mllm-s recipe. */
void mllm_train_defaults(MllmTrainOpts *o);
int mllm_train_stages(const MllmTrainOpts *o, Err *e);

#endif
