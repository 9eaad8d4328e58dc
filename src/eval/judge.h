/* The judge of generated images: a ResNet (models/resnet.h, one cosine head over all classes)
 * trained on a data set's real images (train/judge_trainer.h), reading 8-bit RGB images the way
 * the diffusion trainer reads real ones ([-1, 1], at the judge's side). Its file holds the class
 * names (metadata judge.classes, '|'-separated) and its measured test accuracy. */
#ifndef FORGET_JUDGE_H
#define FORGET_JUDGE_H

#include <stdint.h>

#include "core/err.h"
#include "models/resnet.h"

typedef struct {
    ResNet net;
    int n_classes;
    char **class_names;
    float test_accuracy; /* as the trainer measured it; -1 when not recorded */
} Judge;

int judge_load(Judge *j, const char *path, Err *e);
void judge_free(Judge *j);
/* Index of a class name, -1 when the judge has none such. */
int judge_class(const Judge *j, const char *name);
/* n images rgb [n, side, side, 3] -> pred [n] (and the top cosine in conf [n], may be NULL). The
 * images must be at the judge's side. */
int judge_classify(const Judge *j, const uint8_t *rgb, int n, int side, int32_t *pred, float *conf, Err *e);
/* The judge's input of 8-bit RGB images: CHW, (v / 127.5 - 1), channels as the net reads them. */
void judge_input(const uint8_t *rgb, int n, int side, int in_ch, float *out);

#endif
