#include "core/optim.h"
#include "core/fastmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

void adamw_init(AdamW *o, long n, float beta1, float beta2, float eps) {
    memset(o, 0, sizeof *o);
    o->beta1 = beta1, o->beta2 = beta2, o->eps = eps, o->n = n;
    o->m = xcalloc((size_t)n, sizeof(float));
    o->v = xcalloc((size_t)n, sizeof(float));
}

void adamw_free(AdamW *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

void adamw_begin_step(AdamW *o) { o->t++; }

HOT void adamw_update(AdamW *o, float *p, const float *g, long off, long n, double lr, double wd) {
    /* Python-side scalars are doubles; PyTorch casts each to float32 where it meets a float tensor. */
    const float decay = (float)(1.0 - lr * wd);
    const float b1 = o->beta1, b2 = o->beta2, one_b1 = (float)(1.0 - (double)o->beta1),
                one_b2 = (float)(1.0 - (double)o->beta2);
    const double bc1 = 1.0 - pow((double)o->beta1, (double)o->t), bc2 = 1.0 - pow((double)o->beta2, (double)o->t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = o->eps;
    float *m = o->m + off, *v = o->v + off;
    p += off;
    g += off;
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) {
        float pi = p[i] * decay;
        m[i] = m[i] * b1 + g[i] * one_b1;
        v[i] = v[i] * b2 + one_b2 * g[i] * g[i];
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = pi - step_size * (m[i] / denom);
    }
}

HOT void sgd_update(float *buf, float *p, const float *g, long off, long n, double lr, double wd, float momentum) {
    const float l = (float)lr, w = (float)wd;
    buf += off, p += off, g += off;
#pragma omp parallel for simd if (n > 65536)
    for (long i = 0; i < n; i++) {
        const float d = g[i] + w * p[i];
        buf[i] = momentum * buf[i] + d;
        p[i] -= l * buf[i];
    }
}
