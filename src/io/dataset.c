/* The generic labelled image set: ownership, pixel access and model input. Loaders live in
 * files of their own (dataset_idx.c, dataset_fmnist_variants.c, dataset_cifar.c,
 * dataset_folder.c, emoji_dataset.c) and are found by name in dataset_registry.c. */
#include "io/dataset.h"

#include <stdlib.h>
#include <string.h>

#include "io/emoji_dataset.h"
#include "io/image.h"
#include "io/preprocess.h"

void dataset_free(Dataset *d) {
    if (!d) return;
    free(d->pixels);
    free(d->labels);
    free(d->domains);
    for (int i = 0; i < d->n_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    for (int i = 0; i < d->n_domains; i++) free(d->domain_names[i]);
    free(d->domain_names);
    if (d->class_keywords)
        for (int i = 0; i < d->n_classes; i++) free(d->class_keywords[i]);
    free(d->class_keywords);
    DatasetPeople *p = d->people;
    if (p) {
        for (int i = 0; p->class_neutral && i < d->n_classes; i++) free(p->class_neutral[i]);
        for (int i = 0; p->class_group && i < d->n_classes; i++) free(p->class_group[i]);
        for (int i = 0; p->class_subgroup && i < d->n_classes; i++) free(p->class_subgroup[i]);
        free(p->class_neutral), free(p->class_group), free(p->class_subgroup);
        free(p->class_gender), free(p->class_tone);
        free(p);
    }
    memset(d, 0, sizeof *d);
}

const uint8_t *dataset_image(const Dataset *d, int i) {
    return d->pixels + (size_t)i * d->h * d->w * d->channels;
}

char **dataset_names_copy(const char *const *src, int n) {
    char **out = xmalloc(sizeof(char *) * (size_t)n);
    for (int i = 0; i < n; i++) out[i] = xstrdup(src[i]);
    return out;
}

/* ------------------------------------------------------------- model input */

const PixelNorm PIXELS_CLIP = {{0.48145466f, 0.4578275f, 0.40821073f}, {0.26862954f, 0.26130258f, 0.27577711f}};
const PixelNorm PIXELS_HALF = {{0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}};

void dataset_rgb8(const Dataset *d, const int *idx, int n, int res, uint8_t *rgb) {
    float *f = xalloc_floats((size_t)3 * res * res);
    for (int i = 0; i < n; i++) {
        dataset_pixels(d, &idx[i], 1, res, &PIXELS_HALF, f, NULL, 0);
        image_rgb8_from_signed(f, 1, 3, res, rgb + (size_t)i * res * res * 3);
    }
    free(f);
}

void dataset_pixels(const Dataset *d, const int *idx, int n, int res, const PixelNorm *norm, float *out, Rng *aug,
                    int shift) {
    const int h = d->h, w = d->w, ch = d->channels;
    const size_t per = (size_t)3 * res * res;
    if (d->glyphs) { /* compose each glyph afresh: its augmentation stream is drawn here, serially */
        uint8_t *rgb = xmalloc((size_t)d->out_size * d->out_size * 3);
        Rng fixed;
        for (int i = 0; i < n; i++) {
            rng_seed(&fixed, 0x5eed0000u + (uint64_t)idx[i]); /* no aug stream: a fixed composition per glyph */
            emoji_augment(dataset_image(d, idx[i]), d->h, rgb, d->out_size, aug ? aug : &fixed);
            Dataset one = {.n = 1, .h = d->out_size, .w = d->out_size, .channels = 3, .pixels = rgb};
            int zero = 0;
            dataset_pixels(&one, &zero, 1, res, norm, out + per * i, NULL, 0);
        }
        free(rgb);
        return;
    }
    int *dx = xmalloc(sizeof(int) * (size_t)n), *dy = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) { /* draw serially so the stream does not depend on threads */
        dx[i] = aug && shift ? (int)rng_below(aug, (uint32_t)(2 * shift + 1)) - shift : 0;
        dy[i] = aug && shift ? (int)rng_below(aug, (uint32_t)(2 * shift + 1)) - shift : 0;
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const uint8_t *src = dataset_image(d, idx[i]);
        float *dst = out + per * i;
        if (h == res && w == res) {
            for (int y = 0; y < res; y++)
                for (int x = 0; x < res; x++) {
                    int sy = y - dy[i], sx = x - dx[i];
                    sy = sy < 0 ? 0 : sy >= h ? h - 1 : sy;
                    sx = sx < 0 ? 0 : sx >= w ? w - 1 : sx;
                    const uint8_t *p = src + ((size_t)sy * w + sx) * ch;
                    for (int c = 0; c < 3; c++) {
                        float v = (float)(ch >= 3 ? p[c] : p[0]) / 255.0f;
                        dst[((size_t)c * res + y) * res + x] = (v - norm->mean[c]) / norm->std[c];
                    }
                }
        } else {
            Image8 im = {.w = w, .h = h, .channels = ch, .px = (uint8_t *)src};
            image_preprocess(&im, res, norm->mean, norm->std, dst);
        }
    }
    free(dx);
    free(dy);
}
