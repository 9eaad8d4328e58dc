/* forget redteam: every attack against one erased model, optionally with the defence
 * (src/forget/diffusion/redteam.h). */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_attack.h"
#include "cli/cli_groups.h"
#include "forget/diffusion/redteam.h"

static int run(int argc, char **argv);

const Command cmd_redteam = {
    "redteam", "every attack against one erased model: ASR table and report (optionally erase, attack, defend, attack)",
    "usage: forget redteam --model UNET --text-encoder CLIP [--erasure FILE] --concept TEXT --judge FILE --external CLIP\n"
    "                      --out DIR [--attacks LIST] [--defend ROUNDS] [--budget Q] [--eval N] [--seed S] [--json]\n"
    "\n"
    "Runs none, neighbours (our reconstruction), ring-a-bell, unlearndiffatk and concept-inversion (forget attack)\n"
    "against the erased model: DIR/results.json, results.md, report.html (the ASR table and, rows erasures and\n"
    "columns attacks, one image and the ASR a cell) and DIR/images/. --defend ROUNDS erases the concept with the\n"
    "escape token here (preserving the judge's other classes), attacks it, runs the defence (forget erase\n"
    "--adversarial) and attacks the defended tokens again, with the kept-class accuracy of both.\n",
    run};

static int run(int argc, char **argv) {
    RedteamOpts o;
    redteam_defaults(&o);
    const char *vocab = NULL, *exclude = NULL;
    int json = 0;
    Opt opts[64];
    int n = 0;
    const Opt head[] = {
        O_STR("--model", "UNET", &o.unet, OPT_REQUIRED, "the erased (or original) UNet"),
        O_STR("--text-encoder", "CLIP", &o.clip, OPT_REQUIRED, "the CLIP whose text tower conditions it"),
        O_STR("--vae", "FILE", &o.vae, 0, "the autoencoder (default: the one the UNet names)"),
        O_STR("--erasure", "FILE", &o.erasure, 0, "forget erase's sampling-time file: escape tokens or SLD .json"),
        O_STR("--original", "UNET", &o.original, 0, "the UNet before erasure (default: the UNet's erase.source)"),
        O_STR("--label", "NAME", &o.label, 0, "the erasure's name in the report"),
        O_STR("--concept", "TEXT", &o.concept, OPT_REQUIRED, "the erased concept (a class of the judge)"),
        O_STR("--judge", "FILE", &o.judge, OPT_REQUIRED, "the classifier of generated images"),
        O_STR("--external", "CLIP", &o.external, OPT_REQUIRED, "the attacker's CLIP (not the victim's text encoder)"),
        O_STR("--out", "DIR", &o.out, OPT_REQUIRED, "results directory"),
        O_STR("--attacks", "LIST", &o.attacks, 0, "comma list (default: all five)"),
        O_INT("--defend", "ROUNDS", &o.defend, 0, 100, "erase with escape, attack, defend for ROUNDS, attack again"),
        O_STR("--preserve", "A,B", &o.preserve, 0, "--defend: the escape's preserved concepts (default: the other classes)"),
        O_INT("--escape-steps", "N", &o.escape_steps, 0, 1000000, "--defend: escape-token steps (0: default)"),
        O_INT("--kept-per-class", "N", &o.kept_per_class, 2, 100000, "--defend: images a class for kept accuracy"),
    };
    for (size_t i = 0; i < sizeof head / sizeof *head; i++) opts[n++] = head[i];
    cli_attack_opts(opts, &n, &o.attack, &vocab, &exclude);
    opts[n++] = opt_bind(OPT_SEED, &o.seed);
    opts[n++] = opt_bind(OPT_JSON, &json);
    opts[n++] = opt_bind(OPT_QUIET, &o.quiet);
    opts[n++] = (Opt)O_END;
    const int st = cli_parse(&cmd_redteam, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    o.attack.vocab = vocab;
    int nx = 0;
    char **ex = exclude ? cli_split(exclude, ',', &nx) : NULL;
    o.attack.exclude = (const char *const *)ex;
    Err e = {{0}};
    cJSON *root = NULL;
    const int rc = redteam_run(&o, &root, &e);
    free(ex);
    if (rc) return cli_error("redteam", EXIT_WORK, "%s", e.msg);
    int ret = 0;
    if (json) ret = cli_json_line("redteam", root);
    else if (!o.quiet) printf("redteam: %s/results.json, results.md, report.html\n", o.out);
    cJSON_Delete(root);
    return ret;
}
