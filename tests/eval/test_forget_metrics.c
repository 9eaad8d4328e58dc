/* Err_forget / Acc_keep / H and the BBF loss on hand-computed cases. */
#include <math.h>

#include "core/ops.h"
#include "eval/forget_metrics.h"
#include "test.h"

TEST(forget_metrics_by_hand) {
    /* 3 classes, class 2 forgotten; 4 samples */
    const float logits[4 * 3] = {
        5, 1, 0, /* label 0, predicted 0: kept right */
        0, 1, 3, /* label 1, predicted 2: kept wrong */
        0, 0, 9, /* label 2, predicted 2: not forgotten */
        7, 0, 1, /* label 2, predicted 0: forgotten */
    };
    const int32_t labels[4] = {0, 1, 2, 2};
    const uint8_t forget[3] = {0, 0, 1};
    ForgetScore s;
    forget_score(logits, labels, 4, 3, forget, &s);
    CHECK(s.n_forget == 2 && s.n_keep == 2);
    CHECK_NEAR(s.err_forget, 0.5, 1e-12);
    CHECK_NEAR(s.acc_keep, 0.5, 1e-12);
    CHECK_NEAR(s.h, 0.5, 1e-12);
    CHECK_NEAR(harmonic_h(1.0, 0.8), 2 * 0.8 / 1.8, 1e-12);
    CHECK_NEAR(harmonic_h(0, 0), 0, 0);

    /* BBF loss: keep sample CE + forget sample CE to uniform; uniform probabilities give ln C there */
    const float probs[2 * 3] = {0.5f, 0.25f, 0.25f, 1.0f / 3, 1.0f / 3, 1.0f / 3};
    const int32_t lab2[2] = {0, 2};
    double want = -log(0.5 + 1e-7) + (-log(1.0 / 3 + 1e-7));
    CHECK_NEAR(bbf_loss(probs, lab2, 2, 3, forget), want, 1e-6);
    /* a confident forget sample costs more than a uniform one */
    const float sharp[2 * 3] = {0.5f, 0.25f, 0.25f, 0.01f, 0.01f, 0.98f};
    CHECK(bbf_loss(sharp, lab2, 2, 3, forget) > want + 1.0);
}

TEST(bbf_loss_gradient_checks) {
    const int N = 5, C = 4;
    float z[20], d[20];
    const int32_t labels[5] = {0, 1, 3, 2, 3};
    const uint8_t forget[4] = {0, 0, 1, 1};
    for (int i = 0; i < N * C; i++) z[i] = (float)((i * 37) % 13 - 6) / 2.0f;
    double L = bbf_loss_grad(z, labels, N, C, forget, d);
    float p[20];
    softmax_forward(p, z, N, C);
    CHECK_NEAR(L, bbf_loss(p, labels, N, C, forget), 1e-9);
    double worst = 0;
    for (int i = 0; i < N * C; i++) {
        float keep = z[i], tmp[20];
        const float h = 1e-2f;
        z[i] = keep + h;
        double lp = bbf_loss_grad(z, labels, N, C, forget, tmp);
        z[i] = keep - h;
        double lm = bbf_loss_grad(z, labels, N, C, forget, tmp);
        z[i] = keep;
        double num = (lp - lm) / (2 * h);
        worst = fmax(worst, fabs(num - d[i]));
    }
    CHECK_MSG(worst < 1e-4, "worst gradient error %g", worst);
}
