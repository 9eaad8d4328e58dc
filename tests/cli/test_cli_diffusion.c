/* The text-to-image commands end to end on seconds-fast networks conditioned on the tiny
 * reference CLIP: train-diffusion (pixel space) killed half way and resumed gives the same file
 * as an uninterrupted run; generate is deterministic for a seed and writes the grid and the
 * images; a latent run (train-vae, then train-diffusion --vae, then generate through the
 * decoder); train-judge and eval generate's JSON; info and convert on a UNet; and the errors a
 * user can reach. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_run.h"
#include "test.h"

static cJSON *json_of(const char *o) {
    const char *p = strrchr(o, '\n');
    while (p && p > o && p[1] != '{') { /* the last line that is a JSON object */
        const char *q = p - 1;
        while (q > o && *q != '\n') q--;
        p = q > o ? q : NULL;
    }
    p = p ? p + 1 : o;
    return cJSON_Parse(p);
}

static long file_size(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 ? (long)s.st_size : -1;
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        const int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

TEST(cli_diffusion_pixel_train_resume_generate_eval) {
    char clip[1024], a[600], b[600], g1[600], g2[600], dir[600], judge[600];
    snprintf(clip, sizeof clip, "%s/tiny/model.safetensors", ref_dir());
    snprintf(a, sizeof a, "%s/t2i-a.safetensors", scratch_dir());
    snprintf(b, sizeof b, "%s/t2i-b.safetensors", scratch_dir());
    snprintf(g1, sizeof g1, "%s/g1.png", scratch_dir());
    snprintf(g2, sizeof g2, "%s/g2.png", scratch_dir());
    snprintf(dir, sizeof dir, "%s/gen-imgs", scratch_dir());
    snprintf(judge, sizeof judge, "%s/judge.safetensors", scratch_dir());
    const char *train = "train-diffusion --net unet-tiny --side 8 --steps 4 --batch 4 --limit 64 --ckpt-every 1 --quiet";
    char *o = NULL;
    CHECK_INT(run(&o, "%s --text-encoder %s --out %s", train, clip, a), 0);
    free(o);
    CHECK_INT(run(&o, "%s --text-encoder %s --out %s --stop-after 2", train, clip, b), 0);
    CHECK_MSG(strstr(o, "stopped after step 2") != NULL, "%s", o);
    free(o);
    CHECK_INT(run(&o, "%s --text-encoder %s --out %s", train, clip, b), 0);
    free(o);
    CHECK_MSG(same_file(a, b), "a resumed run differs from an uninterrupted one");
    const char *gen = "generate --prompt \"a photo of a bag.\" --n 3 --steps 2 --seed 4 --quiet";
    CHECK_INT(run(&o, "%s --model %s --text-encoder %s --out %s --out-dir %s", gen, a, clip, g1, dir), 0);
    free(o);
    CHECK_INT(run(&o, "%s --model %s --text-encoder %s --out %s", gen, a, clip, g2), 0);
    free(o);
    CHECK(file_size(g1) > 0 && same_file(g1, g2));
    char one[700];
    snprintf(one, sizeof one, "%s/0002.png", dir);
    CHECK(file_size(one) > 0);
    CHECK_INT(run(&o, "train-judge --net resnet-8n --side 8 --epochs 1 --limit 256 --batch 32 --out %s --json", judge), 0);
    cJSON *j = json_of(o);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "test_accuracy")));
    cJSON_Delete(j), free(o);
    char report[700];
    snprintf(report, sizeof report, "%s/gen-report.html", scratch_dir());
    CHECK_INT(run(&o, "eval generate --model %s --text-encoder %s --judge %s --per-class 2 --steps 2 --clip %s "
                      "--real fmnist:test --json --quiet --report %s", a, clip, judge, clip, report), 0);
    char *html = read_whole(report, NULL);
    CHECK(html && strstr(html, "<table>") && strstr(html, "data:image/png;base64,") && strstr(html, "ankle boot"));
    CHECK(html && strstr(html, "Made by <code>forget eval generate --model ")); /* the command behind the numbers */
    free(html);
    j = json_of(o);
    const cJSON *per = cJSON_GetObjectItemCaseSensitive(j, "per_class");
    CHECK_MSG(cJSON_GetArraySize(per) == 10, "%s", o);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "judged_accuracy")));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "clip_score")));
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "frechet_distance")));
    CHECK_INT((int)cJSON_GetObjectItemCaseSensitive(j, "images")->valuedouble, 20);
    cJSON_Delete(j), free(o);
    /* info and convert know a UNet */
    snprintf(g2, sizeof g2, "%s/t2i-compvis.safetensors", scratch_dir());
    CHECK_INT(run(&o, "convert --model %s --out %s --unet-layout compvis", a, g2), 0);
    free(o);
    CHECK_INT(run(&o, "info --model %s --json", g2), 0);
    j = json_of(o);
    CHECK_MSG(j && strcmp(cJSON_GetObjectItemCaseSensitive(j, "layout")->valuestring, "compvis") == 0, "%s", o);
    cJSON_Delete(j), free(o);
    /* the converted file generates the same images */
    snprintf(one, sizeof one, "%s/g3.png", scratch_dir());
    CHECK_INT(run(&o, "%s --model %s --text-encoder %s --out %s", gen, g2, clip, one), 0);
    free(o);
    CHECK(same_file(g1, one));
}

