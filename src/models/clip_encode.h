/* Texts and image files straight to CLIP features: tokenising with the model's
 * context length, decoding + the CLIP transform at the model's resolution, and
 * batching so memory stays bounded whatever the count. */
#ifndef FORGET_CLIP_ENCODE_H
#define FORGET_CLIP_ENCODE_H

#include "io/tokenizer.h"
#include "models/clip.h"

enum { CLIP_ENCODE_BATCH = 32 };

/* out [n, embed_dim], unnormalised. */
int clip_encode_texts(const ClipModel *m, const Tokenizer *t, const char *const *texts, int n, float *out, Err *e);
int clip_encode_image_files(const ClipModel *m, const char *const *paths, int n, float *out, Err *e);

/* Room for m context embeddings after [SOT] (CoOp/BBT/BBF prompts): a row [SOT, t_1.., EOT] of
 * len tokens becomes [SOT, 0 x m, t_1.., EOT]; the placeholders are replaced by TowerActs.ctx.
 * Returns the new length, -1 when it would not fit in ctx positions. */
int clip_context_slots(int32_t *row, int len, int m, int ctx);

/* Token ids [n, context] of clip_prompt_fill(tpl, subjects[i]), each with nctx context slots. */
int clip_context_ids(const ClipModel *m, const Tokenizer *t, const char *tpl, const char *const *subjects, int n, int nctx,
                     int32_t *ids, Err *e);
/* tpl with "{}" replaced by subject (malloc'd); a template without "{}" is followed by the subject,
 * a NULL template gives the subject alone. */
char *clip_prompt_fill(const char *tpl, const char *subject);
/* clip_encode_texts of the n prompts clip_prompt_fill(tpl, subjects[i]). */
int clip_encode_filled(const ClipModel *m, const Tokenizer *t, const char *tpl, const char *const *subjects, int n, float *out,
                       Err *e);

#endif
