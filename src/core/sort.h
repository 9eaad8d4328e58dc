/* Stable argsorts (merge sort on indices): order[k] is the index of the k-th smallest value, ties
 * kept in index order. One implementation for every ranking in forget (search populations, CMA-ES,
 * bootstrap statistics), so no file writes its own. */
#ifndef FORGET_SORT_H
#define FORGET_SORT_H

void argsort_f64(const double *v, int n, int *order);
void argsort_f32(const float *v, int n, int *order);

#endif
