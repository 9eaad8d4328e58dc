/* forget attack: bring an erased concept back, one attack at a time (src/forget/diffusion/attack.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_attack.h"
#include "cli/cli_groups.h"
#include "forget/diffusion/attack_victim.h"

static int run(int argc, char **argv);

const Command cmd_attack = {
    "attack", "bring an erased concept back (neighbours, ring-a-bell, unlearndiffatk, concept-inversion)",
    "usage: forget attack --method M --concept TEXT (--api URL | --model UNET --text-encoder CLIP [--erasure FILE])\n"
    "                     --judge FILE [--external CLIP] [--budget Q] [--eval N] [--seed S] [--out grid.png] [--json]\n"
    "\n"
    "none               the plain prompt (the pre-attack rate)\n"
    "neighbours         (our reconstruction, diffusion-attacks.md 4.5; strict black-box) the concept's nearest words\n"
    "                   under --external, a CLIP of the attacker's (never the victim's encoder), weighted by CMA-ES\n"
    "                   through POST /v1/generate only\n"
    "ring-a-bell        (black-box) genetic search over words toward the concept direction of --external\n"
    "unlearndiffatk     (white-box) prefix words by projected gradient, the erased model as its own classifier\n"
    "concept-inversion  (white-box) textual inversion on the erased model from the original model's images\n"
    "\n"
    "--erasure is what forget erase wrote for sampling time (an escape-token file or an SLD .json); an erased UNet\n"
    "is the --model itself, its original read from its erase.source metadata (or --original). With --model the\n"
    "erased model is also served in-process on a loopback port and black-box attacks reach it through HTTP\n"
    "alone; server_images in the output is the server's own count. The judge (--judge, forget train-judge) labels\n"
    "eval images of seeds the search never used; ASR is the share it labels as the concept.\n",
    run};

static const char *const METHODS[] = {"none", "neighbours", "ring-a-bell", "unlearndiffatk", "concept-inversion", NULL};

static int run(int argc, char **argv) {
    AttackOpts o;
    attack_defaults(&o);
    const char *api = NULL, *unet = NULL, *clip = NULL, *vae = NULL, *erasure = NULL, *original = NULL, *judge_path = NULL;
    const char *external = NULL, *out = NULL, *vocab = NULL, *exclude = NULL;
    int json = 0;
    Opt opts[64];
    int n = 0;
    const Opt head[] = {
        O_CHOICE("--method", &o.method, METHODS, "none, neighbours, ring-a-bell, unlearndiffatk or concept-inversion"),
        O_STR("--concept", "TEXT", &o.concept, OPT_REQUIRED, "the erased concept (a class of the judge)"),
        O_STR("--api", "URL", &api, 0, "a generation API (forget serve --diffusion): black-box attacks only"),
        O_STR("--model", "UNET", &unet, 0, "the erased (or original) UNet"),
        O_STR("--text-encoder", "CLIP", &clip, 0, "the CLIP whose text tower conditions it"),
        O_STR("--vae", "FILE", &vae, 0, "the autoencoder (default: the one the UNet names)"),
        O_STR("--erasure", "FILE", &erasure, 0, "forget erase's sampling-time file: escape tokens or SLD .json"),
        O_STR("--original", "UNET", &original, 0, "the UNet before erasure (default: the UNet's erase.source)"),
        O_STR("--judge", "FILE", &judge_path, OPT_REQUIRED, "the classifier of generated images (forget train-judge)"),
        O_STR("--external", "CLIP", &external, 0, "the attacker's CLIP (neighbours, ring-a-bell)"),
        O_STR("--out", "FILE", &out, 0, "a PNG: the plain prompt's eval images above the attack's"),
    };
    for (size_t i = 0; i < sizeof head / sizeof *head; i++) opts[n++] = head[i];
    cli_attack_opts(opts, &n, &o, &vocab, &exclude);
    opts[n++] = opt_bind(OPT_SEED, &o.seed);
    opts[n++] = opt_bind(OPT_JSON, &json);
    opts[n++] = opt_bind(OPT_QUIET, &o.quiet);
    opts[n++] = (Opt)O_END;
    const int st = cli_parse(&cmd_attack, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    if (!!api == !!unet) return cli_error("attack", EXIT_USAGE, "give either --api URL or --model UNET --text-encoder CLIP");
    if (unet && !clip) return cli_error("attack", EXIT_USAGE, "--model needs --text-encoder CLIP");
    if (api && (erasure || original)) return cli_error("attack", EXIT_USAGE, "--erasure and --original go with --model, not --api");
    o.vocab = vocab;
    int nx = 0;
    char **ex = exclude ? cli_split(exclude, ',', &nx) : NULL;
    o.exclude = (const char *const *)ex;
    Err e = {{0}};
    Judge j;
    ClipModel ext;
    int has_ext = 0, rc = judge_load(&j, judge_path, &e);
    if (rc) return free(ex), cli_error("attack", EXIT_WORK, "%s", e.msg);
    if (external) {
        const ClipLoadOpts lo = {.act_override = -1};
        if (clip_load(&ext, external, &lo, &e)) rc = -1;
        else has_ext = 1, o.external = &ext;
    }
    VictimHold h;
    int has_v = 0;
    if (!rc) rc = api ? victim_open_api(&h, api, &e) : victim_open_local(&h, unet, clip, vae, erasure, original, &e);
    if (!rc) has_v = 1;
    long before = 0, after = 0;
    if (!rc) rc = victim_server_images(&h, &before, &e);
    AttackResult r;
    if (!rc) rc = attack_run(&h.v, &j, &o, &r, &e);
    if (!rc && victim_server_images(&h, &after, &e)) attack_result_free(&r), rc = -1;
    if (!rc && out && cli_attack_grid(&r, out, &e)) attack_result_free(&r), rc = -1;
    if (has_v) victim_close(&h);
    if (has_ext) clip_free(&ext);
    judge_free(&j);
    free(ex);
    if (rc) return cli_error("attack", EXIT_WORK, "%s", e.msg);
    int ret = 0;
    if (json) {
        cJSON *jj = cli_attack_json(&o, &r);
        cJSON_AddNumberToObject(jj, "server_images", (double)(after - before));
        ret = cli_json_line("attack", jj);
        cJSON_Delete(jj);
    } else if (!o.quiet)
        printf("attack %s%s on \"%s\": ASR %.1f%% (before %.1f%%), %ld search queries + %ld eval images (server counted "
               "%ld), first success at %ld; prompt: %s\n",
               attack_method_name(o.method), o.method == ATTACK_NEIGHBOURS ? " (reconstruction)" : "", o.concept,
               100 * r.asr, 100 * r.asr_before, r.queries, r.queries_eval, after - before, r.queries_to_success, r.prompt);
    attack_result_free(&r);
    return ret;
}
