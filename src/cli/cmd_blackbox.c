#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dist.h"
#include "forget/blackbox.h"
#include "forget/blackbox_experiment.h"

static int run(int argc, char **argv);

const Command cmd_blackbox = {
    "blackbox", "forget classes through a classifier's API alone (strict black box)",
    "usage: forget blackbox --api URL --forget CLASSES [--eval-api URL] [--method M] [--suffix-len 4]\n"
    "                       [--budget 2000] [--shots 16] [--vocab 500] [--wordlist FILE]\n"
    "                       [--template \"a photo of a {}\"] [--n-ctx 4] [--model FILE --dataset NAME]\n"
    "                       [--coop-steps 300] [--curve-points 8] [--report FILE.html] [--seed S]\n"
    "                       [--api-key-file FILE | $FORGET_API_KEY | --api-key K]\n"
    "                       [--dirichlet K=3,rho=0.25,alpha=0.01,beta=1,eta=0.3,elitist=1,pick=best] [--json] [--quiet]\n"
    "\n"
    "Makes the served classifier forget CLASSES (names or indices, comma-separated) using only the\n"
    "API's outputs. Methods (--method, default dirichlet):\n"
    "  strict, words only, any server; prompt \"a photo of a {class} w1 .. wL.\":\n"
    "    dirichlet  the programme's strict method, OUR RECONSTRUCTION (docs/blackbox.md)\n"
    "    random, greedy (one position at a time), ga (genetic algorithm), bdpl (Diao et al. 2023)\n"
    "  loose, context embeddings, servers started with --allow-embeddings; prompt \"[SOT] p1..pm {class}.\":\n"
    "    bbt (CMA-ES on a random projection, Sun et al. 2022), bbf (latent context sharing, Kuwana et al. 2024)\n"
    "  white box, in process, needs --model and --dataset (the split the API serves):\n"
    "    coop (Adam on the context through the text tower, BBF's loss)\n"
    "Fitness on k-shot training images: BBF's loss when the API reveals probabilities, 1 - H when it\n"
    "reveals labels. The best candidate by validation H (k more shots per class) is measured on the\n"
    "whole split of --eval-api (default --api; it must take contexts for loose and white-box methods):\n"
    "Err_forget, Acc_keep and H beside the zero-shot prompts. --budget counts classify queries of the\n"
    "search (one per candidate; a population is one request). Under mpirun -np N each rank scores a\n"
    "share of every population; the result equals the serial run's.\n"
    "With --json the last line is {\"method\", \"suffix\", \"err_forget\", \"acc_keep\", \"H\",\n"
    "\"queries\", \"seconds\", \"zero_shot\": {...}, \"curve\": [[queries, H]...]}.\n"
    "--dirichlet sets the reconstruction's search (any subset of the items): K mixture components,\n"
    "rho elite fraction, alpha and beta Dirichlet concentrations, eta EMA rate, elitist=1 keeps the best\n"
    "string so far in every elite, pick=mode validates the mixture's most probable string instead of the\n"
    "population's best. The population (30) is every strict method's.\n"
    "The API key (header X-API-Key) is read from --api-key-file (its first line), else from the\n"
    "environment variable FORGET_API_KEY; --api-key K also works but shows the key to every user\n"
    "of the machine in ps.\n",
    run};

