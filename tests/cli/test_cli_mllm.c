/* The MLLM commands end to end on a tiny world: train-mllm stopped mid-stage and resumed gives the
 * same files byte for byte as an uninterrupted run; eval mllm's three tasks in JSON; chat with an
 * image; convert between the LLaVA layouts keeps the answers; and the errors a user meets (a model
 * that is no MLLM, a missing tokenizer, --set forget without people, an image that is not one). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_run.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "serve/fixture.h"
#include "test.h"

static cJSON *json_of(const char *o) {
    const char *p = strrchr(o, '\n');
    while (p && p > o && p[1] != '{') { /* the last JSON line */
        const char *q = p - 1;
        while (q > o && *q != '\n') q--;
        p = q > o ? q : NULL;
        if (p && p[1] == '{') break;
    }
    const char *start = p ? p + 1 : strchr(o, '{');
    return start ? cJSON_Parse(start) : NULL;
}

static void tower_of(char *tower, size_t cap) {
    char path[512];
    tiny_mllm(path, sizeof path); /* makes the tower file too */
    snprintf(tower, cap, "%s/tiny-mllm-tower.safetensors", scratch_dir());
}

#define TRAIN_ARGS                                                                                                     \
    "train-mllm --tower %s --lm lm-tiny --vocab 300 --lm-steps 6 --align-steps 6 --instruct-steps 6 "                  \
    "--finetune-steps 6 --batch 4 --people-a 4 --people-b 4 --general 8 --fmnist-per-class 2 --quiet"

TEST(cli_train_mllm_resumes_byte_identically) {
    char tower[512];
    tower_of(tower, sizeof tower);
    char *o = NULL;
    CHECK_INT(run(&o, TRAIN_ARGS " --out %s/mllm-a", tower, scratch_dir()), 0);
    free(o);
    CHECK_INT(run(&o, TRAIN_ARGS " --out %s/mllm-b --stop-after 3", tower, scratch_dir()), 0);
    CHECK_MSG(o && strstr(o, "stopped early"), "%s", o ? o : "");
    free(o);
    CHECK_INT(run(&o, TRAIN_ARGS " --out %s/mllm-b", tower, scratch_dir()), 0);
    free(o);
    CHECK_INT(run(&o, TRAIN_ARGS " --out %s/mllm-b --stop-after 2", tower, scratch_dir()), 0); /* stage 2 */
    free(o);
    CHECK_INT(run(&o, TRAIN_ARGS " --out %s/mllm-b", tower, scratch_dir()), 0);
    free(o);
    for (int s = 1; s <= 5; s++) {
        char a[600], b[600];
        if (s < 5) snprintf(a, sizeof a, "%s/mllm-a/stage%d.safetensors", scratch_dir(), s);
        else snprintf(a, sizeof a, "%s/mllm-a/tokenizer.model", scratch_dir());
        snprintf(b, sizeof b, "%s/mllm-b/%s", scratch_dir(), strrchr(a, '/') + 1);
        size_t la = 0, lb = 0;
        char *x = read_whole(a, &la), *y = read_whole(b, &lb);
        CHECK_MSG(x && y && la == lb && memcmp(x, y, la) == 0, "%s differs after a resume", strrchr(a, '/') + 1);
        free(x), free(y);
    }
}

