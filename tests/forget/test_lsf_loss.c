/* LSF's losses by finite differences: AM-softmax, the selective distillation with a mixed
 * kept/deleted mask, EWC; and their values where they are known in closed form. */
#include <math.h>
#include <stdlib.h>

#include "core/gradcheck.h"
#include "forget/lsf_loss.h"
#include "test.h"

enum { LN = 3, LK = 4 };
static int32_t ly[LN] = {1, 3, 0};
static uint8_t lkeep[LK] = {1, 0, 1, 0};
static float lold[LN * LK]; /* the frozen old head: no gradient */

static void amf(GradCase *g) { g->out[0] = am_softmax_loss(g->in[0], ly, LN, LK, 30, 0.35f, 0.7f, NULL); }
static void amb(GradCase *g) { am_softmax_loss(g->in[0], ly, LN, LK, 30, 0.35f, 0.7f * g->R[0], g->grad[0]); }
static void lwff(GradCase *g) { g->out[0] = selective_lwf_loss(g->in[0], lold, lkeep, LN, LK, 2, -1, 3.0f, NULL); }
static void lwfb(GradCase *g) { selective_lwf_loss(g->in[0], lold, lkeep, LN, LK, 2, -1, 3.0f * g->R[0], g->grad[0]); }
static float ewc_f[LN * LK], ewc_anchor[LN * LK];
static void ewcf(GradCase *g) { g->out[0] = ewc_loss(g->in[0], ewc_anchor, ewc_f, LN * LK, 100, NULL); }
static void ewcb(GradCase *g) {
    float *tmp = calloc(LN * LK, sizeof(float));
    ewc_loss(g->in[0], ewc_anchor, ewc_f, LN * LK, 100, tmp);
    for (int i = 0; i < LN * LK; i++) g->grad[0][i] += g->R[0] * tmp[i];
    free(tmp);
}

TEST(lsf_losses_grad) {
    Rng r;
    rng_seed(&r, 51);
    GradCase g = {.forward = amf, .backward = amb};
    setup(&g, &r, 1, (long[]){LN * LK}, 1);
    for (int i = 0; i < LN * LK; i++) g.in[0][i] *= 0.05f; /* cosines: s = 30 makes unit inputs saturate */
    gradcheck(&g, "am-softmax", 2e-2);
    free_case(&g);
    GradCase h = {.forward = lwff, .backward = lwfb};
    setup(&h, &r, 1, (long[]){LN * LK}, 1);
    for (int i = 0; i < LN * LK; i++) lold[i] = 0.1f * (float)((i * 7) % 5) - 0.2f;
    gradcheck(&h, "selective lwf", 2e-2);
    free_case(&h);
    for (int i = 0; i < LN * LK; i++) ewc_f[i] = 0.01f * (float)i, ewc_anchor[i] = 0.1f * (float)(i % 3);
    GradCase k = {.forward = ewcf, .backward = ewcb};
    setup(&k, &r, 1, (long[]){LN * LK}, 1);
    gradcheck(&k, "ewc", 2e-2);
    free_case(&k);
}

TEST(lsf_losses_values) {
    /* equal cosines, no margin: CE = log K */
    float cos[LK] = {0.2f, 0.2f, 0.2f, 0.2f};
    int32_t y0 = 2;
    CHECK_NEAR(am_softmax_loss(cos, &y0, 1, LK, 30, 0, 1, NULL), log(LK), 1e-5);
    /* the margin raises the loss of the true class: s m more logit to make up */
    CHECK(am_softmax_loss(cos, &y0, 1, LK, 30, 0.35f, 1, NULL) > log(LK) + 1);
    /* distillation: identical heads on kept classes and the target met on deleted ones -> 0 */
    uint8_t keep[LK] = {1, 1, 0, 0};
    float z[LK] = {0.3f, -0.1f, 0.25f, 0.25f}, zo[LK] = {0.3f, -0.1f, 0.9f, -0.9f};
    CHECK_NEAR(selective_lwf_loss(z, zo, keep, 1, LK, 2, -1, 1, NULL), 0, 1e-6);
    /* a deleted class far from the target costs; the old head's value there does not matter */
    float z2[LK] = {0.3f, -0.1f, 0.9f, -0.9f};
    CHECK(selective_lwf_loss(z2, zo, keep, 1, LK, 2, -1, 1, NULL) > 1e-3);
    /* with the target 0 the deleted cosines are pushed to 0 instead */
    float z3[LK] = {0.3f, -0.1f, 0, 0};
    CHECK_NEAR(selective_lwf_loss(z3, zo, keep, 1, LK, 2, 0, 1, NULL), 0, 1e-6);
    float th[2] = {1, 2}, an[2] = {0, 0}, f[2] = {1, 0.5f};
    CHECK_NEAR(ewc_loss(th, an, f, 2, 100, NULL), 50 * (1 + 0.5 * 4), 1e-4);
}
