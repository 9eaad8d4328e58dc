/* Escape-token files: the k token embeddings under the key textual-inversion files use
 * ("emb_params" [k, width], as Automatic1111's .safetensors embeddings and diffusers'
 * load_textual_inversion read them), with metadata naming the concept, the settings and the text
 * encoder they were trained through: its width and a probe (8 values of its final hidden state
 * at the EOT of a fixed prompt), so a file made for another encoder is refused instead of
 * silently steering it. Files from other tools (one tensor [k, width] or [width], any key, no
 * probe) are read when the width fits. */
#ifndef FORGET_ESCAPE_FILE_H
#define FORGET_ESCAPE_FILE_H

#include "core/err.h"
#include "io/tokenizer.h"
#include "models/clip.h"

#define ESCAPE_KEY "emb_params"
enum { ESCAPE_PROBE = 8 };

/* The probe of a text encoder. */
int escape_probe(const ClipModel *m, const Tokenizer *t, float probe[ESCAPE_PROBE], Err *e);
/* meta_kv: extra metadata pairs (may be NULL). */
int escape_save(const char *path, const float *z, int k, const ClipModel *m, const Tokenizer *t, const char *concept,
                const char *const *meta_kv, int n_meta, Err *e);
/* *z malloc'd [*k, t_width]; checks the width and (when the file has one) the probe against m. */
int escape_load(const char *path, const ClipModel *m, const Tokenizer *t, float **z, int *k, Err *e);

#endif
