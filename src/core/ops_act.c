/* Activations beyond the GELUs of ops.c: SiLU, ReLU and the two gated forms (GEGLU of Stable
 * Diffusion's feed-forward, SwiGLU of Llama's MLP). Backwards accumulate; NULL = not needed. */
#include <math.h>

#include "core/fastmath.h"
#include "core/ops.h"

static inline float sigmoidf(float x) { return 1.0f / (1.0f + fast_expf(-x)); }

HOT void silu_forward(float *out, const float *in, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) out[i] = in[i] * sigmoidf(in[i]);
}

HOT void silu_backward(float *din, const float *dout, const float *in, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) {
        const float s = sigmoidf(in[i]);
        din[i] += dout[i] * (s + in[i] * s * (1.0f - s));
    }
}

HOT void relu_forward(float *out, const float *in, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}

HOT void relu_backward(float *din, const float *dout, const float *in, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) din[i] += in[i] > 0.0f ? dout[i] : 0.0f;
}

static inline float gelu1(float x) { return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2)); }
static inline float gelu1_grad(float x) {
    return 0.5f * (1.0f + erff(x * (float)M_SQRT1_2)) + x * 0.3989422804014327f * expf(-0.5f * x * x);
}

HOT void geglu_forward(float *out, const float *in, int N, int Hd) {
#pragma omp parallel for if ((long)N * Hd > 65536)
    for (int i = 0; i < N; i++) {
        const float *a = in + (size_t)i * 2 * Hd, *g = a + Hd;
        for (int j = 0; j < Hd; j++) out[(size_t)i * Hd + j] = a[j] * gelu1(g[j]);
    }
}

HOT void geglu_backward(float *din, const float *dout, const float *in, int N, int Hd) {
#pragma omp parallel for if ((long)N * Hd > 65536)
    for (int i = 0; i < N; i++) {
        const float *a = in + (size_t)i * 2 * Hd, *g = a + Hd, *d = dout + (size_t)i * Hd;
        float *da = din + (size_t)i * 2 * Hd, *dg = da + Hd;
        for (int j = 0; j < Hd; j++) {
            da[j] += d[j] * gelu1(g[j]);
            dg[j] += d[j] * a[j] * gelu1_grad(g[j]);
        }
    }
}

HOT void swiglu_forward(float *out, const float *gate, const float *up, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) out[i] = gate[i] * sigmoidf(gate[i]) * up[i];
}

HOT void swiglu_rows_forward(float *out, const float *fc, int N, int Hd) {
#pragma omp parallel for if ((long)N * Hd > 65536)
    for (int t = 0; t < N; t++) {
        const float *g = fc + (size_t)t * 2 * Hd, *u = g + Hd;
        float *o = out + (size_t)t * Hd;
        for (int i = 0; i < Hd; i++) o[i] = g[i] * sigmoidf(g[i]) * u[i];
    }
}

HOT void swiglu_rows_backward(float *dfc, const float *dout, const float *fc, int N, int Hd) {
#pragma omp parallel for if ((long)N * Hd > 65536)
    for (int t = 0; t < N; t++) {
        const float *g = fc + (size_t)t * 2 * Hd, *u = g + Hd, *d = dout + (size_t)t * Hd;
        float *dg = dfc + (size_t)t * 2 * Hd, *du = dg + Hd;
        for (int i = 0; i < Hd; i++) {
            const float s = sigmoidf(g[i]), silu = g[i] * s;
            du[i] += d[i] * silu;
            dg[i] += d[i] * u[i] * (s + g[i] * s * (1.0f - s));
        }
    }
}

HOT void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) {
        const float s = sigmoidf(gate[i]), silu = gate[i] * s;
        if (dup) dup[i] += dout[i] * silu;
        if (dgate) dgate[i] += dout[i] * up[i] * (s + gate[i] * s * (1.0f - s));
    }
}
