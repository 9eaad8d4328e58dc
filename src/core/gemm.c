/* oneDNN backend for sgemm(). dnnl_sgemm is row-major and picks its vector ISA
 * (AVX-512, AVX2, ...) at run time, so one binary runs at full speed on any x86-64. */
#include "core/gemm.h"

#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>

void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
           const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha,
                                  A, lda, B, ldb, beta, C, ldc);
    if (st != dnnl_success) {
        /* Only reachable with inconsistent shapes: a programming error, not bad input. */
        fprintf(stderr, "forget: dnnl_sgemm failed (status %d) for M=%d N=%d K=%d lda=%d ldb=%d ldc=%d\n",
                (int)st, M, N, K, lda, ldb, ldc);
        abort();
    }
}

void sgemm_reference(bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) {
                float a = trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = trans_b ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}
