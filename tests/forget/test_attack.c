/* The white-box attacks' objective (attack_whitebox.c): the erased model's denoising loss and its
 * gradient with respect to learned prompt rows, through a random tiny UNet and the tiny text tower,
 * against finite differences, with and without escape tokens ahead of the rows; and the simplex
 * projection of UnlearnDiffAtk on hand-worked points. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gradcheck.h"
#include "forget/diffusion/attack_internal.h"
#include "models/unet.h"
#include "serve/fixture.h"
#include "test.h"

typedef struct {
    const Text2Image *g;
    const int32_t *ids;
    const float *rows, *x0, *eps;
    const int32_t *t;
    int k, B;
} DenoiseFd;

static double denoise(void *ctx) {
    DenoiseFd *f = ctx;
    Err e = {{0}};
    return attack_denoise_loss(f->g, f->ids, f->rows, f->k, f->x0, f->B, f->t, f->eps, NULL, &e);
}

TEST(attack_denoise_loss_finite_differences) {
    char unet[600], clip[1024];
    tiny_unet_file(unet, sizeof unet, "atk-fd-unet.safetensors", 5);
    Err e = {{0}};
    Rng r;
    rng_seed(&r, 5);
    Text2Image g;
    CHECK_MSG(t2i_load(&g, unet, tiny_model_path(clip, sizeof clip), NULL, &e) == 0, "%s", e.msg);
    const int W = g.unet.cfg.ctx_dim, B = 2;
    const long per = (long)g.unet.cfg.in_ch * g.side * g.side;
    for (int esc = 0; esc < 2; esc++) {
        float *er = randn(&r, (long)W, 0.5f);
        if (esc) CHECK(t2i_set_escape(&g, er, 1, &e) == 0);
        for (int k = 1; k <= 2; k++) {
            int32_t ids[128];
            CHECK(g.ctx_len <= 128);
            CHECK(attack_slot_ids(&g, "a photo of a bag.", g.n_escape + k, ids, &e) == 0);
            float *rows = randn(&r, (long)k * W, 0.5f), *x0 = randn(&r, B * per, 1.0f), *eps = randn(&r, B * per, 1.0f);
            float *d = xcalloc((size_t)k * W, sizeof(float));
            const int32_t t[2] = {120, 640};
            const double l = attack_denoise_loss(&g, ids, rows, k, x0, B, t, eps, d, &e);
            CHECK(isfinite(l) && l > 0);
            DenoiseFd f = {&g, ids, rows, x0, eps, t, k, B};
            const FdProbe p = {denoise, &f, 16, 1e-2f, 1e-5, 3e-2, 7};
            fd_check_coords(&p, rows, d, (long)k * W, esc ? "rows after an escape token" : "rows after SOT");
            free(rows), free(x0), free(eps), free(d);
        }
        free(er);
    }
    t2i_free(&g);
}

TEST(attack_simplex_projection) {
    float tmp[4];
    int ord[4];
    float a[3] = {0.5f, 0.5f, 0.5f};
    attack_simplex_project(a, 3, tmp, ord);
    for (int i = 0; i < 3; i++) CHECK(fabsf(a[i] - 1.0f / 3) < 1e-6f);
    float b[3] = {2, 0, 0};
    attack_simplex_project(b, 3, tmp, ord);
    CHECK(fabsf(b[0] - 1) < 1e-6f && b[1] == 0 && b[2] == 0);
    float c[3] = {0.6f, 0.5f, -1};
    attack_simplex_project(c, 3, tmp, ord); /* theta = (1.1 - 1) / 2 */
    CHECK(fabsf(c[0] - 0.55f) < 1e-6f && fabsf(c[1] - 0.45f) < 1e-6f && c[2] == 0);
    float d[4] = {0.1f, 0.2f, 0.3f, 0.4f}; /* already on the simplex: unchanged */
    attack_simplex_project(d, 4, tmp, ord);
    CHECK(fabsf(d[0] - 0.1f) < 1e-6f && fabsf(d[3] - 0.4f) < 1e-6f);
}
