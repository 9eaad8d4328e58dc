#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "eval/zeroshot.h"
#include "forget/domain_file.h"

static int run(int argc, char **argv);

const Command cmd_eval = {
    "eval", "zero-shot accuracy of a CLIP, or a text-to-image model judged class by class",
    "usage: forget eval zeroshot --model FILE --dataset fmnist:test|fmnist-domains:test\n"
    "                            [--template \"a photo of a {}.\"] [--samples N] [--data-dir DIR] [--check] [--json]\n"
    "\n"
    "Classifies every image (or N evenly spaced ones) by its most similar class-name\n"
    "prompt, as CLIP zero-shot does, and reports top-1 and top-5 (per domain where the\n"
    "set has domains). With --json the last line is one JSON object:\n"
    "  {\"top1\", \"top5\", \"n\", \"per_domain\": {NAME: {\"top1\", \"top5\", \"n\"}}}\n"
    "\n"
    "       forget eval generate --model UNET --text-encoder CLIP --judge FILE [--per-class 100] [--steps 50]\n"
    "                            [--cfg 7.5] [--clip OTHER_CLIP --real fmnist:test] [--vae FILE] [--seed S] [--json]\n"
    "                            [--report FILE.html]\n"
    "\n"
    "Draws --per-class images of \"a photo of a {class}.\" for every class the judge knows and reports the\n"
    "share the judge classifies as prompted, per class; with --clip, CLIP score against the prompt and,\n"
    "with --real, the Frechet distance to as many real images in that CLIP's image embedding space.\n"
    "\n"
    "       forget eval mllm --model MLLM --set a|b|forget|retain|test|general [--task choice|generate|cloze]\n"
    "                        [--forms trained|held-out]\n"
    "                        [--forget-people 0,1,2] [--limit N] [--max-tokens 40] [--seed S] [--json]\n"
    "                        [--transcripts N --out DIR]\n"
    "\n"
    "An MLLM made by forget train-mllm on its world's questions (the world is rebuilt from the model's\n"
    "metadata): 4-choice accuracy by the mean log-likelihood of each option, ROUGE-L F of the greedy answer,\n"
    "or exact match of the cloze blank; split into image+text and text-only questions. --transcripts N writes N\n"
    "of the set's questions with the model's greedy answers to DIR/transcripts.md and .html (images inline).\n",
    run};

int eval_generate(int argc, char **argv);
int eval_mllm(int argc, char **argv);

static int run(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "generate") == 0) return eval_generate(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "mllm") == 0) return eval_mllm(argc, argv);
    if (argc < 2 || strcmp(argv[1], "zeroshot") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            fputs(cmd_eval.help, stdout);
            return 0;
        }
        return cli_error("eval", EXIT_USAGE, "what to evaluate? (forget eval zeroshot|generate|mllm ...; forget help eval)");
    }
    const char *model = NULL, *dataset = NULL, *tpl = NULL, *dir = NULL, *prompts = NULL;
    int samples = 0, json = 0, check = 0, precision = PREC_FP32;
    const Opt opts[] = {
        O_STR("--model", "FILE", &model, OPT_REQUIRED, "the CLIP model"),
        O_STR("--dataset", "NAME:split", &dataset, OPT_REQUIRED, "e.g. fmnist:test"),
        O_STR("--template", "T", &tpl, 0, "the class prompt ({} = the class; default: the data set's)"),
        O_INT("--samples", "N", &samples, 1, 100000000, "evaluate N evenly spaced images (default: all)"),
        O_STR("--data-dir", "DIR", &dir, 0, "where the data set's files are"),
        O_STR("--prompts", "FILE", &prompts, 0, "apply what forget domain --out learned (prompts, weights, a probe)"),
        opt_bind(OPT_CHECK, &check),
        opt_bind(OPT_PRECISION, &precision),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_eval, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    ClipModel m;
    if (cli_load_model_checked("eval", model, &m, -1, check, precision)) return EXIT_WORK;
    Dataset d;
    Tokenizer t = {0};
    Err e = {{0}};
    ZeroShot z;
    int rc = 0;
    if (dataset_load_named(&d, dataset, dir, &e)) {
        clip_free(&m);
        return cli_error("eval", EXIT_WORK, "%s", e.msg);
    }
    DomainAdapter ad = {0};
    float *W = NULL;
    if (prompts && domain_adapter_load(&ad, prompts, &m, &e)) {
        dataset_free(&d);
        clip_free(&m);
        return cli_error("eval", EXIT_WORK, "--prompts: %s", e.msg);
    }
    if (tokenizer_init(&t, &e)) {
        rc = cli_error("eval", EXIT_WORK, "%s", e.msg);
    } else if (prompts && domain_adapter_has_classifier(&ad)) { /* lp++ / bbf: the classifier comes from the file */
        const char *tp = tpl ? tpl : eval_default_template(&d);
        W = xalloc_floats((size_t)d.n_classes * m.cfg.embed_dim);
        if (domain_adapter_classifier(&ad, &m, &t, tp, (const char *const *)d.class_names, d.n_classes, W, &e) ||
            eval_zeroshot_weights(&m, &d, W, (int)samples, &z, &e))
            rc = cli_error("eval", EXIT_WORK, "%s", e.msg);
    } else if (eval_zeroshot(&m, &t, &d, tpl, (int)samples, &z, &e)) {
        rc = cli_error("eval", EXIT_WORK, "%s", e.msg);
    }
    if (rc == 0 && json) {
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
    } else if (rc == 0) {
        printf("%s on %s (%d images): top-1 %.2f%%, top-5 %.2f%%\n", model, dataset, z.n, 100 * z.top1, 100 * z.top5);
        for (int k = 0; k < z.n_domains; k++)
            printf("  %-10s top-1 %.2f%%, top-5 %.2f%% (%d images)\n", d.domain_names[k], 100 * z.dom_top1[k],
                   100 * z.dom_top5[k], z.dom_n[k]);
    }
    tokenizer_free(&t);
    dataset_free(&d);
    clip_free(&m);
    domain_adapter_free(&ad);
    free(W);
    return rc;
}
