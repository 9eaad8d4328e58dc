/* Options several commands take, defined once so their ranges and help cannot drift: bind each to
 * a command's field with opt_bind(OPT_BB_BUDGET, &o.budget). */
#ifndef FORGET_CLI_GROUPS_H
#define FORGET_CLI_GROUPS_H

#include "cli/opts.h"

/* the black-box search (forget blackbox, forget experiment blackbox) */
extern const Opt OPT_BB_BUDGET, OPT_BB_SHOTS, OPT_BB_SUFFIX_LEN;
/* a model file, a data set name and its directory (most commands) */
extern const Opt OPT_MODEL, OPT_DATASET, OPT_DATA_DIR, OPT_SEED, OPT_JSON, OPT_QUIET, OPT_CHECK;
/* the checkpointing of a trainer: --ckpt-every N, --stop-after N (long), --fresh (int flag) */
extern const Opt OPT_CKPT_EVERY, OPT_STOP_AFTER, OPT_FRESH;
/* --layout openai|hf (an index of ClipLayout) and --dtype f32|f16|bf16 (an index of CLI_DTYPES) */
extern const Opt OPT_LAYOUT, OPT_DTYPE;
/* --precision fp32|bf16|int8 (an index of Precision, core/gemm_mixed.h) */
extern const Opt OPT_PRECISION;
#include "io/safetensors.h"
extern const StDtype CLI_DTYPES[3];
/* UNet files (cli_unet.c): --unet-layout diffusers|compvis, and the UNet side of info / convert. */
extern const Opt OPT_UNET_LAYOUT;
int cli_file_is_unet(const char *path);
int cli_unet_info(const char *path, int json);
int cli_unet_convert(const char *in, const char *out, int layout, StDtype dtype);
/* the API key (serve, blackbox) */
extern const Opt OPT_API_KEY, OPT_API_KEY_FILE;

#endif
