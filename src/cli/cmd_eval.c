#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "eval/zeroshot.h"

static int run(int argc, char **argv);

const Command cmd_eval = {
    "eval", "zero-shot accuracy of a model on a data set",
    "usage: forget eval zeroshot --model FILE --dataset fmnist:test|fmnist-domains:test\n"
    "                            [--template \"a photo of a {}.\"] [--samples N] [--data-dir DIR] [--check] [--json]\n"
    "\n"
    "Classifies every image (or N evenly spaced ones) by its most similar class-name\n"
    "prompt, as CLIP zero-shot does, and reports top-1 and top-5 (per domain where the\n"
    "set has domains). With --json the last line is one JSON object:\n"
    "  {\"top1\", \"top5\", \"n\", \"per_domain\": {NAME: {\"top1\", \"top5\", \"n\"}}}\n",
    run};

static int run(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "zeroshot") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs(cmd_eval.help, stdout);
            return 0;
        }
        return cli_error("eval", EXIT_USAGE, "what to evaluate? (forget eval zeroshot ...; forget help eval)");
    }
    const char *model = NULL, *dataset = NULL, *tpl = NULL, *dir = NULL;
    long samples = 0;
    int json = 0, done = 0, bad = 0, check = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (cli_common(&cmd_eval, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--check") == 0) {
            check = 1; /* every weight verified finite at load */
        } else if (strcmp(a, "--model") == 0) {
            if (!(model = cli_value("eval", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--dataset") == 0) {
            if (!(dataset = cli_value("eval", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--template") == 0) {
            if (!(tpl = cli_value("eval", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--data-dir") == 0) {
            if (!(dir = cli_value("eval", argc, argv, &i))) return EXIT_USAGE;
        } else if (strcmp(a, "--samples") == 0) {
            const char *v = cli_value("eval", argc, argv, &i);
            if (!v || cli_int("eval", "--samples", v, 1, 100000000L, &samples)) return EXIT_USAGE;
        } else {
            return cli_error("eval", EXIT_USAGE, "unknown argument %s (forget help eval)", a);
        }
    }
    if (!model || !dataset) return cli_error("eval", EXIT_USAGE, "--model and --dataset are required");
    ClipModel m;
    if (cli_load_model_checked("eval", model, &m, -1, check)) return EXIT_WORK;
    Dataset d;
    Tokenizer t;
    Err e = {{0}};
    ZeroShot z;
    int rc = 0;
    if (dataset_load_named(&d, dataset, dir, &e)) {
        clip_free(&m);
        return cli_error("eval", EXIT_WORK, "%s", e.msg);
    }
    if (tokenizer_init(&t, &e) || eval_zeroshot(&m, &t, &d, tpl, (int)samples, &z, &e)) {
        rc = cli_error("eval", EXIT_WORK, "%s", e.msg);
    } else if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", model);
        cJSON_AddStringToObject(j, "dataset", dataset);
        cJSON_AddNumberToObject(j, "n", z.n);
        cJSON_AddNumberToObject(j, "top1", z.top1);
        cJSON_AddNumberToObject(j, "top5", z.top5);
        if (z.n_domains) {
            cJSON *pd = cJSON_AddObjectToObject(j, "per_domain");
            for (int k = 0; k < z.n_domains; k++) {
                cJSON *o = cJSON_AddObjectToObject(pd, d.domain_names[k]);
                cJSON_AddNumberToObject(o, "top1", z.dom_top1[k]);
                cJSON_AddNumberToObject(o, "top5", z.dom_top5[k]);
                cJSON_AddNumberToObject(o, "n", z.dom_n[k]);
            }
        }
        if (cli_json_line("eval", j)) rc = EXIT_WORK;
        cJSON_Delete(j);
    } else {
        printf("%s on %s (%d images): top-1 %.2f%%, top-5 %.2f%%\n", model, dataset, z.n, 100 * z.top1, 100 * z.top5);
        for (int k = 0; k < z.n_domains; k++)
            printf("  %-10s top-1 %.2f%%, top-5 %.2f%% (%d images)\n", d.domain_names[k], 100 * z.dom_top1[k],
                   100 * z.dom_top5[k], z.dom_n[k]);
    }
    tokenizer_free(&t);
    dataset_free(&d);
    clip_free(&m);
    return rc;
}
