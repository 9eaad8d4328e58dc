#ifndef FORGET_CLI_MLLM_H
#define FORGET_CLI_MLLM_H

#include "io/sp_tokenizer.h"
#include "models/mllm.h"

/* The model and its tokenizer (NULL: tokenizer.model in the model's directory), checked to agree. */
int cli_mllm_open(const char *model, const char *tokenizer, Mllm *m, SpTokenizer **t, Err *e);
/* An image file (PNG or JPEG, any size: CLIP's resize and centre crop) as patch tokens [N, Wv]. */
int cli_mllm_image(const Mllm *m, const char *path, float *feats, Err *e);

/* 2: a LLaVA-shaped file (either layout), 1: a Llama-shaped LM, 0: neither (or unreadable). */
int cli_file_kind_lm(const char *path);
/* forget convert for those: an MLLM into mllm_layout (MLLM_LLAVA / MLLM_LLAVA_HF), an LM as itself, in dtype. */
int cli_lm_convert(const char *in, const char *out, int mllm_layout, StDtype dtype, Err *e);

/* forget info for those files. */
int cli_lm_info(const char *path, int json);

#endif
