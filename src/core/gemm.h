/* The one GEMM seam. Every fp32 matrix product in forget goes through sgemm() (weight products
 * in a chosen precision go through core/gemm_mixed.h, which falls back to it), so a second
 * backend (CUDA, a test double) replaces few files. Row-major throughout:
 *   C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C
 * where op(X) = X or X^T, and lda/ldb/ldc are row strides in elements. */
#ifndef FORGET_GEMM_H
#define FORGET_GEMM_H

#include <stdbool.h>

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* A plain triple loop with the same contract, for tests of the backend. */
void sgemm_reference(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
