#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "forget/debias.h"
#include "forget/domain_file.h"
#include "core/ops.h"
#include "models/clip_encode.h"
#include "models/clip_params.h"

static int run(int argc, char **argv);

const Command cmd_classify = {
    "classify", "zero-shot classification of images",
    "usage: forget classify --model FILE --image PATH... --labels \"a,b,c\"\n"
    "                       [--template \"a photo of a {}.\"] [--top K] [--debias FILE] [--check] [--json]\n"
    "\n"
    "Scores each image against one prompt per label (the template with {} replaced\n"
    "by the label) and prints the top K labels with their probabilities\n"
    "(softmax of exp(logit_scale) x cosine similarity, as CLIP does).\n"
    "With --json: one object per image per line: {\"image\", \"top\": [{\"label\", \"prob\"}...]}.\n"
    "--check verifies at load that every weight is finite (naming the first tensor that is not); without\n"
    "it a non-finite probability is still an error naming the tensor, never a printed NaN.\n",
    run};

static int run(int argc, char **argv) {
    const char *model = NULL, *labels = NULL, *tpl = "a photo of a {}.", *debias = NULL, *prompts_file = NULL;
    OptValues images = {0};
    int json = 0, check = 0, top = 5, precision = PREC_FP32;
    const Opt opts[] = {
        O_STR("--model", "FILE", &model, OPT_REQUIRED, "the CLIP model"),
        {.name = "--image", .metavar = "PATH...", .type = OPT_VALUES, .flags = OPT_REQUIRED, .help = "PNG or JPEG files",
         .dst = &images},
        O_STR("--labels", "\"a,b,c\"", &labels, OPT_REQUIRED, "the class names, comma-separated"),
        O_STR("--template", "T", &tpl, 0, "the prompt of each label ({} = the label)"),
        O_INT("--top", "K", &top, 1, 1000000, "labels printed per image"),
        O_STR("--debias", "FILE", &debias, 0, "a debiasing transform (forget debias)"),
        O_STR("--prompts", "FILE", &prompts_file, 0, "apply what forget domain --out learned (prompts, weights, a probe)"),
        opt_bind(OPT_CHECK, &check),
        opt_bind(OPT_PRECISION, &precision),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_classify, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    const int n_img = images.n;
    int n_lab;
    char **lab = cli_split(labels, ',', &n_lab);
    for (int k = 0; k < n_lab; k++)
        if (!*lab[k]) {
            free(lab);
            return cli_error("classify", EXIT_USAGE, "--labels: label %d is empty in \"%s\"", k + 1, labels);
        }
    if (top > n_lab) top = n_lab;
    ClipModel m;
    if (cli_load_model_checked("classify", model, &m, -1, check, precision)) {
        free(lab);
        return EXIT_WORK;
    }
    const int E = m.cfg.embed_dim;
    char **prompts = xmalloc(sizeof(char *) * (size_t)n_lab);
    for (int k = 0; k < n_lab; k++) prompts[k] = clip_prompt_fill(tpl, lab[k]);
    float *tf = xmalloc(sizeof(float) * (size_t)n_lab * E), *imf = xmalloc(sizeof(float) * (size_t)n_img * E);
    float *logits = xmalloc(sizeof(float) * (size_t)n_img * n_lab), *prob = xmalloc(sizeof(float) * (size_t)n_lab);
    Tokenizer t = {0}; /* freed on every path, also when an earlier check skips its init */
    Err e = {{0}};
    int rc = 0;
    Debias db = {0};
    int have_db = 0;
    if (debias && debias_load(&db, debias, &e) == 0) have_db = 1;
    DomainAdapter ad = {0};
    int have_ad = 0;
    if (!(debias && !have_db) && prompts_file) {
        if (domain_adapter_load(&ad, prompts_file, &m, &e) == 0) have_ad = 1;
        else err_prefix(&e, "--prompts: ");
    }
    if ((debias && !have_db) || (prompts_file && !have_ad) || (have_db && db.D != E && err_set(&e, "%s is for %d-dimensional features, the model has %d", debias, db.D, E)) ||
        tokenizer_init(&t, &e) != 0 ||
        (have_db ? debias_encode_texts(&db, &m, &t, tpl, (const char *const *)lab, n_lab, tf, &e)
         : have_ad && domain_adapter_has_classifier(&ad)
             ? domain_adapter_classifier(&ad, &m, &t, tpl, (const char *const *)lab, n_lab, tf, &e)
             : clip_encode_texts(&m, &t, (const char *const *)prompts, n_lab, tf, &e)) != 0 ||
        clip_encode_image_files(&m, images.v, n_img, imf, &e) != 0) {
        rc = cli_error("classify", EXIT_WORK, "%s", e.msg);
    } else {
        if (have_db) debias_images(&db, imf, n_img);
        clip_logits(&m, imf, n_img, tf, n_lab, logits);
        for (int i = 0; i < n_img && rc == 0; i++) {
            softmax_forward(prob, logits + (size_t)i * n_lab, 1, n_lab);
            for (int k = 0; k < n_lab && rc == 0; k++)
                if (!isfinite(prob[k])) {
                    char *what = xasprintf("%s: the probability of \"%s\"", images.v[i], lab[k]);
                    clip_nonfinite_error(&m, what, &e);
                    free(what);
                    rc = cli_error("classify", EXIT_WORK, "%s", e.msg);
                }
            if (rc) break;
            cJSON *row = cJSON_CreateObject();
            cJSON_AddStringToObject(row, "image", images.v[i]);
            cJSON *arr = cJSON_AddArrayToObject(row, "top");
            if (!json) printf("%s\n", images.v[i]);
            for (int r = 0; r < top; r++) {
                int best = -1;
                for (int k = 0; k < n_lab; k++)
                    if (prob[k] >= 0 && (best < 0 || prob[k] > prob[best])) best = k;
                if (best < 0) break;
                if (json) {
                    cJSON *o = cJSON_CreateObject();
                    cJSON_AddStringToObject(o, "label", lab[best]);
                    cJSON_AddNumberToObject(o, "prob", prob[best]);
                    cJSON_AddItemToArray(arr, o);
                } else {
                    printf("  %6.2f%%  %s\n", 100.0 * prob[best], lab[best]);
                }
                prob[best] = -1;
            }
            if (json) {
                if (cli_json_line("classify", row)) rc = EXIT_WORK;
            }
            cJSON_Delete(row);
        }
    }
    tokenizer_free(&t);
    debias_free(&db);
    domain_adapter_free(&ad);
    for (int k = 0; k < n_lab; k++) free(prompts[k]);
    free(prompts), free(tf), free(imf), free(logits), free(prob), free(lab);
    clip_free(&m);
    return rc;
}
