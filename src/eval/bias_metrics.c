#include "eval/bias_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* p_ret over the first K items. */
static int retrieved(const int *attr, int K, int A, double *p) {
    int n = 0;
    for (int a = 0; a < A; a++) p[a] = 0;
    for (int k = 0; k < K; k++)
        if (attr[k] >= 0 && attr[k] < A) p[attr[k]]++, n++;
    for (int a = 0; a < A && n; a++) p[a] /= n;
    return n;
}

double max_skew_at_k(const int *attr, int K, const double *prior, int A) {
    double *p = xmalloc(sizeof(double) * (size_t)A), best = -INFINITY;
    if (retrieved(attr, K, A, p) == 0) {
        free(p);
        return 0;
    }
    for (int a = 0; a < A; a++)
        if (prior[a] > 0) best = fmax(best, log(fmax(p[a], 1e-10) / prior[a]));
    free(p);
    return best;
}

double kl_at_k(const int *attr, int K, const double *prior, int A) {
    double *p = xmalloc(sizeof(double) * (size_t)A), kl = 0;
    if (retrieved(attr, K, A, p) > 0)
        for (int a = 0; a < A; a++)
            if (p[a] > 0) kl += p[a] * log(p[a] / fmax(prior[a], 1e-10));
    free(p);
    return kl;
}

double ndkl(const int *attr, int K, const double *prior, int A) {
    double s = 0, z = 0;
    for (int k = 1; k <= K; k++) {
        const double w = 1.0 / log2(k + 1.0);
        s += w * kl_at_k(attr, k, prior, A);
        z += w;
    }
    return z > 0 ? s / z : 0;
}

void top_k_indices(const float *score, int n, int K, int *top) {
    /* partial selection: K is small next to n */
    uint8_t *taken = xcalloc((size_t)n, 1);
    for (int k = 0; k < K && k < n; k++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!taken[i] && (best < 0 || score[i] > score[best])) best = i;
        taken[best] = 1;
        top[k] = best;
    }
    free(taken);
}

double group_accuracy(const int32_t *pred, const int32_t *label, const int32_t *group, int n, int G, double *worst,
                      double *acc) {
    long *right = xcalloc((size_t)G, sizeof(long)), *count = xcalloc((size_t)G, sizeof(long)), all = 0;
    for (int i = 0; i < n; i++) {
        const int g = group[i];
        if (g < 0 || g >= G) continue;
        count[g]++;
        right[g] += pred[i] == label[i];
        all += pred[i] == label[i];
    }
    *worst = 1;
    for (int g = 0; g < G; g++) {
        const double a = count[g] ? (double)right[g] / count[g] : NAN;
        if (acc) acc[g] = a;
        if (count[g]) *worst = fmin(*worst, a);
    }
    free(right), free(count);
    return n ? (double)all / n : 0;
}
