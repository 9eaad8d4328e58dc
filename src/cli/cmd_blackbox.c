#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
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

static int parse_dirichlet(const char *v, void *dst, char *msg, size_t cap) {
    return dirichlet_params_parse(v, dst, msg, cap);
}

static int run(int argc, char **argv) {
    const char *key_opt = NULL, *key_file = NULL;
    int json_failed = 0;
    BlackboxOpts o;
    blackbox_defaults(&o);
    int json = 0;
    const char *report = NULL;
    const Opt opts[] = {
        O_STR("--api", "URL", &o.api, OPT_REQUIRED, "the classifier's API (forget serve)"),
        O_STR("--forget", "CLASSES", &o.forget, OPT_REQUIRED, "classes to forget: names or indices, comma-separated"),
        O_STR("--eval-api", "URL", &o.eval_api, 0, "the API the result is measured on (default --api)"),
        O_STR("--method", "M", &o.method, 0, "dirichlet, random, greedy, ga, bdpl, bbt, bbf or coop"),
        opt_bind(OPT_BB_SUFFIX_LEN, &o.suffix_len),
        opt_bind(OPT_BB_BUDGET, &o.budget),
        opt_bind(OPT_BB_SHOTS, &o.shots),
        O_INT("--vocab", "N", &o.vocab_max, 2, 1000000, "words the strict methods draw from"),
        O_STR("--wordlist", "FILE", &o.wordlist, 0, "their vocabulary (default: Debian's wamerican)"),
        O_STR("--template", "T", &o.tpl, 0, "the class prompt ({} = the class)"),
        O_INT("--n-ctx", "M", &o.n_ctx, 1, 32, "context vectors of the loose and white-box methods"),
        opt_bind(OPT_MODEL, &o.model),
        opt_bind(OPT_PRECISION, &o.precision),
        opt_bind(OPT_DATASET, &o.dataset),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_INT("--coop-steps", "N", &o.coop_steps, 1, 1000000, "coop's Adam steps"),
        O_INT("--curve-points", "N", &o.curve_points, 0, BLACKBOX_MAX_CURVE, "points of the H-against-queries curve"),
        O_STR("--report", "FILE", &report, 0, "an HTML report of the run"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_API_KEY_FILE, &key_file),
        opt_bind(OPT_API_KEY, &key_opt),
        O_CUSTOM("--dirichlet", "K=3,...", &o.dirichlet, parse_dirichlet, "the reconstruction's search settings (above)"),
        opt_bind(OPT_JSON, &json),
        opt_bind(OPT_QUIET, &o.quiet),
        O_END,
    };
    const int st = cli_parse(&cmd_blackbox, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
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
