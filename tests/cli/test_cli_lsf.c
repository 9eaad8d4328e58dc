/* forget lsf end to end on a seconds-fast network: bad requests refused by name (a class of the
 * current task, of a future task, of the last task, an unknown class, a layer the network does not
 * have, an unknown code kind), a tiny run's JSON (one row per task, the requests honoured, H only
 * once something is deleted), its resume from DIR (same numbers), and forget experiment lsf's
 * results.json / results.md / report.html. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_run.h"
#include "test.h"

static cJSON *json_of(const char *o) {
    const char *p = strchr(o, '{');
    return p ? cJSON_Parse(p) : NULL;
}

TEST(cli_lsf_refuses_bad_requests) {
    static const struct {
        const char *args, *want;
    } cases[] = {
        {"--delete 3@1", "current task"},             /* class 3 (dress) is learnt in task 1 */
        {"--delete 9@2", "a future task"},            /* class 9 is learnt in task 4 */
        {"--delete 8", "last task"},                   /* nothing comes after task 4 */
        {"--delete unicorn", "not a class"},
        {"--delete 2@x", "not a count"},
        {"--code feature --layer 10", "no such layer"}, /* resnet-20 has 9 blocks */
        {"--code pixels", "input, feature or none"},
        {"--tasks 3", "does not divide"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *o;
        const int rc = run(&o, "lsf --epochs 1 --train-per-class 4 --batch 4 %s", cases[i].args);
        CHECK_MSG(rc != 0, "%s: exit %d", cases[i].args, rc);
        CHECK_MSG(strstr(o, cases[i].want) != NULL, "%s: %s", cases[i].args, o);
        free(o);
    }
}

TEST(cli_lsf_run_resume_and_experiment) {
    char dir[600], exp[700];
    snprintf(dir, sizeof dir, "%s/lsf-run", scratch_dir());
    snprintf(exp, sizeof exp, "%s/lsf-exp", scratch_dir());
    char *o;
    const char *args = "lsf --net resnet-8n --epochs 2 --train-per-class 12 --batch 8 --code input "
                       "--delete 0,trouser@3 --eval-per-class 20 --fisher-samples 16 --json --quiet";
    CHECK_INT(run(&o, "%s --out %s", args, dir), 0);
    cJSON *j = json_of(o);
    CHECK(j != NULL);
    if (j) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(j, "per_task");
        CHECK_INT(cJSON_GetArraySize(pt), 5);
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(pt, 0), "H")));
        const cJSON *t1 = cJSON_GetArrayItem(pt, 1), *t3 = cJSON_GetArrayItem(pt, 3);
        CHECK_INT(cJSON_GetObjectItemCaseSensitive(t1, "n_deleted_classes")->valueint, 1);
        CHECK_INT(cJSON_GetObjectItemCaseSensitive(t3, "n_deleted_classes")->valueint, 2);
        const double h = cJSON_GetObjectItemCaseSensitive(t3, "H")->valuedouble;
        CHECK(h >= 0 && h <= 1);
        const cJSON *rq = cJSON_GetObjectItemCaseSensitive(j, "deletion_requests");
        CHECK_INT(cJSON_GetArraySize(rq), 2);
        CHECK_INT(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rq, 1), "at_task")->valueint, 3);
    }
    free(o);
    char path[800];
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    CHECK(access(path, F_OK) == 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(access(path, F_OK) == 0);
    /* a rerun finds every task done and reports the same numbers */
    char *o2;
    CHECK_INT(run(&o2, "%s --out %s", args, dir), 0);
    cJSON *j2 = json_of(o2);
    if (j && j2) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "final"), *b = cJSON_GetObjectItemCaseSensitive(j2, "final");
        CHECK_NEAR(cJSON_GetObjectItemCaseSensitive(a, "seen_acc")->valuedouble,
                   cJSON_GetObjectItemCaseSensitive(b, "seen_acc")->valuedouble, 1e-9);
    }
    cJSON_Delete(j), cJSON_Delete(j2);
    free(o2);
    CHECK_INT(run(&o, "experiment lsf --net resnet-8n --epochs 1 --train-per-class 8 --batch 8 --seeds 2 "
                      "--codes none,feature --layer 1 --eval-per-class 10 --fisher-samples 8 --out %s", exp), 0);
    free(o);
    snprintf(path, sizeof path, "%s/results.json", exp);
    size_t len;
    char *txt = read_whole(path, &len);
    cJSON *r = txt ? cJSON_Parse(txt) : NULL;
    CHECK(r != NULL);
    if (r) {
        const cJSON *sum = cJSON_GetObjectItemCaseSensitive(r, "summary");
        CHECK_INT(cJSON_GetArraySize(sum), 2);
        const cJSON *f = cJSON_GetArrayItem(sum, 1);
        CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(f, "code")->valuestring, "feature") == 0);
        CHECK_INT(cJSON_GetObjectItemCaseSensitive(f, "runs")->valueint, 2);
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(f, "h_std"))); /* two seeds: a spread */
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "runs")), 4);
    }
    cJSON_Delete(r);
    free(txt);
    snprintf(path, sizeof path, "%s/report.html", exp);
    txt = read_whole(path, &len);
    CHECK(txt && strstr(txt, "<polygon") && strstr(txt, "Per-task curves"));
    free(txt);
}

/* Any CIFAR-100 binary a user gives: here a synthetic one (100 classes, random pixels) in 10 tasks
 * with the default requests (LSF's rule: the first 3 classes of each of the first 9 tasks). */
TEST(cli_lsf_cifar100_binary) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/c100", scratch_dir());
    mkdir(dir, 0700);
    const char *files[2] = {"train.bin", "test.bin"};
    const int per[2] = {12, 4};
    for (int f = 0; f < 2; f++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        FILE *fp = fopen(path, "wb");
        CHECK(fp != NULL);
        if (!fp) return;
        unsigned x = 12345;
        for (int c = 0; c < 100; c++)
            for (int i = 0; i < per[f]; i++) {
                fputc(c / 5, fp), fputc(c, fp);
                for (int k = 0; k < 3072; k++) x = x * 1103515245u + 12345u, fputc((int)(x >> 24), fp);
            }
        fclose(fp);
    }
    char *o;
    CHECK_INT(run(&o, "lsf --dataset cifar100:%s --tasks 10 --net resnet-8n --epochs 1 --train-per-class 8 --batch 8 "
                      "--eval-per-class 4 --fisher-samples 8 --code feature --layer 1 --json --quiet", dir), 0);
    cJSON *j = json_of(o);
    CHECK(j != NULL);
    if (j) {
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "per_task")), 10);
        const cJSON *rq = cJSON_GetObjectItemCaseSensitive(j, "deletion_requests");
        CHECK_INT(cJSON_GetArraySize(rq), 27);
        CHECK_INT(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rq, 26), "class")->valueint, 82);
    }
    cJSON_Delete(j);
    free(o);
    CHECK(run(&o, "lsf --dataset cifar100 --tasks 10") != 0);
    CHECK(strstr(o, "cifar100:/DIR") != NULL);
    free(o);
}
