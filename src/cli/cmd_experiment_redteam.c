/* forget experiment redteam (forget/diffusion/redteam_experiment.h), dispatched from forget experiment. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "forget/diffusion/redteam_experiment.h"

extern const Command cmd_experiment;

int experiment_redteam(int argc, char **argv) {
    RedteamExpOpts o = {0};
    erasure_exp_defaults(&o.erase);
    const char *rest = NULL;
    const Opt opts[] = {
        O_STR("--model", "UNET", &o.erase.unet, OPT_REQUIRED, "the text-to-image UNet (e.g. the zoo's fmnist-diffusion)"),
        O_STR("--text-encoder", "CLIP", &o.erase.clip, OPT_REQUIRED, "the CLIP whose text tower conditions it"),
        O_STR("--vae", "FILE", &o.erase.vae, 0, "its autoencoder (default: the one its file names)"),
        O_STR("--judge", "FILE", &o.erase.judge, OPT_REQUIRED, "the classifier of generated images"),
        O_STR("--external", "CLIP", &o.external, OPT_REQUIRED, "the attacker's CLIP (another seed than the victim's)"),
        O_STR("--out", "DIR", &o.erase.out, OPT_REQUIRED, "results directory (a rerun resumes from it)"),
        O_STR("--concepts", "LIST", &o.erase.concepts, 0, "all, or a comma list of the judge's classes"),
        O_STR("--methods", "LIST", &o.erase.methods, 0, "erasure rows (default " REDTEAM_EXP_METHODS ")"),
        O_INT("--esd-steps", "N", &o.erase.esd_steps, 0, 1000000, "ESD iterations (0: the method's default)"),
        O_INT("--escape-steps", "N", &o.erase.escape_steps, 0, 1000000, "escape-token steps (0: the method's default)"),
        O_STR("--redteam", "\"ARGS\"", &rest, 0, "arguments for every forget redteam, space-separated (\"--budget 200 --eval 16\")"),
        opt_bind(OPT_SEED, &o.erase.seed),
        opt_bind(OPT_QUIET, &o.erase.quiet),
        O_END,
    };
    const int st = cli_parse(&cmd_experiment, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    char exe[PATH_MAX];
    if (cli_self_exe(exe, sizeof exe)) return cli_error("experiment", EXIT_WORK, "cannot find the forget binary (/proc/self/exe)");
    o.erase.exe = exe;
    char **args = rest ? cli_split(rest, ' ', &o.n_redteam_args) : NULL;
    o.redteam_args = args;
    Err e = {{0}};
    const int rc = redteam_exp_run(&o, &e);
    free(args);
    if (rc != 0) return cli_error("experiment", EXIT_WORK, "%s", e.msg);
    if (!o.erase.quiet) printf("experiment redteam: %s/results.json, results.md, report.html\n", o.erase.out);
    return 0;
}
