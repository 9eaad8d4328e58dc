/* forget erase end to end on a seconds-fast text-to-image model (unet-tiny at 8 px on the tiny
 * reference CLIP): every method writes its result and forget generate applies it; ESD-x and
 * ESD-u split the UNet's parameters between them; the errors a user can reach (a concept that
 * tokenises to nothing, a preserve list holding the concept, an escape file made for another
 * text encoder, a damaged guidance file). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_run.h"
#include "test.h"

static cJSON *last_json(const char *o) {
    const char *line = strstr(o, "{\"method\"");
    return cJSON_Parse(line ? line : o);
}

static double num(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

TEST(cli_erase_every_method_and_its_errors) {
    char clip[1024], clip2[600], unet[600], out[600], png[600];
    snprintf(clip, sizeof clip, "%s/tiny/model.safetensors", ref_dir());
    snprintf(clip2, sizeof clip2, "%s/erase-clip2.safetensors", scratch_dir());
    snprintf(unet, sizeof unet, "%s/erase-unet.safetensors", scratch_dir());
    snprintf(png, sizeof png, "%s/erase.png", scratch_dir());
    char *o = NULL;
    CHECK_INT(run(&o, "train-diffusion --net unet-tiny --side 8 --steps 2 --batch 4 --limit 64 --quiet --text-encoder %s "
                      "--out %s", clip, unet), 0);
    free(o);
    const char *gen = "generate --prompt \"a photo of a bag.\" --n 2 --steps 2 --seed 1 --quiet";
    /* escape: a textual-inversion style file, applied by generate */
    snprintf(out, sizeof out, "%s/esc.safetensors", scratch_dir());
    CHECK_INT(run(&o, "erase --method escape --concept bag --preserve coat,sandal --tokens 2 --steps 3 --text-encoder %s "
                      "--out %s --json --quiet", clip, out), 0);
    cJSON *j = last_json(o);
    CHECK_MSG(num(j, "trainable_params") > 0 && num(j, "peak_mb") > 0, "%s", o);
    cJSON_Delete(j), free(o);
    CHECK_INT(run(&o, "info --model %s", out), 0);
    free(o);
    CHECK_INT(run(&o, "%s --model %s --text-encoder %s --escape %s --out %s", gen, unet, clip, out, png), 0);
    free(o);
    CHECK_INT(run(&o, "init --config tiny --seed 9 --out %s", clip2), 0);
    free(o);
    CHECK_INT(run(&o, "%s --model %s --text-encoder %s --escape %s --out %s", gen, unet, clip2, out, png), 1);
    CHECK_MSG(strstr(o, "made for another text encoder") != NULL, "%s", o);
    free(o);
    /* the inputs erase refuses */
    CHECK_INT(run(&o, "erase --method escape --concept \" \" --text-encoder %s --out %s", clip, out), 1);
    CHECK_MSG(strstr(o, "tokenises to nothing") != NULL, "%s", o);
    free(o);
    CHECK_INT(run(&o, "erase --method uce --concept bag --preserve coat,BAG --model %s --text-encoder %s --out %s", unet,
                  clip, out), 1);
    CHECK_MSG(strstr(o, "preserve list contains the concept") != NULL, "%s", o);
    free(o);
    CHECK_INT(run(&o, "erase --method uce --concept bag --text-encoder %s --out %s", clip, out), 2);
    free(o);
    /* UCE, ESD-x, ESD-u and FMN write UNets generate reads */
    const char *unet_methods[] = {"uce --preserve coat", "esd-x --steps 2", "esd-u --steps 2", "fmn --steps 2"};
    double trainable[4] = {0};
    for (int i = 0; i < 4; i++) {
        snprintf(out, sizeof out, "%s/erased-%d.safetensors", scratch_dir(), i);
        CHECK_INT(run(&o, "erase --method %s --concept bag --model %s --text-encoder %s --out %s --json --quiet",
                      unet_methods[i], unet, clip, out), 0);
        j = last_json(o);
        trainable[i] = num(j, "trainable_params");
        CHECK_MSG(trainable[i] > 0, "%s: %s", unet_methods[i], o);
        cJSON_Delete(j), free(o);
        CHECK_INT(run(&o, "%s --model %s --text-encoder %s --out %s", gen, out, clip, png), 0);
        free(o);
    }
    CHECK_MSG(trainable[1] + trainable[2] == trainable[3], "esd-x %g + esd-u %g != all %g", trainable[1], trainable[2],
              trainable[3]);
    /* SLD: a guidance file, the weights untouched */
    snprintf(out, sizeof out, "%s/sld.json", scratch_dir());
    CHECK_INT(run(&o, "erase --method sld --sld-config strong --concept bag --model %s --text-encoder %s --out %s --quiet",
                  unet, clip, out), 0);
    free(o);
    CHECK_INT(run(&o, "%s --model %s --text-encoder %s --sld %s --out %s", gen, unet, clip, out, png), 0);
    free(o);
    FILE *f = fopen(out, "w");
    fputs("{\"format\": \"forget-sld\", \"concept\": \"bag\", \"sld_guidance_scale\": \"big\"}", f);
    fclose(f);
    CHECK_INT(run(&o, "%s --model %s --text-encoder %s --sld %s --out %s", gen, unet, clip, out, png), 1);
    CHECK_MSG(strstr(o, "sld_guidance_scale") != NULL, "%s", o);
    free(o);
}

