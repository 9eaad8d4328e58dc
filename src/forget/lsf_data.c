#include "forget/lsf_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops.h"
#include "core/rng.h"
#include "io/emoji.h"
#include "io/emoji_dataset.h"
#include "models/resnet.h"
#include "train/trainer.h"

float lsf_pixel(uint8_t v) { return ((float)v / 255.0f - 0.5f) / 0.25f; }

static void to_float(const uint8_t *hwc, int res, int ch, float *chw) {
    for (int c = 0; c < ch; c++)
        for (int i = 0; i < res * res; i++) chw[(size_t)c * res * res + i] = lsf_pixel(hwc[(size_t)i * ch + c]);
}

static void random_blocks(float *out, int C, int H, int W, uint64_t seed, float lo, float hi) {
    const int h = H / 4 > 0 ? H / 4 : 1, w = W / 4 > 0 ? W / 4 : 1;
    float *small = xalloc_floats((size_t)C * h * w);
    Rng r;
    rng_seed(&r, seed);
    rng_fill_uniform(&r, small, (long)C * h * w, lo, hi);
    for (int c = 0; c < C; c++) /* nearest neighbour: pixel (y, x) reads block (y h / H, x w / W) */
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                out[((size_t)c * H + y) * W + x] = small[((size_t)c * h + (long)y * h / H) * w + (long)x * w / W];
    free(small);
}

void lsf_input_code(float *out, int ch, int res, uint64_t seed, int cls) {
    random_blocks(out, ch, res, res, train_mix(seed ^ 0xc0de, (uint64_t)cls), lsf_pixel(0), lsf_pixel(255));
}

void lsf_feature_code(float *out, int C, int H, int W, uint64_t seed, int cls) {
    float *raw = xalloc_floats((size_t)C * H * W);
    random_blocks(raw, C, H, W, train_mix(seed ^ 0xfea7, (uint64_t)cls), -1, 1);
    resnet_standardise(out, raw, 1, C, (long)H * W);
    free(raw);
}

/* Indices of class c in d, in file order. */
static int class_indices(const Dataset *d, int c, int dom, int *idx) {
    int n = 0;
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] == c && (dom < 0 || !d->domains || d->domains[i] == dom)) idx[n++] = i;
    return n;
}

/* Copies the chosen images of d (HWC bytes) into task t's set of `which` (train/eval). */
static void add_images(LsfImages *s, const Dataset *d, const int *idx, int n, int res, int ch) {
    s->x = xrealloc(s->x, sizeof(float) * (size_t)(s->n + n) * ch * res * res);
    s->y = xrealloc(s->y, sizeof(int32_t) * (size_t)(s->n + n));
    for (int i = 0; i < n; i++) {
        to_float(dataset_image(d, idx[i]), res, ch, s->x + (size_t)(s->n + i) * ch * res * res);
        s->y[s->n + i] = d->labels[idx[i]];
    }
    s->n += n;
}

static int split_tasks(LsfSplit *s, int n_classes, int tasks, char **names, Err *e) {
    if (tasks < 1 || tasks > LSF_MAX_TASKS || tasks > n_classes)
        return err_set(e, "--tasks %d: between 1 and %d for %d classes", tasks,
                       n_classes < LSF_MAX_TASKS ? n_classes : LSF_MAX_TASKS, n_classes);
    if (n_classes % tasks)
        return err_set(e, "--tasks %d does not divide the %d classes into equal tasks", tasks, n_classes);
    s->n_classes = n_classes, s->tasks = tasks;
    for (int t = 0; t < tasks; t++) s->task_first[t] = t * (n_classes / tasks), s->task_size[t] = n_classes / tasks;
    s->class_names = dataset_names_copy((const char *const *)names, n_classes);
    return 0;
}

