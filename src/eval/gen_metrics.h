/* Measures of generated images: the Frechet distance between two sets of features (Gaussians
 * fitted to each; the covariance square root through LAPACK's symmetric eigensolver), and CLIP
 * score (100 x the cosine of image and prompt embeddings, clipped at 0, as Hessel et al. 2021
 * with w = 1). */
#ifndef FORGET_GEN_METRICS_H
#define FORGET_GEN_METRICS_H

#include "core/err.h"

/* Cosine of two rows of D (0 when either is zero), and the smallest over rows of two [rows, D]
 * matrices: how far a reduced precision turns features. */
double row_cosine(const float *a, const float *b, long D);
double worst_row_cosine(const float *a, const float *b, int rows, long D);
/* Mean [D] and covariance [D, D] (n - 1 in the denominator) of n rows of D features. */
void feature_stats(const float *x, int n, int D, double *mean, double *cov);
/* |m1 - m2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2); -1 with e set when LAPACK fails. */
int frechet_distance(const double *m1, const double *s1, const double *m2, const double *s2, int D, double *out,
                     Err *e);
/* Mean over n pairs of 100 * max(cos(img_i, txt_i), 0); rows need not be normalised. */
double clip_score(const float *img, const float *txt, int n, int D);

#endif
