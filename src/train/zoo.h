/* The model zoo: named training recipes that `forget zoo build` turns into
 * $FORGET_HOME/zoo/NAME.safetensors (FORGET_HOME defaults to ~/.cache/forget),
 * skipping work already done. Later commands use these as their embedded defaults. */
#ifndef FORGET_ZOO_H
#define FORGET_ZOO_H

#include "train/clip_trainer.h"

typedef struct {
    const char *name, *summary;
    const char *train_set, *eval_set, *config;
    int epochs, batch;
    double lr;
    uint64_t seed;
    int eval_every, eval_samples;
    const BiasSpec *bias;
} ZooRecipe;

const ZooRecipe *zoo_recipes(int *n);
const ZooRecipe *zoo_find(const char *name);
/* $FORGET_HOME/zoo (created on demand when create is set); NULL-terminated path in buf. */
char *zoo_dir(int create, Err *e); /* malloc'd, or NULL with e set */
/* Where a recipe's model lives, in dir (or the zoo directory when dir is NULL). */
char *zoo_model_path(const ZooRecipe *r, const char *dir, Err *e); /* malloc'd, or NULL with e set */
void zoo_train_opts(const ZooRecipe *r, const char *out, TrainOpts *o);

#endif
