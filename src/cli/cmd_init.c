#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "models/unet.h"

static int run(int argc, char **argv);

const Command cmd_init = {
    "init", "write a CLIP or UNet checkpoint with seeded random weights",
    "usage: forget init --config vit-b-32|vit-b-16|tiny --out FILE [--seed S] [--layout openai|hf] [--dtype f32|f16|bf16]\n"
    "       forget init --unet sd-1|unet-latent-8|... --out FILE [--ctx-dim D] [--unet-layout diffusers|compvis]\n"
    "\n"
    "Builds a CLIP of a named shape with CLIP's own initialisation scales from --seed\n"
    "(default 0) and saves it: a starting point for training, and a full-size model\n"
    "for benchmarks and memory checks when no released weights are at hand.\n",
    run};

static int run(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *unet = NULL;
    int layout = LAYOUT_OPENAI, dtype = 0, unet_layout = 0, ctx_dim = 0;
    uint64_t seed = 0;
    const Opt opts[] = {
        O_STR("--config", "NAME", &config, 0, "vit-b-32, vit-b-16, tiny, fmnist-s, emoji-s, fmnist-xs"),
        O_STR("--unet", "NAME", &unet, 0, "a UNet instead: sd-1, unet-latent-8, unet-latent-8s, unet-pixel-32, unet-tiny"),
        O_INT("--ctx-dim", "D", &ctx_dim, 0, 8192, "the UNet's context width (default the config's)"),
        opt_bind(OPT_UNET_LAYOUT, &unet_layout),
        O_STR("--out", "FILE", &out, OPT_REQUIRED, "the checkpoint to write"),
        opt_bind(OPT_SEED, &seed),
        opt_bind(OPT_LAYOUT, &layout),
        opt_bind(OPT_DTYPE, &dtype),
        O_END,
    };
    const int st = cli_parse(&cmd_init, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    if (unet) { /* a UNet with its own fan-in init; the diffusion schedule is SD's */
        UNetConfig uc;
        Err e = {{0}};
        if (unet_config_named(&uc, unet, &e)) return cli_error("init", EXIT_USAGE, "%s", e.msg);
        if (ctx_dim) uc.ctx_dim = ctx_dim;
        UNet m;
        unet_alloc(&m, &uc);
        unet_init(&m, seed);
        const char *meta[] = {"diffusion.T", "1000", "diffusion.beta", "sd"};
        const int rc = unet_save(&m, out, unet_layout, CLI_DTYPES[dtype], meta, 2, &e) ? cli_error("init", EXIT_WORK, "%s", e.msg) : 0;
        unet_free(&m);
        return rc;
    }
    if (!config) return cli_error("init", EXIT_USAGE, "--config NAME (a CLIP) or --unet NAME is required");
    ClipConfig cfg;
    if (clip_config_named(&cfg, config) != 0)
        return cli_error("init", EXIT_USAGE, "unknown --config \"%s\" (vit-b-32, vit-b-16, tiny)", config);
    const ClipLayout lay = (ClipLayout)layout;
    const StDtype dt = CLI_DTYPES[dtype];
    ClipModel m;
    clip_init_random(&m, &cfg, seed);
    Err e = {{0}};
    int rc = clip_save(&m, out, lay, dt, &e) ? cli_error("init", EXIT_WORK, "%s", e.msg) : 0;
    clip_free(&m);
    return rc;
}
