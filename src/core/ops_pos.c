/* Position encodings: rotary embeddings (Llama / Hugging Face "rotate half" convention) and the
 * sinusoidal timestep embedding of diffusion models; and the mean-squared error. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/ops.h"

/* Pair (i, i + hd/2) of each head rotates by pos * base^(-2i/hd):
 *   out_i = x_i cos - x_{i+h} sin,  out_{i+h} = x_{i+h} cos + x_i sin. */
void rope_forward(float *out, const float *in, const int32_t *pos, int T, int H, int hd, float base) {
    const int half = hd / 2;
#pragma omp parallel for if ((long)T * H * hd > 65536)
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *x = in + ((size_t)t * H + h) * hd;
            float *o = out + ((size_t)t * H + h) * hd;
            for (int i = 0; i < half; i++) {
                const double a = pos[t] * pow(base, -2.0 * i / hd);
                const float c = (float)cos(a), s = (float)sin(a), x1 = x[i], x2 = x[i + half];
                o[i] = x1 * c - x2 * s;
                o[i + half] = x2 * c + x1 * s;
            }
        }
}

/* The transpose of the rotation (its inverse). */
void rope_backward(float *din, const float *dout, const int32_t *pos, int T, int H, int hd, float base) {
    const int half = hd / 2;
#pragma omp parallel for if ((long)T * H * hd > 65536)
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *d = dout + ((size_t)t * H + h) * hd;
            float *g = din + ((size_t)t * H + h) * hd;
            for (int i = 0; i < half; i++) {
                const double a = pos[t] * pow(base, -2.0 * i / hd);
                const float c = (float)cos(a), s = (float)sin(a);
                g[i] += d[i] * c + d[i + half] * s;
                g[i + half] += d[i + half] * c - d[i] * s;
            }
        }
}

void rope_qk_inplace(float *x, int ld, const int32_t *pos, int T, int H, int hd, float base, int inverse) {
    const int half = hd / 2, W = H * hd;
    double *inv = xmalloc(sizeof(double) * (size_t)half);
    for (int i = 0; i < half; i++) inv[i] = pow(base, -2.0 * i / hd);
#pragma omp parallel if ((long)T * W > 65536)
    {
        float *cs = xalloc_floats((size_t)hd); /* cos then sin of the row's angles */
#pragma omp for
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < half; i++) {
                const double a = pos[t] * inv[i];
                cs[i] = (float)cos(a), cs[half + i] = inverse ? -(float)sin(a) : (float)sin(a);
            }
            for (int part = 0; part < 2; part++)
                for (int h = 0; h < H; h++) {
                    float *v = x + (size_t)t * ld + (size_t)part * W + (size_t)h * hd;
                    for (int i = 0; i < half; i++) {
                        const float c = cs[i], sn = cs[half + i], x1 = v[i], x2 = v[i + half];
                        v[i] = x1 * c - x2 * sn;
                        v[i + half] = x2 * c + x1 * sn;
                    }
                }
        }
        free(cs);
    }
    free(inv);
}

/* diffusers get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=0), as Stable
 * Diffusion uses it: freq_i = max_period^(-i/half), out = [cos(t freq), sin(t freq)]. */
void timestep_embedding(float *out, const float *t, int N, int dim, float max_period) {
    const int half = dim / 2;
    for (int n = 0; n < N; n++) {
        float *o = out + (size_t)n * dim;
        for (int i = 0; i < half; i++) {
            const double a = t[n] * exp(-log((double)max_period) * i / half);
            o[i] = (float)cos(a);
            o[half + i] = (float)sin(a);
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}

float mse_forward(const float *pred, const float *target, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) {
        const double d = (double)pred[i] - target[i];
        s += d * d;
    }
    return (float)(s / (double)n);
}

void mse_backward(float *dpred, const float *pred, const float *target, long n, float dloss) {
    const float k = 2.0f * dloss / (float)n;
    for (long i = 0; i < n; i++) dpred[i] += k * (pred[i] - target[i]);
}
