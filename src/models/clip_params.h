#ifndef FORGET_CLIP_PARAMS_H
#define FORGET_CLIP_PARAMS_H

#include "models/clip.h"

typedef struct {
    float **slot;           /* the model's named pointer for this parameter */
    long count;
    int ndim;
    int64_t shape[4];       /* internal shape (what the model computes with) */
    char openai[128];       /* OpenAI/open_clip key */
    char hf[3][128];        /* Hugging Face key(s); three (q, k, v) stack along dim 0 */
    int n_hf;
    int openai_transposed;  /* OpenAI stores this 2-D tensor transposed */
    int is_token_table;
    int is_block_param;
} ParamSpec;

typedef struct {
    ParamSpec *specs;
    int n;
} ParamList;

/* How many specs clip_param_list can write for this config. */
int clip_param_capacity(const ClipConfig *c);
/* Fills pl->specs (capacity from clip_param_capacity) in buffer order; m->v_blocks / t_blocks
 * must already be allocated. Returns the count. */
int clip_param_list(ParamList *pl, ClipModel *m);

/* The table for an existing model (slots point at m's named pointers); free() the result. */
ParamSpec *clip_param_table(ClipModel *m, int *n);
/* OpenAI's rule as the reference applies it: decay 2-D+ weights except the embeddings. */
int clip_param_decays(const ParamSpec *s);

/* 0 when every weight is finite; else -1 with e naming the first tensor (in the file's key layout)
 * and element holding a NaN or an infinity. */
int clip_check_finite(const ClipModel *m, Err *e);
/* For a non-finite output (a NaN probability would index a label array or print as garbage):
 * "WHAT is not finite: tensor '...' holds NaN at element N ...", or that the weights are fine. */
int clip_nonfinite_error(const ClipModel *m, const char *what, Err *e);

#endif
