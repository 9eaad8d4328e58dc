/* forget generate --weighted, forget attack, forget redteam (with the defence) and forget
 * experiment redteam end to end on a seconds-fast model (unet-tiny at 8 px on the tiny reference
 * CLIP, a judge of one epoch, an attacker's CLIP of another seed): query accounting (the
 * in-process server's count equals the attack's search and evaluation images; the budget is
 * spent exactly and never passed), the errors a user can reach, and the reports written. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_run.h"
#include "serve/server.h"
#include "test.h"

static cJSON *line_json(const char *o, const char *start) {
    const char *line = strstr(o, start);
    return cJSON_Parse(line ? line : o);
}

static double num(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static char clip[1024], unet[600], judge[600], ext[600];

static void fixture(void) {
    snprintf(clip, sizeof clip, "%s/tiny/model.safetensors", ref_dir());
    snprintf(unet, sizeof unet, "%s/atk-unet.safetensors", scratch_dir());
    snprintf(judge, sizeof judge, "%s/atk-judge.safetensors", scratch_dir());
    snprintf(ext, sizeof ext, "%s/atk-ext.safetensors", scratch_dir());
    char *o = NULL;
    CHECK_INT(run(&o, "train-diffusion --net unet-tiny --side 8 --steps 2 --batch 4 --limit 64 --quiet --text-encoder %s "
                      "--out %s", clip, unet), 0);
    free(o);
    CHECK_INT(run(&o, "train-judge --net resnet-8n --side 8 --epochs 1 --limit 128 --batch 32 --out %s --quiet", judge), 0);
    free(o);
    CHECK_INT(run(&o, "init --config tiny --seed 9 --out %s", ext), 0);
    free(o);
}

static int same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = read_whole(a, &na), *y = read_whole(b, &nb);
    const int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

static const char *SMALL = "--steps 2 --eval 2 --vocab-max 300 --rab-gens 2 --ud-timesteps 1 --ud-iters 1 --ud-pool 64 --ci-steps 2";

TEST(cli_attack_weighted_prompts_budgets_and_errors) {
    fixture();
    char d1[600], d2[600], f1[700], f2[700], png[600];
    snprintf(d1, sizeof d1, "%s/w-plain", scratch_dir());
    snprintf(d2, sizeof d2, "%s/w-half", scratch_dir());
    snprintf(png, sizeof png, "%s/w.png", scratch_dir());
    char *o = NULL;
    CHECK_INT(run(&o, "generate --model %s --text-encoder %s --prompt \"a photo of a bag.\" --n 1 --steps 2 --out %s "
                      "--out-dir %s --quiet", unet, clip, png, d1), 0);
    free(o);
    CHECK_INT(run(&o, "generate --model %s --text-encoder %s --weighted \"0.5:a photo of a bag.\" \"0.5:a photo of a bag.\" "
                      "--n 1 --steps 2 --out %s --out-dir %s --quiet", unet, clip, png, d2), 0);
    free(o);
    snprintf(f1, sizeof f1, "%s/0000.png", d1), snprintf(f2, sizeof f2, "%s/0000.png", d2);
    CHECK_MSG(same_file(f1, f2), "two halves of a prompt must draw the prompt's image");
    CHECK_INT(run(&o, "generate --model %s --text-encoder %s --weighted \"half:a bag\" --out %s", unet, clip, png), 2);
    CHECK_MSG(strstr(o, "WEIGHT:TEXT") != NULL, "%s", o);
    free(o);
    /* neighbours spends the budget exactly (a multiple of --per-query) and never passes it; the
     * server counts every image */
    const long budgets[2] = {10, 9}, expect[2] = {10, 8};
    for (int i = 0; i < 2; i++) {
        CHECK_INT(run(&o, "attack --method neighbours --concept bag --model %s --text-encoder %s --judge %s --external %s "
                          "--budget %ld --per-query 2 %s --json --quiet", unet, clip, judge, ext, budgets[i], SMALL), 0);
        cJSON *j = line_json(o, "{\"attack\"");
        CHECK_MSG(num(j, "queries") == expect[i], "budget %ld: %s", budgets[i], o);
        CHECK_MSG(num(j, "server_images") == num(j, "queries") + num(j, "queries_eval"), "%s", o);
        CHECK(num(j, "asr") >= 0 && num(j, "asr") <= 1);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "reconstruction")));
        cJSON_Delete(j), free(o);
    }
    /* through a remote API alone (a server this test runs): the same accounting */
    ServerOpts so = {.diffusion = unet, .text_encoder = clip, .max_gen_images = 64};
    Err e = {{0}};
    BbServer *srv = bb_server_start(&so, &e);
    CHECK_MSG(srv != NULL, "%s", e.msg);
    if (srv) {
        CHECK_INT(run(&o, "attack --method neighbours --concept bag --api http://127.0.0.1:%d --judge %s --external %s "
                          "--budget 6 --per-query 3 %s --json --quiet", bb_server_port(srv), judge, ext, SMALL), 0);
        cJSON *j = line_json(o, "{\"attack\"");
        CHECK_MSG(num(j, "queries") == 6 && num(j, "server_images") == 6 + num(j, "queries_eval"), "%s", o);
        cJSON_Delete(j), free(o);
        bb_server_stop(srv);
    }
    /* every other attack runs and reports */
    const char *others[] = {"none", "ring-a-bell", "unlearndiffatk", "concept-inversion"};
    for (int i = 0; i < 4; i++) {
        CHECK_INT(run(&o, "attack --method %s --concept bag --model %s --text-encoder %s --judge %s --external %s "
                          "--budget 4 %s --json --quiet", others[i], unet, clip, judge, ext, SMALL), 0);
        cJSON *j = line_json(o, "{\"attack\"");
        CHECK_MSG(num(j, "queries") >= 0 && num(j, "queries") <= 4 && num(j, "queries_eval") == 4, "%s: %s", others[i], o);
        cJSON_Delete(j), free(o);
    }
    /* the errors a user can reach */
    CHECK_INT(run(&o, "attack --method unlearndiffatk --concept bag --api http://127.0.0.1:1 --judge %s", judge), 1);
    free(o);
    CHECK_INT(run(&o, "attack --method none --concept hat --model %s --text-encoder %s --judge %s", unet, clip, judge), 1);
    CHECK_MSG(strstr(o, "no class \"hat\"") != NULL, "%s", o);
    free(o);
    CHECK_INT(run(&o, "attack --method neighbours --concept bag --model %s --text-encoder %s --judge %s", unet, clip, judge), 1);
    CHECK_MSG(strstr(o, "--external") != NULL, "%s", o);
    free(o);
    CHECK_INT(run(&o, "attack --method none --concept bag --judge %s", judge), 2);
    free(o);
}

