/* ADU's Domain Disentangling Loss (Kawamura et al. 2025, vlm-domain.md C.2) on image features:
 *   L_domain = gamma * L_CE - lambda * MMD^2
 * L_CE: cross-entropy of a linear domain classifier (logits = W f + b) on the L2-normalised
 * features f; MMD^2: the mean over pairs of domains present in the batch of the squared maximum
 * mean discrepancy between their features, with a multi-bandwidth Gaussian kernel (our choice,
 * as the notes leave the kernel open; the DAN recipe):
 *   k(x, y) = sum_s exp(-|x - y|^2 / (m * 2^s)),  s in {-2, -1, 0, 1, 2},
 * m the median squared distance of the batch (the median heuristic, held constant in the
 * gradient), and the biased (V-statistic) estimate
 *   MMD^2(X, Y) = mean k(X, X) + mean k(Y, Y) - 2 mean k(X, Y).
 * Both take the normalised features and write their gradient. */
#ifndef FORGET_DOMAIN_LOSS_H
#define FORGET_DOMAIN_LOSS_H

#include <stdint.h>

enum { MMD_BANDWIDTHS = 5 };

/* f [N, E] (normalised), dom [N] in [0, D). Mean CE; dW [D, E], db [D] and df [N, E] accumulate
 * (each may be NULL). */
double domain_ce_grad(const float *f, int N, int E, const float *W, const float *b, int D, const int32_t *dom,
                      float *df, float *dW, float *db);
/* The median squared distance between distinct rows (the kernel's scale). */
double mmd_median_scale(const float *f, int N, int E);
/* Mean MMD^2 over the pairs of domains with samples in the batch (0 with fewer than two);
 * df [N, E] accumulates its gradient when set. scale <= 0: the batch's median. */
double mmd2_grad(const float *f, int N, int E, const int32_t *dom, int D, double scale, float *df);

#endif
