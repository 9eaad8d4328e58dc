/* The Domain Disentangling Loss: finite differences of the domain CE (features, weights, bias)
 * and of the multi-bandwidth MMD^2 (features, at a fixed scale); MMD^2 is about zero between two
 * draws of one distribution and large between separated ones; the per-sample forget loss equals
 * BBF's per-class loss when the marks agree, and its gradient matches finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/gradcheck.h"
#include "core/rng.h"
#include "eval/forget_metrics.h"
#include "forget/domain_loss.h"
#include "test.h"

typedef struct {
    float *f, *W, *b;
    int N, E, D;
    const int32_t *dom;
    double scale;
    int which; /* 0 CE, 1 MMD */
} DlProbe;

static double dl_loss(void *ctx) {
    DlProbe *p = ctx;
    return p->which == 0 ? domain_ce_grad(p->f, p->N, p->E, p->W, p->b, p->D, p->dom, NULL, NULL, NULL)
                         : mmd2_grad(p->f, p->N, p->E, p->dom, p->D, p->scale, NULL);
}

TEST(domain_loss_grad) {
    Rng r;
    rng_seed(&r, 3);
    enum { N = 9, E = 5, D = 3 };
    const int32_t dom[N] = {0, 1, 2, 0, 1, 2, 0, 0, 1};
    float *f = randn(&r, N * E, 0.5f), *W = randn(&r, D * E, 1), *b = randn(&r, D, 1);
    float df[N * E] = {0}, dW[D * E] = {0}, db[D] = {0};
    DlProbe p = {f, W, b, N, E, D, dom, 0, 0};
    domain_ce_grad(f, N, E, W, b, D, dom, df, dW, db);
    const FdProbe fp = {dl_loss, &p, 20, 1e-3f, 1e-5, 1e-2, 7};
    fd_check_coords(&fp, f, df, N * E, "domain CE: features");
    fd_check_coords(&fp, W, dW, D * E, "domain CE: weights");
    fd_check_coords(&fp, b, db, D, "domain CE: bias");
    p.which = 1;
    p.scale = mmd_median_scale(f, N, E);
    CHECK(p.scale > 0);
    float dm[N * E] = {0};
    const double v = mmd2_grad(f, N, E, dom, D, p.scale, dm);
    CHECK(v > 0);
    fd_check_coords(&fp, f, dm, N * E, "MMD^2: features");
    free(f), free(W), free(b);
}

TEST(domain_loss_mmd_separates_distributions) {
    Rng r;
    rng_seed(&r, 4);
    enum { N = 200, E = 4 };
    int32_t dom[N];
    float *same = randn(&r, N * E, 1), *apart = randn(&r, N * E, 1);
    for (int i = 0; i < N; i++) {
        dom[i] = i % 2;
        if (dom[i]) apart[i * E] += 4; /* domain 1 moved 4 sigma along one axis */
    }
    const double m_same = mmd2_grad(same, N, E, dom, 2, 0, NULL), m_apart = mmd2_grad(apart, N, E, dom, 2, 0, NULL);
    CHECK(m_same < 0.1); /* the V-statistic's bias: about 5 kernels x (1/100 + 1/100) x (1 - E k) */
    CHECK(m_apart > 0.5);
    CHECK(m_apart > 20 * m_same);
    /* one domain alone: no pair, no discrepancy */
    int32_t one[N] = {0};
    CHECK_NEAR(mmd2_grad(apart, N, E, one, 2, 0, NULL), 0, 0);
    free(same), free(apart);
}

typedef struct {
    float *z;
    const int32_t *y;
    const uint8_t *fs;
    int N, C;
} FlProbe;

static double fl_loss(void *ctx) {
    FlProbe *p = ctx;
    return forget_loss_grad_samples(p->z, p->y, p->N, p->C, p->fs, NULL);
}

TEST(forget_loss_per_sample_grad) {
    Rng r;
    rng_seed(&r, 5);
    enum { N = 8, C = 4 };
    const int32_t y[N] = {0, 1, 2, 3, 0, 1, 2, 3};
    const uint8_t forget_class[C] = {0, 1, 0, 0}, fs_class[N] = {0, 1, 0, 0, 0, 1, 0, 0};
    const uint8_t fs[N] = {1, 0, 0, 1, 0, 1, 0, 0}; /* a mark per sample, across classes */
    float *z = randn(&r, N * C, 2);
    float g1[N * C], g2[N * C];
    const double a = bbf_loss_grad(z, y, N, C, forget_class, g1), b = forget_loss_grad_samples(z, y, N, C, fs_class, g2);
    CHECK_NEAR(a, b, 1e-12);
    for (int i = 0; i < N * C; i++) CHECK_NEAR(g1[i], g2[i], 0);
    float g[N * C];
    forget_loss_grad_samples(z, y, N, C, fs, g);
    FlProbe p = {z, y, fs, N, C};
    const FdProbe fp = {fl_loss, &p, 32, 1e-3f, 1e-5, 1e-2, 9};
    fd_check_coords(&fp, z, g, N * C, "per-sample forget loss");
    free(z);
}
