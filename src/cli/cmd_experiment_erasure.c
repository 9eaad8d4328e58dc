/* forget experiment erasure (forget/diffusion/erasure_experiment.h), dispatched from forget experiment. */
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "forget/diffusion/erasure_experiment.h"

extern const Command cmd_experiment;

int experiment_erasure(int argc, char **argv) {
    ErasureExpOpts o;
    erasure_exp_defaults(&o);
    const Opt opts[] = {
        O_STR("--model", "UNET", &o.unet, OPT_REQUIRED, "the text-to-image UNet (e.g. the zoo's fmnist-diffusion)"),
        O_STR("--text-encoder", "CLIP", &o.clip, OPT_REQUIRED, "the CLIP whose text tower conditions it"),
        O_STR("--vae", "FILE", &o.vae, 0, "its autoencoder (default: the one its file names)"),
        O_STR("--judge", "FILE", &o.judge, OPT_REQUIRED, "the classifier of generated images (forget train-judge)"),
        O_STR("--clip", "CLIP", &o.score_clip, 0, "a CLIP other than the conditioning one: CLIP score and distance"),
        O_STR("--real", "NAME:SPLIT", &o.real, 0, "the real images of the distance"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_STR("--out", "DIR", &o.out, OPT_REQUIRED, "results directory (a rerun resumes from it)"),
        O_STR("--concepts", "LIST", &o.concepts, 0, "all, or a comma list of the judge's classes"),
        O_STR("--methods", "LIST", &o.methods, 0,
              "comma list (default all): escape escape-pooled escape-proj esd-x esd-u fmn uce sld sld-strong"),
        O_INT("--per-class", "N", &o.per_class, 2, 100000, "images a class with the bare prompt"),
        O_INT("--per-class-ctx", "N", &o.per_class_ctx, 1, 100000, "images a class with context words"),
        O_INT("--steps", "K", &o.steps, 1, 1000, "sampling steps of the evaluation"),
        O_FLT("--cfg", "W", &o.cfg, 0, 100, 0, "guidance scale of the evaluation"),
        O_INT("--batch", "B", &o.batch, 1, 4096, "images a UNet call"),
        O_INT("--esd-steps", "N", &o.esd_steps, 0, 1000000, "ESD iterations (0: the method's default)"),
        O_INT("--escape-steps", "N", &o.escape_steps, 0, 1000000, "escape-token steps (0: the method's default)"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_QUIET, &o.quiet),
        O_END,
    };
    const int st = cli_parse(&cmd_experiment, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    char exe[PATH_MAX];
    if (cli_self_exe(exe, sizeof exe)) return cli_error("experiment", EXIT_WORK, "cannot find the forget binary (/proc/self/exe)");
    o.exe = exe;
    Err e = {{0}};
    if (erasure_exp_run(&o, &e) != 0) return cli_error("experiment", EXIT_WORK, "%s", e.msg);
    if (!o.quiet) printf("experiment erasure: %s/results.json, results.md, report.html\n", o.out);
    return 0;
}
