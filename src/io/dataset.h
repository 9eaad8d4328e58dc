/* Labelled image sets held as 8-bit pixels, with class names and (optionally) a domain per
 * sample. Each loader fills one Dataset (files of their own: dataset_idx.h, dataset_cifar.h,
 * dataset_folder.h, dataset_fmnist_variants.h, emoji_dataset.h); dataset_load_named finds a
 * loader by name in the registry (dataset_registry.c). Pixels are stored HWC (channels
 * interleaved), one image after another. */
#ifndef FORGET_DATASET_H
#define FORGET_DATASET_H

#include <stdint.h>

#include "core/err.h"
#include "core/rng.h"

enum { DATASET_MAX_CLASSES = 1000 };

/* People attributes of the emoji sets: gender and skin tone per class (EmojiGender / EmojiTone
 * values), the gender-neutral phrase of professions and activities ("a health worker"; NULL for
 * other classes), and the Unicode group and subgroup of each class. */
typedef struct {
    int32_t *class_gender, *class_tone;
    char **class_neutral;
    char **class_group, **class_subgroup;
} DatasetPeople;

typedef struct {
    int n, h, w, channels;
    uint8_t *pixels;      /* n * h * w * channels */
    int32_t *labels;      /* n */
    int n_classes;
    char **class_names;   /* n_classes, owned */
    int32_t *domains;     /* n, or NULL */
    int n_domains;
    char **domain_names;  /* n_domains, owned */
    char **class_keywords; /* n_classes extra words per class ("dog | pet | animal"), or NULL */
    DatasetPeople *people; /* NULL except for data sets of people emoji */
    int glyphs;           /* 1: pixels are RGBA glyphs to be composed by emoji_augment at out_size */
    int out_size;
} Dataset;

void dataset_free(Dataset *d);
const uint8_t *dataset_image(const Dataset *d, int i);
/* n malloc'd copies of src's strings (free each and the array). */
char **dataset_names_copy(const char *const *src, int n);

/* The registry: a name, its splits and a loader of (split, data directory or NULL). */
typedef struct {
    const char *name, *splits, *summary;
    int (*load)(Dataset *d, const char *split, const char *dir, Err *e);
} DatasetEntry;
const DatasetEntry *dataset_registry(int *n);
/* Loads "NAME:SPLIT" ("fmnist:train", "folder:/data/x"; no split: test); dir overrides the data
 * location where the data set has one (NULL for its default). */
int dataset_load_named(Dataset *d, const char *spec, const char *dir, Err *e);

/* Per-channel normalisation of model input: (x / 255 - mean) / std. */
typedef struct {
    float mean[3], std[3];
} PixelNorm;
extern const PixelNorm PIXELS_CLIP; /* OpenAI CLIP's mean and std */
extern const PixelNorm PIXELS_HALF; /* [0, 255] -> [-1, 1]: the generative models' (mean and std 0.5) */

/* Model input for samples idx[0..n): normalised CHW floats at res x res (grey replicated to RGB;
 * other sizes through the exact CLIP transform geometry). With aug, each image is shifted by up
 * to `shift` pixels (edges replicated). */
void dataset_pixels(const Dataset *d, const int *idx, int n, int res, const PixelNorm *norm, float *out, Rng *aug,
                    int shift);

/* Samples idx[0..n) read as the generative models read them (dataset_pixels at res with
 * PIXELS_HALF, no augmentation) and back to 8-bit HWC RGB: real images in the form generated ones
 * take, for judging both the same way. */
void dataset_rgb8(const Dataset *d, const int *idx, int n, int res, uint8_t *rgb);

#endif
