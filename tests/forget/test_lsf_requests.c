/* Deletion requests against a task split: ids, names, @TASK, the default rule (LSF's first 30 %
 * of each task but the last), and every refusal; the codes' construction. */
#include <stdlib.h>
#include <string.h>

#include "forget/lsf.h"
#include "forget/lsf_data.h"
#include "test.h"

static LsfSplit split_of(int n_classes, int tasks, char **names) {
    LsfSplit s = {.n_classes = n_classes, .tasks = tasks, .class_names = names};
    for (int t = 0; t < tasks; t++) s.task_first[t] = t * (n_classes / tasks), s.task_size[t] = n_classes / tasks;
    return s;
}

TEST(lsf_requests_parse_and_refuse) {
    char *names[6] = {"cat", "dog", "fish", "bird", "ant", "bee"};
    const LsfSplit s = split_of(6, 3, names);
    LsfDelete *d;
    int n;
    Err e = {0};
    CHECK(lsf_parse_deletes("0,fish@2,dog", &s, &d, &n, &e) == 0);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_INT(d[0].cls, 0);
        CHECK_INT(d[0].at, 1);
        CHECK_INT(d[1].cls, 2);
        CHECK_INT(d[1].at, 2);
        CHECK_INT(d[2].cls, 1);
        CHECK_INT(d[2].at, 1);
    }
    free(d);
    static const struct {
        const char *spec, *want;
    } bad[] = {{"2@1", "current"}, {"0@0", "current"}, {"4@1", "a future"}, {"4", "last task"},
               {"zebra", "not a class"}, {"6", "not a class"}, {"1@", "not a count"}, {"0@9", "last task"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        e.msg[0] = 0;
        CHECK_MSG(lsf_parse_deletes(bad[i].spec, &s, &d, &n, &e) != 0, "%s accepted", bad[i].spec);
        CHECK_MSG(strstr(e.msg, bad[i].want) != NULL, "%s: %s", bad[i].spec, e.msg);
    }
    CHECK_INT(lsf_task_of(&s, 5), 2);
    CHECK_INT(lsf_task_of(&s, 6), -1);
}

TEST(lsf_default_requests_and_codes) {
    char *names[100];
    for (int i = 0; i < 100; i++) names[i] = "c";
    LsfSplit s = split_of(100, 5, names); /* LSF's CIFAR-100 5-task config: 0-5, 20-25, 40-45, 60-65 */
    LsfDelete *d;
    int n = lsf_default_deletes(&s, &d);
    CHECK_INT(n, 24);
    CHECK_INT(d[0].cls, 0);
        CHECK_INT(d[5].cls, 5);
        CHECK_INT(d[6].cls, 20);
        CHECK_INT(d[23].cls, 65);
    CHECK_INT(d[23].at, 4);
    free(d);
    s = split_of(10, 5, names); /* two classes a task: one each of the first four */
    n = lsf_default_deletes(&s, &d);
    CHECK_INT(n, 4);
    CHECK_INT(d[3].cls, 6);
    free(d);
    /* input codes: 7 x 7 blocks of one value each in the data range; a class's code is fixed by the seed */
    float a[28 * 28], b[28 * 28], c[28 * 28];
    lsf_input_code(a, 1, 28, 5, 3), lsf_input_code(b, 1, 28, 5, 3), lsf_input_code(c, 1, 28, 5, 4);
    CHECK_CLOSE(a, b, 28 * 28, 0, 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    CHECK(a[0] == a[3] && a[0] == a[3 * 28 + 3]);
    for (int i = 0; i < 28 * 28; i++) CHECK(a[i] >= lsf_pixel(0) && a[i] <= lsf_pixel(255));
    /* feature codes are standardised per channel */
    float f[2 * 8 * 8];
    lsf_feature_code(f, 2, 8, 8, 5, 1);
    double m = 0, v = 0;
    for (int i = 0; i < 64; i++) m += f[64 + i];
    m /= 64;
    for (int i = 0; i < 64; i++) v += (f[64 + i] - m) * (f[64 + i] - m);
    CHECK_NEAR(m, 0, 1e-5);
    CHECK_NEAR(v / 64, 1, 1e-3);
}