static int run(int argc, char **argv) {
    const char *key_opt = NULL, *key_file = NULL;
    int json_failed = 0;
    BlackboxOpts o;
    blackbox_defaults(&o);
    int json = 0, done = 0, bad = 0;
    const char *report = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        if (cli_common(&cmd_blackbox, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            o.quiet = 1;
        } else if (!(v = cli_value("blackbox", argc, argv, &i))) {
            return EXIT_USAGE;
        } else if (strcmp(a, "--api") == 0) {
            o.api = v;
        } else if (strcmp(a, "--eval-api") == 0) {
            o.eval_api = v;
        } else if (strcmp(a, "--api-key") == 0) {
            key_opt = v;
        } else if (strcmp(a, "--api-key-file") == 0) {
            key_file = v;
        } else if (strcmp(a, "--forget") == 0) {
            o.forget = v;
        } else if (strcmp(a, "--method") == 0) {
            o.method = v;
        } else if (strcmp(a, "--template") == 0) {
            o.tpl = v;
        } else if (strcmp(a, "--dirichlet") == 0) {
            char msg[256];
            if (dirichlet_params_parse(v, &o.dirichlet, msg, sizeof msg))
                return cli_error("blackbox", EXIT_USAGE, "--dirichlet: %s", msg);
        } else if (strcmp(a, "--wordlist") == 0) {
            o.wordlist = v;
        } else if (strcmp(a, "--report") == 0) {
            report = v;
        } else if (strcmp(a, "--model") == 0) {
            o.model = v;
        } else if (strcmp(a, "--dataset") == 0) {
            o.dataset = v;
        } else if (strcmp(a, "--data-dir") == 0) {
            o.data_dir = v;
        } else if (strcmp(a, "--n-ctx") == 0) {
            if (cli_int("blackbox", a, v, 1, 32, &l)) return EXIT_USAGE;
            o.n_ctx = (int)l;
        } else if (strcmp(a, "--coop-steps") == 0) {
            if (cli_int("blackbox", a, v, 1, 1000000, &l)) return EXIT_USAGE;
            o.coop_steps = (int)l;
        } else if (strcmp(a, "--curve-points") == 0) {
            if (cli_int("blackbox", a, v, 0, BLACKBOX_MAX_CURVE, &l)) return EXIT_USAGE;
            o.curve_points = (int)l;
        } else if (strcmp(a, "--suffix-len") == 0) {
            if (cli_int("blackbox", a, v, 1, 32, &l)) return EXIT_USAGE;
            o.suffix_len = (int)l;
        } else if (strcmp(a, "--shots") == 0) {
            if (cli_int("blackbox", a, v, 1, 1000, &l)) return EXIT_USAGE;
            o.shots = (int)l;
        } else if (strcmp(a, "--vocab") == 0) {
            if (cli_int("blackbox", a, v, 2, 1000000, &l)) return EXIT_USAGE;
            o.vocab_max = (int)l;
        } else if (strcmp(a, "--budget") == 0) {
            if (cli_int("blackbox", a, v, 1, 100000000L, &l)) return EXIT_USAGE;
            o.budget = l;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_int("blackbox", a, v, 0, 2147483647L, &l)) return EXIT_USAGE;
            o.seed = (uint64_t)l;
        } else {
            return cli_error("blackbox", EXIT_USAGE, "unknown option %s (forget help blackbox)", a);
        }
    }
    if (!o.api || !o.forget) return cli_error("blackbox", EXIT_USAGE, "--api and --forget are required");
    char *key = NULL;
    if (cli_api_key("blackbox", key_opt, key_file, &key)) return EXIT_WORK;
    o.api_key = key;
    if (blackbox_family(o.method) < 0)
        return cli_error("blackbox", EXIT_USAGE, "--method: \"%s\" is not a method (forget help blackbox)", o.method);
    Dist d;
    dist_init(&d);
    o.dist = &d;
    BlackboxResult r;
    Err e = {{0}};
    int rc = blackbox_run(&o, &r, &e);
    free(key);
    const int root = d.rank == 0;
    dist_finalize(&d);
    if (rc != 0) return cli_error("blackbox", EXIT_WORK, "%s", e.msg);
    if (!root) return 0;
    if (report && blackbox_write_report(&o, &r, report, &e) != 0) return cli_error("blackbox", EXIT_WORK, "%s", e.msg);
    static const char *FAMILY[] = {"strict", "loose", "white-box"};
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "method", o.method);
        cJSON_AddStringToObject(j, "family", FAMILY[r.family]);
        cJSON_AddBoolToObject(j, "reconstruction", strcmp(o.method, "dirichlet") == 0);
        blackbox_result_json(j, &r);
        json_failed = cli_json_line("blackbox", j);
        cJSON_Delete(j);
    } else {
        printf("%s (%s%s): %s \"%s\" after %ld queries (%.1f s)\n", o.method, FAMILY[r.family],
               strcmp(o.method, "dirichlet") == 0 ? ", reconstruction" : "", r.family ? "context" : "suffix", r.suffix,
               r.queries, r.seconds);
        printf("  zero-shot:  Err_forget %.2f%%  Acc_keep %.2f%%  H %.2f%%\n", 100 * r.base_err, 100 * r.base_acc, 100 * r.base_h);
        printf("  forgotten:  Err_forget %.2f%%  Acc_keep %.2f%%  H %.2f%%\n", 100 * r.err_forget, 100 * r.acc_keep, 100 * r.h);
    }
    return json_failed;
}