/* forget experiment erasure on the same seconds-fast model: the reference row and three methods
 * on two classes, the summary and reports written, and a rerun resuming without a new run. */
TEST(cli_experiment_erasure_runs_and_resumes) {
    char clip[1024], unet[600], judge[600], dir[600], res[700], md[700], html[700];
    snprintf(clip, sizeof clip, "%s/tiny/model.safetensors", ref_dir());
    snprintf(unet, sizeof unet, "%s/exp-unet.safetensors", scratch_dir());
    snprintf(judge, sizeof judge, "%s/exp-judge.safetensors", scratch_dir());
    snprintf(dir, sizeof dir, "%s/erasure-exp", scratch_dir());
    snprintf(res, sizeof res, "%s/results.json", dir);
    snprintf(md, sizeof md, "%s/results.md", dir);
    snprintf(html, sizeof html, "%s/report.html", dir);
    char *o = NULL;
    CHECK_INT(run(&o, "train-diffusion --net unet-tiny --side 8 --steps 2 --batch 4 --limit 64 --quiet --text-encoder %s "
                      "--out %s", clip, unet), 0);
    free(o);
    CHECK_INT(run(&o, "train-judge --net resnet-8n --side 8 --epochs 1 --limit 128 --batch 32 --out %s --quiet", judge), 0);
    free(o);
    const char *args = "--methods escape,uce,sld --concepts bag,coat --per-class 2 --per-class-ctx 1 --steps 2 "
                       "--escape-steps 2 --quiet";
    CHECK_INT(run(&o, "experiment erasure --model %s --text-encoder %s --judge %s --clip %s --out %s %s", unet, clip, judge,
                  clip, dir, args), 0);
    free(o);
    size_t n = 0;
    char *txt = read_whole(res, &n);
    CHECK(txt != NULL);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(j, "runs"), *sum = cJSON_GetObjectItemCaseSensitive(j, "summary");
    CHECK_INT(cJSON_GetArraySize(runs), 2 * 4); /* none + three methods, two classes */
    CHECK_INT(cJSON_GetArraySize(sum), 4);
    const cJSON *s;
    cJSON_ArrayForEach(s, sum) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(s, "method");
        CHECK(cJSON_IsString(m));
        const char *keys[] = {"erased_acc", "others_acc", "fd", "clip_score", "trainable_params", "peak_mb", "seconds"};
        for (int k = 0; k < 7; k++) CHECK_MSG(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, keys[k])), "%s", keys[k]);
        if (strcmp(m->valuestring, "sld") == 0)
            CHECK(cJSON_GetObjectItemCaseSensitive(s, "trainable_params")->valuedouble == 0);
        if (strcmp(m->valuestring, "uce") == 0) CHECK(cJSON_GetObjectItemCaseSensitive(s, "peak_mb")->valuedouble > 1);
    }
    cJSON_Delete(j);
    txt = read_whole(md, &n);
    CHECK(txt && strstr(txt, "escape (reconstruction)") && strstr(txt, "With context words"));
    free(txt);
    txt = read_whole(html, &n);
    CHECK(txt && strstr(txt, "images/uce-") != NULL);
    free(txt);
    /* a rerun finds every run done */
    CHECK_INT(run(&o, "experiment erasure --model %s --text-encoder %s --judge %s --clip %s --out %s %s", unet, clip, judge,
                  clip, dir, args), 0);
    free(o);
    txt = read_whole(res, &n);
    j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "runs")), 8);
    cJSON_Delete(j);
}
