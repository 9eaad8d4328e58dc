#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "forget/bias_experiment.h"
#include "forget/blackbox_experiment.h"

static int run(int argc, char **argv);

const Command cmd_experiment = {
    "experiment", "run a method family's experiment and write results.json, results.md, report.html",
    "usage: forget experiment blackbox --model FILE --dataset NAME --out DIR [--forget-ratio 0.4] [--seeds 3]\n"
    "                                  [--budget 4000] [--shots 16] [--suffix-len 4] [--lengths 1,2,4,8,16]\n"
    "                                  [--length-seeds 1] [--methods LIST] [--labels] [--data-dir DIR] [--quiet]\n"
    "       forget experiment bias --model FILE --out DIR [--setting emoji|spurious] [--methods LIST] [--K 8]\n"
    "                              [--vocab 2000 | --vocab-file FILE] [--queries FILE] [--seed 1] [--quiet]\n"
    "\n"
    "bias: every debiasing method (orth-proj, orth-cali, bend-vlm, clip-clip, sfid, prompt-array, dear) and the\n"
    "calibration (OUR RECONSTRUCTION) on top of each projection, lambda and mu chosen on the validation split;\n"
    "bias (emoji: MaxSkew@K, KL@K, NDKL of gender and skin tone on neutral queries; spurious: 1 minus\n"
    "worst-group accuracy) and general knowledge (zero-shot top-1 on every class set, neighbourhoods of held-out\n"
    "words) on the test split. Writes DIR/results.json, results.md, report.html (bias reduction against retained\n"
    "general accuracy) and DIR/<method>+cal.debias.safetensors; DIR/checkpoint.json lets a stopped run resume.\n"
    "The setting defaults from the file name.\n"
    "--vocab-file: the general vocabulary, one word or phrase per line (default: 2,000 wamerican words).\n"
    "--queries: the test queries, \"phrase<TAB>attribute[,attribute]\" per line (emoji: gender, tone; spurious: tint).\n"
    "\n"
    "blackbox: serves the model on loopback (a strict server, a loose one that takes context embeddings,\n"
    "a labels-only one with --labels, and one on the test split for evaluation), forgets the first\n"
    "round(ratio x C) classes with every method at the same query budget (dirichlet, random, greedy, ga,\n"
    "bdpl, bbt, bbf, coop; --methods to choose) for --seeds seeds at --suffix-len, once more per length of\n"
    "--lengths with --length-seeds seeds, and with --labels the strict methods again through top-1 labels.\n"
    "Results go to DIR/results.json after every run (a rerun with the same DIR resumes), with the table\n"
    "DIR/results.md and DIR/report.html (H against L, H against queries). NAME is a data set with train\n"
    "and test splits: fmnist, emoji100, ...\n",
    run};

static int run_bias(int argc, char **argv) {
    BiasExperimentOpts o;
    bias_experiment_defaults(&o);
    int done = 0, bad = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        if (cli_common(&cmd_experiment, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--quiet") == 0) {
            o.quiet = 1;
        } else if (!(v = cli_value("experiment", argc, argv, &i))) {
            return EXIT_USAGE;
        } else if (strcmp(a, "--model") == 0) {
            o.model = v;
        } else if (strcmp(a, "--out") == 0) {
            o.out = v;
        } else if (strcmp(a, "--setting") == 0) {
            o.setting = v;
        } else if (strcmp(a, "--methods") == 0) {
            o.methods = v;
        } else if (strcmp(a, "--data-dir") == 0) {
            o.data_dir = v;
        } else if (strcmp(a, "--vocab-file") == 0) {
            o.vocab_file = v;
        } else if (strcmp(a, "--queries") == 0) {
            o.queries = v;
        } else if (strcmp(a, "--K") == 0) {
            if (cli_int("experiment", a, v, 1, 10000, &l)) return EXIT_USAGE;
            o.K = (int)l;
        } else if (strcmp(a, "--vocab") == 0) {
            if (cli_int("experiment", a, v, 10, 200000, &l)) return EXIT_USAGE;
            o.vocab = (int)l;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_int("experiment", a, v, 0, 2147483647L, &l)) return EXIT_USAGE;
            o.seed = (unsigned long long)l;
        } else {
            return cli_error("experiment", EXIT_USAGE, "unknown option %s (forget help experiment)", a);
        }
    }
    if (!o.model || !o.out) return cli_error("experiment", EXIT_USAGE, "--model and --out are required");
    Err e = {{0}};
    if (bias_experiment_run(&o, &e) != 0) return cli_error("experiment", EXIT_WORK, "%s", e.msg);
    return 0;
}

static int run(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "bias") == 0) return run_bias(argc, argv);
    if (argc < 2 || strcmp(argv[1], "blackbox") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs(cmd_experiment.help, stdout);
            return 0;
        }
        return cli_error("experiment", EXIT_USAGE, "which experiment? (forget experiment blackbox|bias; forget help experiment)");
    }
    BbExperimentOpts o;
    bb_experiment_defaults(&o);
    int done = 0, bad = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        if (cli_common(&cmd_experiment, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--labels") == 0) {
            o.labels = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            o.quiet = 1;
        } else if (!(v = cli_value("experiment", argc, argv, &i))) {
            return EXIT_USAGE;
        } else if (strcmp(a, "--model") == 0) {
            o.model = v;
        } else if (strcmp(a, "--dataset") == 0) {
            o.dataset = v;
        } else if (strcmp(a, "--data-dir") == 0) {
            o.data_dir = v;
        } else if (strcmp(a, "--out") == 0) {
            o.out = v;
        } else if (strcmp(a, "--methods") == 0) {
            o.methods = v;
        } else if (strcmp(a, "--lengths") == 0) {
            o.lengths = v;
        } else if (strcmp(a, "--forget-ratio") == 0) {
            char *end;
            o.forget_ratio = strtod(v, &end);
            if (*end || !(o.forget_ratio > 0 && o.forget_ratio < 1))
                return cli_error("experiment", EXIT_USAGE, "--forget-ratio must be a number in (0, 1), got \"%s\"", v);
        } else if (strcmp(a, "--seeds") == 0) {
            if (cli_int("experiment", a, v, 1, 100, &l)) return EXIT_USAGE;
            o.seeds = (int)l;
        } else if (strcmp(a, "--length-seeds") == 0) {
            if (cli_int("experiment", a, v, 0, 100, &l)) return EXIT_USAGE;
            o.length_seeds = (int)l;
        } else if (strcmp(a, "--suffix-len") == 0) {
            if (cli_int("experiment", a, v, 1, 32, &l)) return EXIT_USAGE;
            o.L = (int)l;
        } else if (strcmp(a, "--shots") == 0) {
            if (cli_int("experiment", a, v, 1, 1000, &l)) return EXIT_USAGE;
            o.shots = (int)l;
        } else if (strcmp(a, "--budget") == 0) {
            if (cli_int("experiment", a, v, 40, 100000000L, &l)) return EXIT_USAGE;
            o.budget = l;
        } else {
            return cli_error("experiment", EXIT_USAGE, "unknown option %s (forget help experiment)", a);
        }
    }
    if (!o.model || !o.dataset || !o.out) return cli_error("experiment", EXIT_USAGE, "--model, --dataset and --out are required");
    Err e = {{0}};
    if (bb_experiment_run(&o, &e) != 0) return cli_error("experiment", EXIT_WORK, "%s", e.msg);
    return 0;
}
