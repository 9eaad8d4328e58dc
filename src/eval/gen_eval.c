#include "eval/gen_eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "core/threads.h"
#include "eval/gen_metrics.h"
#include "io/dataset.h"
#include "io/image.h"
#include "io/preprocess.h"
#include "models/clip_encode.h"

int gen_clip_images(const ClipModel *m, const uint8_t *rgb, int n, int side, float *out, Err *e) {
    const int R = m->cfg.image_res, E = m->cfg.embed_dim, B = 32;
    float *px = xalloc_floats((size_t)B * 3 * R * R);
    int rc = 0;
    for (int b0 = 0; b0 < n && !rc; b0 += B) {
        const int nb = n - b0 < B ? n - b0 : B;
        for (int i = 0; i < nb; i++) {
            const Image8 im = {side, side, 3, (uint8_t *)rgb + (size_t)(b0 + i) * side * side * 3};
            clip_preprocess(&im, R, px + (size_t)i * 3 * R * R);
        }
        rc = clip_encode_image(m, px, nb, out + (size_t)b0 * E, NULL, e);
    }
    free(px);
    return rc;
}

/* n real images of a data set (evenly spaced) as 8-bit RGB at side px, read as the trainer reads them. */
static int real_images(const char *spec, const char *dir, int n, int side, uint8_t *rgb, Err *e) {
    Dataset d;
    if (dataset_load_named(&d, spec, dir, e)) return -1;
    for (int i = 0; i < n; i++) {
        const int smp = (int)((long)i * d.n / n);
        dataset_rgb8(&d, &smp, 1, side, rgb + (size_t)i * side * side * 3);
    }
    dataset_free(&d);
    return 0;
}

void gen_eval_result_free(GenEvalResult *r) {
    free(r->accuracy);
    free(r->kept);
    memset(r, 0, sizeof *r);
}

int gen_eval(const Text2Image *g, const Judge *j, const ClipModel *clip, const GenEvalOpts *o, GenEvalResult *r,
             Err *e) {
    memset(r, 0, sizeof *r);
    const int K = j->n_classes, P = o->per_class, S = g->image_side, N = K * P;
    if (P < 1) return err_set(e, "eval generate: --per-class must be positive");
    r->n_classes = K, r->images = N, r->clip_score = r->fid = -1;
    r->accuracy = xcalloc((size_t)K, sizeof(double));
    uint8_t *rgb = xmalloc((size_t)N * S * S * 3);
    int32_t *pred = xmalloc(sizeof(int32_t) * (size_t)P);
    char **prompts = xcalloc((size_t)K, sizeof(char *));
    const double t0 = now_seconds();
    Progress bar;
    progress_start(&bar, "eval generate", (long)N * o->steps, o->quiet);
    int rc = 0;
    long right = 0;
    for (int k = 0; k < K && !rc; k++) {
        prompts[k] = clip_prompt_fill(o->template_, j->class_names[k]);
        const char *pk = prompts[k];
        SampleSpec sp = {.steps = o->steps, .cfg = o->cfg, .sampler = o->sampler, .seed = o->seed,
                         .first = (long)k * P, .batch = o->batch, .bar = NULL};
        uint8_t *mine = rgb + (size_t)k * P * S * S * 3;
        rc = t2i_generate(g, &pk, 1, P, &sp, mine, e);
        if (!rc) rc = judge_classify(j, mine, P, S, pred, NULL, e);
        int ok = 0;
        for (int i = 0; i < P && !rc; i++) ok += pred[i] == k;
        r->accuracy[k] = (double)ok / P;
        right += ok;
        progress_update(&bar, (long)(k + 1) * P * o->steps, 1.0 / o->steps, "img", j->class_names[k]);
    }
    progress_end(&bar);
    r->mean_accuracy = (double)right / N;
    if (!rc && o->keep > 0) { /* the first images of each class, for a report */
        r->keep = o->keep < P ? o->keep : P, r->side = S;
        const size_t img = (size_t)S * S * 3;
        r->kept = xmalloc((size_t)K * r->keep * img);
        for (int k = 0; k < K; k++) memcpy(r->kept + (size_t)k * r->keep * img, rgb + (size_t)k * P * img, r->keep * img);
    }
    if (!rc && clip) {
        const int E = clip->cfg.embed_dim;
        float *fi = xalloc_floats((size_t)N * E), *ft = xalloc_floats((size_t)N * E), *pt = xalloc_floats((size_t)K * E);
        Tokenizer tok = {0};
        rc = tokenizer_init(&tok, e);
        if (!rc) rc = clip_encode_texts(clip, &tok, (const char *const *)prompts, K, pt, e);
        if (!rc) rc = gen_clip_images(clip, rgb, N, S, fi, e);
        if (!rc) {
            for (int i = 0; i < N; i++) memcpy(ft + (size_t)i * E, pt + (size_t)(i / P) * E, sizeof(float) * E);
            r->clip_score = clip_score(fi, ft, N, E);
        }
        if (!rc && o->real) { /* the distance to as many real images */
            uint8_t *real = xmalloc((size_t)N * S * S * 3);
            float *fr = xalloc_floats((size_t)N * E);
            rc = real_images(o->real, o->data_dir, N, S, real, e);
            if (!rc) rc = gen_clip_images(clip, real, N, S, fr, e);
            if (!rc) {
                double *m1 = xmalloc(sizeof(double) * E), *m2 = xmalloc(sizeof(double) * E);
                double *s1 = xmalloc(sizeof(double) * E * E), *s2 = xmalloc(sizeof(double) * E * E);
                feature_stats(fi, N, E, m1, s1);
                feature_stats(fr, N, E, m2, s2);
                rc = frechet_distance(m1, s1, m2, s2, E, &r->fid, e);
                free(m1), free(m2), free(s1), free(s2);
            }
            free(real), free(fr);
        }
        tokenizer_free(&tok);
        free(fi), free(ft), free(pt);
    }
    r->seconds = now_seconds() - t0;
    r->images_per_s = r->seconds > 0 ? N / r->seconds : 0;
    for (int k = 0; k < K; k++) free(prompts[k]);
    free(prompts), free(rgb), free(pred);
    if (rc) gen_eval_result_free(r);
    return rc;
}
