/* forget eval generate: a text-to-image model judged class by class (eval/gen_eval.h). */
#include <cjson/cJSON.h>
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cli_groups.h"
#include "eval/gen_eval.h"
#include "eval/report_html.h"
#include "io/atomic_file.h"
#include "io/image.h"

extern const Command cmd_eval;

/* An HTML page a person reads: the settings, the figures, and per class its accuracy beside a
 * strip of its first images (PNG data URIs, drawn pixelated at 3x). Through a temporary file. */
static int write_report(const char *path, const char *model, const Judge *j, const GenEvalOpts *o,
                        const GenEvalResult *r, const char *clip_judge, const char *real, int argc, char **argv,
                        Err *e) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    html_report_begin(f, "eval generate");
    fprintf(f, "<h1>Generated images judged class by class</h1>\n<p>Model <code>%s</code>, prompt <code>%s</code>, "
               "%d images a class, %d %s steps, guidance %g, seed %llu; %ld images in %.0f s.</p>\n",
            model, o->template_, o->per_class, o->steps, o->sampler == SAMPLER_DDPM ? "DDPM" : "DDIM", (double)o->cfg,
            (unsigned long long)o->seed, r->images, r->seconds);
    fputs("<p>Made by <code>forget eval", f); /* the command, so every number can be made again */
    for (int i = 1; i < argc; i++) {
        const int quote = strpbrk(argv[i], " \t'\"{}") != NULL;
        fputs(quote ? " '" : " ", f);
        html_escape(f, argv[i]);
        if (quote) fputc('\'', f);
    }
    fputs("</code></p>\n", f);
    fprintf(f, "<p>Judged as prompted: <b>%.1f%%</b> of all images (the judge: %.1f%% on real test images).",
            100 * r->mean_accuracy, 100 * j->test_accuracy);
    if (r->clip_score >= 0) fprintf(f, " CLIP score %.2f", r->clip_score);
    if (r->fid >= 0) fprintf(f, ", Fr&eacute;chet distance %.3f to %ld real images (%s)", r->fid, r->images, real);
    if (r->clip_score >= 0) fprintf(f, " in <code>%s</code>'s image-embedding space.", clip_judge);
    fprintf(f, "</p>\n<table><tr><th>class</th><th>judged as prompted</th><th style=\"text-align:left\">first %d "
               "images</th></tr>\n", r->keep);
    int rc = 0;
    for (int k = 0; k < r->n_classes && !rc; k++) {
        fprintf(f, "<tr><td>%s</td><td>%.1f%%</td><td style=\"text-align:left\">", j->class_names[k], 100 * r->accuracy[k]);
        if (r->kept) { /* the class's images side by side in one PNG */
            const int S = r->side, W = r->keep * S;
            Image8 strip = {W, S, 3, xmalloc((size_t)W * S * 3)};
            image_tile(r->kept + (size_t)k * r->keep * S * S * 3, r->keep, S, r->keep, 0, 0, 0, &strip);
            char *b64 = image_png_base64(&strip, "report strip", e);
            if (!b64) rc = -1;
            else
                fprintf(f, "<img alt=\"%s\" width=\"%d\" style=\"image-rendering:pixelated\" src=\"data:image/png;base64,%s\">",
                        j->class_names[k], 3 * W, b64);
            free(b64);
            free(strip.px);
        }
        fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n</body></html>\n");
    fclose(f);
    if (!rc) rc = write_file_atomic(path, buf, len, e);
    free(buf);
    return rc;
}

int eval_generate(int argc, char **argv) {
    const char *model = NULL, *clip = NULL, *vae = NULL, *judge = NULL, *clip_judge = NULL, *real = NULL, *dir = NULL;
    const char *sampler = "ddim", *report = NULL;
    GenEvalOpts o = {.template_ = "a photo of a {}.", .per_class = 100, .steps = 50, .batch = 50, .cfg = 7.5f};
    int json = 0, quiet = 0, precision = PREC_FP32;
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
        O_STR("--report", "FILE", &report, 0, "an HTML page: the figures and each class's first 8 images"),
        opt_bind(OPT_SEED, &o.seed),
        opt_bind(OPT_PRECISION, &precision),
        opt_bind(OPT_QUIET, &quiet),
        opt_bind(OPT_JSON, &json),
        O_END,
    };
    const int st = cli_parse(&cmd_eval, argc, argv, 2, opts, NULL);
    if (st >= 0) return st;
    if (diffusion_sampler_parse(sampler, &o.sampler))
        return cli_error("eval", EXIT_USAGE, "--sampler %s: expected ddim or ddpm", sampler);
    o.quiet = quiet || json, o.real = clip_judge ? real : NULL, o.data_dir = dir, o.keep = report ? 8 : 0;
    Err e = {{0}};
    Text2Image g;
    if (t2i_load(&g, model, clip, vae, &e)) return cli_error("eval", EXIT_WORK, "%s", e.msg);
    if (t2i_set_precision(&g, (Precision)precision, &e)) {
        t2i_free(&g);
        return cli_error("eval", EXIT_WORK, "%s", e.msg);
    }
    Judge j;
    if (judge_load(&j, judge, &e)) {
        t2i_free(&g);
        return cli_error("eval", EXIT_WORK, "%s", e.msg);
    }
    ClipModel cj;
    int have_cj = 0;
    const ClipLoadOpts lo = {.act_override = -1};
    int rc = 0;
    if (j.net.cfg.res != g.image_side)
        rc = err_set(&e, "%s reads %d px images; %s makes %d px", judge, j.net.cfg.res, model, g.image_side);
    if (!rc && clip_judge) rc = clip_load(&cj, clip_judge, &lo, &e), have_cj = rc == 0;
    GenEvalResult r = {0};
    if (!rc) rc = gen_eval(&g, &j, have_cj ? &cj : NULL, &o, &r, &e);
    if (!rc && report) rc = write_report(report, model, &j, &o, &r, clip_judge, real, argc, argv, &e);
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
    if (have_cj) clip_free(&cj); /* loaded, whatever happened after */
    gen_eval_result_free(&r);
    judge_free(&j);
    t2i_free(&g);
    return rc;
}
