/* The CLIP parameter table: every parameter's place in the flat buffer, its OpenAI/open_clip key
 * (layout 0) and Hugging Face key(s) (layout 1), its init scale and whether it decays. Loading,
 * saving, init and `forget info` all walk this one table (src/nn/params.h). */
#ifndef FORGET_CLIP_PARAMS_H
#define FORGET_CLIP_PARAMS_H

#include "models/clip.h"
#include "nn/params.h"

/* Appends every entry for m's config in buffer order; m->v_blocks / t_blocks must already be
 * allocated. Decay follows OpenAI's rule as the reference applies it: 2-D+ weights except the
 * embeddings. */
void clip_param_table_build(NnTable *t, ClipModel *m);
/* The table for an existing model (slots point at m's named pointers); nn_table_free() it. */
NnTable clip_param_table(ClipModel *m);

/* 0 when every weight is finite; else -1 with e naming the first tensor (in the file's key layout)
 * and element holding a NaN or an infinity. */
int clip_check_finite(const ClipModel *m, Err *e);
/* For a non-finite output (a NaN probability would index a label array or print as garbage):
 * "WHAT is not finite: tensor '...' holds NaN at element N ...", or that the weights are fine. */
int clip_nonfinite_error(const ClipModel *m, const char *what, Err *e);

#endif
