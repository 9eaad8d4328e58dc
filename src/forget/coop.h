/* The white-box upper bound: CoOp (Zhou et al. 2022) trained on BBF's loss. m context
 * embeddings shared by all classes ([SOT] p_1..p_m {class}. [EOT], BBF's prompt) are moved by
 * Adam along the exact gradient through the text tower, in process, with the model's weights in
 * hand: what no black-box method may do. Full-batch steps on the k-shot training features; the
 * context with the best k-shot validation H is kept, as for the black-box methods. */
#ifndef FORGET_COOP_H
#define FORGET_COOP_H

#include <stdint.h>

#include "io/tokenizer.h"
#include "models/clip.h"

typedef struct {
    int n_ctx, steps, eval_every;
    double lr;
    uint64_t seed;
    int quiet;
} CoopOpts;

void coop_defaults(CoopOpts *o);
/* prompts [C]; image features [N, E] (unnormalised) of the k-shot train and validation images.
 * Writes the chosen context [n_ctx, t_width] and its validation H. */
int coop_run(const ClipModel *m, const Tokenizer *t, const char *const *prompts, int C, const uint8_t *forget,
             const float *img_tr, const int32_t *y_tr, int ntr, const float *img_va, const int32_t *y_va, int nva,
             const CoopOpts *o, float *ctx_out, double *val_h, Err *e);

#endif
