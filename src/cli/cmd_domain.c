/* forget domain: one domain-unlearning run (forget/domain.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "forget/domain.h"

static int run(int argc, char **argv);

const Command cmd_domain = {
    "domain", "make a CLIP classifier forget visual domains for every class (ADU and baselines)",
    "usage: forget domain --model FILE --dataset NAME --forget-domains D1[,D2..] [--method adu] [--shots 8]\n"
    "                     [--seed S] [--out PROMPTS.safetensors] [--json]\n"
    "\n"
    "Methods: adu (VPT-deep + InstaPG + Domain Disentangling Loss), baseline (VPT-deep), clipfit (the image\n"
    "tower's biases and LayerNorms), lp++ (a linear probe from the text classifier), bbf (BBF's context search on\n"
    "the classifier's outputs only); ablations adu-ddl-only, adu-instapg-only, ce-only, mmd-only. Each trains on\n"
    "--shots images per class and domain of NAME:train (seeded) with CE on kept domains and CE to uniform on\n"
    "forgotten ones, keeps the epoch with the best validation H (NAME:val, else --val-shots more train images per\n"
    "class and domain), and reports Mem, For and H on the whole NAME:test (docs/domain.md). The prompts file is\n"
    "applied by forget classify, forget eval zeroshot and forget serve with --prompts FILE.\n",
    run};

static int run(int argc, char **argv) {
    DomainOpts o;
    domain_defaults(&o);
    int json = 0, quiet = 0;
    const Opt opts[] = {
        O_STR("--model", "FILE", &o.model, OPT_REQUIRED, "the CLIP model"),
        opt_bind(OPT_PRECISION, &o.precision),
        O_STR("--dataset", "NAME", &o.dataset, OPT_REQUIRED, "a data set with domain labels (fmnist-domains, emoji100)"),
        O_STR("--forget-domains", "D1,D2", &o.forget, OPT_REQUIRED, "the domains to forget, by name"),
        O_STR("--method", "M", &o.method, 0, "adu (default), baseline, clipfit, lp++, bbf, adu-ddl-only, ..."),
        O_INT("--shots", "K", &o.shots, 1, 100000, "training images per class and domain (default 8)"),
        O_INT("--val-shots", "K", &o.val_shots, 1, 100000, "validation images per class and domain (default 8)"),
        O_INT("--tokens", "P", &o.tokens, 1, 256, "VPT prompt tokens (default 8)"),
        O_INT("--layers", "N", &o.layers, 1, 1024, "prompted layers (default: 3/4 of the tower)"),
        O_INT("--instapg-layer", "K", &o.pg_layer, 0, 1023, "InstaPG's block (default: half the prompted layers)"),
        O_INT("--epochs", "N", &o.epochs, 1, 100000, "passes over the training shots (default 50)"),
        O_INT("--batch", "B", &o.batch, 2, 65536, "images per step (default 32)"),
        O_INT("--eval-every", "N", &o.eval_every, 1, 100000, "epochs between validation checks (default 5)"),
        O_DBL("--lr", "LR", &o.lr, 0, 10, 0, "AdamW learning rate (default: the method's, docs/domain.md)"),
        O_DBL("--gamma", "G", &o.gamma, 0, 1e6, 0, "DDL: weight of the domain CE (default 1; the notes' 30 collapses our models, docs/domain.md)"),
        O_DBL("--lambda", "L", &o.lambda, 0, 1e6, 0, "DDL: weight of the MMD (default 0.1; the notes give 10)"),
        O_INT("--bbf-budget", "N", &o.bbf_budget, 20, 100000000, "bbf: candidates scored (default 2000)"),
        O_INT("--max-test", "N", &o.max_test, 1, 1 << 30, "measure on the first N test images (default: all)"),
        O_STR("--template", "T", &o.tpl, 0, "the class prompt (default \"a photo of a {}.\"; emoji: \"an emoji of {}.\")"),
        O_STR("--out", "FILE", &o.out, 0, "write the learned prompts / weights here"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_domain, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    o.quiet = quiet || json;
    DomainResult r;
    Err e = {{0}};
    if (domain_run(&o, &r, &e)) return cli_error("domain", EXIT_WORK, "%s", e.msg);
    if (json) {
        cJSON *j = domain_result_json(&r);
        const int rc = cli_json_line("domain", j);
        cJSON_Delete(j);
        return rc;
    }
    printf("%s on %s, forgetting", r.method, r.dataset);
    for (int k = 0; k < r.n_domains; k++)
        if (r.forget[k]) printf(" %s", r.domain_names[k]);
    printf(" (%ld training images, %ld test images, %ld trainable parameters, %.0f s)\n", r.train_images,
           r.test_images, r.trainable, r.seconds);
    printf("%-12s %7s %7s %7s\n", "", "H", "Mem", "For");
    printf("%-12s %7.2f %7.2f %7.2f\n", "zero-shot", 100 * r.base_h, 100 * r.base_mem, 100 * r.base_for);
    printf("%-12s %7.2f %7.2f %7.2f   (validation H %.2f, epoch %d)\n", r.method, 100 * r.h, 100 * r.mem,
           100 * r.forget_err, 100 * r.val_h, r.best_epoch);
    printf("accuracy per domain (zero-shot -> after):");
    for (int k = 0; k < r.n_domains; k++)
        printf("  %s%s %.2f -> %.2f", r.domain_names[k], r.forget[k] ? " (forget)" : "", 100 * r.base_dom_acc[k],
               100 * r.dom_acc[k]);
    printf("\ndomain probe accuracy of the image features: %.2f -> %.2f\n", 100 * r.probe_before, 100 * r.probe_after);
    if (o.out) printf("wrote %s\n", o.out);
    return 0;
}
