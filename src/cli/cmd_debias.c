#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "forget/bias_experiment.h"

static int run(int argc, char **argv);

const Command cmd_debias = {
    "debias", "build a debiasing transform (projection, probing or adapter) for a CLIP model",
    "usage: forget debias --model FILE --method NAME --out FILE.debias.safetensors [--setting emoji|spurious]\n"
    "                     [--calibrate --lambda 100 --mu 30] [--dims N] [--vocab 2000 | --vocab-file FILE] [--seed 1]\n"
    "\n"
    "Methods: orth-proj, orth-cali (Chuang et al.), bend-vlm (Gerych et al.), clip-clip, sfid (probing), prompt-array,\n"
    "dear (adapters). --calibrate adds the closed-form calibration (OUR RECONSTRUCTION of the programme's method)\n"
    "to a projection: P* = (P0 + mu Wn)(I + lambda M + mu Wn)^-1 over a general vocabulary. The data the methods\n"
    "are built from (biased prompts, positive pairs, reference images, training queries) come from the setting:\n"
    "emoji (gender and skin tone, for emoji-biased-clip) or spurious (the tint of fmnist-spurious-clip); the\n"
    "default is told from the file name. The output is used by forget classify/embed --debias FILE.\n",
    run};

static int run(int argc, char **argv) {
    BiasExperimentOpts o;
    bias_experiment_defaults(&o);
    o.quiet = 1;
    const char *method = NULL, *out = NULL;
    int calibrate = 0, dims = 0;
    double lambda = 100, mu = 30;
    const Opt opts[] = {
        O_STR("--model", "FILE", &o.model, OPT_REQUIRED, "the CLIP model"),
        opt_bind(OPT_PRECISION, &o.precision),
        O_STR("--method", "NAME", &method, OPT_REQUIRED, "orth-proj, orth-cali, bend-vlm, clip-clip, sfid, prompt-array, dear"),
        O_STR("--out", "FILE", &out, OPT_REQUIRED, "the transform (FILE.debias.safetensors)"),
        O_STR("--setting", "S", &o.setting, 0, "emoji or spurious (default: from the model's file name)"),
        O_FLAG("--calibrate", &calibrate, "add the closed-form calibration to a projection"),
        O_DBL("--lambda", "L", &lambda, 0, 1e12, 0, "the calibration's lambda"),
        O_DBL("--mu", "M", &mu, 0, 1e12, 0, "the calibration's mu"),
        O_INT("--dims", "N", &dims, 1, 65536, "dimensions clip-clip removes (default: the method's)"),
        O_INT("--vocab", "N", &o.vocab, 10, 200000, "words of the default general vocabulary"),
        O_STR("--vocab-file", "FILE", &o.vocab_file, 0, "the general vocabulary, one word or phrase per line"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        opt_bind(OPT_SEED, &o.seed),
        O_END,
    };
    const int st = cli_parse(&cmd_debias, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    if (debias_build_for_setting(&o, method, calibrate, lambda, mu, dims, out, &e) != 0)
        return cli_error("debias", EXIT_WORK, "%s", e.msg);
    fprintf(stderr, "forget debias: %s%s -> %s\n", method, calibrate ? " + calibration (reconstruction)" : "", out);
    return 0;
}
