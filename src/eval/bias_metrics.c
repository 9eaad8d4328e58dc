#include "eval/bias_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"

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

/* The bias of one resample: idx[n] are the drawn units. */
static double resample_bias(RetentionUnits kind, const double *u, const int *idx, int n, const int32_t *group, int G,
                            double *scratch) {
    if (kind == RB_QUERIES) {
        double b = 0;
        for (int a = 0; a < 2; a++) {
            double sum = 0;
            int cnt = 0;
            for (int k = 0; k < n; k++) {
                const double v = u[(size_t)idx[k] * 2 + a];
                if (!isnan(v)) sum += v, cnt++;
            }
            b += 0.5 * (cnt ? sum / cnt : 0);
        }
        return b;
    }
    double *right = scratch, *seen = scratch + G, worst = 1;
    for (int g = 0; g < G; g++) right[g] = seen[g] = 0;
    for (int k = 0; k < n; k++) right[group[idx[k]]] += u[idx[k]], seen[group[idx[k]]]++;
    for (int g = 0; g < G; g++)
        if (seen[g] > 0 && right[g] / seen[g] < worst) worst = right[g] / seen[g];
    return 1 - worst;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void retention_bootstrap(RetentionUnits kind, const double *orig, const double *base, const double *method, int n,
                         const int32_t *group, int G, int B, double threshold, uint64_t seed, RetentionCI *out) {
    memset(out, 0, sizeof *out);
    if (n <= 0 || B <= 0) return;
    Rng r;
    rng_seed(&r, seed);
    int *idx = xmalloc(sizeof(int) * (size_t)n), *members = NULL, *start = NULL;
    double *keep = xmalloc(sizeof(double) * (size_t)B), *scratch = xmalloc(sizeof(double) * (size_t)(2 * G + 2));
    if (kind == RB_GROUPS) { /* units by group, for redrawing within each group */
        members = xmalloc(sizeof(int) * (size_t)n), start = xcalloc((size_t)G + 1, sizeof(int));
        for (int i = 0; i < n; i++) start[group[i] + 1]++;
        for (int g = 0; g < G; g++) start[g + 1] += start[g];
        int *fill = xmalloc(sizeof(int) * (size_t)G);
        memcpy(fill, start, sizeof(int) * (size_t)G);
        for (int i = 0; i < n; i++) members[fill[group[i]]++] = i;
        free(fill);
    }
    int nv = 0, hit = 0;
    for (int b = 0; b < B; b++) {
        if (kind == RB_QUERIES) {
            for (int k = 0; k < n; k++) idx[k] = (int)rng_below(&r, (uint32_t)n);
        } else {
            for (int g = 0, k = 0; g < G; g++)
                for (int j = start[g]; j < start[g + 1]; j++, k++)
                    idx[k] = members[start[g] + (int)rng_below(&r, (uint32_t)(start[g + 1] - start[g]))];
        }
        const double bo = resample_bias(kind, orig, idx, n, group, G, scratch);
        const double bb = resample_bias(kind, base, idx, n, group, G, scratch);
        const double bm = resample_bias(kind, method, idx, n, group, G, scratch);
        if (!(bo > 0)) continue;
        const double rb = 1 - bb / bo, rm = 1 - bm / bo;
        if (!(rb > 0)) continue;
        keep[nv++] = rm / rb;
        hit += rm / rb >= threshold;
    }
    if (nv > 0) {
        qsort(keep, (size_t)nv, sizeof(double), cmp_double);
        out->lo = keep[(int)(0.05 * (nv - 1))], out->hi = keep[(int)(0.95 * (nv - 1))];
        out->p_keep = (double)hit / nv;
    }
    out->n_valid = nv;
    free(idx), free(members), free(start), free(keep), free(scratch);
}