TEST(cli_redteam_defends_and_experiment_resumes) {
    fixture();
    char dir[600], res[700], html[700];
    snprintf(dir, sizeof dir, "%s/redteam", scratch_dir());
    snprintf(res, sizeof res, "%s/results.json", dir);
    snprintf(html, sizeof html, "%s/report.html", dir);
    char *o = NULL;
    CHECK_INT(run(&o, "redteam --model %s --text-encoder %s --concept bag --judge %s --external %s --out %s --defend 1 "
                      "--escape-steps 2 --budget 4 --kept-per-class 2 %s --json --quiet", unet, clip, judge, ext, dir, SMALL), 0);
    cJSON *j = line_json(o, "{\"runs\"");
    free(o);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "runs")), 2 * 5);
    const cJSON *er = cJSON_GetObjectItemCaseSensitive(j, "erasures"), *x;
    CHECK_INT(cJSON_GetArraySize(er), 2);
    cJSON_ArrayForEach(x, er) CHECK(num(x, "kept_acc") >= 0);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "defence")), 1);
    cJSON_Delete(j);
    size_t n = 0;
    char *t = read_whole(html, &n);
    CHECK(t && strstr(t, "escape+defence") && strstr(t, "images/escape-neighbours.png"));
    free(t);
    /* erase --adversarial reports its rounds */
    char esc[600];
    snprintf(esc, sizeof esc, "%s/adv.safetensors", scratch_dir());
    CHECK_INT(run(&o, "erase --method escape --concept bag --preserve coat --steps 2 --text-encoder %s --model %s --out %s "
                      "--adversarial 1 --judge %s --external %s --attack-budget 2 --attack-eval 1 --attack-steps 2 --attack-vocab-max 300 --json "
                      "--quiet", clip, unet, esc, judge, ext), 0);
    j = line_json(o, "{\"method\"");
    CHECK_MSG(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "adversarial_rounds")) == 1, "%s", o);
    cJSON_Delete(j), free(o);
    CHECK_INT(run(&o, "erase --method escape --concept bag --text-encoder %s --out %s --adversarial 1", clip, esc), 1);
    CHECK_MSG(strstr(o, "--adversarial needs") != NULL, "%s", o);
    free(o);
    /* the experiment: two erasure rows on one class, then a rerun that runs nothing */
    snprintf(dir, sizeof dir, "%s/redteam-exp", scratch_dir());
    snprintf(res, sizeof res, "%s/results.json", dir);
    const char *args = "--concepts bag --methods none,uce --quiet";
    CHECK_INT(run(&o, "experiment redteam --model %s --text-encoder %s --judge %s --external %s --out %s %s --redteam "
                      "\"--budget 2 --attacks none,neighbours %s\"", unet, clip, judge, ext, dir, args, SMALL), 0);
    free(o);
    t = read_whole(res, &n);
    j = t ? cJSON_Parse(t) : NULL;
    free(t);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "summary")), 2 * 2);
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(j, "summary")) {
        CHECK(num(x, "asr") >= 0 && num(x, "asr_before") >= 0);
        CHECK(cJSON_GetObjectItemCaseSensitive(x, "queries_to_success") != NULL);
    }
    cJSON_Delete(j);
    char uce[700];
    snprintf(uce, sizeof uce, "%s/bag/uce/erasure.safetensors", dir);
    remove(uce); /* a rerun must not need it: the pair is done */
    CHECK_INT(run(&o, "experiment redteam --model %s --text-encoder %s --judge %s --external %s --out %s %s --redteam "
                      "\"--budget 2 --attacks none,neighbours %s\"", unet, clip, judge, ext, dir, args, SMALL), 0);
    free(o);
    t = read_whole(res, &n);
    j = t ? cJSON_Parse(t) : NULL;
    free(t);
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "runs")), 2 * 2);
    cJSON_Delete(j);
}
