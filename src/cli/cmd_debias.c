#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
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
    int calibrate = 0, done = 0, bad = 0;
    long dims = 0;
    double lambda = 100, mu = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        if (cli_common(&cmd_debias, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--calibrate") == 0) {
            calibrate = 1;
        } else if (!(v = cli_value("debias", argc, argv, &i))) {
            return EXIT_USAGE;
        } else if (strcmp(a, "--model") == 0) {
            o.model = v;
        } else if (strcmp(a, "--method") == 0) {
            method = v;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--setting") == 0) {
            o.setting = v;
        } else if (strcmp(a, "--vocab-file") == 0) {
            o.vocab_file = v;
        } else if (strcmp(a, "--data-dir") == 0) {
            o.data_dir = v;
        } else if (strcmp(a, "--lambda") == 0 || strcmp(a, "--mu") == 0) {
            char *end;
            double x = strtod(v, &end);
            if (*end || !(x >= 0) || x > 1e12) return cli_error("debias", EXIT_USAGE, "%s must be a number >= 0, got \"%s\"", a, v);
            if (a[2] == 'l') lambda = x;
            else mu = x;
        } else if (strcmp(a, "--dims") == 0) {
            if (cli_int("debias", a, v, 1, 65536, &dims)) return EXIT_USAGE;
        } else if (strcmp(a, "--vocab") == 0) {
            if (cli_int("debias", a, v, 10, 200000, &l)) return EXIT_USAGE;
            o.vocab = (int)l;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_int("debias", a, v, 0, 2147483647L, &l)) return EXIT_USAGE;
            o.seed = (unsigned long long)l;
        } else {
            return cli_error("debias", EXIT_USAGE, "unknown option %s (forget help debias)", a);
        }
    }
    if (!o.model || !method || !out) return cli_error("debias", EXIT_USAGE, "--model, --method and --out are required");
    Err e = {{0}};
    if (debias_build_for_setting(&o, method, calibrate, lambda, mu, (int)dims, out, &e) != 0)
        return cli_error("debias", EXIT_WORK, "%s", e.msg);
    fprintf(stderr, "forget debias: %s%s -> %s\n", method, calibrate ? " + calibration (reconstruction)" : "", out);
    return 0;
}
