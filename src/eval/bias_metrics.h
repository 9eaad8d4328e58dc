/* Retrieval bias and group accuracy (shared/methods/vlm-bias.md D.4).
 * For one query, attr[0..K) are the attribute values of the top-K retrieved items in rank order
 * and prior[0..A) the attribute distribution of the candidate set (p_data):
 *   MaxSkew@K = max_a log(p_ret(a) / p_data(a)), log(1e-10) standing in for zero counts
 *               (Bend-VLM's code; the max is >= 0 whenever p_ret covers the prior's support)
 *   KL@K      = sum_a p_ret(a) log(p_ret(a) / p_data(a))  (0 log 0 = 0)
 *   NDKL      = (1/Z) sum_{k=1..K} KL(p_top-k || p_data) / log2(k + 1),  Z = sum_k 1 / log2(k + 1)
 * Values of attr outside [0, A) are ignored (items without the attribute). */
#ifndef FORGET_BIAS_METRICS_H
#define FORGET_BIAS_METRICS_H

#include <stdint.h>

double max_skew_at_k(const int *attr, int K, const double *prior, int A);
double kl_at_k(const int *attr, int K, const double *prior, int A);
double ndkl(const int *attr, int K, const double *prior, int A);

/* Top-K by score (descending, ties by lower index): writes the indices into top[K]. */
void top_k_indices(const float *score, int n, int K, int *top);

/* Accuracy per group (pred == label among samples of group g) over G groups; returns the
 * average over all samples and sets *worst to the lowest group accuracy (groups with no sample
 * skipped). acc[G] may be NULL. */
double group_accuracy(const int32_t *pred, const int32_t *label, const int32_t *group, int n, int G, double *worst,
                      double *acc);

/* How much of a base method's bias reduction another method keeps, with its sampling noise: a
 * paired bootstrap that redraws the evaluation units (the same draw for the original model, the
 * base and the method) B times and recomputes
 *   keep = (1 - bias_method / bias_orig) / (1 - bias_base / bias_orig).
 * Units and biases as the bias experiment measures them:
 *   RB_QUERIES  unit[q * 2 + a]: MaxSkew of query q for attribute a (NaN: not measured); bias is
 *               the mean over the two attributes of each attribute's mean over queries;
 *   RB_GROUPS   unit[i]: 1 if image i is classified right, group[i] in [0, G); bias is 1 - the
 *               lowest group accuracy; images are redrawn within their group.
 * Resamples where the base reduces nothing are left out (n_valid counts the others). */
typedef enum { RB_QUERIES, RB_GROUPS } RetentionUnits;
typedef struct {
    double lo, hi;  /* 5th and 95th percentiles of keep */
    double p_keep;  /* share of resamples with keep >= the threshold asked */
    int n_valid;
} RetentionCI;
void retention_bootstrap(RetentionUnits kind, const double *orig, const double *base, const double *method, int n,
                         const int32_t *group, int G, int B, double threshold, uint64_t seed, RetentionCI *out);

#endif
