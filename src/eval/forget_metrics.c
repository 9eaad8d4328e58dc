#include "eval/forget_metrics.h"

#include <stdlib.h>

#include "core/err.h"
#include "core/ops.h"

#include <math.h>
#include <string.h>

double harmonic_h(double err_forget, double acc_keep) {
    return err_forget + acc_keep > 0 ? 2 * err_forget * acc_keep / (err_forget + acc_keep) : 0;
}

void forget_score(const float *logits, const int32_t *labels, int N, int C, const uint8_t *forget, ForgetScore *out) {
    memset(out, 0, sizeof *out);
    long wrong_f = 0, right_k = 0;
    for (int i = 0; i < N; i++) {
        const float *l = logits + (size_t)i * C;
        int arg = 0;
        for (int c = 1; c < C; c++)
            if (l[c] > l[arg]) arg = c;
        if (forget[labels[i]]) out->n_forget++, wrong_f += arg != labels[i];
        else out->n_keep++, right_k += arg == labels[i];
    }
    out->err_forget = out->n_forget ? (double)wrong_f / out->n_forget : 0;
    out->acc_keep = out->n_keep ? (double)right_k / out->n_keep : 0;
    out->h = harmonic_h(out->err_forget, out->acc_keep);
}

/* The loss with the forget mark per sample (forget_sample[i]) instead of per class. */
static double masked_loss(const float *probs, const int32_t *labels, int N, int C, const uint8_t *fs) {
    const double eps = 1e-7;
    double mem = 0, fgt = 0;
    int nm = 0, nf = 0;
    for (int i = 0; i < N; i++) {
        const float *p = probs + (size_t)i * C;
        if (fs[i]) {
            double s = 0;
            for (int c = 0; c < C; c++) s += log(p[c] + eps);
            fgt += -s / C;
            nf++;
        } else {
            mem += -log(p[labels[i]] + eps);
            nm++;
        }
    }
    return (nm ? mem / nm : 0) + (nf ? fgt / nf : 0);
}

static uint8_t *class_to_sample(const int32_t *labels, int N, const uint8_t *forget) {
    uint8_t *fs = xmalloc((size_t)(N > 0 ? N : 1));
    for (int i = 0; i < N; i++) fs[i] = forget[labels[i]] != 0;
    return fs;
}

double bbf_loss(const float *probs, const int32_t *labels, int N, int C, const uint8_t *forget) {
    uint8_t *fs = class_to_sample(labels, N, forget);
    const double l = masked_loss(probs, labels, N, C, fs);
    free(fs);
    return l;
}

double forget_loss_grad_samples(const float *logits, const int32_t *labels, int N, int C, const uint8_t *fs,
                                float *dlogits) {
    const double eps = 1e-7;
    int nm = 0, nf = 0;
    for (int i = 0; i < N; i++) nf += fs[i] != 0, nm += fs[i] == 0;
    float *p = xalloc_floats((size_t)N * C);
    softmax_forward(p, logits, N, C);
    const double loss = masked_loss(p, labels, N, C, fs);
    double *c = xmalloc(sizeof(double) * (size_t)C);
    for (int i = 0; i < N && dlogits; i++) {
        const float *pi = p + (size_t)i * C;
        float *d = dlogits + (size_t)i * C;
        for (int k = 0; k < C; k++) /* f = -sum_k c_k log(p_k + eps) */
            c[k] = fs[i] ? 1.0 / ((double)C * nf) : k == labels[i] ? 1.0 / nm : 0.0;
        double s = 0;
        for (int k = 0; k < C; k++) s += c[k] * pi[k] / (pi[k] + eps);
        for (int j = 0; j < C; j++) d[j] = (float)(-(c[j] * pi[j] / (pi[j] + eps) - pi[j] * s));
    }
    free(c), free(p);
    return loss;
}

double bbf_loss_grad(const float *logits, const int32_t *labels, int N, int C, const uint8_t *forget, float *dlogits) {
    uint8_t *fs = class_to_sample(labels, N, forget);
    const double l = forget_loss_grad_samples(logits, labels, N, C, fs, dlogits);
    free(fs);
    return l;
}
