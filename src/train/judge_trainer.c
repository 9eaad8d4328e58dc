#include "train/judge_trainer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/rng.h"
#include "core/threads.h"
#include "eval/judge.h"
#include "io/dataset.h"
#include "models/resnet.h"
#include "train/trainer.h"

void judge_train_defaults(JudgeTrainOpts *o) {
    *o = (JudgeTrainOpts){.data = "fmnist:train", .test = "fmnist:test", .net = "resnet-20", .out = "judge.safetensors",
                          .side = 32, .in_ch = 3, .batch = 128, .epochs = 4, .shift = 2, .lr = 0.1, .seed = 1};
}

static const float SCALE = 16.0f;

typedef struct {
    const JudgeTrainOpts *o;
    Dataset d;
    ResNet m;
    ResNetGrads g;
    ResNetActs a;
    int *perm, perm_epoch;
    long spe;
    float *x, *rgb, *cos, *probs, *dlog, *df;
    int32_t *y;
} Run;

/* n images of d at side px, [-1, 1] CHW with in_ch channels (grey: the mean of RGB). */
static void pixels(const Dataset *d, const int *idx, int n, int side, int in_ch, float *rgb, float *out, Rng *aug,
                   int shift) {
    dataset_pixels(d, idx, n, side, &PIXELS_HALF, rgb, aug, shift);
    const long hw = (long)side * side;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < in_ch; c++)
            for (long p = 0; p < hw; p++) {
                const float *px = rgb + (size_t)i * 3 * hw + p;
                out[((size_t)i * in_ch + c) * hw + p] = in_ch == 3 ? px[c * hw] : (px[0] + px[hw] + px[2 * hw]) / 3;
            }
}

static int judge_step(void *user, long step, float *loss, Err *e) {
    (void)e;
    Run *r = user;
    const JudgeTrainOpts *o = r->o;
    const int B = o->batch, K = r->d.n_classes, F = resnet_feature_dim(&r->m.cfg);
    const int epoch = (int)(step / r->spe);
    if (epoch != r->perm_epoch) train_epoch_order(r->perm, r->d.n, o->seed, r->perm_epoch = epoch);
    int *idx = r->perm + (step % r->spe) * B;
    Rng rng;
    rng_seed(&rng, train_mix(o->seed, (uint64_t)step));
    pixels(&r->d, idx, B, o->side, o->in_ch, r->rgb, r->x, &rng, o->shift);
    for (int i = 0; i < B; i++) r->y[i] = r->d.labels[idx[i]];
    resnet_forward(&r->m, &r->a, r->x, NULL, 0, 0, 1);
    resnet_head_forward(&r->m, 0, r->a.feat, B, r->cos);
    for (long i = 0; i < (long)B * K; i++) r->cos[i] *= SCALE;
    *loss = cross_entropy_forward(r->probs, r->cos, r->y, B, K);
    memset(r->dlog, 0, sizeof(float) * (size_t)B * K);
    cross_entropy_backward(r->dlog, r->probs, r->y, B, K, 1.0f);
    for (long i = 0; i < (long)B * K; i++) r->dlog[i] *= SCALE;
    memset(r->df, 0, sizeof(float) * (size_t)B * F);
    resnet_head_backward(&r->m, 0, r->a.feat, B, r->dlog, r->df, &r->g.p);
    resnet_backward(&r->m, &r->a, r->df, &r->g.p, NULL);
    return 0;
}

/* Accuracy of the trained net on the test split, through the judge's own reading of images. */
static int test_accuracy(const Run *r, const Judge *j, double *acc, Err *e) {
    Dataset t;
    if (dataset_load_named(&t, r->o->test, r->o->data_dir, e)) return -1;
    const int side = r->o->side, B = 256;
    uint8_t *rgb = xmalloc((size_t)B * side * side * 3);
    int32_t *pred = xmalloc(sizeof(int32_t) * B);
    int *idx = xmalloc(sizeof(int) * B), rc = 0;
    long right = 0;
    for (int b0 = 0; b0 < t.n && !rc; b0 += B) {
        const int nb = t.n - b0 < B ? t.n - b0 : B;
        for (int i = 0; i < nb; i++) idx[i] = b0 + i;
        dataset_rgb8(&t, idx, nb, side, rgb); /* as 8-bit RGB, the form generated images arrive in */
        rc = judge_classify(j, rgb, nb, side, pred, NULL, e);
        for (int i = 0; i < nb && !rc; i++) right += pred[i] == t.labels[b0 + i];
    }
    *acc = t.n ? (double)right / t.n : 0;
    free(rgb), free(pred), free(idx);
    dataset_free(&t);
    return rc;
}

