/* The losses of Learning with Selective Forgetting (Shibata et al., IJCAI 2021), as its code
 * computes them (../shared/methods/lsf.md E.3), each with its gradient:
 *   additive-margin softmax on cosines: CE of s (cos - m onehot(y));
 *   selective LwF on an old head: KL(softmax(m.z_old / T) || softmax(m.z / T))
 *     + KL(softmax((1-m).u / T) || softmax((1-m).z / T)), m the kept-class mask, u a constant (the
 *     code's 1/K): the kept classes follow the old model, the deleted ones are pushed to u; times
 *     lambda s^2 T^2 (the code's scale), z the head's cosines;
 *   EWC: lambda / 2 sum F (theta - theta*)^2.
 * Gradients ACCUMULATE into the given buffers; every function returns its loss. */
#ifndef FORGET_LSF_LOSS_H
#define FORGET_LSF_LOSS_H

#include <stdint.h>

/* Mean over N rows of K cosines, times weight; dcos += weight * d/dcos (may be NULL). */
float am_softmax_loss(const float *cos, const int32_t *y, int N, int K, float s, float m, float weight, float *dcos);
/* keep[k] = 1 for a kept class of this head, 0 for a deleted one; u the deleted classes' target
 * (< 0: 1/K as LSF's code); weight = lambda s^2 T^2. */
float selective_lwf_loss(const float *cos, const float *cos_old, const uint8_t *keep, int N, int K, float T, float u,
                         float weight, float *dcos);
/* Over n parameters; grad may be NULL. */
float ewc_loss(const float *theta, const float *anchor, const float *fisher, long n, float lambda, float *grad);

#endif
