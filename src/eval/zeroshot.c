#include "eval/zeroshot.h"

#include <math.h>

#include "models/clip_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/clip_encode.h"

const char *eval_default_template(const Dataset *d) {
    return d->class_keywords ? "an emoji of {}." : "a photo of a {}.";
}

int eval_zeroshot(const ClipModel *m, const Tokenizer *t, const Dataset *d, const char *tpl, int max_samples,
                  ZeroShot *out, Err *e) {
    memset(out, 0, sizeof *out);
    if (!tpl) tpl = eval_default_template(d);
    const int K = d->n_classes, E = m->cfg.embed_dim;
    char **prompts = xmalloc(sizeof(char *) * (size_t)K);
    for (int k = 0; k < K; k++) prompts[k] = clip_prompt_fill(tpl, d->class_names[k]);
    float *tf = xalloc_floats((size_t)K * E);
    int rc = clip_encode_texts(m, t, (const char *const *)prompts, K, tf, e);
    for (int k = 0; k < K; k++) free(prompts[k]);
    free(prompts);
    if (rc == 0) rc = eval_zeroshot_weights(m, d, tf, max_samples, out, e);
    free(tf);
    return rc;
}

int eval_zeroshot_weights(const ClipModel *m, const Dataset *d, const float *tf, int max_samples, ZeroShot *out,
                          Err *e) {
    memset(out, 0, sizeof *out);
    const int K = d->n_classes, E = m->cfg.embed_dim, R = m->cfg.image_res;
    int rc = 0;
    int N = max_samples > 0 && max_samples < d->n ? max_samples : d->n;
    /* evenly spaced samples when only some are asked for, so every class and domain is seen */
    const int BATCH = 256;
    float *px = xalloc_floats((size_t)BATCH * 3 * R * R), *imf = xalloc_floats((size_t)BATCH * E);
    float *logits = xalloc_floats((size_t)BATCH * K);
    int *idx = xmalloc(sizeof(int) * BATCH);
    long hit1 = 0, hit5 = 0;
    out->n_domains = d->domains ? (d->n_domains < ZS_MAX_DOMAINS ? d->n_domains : ZS_MAX_DOMAINS) : 0;
    long dh1[ZS_MAX_DOMAINS] = {0}, dh5[ZS_MAX_DOMAINS] = {0};
    for (int b0 = 0; b0 < N && rc == 0; b0 += BATCH) {
        int nb = N - b0 < BATCH ? N - b0 : BATCH;
        for (int i = 0; i < nb; i++) idx[i] = (int)((long)(b0 + i) * d->n / N);
        dataset_pixels(d, idx, nb, R, &PIXELS_CLIP, px, NULL, 0);
        if ((rc = clip_encode_image(m, px, nb, imf, NULL, e)) != 0) break;
        clip_logits(m, imf, nb, tf, K, logits);
        for (long i = 0; i < (long)nb * K && rc == 0; i++) /* a NaN would rank first and count as a hit */
            if (!isfinite(logits[i])) rc = clip_nonfinite_error(m, "a logit", e);
        for (int i = 0; i < nb && rc == 0; i++) {
            const float *l = logits + (size_t)i * K;
            int y = d->labels[idx[i]], rank = 0;
            for (int k = 0; k < K; k++) rank += l[k] > l[y];
            int dom = d->domains ? d->domains[idx[i]] : -1;
            hit1 += rank == 0;
            hit5 += rank < 5;
            if (dom >= 0 && dom < ZS_MAX_DOMAINS) {
                out->dom_n[dom]++;
                dh1[dom] += rank == 0;
                dh5[dom] += rank < 5;
            }
        }
    }
    out->n = N;
    out->top1 = (double)hit1 / N;
    out->top5 = (double)hit5 / N;
    for (int k = 0; k < out->n_domains; k++)
        if (out->dom_n[k]) out->dom_top1[k] = (double)dh1[k] / out->dom_n[k], out->dom_top5[k] = (double)dh5[k] / out->dom_n[k];
    free(px), free(imf), free(logits), free(idx);
    return rc;
}
