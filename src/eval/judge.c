#include "eval/judge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void judge_input(const uint8_t *rgb, int n, int side, int in_ch, float *out) {
    const long hw = (long)side * side;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < in_ch; c++)
            for (long p = 0; p < hw; p++) {
                const uint8_t *px = rgb + ((size_t)i * hw + p) * 3;
                const float v = in_ch == 3 ? px[c] : (px[0] + px[1] + px[2]) / 3.0f;
                out[((size_t)i * in_ch + c) * hw + p] = v / 127.5f - 1.0f;
            }
}

int judge_load(Judge *j, const char *path, Err *e) {
    memset(j, 0, sizeof *j);
    j->test_accuracy = -1;
    if (resnet_load(&j->net, path, e)) return -1;
    SafeTensors st;
    if (st_open(&st, path, e)) {
        resnet_free(&j->net);
        return -1;
    }
    const char *names = st_meta(&st, "judge.classes"), *acc = st_meta(&st, "judge.test_accuracy");
    int rc = 0;
    if (!names || j->net.cfg.n_heads != 1) rc = err_set(e, "%s: not a judge (metadata judge.classes, one head)", path);
    if (!rc) {
        j->n_classes = j->net.cfg.head_classes[0];
        j->class_names = xcalloc((size_t)j->n_classes, sizeof(char *));
        const char *s = names;
        for (int k = 0; k < j->n_classes && !rc; k++) {
            const char *bar = strchr(s, '|');
            if (!bar && k < j->n_classes - 1) rc = err_set(e, "%s: judge.classes names fewer than %d classes", path, j->n_classes);
            else {
                const size_t len = bar ? (size_t)(bar - s) : strlen(s);
                j->class_names[k] = xmalloc(len + 1);
                memcpy(j->class_names[k], s, len), j->class_names[k][len] = 0;
                s = bar ? bar + 1 : s + len;
            }
        }
        if (acc) j->test_accuracy = strtof(acc, NULL);
    }
    st_close(&st);
    if (rc) judge_free(j);
    return rc;
}

void judge_free(Judge *j) {
    for (int k = 0; j->class_names && k < j->n_classes; k++) free(j->class_names[k]);
    free(j->class_names);
    resnet_free(&j->net);
    memset(j, 0, sizeof *j);
}

int judge_class(const Judge *j, const char *name) {
    for (int k = 0; k < j->n_classes; k++)
        if (strcmp(j->class_names[k], name) == 0) return k;
    return -1;
}

int judge_classify(const Judge *j, const uint8_t *rgb, int n, int side, int32_t *pred, float *conf, Err *e) {
    const ResNetConfig *c = &j->net.cfg;
    if (side != c->res) return err_set(e, "judge: images of %d px, the judge reads %d px", side, c->res);
    const int B = 64, K = j->n_classes;
    ResNetActs a;
    resnet_acts_alloc(&a, c, B);
    float *x = xcalloc((size_t)B * c->in_ch * side * side, sizeof(float)), *cos = xalloc_floats((size_t)B * K);
    for (int b0 = 0; b0 < n; b0 += B) {
        const int nb = n - b0 < B ? n - b0 : B;
        judge_input(rgb + (size_t)b0 * side * side * 3, nb, side, c->in_ch, x);
        resnet_forward(&j->net, &a, x, NULL, 0, 0, 0);
        resnet_head_forward(&j->net, 0, a.feat, B, cos);
        for (int i = 0; i < nb; i++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (cos[(size_t)i * K + k] > cos[(size_t)i * K + best]) best = k;
            pred[b0 + i] = best;
            if (conf) conf[b0 + i] = cos[(size_t)i * K + best];
        }
    }
    resnet_acts_free(&a);
    free(x), free(cos);
    return 0;
}