TEST(cli_diffusion_latent_pipeline) {
    char clip[1024], vae[600], unet[600], png[600];
    snprintf(clip, sizeof clip, "%s/tiny/model.safetensors", ref_dir());
    snprintf(vae, sizeof vae, "%s/t2i-vae.safetensors", scratch_dir());
    snprintf(unet, sizeof unet, "%s/t2i-latent.safetensors", scratch_dir());
    snprintf(png, sizeof png, "%s/latent.png", scratch_dir());
    char *o = NULL;
    CHECK_INT(run(&o, "train-vae --steps 2 --batch 2 --limit 16 --out %s --json", vae), 0);
    cJSON *j = json_of(o);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "scaling_factor")));
    cJSON_Delete(j), free(o);
    CHECK_INT(run(&o, "train-diffusion --net unet-latent-8s --vae %s --text-encoder %s --steps 2 --batch 2 --limit 16 "
                      "--out %s --quiet", vae, clip, unet), 0);
    free(o);
    CHECK_INT(run(&o, "generate --model %s --text-encoder %s --prompt \"a photo of a coat.\" --n 2 --steps 2 --out %s "
                      "--quiet", unet, clip, png), 0);
    free(o);
    CHECK(file_size(png) > 0);
    /* a latent UNet with an autoencoder of other channels is refused by name */
    CHECK(run(&o, "train-diffusion --net unet-tiny --vae %s --text-encoder %s --steps 1 --out %s.x", vae, clip, unet) != 0);
    CHECK_MSG(strstr(o, "latents have 4") != NULL, "%s", o);
    free(o);
}

TEST(cli_diffusion_errors) {
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"train-diffusion --steps 1", "--text-encoder"},
        {"train-diffusion --text-encoder /nonexistent.safetensors --steps 1", "/nonexistent.safetensors"},
        {"train-diffusion --text-encoder x --beta cosine", "expected sd or linear"},
        {"train-diffusion --text-encoder x --net unet-huge", "unknown UNet"},
        {"generate --model /nonexistent.safetensors --text-encoder x --prompt p --out /tmp/x.png", "/nonexistent.safetensors"},
        {"generate --model m --text-encoder x --prompt p --out o.png --sampler euler", "expected ddim or ddpm"},
        {"generate --model m --prompt p", "required"},
        {"train-vae --net vae-huge", "unknown autoencoder"},
        {"eval generate --model m --text-encoder x", "--judge"},
        {"serve --diffusion m", "--text-encoder"},
        {"init --unet unet-huge --out /tmp/x.safetensors", "unknown UNet"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *o;
        const int rc = run(&o, "%s", cases[i].args);
        CHECK_MSG(rc != 0, "%s: exit %d", cases[i].args, rc);
        CHECK_MSG(strstr(o, cases[i].want) != NULL, "%s: %s", cases[i].args, o);
        free(o);
    }
}
