/* What forgetting is judged by (Black-Box Forgetting, Kuwana et al. 2024; H after LSF):
 *   Err_forget: top-1 error on test images of the classes to forget,
 *   Acc_keep:   top-1 accuracy on test images of the classes to keep,
 *   H = 2 Err_forget Acc_keep / (Err_forget + Acc_keep),
 * with the prediction the argmax over ALL classes (forgotten classes stay in the label set).
 * And the BBF training loss on class probabilities:
 *   L = mean over keep samples of CE(p, y)  +  mean over forget samples of -(1/C) sum_i log(p_i + eps),
 * eps = 1e-7 as in the official code; C is the total number of classes. */
#ifndef FORGET_FORGET_METRICS_H
#define FORGET_FORGET_METRICS_H

#include <stdint.h>

typedef struct {
    double err_forget, acc_keep, h;
    int n_forget, n_keep;
} ForgetScore;

/* logits [N, C]; forget[c] != 0 marks the classes to forget. */
void forget_score(const float *logits, const int32_t *labels, int N, int C, const uint8_t *forget, ForgetScore *out);
double harmonic_h(double err_forget, double acc_keep);

/* probs [N, C] (rows sum to 1). Returns L; a group with no samples contributes 0. */
double bbf_loss(const float *probs, const int32_t *labels, int N, int C, const uint8_t *forget);

/* The same loss from logits [N, C] (p = softmax), with dL/dlogits written to dlogits: the
 * white-box (CoOp) path. */
double bbf_loss_grad(const float *logits, const int32_t *labels, int N, int C, const uint8_t *forget, float *dlogits);

/* The same loss with the forget mark per sample (fs[i] != 0: sample i is to be forgotten, as
 * for an image of a forgotten domain); dlogits may be NULL. */
double forget_loss_grad_samples(const float *logits, const int32_t *labels, int N, int C, const uint8_t *fs,
                                float *dlogits);

#endif