int lsf_data_load(LsfData *d, const LsfOpts *o, Err *e) {
    memset(d, 0, sizeof *d);
    const int val = o->split && strcmp(o->split, "val") == 0;
    if (o->split && !val && strcmp(o->split, "test") != 0)
        return err_set(e, "--split \"%s\": test or val", o->split);
    char name[64];
    const char *colon = strchr(o->dataset, ':');
    snprintf(name, sizeof name, "%.*s", colon ? (int)(colon - o->dataset) : (int)strlen(o->dataset), o->dataset);
    const char *dir = colon ? colon + 1 : NULL;
    const int fm = strcmp(name, "fmnist") == 0, em = strcmp(name, "emoji100") == 0, c100 = strcmp(name, "cifar100") == 0;
    if (!fm && !em && !c100)
        return err_set(e, "--dataset \"%s\": fmnist, emoji100 or cifar100:/DIR (CIFAR-100 binary files)", o->dataset);
    if (c100 && (!dir || !*dir)) return err_set(e, "--dataset cifar100 needs its directory: cifar100:/DIR");
    char spec[600];
    Dataset tr = {0}, ev = {0};
    snprintf(spec, sizeof spec, "%s:train", name);
    if (dataset_load_named(&tr, spec, dir, e)) return -1;
    int rc = 0;
    if (em || !val) { /* emoji100 has its own val split; the others evaluate on test or hold out from train */
        snprintf(spec, sizeof spec, "%s:%s", name, val ? "val" : "test");
        rc = dataset_load_named(&ev, spec, dir, e);
    }
    if (!rc) rc = split_tasks(&d->split, tr.n_classes, o->tasks, tr.class_names, e);
    if (rc) {
        dataset_free(&tr), dataset_free(&ev);
        lsf_data_free(d);
        return -1;
    }
    const int res = em ? tr.out_size : tr.h, ch = em ? 3 : tr.channels;
    d->res = res, d->in_ch = ch;
    int *idx = xmalloc(sizeof(int) * (size_t)(tr.n + ev.n + 1));
    for (int c = 0; c < tr.n_classes && !rc; c++) {
        const int t = lsf_task_of(&d->split, c);
        if (em) { /* one colour glyph a class: seeded compositions for training */
            int g = class_indices(&tr, c, STYLE_COLOR, idx);
            if (g < 1) {
                rc = err_set(e, "emoji100: class %d has no colour glyph", c);
                break;
            }
            LsfImages *s = &d->train[t];
            const int n = o->train_per_class;
            s->x = xrealloc(s->x, sizeof(float) * (size_t)(s->n + n) * ch * res * res);
            s->y = xrealloc(s->y, sizeof(int32_t) * (size_t)(s->n + n));
            uint8_t *rgb = xmalloc((size_t)res * res * 3);
            for (int k = 0; k < n; k++) {
                Rng r;
                rng_seed(&r, train_mix(0x15f0000ull + (uint64_t)c, (uint64_t)k));
                emoji_augment(dataset_image(&tr, idx[0]), tr.h, rgb, res, &r);
                to_float(rgb, res, 3, s->x + (size_t)(s->n + k) * ch * res * res);
                s->y[s->n + k] = c;
            }
            s->n += n;
            free(rgb);
            int ne = class_indices(&ev, c, STYLE_COLOR, idx);
            if (o->eval_per_class > 0 && ne > o->eval_per_class) ne = o->eval_per_class;
            add_images(&d->eval[t], &ev, idx, ne, res, ch);
            continue;
        }
        const int n = class_indices(&tr, c, -1, idx), hold = n / 10, avail = n - hold;
        const int use = o->train_per_class < avail ? o->train_per_class : avail;
        if (use < 1) {
            rc = err_set(e, "%s: class %d has %d training images", name, c, n);
            break;
        }
        add_images(&d->train[t], &tr, idx, use, res, ch);
        const int cap = o->eval_per_class > 0 ? o->eval_per_class : 1 << 30;
        if (val) {
            add_images(&d->eval[t], &tr, idx + avail, hold < cap ? hold : cap, res, ch);
        } else {
            const int ne = class_indices(&ev, c, -1, idx);
            add_images(&d->eval[t], &ev, idx, ne < cap ? ne : cap, res, ch);
        }
    }
    free(idx);
    dataset_free(&tr), dataset_free(&ev);
    if (rc) lsf_data_free(d);
    return rc;
}

void lsf_data_free(LsfData *d) {
    for (int t = 0; t < LSF_MAX_TASKS; t++) {
        free(d->train[t].x), free(d->train[t].y), free(d->eval[t].x), free(d->eval[t].y);
    }
    if (d->split.class_names) {
        for (int c = 0; c < d->split.n_classes; c++) free(d->split.class_names[c]);
        free(d->split.class_names);
    }
    memset(d, 0, sizeof *d);
}
