/* CLIP zero-shot classification accuracy: one prompt per class name, each image
 * assigned to the most similar prompt; top-1/top-5 overall and per domain. */
#ifndef FORGET_ZEROSHOT_H
#define FORGET_ZEROSHOT_H

#include "io/dataset.h"
#include "io/tokenizer.h"
#include "models/clip.h"

enum { ZS_MAX_DOMAINS = 16 };

typedef struct {
    int n;
    double top1, top5;
    int n_domains;
    int dom_n[ZS_MAX_DOMAINS];
    double dom_top1[ZS_MAX_DOMAINS], dom_top5[ZS_MAX_DOMAINS];
} ZeroShot;

/* The class prompt a data set's classes are read with: "an emoji of {}." for the emoji sets (the
 * captions emoji models are trained on), else "a photo of a {}.". */
const char *eval_default_template(const Dataset *d);

/* template: "{}" is replaced by the class name (default "a photo of a {}."); max_samples <= 0: all. */
int eval_zeroshot(const ClipModel *m, const Tokenizer *t, const Dataset *d, const char *tpl, int max_samples,
                  ZeroShot *out, Err *e);

/* The same with the class weights given (tf [n_classes, E], compared by cosine as text features
 * are): a linear probe or prompts encoded another way. */
int eval_zeroshot_weights(const ClipModel *m, const Dataset *d, const float *tf, int max_samples, ZeroShot *out,
                          Err *e);

#endif
