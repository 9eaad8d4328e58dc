/* forget erase: remove a concept from a text-to-image model (src/forget/diffusion/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "core/threads.h"
#include "forget/diffusion/defend.h"
#include "forget/diffusion/erase.h"
#include "forget/diffusion/escape_file.h"
#include "io/text_lines.h"

static int run(int argc, char **argv);

const Command cmd_erase = {
    "erase", "remove a concept from a text-to-image model (escape token, ESD, FMN, UCE, SLD)",
    "usage: forget erase --method escape|esd-x|esd-u|fmn|uce|sld --concept TEXT [--preserve A,B,...]\n"
    "                    --model UNET --text-encoder CLIP [--vae FILE] --out FILE [--seed S] [--json]\n"
    "\n"
    "escape   (our reconstruction; diffusion-erasure.md 2.1) k token embeddings after SOT trained through the\n"
    "         frozen text encoder alone: Target Concept Subtraction (--tcs diff|proj) and the dense token\n"
    "         alignment loss (--loss dense|pooled), a preservation term over the --preserve concepts. --out is a\n"
    "         textual-inversion style .safetensors (\"emb_params\"): forget generate --escape FILE, forget serve\n"
    "         --escape FILE. The UNet is not read, except by --adversarial ROUNDS: the defence, rounds of attack\n"
    "         (neighbours, unlearndiffatk against --model with the tokens; --judge, --external) whose successes\n"
    "         join the erase set before the tokens are trained again (src/forget/diffusion/defend.h).\n"
    "esd-x    ESD on the cross-attention only; esd-u: on everything but the cross-attention (--out: a UNet).\n"
    "fmn      Forget-Me-Not attention re-steering on real images of the concept (--dataset) (--out: a UNet).\n"
    "uce      UCE's closed form on every cross-attention W_k, W_v (--out: a UNet).\n"
    "sld      Safe Latent Diffusion, inference-time guidance away from the concept (--sld-config medium|strong);\n"
    "         the weights are untouched: --out is a JSON guidance file for forget generate --sld FILE.\n",
    run};

static const char *const METHODS[] = {"escape", "esd-x", "esd-u", "fmn", "uce", "sld", NULL};
static const char *const TCS[] = {"diff", "proj", NULL};
static const char *const LOSSES[] = {"dense", "pooled", NULL};
static const char *const SLD_CFG[] = {"medium", "strong", NULL};

static int run(int argc, char **argv) {
    EraseOpts o;
    erase_defaults(&o);
    const char *preserve = NULL, *templates = NULL;
    int json = 0, tcs = o.escape.tcs, loss = o.escape.loss, sld = 0;
    DefendOpts d = {0};
    attack_defaults(&d.attack);
    d.attack.budget = 100, d.attack.eval_n = 8;
    const Opt opts[] = {
        O_CHOICE("--method", &o.method, METHODS, "escape, esd-x, esd-u, fmn, uce or sld"),
        O_STR("--concept", "TEXT", &o.concept, 0, "what to erase (a class name, a subject)"),
        O_STR("--preserve", "A,B,..", &preserve, 0, "concepts to keep (comma list; must not contain the concept)"),
        O_STR("--model", "UNET", &o.unet, 0, "the diffusion UNet (forget train-diffusion)"),
        O_STR("--text-encoder", "CLIP", &o.clip, 0, "the CLIP whose text tower conditions it"),
        O_STR("--vae", "FILE", &o.vae, 0, "the autoencoder of a latent model (default: the one its file names)"),
        O_STR("--out", "FILE", &o.out, 0, "where the result goes (required)"),
        O_INT("--tokens", "K", &o.escape.k, 1, 4, "escape: escape tokens after SOT"),
        O_CHOICE("--tcs", &tcs, TCS, "escape: target concept subtraction, diff (prompt difference) or proj (subspace)"),
        O_DBL("--lambda", "L", &o.escape.lambda, 0, 10, 0, "escape --tcs diff: subtraction strength"),
        O_STR("--neutral", "WORD", &o.escape.neutral, 0, "escape: the word that replaces the concept (and z's start)"),
        O_CHOICE("--loss", &loss, LOSSES, "escape: dense (every position) or pooled (EOT only, the ablation)"),
        O_DBL("--alpha", "A", &o.escape.alpha, 0, 100, 0, "escape: weight of the preservation term"),
        O_STR("--templates", "FILE", &templates, 0, "escape: prompt templates, one a line with {} (default: built in)"),
        O_DBL("--lr", "LR", &o.lr, 0, 10, OPT_OPEN, "learning rate (default: the method's)"),
        O_INT("--steps", "N", &o.steps, 0, 1000000, "optimisation steps (default: the method's)"),
        O_DBL("--eta", "ETA", &o.esd_eta, 0, 100, 0, "esd: negative guidance"),
        O_STR("--guide", "TEXT", &o.uce_guide, 0, "uce: the concept erased ones are mapped to (default: the empty prompt)"),
        O_DBL("--uce-lambda", "L", &o.uce_lambda, 0, 100, OPT_OPEN, "uce: the weight of the old projection"),
        O_CHOICE("--sld-config", &sld, SLD_CFG, "sld: medium (the pipeline default) or strong"),
        O_STR("--dataset", "NAME", &o.dataset, 0, "fmn: the data set holding real images of the concept"),
        opt_bind(OPT_DATA_DIR, &o.data_dir),
        O_INT("--adversarial", "ROUNDS", &d.rounds, 0, 100, "escape: rounds of the defence (attack, grow the erase set, retrain)"),
        O_STR("--judge", "FILE", &d.judge, 0, "--adversarial: the judge of the attacks' images"),
        O_STR("--external", "CLIP", &d.external, 0, "--adversarial: the attacker's CLIP (neighbours)"),
        O_LONG("--attack-budget", "Q", &d.attack.budget, 0, 100000000, "--adversarial: images an attack may generate"),
        O_INT("--attack-eval", "N", &d.attack.eval_n, 1, 4096, "--adversarial: images an attack is judged on"),
        O_INT("--attack-steps", "K", &d.attack.steps, 1, 1000, "--adversarial: sampling steps of the attacks"),
        O_INT("--attack-vocab-max", "N", &d.attack.vocab_max, 0, 10000000, "--adversarial: words of the attacker's list (0: all)"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_JSON, &json),
        opt_bind(OPT_QUIET, &o.quiet),
        O_END,
    };
    const int st = cli_parse(&cmd_erase, argc, argv, 1, opts, NULL);
    if (st >= 0) return st;
    if (!o.concept || !o.clip || !o.out) return cli_error("erase", EXIT_USAGE, "--concept, --text-encoder and --out are required");
    if (o.method != ERASE_ESCAPE && !o.unet) return cli_error("erase", EXIT_USAGE, "--method %s needs --model UNET", METHODS[o.method]);
    o.escape.tcs = (EscapeTcs)tcs, o.escape.loss = (EscapeLoss)loss, o.sld_strong = sld;
    char **pres = NULL;
    if (preserve) pres = cli_split(preserve, ',', &o.n_preserve);
    o.preserve = (const char *const *)pres;
    Err e = {{0}};
    char **tpl = NULL;
    int rc = 0;
    if (templates) {
        int n = 0;
        if (!(tpl = text_lines_read(templates, &n, &e))) rc = -1;
        o.escape.templates = (const char *const *)tpl, o.escape.n_templates = n;
        if (!rc && n == 0) rc = err_set(&e, "%s: no templates", templates);
    }
    EraseResult r;
    DefendRound *log = d.rounds ? xcalloc((size_t)d.rounds, sizeof *log) : NULL;
    d.attack.seed = o.seed;
    if (!rc && d.rounds) rc = escape_defend(&o, &d, &r, log, &e);
    else if (!rc) rc = erase_run(&o, &r, &e);
    free(pres);
    text_lines_free(tpl);
    if (rc) return free(log), cli_error("erase", EXIT_WORK, "%s", e.msg);
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "method", METHODS[o.method]);
        cJSON_AddStringToObject(j, "concept", o.concept);
        cJSON_AddStringToObject(j, "out", o.out);
        cJSON_AddNumberToObject(j, "trainable_params", (double)r.trainable);
        cJSON_AddNumberToObject(j, "seconds", r.seconds);
        cJSON_AddNumberToObject(j, "peak_mb", r.peak_mb);
        cJSON_AddNumberToObject(j, "loss", r.loss);
        if (d.rounds) defend_rounds_json(j, "adversarial_rounds", log, d.rounds);
        free(log);
        const int jr = cli_json_line("erase", j);
        cJSON_Delete(j);
        return jr;
    }
    free(log);
    if (!o.quiet)
        printf("erase: %s of \"%s\" -> %s (%ld trainable parameters, %.1f s, peak %.0f MB%s)\n", METHODS[o.method],
               o.concept, o.out, r.trainable, r.seconds, r.peak_mb,
               o.method == ERASE_ESCAPE ? "; escape is our reconstruction of an unpublished method" : "");
    return 0;
}
