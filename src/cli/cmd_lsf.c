/* forget lsf: one class-incremental run with selective forgetting (forget/lsf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "forget/lsf.h"

static int run(int argc, char **argv);

const Command cmd_lsf = {
    "lsf", "train a ResNet task by task and honour deletion requests with mnemonic codes (LSF)",
    "usage: forget lsf [--dataset fmnist|emoji100|cifar100:/DIR] [--tasks T] [--delete CLASS[@TASK]...]\n"
    "                  [--code input|feature|none] [--layer L] [--kappa K] [--seed S] [--out DIR] [--json]\n"
    "\n"
    "Tasks of equal numbers of contiguous classes arrive one at a time; a task's images are only read\n"
    "while it is trained. A deletion request names a class of an earlier task, by id or name, and arrives\n"
    "at the task after the class's own unless @TASK says when (default requests: the first 30% of the\n"
    "classes of every task but the last, as LSF's CIFAR-100 config). --code input is LSF's mnemonic code\n"
    "mixed into the images; --code feature our reconstruction of the follow-up (the code added at layer L\n"
    "through a standardising layer); --code none the same training without codes. After every task: the\n"
    "accuracy on kept classes of earlier tasks, the error on deleted classes, the current task's accuracy\n"
    "and H (docs/lsf.md). --out DIR keeps state.safetensors after each task (a rerun resumes), the\n"
    "mid-task checkpoint, and model.safetensors at the end.\n",
    run};

static int run(int argc, char **argv) {
    LsfOpts o;
    lsf_opts_default(&o);
    int json = 0, quiet = 0;
    const char *code = "feature";
    OptValues del = {0};
    const Opt opts[] = {
        O_STR("--dataset", "NAME", &o.dataset, 0, "fmnist (default), emoji100 (colour), cifar100:/DIR"),
        O_INT("--tasks", "T", &o.tasks, 1, 100, "tasks of equal size"),
        O_VALS("--delete", "CLASS[@TASK]", &del, "deletion requests: ids or names, comma or space separated"),
        O_STR("--code", "KIND", &code, 0, "input, feature (default; reconstruction) or none"),
        O_INT("--layer", "L", &o.layer, -1000, 1000, "feature code: after the stem (0) or block L"),
        O_FLT("--kappa", "K", &o.kappa, 0, 1000, 0, "feature code: its scale after standardising"),
        O_STR("--net", "NAME", &o.net, 0, "resnet-20 (default), resnet-32, resnet-56, resnet-8n"),
        O_INT("--epochs", "N", &o.epochs, 1, 100000, "epochs per task"),
        O_INT("--batch", "B", &o.batch, 2, 4096, "images per step"),
        O_INT("--train-per-class", "N", &o.train_per_class, 1, 1000000, "training images per class"),
        O_DBL("--lr", "LR", &o.lr, 0, 10, OPT_OPEN, "SGD learning rate"),
        O_FLT("--lwf-target", "U", &o.lwf_target, -1, 1, 0, "deleted classes' distillation target cosine (default 0; -1: LSF's 1/K, docs/lsf.md)"),
        O_INT("--fisher-samples", "N", &o.fisher_samples, 1, 1 << 30, "images for EWC's Fisher"),
        O_INT("--eval-per-class", "N", &o.eval_per_class, 0, 1 << 30, "measure on N images a class (default 0: all)"),
        O_STR("--split", "S", &o.split, 0, "where metrics are measured: test (default) or val (for tuning)"),
        O_STR("--out", "DIR", &o.out_dir, 0, "state, checkpoints and the final model"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_lsf, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    Err e = {{0}};
    if (lsf_code_parse(code, &o.code, &e)) return cli_error("lsf", EXIT_USAGE, "%s", e.msg);
    char *spec = NULL;
    if (del.n) {
        size_t len = 1;
        for (int i = 0; i < del.n; i++) len += strlen(del.v[i]) + 1;
        spec = calloc(1, len);
        for (int i = 0; i < del.n; i++) strcat(strcat(spec, i ? "," : ""), del.v[i]);
        o.delete_spec = spec;
    }
    o.quiet = quiet || json;
    LsfResult r;
    int rc = lsf_run(&o, &r, &e);
    free(spec);
    if (rc) return cli_error("lsf", EXIT_WORK, "%s", e.msg);
    if (json) {
        char *s = lsf_result_json(&o, &r);
        puts(s);
        free(s);
    } else {
        printf("lsf on %s, %d tasks, code %s%s, %d deletion requests (%.0f s, %.0f training images/s)\n", o.dataset,
               o.tasks, lsf_code_name(o.code), o.code == LSF_CODE_FEATURE ? " (reconstruction)" : "", r.n_requests,
               r.seconds, r.train_images_per_s);
        printf("%5s %9s %9s %12s %9s %7s\n", "task", "current", "kept", "deleted-err", "seen", "H");
        for (int t = 0; t < r.n_tasks; t++) {
            const LsfTaskResult *m = &r.per_task[t];
            printf("%5d %8.2f%% ", t, 100 * m->current_acc);
            if (m->kept_acc >= 0) printf("%8.2f%% ", 100 * m->kept_acc);
            else printf("%9s ", "-");
            if (m->deleted_err >= 0) printf("%11.2f%% ", 100 * m->deleted_err);
            else printf("%12s ", "-");
            printf("%8.2f%% ", 100 * m->seen_acc);
            if (m->H >= 0) printf("%7.2f\n", 100 * m->H);
            else printf("%7s\n", "-");
        }
        if (r.after_deleted_err >= 0)
            printf("requests: kept classes %.2f%% before -> %.2f%% after; requested classes' error %.2f%% after\n",
                   100 * r.before_kept_acc, 100 * r.after_kept_acc, 100 * r.after_deleted_err);
        if (o.out_dir) printf("wrote %s/model.safetensors\n", o.out_dir);
    }
    lsf_result_free(&r);
    return 0;
}
