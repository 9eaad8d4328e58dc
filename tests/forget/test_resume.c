/* The one resume helper: no file starts afresh, the same experiment resumes, another one is
 * refused (or restarted where the experiment allows it), a damaged file is an error naming it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forget/resume.h"
#include "test.h"

static int same_model(const cJSON *root, const void *ctx) {
    const char *m = resume_str(root, "model");
    return m && strcmp(m, ctx) == 0;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

TEST(resume_load_validates_the_results_file) {
    char path[] = "/tmp/forget-resume-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    cJSON *root = (cJSON *)1;
    Err e = {{0}};
    CHECK_INT(resume_load(path, "runs", same_model, "m1", 0, &root, &e), 0); /* none: fresh */
    CHECK(root == NULL);
    write_text(path, "{\"model\": \"m1\", \"runs\": [{\"seed\": 1}]}");
    CHECK_INT(resume_load(path, "runs", same_model, "m1", 0, &root, &e), 0);
    CHECK(root && cJSON_GetArraySize(cJSON_GetObjectItem(root, "runs")) == 1);
    CHECK_NEAR(resume_num(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "runs"), 0), "seed"), 1, 0);
    CHECK(isnan(resume_num(root, "absent")) && resume_str(root, "runs") == NULL);
    cJSON_Delete(root);
    CHECK(resume_load(path, "runs", same_model, "m2", 0, &root, &e) != 0); /* another experiment */
    CHECK_MSG(strstr(e.msg, path) && strstr(e.msg, "another experiment"), "%s", e.msg);
    CHECK_INT(resume_load(path, "runs", same_model, "m2", 1, &root, &e), 0); /* ... restarted */
    CHECK(root == NULL);
    const char *damaged[] = {"{\"model\": \"m1\", \"runs\": [", "{\"model\": \"m1\", \"runs\": 3}", "[1, 2]",
                             "{\"model\": \"m1\", \"runs\": []} trailing"};
    for (int i = 0; i < 4; i++) {
        write_text(path, damaged[i]);
        CHECK_MSG(resume_load(path, "runs", same_model, "m1", 1, &root, &e) != 0, "accepted: %s", damaged[i]);
        CHECK_MSG(strstr(e.msg, path) && strstr(e.msg, "not the results"), "%s", e.msg);
    }
    unlink(path);
}
