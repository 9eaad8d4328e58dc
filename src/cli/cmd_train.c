#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
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

static int run(int argc, char **argv) {
    int json_failed = 0;
    TrainOpts o;
    train_opts_default(&o);
    const char *config = NULL;
    int json = 0;
    const Opt opts[] = {
        O_STR("--dataset", "NAME:train", &o.train_set, OPT_REQUIRED, "training split, e.g. fmnist:train"),
        O_STR("--config", "NAME", &config, OPT_REQUIRED, "model shape (see above)"),
        O_STR("--out", "FILE", &o.out, OPT_REQUIRED, "the final model; FILE.ckpt is its checkpoint"),
        O_STR("--eval", "NAME:split", &o.eval_set, 0, "zero-shot evaluation set, e.g. fmnist:test"),
        O_INT("--epochs", "N", &o.epochs, 1, 100000, "passes over the training set"),
        O_INT("--batch", "B", &o.batch, 2, 65536, "global batch"),
        O_DBL("--lr", "LR", &o.lr, 0, 1e6, 0, "peak learning rate"),
        O_DBL("--wd", "WD", &o.wd, 0, 1e6, 0, "decoupled weight decay"),
        opt_bind(OPT_SEED, &o.seed),
        O_INT("--eval-samples", "N", &o.eval_samples, 0, 100000000, "images evaluated (0: all)"),
        O_INT("--eval-every", "EPOCHS", &o.eval_every, 1, 100000, "epochs between evaluations"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_INT("--limit", "N", &o.limit, 1, 100000000, "train on the first N samples only"),
        O_STR("--templates", "FILE", &o.templates, 0, "caption templates, one per line"),
        O_LONG("--stop-after", "STEPS", &o.stop_after, 1, 100000000, "stop after STEPS steps with a checkpoint"),
        O_FLAG("--fresh", &o.fresh, "ignore an existing checkpoint"),
        opt_bind(OPT_PRECISION, (int *)&o.precision),
        opt_bind(OPT_QUIET, &o.quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_train, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
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
