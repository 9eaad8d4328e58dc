/* forget eval generate: a text-to-image model judged class by class (eval/gen_eval.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "eval/gen_eval.h"

extern const Command cmd_eval;

int eval_generate(int argc, char **argv) {
    const char *model = NULL, *clip = NULL, *vae = NULL, *judge = NULL, *clip_judge = NULL, *real = NULL, *dir = NULL;
    const char *sampler = "ddim";
    GenEvalOpts o = {.template_ = "a photo of a {}.", .per_class = 100, .steps = 50, .batch = 50, .cfg = 7.5f};
    int json = 0, quiet = 0;
    const Opt opts[] = {
        O_STR("--model", "UNET", &model, OPT_REQUIRED, "the trained UNet"),
        O_STR("--text-encoder", "CLIP", &clip, OPT_REQUIRED, "the CLIP it was trained on"),
        O_STR("--vae", "FILE", &vae, 0, "the autoencoder of a latent model (default: the one its file names)"),
        O_STR("--judge", "FILE", &judge, OPT_REQUIRED, "the classifier of real images (forget train-judge)"),
        O_STR("--clip", "FILE", &clip_judge, 0, "another CLIP for CLIP score and the Frechet distance"),
        O_STR("--real", "SET:SPLIT", &real, 0, "real images for the Frechet distance (e.g. fmnist:test)"),
        opt_bind(OPT_DATA_DIR, &dir),
        O_STR("--template", "T", &o.template_, 0, "the prompt of a class"),
        O_INT("--per-class", "N", &o.per_class, 1, 100000, "images a class"),
        O_INT("--steps", "K", &o.steps, 1, 100000, "sampling steps"),
        O_FLT("--cfg", "W", &o.cfg, 0, 100, 0, "guidance scale"),
        O_STR("--sampler", "NAME", &sampler, 0, "ddim (default) or ddpm"),
        O_INT("--batch", "B", &o.batch, 1, 4096, "images a UNet call"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_eval, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    if (diffusion_sampler_parse(sampler, &o.sampler))
        return cli_error("eval", EXIT_USAGE, "--sampler %s: expected ddim or ddpm", sampler);
    o.quiet = quiet || json, o.real = clip_judge ? real : NULL, o.data_dir = dir;
    Err e = {{0}};
    Text2Image g;
    if (t2i_load(&g, model, clip, vae, &e)) return cli_error("eval", EXIT_WORK, "%s", e.msg);
    Judge j;
    if (judge_load(&j, judge, &e)) {
        t2i_free(&g);
        return cli_error("eval", EXIT_WORK, "%s", e.msg);
    }
    ClipModel cj;
    const ClipLoadOpts lo = {.act_override = -1};
    int rc = 0;
    if (j.net.cfg.res != g.image_side)
        rc = err_set(&e, "%s reads %d px images; %s makes %d px", judge, j.net.cfg.res, model, g.image_side);
    if (!rc && clip_judge && clip_load(&cj, clip_judge, &lo, &e)) rc = -1;
    GenEvalResult r = {0};
    if (!rc) rc = gen_eval(&g, &j, clip_judge ? &cj : NULL, &o, &r, &e);
    if (rc) {
        rc = cli_error("eval", EXIT_WORK, "%s", e.msg);
    } else if (json) {
        cJSON *out = cJSON_CreateObject(), *per = cJSON_AddObjectToObject(out, "per_class");
        for (int k = 0; k < r.n_classes; k++) cJSON_AddNumberToObject(per, j.class_names[k], r.accuracy[k]);
        cJSON_AddNumberToObject(out, "judged_accuracy", r.mean_accuracy);
        if (r.clip_score >= 0) cJSON_AddNumberToObject(out, "clip_score", r.clip_score);
        if (r.fid >= 0) cJSON_AddNumberToObject(out, "frechet_distance", r.fid);
        cJSON_AddNumberToObject(out, "images", (double)r.images);
        cJSON_AddNumberToObject(out, "seconds", r.seconds);
        cJSON_AddNumberToObject(out, "steps", o.steps);
        cJSON_AddNumberToObject(out, "cfg", o.cfg);
        cJSON_AddNumberToObject(out, "judge_test_accuracy", j.test_accuracy);
        rc = cli_json_line("eval", out);
        cJSON_Delete(out);
    } else {
        printf("eval generate: %s, %d images a class, %d %s steps, cfg %g (%ld images, %.0f s)\n", model, o.per_class,
               o.steps, sampler, (double)o.cfg, r.images, r.seconds);
        printf("  %-20s judged as prompted\n", "class");
        for (int k = 0; k < r.n_classes; k++) printf("  %-20s %6.1f%%\n", j.class_names[k], 100 * r.accuracy[k]);
        printf("  %-20s %6.1f%%   (judge: %.1f%% on real test images)\n", "all", 100 * r.mean_accuracy,
               100 * j.test_accuracy);
        if (r.clip_score >= 0) printf("  CLIP score %.2f", r.clip_score);
        if (r.fid >= 0) printf(", Frechet distance %.3f to %ld real images (%s)", r.fid, r.images, real);
        if (r.clip_score >= 0) printf(" in %s's space\n", clip_judge);
    }
    if (clip_judge && !rc) clip_free(&cj);
    gen_eval_result_free(&r);
    judge_free(&j);
    t2i_free(&g);
    return rc;
}