int judge_train(const JudgeTrainOpts *o, JudgeTrainResult *res, Err *e) {
    memset(res, 0, sizeof *res);
    Run r = {.o = o, .perm_epoch = -1};
    if (dataset_load_named(&r.d, o->data, o->data_dir, e)) return -1;
    if (o->limit > 0 && o->limit < r.d.n) r.d.n = o->limit;
    ResNetConfig c = {.in_ch = o->in_ch, .res = o->side, .n_heads = 1, .head_classes = {r.d.n_classes}, .code_layer = -1};
    if (resnet_config_named(&c, o->net, e) || resnet_config_check(&c, e)) {
        dataset_free(&r.d);
        return -1;
    }
    const int B = o->batch, K = r.d.n_classes;
    r.spe = r.d.n / B;
    if (r.spe < 1) {
        dataset_free(&r.d);
        return err_set(e, "train-judge: %d images do not fill a batch of %d", r.d.n, B);
    }
    resnet_alloc(&r.m, &c);
    resnet_init(&r.m, o->seed);
    resnet_grads_alloc(&r.g, &c);
    resnet_acts_alloc(&r.a, &c, B);
    r.perm = xmalloc(sizeof(int) * (size_t)r.d.n);
    r.x = xalloc_floats((size_t)B * o->in_ch * o->side * o->side), r.rgb = xalloc_floats((size_t)B * 3 * o->side * o->side);
    r.cos = xalloc_floats((size_t)B * K), r.probs = xalloc_floats((size_t)B * K), r.dlog = xalloc_floats((size_t)B * K);
    r.df = xalloc_floats((size_t)B * resnet_feature_dim(&c));
    r.y = xmalloc(sizeof(int32_t) * (size_t)B);
    TrainSpec spec = {.label = "train-judge", .total_steps = r.spe * o->epochs, .lr = o->lr, .warmup_frac = 0.02,
                      .cosine = 1, .wd = 5e-4, .sgd = 1, .momentum = 0.9f, .params = r.m.arena, .grads = r.g.arena,
                      .n_params = r.m.n_params, .table = &r.m.table, .step = judge_step, .user = &r,
                      .samples_per_step = B, .unit = "img", .quiet = o->quiet};
    TrainState st = {0};
    const double t0 = now_seconds();
    int rc = train_run(&spec, &st, e);
    res->steps = st.step, res->images_per_s = st.samples_per_s;
    char *names = NULL;
    if (!rc) { /* the names the judge file keeps */
        size_t len = 1;
        for (int k = 0; k < K; k++) len += strlen(r.d.class_names[k]) + 1;
        names = xcalloc(len, 1);
        for (int k = 0; k < K; k++) strcat(strcat(names, k ? "|" : ""), r.d.class_names[k]);
        const char *meta[] = {"judge.classes", names, "judge.data", o->data};
        rc = resnet_save(&r.m, o->out, meta, 2, e);
    }
    Judge j;
    if (!rc) rc = judge_load(&j, o->out, e);
    if (!rc) {
        rc = test_accuracy(&r, &j, &res->test_accuracy, e);
        judge_free(&j);
    }
    if (!rc) { /* written again with the accuracy it was measured to have */
        char acc[32];
        snprintf(acc, sizeof acc, "%.4f", res->test_accuracy);
        const char *meta[] = {"judge.classes", names, "judge.data", o->data, "judge.test_accuracy", acc,
                              "judge.test", o->test};
        rc = resnet_save(&r.m, o->out, meta, 4, e);
    }
    res->seconds = now_seconds() - t0;
    free(names);
    resnet_acts_free(&r.a);
    resnet_grads_free(&r.g);
    resnet_free(&r.m);
    dataset_free(&r.d);
    free(r.perm), free(r.x), free(r.rgb), free(r.cos), free(r.probs), free(r.dlog), free(r.df), free(r.y);
    return rc;
}
