/* Training the judge of generated images (eval/judge.h): a ResNet with one cosine head over all
 * classes, on the real images read as the diffusion trainer reads them (RGB in [-1, 1] at
 * `side` px), with random shifts; SGD with momentum and cosine decay through the one trainer;
 * cross-entropy on 16 x cosine. The test split's accuracy is measured at the end and written
 * into the file. */
#ifndef FORGET_JUDGE_TRAINER_H
#define FORGET_JUDGE_TRAINER_H

#include <stdint.h>

#include "core/err.h"

typedef struct {
    const char *data, *test, *data_dir, *net, *out;
    int side, in_ch, batch, epochs, limit, shift;
    double lr;
    uint64_t seed;
    int quiet;
} JudgeTrainOpts;

void judge_train_defaults(JudgeTrainOpts *o);

typedef struct {
    double test_accuracy, seconds, images_per_s;
    long steps;
} JudgeTrainResult;

int judge_train(const JudgeTrainOpts *o, JudgeTrainResult *r, Err *e);

#endif
