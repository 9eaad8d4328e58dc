/* forget train-judge: the classifier that judges generated images (train/judge_trainer.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "train/judge_trainer.h"

static int run(int argc, char **argv);

const Command cmd_train_judge = {
    "train-judge", "train the ResNet that judges generated images of a data set",
    "usage: forget train-judge [--data fmnist:train] [--test fmnist:test] [--net resnet-20] [--side 32]\n"
    "                          [--in-ch 3] [--epochs 4] [--batch 128] [--lr 0.1] [--seed S] [--out FILE] [--json]\n"
    "\n"
    "The CIFAR ResNet with one cosine head over every class, trained on the real images read as the\n"
    "diffusion trainer reads them (RGB in [-1, 1] at --side px), then measured on --test through the same\n"
    "8-bit reading generated images get; the file keeps the class names and that accuracy.\n",
    run};

static int run(int argc, char **argv) {
    JudgeTrainOpts o;
    judge_train_defaults(&o);
    int json = 0, quiet = 0;
    const Opt opts[] = {
        O_STR("--data", "SET:SPLIT", &o.data, 0, "training images"),
        O_STR("--test", "SET:SPLIT", &o.test, 0, "where the accuracy is measured"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_STR("--net", "NAME", &o.net, 0, "resnet-20 (default), resnet-32, resnet-56, resnet-8n"),
        O_INT("--side", "PX", &o.side, 8, 512, "image side (32: the generators')"),
        O_INT("--in-ch", "C", &o.in_ch, 1, 3, "channels the net reads: 3 or 1 (grey)"),
        O_INT("--epochs", "N", &o.epochs, 1, 10000, "epochs"),
        O_INT("--batch", "B", &o.batch, 2, 4096, "images per step"),
        O_INT("--shift", "PX", &o.shift, 0, 16, "random shift augmentation"),
        O_DBL("--lr", "LR", &o.lr, 0, 10, OPT_OPEN, "SGD learning rate"),
        O_INT("--limit", "N", &o.limit, 0, 1 << 30, "use the first N training images"),
        O_STR("--out", "FILE", &o.out, 0, "the judge file"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_train_judge, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    o.quiet = quiet || json;
    Err e = {{0}};
    JudgeTrainResult r;
    if (judge_train(&o, &r, &e)) return cli_error("train-judge", EXIT_WORK, "%s", e.msg);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "out", o.out);
        cJSON_AddNumberToObject(j, "test_accuracy", r.test_accuracy);
        cJSON_AddNumberToObject(j, "steps", (double)r.steps);
        cJSON_AddNumberToObject(j, "seconds", r.seconds);
        cJSON_AddNumberToObject(j, "images_per_s", r.images_per_s);
        const int rc = cli_json_line("train-judge", j);
        cJSON_Delete(j);
        return rc;
    }
    printf("train-judge: %s: %.2f%% on %s after %ld steps (%.0f s, %.0f images/s)\n", o.out, 100 * r.test_accuracy,
           o.test, r.steps, r.seconds, r.images_per_s);
    return 0;
}
