/* The model zoo: named training recipes that `forget zoo build` turns into
 * $FORGET_HOME/zoo/NAME.safetensors (FORGET_HOME defaults to ~/.cache/forget),
 * skipping work already done. Later commands use these as their embedded defaults. */
#ifndef FORGET_ZOO_H
#define FORGET_ZOO_H

#include "train/clip_trainer.h"

/* What a recipe builds: a CLIP (forget train), the parts of a latent text-to-image model
 * (forget train-vae, train-diffusion) and its judge (forget train-judge), or the multimodal LLM
 * (forget train-mllm), whose stages and tokenizer live in zoo/NAME/ (the model: zoo/NAME/mllm.safetensors). */
typedef enum { ZOO_CLIP = 0, ZOO_VAE, ZOO_DIFFUSION, ZOO_JUDGE, ZOO_MLLM } ZooKind;

typedef struct {
    const char *name, *summary;
    const char *train_set, *eval_set, *config; /* config: the CLIP, autoencoder, UNet or ResNet shape */
    int epochs, batch;
    double lr;
    uint64_t seed;
    int eval_every, eval_samples;
    const BiasSpec *bias;
    ZooKind kind;
    long steps;                     /* autoencoder and UNet recipes: training steps */
    const char *text_encoder, *vae; /* a diffusion recipe's CLIP and autoencoder, by recipe name */
    int side;                       /* image side of the generative recipes */
} ZooRecipe;

const ZooRecipe *zoo_recipes(int *n);
const ZooRecipe *zoo_find(const char *name);
/* $FORGET_HOME/zoo (created on demand when create is set); NULL-terminated path in buf. */
char *zoo_dir(int create, Err *e); /* malloc'd, or NULL with e set */
/* Where a recipe's model lives, in dir (or the zoo directory when dir is NULL). */
char *zoo_model_path(const ZooRecipe *r, const char *dir, Err *e); /* malloc'd, or NULL with e set */
void zoo_train_opts(const ZooRecipe *r, const char *out, TrainOpts *o);

#endif
