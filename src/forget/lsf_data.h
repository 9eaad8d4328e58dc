/* The data of a selective-forgetting run: a labelled image set split into tasks of contiguous
 * classes, each task's training images (gone once its task is over: the trainer only ever reads
 * the current task's) and its evaluation images, as normalised NCHW floats at the data set's own
 * size and channels; and the mnemonic codes, one per class, of the input and feature kinds. */
#ifndef FORGET_LSF_DATA_H
#define FORGET_LSF_DATA_H

#include "forget/lsf.h"

typedef struct {
    int n;
    float *x;   /* [n, ch, res, res] */
    int32_t *y; /* global class */
} LsfImages;

typedef struct {
    LsfSplit split;
    int in_ch, res;
    LsfImages train[LSF_MAX_TASKS], eval[LSF_MAX_TASKS];
} LsfData;

/* fmnist: train_per_class training images a class from the train file's start, val the last
 * tenth of each class, test the test file; emoji100 (colour glyphs): train_per_class seeded
 * compositions of each glyph, val/test its own splits; cifar100:/DIR: the binary files (val:
 * the last tenth of each class of the train file). Class names are copied. */
int lsf_data_load(LsfData *d, const LsfOpts *o, Err *e);
void lsf_data_free(LsfData *d);

/* LSF's input code of a class: a uniform random image at a quarter of the side (at least 1),
 * nearest-neighbour upsampled, in the data's value range and normalisation. [ch, res, res]. */
void lsf_input_code(float *out, int ch, int res, uint64_t seed, int cls);
/* The feature code: the same construction at [C, H, W], standardised per channel (the network's
 * Norm), so it enters the standardising layer as Norm(c). */
void lsf_feature_code(float *out, int C, int H, int W, uint64_t seed, int cls);
/* The pixel normalisation of every image and code: (v / 255 - 0.5) / 0.25. */
float lsf_pixel(uint8_t v);

#endif