TEST(cli_eval_chat_convert_mllm) {
    char path[512];
    tiny_mllm(path, sizeof path);
    char *o = NULL;
    for (int t = 0; t < 3; t++) {
        static const char *const tasks[] = {"choice", "generate", "cloze"};
        CHECK_INT(run(&o, "eval mllm --model %s --set a --task %s --limit 12 --json", path, tasks[t]), 0);
        cJSON *j = o ? json_of(o) : NULL;
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "n"), *sc = cJSON_GetObjectItemCaseSensitive(j, "score");
        CHECK_MSG(cJSON_IsNumber(n) && n->valuedouble > 0 && cJSON_IsNumber(sc) && sc->valuedouble >= 0 &&
                      sc->valuedouble <= 1, "%s", o ? o : "");
        cJSON_Delete(j);
        free(o);
    }
    /* choice on set A: 4 people x (8 image + 7 text questions) */
    CHECK_INT(run(&o, "eval mllm --model %s --set a --json", path), 0);
    cJSON *j = json_of(o);
    const cJSON *ni = cJSON_GetObjectItemCaseSensitive(j, "n_image"), *nt = cJSON_GetObjectItemCaseSensitive(j, "n_text");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(j, "score");
    CHECK(cJSON_IsNumber(ni) && (int)ni->valuedouble == 32 && cJSON_IsNumber(nt) && (int)nt->valuedouble == 28);
    const double before = cJSON_IsNumber(sc) ? sc->valuedouble : -1;
    cJSON_Delete(j);
    free(o);
    /* convert to llava-hf in F16 and back: the same choices */
    char dir[512], hf[600], tok[600];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    snprintf(hf, sizeof hf, "%s/hf.safetensors", dir);
    snprintf(tok, sizeof tok, "%s/tokenizer.model", dir);
    CHECK_INT(run(&o, "convert --model %s --out %s --mllm-layout llava-hf --dtype f16", path, hf), 0);
    free(o);
    CHECK_INT(run(&o, "eval mllm --model %s --tokenizer %s --set a --json", hf, tok), 0);
    j = json_of(o);
    sc = cJSON_GetObjectItemCaseSensitive(j, "score");
    CHECK_MSG(cJSON_IsNumber(sc) && fabs(sc->valuedouble - before) < 0.05, "%s", o);
    cJSON_Delete(j);
    free(o);
    /* info */
    CHECK_INT(run(&o, "info --model %s --json", hf), 0);
    CHECK_MSG(o && strstr(o, "\"kind\":\"mllm\"") && strstr(o, "\"layout\":\"llava-hf\"") && strstr(o, "\"image_tokens\":64"),
              "%s", o ? o : "");
    free(o);
    CHECK_INT(run(&o, "info --model tests/ref/lm-gqa.safetensors"), 0);
    CHECK_MSG(o && strstr(o, "4 heads (2 K/V)"), "%s", o ? o : "");
    free(o);
    /* transcripts */
    CHECK_INT(run(&o, "eval mllm --model %s --set a --limit 4 --transcripts 3 --out %s/tr --quiet", path, dir), 0);
    free(o);
    char trp[700];
    snprintf(trp, sizeof trp, "%s/tr/transcripts.html", dir);
    size_t tl = 0;
    char *tr = read_whole(trp, &tl);
    CHECK(tr && strstr(tr, "<table>") && (strstr(tr, "<img") || strstr(tr, "(text only)")));
    free(tr);
    /* chat about an image */
    char png[600];
    snprintf(png, sizeof png, "%s/chat.png", dir);
    Image8 im = {.w = 20, .h = 24, .channels = 3};
    im.px = xcalloc(20 * 24 * 3, 1);
    for (int i = 0; i < 20 * 24 * 3; i++) im.px[i] = (uint8_t)(i * 13);
    Err e = {{0}};
    CHECK(image_save_png(&im, png, &e) == 0);
    free(im.px);
    CHECK_INT(run(&o, "chat --model %s --image %s --prompt 'Who is this?' --max-tokens 6 --json", path, png), 0);
    j = json_of(o);
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(j, "answer"), *tk = cJSON_GetObjectItemCaseSensitive(j, "tokens");
    CHECK_MSG(cJSON_IsString(ans) && cJSON_IsNumber(tk) && tk->valuedouble >= 1 && tk->valuedouble <= 6, "%s", o);
    cJSON_Delete(j);
    free(o);
    /* errors */
    static const struct {
        const char *fmt, *want;
    } bad[] = {
        {"chat --model tests/ref/lm-tiny.safetensors --prompt hi", "not a LLaVA-shaped checkpoint"},
        {"chat --model %s --tokenizer /nonexistent.model --prompt hi", "/nonexistent.model"},
        {"chat --model %s --image tests/ref/lm-tiny.safetensors --prompt hi", "lm-tiny.safetensors"},
        {"chat --model %s --prompt ''", "--prompt is empty"},
        {"eval mllm --model %s --set forget", "--forget-people"},
        {"eval mllm --model %s --set forget --forget-people 0,99", "0..7"},
        {"eval mllm --model tests/ref/lm-tiny.safetensors --set a", "world.people_a"},
    };
    char *longp = xcalloc(3001, 1); /* an over-long prompt: 600 words for a context of 128 */
    for (int i = 0; i < 600; i++) strcat(longp, "word ");
    CHECK(run(&o, "chat --model %s --prompt '%s'", path, longp) != 0);
    CHECK_MSG(o && strstr(o, "no room for an answer"), "%s", o ? o : "");
    free(o), free(longp);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, bad[i].fmt, path);
        const int rc = run(&o, "%s", cmd);
        CHECK_MSG(rc != 0 && o && strstr(o, bad[i].want), "%s: exit %d: %s", cmd, rc, o ? o : "");
        free(o);
    }
}

/* Stage 4 with LoRA: the adapters come out under PEFT's names, the merged LM moved, the projector
 * (not adapted) did not. */
static float *tensor_of(const char *path, const char *name, long *n) {
    SafeTensors st;
    Err e = {{0}};
    if (st_open(&st, path, &e)) return NULL;
    const StTensor *t = st_find(&st, name);
    float *v = NULL;
    if (t) {
        *n = (long)st_numel(t);
        v = xalloc_floats((size_t)*n);
        st_to_f32(t, v, &e);
    }
    st_close(&st);
    return v;
}

TEST(cli_train_mllm_lora_fine_tune) {
    char tower[512];
    tower_of(tower, sizeof tower);
    char *o = NULL;
    CHECK_INT(run(&o, TRAIN_ARGS " --out %s/mllm-lora --lora-rank 4 --lora-targets q,v,down", tower, scratch_dir()), 0);
    free(o);
    char s3[600], s4[600], lp[600];
    snprintf(s3, sizeof s3, "%s/mllm-lora/stage3.safetensors", scratch_dir());
    snprintf(s4, sizeof s4, "%s/mllm-lora/stage4.safetensors", scratch_dir());
    snprintf(lp, sizeof lp, "%s/mllm-lora/stage4-lora.safetensors", scratch_dir());
    long n3 = 0, n4 = 0, nl = 0;
    float *a = tensor_of(s3, "model.mm_projector.0.weight", &n3), *b = tensor_of(s4, "model.mm_projector.0.weight", &n4);
    CHECK(a && b && n3 == n4 && memcmp(a, b, sizeof(float) * (size_t)n3) == 0);
    free(a), free(b);
    a = tensor_of(s3, "model.layers.1.self_attn.v_proj.weight", &n3), b = tensor_of(s4, "model.layers.1.self_attn.v_proj.weight", &n4);
    CHECK(a && b && n3 == n4 && memcmp(a, b, sizeof(float) * (size_t)n3) != 0);
    free(a), free(b);
    a = tensor_of(s3, "model.layers.1.self_attn.k_proj.weight", &n3), b = tensor_of(s4, "model.layers.1.self_attn.k_proj.weight", &n4);
    CHECK(a && b && n3 == n4 && memcmp(a, b, sizeof(float) * (size_t)n3) == 0); /* not a target */
    free(a), free(b);
    a = tensor_of(lp, "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight", &nl);
    CHECK(a && nl == 4 * 64);
    free(a);
}
