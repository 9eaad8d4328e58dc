/* The PULSE protocol end to end on the tiny world: a run stopped in the middle of its sequential
 * requests and rerun gives the same numbers as an uninterrupted run (it resumes from the model of
 * the step it reached); the summary has the fields the issue names; bad settings are refused. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forget/llm/pulse.h"
#include "io/json_file.h"
#include "serve/fixture.h"
#include "test.h"

static void opts(PulseOpts *o, const char *model, const char *out) {
    pulse_defaults(o);
    o->model = model, o->out = out, o->methods = "ga", o->quiet = 1;
    o->forget_count = 2, o->val_count = 1, o->chunks = 2, o->lrs = "3e-3", o->max_epochs = 1, o->batch = 4;
    o->lora_rank = 4, o->lora_alpha = 8, o->retain_limit = 6, o->general_limit = 6, o->target = 0.9;
}

/* "key" -> the run's forget/retain 4-choice accuracies, as text for comparison. */
static char *numbers(const char *dir) {
    char *path = xasprintf("%s/results.json", dir);
    cJSON *j = json_read_file(path);
    free(path);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, "runs")) {
        const cJSON *fo = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "forget"), "choice");
        const cJSON *re = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "retain"), "generate");
        fprintf(f, "%s %.9g %.9g\n", cJSON_GetStringValue(cJSON_GetObjectItem(r, "key")),
                cJSON_GetNumberValue(cJSON_GetObjectItem(fo, "acc")), cJSON_GetNumberValue(cJSON_GetObjectItem(re, "acc")));
    }
    fclose(f);
    cJSON_Delete(j);
    return buf;
}

TEST(pulse_resumes_a_sequential_run_at_its_step) {
    char model[512];
    tiny_mllm(model, sizeof model);
    char *a = xasprintf("%s/pulse-a", scratch_dir()), *b = xasprintf("%s/pulse-b", scratch_dir());
    PulseOpts o;
    Err e = {0};
    opts(&o, model, a);
    CHECK_MSG(pulse_run(&o, &e) == 0, "%s", e.msg);
    opts(&o, model, b);
    o.stop_after_ops = 4; /* two originals, the batch run, the first sequential request */
    CHECK_INT(pulse_run(&o, &e), 1);
    char *mp = xasprintf("%s/models/s1-ga-pretrained-seq1.safetensors", b);
    CHECK_MSG(access(mp, F_OK) == 0, "%s: the step's model is kept for the resume", mp);
    o.stop_after_ops = 0;
    CHECK_MSG(pulse_run(&o, &e) == 0, "%s", e.msg);
    CHECK_MSG(access(mp, F_OK) != 0, "%s: removed once the next step is done", mp);
    char *na = numbers(a), *nb = numbers(b);
    CHECK_MSG(strcmp(na, nb) == 0, "uninterrupted:\n%s\nresumed:\n%s", na, nb);
    CHECK(strstr(na, "s1/ga/sequential/pretrained/2") != NULL);
    /* the summary's fields */
    char *path = xasprintf("%s/results.json", b);
    cJSON *j = json_read_file(path);
    const cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "summary"), 0);
    static const char *const F[] = {"method", "scenario", "knowledge", "step", "forget_acc_image", "forget_acc_text",
                                    "retain_acc", "general_acc"};
    for (int k = 0; k < 8; k++) CHECK_MSG(cJSON_GetObjectItem(s0, F[k]) != NULL, "summary lacks %s", F[k]);
    cJSON_Delete(j);
    char *md = xasprintf("%s/results.md", b), *html = xasprintf("%s/report.html", b);
    CHECK(access(md, F_OK) == 0 && access(html, F_OK) == 0);
    /* bad settings */
    opts(&o, model, b);
    o.chunks = 3;
    CHECK(pulse_run(&o, &e) != 0);
    CHECK_MSG(strstr(e.msg, "--chunks 3") != NULL, "%s", e.msg);
    char *c = xasprintf("%s/pulse-c", scratch_dir());
    opts(&o, model, c);
    o.forget_count = 3, o.chunks = 2; /* 3 + 1 validation people leave set A no retain person */
    CHECK(pulse_run(&o, &e) != 0);
    CHECK_MSG(strstr(e.msg, "too few") != NULL, "%s", e.msg);
    free(na), free(nb), free(mp), free(a), free(b), free(path), free(md), free(html), free(c);
}
