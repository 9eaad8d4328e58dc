#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "cli/cli_mllm.h"

static int run(int argc, char **argv);

const Command cmd_convert = {
    "convert", "rewrite a checkpoint in another key layout or dtype",
    "usage: forget convert --model IN --out OUT [--layout openai|hf] [--unet-layout diffusers|compvis]\n"
    "                      [--mllm-layout llava|llava-hf] [--dtype f32|f16|bf16]\n"
    "\n"
    "Reads a CLIP checkpoint in either key layout and writes it in the chosen one\n"
    "(default: openai, f32). Head counts and the activation go into __metadata__ so\n"
    "the output reloads with the same architecture. logit_scale is always F32.\n"
    "The output is written to a temporary file and renamed when complete.\n"
    "A UNet converts between the diffusers and CompVis (SD-1.x single-file) layouts: --unet-layout.\n"
    "A LLaVA-shaped MLLM converts between LLaVA's own keys and llava-hf's: --mllm-layout (default llava);\n"
    "a Llama-shaped LM keeps Hugging Face's keys and changes dtype.\n",
    run};

static int run(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    int layout = LAYOUT_OPENAI, dtype = 0, unet_layout = 0, mllm_layout = 0;
    static const char *const MLLM_LAYOUTS[] = {"llava", "llava-hf", NULL};
    const Opt opts[] = {
        O_STR("--model", "IN", &in, OPT_REQUIRED, "the checkpoint to read"),
        O_STR("--out", "OUT", &out, OPT_REQUIRED, "the checkpoint to write"),
        opt_bind(OPT_LAYOUT, &layout),
        opt_bind(OPT_UNET_LAYOUT, &unet_layout),
        opt_bind(OPT_DTYPE, &dtype),
        O_CHOICE("--mllm-layout", &mllm_layout, MLLM_LAYOUTS, "key layout of a LLaVA-shaped MLLM: llava (default), llava-hf"),
        O_END,
    };
    const int st = cli_parse(&cmd_convert, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    const ClipLayout lay = (ClipLayout)layout;
    const StDtype dt = CLI_DTYPES[dtype];
    if (cli_file_is_unet(in)) return cli_unet_convert(in, out, unet_layout, dt);
    if (cli_file_kind_lm(in)) {
        Err e = {{0}};
        return cli_lm_convert(in, out, mllm_layout, dt, &e) ? cli_error("convert", EXIT_WORK, "%s", e.msg) : 0;
    }
    ClipModel m;
    if (cli_load_model("convert", in, &m, -1)) return EXIT_WORK;
    Err e = {{0}};
    int rc = clip_save(&m, out, lay, dt, &e) ? cli_error("convert", EXIT_WORK, "%s", e.msg) : 0;
    clip_free(&m);
    return rc;
}
