#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "train/clip_trainer.h"

static int run(int argc, char **argv);

const Command cmd_train = {
    "train", "train a CLIP contrastively on a labelled image set",
    "usage: forget train --dataset fmnist:train|fmnist-domains:train|emoji:train|emoji100:train --config NAME --out FILE\n"
    "                    [--eval fmnist:test] [--epochs 5] [--batch 128] [--lr 1e-3] [--wd 0.2]\n"
    "                    [--seed 0] [--eval-samples 2000] [--eval-every EPOCHS] [--data-dir DIR] [--limit N] [--fresh]\n"
    "                    [--templates FILE] [--stop-after STEPS]\n"
    "                    [--quiet] [--json] [--threads N]\n"
    "\n"
    "Symmetric InfoNCE on (image, generated caption) pairs; AdamW (betas 0.9/0.98,\n"
    "eps 1e-6, decay on weights but not gains, biases or embeddings), warm-up + cosine\n"
    "learning rate, gradient clipping at norm 1, logit scale clamped at 100.\n"
    "A checkpoint FILE.ckpt is written every 200 steps; rerunning the same command\n"
    "resumes from it (same result as an uninterrupted run). --fresh ignores it.\n"
    "Under mpirun (mpirun -np 2 forget train ...) the batch is split over the ranks,\n"
    "features are gathered for the loss and gradients all-reduced: the same model as\n"
    "the serial run up to float rounding.\n"
    "The final model is FILE (safetensors, OpenAI key layout). --config names a shape:\n"
    "  fmnist-s (28px, patch 4, width 128, 4+4 layers), emoji-s (32px, patch 4, width 128, 4+4 layers),\n"
    "  fmnist-xs (seconds-fast), tiny, vit-b-32, vit-b-16\n"
    "--templates FILE replaces the built-in caption templates (one per line, {} = the class\n"
    "name, {a} an attribute word, {d} the domain, {k} a keyword).\n"
    "--limit N trains on the first N samples only; --stop-after ends this run after\n"
    "STEPS steps with a checkpoint, as if killed.\n",
    run};

static int num(const char *opt, const char *v, double *out) {
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || !(d >= 0)) return cli_error("train", EXIT_USAGE, "%s expects a non-negative number, got \"%s\"", opt, v);
    *out = d;
    return 0;
}

static int run(int argc, char **argv) {
    int json_failed = 0;
    TrainOpts o;
    train_opts_default(&o);
    const char *config = NULL;
    int json = 0, done = 0, bad = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long l;
        double d;
        if (cli_common(&cmd_train, argc, argv, &i, &done, &bad)) {
            if (done) return 0;
            if (bad) return EXIT_USAGE;
        } else if (strcmp(a, "--fresh") == 0) {
            o.fresh = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            o.quiet = 1;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (!(v = cli_value("train", argc, argv, &i))) {
            return EXIT_USAGE;
        } else if (strcmp(a, "--dataset") == 0) {
            o.train_set = v;
        } else if (strcmp(a, "--templates") == 0) {
            o.templates = v;
        } else if (strcmp(a, "--eval") == 0) {
            o.eval_set = v;
        } else if (strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "--out") == 0) {
            o.out = v;
        } else if (strcmp(a, "--data-dir") == 0) {
            o.data_dir = v;
        } else if (strcmp(a, "--epochs") == 0) {
            if (cli_int("train", a, v, 1, 100000, &l)) return EXIT_USAGE;
            o.epochs = (int)l;
        } else if (strcmp(a, "--batch") == 0) {
            if (cli_int("train", a, v, 2, 65536, &l)) return EXIT_USAGE;
            o.batch = (int)l;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_int("train", a, v, 0, 2147483647L, &l)) return EXIT_USAGE;
            o.seed = (uint64_t)l;
        } else if (strcmp(a, "--eval-every") == 0) {
            if (cli_int("train", a, v, 1, 100000, &l)) return EXIT_USAGE;
            o.eval_every = (int)l;
        } else if (strcmp(a, "--eval-samples") == 0) {
            if (cli_int("train", a, v, 0, 100000000L, &l)) return EXIT_USAGE;
            o.eval_samples = (int)l;
        } else if (strcmp(a, "--limit") == 0) {
            if (cli_int("train", a, v, 1, 100000000L, &l)) return EXIT_USAGE;
            o.limit = (int)l;
        } else if (strcmp(a, "--stop-after") == 0) {
            if (cli_int("train", a, v, 1, 100000000L, &l)) return EXIT_USAGE;
            o.stop_after = l;
        } else if (strcmp(a, "--lr") == 0) {
            if (num(a, v, &d)) return EXIT_USAGE;
            o.lr = d;
        } else if (strcmp(a, "--wd") == 0) {
            if (num(a, v, &d)) return EXIT_USAGE;
            o.wd = d;
        } else {
            return cli_error("train", EXIT_USAGE, "unknown option %s (forget help train)", a);
        }
    }
    if (!o.train_set || !config || !o.out) return cli_error("train", EXIT_USAGE, "--dataset, --config and --out are required");
    if (clip_config_named(&o.cfg, config) != 0) return cli_error("train", EXIT_USAGE, "unknown --config \"%s\"", config);
    Dist dist;
    dist_init(&dist); /* joins the MPI world under mpirun: the batch is split over the ranks */
    o.dist = &dist;
    TrainResult r;
    Err e = {{0}};
    int rc = clip_train(&o, &r, &e);
    dist_finalize(&dist);
    if (rc != 0) return cli_error("train", EXIT_WORK, "%s", e.msg);
    if (dist.rank != 0) return 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", o.out);
        cJSON_AddBoolToObject(j, "finished", r.finished);
        cJSON_AddNumberToObject(j, "steps", (double)r.steps_done);
        cJSON_AddNumberToObject(j, "total_steps", (double)r.total_steps);
        cJSON_AddNumberToObject(j, "loss", r.last_loss);
        cJSON_AddNumberToObject(j, "images_per_s", r.images_per_s);
        if (r.evaluated) {
            cJSON_AddNumberToObject(j, "top1", r.eval.top1);
            cJSON_AddNumberToObject(j, "top5", r.eval.top5);
        }
        json_failed = cli_json_line("train", j);
        cJSON_Delete(j);
    } else if (!r.finished) {
        printf("stopped at step %ld of %ld; checkpoint %s.ckpt (rerun to resume)\n", r.steps_done, r.total_steps, o.out);
    } else {
        printf("wrote %s (%ld steps, final loss %.4f, %.1f images/s)\n", o.out, r.steps_done, r.last_loss, r.images_per_s);
    }
    return json_failed;
}
